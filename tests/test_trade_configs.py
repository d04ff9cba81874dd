"""Every CE Section 4 config in configs/ runs end to end (small sizes) and shows its result in metrics.json."""

import tomllib
from pathlib import Path

import pytest
from conftest import run_cli, run_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMALL = (
    "audit.profiles=8192", "audit.block_size=2048", "audit.chunk_size=8192", "audit.misreports.grid=8",
    "audit.misreports.random=2",
)  # fmt: skip


def _run(tmp_path, name, *overrides):
    out = tmp_path / name
    metrics = run_config(CONFIGS / f"{name}.toml", out, *SMALL, *overrides)  # the summary renders
    assert metrics["experiment"] == tomllib.loads((out / "config.toml").read_text())["experiment"]["kind"]
    for f in ("config.toml", "manifest.json"):
        assert (out / f).exists()
    for f in metrics["plots"]:
        assert (out / f).stat().st_size > 1000
    return metrics


def test_sec44_deficit_curve(tmp_path):
    m = _run(tmp_path, "ce_sec44_deficit_curve", "experiment.values=[-2.0, -1.0]")
    rows = m["sweep"]["rows"]
    for r in rows:
        d = r["deficit"]
        assert abs(d["mean"] - r["deficit_closed_form"]) <= 4 * d["se"] + 1e-6
    assert rows[0]["deficit"]["max"] <= 1e-5  # a = -2: a surplus in every trading state
    assert abs(rows[1]["deficit"]["max"]) <= 1e-5 and abs(rows[1]["deficit"]["min"]) <= 1e-5  # a = -1: balance
    assert m["plots"] == ["deficit_sweep.png"]


def test_thm2_monotonicity(tmp_path):
    cases = tomllib.loads((CONFIGS / "ce_thm2_monotonicity.toml").read_text())["experiment"]["cases"]
    assert len(cases) == 7  # 5 with a = 0.5, 2 with private values (CE Lemma 2)
    keep = [c for c in cases if "ramp" in c["name"] or "NOT" in c["name"]]
    sets = [list(c.get("set", [])) + (["mechanism.cells=256"] if "ramp" in c["name"] else []) for c in keep]
    cases = (
        "["
        + ", ".join(f'{{name="{c["name"]}", set={st!r}}}'.replace("'", '"') for c, st in zip(keep, sets, strict=True))
        + "]"
    )
    m = _run(tmp_path, "ce_thm2_monotonicity", f"experiment.cases={cases}")
    rows = m["sweep"]["rows"]
    assert [r["regret_max"] > 1e-3 for r in rows] == [False, True, True]
    bad = rows[-1]["regret"][0]
    assert bad["p_above_tol"]["count"] > 0 and len(bad["worst_misreport"]) == 1


def test_thm5_deficit(tmp_path):
    # two copula correlations: one family (rho is an argument of one kernel); Thm 5 is prior-free
    mult = '"environment.values=multiplicative", "environment.a=0.3"'
    cases = f'[{{name="rho+", set=[{mult}, "prior.rho=0.5"]}}, {{name="rho-", set=[{mult}, "prior.rho=-0.5"]}}]'
    m = _run(tmp_path, "ce_thm5_deficit", f"experiment.cases={cases}")
    rows = m["sweep"]["rows"]
    for r in rows:
        assert r["deficit"]["min"] >= -1e-5  # Lemma 4: never a surplus
        assert r["deficit"]["ci95"][0] > 0  # Thm 5: a deficit in expectation
        assert r["conditions"]["others_weak"]
    assert rows[0]["deficit"]["mean"] < rows[1]["deficit"]["mean"]  # positive correlation: fewer trades


@pytest.mark.parametrize("name", ["ce_thm6_deficit_minimizing", "ce_lemma5_randomized"])
def test_state_by_state_minimizers(tmp_path, name):
    m = _run(tmp_path, name)
    c = m["comparison"]
    for row in c["mechanisms"][1:]:
        assert row["minus_baseline"]["min"] >= -c["tol"]
        assert row["minus_baseline"]["mean"] > 0
    assert not m["conditions"]["strong_single_crossing"]["holds"]  # ties on a band
    assert {"deficits.png", "trade_region.png", "deficit.png"} <= set(m["plots"])


def test_cor1_bayesian(tmp_path):
    m = _run(
        tmp_path, "ce_cor1_bayesian", "mechanism.inner=1024", "experiment.types=3", "experiment.misreports=9",
        "experiment.inner=256", "audit.profiles=4096",
    )  # fmt: skip
    assert all(r["max"] <= 1e-5 for r in m["ex_post_audit"]["regret"])
    assert all(r["p_above_tol"]["p"] > 0.5 for r in m["interim_audit"]["regret"])
    assert all(r["max_interim_regret"] <= 1e-3 for r in m["interim_bayesian"]["agents"])
    mb = m["comparison"]["mechanisms"][1]["minus_baseline"]
    assert abs(mb["mean"]) <= 4 * mb["se"]
    # CE Prop 2 "only if": the same mechanism under the config's concentrated priors is not Bayesian IC
    assert m["other_priors"] and all(
        max(a["max_interim_regret"] for a in o["interim_bayesian"]["agents"]) > 0.1 for o in m["other_priors"]
    )


def test_sec43_double_auction(tmp_path):
    m = _run(tmp_path, "ce_sec43_double_auction")
    d = m["double_auction"]
    assert (
        d["efficient_share"] > 0.95 and d["min_deficit"] >= 0 and max(d["equilibrium_gain"].values()) <= d["bid_step"]
    )
    for x in m["refinement"]:  # CE Sec 4.3: inside the efficient rule's grid ex post IC + IR deficit interval
        lo, hi = x["deficit_interval"]["low"], x["deficit_interval"]["high"]
        assert lo - 1e-6 <= x["mean_deficit_low"] <= x["mean_deficit"] <= hi + 1e-6


def test_bad_case_override_is_a_one_line_config_error(tmp_path, capsys):
    case = 'experiment.cases=[{name="x", set=["prior.rhoo=0.5"]}]'
    assert run_cli(["run", CONFIGS / "ce_thm5_deficit.toml", "--out", tmp_path / "nothing", "--set", case]) == 2
    err = capsys.readouterr().err
    assert (
        "config error" in err and "experiment.cases[0] (x): prior.rhoo: unknown key (did you mean 'prior.rho'?)" in err
    )
    assert not (tmp_path / "nothing").exists()
