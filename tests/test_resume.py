"""Checkpoint / resume: a run killed mid-way and resumed ends with exactly the numbers of an uninterrupted run.

The checkpoint's internals (its path and metadata, the host reduction, the progress line) are tested directly.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_cli, run_config

import jaxmech as jm
from jaxmech._src.app import runs
from jaxmech._src.core import engine, reduction

ROOT = Path(__file__).resolve().parents[1]
# 256 chunks of one block: long enough to kill after the first checkpoint, short enough for CI
SIZES = [
    "audit.profiles=262144",
    "audit.block_size=1024",
    "audit.chunk_size=1024",
    "audit.segment_blocks=16",
    "mechanism.pivot='closed_form'",
    "audit.misreports.grid=8",
    "audit.misreports.random=0",
    "audit.misreports.kinks=false",
    "experiment.plots=false",
]


@pytest.fixture(name="compile_cache")
def compile_cache_fixture(tmp_path):
    """A persistent compilation cache shared with the subprocess: the three runs compile the same program once."""
    path = str(tmp_path / "xla-cache")
    keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    old = [getattr(jax.config, k) for k in keys]
    jax.config.update(keys[0], path)
    jax.config.update(keys[1], 0.0)
    yield {"JAX_COMPILATION_CACHE_DIR": path, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    for k, v in zip(keys, old, strict=True):
        jax.config.update(k, v)


def test_kill_and_resume_gives_the_uninterrupted_numbers(tmp_path, compile_cache):
    out = tmp_path / "run"
    argv = [
        sys.executable,
        "-m",
        "jaxmech",
        "run",
        str(ROOT / "configs/bilateral_trade.toml"),
        "--out",
        str(out),
    ]
    argv += ["--checkpoint-every", "0"] + [x for s in SIZES for x in ("--set", s)]
    # the same jax settings as this process (conftest's strict promotion), so the cache entries match
    strict = {"JAX_NUMPY_DTYPE_PROMOTION": "strict", "JAX_NUMPY_RANK_PROMOTION": "raise"}
    env = dict(os.environ, JAX_PLATFORMS="cpu", **compile_cache, **strict)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ck = runs.checkpoint_path(out, 0)
    deadline = time.monotonic() + 120
    while not ck.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]  # killed, not finished
    assert not (out / "metrics.json").exists()
    meta = reduction.read_checkpoint_meta(ck)
    assert 0 < meta["next_block"] < 256  # interrupted mid-way

    assert run_cli(["run", "--resume", str(out)]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resumed_at_block"] >= meta["next_block"] > 0
    assert not ck.exists()  # a finished run leaves no checkpoint behind

    reference = run_config(ROOT / "configs/bilateral_trade.toml", tmp_path / "ref", *SIZES)  # uninterrupted
    assert resumed["audit"] == reference["audit"]  # every number, bit for bit
    assert resumed["audit"]["profiles"] == 262144
    assert run_cli(["run", "--resume", str(out)]) == 2  # complete: nothing to resume


def _block_fn(key, b, n_valid):
    x = jax.random.uniform(key, (64,))
    w = (jnp.arange(64, dtype=jnp.int32) < n_valid).astype(jnp.float32)
    xm = jnp.where(w > 0, x, -1.0)
    return {"n_sum": jnp.sum(w), "x_sum": jnp.sum(w * x), "x_sumsq": jnp.sum(w * x * x), "x_count": jnp.sum(w * (x > 0.9).astype(jnp.float32)),
            "x_max": jnp.max(xm), "x_max_at_index": jnp.argmax(xm).astype(jnp.int32)}  # fmt: skip


def test_stream_resume_and_segments(tmp_path):
    """Engine level: stop after three checkpoints, resume with another chunk size; the same totals, bit for bit."""
    kw = dict(key=jax.random.PRNGKey(3), n_profiles=2500, block_size=64, segment_blocks=3)
    full, _ = jm.stream(_block_fn, chunk_size=256, **kw)
    ck = jm.Checkpoint(path=tmp_path / "ck.npz", every_s=0.0, fingerprint="x")
    saved = []

    def stop_after_third(done, total):
        saved.append(reduction.read_checkpoint_meta(ck.path)["next_block"])
        if len(saved) == 3:
            raise KeyboardInterrupt  # as if killed after the third checkpoint

    with pytest.raises(KeyboardInterrupt):
        jm.stream(_block_fn, chunk_size=256, checkpoint=ck, progress=stop_after_third, **kw)
    assert saved == [4, 8, 12]
    res, info = jm.stream(_block_fn, chunk_size=448, checkpoint=ck._replace(resume=True), **kw)
    assert info.resumed_at_block == 12 and info.n_chunks == 4  # blocks 12..39, 7 per chunk
    assert res.totals.keys() == full.totals.keys()
    for k in full.totals:
        np.testing.assert_array_equal(res.totals[k], full.totals[k], err_msg=k)
    assert res.totals["n_sum"] == 2500
    with pytest.raises(ValueError, match="fingerprint"):
        jm.stream(_block_fn, chunk_size=256, checkpoint=ck._replace(resume=True, fingerprint="y"), **kw)
    # segments change only the association of float64 sums: counts, maxima and witnesses are exact
    one_seg, _ = jm.stream(_block_fn, chunk_size=256, **dict(kw, segment_blocks=1024))
    for k in ("n_sum", "x_count", "x_max", "x_max_at_index"):
        assert one_seg.totals[k] == full.totals[k]
    np.testing.assert_allclose(one_seg.totals["x_sum"], full.totals["x_sum"], rtol=1e-14)


def test_progress_line_has_rate_and_eta():
    line = engine.progress_line(250, 1000, 2.0, 200)
    assert line.startswith(" 25.0% (250/1,000 profiles, 100/s, ETA 8s)")
    assert "ETA 2h05m" in engine.progress_line(0, 750_000, 1.0, 100)
    assert np.isclose(float(line.split("profiles, ")[1].split("/s")[0]), 100.0)


def test_vectorized_block_reduction_equals_the_accumulator():
    """The engine's host reduction (NumPy over blocks) gives reduction.Accumulator's numbers: sums, ties, NaN, skipped blocks."""
    rng = np.random.default_rng(0)
    nb, n, d = 37, 3, 2
    x = rng.integers(0, 4, (nb, n)).astype(np.float32)  # many ties: the earliest block must win
    x[5, 1] = np.nan  # a NaN block value never wins
    stats = {
        "n_sum": np.where(np.arange(nb) % 7 == 6, 0.0, 64.0).astype(np.float32),  # some empty (padding) blocks
        "r_sum": rng.normal(size=(nb, n)).astype(np.float32),
        "r_sumsq": rng.random((nb, n)).astype(np.float32),
        "r_max": x,
        "r_max_at_index": rng.integers(0, 64, (nb, n)).astype(np.int32),
        "r_max_at_profile": rng.random((nb, n, d)).astype(np.float32),
        "d_min": -x[:, 0],
        "d_min_at_index": rng.integers(0, 64, nb).astype(np.int32),
        "d_min_at_profile": rng.random((nb, d)).astype(np.float32),
    }
    ref = reduction.Accumulator()
    for lo, hi in ((0, 11), (11, 12), (12, 37)):  # in pieces, as chunks arrive
        ref.add_chunk({k: v[lo:hi] for k, v in stats.items()}, 100 + lo, 64)
    tot = {}
    for lo, hi in ((0, 20), (20, 37)):
        reduction._add_blocks(tot, {k: v[lo:hi] for k, v in stats.items()}, 100 + lo, 64)
    assert tot.keys() == ref.totals.keys()
    for k in tot:
        assert tot[k].dtype == ref.totals[k].dtype, k
        np.testing.assert_array_equal(tot[k], ref.totals[k], err_msg=k)
