"""The report's independent references (experiments/_reference.py) against a second computation each (scipy
quadrature in tests/reference.py, brute-force grids, Monte Carlo), and claim rows that fail when the measured
number is wrong."""

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize, sparse

import tests.reference as quad

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import _reference as ref_  # noqa: E402
import chung_ely  # noqa: E402
import design as design_rows  # noqa: E402

UNIFORM = {"marginal": {"kind": "uniform", "lo": 0.0, "hi": 1.0, "a": 1.0, "b": 1.0}, "marginals": None,
           "correlation": None, "rho": None}  # fmt: skip
BETA = {**UNIFORM, "marginals": [{"kind": "beta", "lo": 0.0, "hi": 1.0, "a": 2.0, "b": 3.0},
                                 {"kind": "beta", "lo": 0.0, "hi": 1.0, "a": 3.0, "b": 2.0}]}  # fmt: skip
LINEAR = {"values": "linear", "a": 0.5, "b": 0.4, "gamma": 0.1, "w": 0.2, "k": 0.5}
MULT = {**LINEAR, "values": "multiplicative", "a": 0.3}
DEADZONE = {**LINEAR, "values": "deadzone"}


@pytest.mark.parametrize(
    "env, prior, scipy_value",
    [
        (LINEAR, UNIFORM, lambda: quad.linear_expected_deficit(0.5, quad.uniform())),
        (LINEAR, {**UNIFORM, "rho": -0.5}, lambda: quad.linear_expected_deficit(0.5, quad.gaussian_copula(-0.5))),
        (MULT, BETA, lambda: quad.mult_expected_deficit(quad.beta(2, 3, 3, 2), 0.3, 0.4, 0.1)),
        (MULT, {**UNIFORM, "rho": 0.5}, lambda: quad.mult_expected_deficit(quad.gaussian_copula(0.5), 0.3, 0.4, 0.1)),
        (DEADZONE, UNIFORM, lambda: quad.deadzone_expected_deficit(0.2, quad.uniform(), 0.2, 0.5)),
    ],
)
def test_thm5_reference_matches_scipy_quadrature(env, prior, scipy_value):
    """The midpoint rule in copula coordinates = iterated Gauss-Kronrod in the latent space, within its own bound."""
    value, err = ref_.expect(prior, lambda sb, ss: ref_.trade_deficit(env, sb, ss))
    assert err < 1e-4
    assert abs(value - scipy_value()) <= max(3 * err, 2e-6)


@pytest.mark.parametrize("a, c", [(0.1, 0.6), (0.3, 1.0), (0.5, 1.0), (0.5, 1.5), (0.7, 1.0), (0.9, 1.5)])
def test_thm8_closed_forms_match_brute_force(a, c):
    p, top = ref_.grid_public_good(2, a, c, 2000)
    assert abs(ref_.thm8_p_deficit_two(a, c) - p) < 5e-4  # the grid misses a strip of width 1/4000
    assert ref_.thm8_sup_deficit(2, a, c) - 1e-3 < top <= ref_.thm8_sup_deficit(2, a, c)


def test_thm8_supremum_n3_and_sampled_maximum_bound():
    _, top = ref_.grid_public_good(3, 0.5, 1.5, 200)
    assert 0.37 < top <= ref_.thm8_sup_deficit(3, 0.5, 1.5) == 0.375
    # near the supremum P(deficit > sup - delta) = delta^2 / (2 a^2 (1 - a)^2) for n = 2: the quantile agrees
    a, n_samples = 0.5, 10_000
    delta = a * (1 - a) * np.sqrt(2 * 13.8 / n_samples)
    q = ref_.public_good_quantile(2, a, 1.0, 1 - 13.8 / n_samples, 2000)
    assert abs(q - (ref_.thm8_sup_deficit(2, a, 1.0) - delta)) < 2e-3


def test_public_good_deficit_is_the_vcg_deficit_by_hand():
    # s = (0.9, 0.9), a = 0.5, c = 1: k = 2/3, both pivots at 0, t_i = a s_-i = 0.45: deficit 1 - 0.9 = 0.1
    assert ref_.public_good_deficit(0.5, 1.0, np.array([0.9, 0.9])) == pytest.approx(0.1)
    # s = (0.5, 0.5): pivots 1/6 each, t_i = 1/6 + 0.25: deficit 1 - 5/6
    assert ref_.public_good_deficit(0.5, 1.0, np.array([0.5, 0.5])) == pytest.approx(1 / 6)


def _thm8_row(mean_p, count, deficit_max, n=2, a=0.5, c=1.0):
    env = {"n": n, "a": a, "cost": c}
    return {"case": "x", "settings": {"environment": env}, "deficit": {"max": deficit_max},
            "p_deficit_above_tol": {"p": mean_p, "se": 0.0047, "count": round(mean_p * count)}}  # fmt: skip


def test_thm8_rows_fail_on_wrong_numbers():
    good = chung_ely._thm8_increasing(_thm8_row(0.6655, 10_000, 0.3295))
    assert [r.status for r in good] == ["PASS", "PASS"]
    # a maximum above the supremum, one far below it (too few states near (k, k)), a wrong probability
    assert chung_ely._thm8_increasing(_thm8_row(0.6655, 10_000, 0.36))[0].status == "FAIL"
    assert chung_ely._thm8_increasing(_thm8_row(0.6655, 10_000, 0.30))[0].status == "FAIL"
    assert chung_ely._thm8_increasing(_thm8_row(0.70, 10_000, 0.3295))[1].status == "FAIL"


def test_thm5_rows_fail_on_a_wrong_mean():
    settings = {"environment": MULT, "prior": BETA}
    row = {"case": "x", "settings": settings, "deficit": {"mean": 0.0807, "se": 0.0018, "min": 0.0, "ci95": [0.077, 0.084]}}
    assert [r.status for r in chung_ely.thm5({"sweep": {"rows": [row]}})] == ["PASS", "PASS"]
    row["deficit"]["mean"] = 0.0807 + 5 * 0.0018
    assert [r.status for r in chung_ely.thm5({"sweep": {"rows": [row]}})] == ["PASS", "FAIL"]
    row["settings"] = {"environment": {**MULT, "values": "quadratic"}, "prior": BETA}  # no reference: never a PASS
    assert chung_ely.thm5({"sweep": {"rows": [row]}})[1].status == "FAIL"


def test_threshold_welfare_matches_monte_carlo():
    rng = np.random.default_rng(0)
    s = rng.random((2_000_000, 2))
    for a, vbar in ((0.0, 0.4), (0.3, 0.5), (0.6, 0.35)):
        v1, v2 = s[:, 0] + a * s[:, 1], s[:, 1] + a * s[:, 0]
        w = (v1 + v2 - 1.0) * ((v1 >= vbar) & (v2 >= 1.0 - vbar))
        assert abs(ref_.threshold_welfare(a, 1.0, vbar) - w.mean()) <= 4 * w.std() / np.sqrt(len(w))
        fb = np.maximum((1 + a) * s.sum(1) - 1.0, 0.0)
        assert abs(ref_.first_best_welfare(a, 1.0) - fb.mean()) <= 4 * fb.std() / np.sqrt(len(fb))


def test_second_best_closed_forms():
    # a = 0 (private values): vbar = (1/2, 1/2), welfare int_{1/2}^1 int_{1/2}^1 (s_1 + s_2 - 1) = 1/8; first best 1/6
    w, vbar = ref_.second_best(0.0, 1.0)
    assert w == pytest.approx(0.125, abs=1e-9) and vbar == pytest.approx(0.5, abs=1e-6)
    # a = 1 (pure common values): the threshold rule on the budget line is the efficient rule
    assert ref_.second_best(1.0, 1.0)[0] == pytest.approx(ref_.first_best_welfare(1.0, 1.0), abs=1e-9)


def _sec52_rows(thresholds=(0.5, 0.5), scale=1.0):
    rows = []
    for a in (0.0, 0.5, 1.0):
        env = {"a": a, "cost": 1.0, "n": 2}
        fb, sb = ref_.first_best_welfare(a, 1.0), ref_.second_best(a, 1.0)[0]
        for kind, w in (("generalized_vcg", fb), ("threshold_contribution", sb * scale)):
            rows.append({"case": f"{kind} {a}", "welfare": {"mean": w, "se": 0.002}, "deficit": {"max": 0.0},
                         "regret_max": 0.0, "ir_violation_max": 0.0,
                         "settings": {"environment": env, "mechanism": {"kind": kind, "thresholds": list(thresholds)}}})  # fmt: skip
    return {"sweep": {"rows": rows}}


def test_sec52_rows_pass_on_the_truth_and_fail_otherwise():
    assert all(r.status == "PASS" for r in chung_ely.sec52(_sec52_rows()))
    # a rule off the budget line's optimum, or a second best that is not what the rule achieves
    assert any(r.status == "FAIL" for r in chung_ely.sec52(_sec52_rows(thresholds=(0.4, 0.6))))
    assert any(r.status == "FAIL" for r in chung_ely.sec52(_sec52_rows(scale=0.9)))


def _fn3_metrics(price_shift=0.0, a0=0.0, revenue=0.5):
    rng = np.random.default_rng(1)
    x = rng.random((64, 2))
    stat = lambda m: {"mean": m, "se": 0.005, "ci95": [m - 0.01, m + 0.01]}  # noqa: E731
    mech = {"mechanism": "pivotal", "kind": "pivotal", "audit": {"max": [0.0, 0.0], "tol": 1e-5},
            "admissible": {"violations": 0, "second_surplus_max": 0.0}, "profiles": 64,
            "outcomes": {"a0": stat(a0), "a1": stat(0.5), "a2": stat(0.5 - a0)},
            "weak_efficiency": {"share_of_sales": {"mean": 1.0}, "worst_shortfall": 0.0},
            "revenue": stat(revenue), "welfare": stat(2.5 / 3), "first_best_welfare": stat(2.5 / 3)}  # fmt: skip
    assumptions = {"profiles": 64, "tol": 1e-5, "assumption1a": {"worst": [0.0], "holds": True},
                   "assumption2": {"worst": [0.0], "holds": True},
                   "assumption3": {"share": [0.5, 0.5], "se": [0.01, 0.01], "holds": True}}  # fmt: skip
    return {"environment": "single_object(linear, n=2, a=0.5)", "dims": [1, 1], "assumptions": assumptions,
            "mechanisms": [mech], "price_sample": {"signals": x.tolist(), "prices": (1.5 * x[:, ::-1] + price_shift).tolist()}}  # fmt: skip


def test_b_fn3_rows_pass_on_the_closed_form_and_fail_otherwise():
    import bikhchandani

    assert all(r.status in ("PASS", "MEASURE") for r in bikhchandani.fn3_claims(_fn3_metrics()))
    for bad in (dict(price_shift=1e-3), dict(a0=0.01), dict(revenue=0.45)):
        assert any(r.status == "FAIL" for r in bikhchandani.fn3_claims(_fn3_metrics(**bad))), bad


def test_jmm_shifted_gap_closed_form_matches_the_library_and_its_formula():
    import jax

    import jaxmech as jm

    env = jm.example1()
    grids = jm.signal_grids(env, 33)
    s = jm.independent(env.dims).sample(jax.random.PRNGKey(3), 24)
    for shift in (-0.3, 0.0, 0.2):
        score = lambda m, b=shift: m[0] - m[2] - b  # noqa: E731  (V_1 - V_2 = p_1 - p_2 in Example 1)
        lib = np.maximum(*(np.asarray(jax.vmap(lambda x, i=i, f=score: jm.two_outcome_gap(env, f, x, i, grids[i]))(s))
                           for i in range(2)))  # fmt: skip
        ref = np.array([ref_.jmm_shifted_gap(np.asarray(x), shift, 33) for x in s])
        np.testing.assert_allclose(lib, ref, atol=1e-6)
        # where the rule is not constant at either buyer's opponent, the gap is (c_j - 1/32) / 2
        x = np.asarray(s)
        inner = (x[:, 2] + shift > 1 / 32) & (x[:, 2] + shift < 1 - 1 / 32) & (x[:, 0] - shift > 1 / 32) & (x[:, 0] - shift < 1 - 1 / 32)
        np.testing.assert_allclose(ref[inner], (np.maximum(x[inner, 1], x[inner, 3]) - 1 / 32) / 2, atol=1e-6)


