"""Layer 5 — engine: the streaming Monte Carlo reducer under the audit.

Profiles come in fixed-size blocks; block ``b`` is drawn from
``fold_in(root_key, b)`` whatever the chunking or the devices, so the sample
is a function of ``(seed, block_size)`` alone. A *chunk* of blocks is one call
of a jit-compiled function, sharded over the devices of a 1-D mesh with
``shard_map``: each device takes a contiguous run of blocks and loops over them
with ``lax.map``, so device memory holds one block at a time. Each block is
reduced to a small dict of sums / counts / extrema; the host adds those up in
block order in float64 (:func:`jaxmech._src.core.reduction.add_blocks`), which makes
totals identical for every chunk size and device count. How a run streams (sizes,
devices, progress, checkpoints, compile mode) is one :class:`StreamOptions` value.
"""

from __future__ import annotations

import io
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxmech._src.core import audit as audit_lib
from jaxmech._src.core.compile_options import compile_options_for, fast_compile_for
from jaxmech._src.core.environments import Environment
from jaxmech._src.core.mechanisms import Mechanism, has_nested_loops
from jaxmech._src.core.priors import Prior
from jaxmech._src.core.reduction import (
    CHECKPOINT_FORMAT,
    Accumulator,
    BlockStats,
    Checkpoint,
    Reduction,
    flatten_totals,
    load_state,
    merge_totals,
    save_state,
    unflatten_totals,
)

Array = jax.Array
BlockFn = Callable[[Array, Array, Array], BlockStats]  # (block_key, block_index, n_valid) -> stats


class StreamInfo(NamedTuple):
    """What a streamed run did: sizes, devices and timings (seconds).

    In a multi-process run the sizes and timings are this process's; ``n_processes``
    is the process count. ``resumed_at_block`` is the block a resumed run started
    from (0 for a fresh run); ``fast_compile`` whether the kernel was compiled fast
    (:class:`StreamOptions`, ``"auto"`` resolved).
    """

    n_profiles: int
    block_size: int
    blocks_per_chunk: int
    n_chunks: int
    n_devices: int
    compile_s: float
    run_s: float
    n_processes: int = 1
    resumed_at_block: int = 0
    fast_compile: bool = False


DEFAULT_SEGMENT_BLOCKS = 1024


class StreamOptions(NamedTuple):
    """How a run streams its profiles: one value passed through the engine (:func:`stream`, :func:`audit`, ...).

    Only ``block_size`` (with the key) decides the sample; the other options change how fast and where the
    numbers are computed, never the numbers (``fast_compile``: equal up to float rounding).

    Attributes:
      block_size: profiles per block (fixes the sample: block ``b`` is drawn from ``fold_in(key, b)``).
      chunk_size: profiles per compiled call (rounded to whole blocks, and up to a multiple of the device count).
      devices: devices to shard over (default: all local devices).
      progress: called as ``progress(done_profiles, n_profiles)`` after each chunk (this process's share in a
        multi-process run).
      segment_blocks: blocks per reduction segment (the unit processes split on).
      checkpoint: save the running reductions to ``checkpoint.path`` every ``checkpoint.every_s`` seconds;
        with ``checkpoint.resume``, continue from it (a single case only).
      fast_compile: compile with :data:`FAST_COMPILE` (faster compile, slower run); ``"auto"``: when
        ``n_profiles <= compile_options.AUTO_FAST_MAX_PROFILES``, the measured break-even (:func:`fast_compile_for`).
      nested_loops: the kernel runs a loop inside a loop (e.g. B's ray search): compiled with
        :func:`compile_options.compile_options_for`'s options for such programs, which XLA's CPU backend
        miscompiles with :data:`FAST_COMPILE`. :func:`audit` sets it from the mechanisms
        (:func:`mechanisms.has_nested_loops`).
    """

    block_size: int = 4096
    chunk_size: int = 1 << 16
    devices: Sequence[Any] | None = None
    progress: Callable[[int, int], None] | None = None
    segment_blocks: int = DEFAULT_SEGMENT_BLOCKS
    checkpoint: Checkpoint | None = None
    fast_compile: bool | str = False
    nested_loops: bool = False


def _mesh(devices: Sequence[Any] | None) -> Mesh:
    devs = list(devices) if devices is not None else jax.local_devices()
    return Mesh(np.array(devs), ("blocks",))


