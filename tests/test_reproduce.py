"""``jaxmech reproduce``: discovery, rows, exit codes, a failing experiment, the report files, the HTML in a browser.

Discovery, claim rows and worker flags are app internals (jaxmech._src.app.reproduce, compile_options): tested directly.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

import jaxmech as jm
from jaxmech._src.app import config as cfg
from jaxmech._src.app import reproduce as rep
from jaxmech._src.core import compile_options

ROOT = Path(__file__).resolve().parents[1]

TINY = """
name = "{name}"
seed = 0
[environment]
kind = "bilateral_trade"
values = "linear"
a = {a}
[mechanism]
kind = "generalized_vcg"
pivot = "closed_form"
[audit]
profiles = 4000
block_size = 1024
chunk_size = 4096
[audit.misreports]
grid = 4
random = 0
kinks = false
[experiment]
plots = {plots}
"""

MODULE = """
from jaxmech._src.app.reproduce import Experiment, check, info, measure, pm

def deficit(m):
    d = m["audit"]["deficit"]
    a = {"t_ok": 0.5, "t_fail": 0.5}[m["name"]]
    ref = (1 + a) / 6 if m["name"] == "t_ok" else 0.0  # t_fail checks a wrong reference on purpose
    return [
        check("CE Sec 4.4", "expected deficit", pm(d), f"{ref:.4f}", abs(d["mean"] - ref) <= 4 * d["se"]),
        info("CE Sec 4", "a finding", "x", "y"),
        measure("CE Sec 4", "throughput", "123 profiles/s"),
    ]

def broken(m):
    raise KeyError("no_such_metric")