def test_convex_family_violates_single_crossing_and_the_payment_bound_is_tight():
    import jaxmech as jm

    got = jm.check_bilateral(jm.convex_trade_values(1.5), points=65)
    assert got["own_strict"]["holds"] and got["others_weak"]["holds"]  # values increase in every signal
    assert not got["single_crossing"]["holds"] and got["single_crossing"]["witness"] is not None
    assert jm.check_bilateral(jm.convex_trade_values(0.4), points=65)["single_crossing"]["holds"]  # a <= 1/2: holds
    # at s_beta = x the efficient rule makes the seller trade iff y < y_1 or y > y_2; brute force over the price
    # difference D (trade pays D more than no trade): worst regret max over seller types of the loss from obeying
    a, x = 1.5, 0.1
    y = np.linspace(0, 1, 20001)
    trade = y - a * y**2 < x  # gain s_beta - y + a y^2 > 0  <=>  y - a y^2 < x
    best = min(np.max(np.where(trade, np.maximum(y - d, 0), np.maximum(d - y, 0))) for d in np.linspace(0, 1, 2001))
    y1 = (1 - np.sqrt(1 - 4 * a * x)) / (2 * a)
    assert abs(best - (1 - y1) / 2) < 1e-3


def _single_crossing_row():
    """Measured numbers of a quick ce_single_crossing_violated run (convex values, a = 1.5)."""
    return {"case": "x", "settings": {"environment": {"values": "convex", "a": 1.5}},
            "conditions": {"single_crossing": False, "strong_single_crossing": False},
            "condition_witnesses": {"single_crossing": {"s": [0.0, 0.671875], "s_prime": [0.0, 0.3359375]},
                                    "strong_single_crossing": {"tie_profile": [0.0390625, 0.625], "d_gain_d_s_beta": 1.0,
                                                               "d_gain_d_s_sigma": 0.875}},
            "regret": [{}, {"max": 0.9, "worst_profile": [0.1, 0.99], "worst_misreport": [0.3]}]}  # fmt: skip


def test_single_crossing_rows_fail_without_the_structure():
    row = _single_crossing_row()
    rows = chung_ely.single_crossing_violated({"sweep": {"rows": [row]}})
    assert [(r.source, r.status) for r in rows] == [("CE Def 9", "PASS"), ("CE Def 7", "PASS"), ("CE Sec 4", "PASS")]
    row["regret"][1]["max"] = 0.2  # below the least worst regret of any payments at s_beta = 0.1: impossible
    assert chung_ely.single_crossing_violated({"sweep": {"rows": [row]}})[2].status == "FAIL"
    row["condition_witnesses"]["single_crossing"]["s_prime"] = [0.0, 0.9]  # not a violation
    assert chung_ely.single_crossing_violated({"sweep": {"rows": [row]}})[0].status == "FAIL"


@pytest.mark.parametrize(
    "change",
    [
        {"tie_profile": [0.0390625, 0.5]},  # not a tie: gain 0.039 - 0.5 + 0.375 = -0.086
        {"tie_profile": [0.0390625, 0.0390625]},  # a tie where Def 7 holds (slope -1 + 2 a s = -0.88 < 0)
        {"d_gain_d_s_sigma": 0.75},  # the library's slope off the closed form
        {"d_gain_d_s_beta": 0.5},
    ],
)
def test_def7_row_replays_the_witness_tie_and_fails_on_a_wrong_one(change):
    """CE Def 7 fails for v_beta = s_beta + a s_sigma^2, v_sigma = s_sigma: at the tie (5/128, 5/8) the gain is 0 and
    its slope in s_sigma is -1 + 2 a s_sigma = 0.875 > 0. The row fails on a non-tie, on a tie where the slopes have
    Def 7's signs, on slopes that are not the closed form's, and when the library says the condition holds."""
    row = _single_crossing_row()
    assert chung_ely._def7_violated(row).status == "PASS"
    row["condition_witnesses"]["strong_single_crossing"].update(change)
    if "tie_profile" in change and change["tie_profile"][1] < 0.1:  # a true tie: s_beta = s_sigma - a s_sigma^2
        ss = change["tie_profile"][1]
        change["tie_profile"][0] = ss - 1.5 * ss**2
        row["condition_witnesses"]["strong_single_crossing"]["d_gain_d_s_sigma"] = -1 + 3.0 * ss
    assert chung_ely._def7_violated(row).status == "FAIL"
    row = _single_crossing_row()
    row["conditions"]["strong_single_crossing"] = True
    assert chung_ely._def7_violated(row).status == "FAIL"


@pytest.mark.parametrize("env", [{"values": "convex", "a": 1.5}, {**LINEAR, "a": 0.3}, MULT])
def test_trade_gain_slopes_match_central_differences(env):
    """``_reference.trade_gain_slopes`` against the value models written out and differentiated numerically."""
    a, b, g = env["a"], env.get("b", 0.0), env.get("gamma", 0.0)
    values = {"convex": lambda x, y: (x + a * y**2, y), "linear": lambda x, y: (x + a * y, y + a * x),
              "multiplicative": lambda x, y: (x + a * y + b * x * y, g + y + a * x)}[env["values"]]  # fmt: skip

    def gain(x, y):
        vb, vs = values(x, y)
        return vb - vs

    h = 1e-6
    for x, y in ((0.1, 0.2), (0.7, 0.4), (0.039, 0.625)):
        got = ref_.trade_gain_slopes(env, x, y)
        want = (gain(x, y), (gain(x + h, y) - gain(x - h, y)) / (2 * h), (gain(x, y + h) - gain(x, y - h)) / (2 * h))
        np.testing.assert_allclose(got, want, atol=1e-8)


def _sec43(deficits, vcg):
    ref = [{"signals": n, "signal_step": 1 / (n - 1), "mean_deficit": d, "vcg_mean_deficit": v}
           for n, d, v in zip((21, 41), deficits, vcg, strict=True)]  # fmt: skip
    return {"environment": "bilateral_trade(a=0.5)", "refinement": ref}


def test_sec43_refinement_row_needs_convergence_to_the_closed_form():
    assert chung_ely._sec43_refinement(_sec43((0.2248, 0.2364), (0.2619, 0.2561)))[0].status == "PASS"
    # converging, but to the wrong limit (extrapolates to 0.238), or not converging at all
    assert chung_ely._sec43_refinement(_sec43((0.2248, 0.2314), (0.2619, 0.2561)))[0].status == "FAIL"
    assert chung_ely._sec43_refinement(_sec43((0.2248, 0.2250), (0.2619, 0.2618)))[0].status == "FAIL"


def test_example1_null_outcomes_against_brute_force():
    g = np.linspace(0, 1, 401)
    pj, cj = np.meshgrid(g, g, indexing="ij")
    for p in (0.0, 0.5, 1.0):
        for c in (0.0, 0.5, 1.0):
            a_i = p - pj > cj**2 - c * cj
            a_j = pj - p > c * c - c * cj
            a_0 = ~a_i & ~a_j
            # a set of positive measure covers a fraction of the grid well above the boundary's 1/400
            null = {k for k, x in enumerate((a_0, a_i, a_j)) if x.mean() < 5e-3}
            assert null == ref_.example1_null_outcomes(p, c), (p, c)


def test_cor1_interim_regret_quadrature_against_monte_carlo():
    a, c = 0.5, 1.5
    # the uniform prior the payments were computed for: Bayesian IC (CE Cor. 1)
    assert max(ref_.cor1_interim_regret(a, (1.0, 1.0, 0.0), (1.0, 1.0, 0.0), 17, 33)) < 1e-12
    # a concentrated prior: the buyer's regret by plain Monte Carlo over s_sigma, on the same type and report grids
    rng = np.random.default_rng(0)
    law_b, law_s = (6.25, 13.75), (13.75, 6.25)
    ss = rng.beta(*law_s, 400_000)
    best = 0.0
    for t in np.linspace(0, 1, 17):
        u = lambda m, t=t: np.mean((ss < m) * (t + a * ss)) - c * m * m / 2  # noqa: E731
        best = max(best, max(u(m) for m in np.linspace(0, 1, 33)) - u(t))
    buyer, _ = ref_.cor1_interim_regret(a, (*law_b, 0.0), (*law_s, 0.0), 17, 33)
    assert abs(buyer - best) < 3e-3


def test_brute_force_price_gives_the_closed_form_on_example1():
    rng = np.random.default_rng(2)
    for s in rng.random((4, 4)):
        for i in (0, 1):
            j = 1 - i
            want = s[2 * j] + s[2 * j + 1]  # t*_i = p_j + c_j (tests/test_pivotal.py derives it)
            got = ref_.brute_force_price(ref_.example1_values_np(2), s, i, j, [2, 2])
            assert abs(got - want) < 5e-3


# B Sec. 4: the exact class maximizer of the price reference, against brute force

B_FAMILIES = [  # (recorded settings.environment, dims)
    ({"kind": "example1", "n": 2}, [2, 2]),
    ({"kind": "example1", "n": 3}, [2, 2, 2]),
    ({"kind": "private_common", "dims": [2, 3], "weights": [1.0, 0.4], "own": None}, [2, 3]),
    ({"kind": "private_common", "dims": [1, 2, 3], "weights": [1.0, 0.6, 0.3], "own": None}, [1, 2, 3]),
    ({"kind": "private_common", "dims": [2, 2], "weights": [0.0, 1.0], "own": 0.5}, [2, 2]),
]


def _class_points(values, s, i, dims, lam, points, solve):
    """Buyer i's class S_i(lam, s_-i) by brute force, from ``values`` alone: a grid over all of his coordinates but
    one, ``solve`` (in which V_i strictly rises: ``c_i`` in the private + common family, ``p_i`` in Example 1), solved
    from ``V_i = V_i(lam 1)`` by bisection; points without a solution in [0, 1] are dropped."""
    start, d = sum(dims[:i]), dims[i]
    solve = start + (solve if solve >= 0 else d + solve)
    free = [k for k in range(start, start + d) if k != solve]
    y = np.linspace(0.0, 1.0, points)
    grid = np.zeros((1, 0))  # a 1-d buyer: the class is one point
    if free:
        grid = np.stack(np.meshgrid(*([y] * len(free)), indexing="ij"), -1).reshape(-1, len(free))
    prof = np.repeat(np.asarray(s, float)[None], len(grid), 0)
    prof[:, free] = grid
    diag = np.array(s, float)
    diag[start : start + d] = lam
    level = values(diag[None])[0, i]

    def vi(x):
        q = prof.copy()
        q[:, solve] = x
        return values(q)[:, i]

    lo, hi = np.zeros(len(grid)), np.ones(len(grid))
    ok = (vi(lo) <= level + 1e-12) & (vi(hi) >= level - 1e-12)
    for _ in range(60):
        mid = (lo + hi) / 2
        up = vi(mid) > level
        lo, hi = np.where(up, lo, mid), np.where(up, mid, hi)
    prof[:, solve] = lo
    return prof[ok]


@pytest.mark.parametrize("env, dims", B_FAMILIES)
def test_exact_class_maximizer_is_on_the_class_and_beats_a_brute_force_search(env, dims):
    """``argmax(s, i, lam)`` lies in [0, 1]^d_i and on buyer i's class, and no point of the class (a brute-force grid
    of it) gives any other buyer j a larger value: V^m_ij(lam) exactly (B Sec. 4, before eq. (6))."""
    values, argmax = ref_.b_family(env)
    rng = np.random.default_rng(7)
    for s in rng.random((2, sum(dims))):
        for i in range(len(dims)):
            start, d = sum(dims[:i]), dims[i]
            for lam in (0.0, 0.15, 0.5, 0.85, 1.0):
                x = argmax(s[None], i, np.array([lam]))[0]
                assert x.shape == (d,) and np.all((x >= 0) & (x <= 1 + 1e-15))
                at, diag = s.copy(), s.copy()
                at[start : start + d], diag[start : start + d] = x, lam
                v_at, v_diag = values(at[None])[0], values(diag[None])[0]
                assert abs(v_at[i] - v_diag[i]) <= 1e-12
                solve = 0 if env["kind"] == "example1" else -1  # the coordinate V_i strictly rises in
                pts = _class_points(values, s, i, dims, lam, {1: 2001, 2: 121}.get(d - 1, 2001), solve)
                vals = values(pts)
                for j in range(len(dims)):
                    if j != i:
                        assert vals[:, j].max() <= v_at[j] + 1e-9  # nothing on the class does better
                        assert vals[:, j].max() >= v_at[j] - 2e-3  # and the grid comes close to it


