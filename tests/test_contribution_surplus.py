"""CE Sec. 5.3's contingent contributions under a prior: expected surplus, welfare and funding, with SEs.

References, both independent of the scheme's strategies: a midpoint-rule quadrature of the threshold rule with
CE Thm 9's pivot payments in closed form (linear values), and ``jm.audit`` of ``jm.threshold_contribution``
(revenue = the designer's surplus) on other samples.
"""

import jax
import numpy as np
import pytest

import jaxmech as jm

A, VBAR = 0.3, np.array([0.45, 0.55])


def _quadrature(a, vbar, m=1500):
    """E over U[0,1]^2 of funding, welfare and surplus of the threshold rule with its pivot payments."""
    x = (np.arange(m) + 0.5) / m
    s1, s2 = np.meshgrid(x, x, indexing="ij")
    v1, v2 = s1 + a * s2, s2 + a * s1
    funded = (v1 >= vbar[0]) & (v2 >= vbar[1])
    # agent i's pivot: the least own signal that funds it, given s_j (both constraints; a > 0)
    g1 = np.clip(np.maximum(vbar[0] - a * s2, (vbar[1] - s2) / a), 0.0, 1.0)
    g2 = np.clip(np.maximum(vbar[1] - a * s1, (vbar[0] - s1) / a), 0.0, 1.0)
    t1, t2 = g1 + a * s2, g2 + a * s1  # t_i = v_i(g_i, s_j)
    cost = vbar.sum()
    mean = lambda z: float(np.mean(np.where(funded, z, 0.0)))
    return {"produced": mean(np.ones_like(s1)), "welfare": mean(v1 + v2 - cost), "surplus": mean(t1 + t2 - cost)}


def test_expected_surplus_matches_quadrature_and_the_audit():
    env = jm.public_good(jm.linear_public_values(A, 2), cost=float(VBAR.sum()))
    prior = jm.independent((1, 1))
    got = jm.contribution_surplus(env.values, VBAR, prior, key=jax.random.PRNGKey(0), n_profiles=1 << 15)
    ref = _quadrature(A, VBAR)
    for name in ("produced", "welfare", "surplus"):
        g = getattr(got, name)
        assert 0 < g["se"] < 0.01
        assert abs(g["mean"] - ref[name]) <= 4 * g["se"] + 2e-3, (name, g, ref[name])  # + the quadrature's grid error
    assert got.surplus["mean"] > 0  # CE Thm 9: never a deficit, a surplus where taxes exceed c
    rep = jm.audit(env, jm.threshold_contribution(env, VBAR), prior, key=jax.random.PRNGKey(1), n_profiles=1 << 15).report
    both = np.hypot(got.surplus["se"], rep["revenue"]["se"])
    assert abs(got.surplus["mean"] - rep["revenue"]["mean"]) <= 4 * both


def test_bad_inputs_are_refused():
    env = jm.public_good(jm.linear_public_values(A, 2), cost=1.0)
    with pytest.raises(ValueError, match="n_profiles"):
        jm.contribution_surplus(env.values, VBAR, jm.independent((1, 1)), key=jax.random.PRNGKey(0), n_profiles=1)
    with pytest.raises(ValueError, match="two agents with one signal"):
        jm.contribution_surplus(env.values, VBAR, jm.independent((1, 1, 1)), key=jax.random.PRNGKey(0))
