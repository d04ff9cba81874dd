"""One documented tie-break for every efficient rule (issue 23 item 2), checked where ties have positive
probability (CE Sec. 4 dead-zone values) against closed forms, and on exact ties of public goods and auctions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import jaxmech as jm

W, K = 0.2, 0.5


@pytest.mark.parametrize("tie_break", ["status_quo", "allocate"])
def test_deadzone_ties_have_the_closed_form_trade_probability_and_zero_regret(tie_break):
    """Dead-zone values tie on the band |s_beta - s_sigma| <= w (gain from trade 0 there). Keeping the status quo
    trades iff s_beta - s_sigma > w: P = (1 - w)^2 / 2 = 0.32; allocating trades iff s_beta - s_sigma >= -w:
    P = 1 - (1 - w)^2 / 2 = 0.68. Both rules are monotone, so their pivot payments are ex post IC (CE Thm 2)."""
    env = jm.bilateral_trade(jm.deadzone_trade_values(W, K))
    mech = jm.generalized_vcg(env, tie_break=tie_break)
    rep = jm.audit(env, mech, jm.independent(env.dims), key=jax.random.PRNGKey(4), n_profiles=20_000).report
    p = rep["outcomes"]["trade"]
    want = (1 - W) ** 2 / 2 if tie_break == "status_quo" else 1 - (1 - W) ** 2 / 2
    assert abs(p["p"] - want) <= 4 * p["se"], (p, want)
    assert max(r["max"] for r in rep["regret"]) <= rep["tol"]
    assert rep["efficiency"]["mean"] == pytest.approx(1.0, abs=1e-6)  # ties move outcomes, never welfare


def test_public_good_and_single_object_exact_ties():
    pg = jm.public_good(jm.linear_public_values(0.0, 2), 1.0, 2)
    tie = jnp.asarray([0.5, 0.5], jnp.float32)  # v_1 + v_2 = c exactly
    assert float(jm.efficient_rule(pg)((), tie)) == 0.0
    assert float(jm.efficient_rule(pg, tie_break="allocate")((), tie)) == 1.0
    env = jm.example1()
    both = jnp.asarray([0.3, 0.0, 0.3, 0.0], jnp.float32)  # V_1 = V_2 = 0.3: lowest index either way
    for tb in ("status_quo", "allocate"):
        assert jm.efficient_rule(env, tie_break=tb)((), both).tolist() == [1.0, 0.0]
    zero = jnp.zeros(4, jnp.float32)  # highest value 0: no sale unless ties allocate
    assert jm.efficient_rule(env)((), zero).tolist() == [0.0, 0.0]
    assert jm.efficient_rule(env, tie_break="allocate")((), zero).tolist() == [1.0, 0.0]


def test_efficient_trade_keeps_its_names_and_bad_tie_breaks_are_refused():
    env = jm.bilateral_trade(jm.linear_trade_values(0.5))
    with pytest.raises(ValueError, match="tie_break: one of status_quo, allocate"):
        jm.efficient_rule(env, tie_break="coin")
    s = jnp.asarray([0.4, 0.4], jnp.float32)
    assert float(jm.generalized_vcg(env, tie_break="allocate").decide((), s)) == 1.0
    assert float(jm.generalized_vcg(env).decide((), s)) == 0.0