EXPERIMENTS = {
    "t_ok": Experiment(deficit, quick=("audit.profiles=2000",)),
    "t_fail": Experiment(deficit),
    "t_typo": Experiment(deficit, paper="B"),
    "t_broken": Experiment(broken, paper="B"),
}
"""


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    (root / "configs").mkdir()
    (root / "experiments").mkdir()
    for name in ("t_ok", "t_fail", "t_broken"):
        plots = "true" if name == "t_ok" else "false"
        (root / "configs" / f"{name}.toml").write_text(TINY.format(name=name, a=0.5, plots=plots))
    typo = TINY.format(name="t_typo", a=0.5, plots="false").replace("kinks", "kinkz")
    (root / "configs" / "t_typo.toml").write_text(typo)
    (root / "experiments" / "tiny.py").write_text(textwrap.dedent(MODULE))
    return rep.Layout(root)


@pytest.fixture(scope="module")
def report(layout, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    code = run_cli(["reproduce", "--quick", "--jobs", "2", "--root", str(layout.root), "--out", str(out)])
    return code, out, json.loads((out / "summary.json").read_text())


def test_rows_statuses_and_exit_code(report):
    code, out, s = report
    assert code == 1  # t_fail's claim fails
    by = {r["name"]: r for r in s["experiments"]}
    assert list(by) == ["t_ok", "t_fail", "t_typo", "t_broken"]  # registration order, none stopped the others
    assert [c["status"] for c in by["t_ok"]["claims"]] == ["PASS", "INFO", "MEASURE"]
    assert by["t_ok"]["overrides"] == ["audit.profiles=2000"]
    assert json.loads((out / "t_ok" / "metrics.json").read_text())["audit"]["profiles"] == 2000
    assert (out / "t_ok" / "manifest.json").is_file()
    for flag in ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false"):
        # the quick workers' XLA flags, recorded where the numbers are
        assert flag in json.loads((out / "t_ok" / "manifest.json").read_text())["xla_flags"] and flag in s["xla_flags"]
    d = json.loads((out / "t_ok" / "metrics.json").read_text())["audit"]["deficit"]
    assert abs(d["mean"] - 0.25) <= 4 * d["se"]  # the row's number is the run's number
    assert [c["status"] for c in by["t_fail"]["claims"]] == ["FAIL", "INFO", "MEASURE"]
    for bad, needle in (("t_typo", "kinkz"), ("t_broken", "no_such_metric")):
        (row,) = by[bad]["claims"]
        assert row["status"] == "FAIL" and needle in row["measured"] and by[bad]["error"]
        assert (out / bad / "error.txt").is_file()
    assert s["totals"] == {"PASS": 1, "FAIL": 3, "INFO": 2, "MEASURE": 2}  # a MEASURE row never fails the run
    assert {"jax", "device", "backend", "jaxmech"} <= set(s["versions"])
    assert s["jobs"] == 2  # two worker processes; the summary keeps registration order


def test_report_files(report):
    _, out, s = report
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "1 PASS, 3 FAIL, 2 INFO**, 2 MEASURE" in md
    assert md.count("| CE Sec 4.4 | expected deficit |") == 2
    # measurements have their own section, after the claims, and are not rows of the paper tables
    claims_part, measured_part = md.split("## Measurements")
    assert "123 profiles/s" not in claims_part and measured_part.count("| CE | CE Sec 4 | throughput |") == 2
    assert "## Chung & Ely" in md and "## Bikhchandani" in md  # grouped by paper
    figs = s["experiments"][0]["figures"]
    assert figs and all((out / f["file"]).is_file() for f in figs)
    assert "Trade region" in figs[0]["caption"]
    # self-contained: every figure embedded, nothing fetched from anywhere
    assert html.count("data:image/png;base64,") == sum(len(r["figures"]) for r in s["experiments"])
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert html.count("<td class='FAIL'>") == 3
    assert "<h2>Measurements</h2>" in html and html.count("123 profiles/s") == 2 and "2 MEASURE" in html


def test_only_selects_and_bad_input_exits_2(layout, tmp_path, capsys):
    found = rep.discover(layout)
    assert rep.select(found, ["t_ok"]) == ["t_ok"]
    assert rep.select(found, ["t_*o*"]) == ["t_ok", "t_typo", "t_broken"]
    assert run_cli(["reproduce", "--root", str(layout.root), "--only", "zzz", "--out", str(tmp_path)]) == 2
    assert "matches no experiment" in capsys.readouterr().err
    assert run_cli(["reproduce", "--root", str(tmp_path), "--list"]) == 2  # no configs/ there


def test_registration_errors(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "a.py").write_text(
        "from jaxmech._src.app.reproduce import Experiment\nEXPERIMENTS = {'x': Experiment(list)}\n"
    )
    with pytest.raises(jm.ConfigError, match="no configs/x.toml"):
        rep.discover(rep.Layout(tmp_path))
    (tmp_path / "configs" / "x.toml").write_text("")
    (tmp_path / "experiments" / "b.py").write_text((tmp_path / "experiments" / "a.py").read_text())
    with pytest.raises(jm.ConfigError, match="registered in both"):
        rep.discover(rep.Layout(tmp_path))


def test_every_paper_config_is_registered_once():
    found = rep.discover(rep.find_layout(ROOT))
    paper_configs = {p.stem for p in (ROOT / "configs").glob("*.toml") if p.stem.startswith(("ce_", "b_"))}
    assert paper_configs <= set(found), sorted(paper_configs - set(found))
    assert "bilateral_trade" in found  # the README's main job is a paper experiment too
    assert {e.paper for _, e in found.values()} <= set(rep.PAPERS)


def _browser() -> str | None:
    return next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(_browser() is None, reason="no headless Chromium on this machine (Debian: apt install chromium)")
def test_html_renders_in_headless_browser(report, tmp_path):
    _, out, _ = report
    browser = _browser()
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"]
    url = (out / "report.html").resolve().as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "expected deficit" in dom.stdout and "data:image/png;base64," in dom.stdout
    shot = tmp_path / "report.png"
    r = subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1200,900", url], capture_output=True, timeout=120
    )
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[0] >= 800 and img.shape[1] >= 1000
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 10  # text, table colours and figures drawn


def test_every_size_override_is_a_valid_config():
    """--quick and --full overrides load (a typo there would only surface as a FAIL row at run time)."""
    layout = rep.find_layout(ROOT)
    for name, (_, exp) in rep.discover(layout).items():
        for overrides in (exp.quick, exp.full):
            settings, _ = cfg.load(layout.configs / f"{name}.toml", tuple(overrides))
            assert settings.name == name


def test_quick_workers_compile_fast(monkeypatch):
    # --quick's workers: XLA's backend optimization off and classic CPU fusion emitters by default (compile-bound
    # sizes), the user's flags kept and a user's value of the same option winning; other sizes inherit the flags
    fast = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
    assert rep.worker_xla_flags("quick") == "--xla_force_host_platform_device_count=4 " + fast
    assert rep.worker_xla_flags("full") is None and rep.worker_xla_flags("default") is None
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=true")
    assert rep.worker_xla_flags("quick") == "--xla_cpu_use_fusion_emitters=true --xla_backend_optimization_level=0"
    monkeypatch.setenv("XLA_FLAGS", fast)
    assert rep.worker_xla_flags("quick") == fast
    monkeypatch.delenv("XLA_FLAGS")
    assert rep.worker_xla_flags("quick") == fast


def test_unknown_compile_options_are_dropped():
    # XLA renames and retires options between releases: an unknown one is left out, not an error
    opts = (("xla_backend_optimization_level", 0), ("xla_no_such_option_in_any_release", 1))
    assert compile_options.supported(opts) == {"xla_backend_optimization_level": 0}
    assert compile_options.supported(compile_options.FULL_OPTIMIZATION) == dict(compile_options.FULL_OPTIMIZATION)
