"""Benchmark baselines (benchmarks/baselines.py, loaded as ``jaxmech bench`` loads it) compute the same statistics as
jaxmech (checked against jaxmech and closed forms); without the file the CLI runs the JAX rows and says so."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_cli

import jaxmech as jm
from jaxmech._src.app import bench, cli

baselines = bench.load_baselines()  # the checkout's benchmarks/baselines.py, by path
assert baselines is not None, f"{bench.baselines_path()} is missing"


def test_w1_numpy_matches_the_closed_form():
    st = baselines.w1_baseline(baselines.NumpyXP(False, 7), 1 << 14)
    assert st["regret_buyer_max"] == 0.0 and st["regret_seller_max"] == 0.0  # CE Sec. 4.4: ex post IC
    assert st["ir_buyer_max"] == 0.0 and st["ir_seller_max"] == 0.0  # ex post IR
    assert abs(st["deficit_mean"] - 0.25) <= 4 * st["deficit_se"]  # E[deficit] = (1 + a) / 6
    assert 1.4 < st["deficit_max"] <= 1.5  # (1 + a)(s_beta - s_sigma) <= 1.5


def test_w2_closed_form_pivot_equals_bisection_and_numpy_matches_the_audit():
    n, cost = 2, 1.0  # the W2 code at a size that compiles fast (W2 itself: n = 8, c = 4)
    env = jm.public_good(jm.linear_public_values(bench.A_PUBLIC, n), cost, n)
    vbar = jnp.full((n,), cost / n)
    s = jax.random.uniform(jax.random.PRNGKey(1), (256, n))
    closed = jax.jit(jax.vmap(lambda m: jnp.stack([bench.w2_pivot(vbar, m, i) for i in range(n)])))(s)
    bis = jax.jit(jax.vmap(lambda m: jnp.stack([jm.threshold_pivot(env, vbar, m, i) for i in range(n)])))(s)
    np.testing.assert_allclose(closed, bis, atol=2e-6)
    assert 0.1 < np.mean((closed > 0) & (closed < 1)) < 0.9  # interior and clipped pivots both occur
    mech = jm.pivot_payments(env, jm.threshold_rule(env), params=vbar, pivot=bench.w2_pivot)
    rep = jm.audit(
        env, mech, jm.independent(env.dims), key=jax.random.PRNGKey(0), n_profiles=4096,
        misreports=jm.Misreports(grid=8, random=0, kinks=True), options=jm.StreamOptions(block_size=4096, chunk_size=4096),
    ).report  # fmt: skip
    st = baselines.w2_baseline(baselines.NumpyXP(False, 3), 4096, k=8, agents=n, cost=cost)
    assert max(r["max"] for r in rep["regret"]) == 0.0
    assert max(st[f"regret_{i}_max"] for i in range(n)) == 0.0
    d, se = rep["deficit"]["mean"] - st["deficit_mean"], np.hypot(rep["deficit"]["se"], st["deficit_se"])
    assert abs(d) <= 4 * se
    assert abs(rep["outcomes"]["provided"]["p"] - st["provided_mean"]) <= 4 * np.hypot(
        rep["outcomes"]["provided"]["se"], st["provided_se"]
    )


def test_w3_kinks_equal_the_mechanism_kinks():
    env = jm.example1()
    mech = jm.personalized_prices(env, jm.example1_prices)
    s = np.asarray(jax.random.uniform(jax.random.PRNGKey(2), (64, 4)))
    xp = baselines.NumpyXP(False, 0)
    p1, c1, p2, c2 = s.T
    for i, (p, c, price, cj) in enumerate(((p1, c1, p2 + c2**2, c2), (p2, c2, p1 + c1**2, c1))):
        ref = np.asarray(
            jax.jit(jax.vmap(lambda m, i=i: mech.kinks((), m, i)))(jnp.asarray(s))
        )  # (64, 3, 2) by bisection
        kp, kc = baselines.w3_kinks(xp, p, c, price, cj)  # (64, 6): each point -eps, +eps
        for sign, cols in ((-1, slice(0, None, 2)), (1, slice(1, None, 2))):
            np.testing.assert_allclose(kp[:, cols], np.clip(ref[:, :, 0] + sign * bench.KINK_EPS, 0, 1), atol=2e-6)
            np.testing.assert_allclose(kc[:, cols], np.clip(ref[:, :, 1] + sign * bench.KINK_EPS, 0, 1), atol=2e-6)
    st = baselines.w3_baseline(xp, 2048)
    assert st["regret_buyer1_max"] == 0.0 and st["regret_buyer2_max"] == 0.0  # B Lemma 1


def test_w4_gradient_by_hand_equals_autodiff_through_the_family():
    a, c = bench.A_SEARCH, 1.0
    env = jm.public_good(jm.linear_public_values(a, 2), c, 2)
    fam = jm.threshold_family(env)
    s, grid = baselines.w4_problem(baselines.NumpyXP(False, 5), 512, grid_points=9)  # float32 samples
    vbar = np.array([0.45, 0.6], np.float32)
    args = (0.1, 0.3, 10.0, 0.05)  # temperature, lam, rho, tau

    def lagrangian(v):  # the search's objective, from the family's own functions (search.search's lagrangian)
        temperature, lam, rho, tau = args
        q = jax.vmap(lambda x: fam.soft_decide(v, x, temperature))(s)
        obj = jnp.mean(jax.vmap(env.welfare)(q, s))
        sc = jnp.concatenate([s, grid])
        viol = jax.vmap(lambda x: fam.violation(v, x))(sc)
        w = jax.vmap(lambda x: fam.weight(v, x))(sc)
        con = jm.soft_max(viol, w, tau)
        return -obj + 0.5 * rho * (jnp.maximum(0.0, con + lam / rho) ** 2 - (lam / rho) ** 2)

    loss_ref, grad_ref = jax.jit(jax.value_and_grad(lagrangian))(jnp.asarray(vbar))  # float32, autodiff
    s, grid, vbar = (x.astype(np.float64) for x in (s, grid, vbar))
    loss, grad = baselines.w4_loss_and_grad_numpy(s, grid, vbar, *args, a=a, cost=c)  # float64, by hand
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-4)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-3, atol=1e-5)
    assert np.all(np.abs(grad) > 1e-3)  # both components move
    h = 1e-6  # and central differences of the hand-written loss
    fd = [(baselines.w4_loss_and_grad_numpy(s, grid, vbar + h * e, *args)[0] - baselines.w4_loss_and_grad_numpy(s, grid, vbar - h * e, *args)[0]) / (2 * h) for e in np.eye(2)]  # fmt: skip
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("a", [bench.A_OUTCOMES])
def test_w5_numpy_certificates_equal_certify(a):
    k = 4
    env = jm.project_choice(k, 2, a)
    x = np.asarray(jax.random.uniform(jax.random.PRNGKey(3), (64, k)))
    others = np.asarray(jax.random.uniform(jax.random.PRNGKey(4), (5, k)))
    profiles = np.concatenate([np.zeros_like(others), others], axis=1)  # agent 0's part is ignored
    rep = jm.certify(env, jm.efficient_rule(env), (), jnp.asarray(profiles), 0, jnp.asarray(x))
    with np.errstate(invalid="ignore"):
        out = baselines.w5_baseline(baselines.NumpyXP(False, 0), others.astype(np.float32), x.astype(np.float32), a=a)
    np.testing.assert_array_equal(out["feasible"], rep.feasible)
    np.testing.assert_allclose(out["max_walk"], rep.max_walk, atol=1e-5)
    assert rep.fraction == 1.0 and np.all(rep.max_walk <= 1e-5)  # CE Thm 1: the efficient rule passes


@pytest.mark.parametrize("a", [0.0, 0.5])
def test_mechaudit_trade_equals_the_lp_reference(a):
    """The MechAudit baseline of bench_design_vs_lp.py states the model jm.lp_reference solves: same optimum."""
    pytest.importorskip("mechaudit")  # the `bench` extra, never a runtime dependency
    from jaxmech._src.models.lp_reference import grid_types

    env = jm.bilateral_trade(jm.linear_trade_values(a))
    prior = jm.independent(env.dims)
    ref = jm.lp_reference(env, prior, grids=(9,)).solutions[0].value
    value, seconds = baselines.mechaudit_trade(9, a, grid_types(prior, 9))
    assert abs(value - ref) <= 1e-7 and seconds > 0
    assert abs(baselines.mechaudit_trade(9, a)[0] - ref) <= 1e-7  # the default grid: the same midpoints


@pytest.mark.parametrize("method", ["simplex", "ipm"])
def test_mechaudit_interior_point_gives_the_same_optimum(method):
    pytest.importorskip("mechaudit")
    env = jm.bilateral_trade(jm.linear_trade_values(0.5))
    ref = jm.lp_reference(env, jm.independent(env.dims), grids=(7,)).solutions[0].value
    assert abs(baselines.mechaudit_trade(7, 0.5, method=method)[0] - ref) <= 1e-7


def test_w6_design_reaches_the_optimum_and_both_lps_agree(tmp_path):
    """W6 (``jaxmech bench --workload W6``): one cold start of the design lands within 0.5% of the extrapolated
    optimum and of the closed form 1/8 (Hagerty-Rogerson: the posted price 1/2); jaxmech's LP at G = 7 is the
    exact grid optimum, MechAudit's (where installed) the same value with both HiGHS methods; the ratio lines name
    both MechAudit rows (they share a first word)."""
    lines = []
    rec = bench.run_workloads(["W6"], quick=True, float64=False, repeats=1, say=lines.append,
                              overrides={"grid": 7, "starts": 1})  # fmt: skip
    rows = {r["path"]: r for r in rec["workloads"]["W6"]["rows"]}
    design = rows["jaxmech design (two_price, 1 cold start)"]["stats"]
    assert abs(design["value"] - 0.125) <= 0.005 * 0.125 and design["gap_pct"] <= 0.5
    assert abs(design["mc"] - 0.125) <= 4 * design["se"]
    env = jm.bilateral_trade(jm.linear_trade_values(0.0))
    lp7 = jm.lp_reference(env, jm.independent(env.dims), grids=(7,)).solutions[0].value
    assert rows["jaxmech LP (jm.lp_reference, HiGHS)"]["stats"]["value"] == pytest.approx(lp7, abs=1e-9)
    ma = [r for p, r in rows.items() if p.startswith("mechaudit")]
    assert len(ma) == (2 if baselines.mechaudit_available() else 0)
    for r in ma:
        assert abs(r["stats"]["minus_jaxmech_lp"]) <= 1e-7 and r["size"] == 7
    ratio = [x for x in lines if x.startswith("  ratio jaxmech design")]
    assert len(ratio) == (1 if ma else 0)  # ratios to the baselines: none without MechAudit
    assert all(x.count("mechaudit LP (") == len(ma) for x in ratio)


def test_ratio_lines_name_baselines_by_first_word_unless_two_share_it():
    rows = [bench.Row("jaxmech x", 1, 10.0, None, {}), bench.Row("numpy (v)", 1, 5.0, None, {}),
            bench.Row("m (a)", 1, 1.0, None, {}), bench.Row("m (b)", 1, 4.0, None, {})]  # fmt: skip
    assert bench.ratio_lines(rows) == ["  ratio jaxmech x: 2.00x numpy, 10.00x m (a), 2.50x m (b)"]


def test_bench_subcommand_is_wired(capsys):
    with pytest.raises(SystemExit):
        run_cli(["bench", "--workload", "W9"])
    assert "invalid choice" in capsys.readouterr().err


def test_the_baselines_load_from_the_checkout_and_not_at_import_time():
    assert bench.BASELINES_DIR == bench.baselines_path().parent == Path(__file__).resolve().parents[1] / "benchmarks"
    assert baselines.__file__ == str(bench.baselines_path())
    loaded = [
        m for m in [*sys.modules.values(), *vars(bench).values()] if getattr(m, "__file__", None) == baselines.__file__
    ]
    assert loaded == []  # importing jaxmech (and app/bench) imports no baselines; the CLI loads them by path per run


def test_without_the_baselines_the_cli_runs_the_jax_rows_and_says_so(tmp_path, capsys):
    assert bench.load_baselines(tmp_path) is None
    target = tmp_path / "bench.json"
    argv = ["bench", "--workload", "W5", "--quick", "--profiles", "8", "--repeats", "1", "--baselines", str(tmp_path)]
    assert cli.main([*argv, "--json", str(target)]) == 0
    out = capsys.readouterr().out
    line = f"baselines: {tmp_path / 'baselines.py'} not found (they ship with the repository, not the wheel); JAX rows only"
    assert line in out.splitlines()
    assert "jaxmech certify" in out and "numpy (vectorized)" not in out and "ratio" not in out
    rec = json.loads(target.read_text())
    assert rec["baselines"] is None and [r["path"] for r in rec["workloads"]["W5"]["rows"]] == ["jaxmech certify"]


def test_w6_without_scipy_times_the_design_alone(monkeypatch):
    """A machine without the `lp` extra (a GPU host, say) still runs W6: the design row, its gap to the closed form
    1/8, and a line saying why there are no LP rows."""
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # `import scipy.optimize` raises ImportError
    # the design's own numbers are W6's other test; here only what W6 does without an LP (a stand-in design)
    design = SimpleNamespace(value=0.124, objective={"mean": 0.1241, "se": 4e-4})
    monkeypatch.setattr(jm, "design", lambda *args, **kwargs: design)
    rows, refs = bench.design_vs_lp(G=5, grids=(5, 7), starts=1, mechaudit_grids=(5,), bl=baselines)
    assert not refs["has_lp"] and [r.path for r in rows] == ["jaxmech design (two_price, 1 cold start)"]
    assert rows[0].stats["value"] == 0.124 and refs["gap"] == pytest.approx(0.001 / 0.125)  # against 1/8
