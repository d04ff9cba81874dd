"""W1 (closed-form pivots) rate over block size and misreports per scan step: which shape feeds a GPU.

    python benchmarks/w1_tune.py [--profiles 2**28] [--blocks 262144 1048576] [--grid-chunks 16 64 258]
"""

from __future__ import annotations

import argparse
import json
import sys

import jax

import jaxmech as jm


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profiles", type=lambda x: int(eval(x, {})), default=1 << 28)
    p.add_argument("--blocks", type=int, nargs="+", default=[262144, 1048576])
    p.add_argument("--grid-chunks", type=int, nargs="+", default=[16, 64, 258])
    p.add_argument("--chunk-size", type=int, default=1 << 23)
    args = p.parse_args(argv)
    env = jm.bilateral_trade(jm.linear_trade_values(0.5))
    mech = jm.generalized_vcg(env, pivot=jm.linear_trade_pivot(0.5))
    for block in args.blocks:
        for gc in args.grid_chunks:
            mis = jm.Misreports(grid=256, random=0, kinks=True, grid_chunk=gc)
            res = jm.audit(env, mech, jm.independent(env.dims), key=jax.random.PRNGKey(0), n_profiles=args.profiles,
                           misreports=mis, options=jm.StreamOptions(block_size=block, chunk_size=max(args.chunk_size, block)))
            r = res.report
            print(json.dumps({"block": block, "grid_chunk": gc, "evals_per_s": args.profiles * 2 * 258 / res.info.run_s,
                              "compile_s": round(res.info.compile_s, 2), "run_s": round(res.info.run_s, 3),
                              "deficit": r["deficit"]["mean"], "regret_max": max(x["max"] for x in r["regret"])}),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
