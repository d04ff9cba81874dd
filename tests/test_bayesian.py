"""The Bayesian side of CE (Props 1-2, Sec. 3.4, Thm 4, fn. 6), checked against independent computations:
scipy quadrature for conditional copula expectations and the expected-externality (dAGV) transfers, closed forms
for private values, exact enumeration and an LP (scipy.optimize.linprog) for the Cremer-McLean example."""

import functools
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_cli, run_config, within
from scipy import integrate, optimize, stats

import jaxmech as jm

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _public(a, c=1.0):
    return jm.public_good(jm.linear_public_values(a), c)


def _vcg(a, c=1.0):
    """Generalized VCG with the closed-form pivots g_i = clip(c / (1 + a) - m_j, 0, 1) (no bisection to compile)."""
    return jm.generalized_vcg(_public(a, c), pivot=lambda p, m, i: jnp.clip(c / (1 + a) - m[1 - i], 0.0, 1.0))


@functools.cache
def _agv(a):
    """dAGV for v_i = s_i + a s_j, c = 1, U[0,1]^2 (built once per module: the tables take a few seconds)."""
    return jm.expected_externality(_public(a), jm.independent((1, 1)), jax.random.PRNGKey(7), inner=2048, table=129)


def _copula_density(u, v, rho):
    z1, z2 = stats.norm.ppf(u), stats.norm.ppf(v)
    return math.exp(-(rho**2 * (z1**2 + z2**2) - 2 * rho * z1 * z2) / (2 * (1 - rho**2))) / math.sqrt(1 - rho**2)


# --------------------------------------------------------------------------
# the conditional prior


@pytest.mark.parametrize("rho, s1", [(0.5, 0.8), (-0.5, 0.0)])
def test_conditional_sampler_matches_copula_conditional(key, rho, s1):
    """E[s_2 | s_1] = Phi(rho z_1 / sqrt(2 - rho^2)), z_1 = Phi^{-1}(s_1) (uniform marginals), within 4 SE."""
    prior = jm.gaussian_copula((1, 1), jm.uniform(), jm.equicorrelation(2, rho))
    sample = jm.conditional_sampler(prior, 0)
    draws = np.asarray(jax.jit(lambda k: sample(k, jnp.asarray([s1]), 20000))(key), np.float64)
    assert np.all(draws[:, 0] == np.float32(s1))
    z1 = stats.norm.ppf(np.clip(s1, 1e-6, 1 - 1e-6))
    ref = stats.norm.cdf(rho * z1 / math.sqrt(2 - rho**2))
    x = draws[:, 1]
    assert within(x.mean(), ref, x.std(ddof=1) / math.sqrt(len(x)))


def test_conditional_sampler_beta_marginals_against_quadrature(key):
    """Beta(2, 5) marginals, rho = 0.6: E[s_2 | s_1] = E[F^{-1}(Phi(rho z_1 + sqrt(1 - rho^2) W))] by scipy quadrature."""
    rho, s1 = 0.6, 0.45
    prior = jm.gaussian_copula((1, 1), jm.beta(2.0, 5.0), jm.equicorrelation(2, rho))
    sample = jm.conditional_sampler(prior, 0)
    cond = np.asarray(jax.jit(lambda k: sample(k, s1, 8192))(key), np.float64)[:, 1]
    z1 = stats.norm.ppf(stats.beta.cdf(s1, 2.0, 5.0))
    ref = integrate.quad(
        lambda w: stats.beta.ppf(stats.norm.cdf(rho * z1 + math.sqrt(1 - rho**2) * w), 2.0, 5.0) * stats.norm.pdf(w),
        -9.0, 9.0,
    )[0]  # fmt: skip
    se = cond.std(ddof=1) / math.sqrt(len(cond))
    assert within(cond.mean(), ref, se)
    assert abs(ref - 2 / 7) > 10 * se  # the conditioning matters: not the marginal mean 2/7


# --------------------------------------------------------------------------
# dAGV: expected externality, exactly budget balanced


