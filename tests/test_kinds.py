"""The experiment kinds are registered once: ``jaxmech._src.app.kinds.KINDS`` (one module per kind, one line each).

The config, ``jaxmech list``, ``runs.run`` / ``runs.summary`` and ``--resume`` all read that registry, so adding a
kind is one new module in ``jaxmech/_src/app/kinds/`` plus its line in ``KINDS``.

The registries are app internals: this file reads them, and the config and build layers using them, directly.
"""

import dataclasses
import tomllib
from pathlib import Path

import pytest
from conftest import run_cli

import jaxmech as jm
from jaxmech._src.app import build, kinds, runs
from jaxmech._src.app import config as cfg

ROOT = Path(__file__).resolve().parents[1]
KINDS_DIR = ROOT / "jaxmech" / "_src" / "app" / "kinds"


def test_config_has_no_second_list_of_kinds():
    field = {f.name: f for f in dataclasses.fields(cfg.ExperimentSettings)}["kind"]
    assert field.metadata["choices"] is None  # the registry is checked where the settings are used
    assert field.default in kinds.KINDS
    for name in kinds.KINDS:
        settings = cfg.parse(jm.Settings, _settings(name))
        assert kinds.get(settings.experiment.kind).name == name


def test_an_unregistered_kind_is_a_one_line_config_error_with_a_hint():
    with pytest.raises(jm.ConfigError) as e:
        kinds.get("audti")
    assert str(e.value) == (
        f"experiment.kind: must be one of {', '.join(kinds.KINDS)}; got 'audti' (did you mean 'audit'?)"
    )
    with pytest.raises(jm.ConfigError, match="experiment.kind: must be one of"):
        kinds.get("no_such_kind")


def test_run_refuses_an_unregistered_kind_before_writing(tmp_path):
    settings = cfg.parse(jm.Settings, _settings("compare_deficit"))
    out = tmp_path / "res"
    with pytest.raises(jm.ConfigError, match=r"did you mean 'compare_deficits'\?"):
        runs.run(settings, out)
    assert not out.exists()


def test_cli_reports_an_unregistered_kind_in_one_line(tmp_path, capsys):
    out = tmp_path / "res"
    code = run_cli(
        ["run", str(ROOT / "configs/bilateral_trade.toml"), "--out", str(out), "--set", "experiment.kind='sweeep'"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        f"jaxmech: config error: experiment.kind: must be one of {', '.join(kinds.KINDS)}; got 'sweeep' "
        "(did you mean 'sweep'?)"
    ]
    assert not out.exists()


@pytest.mark.parametrize("name", list(kinds.KINDS))
def test_each_kind_is_one_module_with_run_and_summary(name):
    kind = kinds.KINDS[name]
    assert kind.name == name
    assert isinstance(kind.doc, str) and kind.doc
    assert isinstance(kind.options, tuple) and all(isinstance(o, str) for o in kind.options)
    assert callable(kind.run) and callable(kind.summary)
    assert isinstance(kind.checkpoints, bool)
    assert (KINDS_DIR / f"{name}.py").is_file()
    assert kind.run.__module__ == f"jaxmech._src.app.kinds.{name}"  # the kind's own module, not a shared table


def test_every_kind_module_is_registered():
    modules = {p.stem for p in KINDS_DIR.glob("*.py")} - {"__init__", "common"}
    assert modules == set(kinds.KINDS)


def test_jaxmech_list_shows_each_kind_with_its_doc_and_options(capsys):
    assert run_cli(["list"]) == 0
    text = capsys.readouterr().out
    section = text.split("experiments ([experiment] kind = ...)\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split()[0] for line in section] == list(kinds.KINDS)
    for line, kind in zip(section, kinds.KINDS.values(), strict=True):
        assert kind.doc in line
        if kind.options:
            assert line.endswith(f"options: {', '.join(kind.options)}")


def test_only_checkpointing_kinds_resume(tmp_path):
    settings = cfg.parse(jm.Settings, _settings("sweep"))
    assert not kinds.KINDS["sweep"].checkpoints
    able = ", ".join(k.name for k in kinds.KINDS.values() if k.checkpoints)
    assert "audit" in able.split(", ")
    with pytest.raises(jm.ConfigError, match=f"--resume: only {able} runs checkpoint"):
        runs.run(settings, tmp_path / "res", resume=True)


@pytest.mark.parametrize("path", sorted(ROOT.glob("configs/*.toml")), ids=lambda p: p.name)
def test_every_config_names_a_registered_kind(path):
    data = tomllib.loads(path.read_text())
    assert data.get("experiment", {}).get("kind", "audit") in kinds.KINDS


def _settings(kind: str) -> dict:
    return {
        "environment": {"kind": "bilateral_trade"},
        "mechanism": {"kind": "generalized_vcg"},
        "experiment": {"kind": kind},
    }


@pytest.mark.parametrize("table", ["ENVIRONMENTS", "MECHANISMS"])
def test_each_environment_and_mechanism_kind_is_one_row_with_its_builder(table, capsys):
    rows = getattr(build, table)
    assert rows
    for name, entry in rows.items():
        assert callable(entry.build), name
        assert isinstance(entry.doc, str) and entry.doc, name
    assert run_cli(["list"]) == 0
    text = capsys.readouterr().out
    for name, entry in rows.items():
        assert f"  {name:<22} {entry.doc}" in text


@pytest.mark.parametrize("path", sorted(ROOT.glob("configs/*.toml")), ids=lambda p: p.name)
def test_every_config_names_registered_environment_and_mechanism_kinds(path):
    data = tomllib.loads(path.read_text())
    assert data["environment"]["kind"] in build.ENVIRONMENTS
    mechanisms = [data["mechanism"], *data.get("experiment", {}).get("against", [])]
    assert all(m["kind"] in build.MECHANISMS for m in mechanisms)


def test_unregistered_environment_and_mechanism_kinds_name_the_table():
    env = cfg.parse(cfg.EnvironmentSettings, {"kind": "bilateral_trad"})
    with pytest.raises(jm.ConfigError) as e:
        build.build_environment(env, None)
    assert str(e.value) == (
        f"environment.kind: unknown 'bilateral_trad'; choose one of {', '.join(build.ENVIRONMENTS)} "
        "(did you mean 'bilateral_trade'?)"
    )
    settings = cfg.parse(jm.Settings, {**_settings("audit"), "mechanism": {"kind": "generalised_vcg"}})
    with pytest.raises(jm.ConfigError, match=r"mechanism.kind: unknown 'generalised_vcg'; .*did you mean"):
        build.build(settings)
