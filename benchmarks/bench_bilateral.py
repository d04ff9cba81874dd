"""Benchmark: the bilateral-trade ex post IC audit (CE Sec. 4.4), jaxmech vs vectorized NumPy, same run.

Workload: v_i = s_i + a s_-i (a = 0.5), uniform signals, efficient rule + generalized VCG payments,
both agents, a K-point misreport grid (K = 256). Statistic: regret mean / max per agent (plus
deficit). Unit: profile x agent x misreport evaluations per second.

    python benchmarks/bench_bilateral.py [--quick] [--profiles N] [--grid K] [--float64] [--cpu-devices N]

Each path runs ``--repeats`` times after compiling; the best time counts (for NumPy too).
``--cpu-devices N`` splits the host CPU into N XLA devices (one per core), which
the engine shards over like GPUs; NumPy stays single-threaded, as it is.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import jax
import numpy as np


def numpy_audit(n, k, a, seed, dtype, chunk=4096):
    rng = np.random.default_rng(seed)
    grid = np.linspace(0, 1, k, dtype=dtype)
    reg_sum = np.zeros(2)
    reg_max = np.zeros(2)
    deficit = 0.0
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        sb, ss = rng.random(m, dtype=dtype), rng.random(m, dtype=dtype)
        vb, vs = sb + a * ss, ss + a * sb
        trade = sb > ss
        ub = np.where(trade, vb - (1 + a) * ss, 0.0)
        us = np.where(trade, -vs + (1 + a) * sb, 0.0)
        deficit += np.sum(np.where(trade, (1 + a) * (sb - ss), 0.0))
        # buyer misreports x: trade iff x > ss, pays (1 + a) ss
        tb = grid[None, :] > ss[:, None]
        ubm = np.where(tb, vb[:, None] - (1 + a) * ss[:, None], 0.0).max(axis=1)
        # seller misreports y: trade iff sb > y, receives (1 + a) sb
        ts = sb[:, None] > grid[None, :]
        usm = np.where(ts, -vs[:, None] + (1 + a) * sb[:, None], 0.0).max(axis=1)
        for i, (best, u) in enumerate(((ubm, ub), (usm, us))):
            r = np.maximum(best - u, 0.0)
            reg_sum[i] += r.sum()
            reg_max[i] = max(reg_max[i], r.max())
    return reg_sum / n, reg_max, deficit / n


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profiles", type=int, default=None)
    p.add_argument("--grid", type=int, default=256)
    p.add_argument("--block-size", type=int, default=8192)
    p.add_argument("--chunk-size", type=int, default=1 << 17)
    p.add_argument("--grid-chunk", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cpu-devices", type=int, default=1, help="XLA host devices (CPU only)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--float64", action="store_true")
    args = p.parse_args()
    if args.cpu_devices > 1:  # must happen before jax initializes its backends
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={args.cpu_devices}"
        )
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jaxlib

    import jaxmech as jm

    dtype = jnp.float64 if args.float64 else jnp.float32
    n = args.profiles or (1 << 17 if args.quick else 1 << 20)
    n_np = max(n // 8, 4096)
    k, a = args.grid, 0.5
    dev = jax.devices()[0]
    print(f"device: {dev.device_kind} ({jax.default_backend()}, {len(jax.devices())} device(s)), cpus={os.cpu_count()}")
    print(f"versions: jax {jax.__version__}, jaxlib {jaxlib.__version__}, numpy {np.__version__}; dtype {jnp.dtype(dtype).name}")
    print(f"workload W1: bilateral trade a={a}, K={k} grid misreports, 2 agents")

    env = jm.bilateral_trade(jm.linear_trade_values(a))
    prior = jm.independent(env.dims)
    mis = jm.Misreports(grid=k, random=0, kinks=False, grid_chunk=args.grid_chunk)
    rows = []
    for label, mech in (
        ("jaxmech (closed-form pivots)", jm.generalized_vcg(env, pivot=jm.linear_trade_pivot(a))),
        ("jaxmech (bisection pivots)", jm.generalized_vcg(env)),
    ):
        runs = [
            jm.audit(
                env, mech, prior, key=jax.random.PRNGKey(0), n_profiles=n, misreports=mis, dtype=dtype,
                options=jm.StreamOptions(block_size=args.block_size, chunk_size=args.chunk_size),
            )  # fmt: skip
            for _ in range(args.repeats)
        ]
        res = min(runs, key=lambda r: r.info.run_s)
        rate = n * 2 * k / res.info.run_s
        r = res.report
        rows.append((label, n, rate, res.info.compile_s))
        print(
            f"{label:<30} n={n:>9,}  {rate:10.3e} evals/s  compile {res.info.compile_s:5.2f}s  "
            f"regret max {max(x['max'] for x in r['regret']):.2g}  deficit {r['deficit']['mean']:.4f} ± {r['deficit']['se']:.1g}"
        )
    t_np = math.inf
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        reg_mean, reg_max, deficit = numpy_audit(n_np, k, a, 0, np.float64 if args.float64 else np.float32)
        t_np = min(t_np, time.perf_counter() - t0)
    rate_np = n_np * 2 * k / t_np
    print(
        f"{'numpy (vectorized)':<30} n={n_np:>9,}  {rate_np:10.3e} evals/s  "
        f"regret max {reg_max.max():.2g}  deficit {deficit:.4f}"
    )
    for label, _, rate, _ in rows:
        print(f"ratio {label} / numpy: {rate / rate_np:.2f}x")


if __name__ == "__main__":
    main()