def test_expected_externality_private_values_is_dagv(key):
    """a = 0, c = 1, uniform: A_i(m) = -E[(s_j - 1/2) 1{m + s_j > 1}] = -m(1 - m)/2 (dAGV, closed form)."""
    mech = _agv(0.0)
    grid = np.linspace(0.0, 1.0, 9)
    prof = jnp.asarray(np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2), jnp.float32)
    t = np.asarray(jax.vmap(lambda m: mech.pay(mech.params, m))(prof), np.float64)
    f = np.asarray(jax.vmap(lambda m: mech.decide((), m))(prof), np.float64)
    m = np.asarray(prof, np.float64)
    A = -m * (1 - m) / 2
    ref = np.stack([f / 2 + A[:, 0] - A[:, 1], f / 2 + A[:, 1] - A[:, 0]], 1)
    assert np.max(np.abs(t - ref)) < 2e-3
    assert np.max(np.abs(t.sum(1) - f)) < 1e-6  # exact budget balance in every state


def _interdependent_tables(a, c=1.0):
    """Independent quadrature of T(x) (interim envelope payment) and C(x) = c P(provide | x), v_i = s_i + a s_j, U[0,1]."""
    k = c / (1 + a)

    def p_provide(x):
        return float(np.clip(1 - (k - x), 0.0, 1.0))

    def T(x):
        lo = min(max(k - x, 0.0), 1.0)
        paid = integrate.quad(lambda y: x + a * y, lo, 1.0)[0]
        return paid - integrate.quad(p_provide, 0.0, x, points=[max(0.0, k - 1)])[0] if x > 0 else paid

    return T, lambda x: c * p_provide(x)


def test_envelope_tables_against_quadrature():
    """The own-report terms A_i = T_i - C_i / 2 (interim envelope payment less the expected cost share), a = 0.5."""
    T, C = _interdependent_tables(0.5)
    xs, own = _agv(0.5).params
    for x, y in zip(xs, own, strict=True):
        for j in range(0, len(x), 16):
            assert abs(y[j] - (T(x[j]) - C(x[j]) / 2)) < 2e-3


def test_agv_bayesian_ic_not_ex_post_ic(key):
    """Interim regret 0 within 4 SE, interim utility of the lowest type = quadrature, ex post regret with a witness."""
    a = 0.5
    env = _public(a)
    prior = jm.independent((1, 1))
    mech = _agv(a)
    rep = jm.interim_audit(env, mech, prior, jax.random.fold_in(key, 1), types=5, misreports=17, inner=2048,
                                 agents=(0,))  # fmt: skip
    T, C = _interdependent_tables(a)
    A = lambda y: T(y) - C(y) / 2  # noqa: E731
    k = 1 / (1 + a)
    # U_1(0) = E[f(0, s_2) v_1(0, s_2)] - E[t_1(0, s_2)], t_1 = f / 2 + A(m_1) - A(m_2)
    u0 = integrate.quad(lambda y: a * y, k, 1.0)[0] - (C(0.0) / 2 + A(0.0) - integrate.quad(A, 0.0, 1.0, points=[k])[0])
    for r in rep["agents"]:
        assert r["max_interim_regret"] <= 4 * r["se"] + 2e-3
        assert r["min_at_type"] == 0.0 and within(r["min_interim_utility"], u0, r["se_min"], floor=1e-3)
    # ex post: agent 2 at s = (0.66, 0.01) gains by reporting 0 (the provision flips off; the payment falls)
    s1, s2 = 0.66, 0.01
    w = jm.replay(env, mech, jnp.asarray([s1, s2], jnp.float32), 1, jnp.asarray([0.0], jnp.float32))

    def u2(m):
        f = float((1 + a) * (s1 + m) > 1.0)
        return f * (s2 + a * s1) - (f / 2 + A(m) - A(s1))

    assert abs(w["gain"] - (u2(0.0) - u2(s2))) < 2e-3 and w["gain"] > 0.1


# --------------------------------------------------------------------------
# Props 1-2: ex post IC and IR => Bayesian IC and interim IR under every prior (conditional expectations)


