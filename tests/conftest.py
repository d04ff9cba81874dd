"""Shared fixtures: strict dtype / rank promotion, a PRNG key, and helpers (``jaxmech`` commands in this process)."""

import contextlib
import io
import json
import os
from pathlib import Path

import jax
import pytest

# The suite is compile-bound on a CPU: compile with XLA's classic CPU fusion emitters (~20% less time for the
# suite; the default MLIR emitters set up a pass pipeline per fusion) unless XLA_FLAGS chooses the emitters.
# Numbers agree with the default emitters up to float rounding: test_engine.py's device-count test runs its
# subprocesses with XLA's defaults and compares them with this process.
if "--xla_cpu_use_fusion_emitters" not in {f.split("=", 1)[0] for f in os.environ.get("XLA_FLAGS", "").split()}:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_use_fusion_emitters=false").strip()


@pytest.fixture(autouse=True)
def strict_promotion():
    """Fail on implicit rank promotion and on dtype promotion beyond JAX's safe rules."""
    with jax.numpy_rank_promotion("raise"), jax.numpy_dtype_promotion("strict"):
        yield


@pytest.fixture
def key():
    return jax.random.PRNGKey(20261124)


def within(x, ref, se, k=4.0, floor=1e-12):
    """``|x - ref| <= k * se`` (with a tiny floor for exact zeros)."""
    return abs(x - ref) <= k * se + floor


def run_cli(argv) -> int:
    """The ``jaxmech`` command (pyproject's console script) in this process: ``run_cli(["run", ...])`` -> exit code.

    A float64 config switches ``jax_enable_x64`` on for the process, as the command does; it is switched back here so
    that one test's config does not change the precision of the tests after it.
    """
    from jaxmech._src.app import cli  # the console script's entry point: jaxmech = "jaxmech._src.app.cli:main"

    x64 = jax.config.jax_enable_x64
    try:
        return cli.main([str(a) for a in argv])
    finally:
        jax.config.update("jax_enable_x64", x64)


def run_config(config, out, *overrides) -> dict:
    """``jaxmech run CONFIG --out OUT --set KEY=VALUE ...``: asserts success and a rendered summary; returns the
    metrics.json it wrote."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = run_cli(["run", config, "--out", out, *(a for o in overrides for a in ("--set", o))])
    assert code == 0, f"jaxmech run {config} exited with {code}"
    assert printed.getvalue().split("\nresults: ")[0].strip()  # the summary table
    return json.loads((Path(out) / "metrics.json").read_text())
