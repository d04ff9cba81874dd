"""The payments' own numerical error bound (pivots found by bisection), reported next to the deficit's SE.

Reference: with v_i = s_i + a s_-i, CE eqs. (5)-(6) have closed-form pivots (``jm.linear_trade_pivot``); the
bisection route must land within its reported bound of them on every profile, and at a = -1 the budget
balances exactly (t_beta = t_sigma = 0), so the float32 deficit the bisection leaves is explained by the bound
although it is many standard errors away from 0.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmech as jm


def _per_profile(env, mech, s):
    """Payments and their reported bounds at the truthful reports, per profile and agent."""

    def one(m):
        out = [mech.menu(mech.params, m, i) for i in range(env.n_agents)]
        pay = jnp.stack([r(m[i : i + 1])[1] for i, r in enumerate(out)])
        return pay, jnp.stack([r.payment_error() for r in out])

    return jax.jit(jax.vmap(one))(s)


@pytest.mark.parametrize("a", [-1.0, 0.0, 0.5])
def test_bisection_payments_lie_within_their_bound_of_the_closed_form(a):
    env = jm.bilateral_trade(jm.linear_trade_values(a), check=False)
    s = jm.independent(env.dims).sample(jax.random.PRNGKey(1), 20_000)
    t_bis, bound = _per_profile(env, jm.generalized_vcg(env), s)
    t_cf = jax.vmap(lambda m: jm.generalized_vcg(env, pivot=jm.linear_trade_pivot(a)).pay((), m))(s)
    gap = np.abs(np.asarray(t_bis, np.float64) - np.asarray(t_cf, np.float64))
    # the payments' last float32 rounding (at a = -1 the closed form is 0 exactly and the bisection's t = g - s
    # is exact, so there the bound alone must cover the gap)
    rounding = 2 * np.spacing(np.abs(np.asarray(t_cf, np.float32))).astype(np.float64)
    assert np.all(gap <= np.asarray(bound) + rounding), float(np.max(gap - np.asarray(bound) - rounding))
    assert 0 < float(np.max(bound)) <= 1e-6  # one float32 ulp of the pivot, times the value's slope
    assert np.max(gap) > 0  # the bisection does leave an error for the bound to cover


def test_audit_reports_the_bound_where_the_budget_balances_exactly():
    env = jm.bilateral_trade(jm.linear_trade_values(-1.0), check=False)
    kw = dict(key=jax.random.PRNGKey(0), n_profiles=20_000)
    rep = jm.audit(env, jm.generalized_vcg(env), jm.independent(env.dims), **kw).report
    d = rep["deficit"]
    assert abs(d["mean"]) > 4 * d["se"]  # float32 rounding, not sampling noise: the SE alone cannot explain it
    err = d["numerical_error"]
    assert abs(d["mean"]) <= 4 * d["se"] + err["mean"]  # the bound does
    assert err["max"] >= err["mean"] > 0 and len(err["per_agent_mean"]) == 2
    exact = jm.audit(env, jm.generalized_vcg(env, pivot=jm.linear_trade_pivot(-1.0)), jm.independent(env.dims), **kw)
    assert exact.report["deficit"]["mean"] == 0.0 and "numerical_error" not in exact.report["deficit"]
