"""Asymmetric interdependence in public goods: linear_public_values(matrix=M),
v_i = sum_j M_ij s_j, checked against direct linear algebra and CE Thm 9's threshold rule in closed form."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmech as jm

M = np.array([[1.0, 0.5, 0.2], [0.1, 0.8, 0.3], [0.4, 0.0, 1.2]])


def test_values_are_the_matrix_product():
    f = jm.linear_public_values(matrix=M, n=3)
    s = jax.random.uniform(jax.random.PRNGKey(0), (64, 3))
    np.testing.assert_allclose(np.asarray(jax.vmap(f)(s)), np.asarray(s) @ M.T, rtol=1e-6)


def test_symmetric_matrix_is_the_scalar_model():
    a = 0.3
    s = jnp.asarray([0.2, 0.7], jnp.float32)
    np.testing.assert_allclose(
        np.asarray(jm.linear_public_values(matrix=[[1.0, a], [a, 1.0]])(s)),
        np.asarray(jm.linear_public_values(a)(s)),
        rtol=1e-6,
    )


def test_threshold_rule_pays_the_closed_form_pivot_and_has_zero_regret():
    """CE Thm 9 with v = M s (increasing in every signal): provide iff v_k >= vbar_k for all k; agent i's pivot
    is x_i* = max_k (vbar_k - sum_{j != i} M_kj s_j) / M_ki clipped to [0, 1], and it pays v_i(x_i*, s_-i)."""
    n, cost = 3, 1.5
    env = jm.public_good(jm.linear_public_values(matrix=M, n=n), cost, n)
    vbar = np.full(n, cost / n)
    mech = jm.threshold_contribution(env, vbar)
    s = np.asarray(jax.random.uniform(jax.random.PRNGKey(1), (256, n)))
    t = np.asarray(jax.vmap(lambda x: mech.pay(mech.params, x))(jnp.asarray(s, jnp.float32)))
    q = np.asarray(jax.vmap(lambda x: mech.decide(mech.params, x))(jnp.asarray(s, jnp.float32)))
    for b in range(len(s)):
        v = M @ s[b]
        assert q[b] == float(np.all(v >= vbar))
        for i in range(n):
            rest = v - M[:, i] * s[b, i]  # sum_{j != i} M_kj s_j
            slope = M[:, i]  # a constraint that does not move with s_i holds at the truth whenever q = 1
            need = np.where(slope > 0, (vbar - rest) / np.where(slope > 0, slope, 1.0), -np.inf)
            x = np.clip(np.max(need), 0.0, 1.0)
            want = (rest[i] + M[i, i] * x) if q[b] else 0.0
            assert t[b, i] == pytest.approx(want, abs=2e-5), (b, i)
    rep = jm.audit(env, mech, jm.independent(env.dims), key=jax.random.PRNGKey(2), n_profiles=8192).report
    assert max(r["max"] for r in rep["regret"]) <= rep["tol"]
    assert rep["deficit"]["max"] <= rep["tol"]  # on the budget line sum vbar = c: never a deficit


def test_bad_matrix_is_refused():
    with pytest.raises(ValueError, match="positive diagonal"):
        jm.linear_public_values(matrix=[[1.0, 0.2], [0.3, 0.0]])
    with pytest.raises(ValueError, match="must be 2 x 2"):
        jm.linear_public_values(matrix=np.eye(3))