def test_vcg_interim_under_copula_matches_quadrature(key):
    a, rho = 0.5, -0.5
    env = _public(a)
    prior = jm.gaussian_copula((1, 1), jm.uniform(), jm.equicorrelation(2, rho))
    rep = jm.interim_audit(env, _vcg(a), prior, key, types=5, misreports=9, inner=4096, agents=(1,))
    k = 1 / (1 + a)
    for r in rep["agents"]:
        assert r["max_interim_regret"] <= 4 * r["se"] + 1e-6 and r["ir_violation"] <= 4 * r["se_min"] + 1e-6
        c = r["curve"]
        for x, u, se in zip(c["types"][1:-1], c["utility"][1:-1], c["utility_se"][1:-1], strict=True):
            # u_i = f (s_i - max(0, k - s_j)) for the generalized VCG payments; s_j | s_i has density c(s_i, .)
            ref = integrate.quad(
                lambda y, x=x: (x - max(0.0, k - y)) * _copula_density(x, y, rho), max(k - x, 0.0), 1.0,
                points=[k] if 0 < k < 1 else None,
            )[0]  # fmt: skip
            assert within(u, ref, se, floor=2e-4)


# --------------------------------------------------------------------------
# CE Thm 4


def test_thm4_private_values_closed_forms(key):
    """a = 0: fees = U_dAGV(0) = -1/12, t'' = generalized VCG, expected deficit 1/6 = -sum(fees); t'' ex post IC/IR."""
    env = _public(0.0)
    prior = jm.independent((1, 1))
    bic = _agv(0.0)
    tpp, fee_mech, rep = jm.thm4_construction(
        env, bic, prior, key, types=3, inner=2048, fee_inner=32768, ex_post=_vcg(0.0)
    )
    for r in rep["agents"]:
        assert within(r["fee"], -1 / 12, r["fee_se"], floor=1e-3)
        assert abs(r["shift"]) < 1e-6 and r["max_abs_z"] < 4 and r["lowest_type_minimizes"]
    grid = jnp.linspace(0.0, 1.0, 21, dtype=jnp.float32)
    prof = jnp.stack(jnp.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)

    @jax.jit
    def checks(prof, s):
        def deficit(mech, m):
            return env.cost(mech.decide(mech.params, m)) - jnp.sum(mech.pay(mech.params, m))

        u = jax.vmap(lambda s: env.value(tpp.decide((), s), s) - tpp.pay(tpp.params, s))(prof)
        reg = jax.vmap(lambda s: jax.vmap(lambda m: jm.regret(env, tpp, tpp.params, s, m[None], 0))(grid))(prof)
        return u, reg, jax.vmap(lambda m: jnp.stack([deficit(tpp, m), deficit(fee_mech, m)]))(s)

    u, reg, d = checks(prof, prior.sample(jax.random.fold_in(key, 5), 50_000))
    assert float(jnp.min(u)) >= -1e-5  # ex post IR
    assert float(jnp.max(reg)) <= 1e-5  # ex post IC on the grid (agent 1; symmetric)
    d = np.asarray(d, np.float64)
    assert within(d[:, 0].mean(), 1 / 6, d[:, 0].std() / math.sqrt(len(d)))
    assert np.allclose(d[:, 1], -rep["fees_sum"], atol=1e-5)  # dAGV exactly balanced: the fees are the whole budget


def test_sec34_payment_anchor_as_written_is_not_ex_post_ir(key):
    """Sec. 3.4 holds t''_i(., s_low) constant; with v_i(0, s_j) = a s_j that charges the lowest type's mean value
    tau = E[f(0, s_j) a s_j] = a (1 - k^2) / 2 (k = c / (1 + a)) where it gets nothing: an ex post IR violation."""
    a = 0.5
    env = _public(a)
    prior = jm.independent((1, 1))
    text = jm.payment_anchored(env, _vcg(a), prior, key, inner=16384)
    rep = jm.ir_scan(env, text, prior.sample(jax.random.fold_in(key, 1), 20000))
    k = 1 / (1 + a)
    tau = a * (1 - k**2) / 2  # 0.1389
    se = math.sqrt(a**2 * (1 - k**3) / 3 - tau**2) / math.sqrt(16384)  # SD of a s_j 1{s_j > k}
    for r in rep["agents"]:
        assert within(r["max_violation"], tau, se) and r["at_profile"][1 - rep["agents"].index(r)] < k
    assert jm.ir_scan(env, _vcg(a), prior.sample(key, 2000))["agents"][0]["max_violation"] <= 1e-6


def test_thm4_rejects_inefficient_rule(key):
    env = _public(0.5)
    prior = jm.independent((1, 1))
    bad = _agv(0.5)._replace(decide=lambda p, m: (jnp.sum(m) > 1.5).astype(m.dtype))
    with pytest.raises(ValueError, match="efficient"):
        jm.thm4_construction(env, bad, prior, key, types=3, inner=64, fee_inner=64)


