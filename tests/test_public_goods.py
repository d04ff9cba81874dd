"""Public goods, CE Section 5: Def 11 classes, Thm 7 / Thm 8 budget status, threshold contribution
rules (Def 12) with their pivot payments, and the Thm 9 search (layer 6) against a grid search."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_config, within

import jaxmech as jm

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _env(a, n=2, c=1.0, weights=None):
    return jm.public_good(jm.linear_public_values(a, n, weights), c, n)


@pytest.mark.parametrize(
    "a, n, weights, kind",
    [(0.5, 2, None, "increasing"), (1.0, 2, None, "common"), (2.0, 2, None, "decreasing"), (0.3, 3, None, "increasing"),
     (1.5, 3, None, "decreasing"), (0.2, 2, (1.0, 0.7), "increasing"), (0.8, 2, (1.0, 0.6), "mixed")],
)  # fmt: skip
def test_difference_classes(a, n, weights, kind):
    got = jm.difference_class(jm.linear_public_values(a, n, weights), n)
    assert got.kind == kind
    if kind == "mixed":  # the witness shows one rising and one falling difference
        w = got.witness
        assert w["rising"]["change"] > 0 > w["falling"]["change"]


def _efficient_deficit_reference(a, c, points=2000):
    """E[deficit] of the efficient rule + generalized VCG payments, v_i = s_i + a s_-i, U[0,1]^2 (midpoint rule).

    Provide iff (1 + a)(s_1 + s_2) > c; agent i's pivot x_i = max(0, c / (1 + a) - s_-i), payment
    t_i = x_i + a s_-i; deficit c - t_1 - t_2 when provided. Derived by hand, not with jaxmech.
    """
    g = (np.arange(points) + 0.5) / points
    s1, s2 = np.meshgrid(g, g, indexing="ij")
    prov = (1 + a) * (s1 + s2) > c
    t1 = np.maximum(0.0, c / (1 + a) - s2) + a * s2
    t2 = np.maximum(0.0, c / (1 + a) - s1) + a * s1
    return (
        float(np.mean(prov * (c - t1 - t2))),
        float(np.max(prov * (c - t1 - t2))),
        float(np.min(prov * (c - t1 - t2))),
    )


@pytest.mark.parametrize("a", [0.5, 1.0, 2.0])
def test_thm7_thm8_efficient_rule(a):
    env = _env(a)
    rep = jm.audit(
        env, jm.generalized_vcg(env), jm.independent(env.dims), key=jax.random.PRNGKey(1), n_profiles=32_768,
        misreports=jm.Misreports(grid=16, random=4), options=jm.StreamOptions(block_size=4096, chunk_size=1 << 15),
    ).report  # fmt: skip
    assert max(r["max"] for r in rep["regret"]) <= rep["tol"]  # Thm 7: efficient => ex post IC
    assert max(r["max"] for r in rep["ir_violation"]) <= rep["tol"]
    d = rep["deficit"]
    mean, dmax, dmin = _efficient_deficit_reference(a, 1.0)
    assert within(d["mean"], mean, d["se"], floor=rep["tol"])
    if a < 1:  # increasing differences: a deficit somewhere
        assert d["max"] > 0.05 and dmax > 0.05
    elif a > 1:  # decreasing differences: budget balanced
        assert d["max"] <= rep["tol"] and d["min"] < -0.05
    else:  # pure common values: budget balanced, but the generalized VCG payments are NOT exactly balanced
        assert d["max"] <= rep["tol"] and d["min"] < -0.5 and dmin < -0.5  # e.g. s = (0.9, 0.9): t = (0.9, 0.9)
        shares = jm.audit(
            env, jm.equal_shares(env), jm.independent(env.dims), key=jax.random.PRNGKey(1), n_profiles=8192,
            misreports=jm.Misreports(grid=16, random=4),
        ).report  # fmt: skip
        assert max(r["max"] for r in shares["regret"]) <= shares["tol"]  # CE Thm 8(3) with equal cost shares
        assert abs(shares["deficit"]["max"]) <= shares["tol"] and abs(shares["deficit"]["min"]) <= shares["tol"]


def test_threshold_payments_and_their_gradient(key):
    env = _env(0.3)
    vbar = jnp.array([0.45, 0.55])
    s = jax.random.uniform(key, (256, 2))
    # closed form: pivot of i solves max over j of x_j with v_j(x, s_-i) = vbar_j
    t = np.asarray(jax.vmap(lambda m: jm.threshold_payments(env, vbar, m))(s))
    sn = np.asarray(s)
    for i in range(2):
        o = sn[:, 1 - i]
        x_own = vbar[i] - 0.3 * o  # v_i(x) = x + 0.3 o
        x_other = (vbar[1 - i] - o) / 0.3  # v_j(x) = o + 0.3 x
        x = np.clip(np.maximum(x_own, x_other), 0, 1)
        np.testing.assert_allclose(t[:, i], x + 0.3 * o, atol=2e-6)
    jac = jax.vmap(lambda m: jax.jacobian(lambda v: jm.threshold_payments(env, v, m))(vbar))(s)
    eps = 1e-3

    def shifted(k):
        v = vbar.at[k].add(eps)
        return np.asarray(jax.vmap(lambda m: jm.threshold_payments(env, v, m))(s))

    fd = np.stack([(shifted(k) - t) / eps for k in range(2)], axis=-1)
    interior = np.all(np.abs(fd - np.round(fd, 1)) < 1e-2, axis=(1, 2))  # away from the kinks of max / clip
    np.testing.assert_allclose(np.asarray(jac)[interior], fd[interior], atol=2e-2)


def test_threshold_rule_budget_balance_on_and_off_the_budget_line():
    env = _env(0.3)
    prior = jm.independent(env.dims)
    on = jm.threshold_contribution(env, [0.6, 0.4])
    below = jm.threshold_contribution(env, [0.5, 0.4])
    rep = jm.audit(
        env, on, prior, key=jax.random.PRNGKey(2), n_profiles=16_384, misreports=jm.Misreports(grid=16)
    ).report
    assert rep["deficit"]["max"] <= rep["tol"] and max(r["max"] for r in rep["regret"]) <= rep["tol"]
    rep = jm.audit(
        env, below, prior, key=jax.random.PRNGKey(2), n_profiles=16_384, misreports=jm.Misreports(grid=4)
    ).report
    assert 0 < rep["deficit"]["max"] <= 0.1 + 1e-6  # sum vbar = c - 0.1: deficits up to 0.1 near the corner


def test_thm9_search_lands_on_the_budget_line_and_matches_the_grid():
    env = _env(0.3)
    prior = jm.independent(env.dims)
    fam = jm.threshold_family(env, init=[0.3, 0.35])
    res = jm.search(env, fam, prior, jax.random.PRNGKey(0), jm.SearchConfig(steps=200, batch=2048))
    raw = np.asarray(res.params)
    assert abs(raw.sum() - 1.0) < 0.01  # Thm 9 (1): on the budget line
    assert 1.0 - 1e-6 <= float(np.sum(res.restored)) <= 1.01  # restoration: feasible
    grid = jm.budget_line_grid(env, 101)
    rows = np.concatenate([np.asarray(res.restored)[None], grid])
    mean, se, per = jm.welfare_table(env, rows, jm.threshold_rule(env), prior, jax.random.PRNGKey(9), 1 << 15)
    best = int(np.argmax(mean[1:])) + 1
    diff = per[0] - per[best]
    assert mean[0] >= mean[best] - 2 * se[best]  # welfare matches the grid's best within 2 SE
    assert diff.mean() >= -2e-3  # and, paired on common profiles, by less than 0.6% of it
    assert np.all(np.asarray(res.log["temperature"])[1:] < np.asarray(res.log["temperature"])[:-1])  # annealed


def test_search_config_end_to_end(tmp_path):
    m = run_config(
        CONFIGS / "ce_thm9_search_asymmetric.toml",
        tmp_path / "s",
        "search.steps=120",
        "search.grid_points=41",
        "search.grid_profiles=8192",
        "audit.profiles=4096",
        "audit.misreports.grid=8",
        "audit.misreports.random=2",
    )
    s = m["search"]
    assert abs(s["sum_minus_cost_found"]) < 0.02 and -1e-5 <= s["sum_minus_cost_restored"] < 0.02
    assert abs(s["vbar_restored"][0] - s["vbar_restored"][1]) > 0.03  # the asymmetric optimum
    assert s["boundary_point"]["residual"] < 1e-3  # Thm 9 (2): vbar = v(sbar)
    assert m["audit"]["deficit"]["max"] <= m["audit"]["tol"]
    assert {"search_trajectory.png", "welfare_budget_line.png", "provision_region.png"} <= set(m["plots"])
    assert 20 <= json.loads((tmp_path / "s" / "metrics.json").read_text())["grid"]["points"] <= 41


def test_thm8_config_classes(tmp_path):
    cases = '[{name="inc", set=["environment.a=0.5"]}, {name="common", set=["environment.a=1.0", "mechanism.kind=equal_shares"]}, {name="dec n3", set=["environment.a=2.0", "environment.n=3", "environment.cost=3.0"]}]'
    rows = run_config(
        CONFIGS / "ce_thm8_budget_classes.toml",
        tmp_path / "t8",
        "audit.profiles=8192",
        f"experiment.cases={cases}",
    )["sweep"]["rows"]
    assert [r["conditions"]["difference_class"] for r in rows] == ["increasing", "common", "decreasing"]
    inc, com, dec = (r["deficit"] for r in rows)
    assert inc["max"] > 0.05 and abs(com["max"]) <= 1e-5 and abs(com["min"]) <= 1e-5 and dec["max"] <= 1e-5
    assert rows[1]["regret_max"] <= 1e-5


def test_sec53_contributions_config(tmp_path):
    m = run_config(
        CONFIGS / "ce_sec53_contributions.toml", tmp_path / "c", "experiment.signals=41", "experiment.bids=21"
    )
    c = m["contributions"]
    assert c["strict_share"] == 1.0 and c["mismatch_margin"] <= 1e-6  # implements the threshold rule (CE Sec. 5.3)
    assert c["agent1"]["gain"] <= c["tol"] and c["agent2"]["gain"] <= c["tol"]  # ex post equilibrium
    assert c["budget_margin"] >= -c["tol"]  # taxes cover the cost whenever funded
    assert m["plots"] == ["contribution_strategies.png"]


def test_richer_family_does_not_beat_threshold_rules(tmp_path):
    m = run_config(
        CONFIGS / "ce_thm9_richer_family.toml",
        tmp_path / "r",
        "search.steps=200",
        "search.grid_points=61",
        "search.grid_profiles=16384",
        "audit.profiles=4096",
        "audit.misreports.grid=8",
        "audit.misreports.random=2",
    )
    d = m["threshold_rules"]["search_minus_best"]
    assert d["mean"] <= 2 * d["se"]  # CE Thm 9: no budget-balanced monotone rule beats the best threshold rule
    assert m["audit"]["deficit"]["max"] <= m["audit"]["tol"]  # budget balance enforced exactly (restoration)
    assert max(r["max"] for r in m["audit"]["regret"]) <= m["audit"]["tol"]


def test_bilateral_second_best_private_values(tmp_path):
    """Private values: the budget-balanced ex post IC/IR trading rules are posted prices; best p = 1/2, gains 1/8."""
    m = run_config(
        CONFIGS / "ce_bilateral_second_best.toml",
        tmp_path / "b",
        "search.steps=500",
        "search.grid_points=26",
        "search.grid_profiles=32768",
        "audit.profiles=4096",
        "audit.misreports.grid=8",
        "audit.misreports.random=2",
    )
    pp = m["two_price_rules"]["best"]
    assert abs(pp["buyer_price"] - 0.5) <= 0.04 and abs(pp["seller_price"] - 0.5) <= 0.04  # a posted price
    pp = {"best_welfare": pp["welfare"]}
    assert abs(pp["best_welfare"]["mean"] - 0.125) <= 4 * pp["best_welfare"]["se"] + 0.002
    a = m["audit"]
    assert a["deficit"]["max"] <= a["tol"] and max(r["max"] for r in a["regret"]) <= a["tol"]
    w = m["search"]["welfare"]["mean"]
    assert (
        0.8 * 0.125 <= w <= pp["best_welfare"]["mean"] + 3 * pp["best_welfare"]["se"]
    )  # near, never above, the optimum


def test_bilateral_second_best_interdependent_two_prices(tmp_path):
    """a = 0.3: no posted price is budget balanced; two-price rules with p_b - p_s >= a are (checked on the grid)."""
    m = run_config(
        CONFIGS / "ce_bilateral_second_best_interdependent.toml",
        tmp_path / "i",
        "search.steps=100",
        "search.grid_points=26",
        "search.grid_profiles=16384",
        "audit.profiles=4096",
        "audit.misreports.grid=8",
        "audit.misreports.random=2",
    )
    tp = m["two_price_rules"]
    assert "best_posted_price" not in tp or tp["best_posted_price"]["welfare"] == 0.0
    b = tp["best"]
    assert b["buyer_price"] - b["seller_price"] >= 0.3 - 1e-6 and b["welfare"]["mean"] > 0.04
    a = m["audit"]
    assert a["deficit"]["max"] <= a["tol"] and max(r["max"] for r in a["regret"]) <= a["tol"]
    assert m["search"]["welfare"]["mean"] > 0.9 * b["welfare"]["mean"]  # warm start keeps it near
