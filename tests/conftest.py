"""Shared fixtures: strict dtype / rank promotion, a PRNG key, and helpers."""

import os

import jax
import pytest

# Keep the tests' CPU usage predictable on small CI machines.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")


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
