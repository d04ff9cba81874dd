"""Runs and CLI: validated configs, results folder, one-line errors with exit code 2, user models.

Where the command's output cannot show it, the app behind it is read directly (config schema and loader, results_dir).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

import jaxmech as jm
from jaxmech._src.app import config as cfg
from jaxmech._src.app import results_dir

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--set", "audit.profiles=4096", "--set", "audit.block_size=1024", "--set", "audit.chunk_size=4096"]


def _run(argv, capsys):
    code = run_cli(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_writes_results_folder(tmp_path, capsys):
    out = tmp_path / "res"
    code, stdout, _ = _run(["run", str(ROOT / "configs/bilateral_trade.toml"), "--out", str(out), *SMALL], capsys)
    assert code == 0
    assert {p.name for p in out.iterdir()} >= {"config.toml", "metrics.json", "manifest.json"}
    assert {p.name for p in out.iterdir() if p.suffix == ".png"} <= {"trade_region.png", "deficit.png"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["schema_version"] == 1
    audit = metrics["audit"]
    assert audit["profiles"] == 4096
    assert set(audit) >= {
        "regret",
        "ir_violation",
        "deficit",
        "welfare",
        "first_best_welfare",
        "efficiency",
        "outcomes",
    }
    manifest = json.loads((out / "manifest.json").read_text())
    for k in ("jaxmech", "jax", "jaxlib", "backend", "device_kind", "device_count", "seed", "wall_s", "compile_s"):
        assert k in manifest
    # the resolved config round-trips and reflects the override
    resolved, _ = cfg.load(out / "config.toml")
    assert resolved.audit.profiles == 4096
    assert "deficit" in stdout and "buyer" in stdout


@pytest.mark.parametrize(
    "override, message",
    [
        ("audit.profils=10", "audit.profils: unknown key (did you mean 'audit.profiles'?)"),
        ("audit.misreports.gird=4", "audit.misreports.gird: unknown key (did you mean 'audit.misreports.grid'?)"),
        ("audit.profiles='many'", "audit.profiles: expected an integer"),
        ("audit.profiles=1", "audit.profiles: must be >= 2"),
        ("precision='float16'", "precision: must be one of float32, float64"),
        ("mechanism.kind='generalized_vgc'", "did you mean 'generalized_vcg'?"),
        ("prior.correlation=[[1.0, 2.0], [2.0, 1.0]]", "positive semi-definite"),
        ("environment.values='nowhere:nothing'", "environment.values: cannot import 'nowhere'"),
    ],
)
def test_bad_config_is_one_line_exit_2_nothing_written(tmp_path, capsys, override, message):
    out = tmp_path / "res"
    code, stdout, err = _run(
        ["run", str(ROOT / "configs/bilateral_trade.toml"), "--out", str(out), "--set", override], capsys
    )
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_misspelled_key_in_file_via_console(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[environment]\nkind = "bilateral_trade"\n[mechanism]\nkind = "generalized_vcg"\npivto = "bisection"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "jaxmech", "run", str(bad), "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == "jaxmech: config error: mechanism.pivto: unknown key (did you mean 'mechanism.pivot'?)"
    )
    assert not (tmp_path / "r").exists()


def test_user_model_from_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "res"
    code, _, _ = _run(["run", "configs/custom_model.toml", "--out", str(out), *SMALL], capsys)
    assert code == 0
    audit = json.loads((out / "metrics.json").read_text())["audit"]
    assert max(r["max"] for r in audit["regret"]) <= audit["tol"]  # a monotone rule with pivot payments
    assert audit["efficiency"]["mean"] < 1


def test_list(capsys):
    code, out, _ = _run(["list"], capsys)
    assert code == 0
    for word in ("bilateral_trade", "example1", "generalized_vcg", "personalized_prices", "gaussian copula", "kinks"):
        assert word in out


def test_float64_switch(tmp_path):
    out = tmp_path / "r64"
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "jaxmech", "run", str(ROOT / "configs/bilateral_trade.toml"), "--out", str(out),
         "--set", "precision='float64'", *SMALL],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["audit"]["tol"] < 1e-8
    assert json.loads((out / "manifest.json").read_text())["precision"] == "float64"


def test_config_defaults_match_library_defaults():
    """The config layer mirrors audit.Misreports; one set of defaults, checked here."""
    assert cfg.to_dict(cfg.MisreportSettings()) == jm.Misreports()._asdict()


def test_certify_command(capsys):
    """`jaxmech certify`: CE Thm 1 certificate per agent; exit 0 if certified, 1 with a cycle witness if not."""
    root = Path(__file__).resolve().parents[1] / "configs"
    assert run_cli(["certify", str(root / "bilateral_trade.toml"), "--profiles", "16", "--points", "17"]) == 0
    assert "certified at every s_-i" in capsys.readouterr().out
    code = run_cli(
        ["certify", str(root / "bilateral_trade.toml"), "--set", "mechanism.kind=band_trade", "--profiles", "16",
         "--points", "33", "--json"]
    )  # fmt: skip
    rep = json.loads(capsys.readouterr().out)
    assert code == 1 and rep["agents"][0]["certified_share"] < 1.0 and rep["agents"][0]["worst_slack"] > 0
    assert run_cli(["certify", str(root / "bilateral_trade.toml"), "--set", "audit.profils=3"]) == 2


def test_metrics_json_is_strict_json(tmp_path):
    import json

    x = {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf"), "e": 2}}
    assert json.loads(results_dir.dumps(x)) == {"a": None, "b": [1.0, None], "c": {"d": None, "e": 2}}
