"""Bilateral trade, CE Section 4: value families, single crossing, cutoff rules and their pivots,
Thm 2 (monotone <=> ex post IC), Lemma 4 / Thm 5 (deficit), Thm 6 (g_*), Lemma 5 (randomized
rules), Corollary 1 (Bayesian). Numbers are checked against closed forms and against
``tests/reference.py`` (scipy quadrature, independent of jaxmech) within 4 standard errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import within

import jaxmech as jm

A, B, G = 0.3, 0.4, 0.1  # multiplicative family defaults
W, K = 0.2, 0.5  # dead-zone family defaults


def _quadratic_values(s):
    """Violates single crossing: the gain s_b - s_s + 2 (s_s - 1/2)^2 rises in s_s above 3/4."""
    return jnp.stack([s[0] + 2.0 * (s[1] - 0.5) ** 2, s[1]])


# --- environment: families, validation, checks -------------------------------------------------


def test_family_parameters_are_validated():
    with pytest.raises(ValueError, match="0 <= b < 1 - a"):
        jm.multiplicative_trade_values(a=0.5, b=0.6)
    with pytest.raises(ValueError, match="0 < w < 1"):
        jm.deadzone_trade_values(w=1.5)
    with pytest.raises(ValueError, match=r"strictly increasing in agent 0's own signal \(CE Def 6\)"):
        jm.bilateral_trade(lambda s: jnp.stack([s[0] ** 2 - s[0], s[1]]))


@pytest.mark.parametrize(
    "values, expect",
    [
        (jm.linear_trade_values(0.5), dict(others_weak=True, single_crossing=True, strong_single_crossing=True)),
        (jm.linear_trade_values(-1.5), dict(others_weak=False, single_crossing=True, strong_single_crossing=True)),
        (jm.linear_trade_values(1.0), dict(others_weak=True, single_crossing=True, strong_single_crossing=False)),
        (jm.multiplicative_trade_values(), dict(others_weak=True, single_crossing=True, strong_single_crossing=True)),
        (jm.deadzone_trade_values(), dict(others_weak=True, single_crossing=True, strong_single_crossing=False)),
        (_quadratic_values, dict(others_weak=False, single_crossing=False, strong_single_crossing=False)),
    ],
)
def test_conditions(values, expect):
    got = jm.check_bilateral(values, points=65)
    assert got["own_strict"]["holds"]
    for k, v in expect.items():
        assert got[k]["holds"] is v, k
        assert (got[k]["witness"] is None) is v, k


def test_single_crossing_witness_is_a_real_violation():
    chk = jm.single_crossing(_quadratic_values, points=129)
    w = chk.witness
    s, s2 = np.array(w["s"]), np.array(w["s_prime"])
    assert s2[0] >= s[0] and s2[1] <= s[1]  # s' is better for the buyer (CE Def 9)
    gain = lambda x: float(np.diff(np.asarray(_quadratic_values(jnp.asarray(x)))[::-1])[0])  # noqa: E731
    assert gain(s) > 0 > gain(s2)


# --- cutoff rules and pivots -------------------------------------------------------------------


def _mult_pivots(sb, ss):
    gb = np.clip(((1 - A) * ss + G) / (1 - A + B * ss), 0, 1)
    gs = np.clip(((1 - A) * sb - G) / ((1 - A) - B * sb), 0, 1)
    return gb, gs


def test_bisection_pivots_match_closed_form_multiplicative(key):
    env = jm.bilateral_trade(jm.multiplicative_trade_values(A, B, G))
    mech = jm.efficient_trade(env)
    s = np.asarray(jax.random.uniform(key, (2000, 2)))
    gb, gs = _mult_pivots(s[:, 0], s[:, 1])
    kb = np.asarray(jax.vmap(lambda m: mech.kinks((), m, 0)[0, 0])(jnp.asarray(s)))
    ks = np.asarray(jax.vmap(lambda m: mech.kinks((), m, 1)[0, 0])(jnp.asarray(s)))
    np.testing.assert_allclose(kb, gb, atol=2e-6)
    # the seller's pivot matters only where the seller's report can switch trade (trade at s_sigma = 0)
    switches = (1 - A) * s[:, 0] - G > 0
    np.testing.assert_allclose(ks[switches], gs[switches], atol=2e-6)
    # generalized VCG payments (CE eqs. (5)-(6)) in trading states
    t = np.asarray(jax.vmap(lambda m: mech.pay((), m))(jnp.asarray(s)))
    trade = np.asarray(jax.vmap(lambda m: mech.decide((), m))(jnp.asarray(s))) > 0.5
    vb = gb + A * s[:, 1] + B * gb * s[:, 1]
    vs = G + gs + A * s[:, 0]
    np.testing.assert_allclose(t[trade, 0], vb[trade], atol=1e-5)
    np.testing.assert_allclose(t[trade, 1], -vs[trade], atol=1e-5)
    np.testing.assert_allclose(t[~trade], 0.0, atol=1e-6)


def test_deficit_minimizing_cutoff_deadzone_closed_form():
    x, g = jm.deficit_minimizing_cutoff(jm.deadzone_trade_values(W, K), points=513)
    np.testing.assert_allclose(g, np.minimum(1.0, x + W), atol=1e-5)
    env = jm.bilateral_trade(jm.deadzone_trade_values(W, K))
    mech = jm.deficit_minimizing(env)
    for ss in (0.0, 0.3, 0.79, 0.95):
        m = jnp.array([0.5, ss], jnp.float32)
        assert float(mech.kinks((), m, 0)[0, 0]) == pytest.approx(min(1.0, ss + W), abs=1e-5)
    with pytest.raises(ValueError, match="single crossing"):
        jm.deficit_minimizing_cutoff(_quadratic_values, points=257)


def test_menu_agrees_with_decide_and_pay(key):
    env = jm.bilateral_trade(jm.deadzone_trade_values(W, K))
    s = jax.random.uniform(key, (64, 2))
    x = jax.random.uniform(jax.random.fold_in(key, 1), (64, 1))
    for mech in (jm.generalized_vcg(env), jm.randomized_ramp(env, W, cells=256), jm.deficit_minimizing(env)):

        @jax.jit
        def both(s, x, mech=mech):
            out = []
            for i in range(2):
                q, t = jax.vmap(lambda m, xi, i=i: jm.agent_menu(mech, env.dims, (), m, i)(xi))(s, x)
                full = jax.vmap(lambda m, xi, i=i: jm.replace_signal(m, env.dims, i, xi))(s, x)
                out.append(
                    (
                        q,
                        t,
                        jax.vmap(lambda m: mech.decide((), m))(full),
                        jax.vmap(lambda m, i=i: mech.pay((), m)[i])(full),
                    )
                )
            return out

        for q, t, q_full, t_full in both(s, x):
            np.testing.assert_allclose(q, q_full, atol=1e-6)
            np.testing.assert_allclose(t, t_full, atol=1e-5)


def test_envelope_payments_reduce_to_pivot_payments(key):
    """A cutoff rule's envelope payments are its generalized VCG payments, up to one cell of V."""
    env = jm.bilateral_trade(jm.multiplicative_trade_values(A, B, G))
    s = jax.random.uniform(key, (2000, 2))
    cells = 2048
    t_env = jax.jit(jax.vmap(lambda m: jm.envelope_payments(env, jm.efficient_rule(env), cells=cells).pay((), m)))(s)
    t_vcg = jax.jit(jax.vmap(lambda m: jm.efficient_trade(env).pay((), m)))(s)
    slope = 1 + A + B  # max |dV_i / ds_i| on [0, 1]^2
    assert float(jnp.max(jnp.abs(t_env - t_vcg))) <= slope / cells