@pytest.mark.parametrize("env, dims", B_FAMILIES)
def test_exact_construction_price_against_the_band_brute_force(env, dims):
    """``exact_class_price`` against ``brute_force_price`` (classes as bands of V_i on a grid, B's definitions
    evaluated directly) within the brute force's own error; Example 1 with two buyers: the closed form p_j + c_j."""
    values, argmax = ref_.b_family(env)
    rng = np.random.default_rng(8)
    s = rng.random((2, sum(dims)))
    for i in range(len(dims)):
        for j in range(len(dims)):
            if j == i:
                continue
            got = ref_.exact_class_price(values, argmax, s, i, j, dims)
            for k in range(len(s)):
                grid = 47 if dims[i] == 3 else None
                want, band = ref_.brute_force_price(values, s[k], i, j, dims, grid=grid, return_band=True)
                assert abs(got[k] - want) <= 1e-3 + 2 * band, (i, j, k, got[k], want, band)
    if env == {"kind": "example1", "n": 2}:
        t = ref_.exact_construction_prices(values, argmax, s, dims)
        np.testing.assert_allclose(t, s[:, [2, 0]] + s[:, [3, 1]], atol=1e-12)


def _construction_metrics(env, dims, price_shift=0.0, revenue_shift=0.0, welfare_shift=0.0):
    """A ``pivotal`` run's metrics that agree with the references: prices from ``exact_construction_prices`` (in
    float32, as the library stores them), revenue / welfare / first best from an independent sample (seed 5)."""
    values, argmax = ref_.b_family(env)
    x = np.random.default_rng(3).random((32, sum(dims)))
    t = ref_.exact_construction_prices(values, argmax, x, dims).astype(np.float32).astype(float)
    t[5, -1] += price_shift
    rw = ref_.construction_revenue_welfare(values, argmax, dims, 2048, 5)
    stat = lambda m, se: {"mean": m, "se": se, "ci95": [m - 1.96 * se, m + 1.96 * se]}  # noqa: E731
    n = len(dims)
    mech = {"mechanism": "pivotal", "kind": "pivotal", "audit": {"max": [0.0] * n, "tol": 1e-5},
            "admissible": {"violations": 0, "second_surplus_max": 0.0}, "profiles": 2048,
            "outcomes": {f"a{k}": stat(1 / (n + 1), 0.01) for k in range(n + 1)},
            "weak_efficiency": {"share_of_sales": {"mean": 1.0}, "worst_shortfall": 0.0},
            "revenue": stat(rw["revenue"][0] + revenue_shift, rw["revenue"][1]),
            "welfare": stat(rw["welfare"][0] + welfare_shift, rw["welfare"][1]),
            "first_best_welfare": stat(*rw["first_best_welfare"])}  # fmt: skip
    assumptions = {"profiles": 64, "tol": 1e-5, "assumption1a": {"worst": [0.0], "holds": True},
                   "assumption2": {"worst": [0.0], "holds": True},
                   "assumption3": {"share": [1 / n] * n, "se": [0.01] * n, "holds": True}}  # fmt: skip
    return {"environment": env["kind"], "settings": {"environment": env}, "dims": dims, "assumptions": assumptions,
            "mechanisms": [mech], "price_sample": {"signals": x.tolist(), "prices": t.tolist()}}  # fmt: skip


@pytest.mark.parametrize("env, dims", B_FAMILIES[1:4])
def test_b_construction_rows_pass_on_the_references_and_fail_on_a_wrong_number(env, dims):
    import bikhchandani

    def status(rows, source):
        return [r.status for r in rows if r.source == source or r.claim.startswith(source)]

    rows = bikhchandani.construction_claims(_construction_metrics(env, dims))
    assert all(r.status in ("PASS", "MEASURE") for r in rows), [r for r in rows if r.status != "PASS"]
    assert status(rows, "B Sec. 4 (t* exact)") == ["PASS"]
    assert status(rows, "the construction: expected revenue and welfare") == ["PASS"]
    # a price off by 1e-3 (one buyer at one profile), a revenue or welfare off by 6 of its SE
    bad = bikhchandani.construction_claims(_construction_metrics(env, dims, price_shift=1e-3))
    assert status(bad, "B Sec. 4 (t* exact)") == ["FAIL"]
    for shift in (dict(revenue_shift=0.06), dict(welfare_shift=-0.08)):
        bad = bikhchandani.construction_claims(_construction_metrics(env, dims, **shift))
        assert status(bad, "the construction: expected revenue and welfare") == ["FAIL"], shift


def test_b_example1_construction_row_needs_p_plus_c():
    import bikhchandani

    m = _construction_metrics(*B_FAMILIES[0])
    m["mechanisms"][0]["first_best_welfare"] = {"mean": 11 / 12, "se": 0.005, "ci95": [0.906, 0.926]}
    for d, want in ((1.3e-6, "PASS"), (2e-5, "FAIL")):
        m["example1_construction_vs_p_plus_c"] = d
        rows = [r for r in bikhchandani.example1_claims(m) if r.claim.startswith("the Theorem's construction gives")]
        assert [r.status for r in rows] == [want] and "not a paper error" in rows[0].reference
    assert [r.status for r in bikhchandani.example1_claims(m) if r.source == "B Sec. 4 (t* exact)"] == ["PASS"]


def test_jmm_rows_rest_on_the_closed_form_not_on_the_search():
    import bikhchandani

    prof = np.random.default_rng(9).random((16, 4))
    shifts = (-0.2, 0.0, 0.3)
    eff = [{"shift": b, "nontriviality": 0.3, "regret_max": 0.4,
            "regret_sample": [ref_.jmm_shifted_gap(x, b, 33) for x in prof]} for b in shifts]  # fmt: skip
    m = {"search": [{"target": 0, "nontriviality": 0.0, "regret_max": 0.0, "regret_mean": [0.0, 0.0]},
                    {"target": 0.2, "nontriviality": 0.2, "regret_max": 0.03, "regret_mean": [0.01, 0.001]}],
         "shifted_efficient": eff, "profile_sample": prof.tolist(), "grid_points": 33, "environment": "example1",
         "with_a0": {"nontriviality": 0.4, "regret": {"max": [0.0, 0.0], "tol": 1e-5}}}  # fmt: skip
    rows = bikhchandani.two_outcome_claims(m)
    assert [r.status for r in rows if "pinned" in r.claim] == ["MEASURE"]  # a weak optimizer's number: no claim
    closed = [r for r in rows if "under the best payments" in r.claim]
    assert [r.status for r in closed] == ["PASS"]
    eff[1]["regret_sample"][3] += 0.01  # one profile's regret off the closed form
    assert [r.status for r in bikhchandani.two_outcome_claims(m) if "under the best payments" in r.claim] == ["FAIL"]


def test_band_rule_bound_row_fails_below_the_least_worst_regret():
    row = {"case": "x", "settings": {"mechanism": {"width": 0.3}},
           "regret": [{"max": 0.5, "worst_profile": [0.9, 0.2]}, {"max": 0.6, "worst_profile": [0.9, 0.1]}]}  # fmt: skip
    assert chung_ely._band_no_payments(row, "CE Thm 2").status == "PASS"  # bounds 0.4 and 0.45
    row["regret"][1]["max"] = 0.3  # below s_beta / 2 = 0.45: no payment rule does that well
    assert chung_ely._band_no_payments(row, "CE Thm 2").status == "FAIL"


def test_threshold_deficit_against_brute_force_pivots():
    rng = np.random.default_rng(4)
    x = np.linspace(0, 1, 100_001)
    for a, vbar in ((0.25, (0.45, 0.5)), (0.5, (0.6, 0.3)), (0.0, (0.4, 0.5))):
        for s1, s2 in rng.random((20, 2)):
            ok1 = (x + a * s2 >= vbar[0]) & (s2 + a * x >= vbar[1])  # agent 1 at x against s_2
            ok2 = (x + a * s1 >= vbar[1]) & (s1 + a * x >= vbar[0])
            provided = s1 + a * s2 >= vbar[0] and s2 + a * s1 >= vbar[1]
            want = 1.0 - (x[ok1].min() + a * s2) - (x[ok2].min() + a * s1) if provided else 0.0
            assert abs(ref_.threshold_deficit(a, 1.0, vbar, np.array(s1), np.array(s2)) - want) < 2e-5


def _thm9_rows(p=0.4029, mean=0.0056, top=0.05):
    env = {"a": 0.25, "cost": 1.0, "n": 2}
    mech = lambda v: {"kind": "threshold_contribution", "thresholds": list(v)}  # noqa: E731
    line = {"settings": {"environment": env, "mechanism": mech((0.5, 0.5)), "prior": UNIFORM}, "deficit": {"max": 0.0}}
    row = {"case": "x", "settings": {"environment": env, "mechanism": mech((0.45, 0.5)), "prior": UNIFORM},
           "deficit": {"mean": mean, "se": 0.0007, "max": top}, "p_deficit_above_tol": {"p": p, "se": 0.0049}}  # fmt: skip
    return row, line


def test_thm9_undominated_row_fails_on_wrong_numbers():
    assert chung_ely._thm9_undominated(*_thm9_rows()).status == "PASS"  # quadrature: P = 0.3993, mean 0.0052
    for bad in (dict(p=0.0), dict(p=0.43), dict(mean=-0.017), dict(top=0.0)):
        assert chung_ely._thm9_undominated(*_thm9_rows(**bad)).status == "FAIL", bad


@pytest.mark.parametrize("full_demand", ["pivotal", "vcg"])
def test_contribution_play_matches_the_library(full_demand):
    import jax

    import jaxmech as jm

    a, vbar, n = 0.8, (0.54, 0.54), 21
    values = lambda s: jax.numpy.stack([s[0] + a * s[1], s[1] + a * s[0]])  # noqa: E731
    st = jm.contribution_strategies(values, vbar, np.linspace(0, 1, n), full_demand=full_demand)
    res = jm.check_equilibrium(values, vbar, n_types=n, n_grid=5, n_random=0, key=jax.random.PRNGKey(0), strategies=st)
    ref = ref_.contribution_play(a, vbar, n, full_demand)
    assert abs(int(res.n_mismatch) - ref["n_mismatch"]) <= n
    np.testing.assert_allclose(np.asarray(res.gain_exact), ref["gain"], atol=1e-5)
    if full_demand == "vcg":  # 7 full types per agent (s_i >= 0.675) demand 0.8 s_i > 0.54: many profiles fail
        assert ref["n_full"] == (7, 7) and ref["n_mismatch"] > 100 and min(ref["gain"]) > 0.5
    else:
        assert ref["n_mismatch"] <= n and max(ref["gain"]) < 1e-9


def _sec53_metrics(vcg_mismatch=4065, gain=1.0):
    agent = {"n_full": 33, "gain_exact": 0.0}
    c = {"n_types": 101, "vbar": [0.54, 0.54], "n_mismatch": 5, "implementation_share": 0.9995, "strict_share": 1.0,
         "agent1": agent, "agent2": agent}  # fmt: skip
    va = {"gain_exact": gain, "gain_witness": [1.0, 0.68]}
    v = {"n_mismatch": vcg_mismatch, "implementation_share": 0.6015, "strict_share": 0.6014, "agent1": va, "agent2": va}
    return {"environment": "public_good(n=2, a=0.8, c=1.08)", "contributions": c, "vcg_demands": v}


def test_sec53_vcg_demand_row_fails_on_wrong_numbers():
    assert [r.status for r in chung_ely._sec53_vcg_demands(_sec53_metrics())] == ["PASS", "INFO"]
    for bad in (dict(vcg_mismatch=5), dict(gain=0.0)):  # VCG demands that still implement, or no deviation gain
        assert chung_ely._sec53_vcg_demands(_sec53_metrics(**bad))[0].status == "FAIL", bad


def test_band_least_worst_regret_against_a_search_over_payments():
    rng = np.random.default_rng(5)
    for n in (2, 3):
        for profile in rng.random((3, n)):
            for i in range(n):
                s = np.repeat(profile[None, :], 801, axis=0)
                s[:, i] = np.linspace(0, 1, 801)
                v = ref_.provision_values(s)
                served = (v.sum(-1) > 0.5 * n) & (v.sum(-1) < 0.8 * n)
                vi = v[:, i]
                # any payments: served types pay P1, refused P0; worst regret over types, minimized over D = P1 - P0
                worst = [max(np.max(np.maximum(d - vi[served], 0), initial=0), np.max(np.maximum(vi[~served] - d, 0), initial=0))
                         for d in np.linspace(-1, 4, 5001)]  # fmt: skip
                assert abs(min(worst) - ref_.band_least_worst_regret(profile, i, 801)) < 2e-3


def _thm7_metrics(regret=1.7, profile=(0.988, 0.999)):
    row = {"case": "NOT monotone: band, n=2", "settings": {"environment": {"n": 2}},
           "regret": [{"max": regret, "worst_profile": list(profile)}] * 2}  # fmt: skip
    eff = {"case": "efficient, n=2", "settings": {"environment": {"n": 2}}, "regret_max": 0.0, "ir_violation_max": 0.0}
    return {"sweep": {"rows": [eff, row]}}


