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
    return {"n": jm.Moments(jnp.sum(w)), "x": jm.Moments(jnp.sum(w * x), jnp.sum(w * x * x)),
            "x_count": jm.Moments(jnp.sum(w * (x > 0.9).astype(jnp.float32))),
            "x_max": jm.Extremum(jnp.max(xm), jnp.argmax(xm).astype(jnp.int32))}  # fmt: skip


def _flat(acc):
    return reduction.flatten_totals(acc.totals)


def test_stream_resume_and_segments(tmp_path):
    """Engine level: stop after three checkpoints, resume with another chunk size; the same totals, bit for bit."""
    kw = dict(key=jax.random.PRNGKey(3), n_profiles=2500)
    opts = jm.StreamOptions(block_size=64, chunk_size=256, segment_blocks=3)
    full, _ = jm.stream(_block_fn, options=opts, **kw)
    ck = jm.Checkpoint(path=tmp_path / "ck.npz", every_s=0.0, fingerprint="x")
    saved = []

    def stop_after_third(done, total):
        saved.append(reduction.read_checkpoint_meta(ck.path)["next_block"])
        if len(saved) == 3:
            raise KeyboardInterrupt  # as if killed after the third checkpoint

    with pytest.raises(KeyboardInterrupt):
        jm.stream(_block_fn, options=opts._replace(checkpoint=ck, progress=stop_after_third), **kw)
    assert saved == [4, 8, 12]
    res, info = jm.stream(_block_fn, options=opts._replace(chunk_size=448, checkpoint=ck._replace(resume=True)), **kw)
    assert info.resumed_at_block == 12 and info.n_chunks == 4  # blocks 12..39, 7 per chunk
    got, want = _flat(res), _flat(full)
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    assert res.totals["n"].sum == 2500
    with pytest.raises(ValueError, match="fingerprint"):
        jm.stream(_block_fn, options=opts._replace(checkpoint=ck._replace(resume=True, fingerprint="y")), **kw)
    # segments change only the association of float64 sums: counts, maxima and witnesses are exact
    one_seg = _flat(jm.stream(_block_fn, options=opts._replace(segment_blocks=1024), **kw)[0])
    for k in ("n.sum", "x_count.sum", "x_max.max.value", "x_max.max.index"):
        assert one_seg[k] == want[k]
    np.testing.assert_allclose(one_seg["x.sum"], want["x.sum"], rtol=1e-14)


def test_progress_line_has_rate_and_eta():
    line = engine.progress_line(250, 1000, 2.0, 200)
    assert line.startswith(" 25.0% (250/1,000 profiles, 100/s, ETA 8s)")
    assert "ETA 2h05m" in engine.progress_line(0, 750_000, 1.0, 100)
    assert np.isclose(float(line.split("profiles, ")[1].split("/s")[0]), 100.0)


def _reference_reduction(stats: dict, first_block: int, block_size: int, tot: dict) -> None:
    """An independent host reduction, one block at a time in plain Python: float64 running sums; an extremum moves
    to a strictly better value (NaN never is), its index made global; blocks with no profiles skipped."""
    for b in range(len(stats["n"])):
        if stats["n"][b] == 0:
            continue
        for k in ("n", "r_sum", "r_sumsq"):
            v = stats[k][b].astype(np.float64)
            tot[k] = v if k not in tot else tot[k] + v
        for k, largest in (("r_max", True), ("d_min", False)):
            v = stats[k][b].astype(np.float64)
            idx = (first_block + b) * block_size + stats[k + "_index"][b].astype(np.int64)
            prof = stats[k + "_profile"][b]
            if k not in tot:
                tot[k] = [v.copy(), idx.copy(), prof.copy()]
                continue
            old = tot[k]
            for e in np.ndindex(v.shape):
                if (v[e] > old[0][e]) if largest else (v[e] < old[0][e]):
                    old[0][e], old[1][e], old[2][e] = v[e], idx[e], prof[e]


def test_block_reduction_equals_an_independent_loop():
    """reduction.add_blocks (NumPy over blocks, the one host reduction) against a per-block Python loop: sums in block
    order to the bit, ties to the earliest block, NaN never winning, empty blocks skipped, global witness indices."""
    rng = np.random.default_rng(0)
    nb, n, d = 37, 3, 2
    x = rng.integers(0, 4, (nb, n)).astype(np.float32)  # many ties: the earliest block must win
    x[5, 1] = np.nan  # a NaN block value never wins
    raw = {
        "n": np.where(np.arange(nb) % 7 == 6, 0.0, 64.0).astype(np.float32),  # some empty (padding) blocks
        "r_sum": rng.normal(size=(nb, n)).astype(np.float32),
        "r_sumsq": rng.random((nb, n)).astype(np.float32),
        "r_max": x,
        "r_max_index": rng.integers(0, 64, (nb, n)).astype(np.int32),
        "r_max_profile": rng.random((nb, n, d)).astype(np.float32),
        "d_min": -x[:, 0],
        "d_min_index": rng.integers(0, 64, nb).astype(np.int32),
        "d_min_profile": rng.random((nb, d)).astype(np.float32),
    }
    stats = {
        "n": jm.Moments(raw["n"]),
        "r": jm.Moments(raw["r_sum"], raw["r_sumsq"]),
        "r_max": jm.Extremum(raw["r_max"], raw["r_max_index"], {"profile": raw["r_max_profile"]}),
        "d_min": jm.Extremum(raw["d_min"], raw["d_min_index"], {"profile": raw["d_min_profile"]}, largest=False),
    }
    acc = reduction.Accumulator()
    for lo, hi in ((0, 11), (11, 12), (12, 37)):  # in pieces, as chunks arrive
        acc.add_chunk(jax.tree.map(lambda v, lo=lo, hi=hi: v[lo:hi], stats), 100 + lo, 64)
    ref: dict = {}
    _reference_reduction(raw, 100, 64, ref)
    tot = acc.totals
    assert tot["n"].sum == ref["n"] and tot["n"].sumsq is None
    np.testing.assert_array_equal(tot["r"].sum, ref["r_sum"])
    np.testing.assert_array_equal(tot["r"].sumsq, ref["r_sumsq"])
    for k in ("r_max", "d_min"):
        np.testing.assert_array_equal(tot[k].value, ref[k][0], err_msg=k)
        np.testing.assert_array_equal(tot[k].index, ref[k][1], err_msg=k)
        np.testing.assert_array_equal(tot[k].witness["profile"], ref[k][2], err_msg=k)
        assert tot[k].index.dtype == np.int64 and tot[k].value.dtype == np.float64
    # merging the totals of two halves equals adding all blocks at once (sums add, the earlier extremum wins ties)
    first, second = reduction.Accumulator(), reduction.Accumulator()
    first.add_chunk(jax.tree.map(lambda v: v[:20], stats), 100, 64)
    second.add_chunk(jax.tree.map(lambda v: v[20:], stats), 120, 64)
    reduction.merge_totals(first.totals, second.totals)
    for k in ("r_max", "d_min"):
        np.testing.assert_array_equal(first.totals[k].index, tot[k].index)
    np.testing.assert_allclose(first.totals["r"].sum, tot["r"].sum, rtol=1e-14)
    # a checkpoint's flat arrays give the totals back
    back = reduction.unflatten_totals(reduction.flatten_totals(tot))
    assert jax.tree.structure(back) == jax.tree.structure(tot)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(tot), strict=True):
        np.testing.assert_array_equal(a, b)