# --------------------------------------------------------------------------
# CE fn. 6: Cremer-McLean


def _cm(rho=0.5, k=3):
    prior = jm.gaussian_copula((1, 1), jm.uniform(), jm.equicorrelation(2, rho))
    types, pmf = jm.discretize_copula(prior, k)
    return jm.cremer_mclean(jm.linear_auction_values, types, pmf)


def _max_revenue_ex_post_ic_ir(fa):
    """LP over ALL payment rules for the efficient allocation: ex post IC + ex post IR, max expected revenue."""
    k = len(fa.types[0])
    nv = 2 * k * k
    idx = lambda a, b, i: (a * k + b) * 2 + i  # noqa: E731
    rows, rhs = [], []
    for a in range(k):
        for b in range(k):
            for i in range(2):
                truth = (a, b)
                v = fa.values[a, b, i]
                # IR: t_i(s) <= x_i(s) V_i(s)
                r = np.zeros(nv)
                r[idx(a, b, i)] = 1
                rows.append(r)
                rhs.append(fa.alloc[a, b, i] * v)
                for x in range(k):  # IC: x_i(s) V_i - t_i(s) >= x_i(x, s_-i) V_i - t_i(x, s_-i)
                    dev = (x, b) if i == 0 else (a, x)
                    if dev == truth:
                        continue
                    r = np.zeros(nv)
                    r[idx(*truth, i)] += 1
                    r[idx(*dev, i)] -= 1
                    rows.append(r)
                    rhs.append((fa.alloc[truth][i] - fa.alloc[dev][i]) * v)
    c = -np.array([fa.pmf[a, b] for a in range(k) for b in range(k) for _ in range(2)])
    res = optimize.linprog(c, A_ub=np.array(rows), b_ub=np.array(rhs), bounds=(None, None), method="highs")
    assert res.status == 0
    return -res.fun


def test_cremer_mclean_exact_and_lp():
    fa = _cm()
    rep = jm.finite_report(fa)
    assert max(rep["regret_max"]) <= 1e-12  # ex post IC: the lotteries depend on the others' reports only
    assert rep["interim_utility_max_abs"] <= 1e-12  # interim IR, binding for every type
    assert abs(rep["expected_revenue"] - rep["expected_surplus"]) <= 1e-12  # full extraction
    assert min(r["min_utility"] for r in rep["ir"]) < -0.1  # NOT ex post IR
    # independent: interim utility of each type by a plain loop over the pmf
    k = 3
    for a in range(k):
        u = sum(fa.pmf[a, b] * (fa.alloc[a, b, 0] * fa.values[a, b, 0] - fa.pay[a, b, 0]) for b in range(k))
        assert abs(u) < 1e-12
    # an LP over every ex post IC + IR payment rule: its best revenue is the pivot revenue, below the surplus
    best = _max_revenue_ex_post_ic_ir(fa)
    assert abs(best - rep["base_expected_revenue"]) < 1e-7
    assert best < rep["expected_surplus"] - 0.05


def test_cremer_mclean_needs_correlation():
    prior = jm.independent((1, 1))
    types, pmf = jm.discretize_copula(prior, 3)
    with pytest.raises(ValueError, match="rank 1 < 3"):
        jm.cremer_mclean(jm.linear_auction_values, types, pmf)


@pytest.mark.slow
def test_fn6_config_end_to_end(tmp_path, capsys):
    m = run_config(CONFIGS / "ce_fn6_cremer_mclean.toml", tmp_path / "fn6", "audit.profiles=20000")
    assert m["experiment"] == "cremer_mclean"
    c = m["cremer_mclean"]
    s = c["sampled"]["revenue"]
    assert within(s["mean"], c["expected_surplus"], s["se"])
    assert c["ir"][0]["min_utility"] < 0
    argv = ["run", CONFIGS / "ce_fn6_cremer_mclean.toml", "--out", tmp_path / "x", "--set", "prior.rho=0.0"]
    assert run_cli(argv) == 2 and "config error" in (err := capsys.readouterr().err) and "rank" in err


# --------------------------------------------------------------------------
# one compiled interim program per agent for every prior (the prior's numbers are its arguments)

