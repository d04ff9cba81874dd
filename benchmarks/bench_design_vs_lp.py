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
        [--family two_price] [--mechaudit-G 61 ...] [--mechaudit-method simplex ipm] [--no-mechaudit]

``--mechaudit-method`` picks MechAudit's HiGHS method(s): ``simplex`` (its default; > 20 min at G = 61 on 2 cores)
and/or ``ipm`` (interior point, ~130 s there). ``jaxmech bench --workload W6`` runs the same comparison (``a = 0``,
``two_price``, MechAudit's interior point at ``--grid`` and its simplex up to G = 41) beside the other workloads;
both call ``jaxmech._src.app.bench.design_vs_lp``.

Several ``--mechaudit-G`` values time MechAudit on each (where ``--G`` takes too long on the machine at hand)
and print the fitted scaling ``seconds ~ G^k``; the ratios use the one equal to ``--G`` if timed, else the largest.
"""

from __future__ import annotations

import argparse
import math
import platform
from pathlib import Path

import jax

from jaxmech._src.app import bench


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", type=float, default=0.0, help="interdependence: v_i = s_i + a s_-i (0: private values)")
    p.add_argument("--G", type=int, default=61, help="types per agent of the timed LP")
    p.add_argument("--grids", type=int, nargs="+", default=[17, 33, 65], help="grids of the extrapolated optimum")
    p.add_argument("--starts", type=int, default=4, help="cold starts of the design")
    p.add_argument("--family", default="two_price", help="design family (jm.design)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mechaudit-G", type=int, nargs="+", default=None, help="grids MechAudit times (default: --G)")
    p.add_argument("--mechaudit-method", nargs="+", default=["simplex"], choices=["simplex", "ipm"],
                   help="HiGHS methods MechAudit runs (simplex: its default)")  # fmt: skip
    p.add_argument("--no-mechaudit", action="store_true", help="skip the MechAudit baseline")
    args = p.parse_args(argv)

    print(f"# design vs LP: bilateral trade v_i = s_i + {args.a} s_-i, uniform signals, ex post budget balance")
    print(f"# jax {jax.__version__}, {jax.devices()[0].device_kind} ({platform.machine()}), "
          f"{jax.device_count()} device(s)")  # fmt: skip
    bl = None
    if not args.no_mechaudit:
        bl = bench.load_baselines(Path(__file__).resolve().parent)  # the repository's baselines, like `jaxmech bench`
        if bl.mechaudit_available():
            import mechaudit as ma
            import scipy

            print(f"# mechaudit {ma.__version__}, scipy {scipy.__version__}")
    rows, refs = bench.design_vs_lp(
        a=args.a, family=args.family, G=args.G, grids=tuple(args.grids), starts=args.starts, seed=args.seed,
        mechaudit_grids=() if args.no_mechaudit else tuple(args.mechaudit_G or [args.G]),
        mechaudit_methods=tuple(args.mechaudit_method), bl=bl,
    )  # fmt: skip
    if not refs["has_lp"]:
        print("scipy not installed (pip install 'jaxmech[lp]'): this script compares with LPs; nothing to compare")
        return 1
    design, baseline = rows[0], rows[2:]
    print(f"extrapolated optimum (LP on G = {args.grids}, 1/G limit): {refs['limit']:.6f}; best deterministic rule "
          f"(1-a)^3(1+a)/8 = {refs['closed']:.6f}")  # fmt: skip
    if refs["mechaudit_missing"]:
        print("mechaudit not installed: pip install 'jaxmech[bench]'")
    d = design.stats
    print(f"LP at G = {args.G}: value {refs['lp']:.6f} in {refs['lp_s']:.2f} s")
    print(f"jm.design ({args.family}, {args.starts} cold starts, audit included): {d['value']:.6f} (Monte Carlo "
          f"{d['mc']:.6f} +- {d['se']:.6f}) in {refs['design_s']:.2f} s; gap to the extrapolated optimum "
          f"{d['gap_pct']:+.2f}% ({'within' if refs['gap'] <= bench.GOAL_GAP else 'NOT within'} 0.5%)")  # fmt: skip
    print(f"ratio: jaxmech's LP at G = {args.G} takes {refs['lp_s'] / refs['design_s']:.2f}x jm.design's time")
    for method in args.mechaudit_method:
        timed = {r.size: (r.stats["value"], r.stats["seconds"]) for r in baseline if f"({method}," in r.path}
        if timed:
            report(args.G, method, timed, refs)
    return 0


def report(G: int, method: str, timed: dict, refs: dict) -> None:
    """MechAudit's times with one HiGHS method, its fitted scaling and its ratios to jm.design and jaxmech's LP."""
    for g, (value, sec) in timed.items():
        print(f"MechAudit LP ({method}) at G = {g}: value {value:.6f} in {sec:.2f} s (IC between every pair of types)")
    design_s, lp_s = refs["design_s"], refs["lp_s"]
    if len(timed) > 1:
        x = [math.log(g) for g in timed]
        y = [math.log(t) for _, t in timed.values()]
        mx, my = sum(x) / len(x), sum(y) / len(y)
        k = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sum((a - mx) ** 2 for a in x)
        at = math.exp(my + k * (math.log(G) - mx))
        print(f"MechAudit ({method}) scaling: seconds ~ G^{k:.2f} on G = {list(timed)}; at G = {G}: ~{at:.0f} s (fit)")
        if G not in timed:
            print(f"ratio (fit): MechAudit ({method}) at G = {G} would take ~{at / design_s:.0f}x jm.design's time "
                  f"and ~{at / lp_s:.0f}x jaxmech's LP at G = {G}")  # fmt: skip
    g = G if G in timed else max(timed)
    value, sec = timed[g]
    if g == G:
        print(f"MechAudit vs jaxmech's LP at G = {g}: values differ by {value - refs['lp']:+.2e} (same grid and model)")
    print(f"ratio: MechAudit ({method}) at G = {g} takes {sec / design_s:.1f}x jm.design's time and "
          f"{sec / lp_s:.1f}x jaxmech's LP at G = {G}")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
