import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import betainc

import jaxmech as jm


def test_layout_helpers():
    s = jnp.arange(5.0)
    dims = (2, 1, 2)
    assert jm.agent_slice(dims, 2) == slice(3, 5)
    out = jm.replace_signal(s, dims, 0, jnp.array([9.0, 8.0]))
    np.testing.assert_array_equal(out, [9.0, 8.0, 2.0, 3.0, 4.0])


def test_traced_agent_index_replaces_like_the_static_one():
    s = jnp.arange(6.0).reshape(2, 3)  # two profiles, three 1-d agents
    for i in range(3):
        traced = jax.jit(lambda i, s: jm.replace_signal(s, (1, 1, 1), i, 7.0))(jnp.int32(i), s)
        np.testing.assert_array_equal(traced, jm.replace_signal(s, (1, 1, 1), i, 7.0))
    with pytest.raises(ValueError, match="equal signal dimensions"):
        jax.jit(lambda i: jm.replace_signal(jnp.zeros(3), (2, 1), i, 0.0))(jnp.int32(0))


def test_independent_coordinate_j_is_drawn_from_fold_in_key_j(key):
    """The batched draw of the uniform coordinates keeps the documented stream: coordinate j from fold_in(key, j)."""
    marginals = [jm.uniform(-1, 2), jm.beta(2, 5, 0, 4), jm.uniform(0.5, 1.0)]
    s = jm.independent((1, 2), marginals).sample(key, 100)
    for j, m in enumerate(marginals):
        np.testing.assert_array_equal(s[:, j], m.sample(jax.random.fold_in(key, j), (100,), jnp.float32))


