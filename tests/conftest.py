"""Shared fixtures: strict dtype / rank promotion, a PRNG key, and helpers."""

import os

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