# --- results --------------------------------------------------------------------------------


def _audit(env, mech, prior=None, n=16_384, seed=0, misreports=jm.Misreports(grid=32, random=4)):
    prior = prior or jm.independent(env.dims)
    return jm.audit(
        env, mech, prior, key=jax.random.PRNGKey(seed), n_profiles=n, misreports=misreports,
        options=jm.StreamOptions(block_size=2048, chunk_size=1 << 14),
    ).report  # fmt: skip


def test_thm2_non_monotone_rule_has_regret_with_a_replayable_witness():
    env = jm.bilateral_trade(jm.linear_trade_values(0.5))
    mech = jm.band_trade(env, 0.3)
    rep = _audit(env, mech, n=8192)
    r = rep["regret"][0]
    assert r["p_above_tol"]["p"] > 0.1 and r["max"] > 0.5
    s = jnp.asarray(r["worst_profile"], jnp.float32)
    gain = jm.regret(env, mech, (), s, jnp.asarray(r["worst_misreport"], jnp.float32), 0)
    assert float(gain) == pytest.approx(r["max"], rel=1e-5)
    # the buyer's best deviation is downward, into the band (a high type loses the trade)
    assert r["worst_misreport"][0] < r["worst_profile"][0]
    rep = _audit(env, jm.efficient_trade(env), n=4096, misreports=jm.Misreports(grid=16, random=2))
    assert max(x["max"] for x in rep["regret"]) <= rep["tol"]  # the monotone control (the ramp: test_trade_configs)