def _gather_closed(closed: list[dict]) -> list[dict]:
    """All processes' closed segment totals, in process order (an all-gather of serialized bytes)."""
    from jax.experimental import multihost_utils

    buf = io.BytesIO()
    flat = {f"{j}::{k}": v for j, t in enumerate(closed) for k, v in flatten_totals(t).items()}
    np.savez(buf, n=np.asarray(len(closed)), **flat)
    raw = np.frombuffer(buf.getvalue(), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.asarray([raw.size], np.int32))).reshape(-1)
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[: raw.size] = raw
    everything = np.asarray(multihost_utils.process_allgather(padded))
    out: list[dict] = []
    for p, size in enumerate(sizes):
        with np.load(io.BytesIO(everything[p, : int(size)].tobytes())) as z:
            part = [{} for _ in range(int(z["n"]))]
            for name in z.files:
                if name != "n":
                    j, k = name.split("::", 1)
                    part[int(j)][k] = np.array(z[name])
        out.extend(unflatten_totals(t) for t in part)
    return out


def stream(
    block_fn: BlockFn, *, key: Array, n_profiles: int, options: StreamOptions = StreamOptions()
) -> tuple[Accumulator, StreamInfo]:
    """Stream ``n_profiles`` profiles through ``block_fn`` and add up its per-block outputs.

    Blocks add up in block order within *segments* of ``segment_blocks`` blocks and
    segments in order, in float64 on the host, so the totals are the same numbers
    for any chunk size, device count and process count, and after a resume.

    Several processes (``jax.distributed.initialize`` called before): process ``p``
    of ``P`` takes a contiguous run of whole segments, shards it over its local
    devices, and the closed segments' totals are all-gathered at the end, so every
    process returns the same totals.

    Args:
      block_fn: ``block_fn(block_key, block_index, n_valid) -> BlockStats`` (one block's
        :class:`~jaxmech._src.core.reduction.Moments` and :class:`~jaxmech._src.core.reduction.Extremum`
        by name, with ``"n"``: ``Moments(n_valid)``; see ``audit.block_stats``).
      key: root PRNG key (raw ``uint32[2]``); block ``b`` gets ``fold_in(key, b)``.
      n_profiles: total number of profiles (any size; the last block is masked).
      options: block and chunk sizes, devices, progress, segments, checkpoint, compile mode.
    """
    ((acc, info),) = stream_cases(lambda _, k, b, nv: block_fn(k, b, nv), [(key, ())], n_profiles=n_profiles,
                                  options=options)  # fmt: skip
    return acc, info


def _abstract(tree) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.result_type(x)), tree)


