"""The streaming engine: results do not depend on chunk size or device count; one compile per run."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np

import jaxmech as jm

SCRIPT = textwrap.dedent(
    """
    import json, sys, jax
    import jaxmech as jm
    env = jm.example1()
    mech = jm.personalized_prices(env, jm.own_signal_prices)   # positive regret: maxima and witnesses matter
    reps = [jm.audit(env, mech, jm.independent(env.dims), key=jax.random.PRNGKey(5), n_profiles=10_000,
                     misreports=jm.Misreports(grid=6, random=4),
                     options=jm.StreamOptions(block_size=1024, chunk_size=int(c))).report
            for c in sys.argv[1:]]
    print(json.dumps({"devices": len(jax.devices()), "reports": reps}))
    """
)


def _flatten(x, prefix=""):
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            out.update(_flatten(v, f"{prefix}.{k}"))
        return out
    if isinstance(x, list):
        out = {}
        for k, v in enumerate(x):
            out.update(_flatten(v, f"{prefix}[{k}]"))
        return out
    return {prefix: x}


def _assert_same(a, b):
    fa, fb = _flatten(a), _flatten(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        if isinstance(fa[k], float):
            # identical by construction (block-ordered float64 host sums); allow rounding just in case
            np.testing.assert_allclose(fa[k], fb[k], rtol=1e-12, atol=0, err_msg=k)
        else:
            assert fa[k] == fb[k], k


def _assert_close(a, b, rtol, atol):
    """Same keys; floats equal up to rounding, counts and witness indices exactly."""
    fa, fb = _flatten(a), _flatten(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        if isinstance(fa[k], float):
            np.testing.assert_allclose(fa[k], fb[k], rtol=rtol, atol=atol, err_msg=k)
        else:
            assert fa[k] == fb[k], k


def _run_script(n_devices, chunks):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}", JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, *map(str, chunks)], capture_output=True, text=True, env=env, timeout=600,
        check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_chunk_size_invariance():
    env = jm.example1()
    mech = jm.personalized_prices(env, jm.own_signal_prices)
    prior = jm.independent(env.dims)
    mis = jm.Misreports(grid=6, random=4)

    def rep(chunk):
        return jm.audit(
            env, mech, prior, key=jax.random.PRNGKey(5), n_profiles=10_000, misreports=mis,
            options=jm.StreamOptions(block_size=1024, chunk_size=chunk),
        )  # fmt: skip

    small, large = rep(2**10), rep(2**13)
    assert small.info.n_chunks == 10 and large.info.n_chunks == 2
    assert small.report["regret"][0]["max"] > 0
    _assert_same(small.report, large.report)


def test_device_count_invariance():
    """1 vs 4 CPU devices (separate processes), each at chunk sizes 2^10 and 2^13: identical reports.

    The subprocesses compile with XLA's default CPU fusion emitters; this process with the classic ones
    (conftest.py): the same report up to float rounding."""
    one = _run_script(1, [2**10, 2**13])
    four = _run_script(4, [2**10, 2**13])
    assert one["devices"] == 1 and four["devices"] == 4
    for a, b in zip(one["reports"], four["reports"], strict=True):
        _assert_same(a, b)
    _assert_same(one["reports"][0], four["reports"][1])
    if jax.default_backend() != "cpu":
        return  # the comparison below is of two CPU compiles
    env = jm.example1()
    here = jm.audit(env, jm.personalized_prices(env, jm.own_signal_prices), jm.independent(env.dims),
                    key=jax.random.PRNGKey(5), n_profiles=10_000, misreports=jm.Misreports(grid=6, random=4),
                    options=jm.StreamOptions(block_size=1024, chunk_size=2**13)).report  # fmt: skip
    _assert_close(here, one["reports"][1], rtol=1e-5, atol=1e-6)


def test_stream_compiles_once_and_counts_exactly():
    traces = []

    def block_fn(key, b, n_valid):
        traces.append(1)
        x = jax.random.uniform(key, (256,))
        w = (jnp.arange(256, dtype=jnp.int32) < n_valid).astype(jnp.float32)
        xm = jnp.where(w > 0, x, -1.0)
        return {"n": jm.Moments(jnp.sum(w)), "x": jm.Moments(jnp.sum(w * x)),
                "x_max": jm.Extremum(jnp.max(xm), jnp.argmax(xm).astype(jnp.int32))}  # fmt: skip

    acc, info = jm.stream(block_fn, key=jax.random.PRNGKey(0), n_profiles=5000,
                          options=jm.StreamOptions(block_size=256, chunk_size=1024))  # fmt: skip
    assert len(traces) == 1  # traced once, reused for all 5 chunks
    assert info.n_chunks == 5
    assert acc.totals["n"].sum == 5000  # the last block is masked exactly
    assert 0 <= acc.totals["x_max"].index < 5000


def test_sample_depends_only_on_seed_and_block():
    prior = jm.independent((1, 1))
    k = jax.random.PRNGKey(0)
    # block b is drawn from fold_in(key, b): drawing it alone gives the same numbers
    b3 = prior.sample(jax.random.split(jax.random.fold_in(k, 3))[0], 64)
    assert b3.shape == (64, 2)
    np.testing.assert_array_equal(b3, prior.sample(jax.random.split(jax.random.fold_in(k, 3))[0], 64))


def test_fast_compile_gives_the_same_report():
    # fast_compile only changes how XLA compiles (no LLVM optimization, classic CPU fusion emitters): the same
    # numbers up to float rounding (float64 host sums of the same blocks)
    env = jm.example1()
    mech = jm.personalized_prices(env, jm.own_signal_prices)  # positive regret: maxima and witnesses matter
    kw = dict(key=jax.random.PRNGKey(5), n_profiles=3000, misreports=jm.Misreports(grid=6, random=4))
    opts = jm.StreamOptions(block_size=1024)
    a = jm.audit(env, mech, jm.independent(env.dims), options=opts, **kw).report
    b = jm.audit(env, mech, jm.independent(env.dims), options=opts._replace(fast_compile=True), **kw).report
    assert a["regret"][0]["max"] > a["tol"]
    _assert_close(a, b, rtol=1e-6, atol=1e-7)


def _trade_family(a):
    env = jm.bilateral_trade(jm.linear_trade_values(a), check=False)
    return env, jm.generalized_vcg(env), jm.independent(env.dims)


def test_audit_family_compiles_once_and_equals_each_audit():
    # CE Sec. 4.4's sweep over a: one kernel with a as an argument; every report is the single audit's, and the
    # deficit tracks the closed form (1 + a) / 6 of independent U[0, 1] signals
    kw = dict(key=jax.random.PRNGKey(3), n_profiles=4096, misreports=jm.Misreports(grid=8, random=2),
              options=jm.StreamOptions(block_size=1024))  # fmt: skip
    traces = []

    def model(theta):
        traces.append(1)
        return _trade_family(theta["a"])

    thetas = [{"a": -0.5}, {"a": 0.0}, {"a": 0.5}]
    fam = jm.audit_family(model, thetas, **kw)
    assert len(fam) == 3
    assert fam[0].info.compile_s > 0 and fam[1].info.compile_s == fam[2].info.compile_s == 0.0
    assert len(traces) == 3 + 1  # three concrete builds for the reports, one trace of the kernel
    for th, r in zip(thetas, fam, strict=True):
        _assert_same(r.report, jm.audit(*_trade_family(th["a"]), **kw).report)
        d = r.report["deficit"]
        assert abs(d["mean"] - (1 + th["a"]) / 6) < 4 * d["se"] + 1e-3
        assert r.report["regret"][0]["max"] <= r.report["tol"]


def test_stream_cases_rejects_operands_of_another_shape():
    def block_fn(op, key, b, nv):
        return {"n": jm.Moments(nv.astype(jnp.float32)), "s": jm.Moments(jnp.sum(op))}

    kw = dict(n_profiles=64, options=jm.StreamOptions(block_size=32, chunk_size=64))
    k = jax.random.PRNGKey(0)
    with np.testing.assert_raises_regex(ValueError, "case 1's operand"):
        jm.stream_cases(block_fn, [(k, jnp.zeros(2)), (k, jnp.zeros(3))], **kw)
    (a, _), (b, _) = jm.stream_cases(block_fn, [(k, jnp.ones(2)), (k, 2 * jnp.ones(2))], **kw)
    assert a.totals["s"].sum == 2 * 2 and b.totals["s"].sum == 2 * 4  # two blocks, each adds sum(op)