def test_thm7_provision_rows_fail_on_wrong_numbers():
    assert [r.status for r in chung_ely.thm7_provision(_thm7_metrics())] == ["PASS", "PASS"]
    assert chung_ely.thm7_provision(_thm7_metrics(regret=0.0))[1].status == "FAIL"  # an IC non-monotone rule
    # at s_-i = 0 the band is never reached (V < c for every own signal): no certificate there
    assert chung_ely.thm7_provision(_thm7_metrics(profile=(0.0, 0.0)))[1].status == "FAIL"


def test_lemma5_deficits_against_quadrature_of_the_envelope_formula():
    from scipy import integrate

    w, k, r = 0.2, 0.5, 0.1
    f = lambda y, s: np.clip((y - s + r) / (2 * r), 0, 1)  # noqa: E731  (buyer's report y against s)
    for sb, ss in ((0.5, 0.45), (0.9, 0.3), (0.05, 0.02), (0.3, 0.9), (0.62, 0.5)):
        ub = integrate.quad(lambda y, ss=ss: f(y, ss) * (1 + k * (y - ss > w)), 0, sb, points=[ss - r, ss + r, ss + w], limit=200)[0]
        us = integrate.quad(lambda z, sb=sb: f(sb, z) * (1 + k * (z - sb > w)), ss, 1, points=[sb - r, sb + r, sb + w], limit=200)[0]
        gain = k * max(0, sb - ss - w) - k * max(0, ss - sb - w)
        rand, red = ref_.lemma5_deficits(w, k, r, 0.05, np.array(sb), np.array(ss))
        assert abs(rand - (ub + us - f(sb, ss) * gain + 0.05 * (sb + ss))) < 1e-9
        assert red == pytest.approx(2 * (sb - ss - r) if sb - ss >= r else 0.0)


def _lemma5_metrics(red=0.2410, diff=0.0904):
    stat = lambda m, se: {"mean": m, "se": se, "min": 0.0, "ci95": [m - 2 * se, m + 2 * se]}  # noqa: E731
    rows = [{"mechanism": "lemma5_reduction(0.1)", "deficit": stat(red, 0.004), "minus_baseline": stat(0.0, 0.0)},
            {"mechanism": "randomized_ramp(0.1)", "deficit": stat(0.3315, 0.0047), "minus_baseline": stat(diff, 0.0009)}]  # fmt: skip
    return {"environment": "bilateral_trade(deadzone w=0.2, k=0.5)", "comparison": {"baseline": rows[0]["mechanism"],
            "tol": 2e-5, "mechanisms": rows}}  # fmt: skip


def test_lemma5_rows_fail_on_wrong_numbers():
    assert all(r.status == "PASS" for r in chung_ely.lemma5(_lemma5_metrics()))
    assert any(r.status == "FAIL" for r in chung_ely.lemma5(_lemma5_metrics(red=0.1707)))  # g_*'s deficit
    assert any(r.status == "FAIL" for r in chung_ely.lemma5(_lemma5_metrics(diff=0.05)))


def test_cor1_lp_is_attained_by_the_grid_vcg_mechanism():
    # on the grid the efficient rule's generalized VCG payments (buyer pays v_b at the lowest trading grid type,
    # seller receives v_s at the highest) are ex post, hence Bayesian, IC and IR; with the lowest types at utility 0
    # they minimize the deficit (payoff equivalence on the grid), so the LP equals their expected deficit
    a, g = 0.5, 17
    s = (np.arange(g) + 0.5) / g
    sb, ss = np.meshgrid(s, s, indexing="ij")
    trade = sb > ss
    step = 1.0 / g
    deficit = np.where(trade, ((sb - step) + a * sb) - ((ss + step) + a * ss), 0.0)  # v_s(s_b - step) - v_b(s_s + step)
    assert ref_.cor1_min_deficit(a, g) == pytest.approx(deficit.mean(), abs=1e-9)
    assert 0 < ref_.cor1_min_deficit(a, 9) < ref_.cor1_min_deficit(a, 17) < (1 + a) / 6


def test_cor1_lp_row_fails_when_the_library_deficit_is_off():
    m = {"environment": "bilateral_trade(linear, a=0.5)"}
    assert chung_ely._cor1_lp(m, {"mean": 0.2474, "se": 0.0035}).status == "PASS"
    assert chung_ely._cor1_lp(m, {"mean": 0.2, "se": 0.0035}).status == "FAIL"


def test_payment_gaps_match_numpy_floyd_warshall():
    """CE Thm 3 widths w = -(L + L^T) from samples only: the library's max-plus longest paths equal a NumPy
    Floyd-Warshall on the same samples (project choice, k = 3), shrink with more samples, and on the disconnected
    type space stay at or above the closed-form 2 (1 + a/2) band."""
    import jax
    import numpy as np

    from jaxmech._src.models import certify as cert
    from jaxmech._src.models import equivalence as eq

    with jax.enable_x64(True):
        env = cert.project_choice(3, 2, 0.5)
        decide = lambda p, m: env.efficient(m)  # noqa: E731
        rng = np.random.default_rng(1)
        others = rng.uniform(size=(6, 6))
        widths = []
        for n in (64, 1024):
            x = rng.uniform(size=(n, 3))
            w = eq.payment_gaps(env, decide, (), others, 0, x)
            wr = np.stack([ref_.project_choice_gaps(o[3:], x) for o in others])
            assert np.array_equal(np.isnan(w), np.isnan(wr))
            assert np.nanmax(np.abs(w - wr)) <= 1e-9
            assert np.nanmin(w) >= -1e-12
            widths.append(np.nanmean(w))
        assert widths[1] < widths[0] / 3
        x = rng.uniform(size=(2000, 3))
        x = x[np.abs(x[:, 0] - x[:, 1]) >= 0.2]
        x[:, 2] = 0.0
        u = rng.uniform(size=4)
        o = np.stack([np.zeros(4)] * 3 + [u, u, np.zeros(4)], 1)
        w01 = eq.payment_gaps(env, decide, (), o, 0, x)[:, 0, 1]
        lim = ref_.project_choice_band_gap(0.2)
        assert np.all(w01 >= lim - 1e-12) and np.all(w01 - lim <= 0.01)


def test_brute_force_price_in_one_and_three_dimensions_against_the_closed_form():
    """``_reference.brute_force_price`` for buyers with 1-d and 3-d signals (B eq. (8)): V_0 = m + a s_1 and
    V_1 = s_1 + a m with m the mean of buyer 0's three signals; the classes of buyer 0 are the planes m = lam, so
    lam* = s_1 and t*_0 = (1 + a) s_1; symmetrically t*_1 = (1 + a) m. The brute force's error stays within twice
    its class thickness, and the 3-d one shrinks as the grid refines."""
    a = 0.4

    def values(s):
        m = s[:, :3].mean(-1)
        return np.stack([m + a * s[:, 3], s[:, 3] + a * m], -1)

    s = np.array([0.7, 0.2, 0.45, 0.35])
    t0, band0 = ref_.brute_force_price(values, s, 0, 1, [3, 1], return_band=True)
    t0_fine, band0_fine = ref_.brute_force_price(values, s, 0, 1, [3, 1], grid=121, return_band=True)
    t1, band1 = ref_.brute_force_price(values, s, 1, 0, [3, 1], return_band=True)
    assert abs(t0 - (1 + a) * s[3]) <= 2 * band0
    assert abs(t0_fine - (1 + a) * s[3]) <= 2 * band0_fine and band0_fine < band0
    assert abs(t1 - (1 + a) * s[:3].mean()) <= 2 * band1 + 1e-9 and band1 < 1e-3


@pytest.mark.parametrize("a", [0.5, 0.0, -1.0])
@pytest.mark.parametrize("n", [3, 21, 41])
def test_trade_deficit_interval_closed_form(a, n):
    """On the n-point grid with trade iff s_beta > s_sigma (v = s_i + a s_-i, a < 1), the buyer at seller type j pays
    between v_beta(s_j, s_j) and v_beta(s_{j+1}, s_j), the seller at buyer type i receives between v_sigma(s_i, s_{i-1})
    and v_sigma(s_i, s_i); summed over the n(n-1)/2 trades: D_max = (1 + a)(n + 1) / (6n), D_min = D_max - 1/n."""
    lo, hi = ref_.trade_deficit_interval(*ref_.linear_trade_grid(a, n))
    d_max = (1 + a) * (n + 1) / (6 * n)
    assert hi == pytest.approx(d_max, abs=1e-12) and lo == pytest.approx(d_max - 1 / n, abs=1e-12)


def _trade_lp(vb, vs, trade, sign, no_transfer_without_trade):
    """min (sign = 1) or max (sign = -1) of the mean deficit -(t_beta + t_sigma) over all payments with ex post IC
    between grid types and ex post IR for the fixed rule (utilities f v_beta - t_beta, -f v_sigma - t_sigma)."""
    n = trade.shape[0]
    f = trade.astype(float)
    idx = np.arange(n * n).reshape(n, n)
    rows, cols, vals, rhs = [], [], [], []
    r = 0
    for own in range(n):  # true type
        for mis in range(n):  # report
            if own == mis:
                continue
            for opp in range(n):
                # buyer (own = i, opp = j): t_b(i, j) - t_b(i', j) <= (f(i, j) - f(i', j)) v_b(i, j)
                rows += [r, r]
                cols += [idx[own, opp], idx[mis, opp]]
                vals += [1.0, -1.0]
                rhs.append((f[own, opp] - f[mis, opp]) * vb[own, opp])
                # seller (own = j, opp = i): t_s(i, j) - t_s(i, j') <= (f(i, j') - f(i, j)) v_s(i, j)
                rows += [r + 1, r + 1]
                cols += [n * n + idx[opp, own], n * n + idx[opp, mis]]
                vals += [1.0, -1.0]
                rhs.append((f[opp, mis] - f[opp, own]) * vs[opp, own])
                r += 2
    ic = sparse.csr_matrix((vals, (rows, cols)), shape=(r, 2 * n * n))
    a_ub = sparse.vstack([ic, sparse.eye(2 * n * n)])  # IR: t_b <= f v_b, t_s <= -f v_s
    b_ub = np.concatenate([rhs, (f * vb).ravel(), (-f * vs).ravel()])
    free = [(None, None) if t else ((0.0, 0.0) if no_transfer_without_trade else (None, None)) for t in trade.ravel()]
    cost = -sign * np.ones(2 * n * n) / (n * n)  # deficit = -(t_b + t_s)
    return optimize.linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=free * 2, method="highs")


def test_trade_deficit_interval_against_the_lp():
    """The closed-form ends at the smallest grid of ce_sec43_double_auction (21 signals, a = 0.5) against an LP over
    all 2 x 441 payments (HiGHS): D_min is the same with and without "no transfer without trade"; D_max with it, and
    without it the LP is unbounded (subsidies to non-trading types keep IC and IR)."""
    vb, vs, trade = ref_.linear_trade_grid(0.5, 21)
    lo, hi = ref_.trade_deficit_interval(vb, vs, trade)
    for norm in (False, True):
        res = _trade_lp(vb, vs, trade, 1, norm)
        assert res.status == 0 and res.fun == pytest.approx(lo, abs=1e-8)
    res = _trade_lp(vb, vs, trade, -1, True)
    assert res.status == 0 and -res.fun == pytest.approx(hi, abs=1e-8)
    assert _trade_lp(vb, vs, trade, -1, False).status == 3  # unbounded


def _sec43_interval_metrics(shift=0.0, which="mean_deficit", end_error=0.0):
    """Measured numbers of a quick ce_sec43_double_auction run (a = 0.5; 21 / 41 signals), one of them moved."""
    rows = []
    for n, dl, vcg in ((21, 0.224848, 0.261905), (41, 0.236375, 0.256098)):
        lo, hi = ref_.trade_deficit_interval(*ref_.linear_trade_grid(0.5, n))
        rows.append({"signals": n, "signal_step": 1 / (n - 1), "mean_deficit": dl, "mean_deficit_low": dl,
                     "vcg_mean_deficit": vcg, "deficit_interval": {"low": lo + end_error, "high": hi}})  # fmt: skip
    rows[0][which] += shift
    return {"environment": "bilateral_trade(a=0.5)", "refinement": rows, "double_auction": {"n_signals": 21}}