def stream_cases(
    block_fn: Callable[[Any, Array, Array, Array], BlockStats],
    cases: Sequence[tuple[Array, Any]],
    *,
    n_profiles: int,
    options: StreamOptions = StreamOptions(),
) -> list[tuple[Accumulator, StreamInfo]]:
    """:func:`stream` for several cases ``(key, operand)`` through one compiled program.

    ``block_fn(operand, block_key, block_index, n_valid)``: the operand (a pytree of
    arrays, e.g. a sweep point's parameters) is an argument of the compiled program,
    not a constant in it, so every case after the first runs without tracing or
    compiling; all operands need the first one's tree structure, shapes and dtypes.
    Each case's totals are exactly what :func:`stream` gives for it; ``progress``
    is called per case, ``compile_s`` is the first case's. ``options.checkpoint`` needs a
    single case. The other arguments are :func:`stream`'s.
    """
    block_size, chunk_size, devices, progress, segment_blocks, checkpoint, fast_compile, nested_loops = options
    fast_compile = fast_compile_for(fast_compile, n_profiles)
    cases = list(cases)
    if not cases:
        raise ValueError("stream_cases: need at least one (key, operand) case")
    if checkpoint is not None and len(cases) > 1:
        raise ValueError("stream_cases: a checkpoint needs a single case")
    if n_profiles < 1:
        raise ValueError(f"n_profiles must be >= 1, got {n_profiles}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if segment_blocks < 1:
        raise ValueError(f"segment_blocks must be >= 1, got {segment_blocks}")
    spec = _abstract(cases[0][1])
    for k, (_, op) in enumerate(cases[1:], 1):
        if (got := _abstract(op)) != spec:
            raise ValueError(f"stream_cases: case {k}'s operand {got} differs from case 0's {spec}")
    mesh = _mesh(devices)
    n_dev = mesh.devices.size
    n_proc, proc = jax.process_count(), jax.process_index()
    n_blocks = math.ceil(n_profiles / block_size)
    n_seg = math.ceil(n_blocks / segment_blocks)
    lo = min(proc * n_seg // n_proc * segment_blocks, n_blocks)  # this process's blocks: [lo, hi)
    hi = min((proc + 1) * n_seg // n_proc * segment_blocks, n_blocks)

    def per_device(operand, root, block_ids, n_valid):
        def one(args):
            b, nv = args
            return block_fn(operand, jax.random.fold_in(root, b), b, nv)

        return jax.lax.map(one, (block_ids, n_valid))

    sharded = jax.jit(
        jax.shard_map(
            per_device, mesh=mesh, in_specs=(P(), P(), P("blocks"), P("blocks")), out_specs=P("blocks"),
            check_vma=False,
        )
    )  # fmt: skip
    per_chunk = max(1, chunk_size // block_size)
    per_chunk = min(per_chunk, max(hi - lo, 1))
    per_chunk = math.ceil(per_chunk / n_dev) * n_dev
    my_profiles = min(hi * block_size, n_profiles) - lo * block_size
    compiled = None
    results = []
    for key, operand in cases:
        red = Reduction(segment_blocks, merge_closed=n_proc == 1)
        state_meta = {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": checkpoint.fingerprint if checkpoint else "",
            "n_profiles": n_profiles,
            "block_size": block_size,
            "segment_blocks": segment_blocks,
            "process": proc,
            "n_processes": n_proc,
            "key": np.asarray(jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key)
            .ravel()
            .tolist(),
        }
        start = lo
        if checkpoint is not None and checkpoint.resume and Path(checkpoint.path).exists():
            start = load_state(checkpoint, red, state_meta)
        n_chunks = math.ceil((hi - start) / per_chunk)

        def args_for(c, key=key, operand=operand, start=start):
            ids = np.arange(start + c * per_chunk, start + (c + 1) * per_chunk, dtype=np.int64)
            n_valid = np.where(ids < hi, np.clip(n_profiles - ids * block_size, 0, block_size), 0)
            return operand, key, jnp.asarray(ids, jnp.int32), jnp.asarray(n_valid, jnp.int32)

        compile_s = 0.0
        t0 = time.perf_counter()
        if n_chunks > 0 and compiled is None:
            compiled = sharded.lower(*args_for(0)).compile(compile_options_for(fast_compile, nested_loops))
            compile_s = time.perf_counter() - t0

        def save(next_block, red=red, state_meta=state_meta):
            meta = dict(state_meta, next_block=next_block, meta=checkpoint.meta or {})
            save_state(checkpoint, red, meta)

        t0 = last_save = time.perf_counter()
        pending = compiled(*args_for(0)) if n_chunks > 0 else None
        for c in range(n_chunks):
            # Dispatch the next chunk before pulling this one back, so the device stays busy.
            nxt = compiled(*args_for(c + 1)) if c + 1 < n_chunks else None
            host = jax.tree.map(np.asarray, pending)
            red.add_chunk(host, start + c * per_chunk, block_size)
            pending = nxt
            done_block = min(start + (c + 1) * per_chunk, hi)
            if checkpoint is not None and c + 1 < n_chunks and time.perf_counter() - last_save >= checkpoint.every_s:
                save(done_block)
                last_save = time.perf_counter()
            if progress is not None:
                progress(min(done_block * block_size, n_profiles) - lo * block_size, my_profiles)
        red.close()
        closed = _gather_closed(red.closed) if n_proc > 1 else red.closed
        acc = Accumulator()
        for tot in closed:
            if acc.totals:
                merge_totals(acc.totals, tot)
            else:
                acc.totals = tot
        run_s = time.perf_counter() - t0
        info = StreamInfo(
            n_profiles, block_size, per_chunk, n_chunks, n_dev, compile_s, run_s, n_proc, start - lo, fast_compile
        )
        results.append((acc, info))
    return results


# --------------------------------------------------------------------------
# the streaming audit


class AuditResult(NamedTuple):
    """An audit: the report (JSON-ready dict with means, SEs, 95% intervals) and run info."""

    report: dict
    info: StreamInfo


def value_scale(env: Environment, prior: Prior, key: Array, dtype=jnp.float32, n: int = 4096) -> float:
    """Largest ``|v_i(q, s)|`` over a pilot sample at the first-best outcome (the scale of IC tolerances)."""
    s = prior.sample(key, n, dtype)
    v = jax.vmap(lambda x: env.value(env.efficient(x), x))(s)
    vals = jax.vmap(env.values)(s) if env.values is not None else v
    return float(max(jnp.max(jnp.abs(v)), jnp.max(jnp.abs(vals)), 1e-12))


def default_rtol(dtype) -> float:
    """Relative IC / IR / budget tolerance: 1e-5 in float32, 1e-10 in float64."""
    return 1e-10 if jnp.dtype(dtype) == jnp.float64 else 1e-5


def audit(
    env: Environment,
    mech: Mechanism,
    prior: Prior,
    *,
    key: Array,
    n_profiles: int,
    params: Any = None,
    misreports: audit_lib.Misreports = audit_lib.Misreports(),
    dtype=jnp.float32,
    rtol: float | None = None,
    options: StreamOptions = StreamOptions(),
) -> AuditResult:
    """Audit ``mech`` in ``env`` on ``n_profiles`` profiles drawn from ``prior``, streamed in blocks.

    Reports per agent regret (ex post IC, CE Def 2 / Thm 2), ex post IR
    violation, utility and payment; the deficit; welfare, first-best welfare and
    their ratio; outcome frequencies — each mean with its standard error and a
    95% interval, maxima with the profile (and misreport) where they occur, and
    ``P(x > tol)`` with ``tol = rtol * value_scale``. ``options`` (:class:`StreamOptions`: block and
    chunk sizes, devices, progress, checkpoint to save / resume the running reductions) go to :func:`stream`.

    Raises:
      audit.AuditError: a number is NaN or infinite (decision, payment, utility, regret, deficit;
        the message names the first such profile), a moment overflowed, or the mechanism's menu
        disagrees with its decide / pay at a truthful report. ``err.result`` holds the report.
    """
    mech = mech if params is None else mech._replace(params=params)
    (result,) = _audit_cases(lambda _: (env, mech, prior), [((), key, (env, mech, prior))], n_profiles=n_profiles,
                             misreports=misreports, dtype=dtype, rtol=rtol, options=options)  # fmt: skip
    return result


def audit_family(
    model: Callable[[Any], tuple[Environment, Mechanism, Prior]],
    thetas: Sequence[Any],
    *,
    key: Array,
    n_profiles: int,
    misreports: audit_lib.Misreports = audit_lib.Misreports(),
    dtype=jnp.float32,
    rtol: float | None = None,
    options: StreamOptions = StreamOptions(),
    built: Sequence[tuple[Environment, Mechanism, Prior]] | None = None,
) -> list[AuditResult]:
    """:func:`audit` of ``model(theta)`` for each ``theta`` in ``thetas``, through one compiled kernel.

    ``model(theta) -> (env, mech, prior)`` builds one case of a family from its
    numbers ``theta`` (a pytree of floats, the same structure for every case: e.g.
    ``{"a": 0.5}`` for a sweep over the value weight of CE Sec. 4.4) and must be
    traceable in them. The kernel takes ``theta`` (in ``dtype``) as an argument,
    so a sweep of ``K`` points traces and compiles once instead of ``K`` times;
    the pilot scale and the report of each case come from ``model(theta)`` built
    with the concrete numbers. Every case is audited on the same profiles (common
    random numbers: ``key`` as in :func:`audit`), and its report equals
    :func:`audit`'s of ``model(theta)`` up to float rounding (a number the
    compiler sees as an argument is not folded into constants). ``built``: each
    case's ``model(theta)`` with the concrete numbers, where the caller has them.
    """
    if built is not None and len(built) != len(thetas):
        raise ValueError(f"audit_family: {len(built)} built cases for {len(thetas)} thetas")
    return _audit_cases(
        model, [(t, key, None if built is None else built[k]) for k, t in enumerate(thetas)], n_profiles=n_profiles,
        misreports=misreports, dtype=dtype, rtol=rtol, options=options,
    )  # fmt: skip


def _audit_cases(model, cases, *, n_profiles, misreports, dtype, rtol, options: StreamOptions) -> list[AuditResult]:
    if jnp.dtype(dtype) == jnp.float64 and not jax.config.read("jax_enable_x64"):
        raise ValueError(
            "float64 needs jax_enable_x64: set JAX_ENABLE_X64=1 or jax.config.update('jax_enable_x64', True)"
        )
    if int(n_profiles) < 2:
        raise ValueError(f"n_profiles must be >= 2 (a standard error needs two profiles), got {n_profiles}")
    built, stream_in = [], []
    for theta, key, concrete in cases:
        env, mech, prior = concrete if concrete is not None else model(theta)
        options = options._replace(nested_loops=options.nested_loops or has_nested_loops(mech))
        if prior.dims != env.dims:
            raise ValueError(f"prior dims {list(prior.dims)} do not match environment dims {list(env.dims)}")
        pilot_key, stream_key = jax.random.split(key)
        scale = value_scale(env, prior, pilot_key, dtype)
        tol = (default_rtol(dtype) if rtol is None else rtol) * scale
        built.append((env, mech.name, scale, tol))
        operand = (jax.tree.map(lambda x: jnp.asarray(x, dtype), theta), jnp.asarray(tol, dtype))
        stream_in.append((stream_key, operand))

    def block_fn(operand, block_key, block_index, n_valid):
        del block_index
        theta, tol = operand
        env, mech, prior = model(theta)
        sample_key, misreport_key = jax.random.split(block_key)
        profiles = prior.sample(sample_key, options.block_size, dtype)
        return audit_lib.block_stats(env, mech, mech.params, misreports, profiles, n_valid, misreport_key, tol)

    streamed = stream_cases(block_fn, stream_in, n_profiles=n_profiles, options=options)
    results = []
    for (env, name, scale, tol), (acc, info) in zip(built, streamed, strict=True):
        report = audit_lib.finalize(acc.totals, env, tol)
        report["value_scale"] = scale
        problem = audit_lib.integrity_problem(report)
        if problem is not None:  # no silent wrong answer: the report is attached to the error
            raise audit_lib.AuditError(f"{name} in {env.name}: {problem}", AuditResult(report, info))
        results.append(AuditResult(report, info))
    return results


def compare_deficits(
    env: Environment,
    mechs: Sequence[Mechanism],
    prior: Prior,
    *,
    key: Array,
    n_profiles: int,
    dtype=jnp.float32,
    rtol: float | None = None,
    options: StreamOptions = StreamOptions(),
) -> AuditResult:
    """Deficits of ``mechs[0]`` against each of ``mechs[1:]`` on the same profiles, state by state.

    The check behind CE Lemma 5 (a deterministic reduction has a smaller
    deficit in every state) and CE Thm 6 (``g_*`` minimizes the deficit state by
    state): the report gives each deficit (mean ± SE, min, max) and, for each
    other mechanism, ``deficit_k - deficit_0`` (mean ± SE, its minimum with the
    profile where it occurs, ``P(< -tol)``).
    """
    mechs = tuple(mechs)
    if len(mechs) < 2:
        raise ValueError("compare_deficits: need a baseline and at least one other mechanism")
    pilot_key, stream_key = jax.random.split(key)
    tol = (default_rtol(dtype) if rtol is None else rtol) * value_scale(env, prior, pilot_key, dtype)

    def block_fn(block_key, block_index, n_valid):
        del block_index
        profiles = prior.sample(jax.random.split(block_key)[0], options.block_size, dtype)
        return audit_lib.deficit_comparison_stats(env, mechs, profiles, n_valid, jnp.asarray(tol, dtype))

    options = options._replace(nested_loops=options.nested_loops or any(has_nested_loops(m) for m in mechs))
    acc, info = stream(block_fn, key=stream_key, n_profiles=n_profiles, options=options)
    return AuditResult(audit_lib.finalize_comparison(acc.totals, tuple(m.name for m in mechs), tol), info)


def terminal_progress(label: str = "audit", stream_=None, min_interval: float = 0.2):
    """A progress callback writing ``label: 42% (n/N profiles, rate/s, ETA 1m05s)`` on one line; ``None`` when not a TTY.

    Rate and ETA count from the first call, so a resumed run's rate is its own.
    """
    out = stream_ if stream_ is not None else sys.stderr
    if not out.isatty():
        return None
    first: list[float] = []  # (time, done) at the first call
    last = [0.0]

    def cb(done, total):
        now = time.perf_counter()
        if done < total and now - last[0] < min_interval:
            return
        last[0] = now
        if not first:
            first.extend((now, done))
        out.write(f"\r{label}: {progress_line(done, total, now - first[0], done - first[1])}")
        if done >= total:
            out.write("\n")
        out.flush()

    return cb


def progress_line(done: int, total: int, elapsed_s: float, done_since: int) -> str:
    """``42.0% (n/N profiles, rate/s, ETA ...)`` from the profiles done since ``elapsed_s`` seconds ago."""
    rate = done_since / elapsed_s if elapsed_s > 0 else 0.0
    eta = "--" if rate <= 0 else _duration((total - done) / rate)
    return f"{100 * done / max(total, 1):5.1f}% ({done:,}/{total:,} profiles, {rate:,.0f}/s, ETA {eta})"


def _duration(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
