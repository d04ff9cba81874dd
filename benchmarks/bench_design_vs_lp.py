"""Benchmark: mechanism design from cold starts (``jm.design``) against the finite-type LP at G = 61, same run.

A finite-type LP tool (e.g. MechAudit: NumPy + HiGHS) answers "the best ex post IC, IR, budget-balanced mechanism"
by solving one LP per type grid; at G = 61 types per agent, trade takes minutes on a 2-core CPU. jaxmech's design
searches ex post IC families from cold starts, repairs exactly onto the budget boundary and audits the result.
This script times both on the same model and machine and prints the ratio:

- the LP at ``G = 61`` (``jm.lp_reference``, scipy's HiGHS, adjacent-type IC; its value is biased upward by the
  grid, ~1/G),
- the extrapolated optimum: the 1/G limit of the LP on ``--grids`` (untimed reference), and the closed form where
  one is known (private values: the posted price 1/2 gives 1/8, Hagerty-Rogerson),
- ``jm.design`` (compile included, the exact audit included) and its gap to the extrapolated optimum; the
  workload's goal is a gap within 0.5%.

    python benchmarks/bench_design_vs_lp.py [--a 0.0] [--G 61] [--grids 17 33 65] [--starts 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import platform
import time

import jax

import jaxmech as jm


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", type=float, default=0.0, help="interdependence: v_i = s_i + a s_-i (0: private values)")
    p.add_argument("--G", type=int, default=61, help="types per agent of the timed LP")
    p.add_argument("--grids", type=int, nargs="+", default=[17, 33, 65], help="grids of the extrapolated optimum")
    p.add_argument("--starts", type=int, default=4, help="cold starts of the design")
    p.add_argument("--family", default="two_price", help="design family (jm.design)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    env = jm.bilateral_trade(jm.linear_trade_values(args.a))
    prior = jm.independent(env.dims)
    print(f"# design vs LP: bilateral trade v_i = s_i + {args.a} s_-i, uniform signals, ex post budget balance")
    print(f"# jax {jax.__version__}, {jax.devices()[0].device_kind} ({platform.machine()}), "
          f"{jax.device_count()} device(s)")  # fmt: skip

    t0 = time.perf_counter()
    lp = jm.lp_reference(env, prior, grids=(args.G,))
    lp_s = time.perf_counter() - t0
    ref = jm.lp_reference(env, prior, grids=tuple(args.grids))
    closed = (1 - args.a) ** 3 * (1 + args.a) / 8  # the best deterministic rule (1/8 at a = 0: the optimum)
    target = ref.limit
    print(f"LP at G = {args.G}: value {lp.solutions[0].value:.6f} in {lp_s:.2f} s")
    print(f"extrapolated optimum (LP on G = {args.grids}, 1/G limit): {target:.6f}; "
          f"best deterministic rule (1-a)^3(1+a)/8 = {closed:.6f}")  # fmt: skip

    t0 = time.perf_counter()
    r = jm.design(env, prior, key=jax.random.PRNGKey(args.seed), family=args.family, starts=args.starts)
    design_s = time.perf_counter() - t0
    value, se = r.objective["mean"], r.objective["se"]
    gap = (target - value) / target
    print(f"jm.design ({args.family}, {args.starts} cold starts, audit included): {value:.6f} +- {se:.6f} "
          f"in {design_s:.2f} s; gap to the extrapolated optimum {100 * gap:+.2f}% "
          f"({'within' if gap <= 0.005 else 'NOT within'} 0.5%)")  # fmt: skip
    print(f"ratio: the LP at G = {args.G} takes {lp_s / design_s:.2f}x jm.design's time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
