"""Layer 5 — engine: the streaming Monte Carlo reducer under the audit.

Profiles come in fixed-size blocks; block ``b`` is drawn from
``fold_in(root_key, b)`` whatever the chunking or the devices, so the sample
is a function of ``(seed, block_size)`` alone. A *chunk* of blocks is one call
of a jit-compiled function, sharded over the devices of a 1-D mesh with
``shard_map``: each device takes a contiguous run of blocks and loops over them
with ``lax.map``, so device memory holds one block at a time. Each block is
reduced to a small dict of sums / counts / extrema; the host adds those up in
block order in float64 (:class:`jaxmech._src.audit.Accumulator`), which makes
totals identical for every chunk size and device count.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxmech._src import audit as audit_lib
from jaxmech._src.environments import Environment
from jaxmech._src.mechanisms import Mechanism
from jaxmech._src.priors import Prior

Array = jax.Array
BlockFn = Callable[[Array, Array, Array], dict]  # (block_key, block_index, n_valid) -> stats


class StreamInfo(NamedTuple):
    """What a streamed run did: sizes, devices and timings (seconds)."""

    n_profiles: int
    block_size: int
    blocks_per_chunk: int
    n_chunks: int
    n_devices: int
    compile_s: float
    run_s: float


def _mesh(devices: Sequence[Any] | None) -> Mesh:
    devs = list(devices) if devices is not None else jax.devices()
    return Mesh(np.array(devs), ("blocks",))


def stream(
    block_fn: BlockFn,
    *,
    key: Array,
    n_profiles: int,
    block_size: int,
    chunk_size: int,
    devices: Sequence[Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[audit_lib.Accumulator, StreamInfo]:
    """Stream ``n_profiles`` profiles through ``block_fn`` and add up its per-block outputs.

    Args:
      block_fn: ``block_fn(block_key, block_index, n_valid) -> dict`` of arrays
        (one block's sums / counts / extrema, see ``audit.block_stats``).
      key: root PRNG key (raw ``uint32[2]``); block ``b`` gets ``fold_in(key, b)``.
      n_profiles: total number of profiles (any size; the last block is masked).
      block_size: profiles per block (fixes the sample).
      chunk_size: profiles per compiled call (rounded to whole blocks, and up to a
        multiple of the device count).
      devices: devices to shard over (default: all visible devices).
      progress: called as ``progress(done_profiles, n_profiles)`` after each chunk.
    """
    if n_profiles < 1:
        raise ValueError(f"n_profiles must be >= 1, got {n_profiles}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    mesh = _mesh(devices)
    n_dev = mesh.devices.size
    n_blocks = math.ceil(n_profiles / block_size)
    per_chunk = max(1, chunk_size // block_size)
    per_chunk = min(per_chunk, n_blocks)
    per_chunk = math.ceil(per_chunk / n_dev) * n_dev
    n_chunks = math.ceil(n_blocks / per_chunk)

    def per_device(root, block_ids, n_valid):
        def one(args):
            b, nv = args
            return block_fn(jax.random.fold_in(root, b), b, nv)

        return jax.lax.map(one, (block_ids, n_valid))

    sharded = jax.jit(
        jax.shard_map(
            per_device, mesh=mesh, in_specs=(P(), P("blocks"), P("blocks")), out_specs=P("blocks"), check_vma=False
        )
    )

    def args_for(c):
        ids = np.arange(c * per_chunk, (c + 1) * per_chunk, dtype=np.int64)
        n_valid = np.clip(n_profiles - ids * block_size, 0, block_size)
        return key, jnp.asarray(ids, jnp.int32), jnp.asarray(n_valid, jnp.int32)

    t0 = time.perf_counter()
    compiled = sharded.lower(*args_for(0)).compile()
    compile_s = time.perf_counter() - t0

    acc = audit_lib.Accumulator()
    t0 = time.perf_counter()
    pending = compiled(*args_for(0))
    for c in range(n_chunks):
        # Dispatch the next chunk before pulling this one back, so the device stays busy.
        nxt = compiled(*args_for(c + 1)) if c + 1 < n_chunks else None
        host = jax.tree.map(np.asarray, pending)
        acc.add_chunk(host, c * per_chunk, block_size)
        pending = nxt
        if progress is not None:
            progress(min((c + 1) * per_chunk * block_size, n_profiles), n_profiles)
    run_s = time.perf_counter() - t0
    info = StreamInfo(n_profiles, block_size, per_chunk, n_chunks, n_dev, compile_s, run_s)
    return acc, info


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
    block_size: int = 4096,
    chunk_size: int = 1 << 16,
    dtype=jnp.float32,
    rtol: float | None = None,
    devices: Sequence[Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AuditResult:
    """Audit ``mech`` in ``env`` on ``n_profiles`` profiles drawn from ``prior``, streamed in blocks.

    Reports per agent regret (ex post IC, CE Def 2 / Thm 2), ex post IR
    violation, utility and payment; the deficit; welfare, first-best welfare and
    their ratio; outcome frequencies — each mean with its standard error and a
    95% interval, maxima with the profile (and misreport) where they occur, and
    ``P(x > tol)`` with ``tol = rtol * value_scale``.
    """
    if prior.dims != env.dims:
        raise ValueError(f"prior dims {list(prior.dims)} do not match environment dims {list(env.dims)}")
    if jnp.dtype(dtype) == jnp.float64 and not jax.config.read("jax_enable_x64"):
        raise ValueError(
            "float64 needs jax_enable_x64: set JAX_ENABLE_X64=1 or jax.config.update('jax_enable_x64', True)"
        )
    params = mech.params if params is None else params
    pilot_key, stream_key = jax.random.split(key)
    scale = value_scale(env, prior, pilot_key, dtype)
    tol = (default_rtol(dtype) if rtol is None else rtol) * scale

    def block_fn(block_key, block_index, n_valid):
        del block_index
        sample_key, misreport_key = jax.random.split(block_key)
        profiles = prior.sample(sample_key, block_size, dtype)
        return audit_lib.block_stats(
            env, mech, params, misreports, profiles, n_valid, misreport_key, jnp.asarray(tol, dtype)
        )

    acc, info = stream(
        block_fn,
        key=stream_key,
        n_profiles=n_profiles,
        block_size=block_size,
        chunk_size=chunk_size,
        devices=devices,
        progress=progress,
    )
    report = audit_lib.finalize(acc.totals, env, tol)
    report["value_scale"] = scale
    return AuditResult(report, info)


def compare_deficits(
    env: Environment,
    mechs: Sequence[Mechanism],
    prior: Prior,
    *,
    key: Array,
    n_profiles: int,
    block_size: int = 4096,
    chunk_size: int = 1 << 16,
    dtype=jnp.float32,
    rtol: float | None = None,
    devices: Sequence[Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
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
        profiles = prior.sample(jax.random.split(block_key)[0], block_size, dtype)
        return audit_lib.deficit_comparison_stats(env, mechs, profiles, n_valid, jnp.asarray(tol, dtype))

    acc, info = stream(
        block_fn, key=stream_key, n_profiles=n_profiles, block_size=block_size, chunk_size=chunk_size,
        devices=devices, progress=progress,
    )  # fmt: skip
    return AuditResult(audit_lib.finalize_comparison(acc.totals, tuple(m.name for m in mechs), tol), info)


def terminal_progress(label: str = "audit", stream_=None, min_interval: float = 0.2):
    """A progress callback writing ``label: 42% (n/N profiles)`` on one line; ``None`` when not a TTY."""
    out = stream_ if stream_ is not None else sys.stderr
    if not out.isatty():
        return None
    start = time.perf_counter()
    last = [0.0]

    def cb(done, total):
        now = time.perf_counter()
        if done < total and now - last[0] < min_interval:
            return
        last[0] = now
        rate = done / max(now - start, 1e-9)
        out.write(f"\r{label}: {100 * done / total:5.1f}% ({done:,}/{total:,} profiles, {rate:,.0f}/s)")
        if done >= total:
            out.write("\n")
        out.flush()

    return cb