def test_sec43_interval_row_fails_outside_the_interval():
    assert [r.status for r in chung_ely._sec43_interval(_sec43_interval_metrics())] == ["PASS"]
    # the auction below D_min = 0.2143 or above D_max = 0.2619, the VCG deficit above D_max, a wrong library end
    for which, shift in (("mean_deficit_low", -0.011), ("mean_deficit", 0.038), ("vcg_mean_deficit", 0.001)):
        assert chung_ely._sec43_interval(_sec43_interval_metrics(shift, which))[0].status == "FAIL"
    assert chung_ely._sec43_interval(_sec43_interval_metrics(end_error=1e-3))[0].status == "FAIL"


def test_sec43_own_trade_set_row_fails_outside_its_interval():
    """The auction's own trade set: the selected bids of a 3-signal grid (a = 0.5) trade only at (2, 0) (offer 0.9 >=
    demand 0.8), so the interval is [v_sigma(2, 0) - v_beta(2, 0), v_sigma(2, 1) - v_beta(1, 0)] / 9 = [-0.5, 0.5] / 9."""
    m = _sec43_interval_metrics()
    own = {"low": -0.5 / 9, "high": 0.5 / 9}
    m["double_auction"] = {"n_signals": 3, "mean_deficit": 0.01, "auction_deficit_interval": own,
                           "buyer": {"selected": [0.0, 0.5, 0.9]}, "seller": {"selected": [0.8, 1.0, 1.6]}}  # fmt: skip
    vb, vs, _ = ref_.linear_trade_grid(0.5, 3)
    lo, hi = ref_.trade_deficit_interval(vb, vs, np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0]]))
    assert (lo, hi) == pytest.approx((own["low"], own["high"]))
    assert chung_ely._sec43_interval(m)[1].status == "PASS"
    m["double_auction"]["mean_deficit"] = 0.06  # above D_max = 0.0556
    assert chung_ely._sec43_interval(m)[1].status == "FAIL"


# --------------------------------------------------------------------------------------------------------------
# CE Thm 2 / Thm 4 beyond trade and provision (experiments/ce_separable.py, configs/ce_thm2_separable.toml,
# configs/ce_thm4_auction.toml)


def _ce_separable():
    import ce_separable

    return ce_separable


def test_separable_envelope_payments_match_closed_forms():
    """``_reference.sep_envelope_payment`` (jumps found by scanning + bisection, then quad) against closed forms: the
    efficient / reserve auction's winner pays V_i at its pivot max(g, r), losers nothing; the softmax shares integrate
    to (1/B) log((C + e^{Bx}) / (C + 1)); the efficient size's integral is a sum of ramps past its two pivots."""
    a, rng = 0.5, np.random.default_rng(7)
    b, r0 = ref_.SEP_SOFTMAX
    for s in rng.uniform(size=(6, 3)):
        for i in range(3):
            g, rest = np.max(np.delete(s, i)), a * (s.sum() - s[i])
            win = s[i] > g
            assert ref_.sep_envelope_payment("efficient", s, i, a) == pytest.approx(win * (g + rest), abs=1e-8)
            won = win and s[i] > ref_.SEP_RESERVE
            pivot = max(g, ref_.SEP_RESERVE)
            assert ref_.sep_envelope_payment("reserve", s, i, a) == pytest.approx(won * (pivot + rest), abs=1e-8)
            c = np.exp(b * r0) + np.exp(b * np.delete(s, i)).sum()
            q = np.exp(b * s[i]) / (c + np.exp(b * s[i]))
            t = q * (s[i] + rest) - np.log((c + np.exp(b * s[i])) / (c + 1.0)) / b
            assert ref_.sep_envelope_payment("softmax", s, i, a) == pytest.approx(t, abs=1e-8)
    for s in rng.uniform(size=(6, 2)):
        for i in range(2):
            y = np.array([0.5, 1.5]) / (1 + a) - s[1 - i]  # W = (1 + a)(x + s_j) crosses c (q + 1/2), c = 1
            q = int(np.sum(s[i] > y))
            t = q * (s[i] + a * s[1 - i]) - np.sum(np.maximum(0.0, s[i] - np.maximum(y, 0.0)))
            assert ref_.sep_envelope_payment("size_efficient", s, i, a) == pytest.approx(t, abs=1e-8)


def test_separable_least_worst_regret_closed_forms():
    """The LP's least worst regret of ANY payments: the band auction at s_-i with highest other signal g < 0.4 leaves
    (V_i(0.7) - V_i(g)) / 2 = (0.7 - g) / 2 (types just above g are served, those on (0.4, 0.7) refused); the
    non-monotone size rule at s_j = 0.5 leaves (V(0.9) - V(0)) / 2 = 0.45 (size 1 on [0.5, 0.9), 2 below and above);
    every monotone rule leaves 0. Grids of 2001 own signals: within a grid step."""
    step = 1 / 2000
    assert ref_.sep_least_worst_regret("band", [0.0, 0.3, 0.1], 0) == pytest.approx(0.2, abs=step)
    assert ref_.sep_least_worst_regret("band", [0.25, 0.0, 0.1], 1) == pytest.approx(0.225, abs=step)
    assert ref_.sep_least_worst_regret("band", [0.5, 0.0, 0.1], 1) == 0.0  # g > 0.4: monotone in s_1 here
    assert ref_.sep_least_worst_regret("size_nonmonotone", [0.0, 0.5], 0) == pytest.approx(0.45, abs=step)
    for rule, prof in (("efficient", [0.2, 0.3, 0.1]), ("reserve", [0.2, 0.1, 0.6]), ("size_step", [0.1, 0.3]),
                       ("size_efficient", [0.0, 0.4])):  # fmt: skip
        assert ref_.sep_least_worst_regret(rule, prof, 0) <= 1e-9


def test_separable_reference_rules_are_the_configs_rules():
    """The NumPy restatements equal experiments/_separable_models.py and the library's first-best rules (single
    object, project size) on random profiles: the references integrate the rules the configs run."""
    import importlib.util

    import jax
    import jax.numpy as jnp

    from jaxmech._src.core import environments as envs

    spec = importlib.util.spec_from_file_location("sep_models", Path(ref_.__file__).with_name("_separable_models.py"))
    models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(models)
    rng = np.random.default_rng(3)
    s3, s2 = rng.uniform(size=(400, 3)), rng.uniform(size=(400, 2))
    for rule, s in (("reserve", s3), ("softmax", s3), ("band", s3), ("size_step", s2), ("size_nonmonotone", s2)):
        got = np.asarray(jax.vmap(lambda m, f=getattr(models, rule): f((), m))(jnp.asarray(s, jnp.float32)))
        want = ref_.sep_weights(rule, s)[:, 0] if rule.startswith("size") else ref_.sep_weights(rule, s)
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=rule)
    auction = envs.single_object((1, 1, 1), envs.linear_public_values(0.5, 3))
    got = np.asarray(jax.vmap(auction.efficient)(jnp.asarray(s3, jnp.float32)))
    np.testing.assert_array_equal(got, ref_.sep_weights("efficient", s3))
    size = envs.project_size(envs.linear_public_values(0.5, 2), 1.0, 3, 2)
    got = np.asarray(jax.vmap(size.efficient)(jnp.asarray(s2, jnp.float32)))
    np.testing.assert_array_equal(got, ref_.sep_outcome("size_efficient", s2))


def test_auction_interim_utility_and_revenue_closed_forms():
    """Two bidders, V_i = s_i + a s_j, uniform: P(win | y) = y, so U_i(x) = x^2 / 2 for any a; E[revenue] =
    (1 + a) E[min] = (1 + a) / 3."""
    for a in (0.5, 0.2):
        for i in (0, 1):
            for x in (0.0, 0.3, 0.75, 1.0):
                assert ref_.auction_interim_utility(x, i, a) == pytest.approx(x * x / 2, abs=2e-4)
        assert ref_.auction_vcg_revenue(a) == pytest.approx((1 + a) / 3, abs=1e-7)


def _thm2_rows(pay_shift=0.0, regret=2e-7, feasible=False, slack=0.898, gain=0.6):
    """Two cases as the thm2 kind writes them: the softmax auction (payments by the reference itself) and the
    non-monotone size rule at s_j = 0.5 (LP (V(0.899) - V(0)) / 2 = 0.4495 on 1001 own signals)."""
    prof = np.random.default_rng(5).uniform(size=(3, 3))
    pays = np.array([[ref_.sep_envelope_payment("softmax", s, i) for i in range(3)] for s in prof]) + pay_shift
    env3 = {"kind": "single_object", "a": 0.5, "cost": 1.0, "levels": 3}
    soft = {"case": "auction: randomized softmax shares", "tol": 2e-5, "regret_max": regret, "ir_violation_max": 0.0,
            "settings": {"environment": env3, "mechanism": {"decide": "x.py:softmax"}},
            "payments": {"profiles": prof.tolist(), "payments": pays.tolist()}, "certificate": None, "witness": None}  # fmt: skip
    cert = [{"agent": 0, "at_profile": [0.3, 0.5], "samples": 1001, "feasible": feasible, "slack": slack,
             "cycle": [1, 2, 1]}]  # fmt: skip
    wit = {"agent": 0, "profile": [0.3, 0.5], "misreport": [0.95], "gain": gain, "audit_regret": 0.6}
    size = {"case": "size: NOT monotone", "tol": 3e-5, "regret_max": 0.6, "ir_violation_max": 0.0,
            "settings": {"environment": {**env3, "kind": "project_size"}, "mechanism": {"decide": "x.py:size_nonmonotone"}},
            "payments": {"profiles": [], "payments": []}, "certificate": cert, "witness": wit}  # fmt: skip
    return {"thm2": {"rows": [soft, size]}}


def test_thm2_separable_rows_fail_on_wrong_numbers():
    ce = _ce_separable()
    assert [r.status for r in ce.thm2_separable(_thm2_rows())] == ["PASS"] * 4
    statuses = lambda **kw: [r.status for r in ce.thm2_separable(_thm2_rows(**kw))]  # noqa: E731
    assert statuses(pay_shift=0.01)[1] == "FAIL"  # a payment formula off by a constant
    assert statuses(regret=1e-3)[0] == "FAIL"  # a monotone rule with regret
    assert statuses(feasible=True)[2] == "FAIL"  # the certificate misses the cycle
    assert statuses(slack=0.92)[2] == "FAIL"  # slack / 2 = 0.46 > the LP: no longer a bound on any payments
    assert statuses(gain=0.5)[3] == "FAIL"  # the replayed witness disagrees with the audit


def _thm4_metrics(shift=0.0, deficit=-0.5, gain=1.4):
    types = [0.0, 0.25, 0.5, 0.75, 1.0]
    u = [x * x / 2 for x in types]
    agent = lambda k: {"agent": f"buyer{k}", "fee": 0.25, "fee_se": 0.002, "max_abs_z": 1.0, "worst_type": 0.5,  # noqa: E731
                       "diff_at_worst": 0.001, "se_at_worst": 0.007,
                       "curve": {"types": types, "utility_fee": [x + shift for x in u], "utility_ex_post": u,
                                 "utility_se": [0.005] * 5, "diff_se": [0.007] * 5}}  # fmt: skip
    audit = {"regret_max": [0.0, 0.0], "ir_violation_max": [0.0, 0.0], "tol": 1.5e-5}
    return {"environment": "single_object(linear, n=2, a=0.5)", "thm4": {"agents": [agent(1), agent(2)]},
            "ex_post_audit": audit, "fees_audit": {**audit, "regret_max": [1.4, 1.0]},
            "fees_witness": {"agent": 0, "profile": [0.98, 0.99], "misreport": [0.995], "gain": gain, "audit_regret": 1.4},
            "budget": {"ex_post_minus_fees": {"mean": 0.003, "se": 0.006}, "ex_post_deficit": {"mean": deficit, "se": 0.006},
                       "bic_deficit_abs_max": 1e-7}}  # fmt: skip


def test_thm4_auction_rows_fail_on_wrong_numbers():
    ce = _ce_separable()
    rows = ce.thm4_auction(_thm4_metrics())
    assert [r.status for r in rows] == ["PASS"] * 7 + ["MEASURE"]
    assert ce.thm4_auction(_thm4_metrics(shift=0.05))[2].status == "FAIL"  # interim IR not binding at the lowest type
    assert ce.thm4_auction(_thm4_metrics(deficit=-0.45))[6].status == "FAIL"  # not the VCG auction's budget
    assert ce.thm4_auction(_thm4_metrics(gain=1.2))[5].status == "FAIL"  # witness not replayed


# --- B Sec. 3, eq. (5) with two objects and unit demand; B Sec. 5's consumption externality ---------------------