@pytest.mark.parametrize("prior_name", ["uniform", "copula-0.5", "beta"])
def test_thm5_deficit_multiplicative_matches_quadrature(prior_name):
    import reference as ref

    env = jm.bilateral_trade(jm.multiplicative_trade_values(A, B, G))
    priors_ = {
        "uniform": (jm.independent((1, 1)), ref.uniform()),
        "copula+0.5": (jm.gaussian_copula((1, 1), jm.uniform(), jm.equicorrelation(2, 0.5)), ref.gaussian_copula(0.5)),
        "copula-0.5": (
            jm.gaussian_copula((1, 1), jm.uniform(), jm.equicorrelation(2, -0.5)),
            ref.gaussian_copula(-0.5),
        ),
        "beta": (jm.independent((1, 1), (jm.beta(2, 3), jm.beta(3, 2))), ref.beta(2, 3, 3, 2)),
    }
    prior, rprior = priors_[prior_name]
    rep = _audit(env, jm.efficient_trade(env), prior, n=32_768, misreports=jm.Misreports(grid=8, random=2))
    d = rep["deficit"]
    assert d["min"] >= -rep["tol"]  # Lemma 4: non-negative in every state
    assert d["ci95"][0] > 0  # Thm 5: positive in expectation
    assert within(d["mean"], ref.mult_expected_deficit(rprior, A, B, G), d["se"])
    t = rep["outcomes"]["trade"]
    assert within(t["p"], ref.mult_trade_prob(rprior, A, B, G), t["se"])


@pytest.mark.parametrize("a", [-2.0, 0.9])
def test_sec44_deficit_curve_ends(a):
    env = jm.bilateral_trade(jm.linear_trade_values(a))
    rep = _audit(env, jm.generalized_vcg(env, pivot=jm.linear_trade_pivot(a)), n=32_768)
    d = rep["deficit"]
    assert within(d["mean"], jm.linear_uniform_deficit(a), d["se"])
    if a < -1:
        assert d["max"] <= rep["tol"]  # a surplus in every trading state


def test_thm6_g_star_minimizes_the_deficit_state_by_state():
    import reference as ref

    env = jm.bilateral_trade(jm.deadzone_trade_values(W, K))
    others = [jm.shifted_cutoff(env, c) for c in (0.1, 0.0, -0.2)] + [jm.efficient_trade(env, tie_break="trade")]
    res = jm.compare_deficits(
        env, [jm.deficit_minimizing(env), *others], jm.independent((1, 1)), key=jax.random.PRNGKey(3),
        n_profiles=32_768, options=jm.StreamOptions(block_size=2048, chunk_size=1 << 14),
    )  # fmt: skip
    rep = res.report
    base, *rows = rep["mechanisms"]
    assert within(base["deficit"]["mean"], ref.deadzone_expected_deficit(W, ref.uniform(), W, K), base["deficit"]["se"])
    for row, c in zip(rows, (0.1, 0.0, -0.2, -0.2), strict=True):
        mb = row["minus_baseline"]
        assert mb["min"] >= -rep["tol"] and mb["p_below_minus_tol"]["count"] == 0
        assert mb["mean"] > 0
        assert within(
            row["deficit"]["mean"], ref.deadzone_expected_deficit(c, ref.uniform(), W, K), row["deficit"]["se"]
        )


