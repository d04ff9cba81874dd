"""Envelope payments (CE Def 6 / Thm 2 / Thm 3) in the jax.grad + Gauss-Legendre form: pivot payments for cutoff
rules, zero regret for a monotone randomized rule, positive regret for a non-monotone one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmech as jm

A, B, G = 0.3, 0.4, 0.1


def test_quadrature_envelope_equals_pivot_payments_for_a_cutoff_rule(key):
    """A jump of h inside a cell is split off by bisection, so 16 cells already give the pivot payments (CE eqs. (5)-(6))."""
    env = jm.bilateral_trade(jm.multiplicative_trade_values(A, B, G))
    s = jax.random.uniform(key, (256, 2))
    mech = jm.envelope_payments(env, jm.efficient_rule(env), cells=16, method="quadrature")
    t_env = jax.jit(jax.vmap(lambda m: mech.pay((), m)))(s)
    t_vcg = jax.jit(jax.vmap(lambda m: jm.efficient_trade(env).pay((), m)))(s)
    np.testing.assert_allclose(t_env, t_vcg, atol=2e-6)


def _logistic(params, m):
    """A smooth, monotone randomized trading rule: P(trade) = sigmoid((m_beta - m_sigma) / 0.1)."""
    del params
    return jax.nn.sigmoid((m[0] - m[1]) / 0.1)


def _regret_search(env, mech, prof, mis, agents=(0, 1)):
    """Per profile and agent: [best gain over the misreport grid, truthful utility, payment, best misreport].

    jm.audit's method: each agent's menu at s_-i, evaluated at every misreport.
    """

    @jax.jit
    def run(prof):
        def at(s):
            out = []
            for i in agents:
                respond = jm.agent_menu(mech, env.dims, (), s, i)

                def u(m, i=i, respond=respond):
                    q, t = respond(m)
                    return env.value(q, s)[i] - t

                truthful = u(s[i : i + 1])
                gains = jax.vmap(u)(mis) - truthful
                j = jnp.argmax(gains)
                out.append(jnp.stack([gains[j], truthful, respond(s[i : i + 1])[1], mis[j, 0]]))
            return jnp.stack(out)

        return jax.vmap(at)(prof)

    return np.asarray(run(prof), np.float64)


def _grid(points):
    g = jnp.linspace(0.0, 1.0, points)
    return jnp.stack(jnp.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)


def test_monotone_randomized_rule_has_zero_regret_and_matches_closed_form():
    """CE Thm 2 with h in [0, 1]: the envelope payments make a monotone randomized rule ex post IC and IR.

    Closed form for v_i = s_i + a s_-i (V_i' = 1): the buyer pays h(x) V(x) - int_0^x h(y) dy, the
    integral of the logistic being 0.1 log(1 + e^{(y - s_sigma)/0.1}) (independent of jaxmech).
    """
    a = 0.5
    env = jm.bilateral_trade(jm.linear_trade_values(a))
    mech = jm.envelope_payments(env, _logistic, cells=16, method="quadrature")
    prof = _grid(9)
    res = _regret_search(env, mech, prof, jnp.linspace(0.0, 1.0, 41)[:, None])
    assert res[..., 0].max() <= 1e-5
    assert res[..., 1].min() >= -1e-5  # ex post IR; the lowest type (buyer 0, seller 1) gets exactly 0
    sb, ss = np.asarray(prof, np.float64).T
    soft = lambda y: 0.1 * np.logaddexp(0.0, (y - ss) / 0.1)  # noqa: E731
    h = 1 / (1 + np.exp(-(sb - ss) / 0.1))
    np.testing.assert_allclose(res[:, 0, 2], h * (sb + a * ss) - (soft(sb) - soft(0.0)), atol=2e-5)


def test_non_monotone_rule_gets_payments_but_positive_regret():
    """CE Thm 2: band_trade's h falls in the buyer's signal; no payments (these included) make it ex post IC."""
    env = jm.bilateral_trade(jm.linear_trade_values(0.5))
    mech = jm.envelope_payments(env, jm.band_trade(env, 0.3).decide, cells=16, method="quadrature")
    prof = _grid(9)
    res = _regret_search(env, mech, prof, jnp.linspace(0.0, 1.0, 41)[:, None], agents=(0,))
    gain = res[:, 0, 0]
    assert gain.max() > 0.1 and np.mean(gain > 1e-4) > 0.1
    # replay the witness with decide and pay: the gain is real
    w = int(np.argmax(gain))
    s = prof[w]
    lie = s.at[0].set(res[w, 0, 3])
    u = jax.jit(jax.vmap(lambda m: env.value(mech.decide((), m), s)[0] - mech.pay((), m)[0]))(jnp.stack([lie, s]))
    np.testing.assert_allclose(float(u[0] - u[1]), gain[w], rtol=1e-4)


def test_envelope_method_is_validated():
    env = jm.bilateral_trade(jm.linear_trade_values(0.5))
    with pytest.raises(ValueError, match="method must be one of stieltjes, quadrature"):
        jm.envelope_payments(env, jm.efficient_rule(env), method="simpson")