def test_pairs_by_movers_lists_the_pairs_that_move_one_buyer():
    movers = ref_.pairs_by_movers(2)
    one = {frozenset(p) for p, v in movers.items() if len(v) == 1}
    by_hand = [("--", "-A"), ("--", "-B"), ("--", "A-"), ("--", "B-"), ("-A", "-B"), ("-A", "BA"), ("-B", "AB"),
               ("A-", "B-"), ("A-", "AB"), ("B-", "BA")]  # fmt: skip
    assert one == {frozenset(p) for p in by_hand} and len(movers) == 21
    assert len(ref_.unit_demand_assignments(3)) == 13


@pytest.mark.parametrize("reserves", [[0.4, 0.6], [0.7, 0.2], [[0.4, 0.6], [0.3, 0.5]]])
def test_serial_dictatorship_probs_against_a_simulation_of_the_rule(reserves):
    """The closed form against 400,000 draws of the rule restated directly (each buyer takes the available X
    maximizing s_X - r_X when positive)."""
    probs = ref_.serial_dictatorship_probs(reserves, 2)
    assert abs(sum(probs.values()) - 1.0) < 1e-12
    rng = np.random.default_rng(5)
    s = rng.random((400_000, 2, 2))
    r = np.broadcast_to(np.asarray(reserves, float).reshape(-1, 2), (2, 2))
    left = np.ones((len(s), 2), bool)
    alloc = np.zeros((len(s), 2), int)
    for k in range(2):
        sur = np.where(left, s[:, k] - r[k], -np.inf)
        best = sur.argmax(1)
        take = sur[np.arange(len(s)), best] > 0
        alloc[:, k] = np.where(take, best + 1, 0)
        left[take, best[take]] = False
    labels = np.array(["-AB"[a] + "-AB"[b] for a, b in alloc])
    for lab, p in probs.items():
        f = float(np.mean(labels == lab))
        assert abs(f - p) <= 4 * np.sqrt(p * (1 - p) / len(s)) + 1e-12, (lab, f, p)


def test_private_vcg_gain_matches_the_library(key):
    import jax
    import jax.numpy as jnp

    import jaxmech as jm

    env = jm.two_objects(2, 0.5)
    mech = jm.private_vcg(env)
    rng = np.random.default_rng(2)
    for _ in range(8):
        s, mi, i = rng.random(4), rng.random(2), int(rng.integers(2))
        lib = jm.regret(env, mech, (), jnp.asarray(s, jnp.float32), jnp.asarray(mi, jnp.float32), i)
        assert abs(max(ref_.private_vcg_gain(s, mi, i, 2, 0.5), 0.0) - float(lib)) <= 1e-5
    del jax


def test_example1_externality_gain_is_at_most_the_bound_and_attains_it():
    """Brute force over a 41 x 41 misreport grid: the gain never exceeds eps e_i(s) 1{j wins at s} (and is <= 0 at
    eps = 0: the construction p_j + c_j is ex post IC), and a blocking report attains the bound."""
    rng = np.random.default_rng(3)
    g = np.linspace(0.0, 1.0, 41)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    attained = 0
    for _ in range(40):
        s, i = rng.random(4), int(rng.integers(2))
        for eps in (0.0, 0.05):
            gain = max(ref_.example1_externality_gain(s, m, i, eps) for m in grid)
            bound = ref_.example1_externality_bound(s, i, eps)
            assert gain <= bound + 1e-12
            attained += eps > 0 and bound > 0 and abs(gain - bound) < 1e-12
    assert attained >= 5


def test_example1_externality_gain_matches_the_library():
    import jax.numpy as jnp

    import jaxmech as jm

    base = jm.example1()

    def prices(p, m):  # the construction on Example 1: t_i = p_j + c_j
        return jnp.stack([m[2] + m[3], m[0] + m[1]])

    mech = jm.personalized_prices(base, prices)
    env = jm.consumption_externality(base, 0.05)
    rng = np.random.default_rng(4)
    for _ in range(12):
        s, mi, i = rng.random(4), rng.random(2), int(rng.integers(2))
        lib = jm.regret(env, mech, (), jnp.asarray(s, jnp.float32), jnp.asarray(mi, jnp.float32), i)
        assert abs(max(ref_.example1_externality_gain(s, mi, i, 0.05), 0.0) - float(lib)) <= 1e-5


def _stat(p, se=0.005):
    return {"p": p, "se": se, "ci95": [p - 2 * se, p + 2 * se], "mean": p}


def _c5_metrics(non_mover_gap=0.0, prob_shift=0.0, control=None, two_holds=False):
    movers = ref_.pairs_by_movers(2)
    labels = {ref_.assignment_label(x): x for x in ref_.unit_demand_assignments(2)}
    x = np.array([0.3, 0.6, 0.7, 0.2])
    pairs = []
    for (a, b), mv in movers.items():
        d = np.abs(ref_.assignment_value_np(x, labels[a], 2, 0.5) - ref_.assignment_value_np(x, labels[b], 2, 0.5))
        gap = [1.0 if i in mv else non_mover_gap for i in range(2)]
        holds = len(mv) <= 1 or two_holds
        pairs.append({"pair": [a, b], "moved": len(mv), "gap": gap, "holds": holds, "second": float(np.sort(d)[-2]),
                      "witness": None if holds else x.tolist()})  # fmt: skip
    probs = ref_.serial_dictatorship_probs([0.4, 0.6], 2)
    s, mi = np.array([0.999, 0.059, 0.415, 0.442]), np.zeros(2)
    gain = ref_.private_vcg_gain(s, mi, 0, 2, 0.5)
    audit = lambda mx: {"max": mx, "tol": 1e-5, "worst_profile": [s.tolist()] * 2, "worst_misreport": [mi.tolist()] * 2}  # noqa: E731
    sd = {"mechanism": "serial_dictatorship", "kind": "serial_dictatorship", "reserves": [0.4, 0.6],
          "audit": audit([0.0, 0.0]), "profiles": 2048, "outcomes": {k: _stat(v + prob_shift) for k, v in probs.items()},
          "revenue": {"mean": 0.9, "se": 0.01}, "welfare": {"mean": 1.25, "se": 0.01}}  # fmt: skip
    ctl = {"mechanism": "private_vcg", "kind": "private_vcg", "reserves": None,
           "audit": audit([gain if control is None else control, 0.1]), "profiles": 2048, "outcomes": {},
           "revenue": {"mean": 0.5, "se": 0.01}, "welfare": {"mean": 1.4, "se": 0.01}}  # fmt: skip
    return {"settings": {"environment": {"n": 2, "a": 0.5}}, "profiles": 2048, "pairs": pairs, "mechanisms": [sd, ctl]}


def test_condition5_rows_pass_on_the_truth_and_fail_on_wrong_numbers():
    import bikhchandani

    assert all(r.status in ("PASS", "MEASURE") for r in bikhchandani.condition5_claims(_c5_metrics()))
    for bad in (dict(non_mover_gap=1e-7), dict(prob_shift=0.05), dict(control=0.3), dict(two_holds=True)):
        assert any(r.status == "FAIL" for r in bikhchandani.condition5_claims(_c5_metrics(**bad))), bad


def _ext_metrics(scale=None, base_regret=0.0, gap_zero=False):
    s, mi, i = np.array([0.997, 0.845, 0.756, 0.959]), np.array([0.9, 1.0]), 1  # a blocking report: a_0
    rows = []
    for eps in (0.0, 0.01, 0.02, 0.04):
        r = ref_.example1_externality_gain(s, mi, i, eps) * (scale or {}).get(eps, 1.0)
        r = base_regret if eps == 0 else r
        rows.append({"eps": eps, "indifference_gap": 0.0 if (eps == 0 or gap_zero) else 0.99 * eps,
                     "regret": {"max": [0.0, r], "tol": 2e-5, "worst_profile": [s.tolist()] * 2,
                                "worst_misreport": [mi.tolist()] * 2}})  # fmt: skip
    return {"mechanism": "pivotal", "rows": rows}


def test_externality_rows_pass_on_the_truth_and_fail_on_wrong_numbers():
    import bikhchandani

    assert ref_.example1_externality_gain([0.997, 0.845, 0.756, 0.959], [0.9, 1.0], 1, 0.01) > 0
    assert all(r.status in ("PASS", "MEASURE") for r in bikhchandani.externality_claims(_ext_metrics()))
    for bad in (dict(scale={0.04: 1.3}), dict(scale={0.01: 0.0, 0.02: 0.0, 0.04: 0.0}), dict(base_regret=1e-3),
                dict(gap_zero=True), dict(scale={0.02: 1.01})):  # fmt: skip
        assert any(r.status == "FAIL" for r in bikhchandani.externality_claims(_ext_metrics(**bad))), bad


def test_copula_posted_price_against_the_midpoint_rule_and_the_closed_form():
    """The best posted price under a Gaussian copula (Gauss-Legendre in conditional coordinates) against the midpoint
    rule of ``expect`` (its own error bound) at rho = 0.5, and the closed form 1/8 at p = 1/2 for rho = 0."""
    p, w = ref_.copula_posted_price(0.5)
    mid, err = ref_.expect({"rho": 0.5}, lambda b, s: (b - s) * (b >= 0.5) * (s <= 0.5), 1000)
    assert abs(p - 0.5) <= 1e-4 and abs(w - mid) <= 3 * err + 1e-6
    p0, w0 = ref_.copula_posted_price(0.0)
    assert abs(p0 - 0.5) <= 1e-4 and w0 == pytest.approx(1 / 8, abs=1e-10)


def _design_metrics(name, value, desc, mc, limit, grids=(17, 33), values=(0.5, 0.45)):
    audit = {"regret_max": 0.0, "ir_violation_max": 0.0, "deficit_max": 0.0, "tol": 1e-5, "points": 289}
    gap = limit - value
    return {"name": name, "design": {"value": value, "description": desc, "objective": mc, "revenue": mc,
            "audit": {"sampled": audit, "grid": audit},
            "reference": {"grids": list(grids), "values": list(values), "limit": limit, "design": value,
                          "gap": gap, "gap_relative": gap / limit}}}  # fmt: skip


def test_design_correlated_and_auction_lp_rows_fail_on_wrong_numbers():
    w = ref_.copula_posted_price(0.5)[1]
    mc = {"mean": w, "se": 1e-3}

    def trade(value, limit, cut=0.5):
        m = _design_metrics("design_trade_correlated", value, {"cutoffs": [cut, cut]}, mc, limit)
        return [c.status for c in design_rows.trade_correlated(m)]

    assert trade(w, 0.0675) == ["PASS", "PASS", "PASS"]
    assert trade(w - 2e-4, 0.0675)[0] == "FAIL"  # off the best posted price
    assert trade(w, 0.0675, cut=0.52)[0] == "FAIL"  # not at p = 1/2
    assert trade(w, 1.03 * w)[2] == "FAIL"  # more than 2% below the LP limit

    def auction(value, limit, r=0.5):
        m = _design_metrics("design_auction_revenue", value, {"reserves": [r, r]}, {"mean": 5 / 12, "se": 1e-3}, limit)
        return [c.status for c in design_rows.auction_revenue(m)]

    assert auction(5 / 12, 0.417) == ["PASS"] * 5
    assert auction(5 / 12, 0.419)[3] == "FAIL"  # the LP limit is not Myerson's 5/12
    assert auction(5 / 12, 0.43)[3:] == ["FAIL", "FAIL"]  # ... and the design would be > 1% below it


def test_best_posted_public_good_against_a_brute_force_search():
    """The closed form (p = (c - 2a) / 2, welfare (1 - p)^2 [(1 + a)(2 + c - 2a) / 2 - c]) against a NumPy search over
    cutoff pairs on a grid, each with its welfare by the midpoint rule and the ex post budget checked at every grid
    state of its box (pivot payments t_i = p_i + a s_j)."""
    a, c = -0.3, 0.8
    p, w = ref_.best_posted_public_good(a, c)
    assert abs(p - 0.7) < 1e-12 and abs(w - 0.0351) < 1e-12
    m = 400
    u = (np.arange(m) + 0.5) / m
    s1, s2 = np.meshgrid(u, u, indexing="ij")
    welfare = (1 + a) * (s1 + s2) - c
    best = -np.inf
    for p1 in np.arange(0.6, 0.801, 0.01):
        for p2 in np.arange(0.6, 0.801, 0.01):
            box = (s1 >= p1) & (s2 >= p2)
            if np.any(box & (p1 + a * s2 + p2 + a * s1 < c - 1e-12)):
                continue  # a deficit somewhere in the box
            best = max(best, float(np.mean(np.where(box, welfare, 0.0))))
    assert abs(best - w) < 2e-4  # the grid's cutoffs (0.70, 0.70) and its midpoint rule


