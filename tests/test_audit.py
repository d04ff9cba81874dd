"""The two vertical slices (bilateral trade, B Example 1) against closed forms, and the misreport strategies."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import within

import jaxmech as jm


def _audit(env, mech, prior=None, n=20_000, misreports=jm.Misreports(), seed=0, **kw):
    prior = prior or jm.independent(env.dims)
    kw.setdefault("options", jm.StreamOptions(block_size=2048, chunk_size=1 << 14))
    return jm.audit(env, mech, prior, key=jax.random.PRNGKey(seed), n_profiles=n, misreports=misreports, **kw).report


# --- slice 1: bilateral trade, v_i = s_i + a s_-i, uniform signals (CE Sec. 4, 4.4) ---------------
#
# Efficient trade iff s_b > s_s (a < 1); generalized VCG payments t_b = (1 + a) s_s, t_s = -(1 + a) s_b
# (CE eqs. (5)-(6)); deficit (1 + a)(s_b - s_s)^+ so E[deficit] = (1 + a) E[(s_b - s_s)^+] = (1 + a) / 6,
# P(trade) = 1/2, welfare E[(1 - a)(s_b - s_s)^+] = (1 - a) / 6.


@pytest.mark.parametrize("a", [0.5, -1.0, -1.5])
def test_bilateral_trade_closed_forms(a):
    env = jm.bilateral_trade(jm.linear_trade_values(a))
    rep = _audit(env, jm.generalized_vcg(env), n=40_000, seed=1)
    trade = rep["outcomes"]["trade"]
    assert within(trade["p"], 0.5, trade["se"])
    d = rep["deficit"]
    assert within(d["mean"], (1 + a) / 6, d["se"], floor=rep["tol"])  # float rounding of the pivots
    w = rep["welfare"]
    assert within(w["mean"], (1 - a) / 6, w["se"])
    assert rep["efficiency"]["mean"] == pytest.approx(1.0)
    for i in range(2):
        assert rep["regret"][i]["max"] <= rep["tol"]
        assert rep["ir_violation"][i]["max"] <= rep["tol"]
    if a == -1.0:  # CE Sec. 4.4: exact budget balance in every state
        assert abs(d["max"]) <= rep["tol"] and abs(d["min"]) <= rep["tol"]
    if a < -1.0:  # budget surplus in every trading state
        assert d["max"] <= rep["tol"] and d["min"] < 0


def test_deficit_under_correlated_prior_is_nonnegative_in_every_state():
    """CE Lemma 4 is prior-free: with values increasing in all signals the deficit is >= 0 state by state."""
    env = jm.bilateral_trade(jm.linear_trade_values(0.5))
    prior = jm.gaussian_copula(env.dims, jm.beta(2, 2), jm.equicorrelation(2, 0.7))
    rep = _audit(env, jm.generalized_vcg(env), prior=prior, n=10_000)
    assert rep["deficit"]["min"] >= -rep["tol"]
    assert rep["deficit"]["ci95"][0] > 0
    assert max(r["max"] for r in rep["regret"]) <= rep["tol"]


# --- slice 2: B Example 1 -----------------------------------------------------------------------


def example1_outcome_probabilities(n=2000):
    """Independent reference by quadrature: P(a_1) = P(p_1 - p_2 > c_2^2 - c_1 c_2) (B Sec. 3).

    p_1 - p_2 is triangular on [-1, 1]: P(D > x) = (1 - x)^2 / 2 for x >= 0 and 1 - (1 + x)^2 / 2 for x < 0;
    average over (c_1, c_2) on a midpoint grid.
    """
    c = (np.arange(n) + 0.5) / n
    c1, c2 = np.meshgrid(c, c, indexing="ij")
    x = c2**2 - c1 * c2
    p1 = np.where(x >= 0, (1 - x) ** 2 / 2, 1 - (1 + x) ** 2 / 2).mean()
    return 1 - 2 * p1, p1, p1


def test_example1_nontrivial_and_ex_post_ic():
    env = jm.example1()
    rep = _audit(env, jm.personalized_prices(env, jm.example1_prices), n=20_000)
    ref = example1_outcome_probabilities()
    for k, name in enumerate(("a0", "a1", "a2")):
        o = rep["outcomes"][name]
        assert o["ci95"][0] > 0, name  # each outcome with positive probability (non-trivial)
        assert within(o["p"], ref[k], o["se"]), (name, o, ref[k])
    for i in range(2):
        assert rep["regret"][i]["max"] <= rep["tol"]  # B Lemma 1
        assert rep["ir_violation"][i]["max"] <= rep["tol"]
    assert rep["efficiency"]["mean"] < 1  # not efficient: a_0 happens where someone values the good


def test_example1_nonadmissible_prices_have_positive_regret():
    env = jm.example1()
    rep = _audit(env, jm.personalized_prices(env, jm.own_signal_prices), n=4096)
    for i in range(2):
        r = rep["regret"][i]
        assert r["max"] > 0.1 and r["p_above_tol"]["p"] > 0.05
        # the witness is real: replaying it gives the reported gain
        s = jnp.asarray(r["worst_profile"], jnp.float32)
        gain = jm.regret(
            env, jm.personalized_prices(env, jm.own_signal_prices), (), s, jnp.asarray(r["worst_misreport"]), i
        )
        assert float(gain) == pytest.approx(r["max"], rel=1e-5)


# --- misreport strategies ------------------------------------------------------------------------


def test_coarse_grid_misses_threshold_deviation_default_strategy_catches_it():
    """Profitable deviations that sit at a threshold: a grid alone certifies a non-IC rule; kinks catch it."""
    env = jm.bilateral_trade(jm.linear_trade_values(0.5))
    mech = jm.threshold_with_rebate(env, cutoff=0.5031, window=0.002, rebate=0.01)
    grid_only = _audit(env, mech, n=8192, misreports=jm.Misreports(grid=16, random=0, kinks=False))
    assert grid_only["regret"][0]["max"] <= grid_only["tol"]  # the false certificate
    default = _audit(env, mech, n=8192)
    r = default["regret"][0]
    assert r["max"] > 0.005
    assert 0.5031 < r["worst_misreport"][0] < 0.5031 + 0.002
    assert r["p_above_tol"]["count"] > 0


def test_gradient_ascent_improves_on_grid():
    """A pay-your-report rule: the best lie is just above the cutoff, off the grid; ascent walks there."""
    env = jm.bilateral_trade(jm.linear_trade_values(0.0))

    def decide(params, m):
        return (m[0] > 0.3).astype(m.dtype)

    def pay(params, m):
        return jnp.stack([decide(params, m) * m[0], jnp.zeros((), m.dtype)])

    mech = jm.Mechanism("pay_your_report", decide, pay)
    base = jm.Misreports(grid=4, random=0, kinks=False)
    plain = _audit(env, mech, n=2048, misreports=base)
    ascent = _audit(
        env, mech, n=2048, misreports=base._replace(gradient_steps=60, gradient_restarts=2, gradient_lr=0.01)
    )
    # true sup of regret for s_b in (0.3, 1]: s_b - 0.3 - (u truthful = 0) -> max approaches 0.7
    assert ascent["regret"][0]["mean"] > plain["regret"][0]["mean"] + 0.01
    assert ascent["regret"][0]["max"] > 0.68


def test_float64_matches_float32():
    jax.config.update("jax_enable_x64", True)
    try:
        env = jm.bilateral_trade(jm.linear_trade_values(0.5))
        r64 = _audit(env, jm.generalized_vcg(env), n=4096, dtype=jnp.float64)
        r32 = _audit(env, jm.generalized_vcg(env), n=4096)
    finally:
        jax.config.update("jax_enable_x64", False)
    assert r64["tol"] < 1e-8
    assert r64["regret"][0]["max"] <= r64["tol"]
    assert r64["deficit"]["mean"] == pytest.approx(r32["deficit"]["mean"], abs=4 * r32["deficit"]["se"])
