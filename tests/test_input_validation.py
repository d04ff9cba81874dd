"""Every failure a user can cause is one line: config integers, absurd profile counts, unreadable config files,
degenerate Gaussian copulas, `jaxmech bench` arguments. All checked before anything is compiled or run.

Settings come from the app's config loader, bench's workloads are stubbed: app internals (config, bench), used directly.
"""

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import run_cli

import jaxmech as jm
from jaxmech._src.app import bench
from jaxmech._src.app import config as cfg

ROOT = Path(__file__).resolve().parents[1]
TRADE = ROOT / "configs/bilateral_trade.toml"
MINIMAL = '[environment]\nkind = "bilateral_trade"\n[mechanism]\nkind = "generalized_vcg"\n'


def _config(tmp_path, text: str = MINIMAL, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _load_error(path, *overrides) -> str:
    with pytest.raises(jm.ConfigError) as e:
        cfg.load(path, tuple(overrides))
    msg = str(e.value)
    assert len(msg.splitlines()) == 1
    return msg


# --------------------------------------------------------------------------
# 1. config integers accept integral floats


def test_integral_float_is_an_integer_in_toml_and_in_set(tmp_path):
    path = _config(tmp_path, MINIMAL + "[audit]\nprofiles = 1e6\nblock_size = 4096.0\n")
    s, _ = cfg.load(path)
    assert s.audit.profiles == 1_000_000 and type(s.audit.profiles) is int
    assert s.audit.block_size == 4096 and type(s.audit.block_size) is int
    s, _ = cfg.load(path, ("audit.profiles=2e6", "audit.misreports.grid=8.0", "seed=3.0"))
    assert (s.audit.profiles, s.audit.misreports.grid, s.seed) == (2_000_000, 8, 3)
    assert all(type(x) is int for x in (s.audit.profiles, s.audit.misreports.grid, s.seed))
    s, _ = cfg.load(path, ("environment.dims=[1.0, 2.0]",))
    assert s.environment.dims == (1, 2) and all(type(d) is int for d in s.environment.dims)
    assert cfg.load(path, ("audit.profiles=100_000",))[0].audit.profiles == 100_000  # plain integers as before


@pytest.mark.parametrize("raw, shown", [("1.5", "1.5"), ("true", "True"), ("inf", "inf"), ("nan", "nan"),
                                        ("'1e6'", "'1e6'"), ("10**30", "'10**30'")])  # fmt: skip
def test_non_integral_values_are_not_integers(tmp_path, raw, shown):
    msg = _load_error(_config(tmp_path), f"audit.profiles={raw}")
    assert msg == f"audit.profiles: expected an integer, got {shown}"


def test_non_integral_float_in_a_file_names_the_key(tmp_path):
    msg = _load_error(_config(tmp_path, MINIMAL + "[audit.misreports]\ngrid = 2.5\n"))
    assert msg == "audit.misreports.grid: expected an integer, got 2.5"


# --------------------------------------------------------------------------
# 2. absurd profile counts: a documented maximum 2^53 and the time it implies

PROFILE_KEYS = [
    "audit.profiles", "audit.block_size", "audit.chunk_size", "mechanism.inner", "search.batch",
    "search.grid_profiles", "experiment.stats_profiles", "experiment.inner", "experiment.profiles",
]  # fmt: skip


@pytest.mark.parametrize("raw", ["1e30", "1" + "0" * 30])
def test_absurd_profile_count_says_how_long_it_would_take(tmp_path, raw):
    msg = _load_error(_config(tmp_path), f"audit.profiles={raw}")
    assert msg == "audit.profiles = 1e+30 is more than 2^53 (9.0e+15); at 1e9 profiles/s it would take 3.2e+13 years"


@pytest.mark.parametrize("key", PROFILE_KEYS)
def test_every_profile_count_has_the_maximum(tmp_path, key):
    path = _config(tmp_path)
    assert _load_error(path, f"{key}=1e17").startswith(f"{key} = 1e+17 is more than 2^53 (9.0e+15); at 1e9")
    assert _load_error(path, f"{key}=9007199254740993").endswith("it would take 104 days")
    section, name = key.split(".")  # the maximum is documented in the key's doc (`jaxmech list`)
    cls = type(getattr(cfg.load(path)[0], section))
    md = {f.name: f.metadata for f in dataclasses.fields(cls)}[name]
    assert md["max"] == cfg.MAX_PROFILES == 2**53 and "(at most 2^53)" in md["doc"]


def test_the_maximum_itself_is_accepted_and_listed(tmp_path):
    assert cfg.load(_config(tmp_path), ("audit.profiles=9007199254740992",))[0].audit.profiles == 2**53
    lines = [line.strip() for line in cfg.describe(jm.Settings)]
    assert any(line.startswith("profiles = 100000") and "(at most 2^53)" in line for line in lines)


def test_negative_huge_count_is_below_the_minimum(tmp_path):
    assert _load_error(_config(tmp_path), "audit.profiles=-1e30") == "audit.profiles: must be >= 2, got -1e+30"


# --------------------------------------------------------------------------
# 3. config files that are not UTF-8 or not TOML


@pytest.mark.parametrize(
    "data, words",
    [
        (b"\xff\xfe[\x00e\x00", "config is UTF-16 text (byte-order mark fffe); TOML must be UTF-8"),
        (b'name = "caf\xe9"\n', "config is not UTF-8 text (byte 0xe9 at offset 11); TOML must be UTF-8"),
        (b"[environment\nkind = 1\n", "invalid TOML (Expected ']' at the end of a table declaration"),
        (b"name = \n", "invalid TOML ("),
    ],
)
def test_unreadable_config_file_is_one_line_naming_the_file(tmp_path, data, words):
    path = tmp_path / "bad.toml"
    path.write_bytes(data)
    msg = _load_error(path)
    assert msg.startswith(f"{path}: {words}")


def test_utf8_byte_order_mark_is_fine(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert cfg.load(path)[0].environment.kind == "bilateral_trade"


def test_missing_config_file(tmp_path):
    assert _load_error(tmp_path / "nope.toml").startswith(f"{tmp_path / 'nope.toml'}: cannot read config")


def test_cli_reports_a_non_utf8_config_in_one_line(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_bytes(b"\xff\xfe[\x00e\x00")
    assert run_cli(["run", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert (
        err.strip()
        == f"jaxmech: config error: {path}: config is UTF-16 text (byte-order mark fffe); TOML must be UTF-8"
    )
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------
# 4. degenerate Gaussian copulas

NEED = "the Gaussian copula needs -1/(D-1) < rho < 1"


@pytest.mark.parametrize(
    "rho, why",
    [
        ("1", "1 makes the signals identical"),
        ("1.0", "1 makes the signals identical"),
        ("-1", "-1 makes the correlation matrix singular for D = 2 signals and not positive semi-definite for more"),
        ("1.5", "1.5 makes the correlation matrix not positive semi-definite (a correlation is at most 1)"),
        ("-3", "-3 makes the correlation matrix not positive semi-definite (a correlation is at least -1)"),
        ("nan", "nan is not a number"),
    ],
)
def test_config_rho_outside_the_copula_range(tmp_path, rho, why):
    assert _load_error(_config(tmp_path), f"prior.rho={rho}") == f"prior.rho = {why}; {NEED}"


def test_config_rho_in_a_file(tmp_path):
    assert _load_error(_config(tmp_path, MINIMAL + "[prior]\nrho = 1.0\n")) == (
        f"prior.rho = 1 makes the signals identical; {NEED}"
    )


@pytest.mark.parametrize(
    "matrix, words",
    [
        ("[[1.0, 1.0], [1.0, 1.0]]", "rho (every off-diagonal entry) = 1 makes the signals identical; " + NEED),
        ("[[1.0, -1.0], [-1.0, 1.0]]", "rho (every off-diagonal entry) = -1 makes the correlation matrix singular"),
        ("[[1.0, 2.0], [2.0, 1.0]]", "not positive semi-definite"),
        ("[[1.0, 0.5, 0.5], [0.5, 1.0, -0.5], [0.5, -0.5, 1.0]]", "matrix is singular (smallest eigenvalue"),
        ("[[1.0, 0.9, 0.1], [0.9, 1.0, 0.9], [0.1, 0.9, 1.0]]", "matrix is not positive semi-definite"),
        ("[[1.0, 0.2], [0.3, 1.0]]", "matrix must be symmetric"),
        ("[[1.0, 0.5], [0.5]]", "expected a square matrix"),
    ],
)
def test_config_correlation_must_be_positive_definite(tmp_path, matrix, words):
    msg = _load_error(_config(tmp_path), f"prior.correlation={matrix}")
    assert msg.startswith("prior.correlation: ") and words in msg


def test_valid_copula_configs_load(tmp_path):
    path = _config(tmp_path)
    assert cfg.load(path, ("prior.rho=0.5",))[0].prior.rho == 0.5
    assert cfg.load(path, ("prior.rho=-0.99",))[0].prior.rho == -0.99
    assert cfg.load(path, ("prior.correlation=[[1.0, 0.3], [0.3, 1.0]]",))[0].prior.correlation == ((1, 0.3), (0.3, 1))


def test_cli_run_refuses_rho_1_before_running(tmp_path, capsys):
    assert run_cli(["run", str(TRADE), "--out", str(tmp_path / "r"), "--set", "prior.rho=1"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"jaxmech: config error: prior.rho = 1 makes the signals identical; {NEED}"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "dims, rho, words",
    [
        ((1, 1), 1.0, f"rho (every off-diagonal entry) = 1 makes the signals identical; {NEED} (D = 2: -1 < rho < 1)"),
        ((1, 1), -1.0, "= -1 makes the correlation matrix singular (one signal is a decreasing function of the other)"),
        ((1, 1, 1), -0.5, "= -0.5 makes the correlation matrix singular (the normal scores of the 3 signals sum to"),
        ((1, 2), -0.6, "= -0.6 makes the correlation matrix not positive semi-definite (smallest eigenvalue 1 + (D-1)"),
        ((2, 2), 1 - 1e-13, "makes the signals identical"),
    ],
)
def test_api_copula_refuses_degenerate_rho(dims, rho, words):
    with pytest.raises(ValueError) as e:
        jm.gaussian_copula(dims, jm.uniform(), jm.equicorrelation(sum(dims), rho))
    assert str(e.value).startswith("correlation: rho") and words in str(e.value)
    assert len(str(e.value).splitlines()) == 1


def test_api_copula_refuses_a_singular_matrix():
    corr = [[1.0, 0.5, 0.5], [0.5, 1.0, -0.5], [0.5, -0.5, 1.0]]  # z_1 = z_2 + z_3 in normal scores
    with pytest.raises(ValueError, match=r"correlation: matrix is singular .*some signals are exact functions"):
        jm.gaussian_copula((1, 1, 1), jm.uniform(), corr)


def test_valid_copula_keeps_its_numbers():
    corr = jm.equicorrelation(3, 0.3)
    prior = jm.gaussian_copula((1, 2), jm.uniform(), corr)
    np.testing.assert_array_equal(prior.cholesky, np.linalg.cholesky(corr + 1e-12 * np.eye(3)))
    assert jm.gaussian_copula((1, 1), jm.uniform(), jm.equicorrelation(2, -0.99)).cholesky is not None


def test_traced_correlation_is_left_alone():
    """A family over rho (engine.audit_family) traces the matrix; each member is checked where it is built."""

    def chol(r):
        return jm.gaussian_copula((1, 1), jm.uniform(), jm.equicorrelation(2, r)).cholesky

    assert jax.eval_shape(chol, 1.0).shape == (2, 2)  # abstract: no check, no error


# --------------------------------------------------------------------------
# 5. `jaxmech bench` arguments, checked before any workload runs


@pytest.fixture
def no_workloads(monkeypatch):
    calls = []

    def record(names, **kwargs):
        calls.append((names, kwargs))
        return {"workloads": {}}

    monkeypatch.setattr(bench, "run_workloads", record)
    return calls


def _bench(capsys, *argv):
    code = run_cli(["bench", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err.strip()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--profiles", "-5"], "--profiles must be >= 1, got -5"),
        (["--profiles", "0"], "--profiles must be >= 1, got 0"),
        (["--profiles", "1.5"], "--profiles must be an integer, got '1.5'"),
        (["--profiles", "many"], "--profiles must be an integer, got 'many'"),
        (["--profiles", "1e30"], "--profiles = 1e+30 is more than 2^53 (9.0e+15); at 1e9 profiles/s it would take "
                                 "3.2e+13 years"),
        (["--block-size", "0"], "--block-size must be >= 1, got 0"),
        (["--chunk-size", "0"], "--chunk-size must be >= 1, got 0"),
        (["--repeats", "0"], "--repeats must be >= 1, got 0"),
        (["--quick", "--repeats", "-1"], "--repeats must be >= 1, got -1"),
    ],
)  # fmt: skip
def test_bench_bad_numbers_are_usage_errors_before_anything_runs(capsys, no_workloads, argv, message):
    code, out, err = _bench(capsys, "--workload", "W1", *argv)
    assert (code, out, err) == (2, "", f"jaxmech: usage error: {message}")
    assert no_workloads == []


def test_bench_json_path_is_checked_up_front(tmp_path, capsys, no_workloads, monkeypatch):
    (tmp_path / "file").write_text("")
    cases = [
        (tmp_path, f"--json {tmp_path}: is a folder, not a file"),
        (tmp_path / "no" / "r.json", f"--json {tmp_path / 'no' / 'r.json'}: folder '{tmp_path / 'no'}' does not exist"),
        (tmp_path / "file" / "r.json", f"--json {tmp_path / 'file' / 'r.json'}: '{tmp_path / 'file'}' is not a folder"),
    ]
    for path, message in cases:
        assert _bench(capsys, "--json", str(path)) == (2, "", f"jaxmech: usage error: {message}")
    monkeypatch.setattr(bench.os, "access", lambda *a, **k: False)  # as a non-root user on a read-only folder
    target = tmp_path / "r.json"
    assert _bench(capsys, "--json", str(target)) == (
        2, "", f"jaxmech: usage error: --json {target}: folder '{tmp_path}' is not writable"
    )  # fmt: skip
    assert _bench(capsys, "--json", str(tmp_path / "file")) == (
        2, "", f"jaxmech: usage error: --json {tmp_path / 'file'}: file is not writable"
    )  # fmt: skip
    assert no_workloads == []


def test_bench_accepts_integral_floats_and_writes_json(tmp_path, capsys, no_workloads):
    target = tmp_path / "bench.json"
    argv = ["--workload", "W1", "--profiles", "1e6", "--block-size", "4096", "--repeats", "2.0", "--json", str(target)]
    code, _, err = _bench(capsys, *argv)
    assert (code, err) == (0, "")
    ((names, kwargs),) = no_workloads
    assert names == ["W1"] and kwargs["overrides"] == {"jax": 1_000_000, "block_size": 4096}
    assert kwargs["repeats"] == 2 and type(kwargs["repeats"]) is int
    assert json.loads(target.read_text()) == {"workloads": {}}


def test_bench_defaults_unchanged(capsys, no_workloads):
    assert _bench(capsys, "--quick")[0] == 0
    assert _bench(capsys)[0] == 0
    (_, quick), (_, full) = no_workloads
    assert (quick["repeats"], quick["overrides"], full["repeats"], full["overrides"]) == (1, {}, 3, {})
