"""Scale checks for the streaming engine (issue 8): device scaling and flat memory, each case in a fresh process.

    python benchmarks/scale.py devices [--devices 1 2 4] [--profiles N]     # W1 rate on N forced XLA CPU devices
    python benchmarks/scale.py memory [--profiles 1e6 1e7 1e8]               # W1 peak host RSS / device memory vs profiles

Each case runs W1 (bilateral trade, a = 0.5, closed-form pivots, K = 256 grid misreports + kinks) through
``jm.audit`` in a subprocess (``XLA_FLAGS=--xla_force_host_platform_device_count=N`` for ``devices``) and
prints one JSON line per case: rate, compile time, peak RSS of that process, peak device memory where the
backend reports it, and the deficit (closed form (1 + a) / 6 = 0.25) with its SE.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CASE = r"""
import json, sys, time, jax
import jaxmech as jm
from jaxmech._src.app import bench
n, block, chunk = int(float(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
env = jm.bilateral_trade(jm.linear_trade_values(0.5))
mech = jm.generalized_vcg(env, pivot=jm.linear_trade_pivot(0.5))
t0 = time.perf_counter()
res = jm.audit(env, mech, jm.independent(env.dims), key=jax.random.PRNGKey(0), n_profiles=n,
               misreports=jm.Misreports(grid=256, random=0, kinks=True), options=jm.StreamOptions(block_size=block, chunk_size=chunk))
r = res.report
print(json.dumps({
    "profiles": n, "devices": res.info.n_devices, "evals_per_s": n * 2 * 258 / res.info.run_s,
    "compile_s": res.info.compile_s, "run_s": res.info.run_s, "wall_s": time.perf_counter() - t0,
    "peak_rss_mib": bench.host_peak_rss_mb(), "device_peak_mib": bench.device_peak_mb(),
    "deficit": r["deficit"]["mean"], "deficit_se": r["deficit"]["se"],
    "regret_max": max(x["max"] for x in r["regret"]),
}))
"""


def run_case(profiles: float, block: int, chunk: int, devices: int | None = None) -> dict:
    env = dict(os.environ)
    if devices is not None:
        env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}"
    out = subprocess.run(
        [sys.executable, "-c", CASE, repr(profiles), str(block), str(chunk)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("devices", "memory"))
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--profiles", type=float, nargs="+", default=None)
    p.add_argument("--block-size", type=int, default=8192)
    p.add_argument("--chunk-size", type=int, default=1 << 17)
    args = p.parse_args(argv)
    if args.what == "devices":
        n = (args.profiles or [1 << 20])[0]
        for d in args.devices:
            print(json.dumps(run_case(n, args.block_size, args.chunk_size, d)), flush=True)
    else:
        for n in args.profiles or [1e6, 1e7, 1e8]:
            print(json.dumps(run_case(n, args.block_size, args.chunk_size)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