def test_lemma5_deterministic_reduction_has_smaller_deficit_in_every_state():
    import reference as ref

    env = jm.bilateral_trade(jm.deadzone_trade_values(W, K))
    ramp = jm.randomized_ramp(env, W)
    res = jm.compare_deficits(
        env, [jm.lemma5_reduction(env, W), ramp], jm.independent((1, 1)), key=jax.random.PRNGKey(4),
        n_profiles=16_384, options=jm.StreamOptions(block_size=2048, chunk_size=1 << 14),
    )  # fmt: skip
    rep = res.report
    det, rnd = rep["mechanisms"]
    assert rnd["minus_baseline"]["min"] >= -rep["tol"]
    assert (
        rnd["minus_baseline"]["ci95"][0] > 0 if "ci95" in rnd["minus_baseline"] else rnd["minus_baseline"]["mean"] > 0
    )
    assert within(rnd["deficit"]["mean"], ref.ramp_expected_deficit(ref.uniform(), W, K), rnd["deficit"]["se"])
    # pointwise against the reference envelope payments
    s = np.asarray(jax.random.uniform(jax.random.PRNGKey(5), (200, 2)))
    got = np.asarray(jax.jit(jax.vmap(lambda m: -jnp.sum(ramp.pay((), m))))(jnp.asarray(s)))
    want = np.array([ref.ramp_deficit(sb, ss, W, K) for sb, ss in s])
    np.testing.assert_allclose(got, want, atol=2e-4)


def test_cor1_interim_mechanism_is_bayesian_ic_not_ex_post_ic(key):
    a = 0.5
    env = jm.bilateral_trade(jm.linear_trade_values(a))
    prior = jm.independent((1, 1))
    vcg = jm.generalized_vcg(env, pivot=jm.linear_trade_pivot(a))
    interim = jm.interim_payments(env, vcg, prior, key, inner=8192, table=513)
    m = jnp.linspace(0.0, 1.0, 9)
    t = np.asarray(jax.vmap(lambda x: interim.pay((), jnp.stack([x, x])))(m))
    np.testing.assert_allclose(t[:, 0], (1 + a) * np.asarray(m) ** 2 / 2, atol=2e-4)  # T_b(m) = (1+a) m^2 / 2
    np.testing.assert_allclose(t[:, 1], -(1 + a) * (1 - np.asarray(m) ** 2) / 2, atol=2e-4)
    bayes = jm.interim_check(env, interim, prior, jax.random.fold_in(key, 1), types=9, misreports=33, inner=4096)
    for row in bayes["agents"]:
        assert row["max_interim_regret"] <= 1e-3  # Bayesian IC (grid + midpoint error)
        assert row["min_interim_utility"] >= -1e-3  # interim IR
    rep = _audit(env, interim, n=8192)
    assert min(r["p_above_tol"]["p"] for r in rep["regret"]) > 0.5  # not ex post IC
    res = jm.compare_deficits(
        env, [vcg, interim], prior, key=jax.random.PRNGKey(6), n_profiles=32_768,
        options=jm.StreamOptions(block_size=2048, chunk_size=1 << 14),
    )
    vc, it = res.report["mechanisms"]
    assert vc["deficit"]["ci95"][0] > 0  # positive expected deficit (Lemma 4)
    assert within(it["minus_baseline"]["mean"], 0.0, it["minus_baseline"]["se"])  # same expected deficit
    assert within(it["deficit"]["mean"], jm.linear_uniform_deficit(a), it["deficit"]["se"])