class TestSampling(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_shapes_dtype_and_support(self):
        prior = jm.independent((2, 1, 3), [jm.uniform(-1, 2)] * 3 + [jm.beta(2, 5, 0, 4)] * 3)
        sample = self.variant(lambda k: prior.sample(k, 1000))
        s = sample(jax.random.PRNGKey(0))
        chex.assert_shape(s, (1000, 6))
        chex.assert_type(s, jnp.float32)
        assert np.all(np.asarray(s) >= prior.lo) and np.all(np.asarray(s) <= prior.hi)

    @chex.variants(with_jit=True, without_jit=True)
    def test_copula_shapes(self):
        prior = jm.gaussian_copula((1, 1), jm.beta(2, 3), jm.equicorrelation(2, 0.5))
        s = self.variant(lambda k: prior.sample(k, 64))(jax.random.PRNGKey(1))
        chex.assert_shape(s, (64, 2))


def test_jit_equals_nojit(key):
    prior = jm.gaussian_copula((1, 2), jm.uniform(0, 1), jm.equicorrelation(3, 0.3))
    a = prior.sample(key, 256)
    b = jax.jit(prior.sample, static_argnums=1)(key, 256)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_moments(key):
    n = 200_000
    prior = jm.independent((1, 1), [jm.uniform(2, 5), jm.beta(2, 3, 0, 2)])
    s = np.asarray(prior.sample(key, n), np.float64)
    se = s.std(axis=0) / np.sqrt(n)
    assert abs(s[:, 0].mean() - 3.5) < 4 * se[0]
    assert abs(s[:, 1].mean() - 2 * 2 / 5) < 4 * se[1]


def test_beta_quantile_inverts_cdf():
    u = jnp.linspace(0.01, 0.99, 50)
    x = jm.beta(2.5, 0.7).ppf(u)
    np.testing.assert_allclose(betainc(2.5, 0.7, x), u, atol=1e-5)


@pytest.mark.parametrize("a, b", [(2.0, 5.0), (0.5, 0.5), (2.5, 0.7), (0.3, 4.0), (10.0, 10.0)])
def test_beta_quantile_against_scipy(a, b):
    """Table bracket + Newton: float32 within a few ulps of scipy's quantile where it is well conditioned, and one
    program for every (a, b) (traced parameters)."""
    stats = pytest.importorskip("scipy.stats")
    u = np.concatenate([np.geomspace(1e-6, 1e-2, 40), np.linspace(0.01, 0.99, 99), 1 - np.geomspace(1e-4, 1e-2, 20)])
    u32 = jnp.asarray(u, jnp.float32)
    x = np.asarray(jax.jit(jm.beta_quantile)(a, b, u32), np.float64)
    u64 = np.asarray(u32, np.float64)
    np.testing.assert_allclose(x, stats.beta.ppf(u64, a, b), rtol=2e-5, atol=2e-6)
    assert np.max(np.abs(stats.beta.cdf(x, a, b) - u64)) < 2e-4


@pytest.mark.parametrize(
    "prior",
    [
        jm.independent((1, 2), [jm.uniform(2, 5), jm.uniform(), jm.uniform(-1, 1)]),
        jm.gaussian_copula((1, 1), jm.beta(2.0, 5.0), jm.equicorrelation(2, 0.5)),
        jm.gaussian_copula((1, 1), [jm.uniform(), jm.beta(0.5, 0.5)], jm.equicorrelation(2, -0.5)),
    ],
)
def test_prior_arrays_sample_what_the_prior_samples(key, prior):
    """One program for every prior (its numbers an argument) draws Prior.sample's numbers (uniform, copulas)."""
    pa = jm.prior_arrays(prior)
    got = jax.jit(lambda pa, k: jm.sample_arrays(pa, prior.dims, k, 256))(pa, key)
    np.testing.assert_allclose(got, prior.sample(key, 256), rtol=1e-5, atol=1e-6)


def test_prior_arrays_independent_beta_by_quantile(key):
    """An independent Beta marginal from arrays: drawn by its quantile, Beta(2, 5) by a KS test (not Beta(2, 4))."""
    stats = pytest.importorskip("scipy.stats")
    x = np.asarray(jm.sample_arrays(jm.prior_arrays(jm.independent((1,), jm.beta(2.0, 5.0))), (1,), key, 4096))[:, 0]
    assert stats.kstest(x, stats.beta(2.0, 5.0).cdf).pvalue > 1e-3
    assert stats.kstest(x, stats.beta(2.0, 4.0).cdf).pvalue < 1e-3


def test_copula_correlation_and_marginals(key):
    rho = 0.6
    prior = jm.gaussian_copula((1, 1), jm.beta(2, 2), jm.equicorrelation(2, rho))
    s = np.asarray(prior.sample(key, 100_000), np.float64)
    # Beta(2, 2) marginals: mean 1/2, variance 1/20
    np.testing.assert_allclose(s.mean(axis=0), 0.5, atol=0.005)
    np.testing.assert_allclose(s.var(axis=0), 0.05, atol=0.002)
    # Spearman rank correlation of a Gaussian copula: (6 / pi) asin(rho / 2)
    ranks = s.argsort(axis=0).argsort(axis=0)
    spearman = np.corrcoef(ranks.T)[0, 1]
    assert abs(spearman - 6 / np.pi * np.arcsin(rho / 2)) < 0.01


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: jm.uniform(1.0, 1.0), "lo must be < hi"),
        (lambda: jm.uniform(2.0, 1.0), "lo must be < hi"),
        (lambda: jm.beta(0.0, 1.0), "a must be > 0"),
        (lambda: jm.beta(1.0, -2.0), "b must be > 0"),
        (lambda: jm.gaussian_copula((1, 1), jm.uniform(), [[1, 2], [2, 1]]), "positive semi-definite"),
        (lambda: jm.gaussian_copula((1, 1), jm.uniform(), np.eye(3)), "expected a 2x2 matrix"),
        (lambda: jm.gaussian_copula((1, 1), jm.uniform(), [[1, 0.2], [0.3, 1]]), "symmetric"),
        (lambda: jm.independent((1, 0)), "dims[1]"),
        (lambda: jm.independent((1, 1), [jm.uniform()] * 3), "one marginal per signal coordinate"),
    ],
)
def test_invalid_parameters_raise_naming_the_parameter(make, name):
    with pytest.raises(ValueError, match=name.replace("[", r"\[").replace("]", r"\]")):
        make()
