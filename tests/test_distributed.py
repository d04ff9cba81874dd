"""Two processes on jax.distributed (loopback): disjoint blocks, the single-process numbers; the CLI end to end (slow)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import run_cli, run_config
from test_resume import compile_cache_fixture  # noqa: F401  (the compile_cache fixture)

import jaxmech as jm

ROOT = Path(__file__).resolve().parents[1]
SIZES = [
    "audit.profiles=60000",  # 59 blocks: the last one partial
    "audit.block_size=1024",
    "audit.chunk_size=4096",
    "audit.segment_blocks=4",  # 15 segments: process 0 takes 7, process 1 takes 8
    "mechanism.pivot='closed_form'",
    "audit.misreports.grid=8",
    "audit.misreports.random=2",
    "audit.misreports.kinks=false",
    "experiment.plots=false",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BLOCK_FN = """
import jax, jax.numpy as jnp
import jaxmech as jm

def block_fn(key, b, n_valid):
    x = jax.random.uniform(key, (64, 2))
    w = (jnp.arange(64, dtype=jnp.int32) < n_valid).astype(jnp.float32)
    r = jnp.where(w[:, None] > 0, x, -1.0)
    return {"n": jm.Moments(jnp.sum(w)), "x": jm.Moments(jnp.sum(w[:, None] * x, 0)),
            "x_max": jm.Extremum(jnp.max(r, 0), jnp.argmax(r, 0).astype(jnp.int32), {"profile": x[jnp.argmax(r, 0)]})}

STREAM = dict(n_profiles=5000, options=jm.StreamOptions(block_size=64, chunk_size=256, segment_blocks=5))  # 79 blocks, 16 segments
"""
SCRIPT = (
    "import json, sys, jax, numpy as np\n"
    "jax.distributed.initialize(sys.argv[1], 2, int(sys.argv[2]))\n"
    "from jaxmech._src.core import reduction\n" + BLOCK_FN + "\n"
    "acc, info = jm.stream(block_fn, key=jax.random.PRNGKey(7), **STREAM)\n"
    "print(json.dumps({'process': jax.process_index(), 'n_chunks': info.n_chunks,\n"
    "                  'totals': {k: np.asarray(v).tolist() for k, v in reduction.flatten_totals(acc.totals).items()}}))\n"
)


def test_stream_over_two_processes_equals_one():
    """Engine level, fast: each process streams its own segments; both end with the one-process totals, bit for bit."""
    from jaxmech._src.core import reduction

    port = _free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    procs = [
        subprocess.Popen([sys.executable, "-c", SCRIPT, f"127.0.0.1:{port}", str(p)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for p in (0, 1)
    ]  # fmt: skip
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    got = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    assert got[0]["n_chunks"] + got[1]["n_chunks"] >= 2 and got[0]["n_chunks"] > 0 and got[1]["n_chunks"] > 0
    scope: dict = {}
    exec(BLOCK_FN, scope)
    acc, _ = jm.stream(scope["block_fn"], key=jax.random.PRNGKey(7), **scope["STREAM"])
    ref = {k: np.asarray(v).tolist() for k, v in reduction.flatten_totals(acc.totals).items()}
    assert got[0]["totals"] == ref and got[1]["totals"] == ref  # every process holds the same totals
    assert ref["n.sum"] == 5000


@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path, compile_cache):
    out = tmp_path / "two"
    config = str(ROOT / "configs/bilateral_trade.toml")
    port = _free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu", **compile_cache)
    env.update(JAX_NUMPY_DTYPE_PROMOTION="strict", JAX_NUMPY_RANK_PROMOTION="raise")  # as conftest, for the cache
    env.update(JAXMECH_COORDINATOR=f"127.0.0.1:{port}", JAXMECH_NUM_PROCESSES="2")  # the id comes as a flag
    sets = [x for s in SIZES for x in ("--set", s)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "jaxmech", "run", config, "--out", str(out), "--process-id", str(p), *sets],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in (0, 1)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, se) in zip(procs, outs, strict=True):
        assert p.returncode == 0, se[-3000:]
    assert "results:" in outs[0][0] and "results:" not in outs[1][0]  # process 0 alone reports and writes
    metrics = json.loads((out / "metrics.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_processes"] == 2
    assert not (out / "checkpoint").exists()

    reference = run_config(config, tmp_path / "one", *SIZES)
    assert metrics["audit"] == reference["audit"]  # every number, bit for bit
    assert metrics["audit"]["profiles"] == 60000


def test_distributed_flags_are_checked(capsys):
    assert run_cli(["run", str(ROOT / "configs/bilateral_trade.toml"), "--coordinator", "127.0.0.1:1"]) == 2
    assert "needs --coordinator, --num-processes and --process-id" in capsys.readouterr().err
    argv = ["run", str(ROOT / "configs/bilateral_trade.toml"), "--coordinator", "h:1", "--num-processes", "2"]
    assert run_cli([*argv, "--process-id", "2", "--out", "x"]) == 2
    assert "0 <= --process-id < num-processes" in capsys.readouterr().err
    assert run_cli([*argv, "--process-id", "1"]) == 2
    assert "needs --out" in capsys.readouterr().err