def _public_randomized_metrics(value: float, mc: float, limit: float) -> dict:
    audit = {"profiles": 8192, "tol": 1e-5, "regret_max": 1e-7, "ir_violation_max": 0.0, "deficit_max": 0.0}
    grid = {"points": 289, "regret_max": 6e-8, "ir_violation_max": 0.0, "deficit_max": 0.0}
    return {
        "name": "design_public_good_randomized",
        "design": {
            "value": value, "exact": {"value": value, "error": 4e-8},
            "objective": {"mean": mc, "se": 1e-4, "profiles": 1 << 19},
            "description": {"cut": [0.6707, 0.6706]}, "audit": {"sampled": audit, "grid": grid},
            "reference": {"grids": [17, 33], "values": [0.0418, 0.0388], "limit": limit, "design": value,
                          "gap_relative": (limit - value) / limit},
        },
    }  # fmt: skip


def test_public_randomized_rows_pass_on_the_measured_numbers_and_fail_otherwise():
    row = design_rows.public_randomized(-0.3, 0.8)
    assert [r.status for r in row(_public_randomized_metrics(0.035632, 0.03550, 0.035725))] == ["PASS"] * 4 + ["MEASURE"]
    # no better than the posted rule (0.0351), a Monte Carlo mean far from its quadrature, 2.5% below the LP limit
    assert row(_public_randomized_metrics(0.035100, 0.03510, 0.035725))[0].status == "FAIL"
    assert row(_public_randomized_metrics(0.035632, 0.03500, 0.035725))[1].status == "FAIL"
    assert row(_public_randomized_metrics(0.035632, 0.03560, 0.036550))[3].status == "FAIL"


def test_thm9_every_start_row_fails_on_a_diverged_or_stray_start():
    """A start whose search diverged (vbar null in metrics.json) or ended away from the optimum fails the row, even
    when the best start is right."""
    good = {"vbar": [0.5002, 0.4998], "sum_minus_cost": 0.0}

    def rows(*finals):
        m = _design_metrics("design_thm9", 0.5, good, {"mean": 0.5, "se": 1e-3}, 0.5)
        m["design"]["precision"] = {"sum_minus_cost": 0.0}
        m["design"]["starts"] = [{"final": f, "feasible": f is not None} for f in finals]
        return [c.status for c in design_rows._thm9([0.5, 0.5])(m)[:2]]

    assert rows(good, good) == ["PASS", "PASS"]
    assert rows(good, {"vbar": [None, None], "sum_minus_cost": None}) == ["PASS", "FAIL"]
    assert rows(good, None) == ["PASS", "FAIL"]
    assert rows(good, {"vbar": [0.503, 0.497], "sum_minus_cost": 0.0}) == ["PASS", "FAIL"]


# --------------------------------------------------------------------------------------------------------------
# CE Thm 9, asymmetric (ce_thm9_search_asymmetric) and CE Thm 3 for k = 3 (ce_thm3_k3_refinement)


def test_asymmetric_thm9_reference_matches_a_two_dimensional_grid():
    """``_reference.asymmetric_thm9_welfare`` (exact polynomial inner integral) against a plain 2-D midpoint rule with
    the Beta(2, 3) x Beta(3, 2) densities, at the optimum and off it; the optimum beats its neighbours on the line."""
    from scipy import stats

    a, w2, c, n = 0.2, 0.7, 1.0, 1500
    u = (np.arange(n) + 0.5) / n
    s1, s2 = np.meshgrid(u, u, indexing="ij")
    dens = stats.beta(2, 3).pdf(s1) * stats.beta(3, 2).pdf(s2) / n**2
    v1, best = ref_.asymmetric_thm9(a, w2, c)
    for vb1 in (v1, 0.45, 0.6):
        vb2 = c - vb1
        region = (s1 + a * s2 >= vb1) & (w2 * s2 + a * s1 >= vb2)
        grid = float(np.sum(dens * region * ((1 + a) * s1 + (w2 + a) * s2 - c)))
        assert abs(ref_.asymmetric_thm9_welfare(vb1, a, w2, c) - grid) < 2e-4
    assert ref_.asymmetric_thm9_welfare(v1, a, w2, c) == best
    assert best > max(ref_.asymmetric_thm9_welfare(v1 + d, a, w2, c) for d in (-0.01, 0.01))
    assert abs(v1 - 0.5) > 0.02  # not the symmetric rule


def _thm9_asymmetric_metrics(vbar1=0.5352842, mean=0.11652, se=0.00148, beta=(2.0, 3.0)):
    """Measured numbers of a quick ce_thm9_search_asymmetric run, one of them moved."""
    marg = [{"kind": "beta", "lo": 0.0, "hi": 1.0, "a": beta[0], "b": beta[1]},
            {"kind": "beta", "lo": 0.0, "hi": 1.0, "a": 3.0, "b": 2.0}]  # fmt: skip
    env = {"n": 2, "values": "linear", "a": 0.2, "weights": [1.0, 0.7], "cost": 1.0}
    return {"name": "ce_thm9_search_asymmetric", "settings": {"environment": env, "prior": {**UNIFORM, "marginals": marg}},
            "search": {"vbar_restored": [vbar1, 1.0 - vbar1], "welfare": {"mean": mean, "se": se}}}  # fmt: skip


def test_thm9_asymmetric_row_fails_on_wrong_numbers():
    assert [r.status for r in chung_ely._thm9_quadrature(_thm9_asymmetric_metrics())] == ["PASS"]
    # the symmetric rule, a rule 0.03 off, a Monte Carlo welfare 6 SE off, a prior without a reference
    for bad in ({"vbar1": 0.5}, {"vbar1": 0.565}, {"mean": 0.1139 + 6 * 0.00148}, {"beta": (2.0, 2.0)}):
        assert [r.status for r in chung_ely._thm9_quadrature(_thm9_asymmetric_metrics(**bad))] == ["FAIL"], bad


def test_thm9_rows_label_n3_as_an_extension():
    m = {"name": "x", "environment": "public_good(n=3, a=0.3, c=1.5)", "search": {"sum_minus_cost_found": 0.0,
         "welfare": {"mean": 0.86, "se": 0.006}}, "grid": {"best_welfare": {"mean": 0.86, "se": 0.006}},
         "audit": {"deficit": {"max": 0.0}, "regret": [{"max": 0.0}], "tol": 1e-5}}  # fmt: skip
    assert {r.source for r in chung_ely.thm9(m)} == {"CE Thm 9 (extension to n = 3)"}
    m["environment"] = "public_good(n=2, a=0.3, c=1.0)"
    assert {r.source for r in chung_ely.thm9(m)} == {"CE Thm 9"}


def _k3_metrics(seed=0, sizes=(16, 64)):
    """A ce_thm3_k3_refinement-shaped ``refine`` block whose widths come from the NumPy reference itself."""
    rng = np.random.default_rng(seed)
    prof = rng.uniform(size=(4, 6))
    conn, disc = [], []
    for n in sizes:
        x = rng.uniform(size=(n, 3))
        w = np.stack([ref_.project_choice_gaps(o[3:], x) for o in prof])
        worst = np.nanmax(np.where(np.isnan(w), -np.inf, w).reshape(len(w), -1), axis=1)
        conn.append({"samples": n, "mean_max_width": float(np.mean(worst)), "max_width": float(np.max(worst)),
                     "min_width": float(np.nanmin(w)), "max_width_by_profile": worst.tolist(), "own_signals": x.tolist()})  # fmt: skip
        xb = x[np.abs(x[:, 0] - x[:, 1]) >= 0.2].copy()
        xb[:, 2] = 0.0
        ob = prof[:, 3:].copy()
        ob[:, 1], ob[:, 2] = ob[:, 0], 0.0
        wb = np.stack([ref_.project_choice_gaps(o, xb) for o in ob])[:, 0, 1]
        disc.append({"samples": len(xb), "min_width_01": float(wb.min()), "max_width_01": float(wb.max())})
    return {"agent": 0, "band": 0.2, "connected": conn, "disconnected": disc, "a": 0.5, "n": 2,
            "profiles": prof.tolist()}  # fmt: skip


@pytest.mark.parametrize("field, factor", [("max_width_by_profile", 1.01), ("mean_max_width", 1.01),
                                           ("min_width_01", 1.001), ("own_signals", None)])  # fmt: skip
def test_k3_widths_row_fails_when_the_widths_are_off(field, factor):
    """The widths row compares the library's numbers with a NumPy Floyd-Warshall on the run's own samples: widths
    off by a constant factor (1%, or 0.1% on the disconnected space), or other samples, fail it."""
    import ce_characterization

    assert ce_characterization._k3_widths_vs_numpy(_k3_metrics()).status == "PASS"
    r = _k3_metrics()
    rows = r["disconnected"] if field == "min_width_01" else r["connected"]
    if field == "own_signals":
        rows[1][field] = _k3_metrics(seed=1)["connected"][1][field]
    elif field == "max_width_by_profile":
        rows[1][field] = [x * factor for x in rows[1][field]]
    else:
        rows[1][field] *= factor
    assert ce_characterization._k3_widths_vs_numpy(r).status == "FAIL"
    del r["profiles"]
    assert ce_characterization._k3_widths_vs_numpy(r).status == "FAIL"
# --- CE Props 1-2: the generalized VCG mechanism's interim utility under the conditional prior; CE Sec. 3.4 ---------

PG = {"kind": "public_good", "values": "linear", "a": 0.5, "cost": 1.0, "n": 2, "weights": None}
TRADE = {**PG, "kind": "bilateral_trade"}
BETA25 = {"kind": "beta", "lo": 0.0, "hi": 1.0, "a": 2.0, "b": 5.0}


def _joint_sample(prior: dict, n: int, rng) -> np.ndarray:
    """``(n, 2)`` signals from the prior's JOINT law (a correlated normal pair through Phi and the marginals' ppf):
    conditioning on a window of s_i below checks the conditional law of ``_reference.conditional_nodes``."""
    from scipy import special

    r = ref_._rho(prior)
    z = rng.standard_normal((n, 2))
    z[:, 1] = r * z[:, 0] + np.sqrt(1 - r * r) * z[:, 1]
    u = special.ndtr(z)
    cols = []
    for j, m in enumerate(ref_._marginals(prior, 2)):
        cols.append(special.betaincinv(m["a"], m["b"], u[:, j]) if m.get("kind") == "beta" else u[:, j])
    return np.stack(cols, -1)


@pytest.mark.parametrize(
    "env, prior",
    [
        (PG, {**UNIFORM, "marginal": {**BETA25, "a": 0.5, "b": 0.5}}),
        (PG, {**UNIFORM, "rho": 0.5}),
        (TRADE, {**UNIFORM, "marginal": BETA25, "rho": 0.5}),
        (TRADE, {**UNIFORM, "rho": -0.5}),
    ],
)
def test_vcg_interim_utility_matches_brute_force_monte_carlo(env, prior):
    """E[u_i | s_i = t] by quadrature = the mean of the closed-form ex post utility over joint NumPy draws with s_i in
    a window of half-width 0.004 around t (Monte Carlo, 4 SE + 2e-3 for the window); under a copula it differs from
    the unconditional mean, so the conditional law is what is tested."""
    rng = np.random.default_rng(7)
    s = _joint_sample(prior, 2_000_000, rng)
    settings = {"environment": env, "prior": prior}
    for i in (0, 1):
        types = [0.25, 0.5, 0.75]
        ref, err = ref_.vcg_interim_utility(settings, i, types)
        assert np.all(err < 1e-5)
        for t, x in zip(types, ref, strict=True):
            sel = s[np.abs(s[:, i] - t) < 0.004]
            u = ref_.vcg_ex_post_utility(env, i, t, sel[:, 1 - i])
            assert abs(u.mean() - x) <= 4 * u.std() / np.sqrt(len(u)) + 2e-3, (i, t, u.mean(), x)
            # a report m = t - 0.2: the mechanism in value / payment terms (outcome at the report, pay at the pivot)
            m, o, a = t - 0.2, sel[:, 1 - i], env["a"]
            if env["kind"] == "public_good":
                q = (1 + a) * (m + o) > env["cost"]
                dev = q * (t + a * o - (np.maximum(env["cost"] / (1 + a) - o, 0.0) + a * o))
            else:
                q = m > o if i == 0 else o > m
                dev = q * ((t + a * o) - (1 + a) * o) if i == 0 else q * ((1 + a) * o - (t + a * o))
            g, e = ref_.vcg_interim_gain(settings, i, t, m)
            d = dev - u
            assert abs(d.mean() - g) <= 4 * d.std() / np.sqrt(len(d)) + 2e-3 + e, (i, t, d.mean(), g)
        if ref_._rho(prior) != 0.0:  # the unconditional law of s_j gives another curve
            flat, _ = ref_.vcg_interim_utility({"environment": env, "prior": {**prior, "rho": None}}, i, types)
            assert np.max(np.abs(flat - ref)) > 0.01
    # the ex post utilities: trade (s_b - s_s)^+ for both, public good s_i minus the pivot (k - s_j)^+ where provided
    assert np.isclose(ref_.vcg_ex_post_utility(TRADE, 1, 0.3, 0.8), 0.5)
    assert ref_.vcg_ex_post_utility(TRADE, 0, 0.3, 0.8) == 0
    k = 1 / 1.5
    assert np.isclose(ref_.vcg_ex_post_utility(PG, 0, 0.5, 0.3), 0.5 - (k - 0.3))
    assert ref_.vcg_ex_post_utility(PG, 0, 0.2, 0.3) == 0.0 and ref_.vcg_ex_post_utility(PG, 0, 0.2, 0.9) == 0.2