_PRIORS = {
    "uniform": jm.independent((1, 1)),
    "beta": jm.independent((1, 1), jm.beta(2.0, 5.0)),
    "copula beta": jm.gaussian_copula((1, 1), jm.beta(0.5, 0.5), jm.equicorrelation(2, 0.5)),
    "copula uniform": jm.gaussian_copula((1, 1), jm.uniform(), jm.equicorrelation(2, -0.5)),
}


@pytest.mark.parametrize("name", ["uniform", "copula beta", "copula uniform"])
def test_conditional_arrays_sample_what_the_sampler_samples(key, name):
    """Independent uniform and copula priors: the arrays-driven sampler draws the closure sampler's numbers."""
    prior, s_i = _PRIORS[name], 0.3
    want = jm.conditional_sampler(prior, 1)(key, s_i, 512)
    cp = jm.conditional_arrays(prior, 1)
    got = jax.jit(lambda cp, k: jm.sample_conditional(cp, (1, 1), 1, k, s_i, 512))(cp, key)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_conditional_arrays_independent_beta_by_quantile(key):
    """Independent Beta marginal: drawn by its quantile (not jax.random.beta): Beta(2, 5) by a KS test."""
    got = np.asarray(jm.sample_conditional(jm.conditional_arrays(_PRIORS["beta"], 0), (1, 1), 0, key, 0.7, 4096))
    assert np.all(got[:, 0] == np.float32(0.7))
    assert stats.kstest(got[:, 1], stats.beta(2.0, 5.0).cdf).pvalue > 1e-3
    assert stats.kstest(got[:, 1], stats.beta(2.0, 4.0).cdf).pvalue < 1e-3  # a wrong marginal is caught


def test_interim_kernel_shared_across_priors(key):
    """Priors of every structure share each agent's compiled program (no new trace) and give the numbers of a
    fresh program per prior (the per-case path)."""
    traces = []
    vcg = _vcg(0.5)

    def decide(p, m):
        traces.append(1)  # runs once per trace, never per evaluation
        return vcg.decide(p, m)

    mech = vcg._replace(decide=decide)
    sizes = dict(types=3, misreports=5, inner=256, agents=(1,))
    kernels: dict = {}
    first = jm.interim_audit(_public(0.5), mech, _PRIORS["uniform"], key, kernels=kernels, **sizes)
    n = len(traces)
    assert n > 0 and len(kernels) == 1
    shared = {k: jm.interim_audit(_public(0.5), mech, _PRIORS[k], key, kernels=kernels, **sizes) for k in _PRIORS}
    assert len(traces) == n and len(kernels) == 1  # three more priors: nothing traced again
    assert shared["uniform"] == first
    # the structure farthest from the first (copula, Beta marginals) through a program of its own: the same numbers
    assert shared["copula beta"] == jm.interim_audit(_public(0.5), mech, _PRIORS["copula beta"], key, **sizes)
    assert len(traces) > n
    assert shared["beta"] != shared["uniform"] and shared["copula beta"] != shared["copula uniform"]


# --------------------------------------------------------------------------
# configs end to end (engine compiles: slow)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ce_prop12_ex_post", "ce_agv_public_good", "ce_thm4_public_good"])
def test_configs_end_to_end(tmp_path, name):
    small = ("audit.profiles=8192", "audit.block_size=4096", "audit.chunk_size=8192", "audit.misreports.grid=16",
             "experiment.types=5", "experiment.misreports=17", "experiment.inner=2048")  # fmt: skip
    if name != "ce_prop12_ex_post":
        small += ("mechanism.inner=4096",)
    m = run_config(CONFIGS / f"{name}.toml", tmp_path / name, *small)
    if name == "ce_thm4_public_good":
        assert max(m["ex_post_audit"]["regret_max"]) <= m["ex_post_audit"]["tol"]
        d = m["budget"]["ex_post_minus_fees"]
        assert abs(d["mean"]) <= 4 * d["se"]
        return
    for r in m["cases"]:
        for a in r["interim"]["agents"]:
            assert a["max_interim_regret"] <= 4 * a["se"] + 2e-3
        if name == "ce_agv_public_good":
            assert r["witness"]["gain"] > 0.1 and abs(r["witness"]["gain"] - r["witness"]["audit_regret"]) < 1e-4
        else:
            assert max(r["ex_post"]["regret_max"]) <= r["ex_post"]["tol"]
