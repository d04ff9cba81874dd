"""Benchmark: mechanism design from cold starts (``jm.design``) against finite-type LPs at G = 61, same run.

A finite-type LP tool (MechAudit, PyPI ``mechaudit``: NumPy + HiGHS + pandas) answers "the best ex post IC, IR,
budget-balanced mechanism" by solving one LP per type grid; at G = 61 types per agent, trade takes minutes on a
2-core CPU. jaxmech's design searches ex post IC families from cold starts, repairs exactly onto the budget
boundary and audits the result. This script times them on the same model and machine and prints the ratios:

- MechAudit at ``--mechaudit-G`` (default ``--G``): the same model in MechAudit's vocabulary
  (``benchmarks/baselines.py:mechaudit_trade``: ex post IC between every pair of grid types, ex post IR, ex post
  weak budget balance, randomized allocations, expected welfare; build + compile + ``solve()``, whose
  independent audit of the optimum is part of the tool's solve). Optional: ``pip install 'jaxmech[bench]'``;
  without it the row is skipped with a line saying so;
- the LP at ``G = 61`` (``jm.lp_reference``, scipy's HiGHS, adjacent-type IC, the same grid and probabilities as
  MechAudit's; its value is biased upward by the grid, ~1/G),
- the extrapolated optimum: the 1/G limit of the LP on ``--grids`` (untimed reference), and the closed form where
  one is known (private values: the posted price 1/2 gives 1/8, Hagerty-Rogerson),
- ``jm.design`` (compile included, the exact audit included) and its gap to the extrapolated optimum; the
  workload's goal is a gap within 0.5%.

    python benchmarks/bench_design_vs_lp.py [--a 0.0] [--G 61] [--grids 17 33 65] [--starts 4] [--seed 0]
        [--mechaudit-G 61 ...] [--no-mechaudit]

Several ``--mechaudit-G`` values time MechAudit on each (where ``--G`` takes too long on the machine at hand)
and print the fitted scaling ``seconds ~ G^k``; the ratios use the one equal to ``--G`` if timed, else the largest.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

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
    p.add_argument("--mechaudit-G", type=int, nargs="+", default=None, help="grids MechAudit times (default: --G)")
    p.add_argument("--no-mechaudit", action="store_true", help="skip the MechAudit baseline")
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
    # the gap is the design's exact value (quadrature where the family has one), not its Monte Carlo mean: an SE of
    # ~0.4% of the value would swamp a 0.5% goal
    value, mc, se = r.value, r.objective["mean"], r.objective["se"]
    gap = (target - value) / target
    print(f"jm.design ({args.family}, {args.starts} cold starts, audit included): {value:.6f} (Monte Carlo {mc:.6f} "
          f"+- {se:.6f}) in {design_s:.2f} s; gap to the extrapolated optimum {100 * gap:+.2f}% "
          f"({'within' if gap <= 0.005 else 'NOT within'} 0.5%)")  # fmt: skip
    print(f"ratio: jaxmech's LP at G = {args.G} takes {lp_s / design_s:.2f}x jm.design's time")
    if not args.no_mechaudit:
        mechaudit(args, lp.solutions[0].value, lp_s, design_s)
    return 0


def mechaudit(args, lp_value: float, lp_s: float, design_s: float) -> None:
    """Time MechAudit (``baselines.mechaudit_trade``) on ``--mechaudit-G`` and print its ratios."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import baselines  # the repository's baselines (benchmarks/), like `jaxmech bench`

    if not baselines.mechaudit_available():
        print("mechaudit not installed: pip install 'jaxmech[bench]'")
        return
    import mechaudit as ma
    import scipy

    print(f"# mechaudit {ma.__version__}, scipy {scipy.__version__}")
    grids = args.mechaudit_G or [args.G]
    timed = {}
    for g in grids:
        stages = {}
        value, sec = baselines.mechaudit_trade(g, args.a, stages=stages)
        timed[g] = (value, sec)
        print(f"MechAudit LP at G = {g}: value {value:.6f} in {sec:.2f} s (build {stages['build']:.2f} s, compile "
              f"{stages['compile']:.2f} s, solve + audit {stages['solve']:.2f} s; {stages['rows']} rows x "
              f"{stages['cols']} columns, IC between every pair of types)")  # fmt: skip
    if len(timed) > 1:
        x = [math.log(g) for g in timed]
        y = [math.log(t) for _, t in timed.values()]
        mx, my = sum(x) / len(x), sum(y) / len(y)
        k = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sum((a - mx) ** 2 for a in x)
        at = math.exp(my + k * (math.log(args.G) - mx))
        print(f"MechAudit scaling: seconds ~ G^{k:.2f} on G = {list(timed)}; at G = {args.G}: ~{at:.0f} s (fit)")
        if args.G not in timed:
            print(f"ratio (fit): MechAudit at G = {args.G} would take ~{at / design_s:.0f}x jm.design's time and "
                  f"~{at / lp_s:.0f}x jaxmech's LP at G = {args.G}")  # fmt: skip
    g = args.G if args.G in timed else max(timed)
    value, sec = timed[g]
    if g == args.G:
        print(f"MechAudit vs jaxmech's LP at G = {g}: values differ by {value - lp_value:+.2e} (same grid, same model)")
    print(f"ratio: MechAudit at G = {g} takes {sec / design_s:.1f}x jm.design's time and "
          f"{sec / lp_s:.1f}x jaxmech's LP at G = {args.G}")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
