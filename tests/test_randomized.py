"""Randomized monotone trading rules with envelope payments (CE Thm 2): ex post IC and IR by construction,
for any member of the family, checked by the audit and against closed-form envelope integrals.

The family's parametrization (models/randomized.py) is internal to jm.randomized_trade_family: tested directly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmech as jm
from jaxmech._src.models import randomized as rz


def _random_member(seed: int, knots: int = 7) -> dict:
    p = rz.init_params(knots)
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    return dict(
        p,
        z0=jax.random.normal(k1, ()),
        alpha=p["alpha"] + jax.random.normal(k2, p["alpha"].shape),
        gamma=jax.random.normal(k3, p["gamma"].shape),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_member_is_monotone_in_the_required_directions(seed):
    q = np.asarray(rz.knot_values(_random_member(seed)))
    assert np.all(np.diff(q, axis=0) >= 0) and np.all(np.diff(q, axis=1) <= 0)  # up in s_beta, down in s_sigma
    s = jax.random.uniform(jax.random.PRNGKey(seed + 10), (512, 2))
    p = _random_member(seed)
    up = jax.vmap(lambda x: rz.trade_probability(p, x.at[0].add(0.01)) - rz.trade_probability(p, x))(s)
    assert float(jnp.min(up)) >= -1e-6


def test_envelope_payments_match_the_closed_form_for_linear_values():
    """v_beta = s_beta + a s_sigma (slope 1 in the own signal): t_beta = q v_beta - int_0^{s_beta} q(x, s_sigma) dx;
    with q bilinear the integral is a sum of trapezoids over the knot cells, computed here independently."""
    a = 0.3
    env = jm.bilateral_trade(jm.linear_trade_values(a))
    p = _random_member(3, knots=5)
    q = np.asarray(rz.knot_values(p), np.float64)
    s = np.array([0.73, 0.41])
    ys = s[1] * 4
    j, fy = int(np.floor(ys)), ys - np.floor(ys)
    col = q[:, j] * (1 - fy) + q[:, j + 1] * fy  # q(x_knot, s_sigma) at the 5 buyer knots
    xs = np.linspace(0, 1, 5)
    grid = np.concatenate([xs[xs < s[0]], [s[0]]])
    vals = np.interp(grid, xs, col)
    integral = float(np.sum(0.5 * (vals[1:] + vals[:-1]) * np.diff(grid)))
    q_s = float(np.interp(s[0], xs, col))
    t = np.asarray(rz.envelope_payments(env, p, jnp.asarray(s, jnp.float32)))
    assert t[0] == pytest.approx(q_s * (s[0] + a * s[1]) - integral, abs=2e-6)


@pytest.mark.parametrize("a", [0.0, 0.5])
def test_members_are_ex_post_ic_and_ir_by_the_audit(a):
    env = jm.bilateral_trade(jm.linear_trade_values(a))
    mech = jm.randomized_trade_mechanism(env, _random_member(4))
    rep = jm.audit(env, mech, jm.independent(env.dims), key=jax.random.PRNGKey(1), n_profiles=4096,
                   misreports=jm.Misreports(grid=33, random=4)).report  # fmt: skip
    assert max(r["max"] for r in rep["regret"]) <= 1e-5 * rep["value_scale"] * 10
    assert max(r["max"] for r in rep["ir_violation"]) <= 1e-5  # the lowest types' IR binds, no one below 0


def test_repair_lands_on_the_boundary_from_either_side():
    boundary = 1.7  # worst deficit = delta - 1.7: feasible iff delta <= 1.7
    for start_shift in (-3.0, 2.5):
        d = rz.repair_shift(lambda x, s=start_shift: (x + s) - boundary)
        assert d + start_shift == pytest.approx(boundary, abs=1e-9)
    with pytest.raises(ValueError, match="no shift of z0"):
        rz.repair_shift(lambda x: 1.0)


def test_family_refuses_other_environments():
    env = jm.public_good(jm.linear_public_values(0.3, 2), 1.0, 2)
    with pytest.raises(ValueError, match="needs bilateral trade"):
        jm.randomized_trade_family(env, jm.independent(env.dims))


def test_randomized_ramp_subsidy_is_a_lump_sum_in_the_menu_and_the_payments():
    env = jm.bilateral_trade(jm.deadzone_trade_values(0.2, 0.5))
    plain = jm.randomized_ramp(env, 0.1, cells=64)
    sub = jm.randomized_ramp(env, 0.1, cells=64, subsidy=0.05)
    m = jnp.array([0.6, 0.3])
    np.testing.assert_allclose(sub.pay((), m), plain.pay((), m) - 0.05 * m[::-1], atol=1e-6)
    for i in (0, 1):
        for x in (0.0, 0.45, 1.0):
            q, t = sub.menu((), m, i)(jnp.array([x]))
            mx = m.at[i].set(x)
            np.testing.assert_allclose(t, sub.pay((), mx)[i], atol=1e-6)
    with pytest.raises(ValueError, match="subsidy"):
        jm.randomized_ramp(env, 0.1, subsidy=-1.0)