def _prop12_case(prior: dict, env: dict = PG, curve_prior: dict | None = None, shift: float = 0.0,
                 gain_shift: float = 0.0) -> dict:  # fmt: skip
    """A ce_prop12_ex_post case whose interim curve is the quadrature under ``curve_prior`` (+ ``shift`` at s_i = 0.5),
    with the quick run's Monte Carlo SE (0.005), and best deviation gain at s_i = 0.75 -> m = 0.5 (+ ``gain_shift``,
    SE 0.001)."""
    types = [0.0, 0.25, 0.5, 0.75, 1.0]
    agents = []
    for i, name in enumerate(("agent1", "agent2")):
        u, _ = ref_.vcg_interim_utility({"environment": env, "prior": curve_prior or prior}, i, types)
        u = u + shift * (np.array(types) == 0.5)
        gain, _ = ref_.vcg_interim_gain({"environment": env, "prior": curve_prior or prior}, i, 0.75, 0.5)
        agents.append({"agent": name, "max_interim_regret": 0.0, "best_gain": gain + gain_shift, "se": 0.001,
                       "worst_type": 0.75, "worst_misreport": 0.5, "ir_violation": 0.0,
                       "min_interim_utility": 0.0, "se_min": 0.0, "min_at_type": 0.0,
                       "curve": {"types": types, "utility": u.tolist(), "utility_se": [0.0] + [0.005] * 4}})  # fmt: skip
    rho = ref_._rho(prior) != 0.0
    ex_post = {"regret_max": [0.0, 0.0], "ir_violation_max": [0.0, 0.0], "tol": 1.5e-5}
    return {"case": "x", "correlated": rho, "ex_post": ex_post, "interim": {"agents": agents},
            "settings": {"environment": env, "prior": prior}}  # fmt: skip


def test_prop12_interim_curve_row_passes_on_the_quadrature_and_fails_on_a_wrong_curve():
    import ce_bayesian

    cop = {**UNIFORM, "rho": 0.5}

    def status(case):
        return [r.status for r in ce_bayesian.prop12({"cases": [case]})]

    assert status(_prop12_case(cop)) == ["PASS"] * 5
    assert status(_prop12_case(cop, shift=0.03)) == ["PASS", "PASS", "FAIL", "PASS", "FAIL"]  # 6 SE off at one type
    assert status(_prop12_case(cop, gain_shift=0.005)) == ["PASS", "PASS", "PASS", "FAIL", "FAIL"]
    # the unconditional law of s_j where the prior is a copula: the curve of the wrong expectation fails
    assert status(_prop12_case(cop, curve_prior=UNIFORM))[2:4] == ["FAIL", "FAIL"]
    assert status(_prop12_case(UNIFORM, env=TRADE, curve_prior={**UNIFORM, "rho": -0.5}))[2] == "FAIL"
    no_settings = {k: v for k, v in _prop12_case(cop).items() if k != "settings"}
    assert status(no_settings) == ["PASS"] * 3  # older metrics: no curve row


def test_sec34_anchored_violation_against_a_simulation_and_its_row():
    """tau, its SD and P(u_i < 0) of CE Sec. 3.4's payment-anchored VCG (public good, uniform) against NumPy draws of
    the mechanism's ex post utility u_i = u_i^VCG + a s_j 1{s_j > k} - tau; the row fails on a wrong violation, a
    profile outside the region, or a wrong P."""
    import ce_bayesian

    a, c = 0.5, 1.0
    tau, sd, p = ref_.sec34_anchored_violation(a, c)
    assert np.isclose(tau, a * (1 - (1 / 1.5) ** 2) / 2)
    rng = np.random.default_rng(3)
    s = rng.random((2_000_000, 2))
    k = c / (1 + a)
    pay0 = a * s[:, 1] * (s[:, 1] > k)  # VCG at s_i = 0: the pivot is 0 iff s_j > k
    assert abs(pay0.mean() - tau) <= 4 * pay0.std() / np.sqrt(len(s)) and abs(pay0.std() - sd) < 1e-3
    u = ref_.vcg_ex_post_utility(PG, 0, s[:, 0], s[:, 1]) + pay0 - tau
    assert np.isclose(-u.min(), tau, atol=1e-9) and abs(np.mean(u < -1e-12) - p) < 2e-3
    with pytest.raises(ValueError):
        ref_.sec34_anchored_violation(0.5, 2.0)  # k > 1

    def metrics(v=0.1407, at=(0.0894, 0.4322), pv=0.314):
        rows = [
            {"max_violation": v, "at_profile": list(at), "p_violation": pv, "p_se": 0.007},
            {"max_violation": 0.1416, "at_profile": [0.0894, 0.4322], "p_violation": 0.313, "p_se": 0.007},
        ]
        return {"text_anchored": {"agents": rows}, "thm4": {"fee_inner": 16384, "inner": 1024},
                "settings": {"environment": PG, "prior": UNIFORM}}  # fmt: skip

    assert [r.status for r in ce_bayesian._sec34_as_written(metrics())] == ["INFO", "PASS"]
    assert ce_bayesian._sec34_as_written(metrics(v=0.150))[1].status == "FAIL"
    assert ce_bayesian._sec34_as_written(metrics(at=(0.0894, 0.7)))[1].status == "FAIL"  # s_j > k: not the region
    assert ce_bayesian._sec34_as_written(metrics(pv=0.36))[1].status == "FAIL"


def test_prop2_concentrating_priors_reach_the_ex_post_regret_off_the_grid_only():
    """CE Prop 2 "only if" (configs/ce_cor1_bayesian.toml): beta priors concentrating at (0.3, 0.7), off the 33-type /
    65-report grids, drive the interim regret to the point-mass (ex post) regret, the gap shrinking with kappa; at the
    grid point (0.3125, 0.6875) a report equal to the other's signal trades with probability 1/2 in the limit and
    never at the point mass (ties: no trade), so the buyer's interim regret stops at 0.952, 6% short of 1.015."""
    import math

    def regrets(centre, kappa):
        c = centre
        return ref_.cor1_interim_regret(0.5, (c * kappa, (1 - c) * kappa, 0), ((1 - c) * kappa, c * kappa, 0), 33, 65)

    for centre, stall in ((0.3, False), (0.3125, True)):
        limit = np.array(ref_.cor1_interim_regret(0.5, (math.inf, math.inf, centre), (math.inf, math.inf, 1 - centre),
                                                  33, 65))  # fmt: skip
        gaps = [np.abs(np.array(regrets(centre, k)) - limit) for k in (20, 2000, 200000)]
        assert all(np.all(b < a) for a, b in zip(gaps[:-1], gaps[1:], strict=True)) or stall
        if stall:
            assert gaps[-1][0] > 0.05 and np.isclose(regrets(centre, 2e6)[0], regrets(centre, 2e5)[0], atol=1e-4)
        else:
            assert np.all(gaps[-1] < 2e-3 * limit)


def test_design_audit_row_reads_the_budget_notion():
    """Ex post: the worst deficit counts; ex ante: the mean deficit (within 4 SE), a positive worst state allowed."""
    m = _design_metrics("d", 0.07, {"cutoffs": [0.6, 0.4]}, {"mean": 0.07, "se": 1e-3}, 0.078)
    m["design"]["audit"]["sampled"] = {**m["design"]["audit"]["sampled"], "deficit_max": 0.12,
                                       "deficit": {"mean": -1e-4, "se": 1e-4}}  # fmt: skip
    assert design_rows._audit_ok(m).status == "FAIL"
    m["design"]["budget"] = "ex_ante"
    assert design_rows._audit_ok(m).status == "PASS"
    m["design"]["audit"]["sampled"]["deficit"] = {"mean": 0.01, "se": 1e-4}
    assert design_rows._audit_ok(m).status == "FAIL"


def test_prop2_only_if_row_needs_convergence_to_the_ex_post_regret():
    """The row passes on the reference's own interim regrets off the grid (0.3, 0.7), and fails at the grid point
    (0.3125, 0.6875), where the buyer's regret stalls at 0.952 < 1.015, and with only two concentrations."""

    def metrics(centre, kappas):
        other = []
        for k in kappas:
            laws = [(centre * k, (1 - centre) * k), ((1 - centre) * k, centre * k)]
            r = ref_.cor1_interim_regret(0.5, (*laws[0], 0.0), (*laws[1], 0.0), 33, 65)
            other.append({"case": f"kappa = {k}", "prior": {"marginals": [{"a": a, "b": b} for a, b in laws]},
                          "interim_bayesian": {"agents": [{"max_interim_regret": x, "se_at_max": 1e-4} for x in r]}})  # fmt: skip
        uniform = {"types": 33, "misreports": 65, "agents": [{"max_interim_regret": 0.0}] * 2}
        return {"environment": "bilateral_trade(a=0.5)", "interim_bayesian": uniform, "other_priors": other}

    assert chung_ely._prop2_only_if(metrics(0.3, (20, 2000, 200000)))[-1].status == "PASS"
    assert chung_ely._prop2_only_if(metrics(0.3125, (20, 2000, 200000)))[-1].status == "FAIL"
    assert chung_ely._prop2_only_if(metrics(0.3, (20, 2000)))[-1].status == "FAIL"


def _second_best_metrics(a, pb, ps, exact, deficit_max=0.0):
    w = {"mean": exact, "se": 1e-4}
    return {
        "name": "sb", "environment": f"bilateral_trade(a={a})",
        "two_price_rules": {"pairs": 231, "grid": {"buyer_price": 0.5, "seller_price": 0.5, "welfare": exact},
                            "best": {"buyer_price": pb, "seller_price": ps, "welfare": w, "exact": {"value": exact},
                                     "deficit_max": deficit_max},
                            "search_minus_best": {"mean": -0.001, "se": 1e-4}},
        "search": {"welfare": {"mean": 0.95 * exact, "se": 1e-3}},
        "audit": {"deficit": {"max": 0.0}, "tol": 1e-5, "regret": [{"max": 0.0}]},
    }  # fmt: skip


@pytest.mark.parametrize("a", [0.0, 0.3])
def test_second_best_price_rows_need_the_closed_form_prices_to_1e3_and_balance(a):
    """The continuous two-price baseline: the closed-form prices ((1 + a)/2, (1 - a)/2) to 1e-3, balanced on the support
    grid, and its quadrature welfare equal to the closed form at those prices to 1e-5."""
    pb, ps = (1 + a) / 2, (1 - a) / 2
    exact = chung_ely._two_price_welfare(a, pb, ps)
    status = {c.claim: c.status for c in chung_ely.second_best(_second_best_metrics(a, pb, ps, exact))}
    assert all(s == "PASS" for s in status.values()), status

    def prices_ok(m):
        return next(c for c in chung_ely.second_best(m) if c.claim.endswith("prices")).status == "PASS"

    assert not prices_ok(_second_best_metrics(a, pb + 2e-3, ps + 2e-3, exact))  # off by 2e-3: fails
    assert not prices_ok(_second_best_metrics(a, pb, ps, exact, deficit_max=1e-3))  # a deficit on the grid: fails
    gains = [c for c in chung_ely.second_best(_second_best_metrics(a, pb, ps, exact + 3e-5))
             if c.claim.endswith("expected gains")]  # fmt: skip
    assert gains[0].status == "FAIL"  # the quadrature value off by 3e-5
    m = _second_best_metrics(a, pb, ps, exact)
    del m["two_price_rules"]["best"]
    assert [c.status for c in chung_ely.second_best(m)] == ["FAIL"]  # no design: a failed row, not a KeyError
