"""Break-even of ``fast_compile``: compile time saved against run time lost, per workload, on this machine.

For each workload the audit kernel is compiled and run twice, with XLA's full optimization and with
:data:`jaxmech._src.core.compile_options.FAST_COMPILE` (no LLVM optimization, classic CPU fusion emitters), at a
small and a larger profile count. With ``c`` the compile time and ``r`` the run time per profile,

    break-even profiles  N* = (c_full - c_fast) / (r_fast - r_full),

below which the fast compile finishes first. ``audit.fast_compile = "auto"`` (the config default) compiles fast
for audits of at most :data:`jaxmech._src.core.compile_options.AUTO_FAST_MAX_PROFILES` profiles: the smallest
N* measured here, from the bisection-heavy workloads where a slow run costs most (docs/configs.md).

    python benchmarks/fast_compile_breakeven.py [--small 4096] [--large 65536] [--repeats 2]

Prints one row per workload and the smallest break-even; timings are the best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import platform

import jax

import jaxmech as jm


def workloads():
    trade = jm.bilateral_trade(jm.linear_trade_values(0.5))
    public = jm.public_good(jm.linear_public_values(0.5, 3), cost=1.5, n=3)
    ex1 = jm.example1()
    return [
        ("trade, closed-form pivots (CE eqs. 5-6)", trade, jm.generalized_vcg(trade, pivot=jm.linear_trade_pivot(0.5))),
        ("trade, bisection pivots", trade, jm.generalized_vcg(trade)),
        ("public good n=3, bisection pivots", public, jm.generalized_vcg(public)),
        ("B Example 1, pivotal prices (rays)", ex1, jm.pivotal_mechanism(ex1)),
    ]


def timed(env, mech, n, fast, repeats):
    best = None
    for _ in range(repeats):
        try:
            info = jm.audit(env, mech, jm.independent(env.dims), key=jax.random.PRNGKey(0), n_profiles=n,
                            options=jm.StreamOptions(block_size=4096, chunk_size=1 << 16, fast_compile=fast)).info  # fmt: skip
        except jm.AuditError as e:  # refused numbers still ran: the timing holds; say so
            print(f"  (fast_compile={fast}, {n:,} profiles: audit refused: {str(e)[:160]})")
            info = e.result.info
        best = info if best is None or info.run_s < best.run_s else best
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", type=int, default=4096, help="profiles of the compile-time run")
    p.add_argument("--large", type=int, default=65536, help="profiles of the run-time run")
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args(argv)
    print(f"# fast_compile break-even: jax {jax.__version__}, {jax.devices()[0].device_kind} "
          f"({jax.default_backend()}), {platform.processor() or platform.machine()}")  # fmt: skip
    print(f"{'workload':42s} {'compile full':>12s} {'compile fast':>12s} {'us/profile full':>15s} "
          f"{'us/profile fast':>15s} {'run x':>6s} {'break-even N*':>14s}")  # fmt: skip
    found = []
    for label, env, mech in workloads():
        row = {}
        for fast in (False, True):
            small = timed(env, mech, a.small, fast, 1)
            large = timed(env, mech, a.large, fast, a.repeats)
            row[fast] = (small.compile_s, large.run_s / a.large)
        (cf, rf), (cq, rq) = row[False], row[True]
        n_star = (cf - cq) / (rq - rf) if rq > rf else float("inf")
        found.append(n_star)
        print(f"{label:42s} {cf:11.2f}s {cq:11.2f}s {rf * 1e6:15.2f} {rq * 1e6:15.2f} {rq / rf:6.2f} {n_star:14,.0f}")
    print(f"smallest break-even: {min(found):,.0f} profiles")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
