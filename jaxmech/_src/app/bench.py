"""Benchmarks (issue 8): jaxmech through its public API against vectorized NumPy and PyTorch eager, one run.

Every workload prints, on the same machine and in the same run, the rate of
jaxmech (``jm.audit`` / ``jm.search`` / ``certify.certify``, compile excluded),
of a vectorized NumPy implementation of the same statistic, and of the same
code on PyTorch eager when ``torch`` is installed (``pip install jaxmech[bench]``;
never a runtime dependency), their ratios, the compile time, peak device
memory (where the backend reports it), the host's peak RSS, the device and the
versions. The baselines draw their own profiles (same distribution, other
draws); their statistics agree with jaxmech's within Monte Carlo error, which
the table shows. They live in the repository's ``benchmarks/baselines.py``, not
in the wheel: :func:`load_baselines` loads that file by path when a run starts,
and without it the JAX rows run alone after one line saying so.

Workloads (unit in brackets):

- W1 bilateral trade, ``v_i = s_i + a s_-i`` (a = 0.5), efficient rule + generalized VCG payments
  (CE Sec. 4.4, eqs. (5)-(6)), both agents, K = 256 grid misreports + 2 kink candidates [profile x
  agent x misreport evaluations / s].
- W2 public good, n = 8, ``v_i = s_i + a sum_{j != i} s_j`` (a = 0.2), c = 4, threshold contribution
  rule ``vbar_i = c / n`` with pivot payments (CE Def 12, Thm 9), K = 64 grid misreports + 2 kinks
  per agent [evaluations / s].
- W3 B Example 1 (``V_i = p_i + c_i c_j``, prices ``p_j + c_j^2``), 16 x 16 misreport grid + 6 kink
  candidates per buyer [evaluations / s].
- W4 one step of the CE Thm 9 second-best search (threshold family, n = 2, a = 0.3, augmented
  Lagrangian, Adam) on a fresh batch of 2^20 profiles (quick: 2^16) [steps / s].
- W5 CE Thm 1 certificates for ``project_choice`` with k = 16 outcomes, 256 own-signal samples per
  ``s_-i`` [certificates / s].
- W6 mechanism design against a finite-type LP (issue 21): private-values bilateral trade, uniform signals, ex
  post IC, IR and budget balance; ``jm.design`` (``two_price``, cold starts, compile and the exact audit included)
  to within 0.5% of the extrapolated optimum, ``jm.lp_reference`` at ``G`` types per agent, and MechAudit (PyPI
  ``mechaudit``, the ``bench`` extra) at the same ``G`` with HiGHS's interior point and, up to G = 41, its default
  simplex [solves / s: one over the seconds of one whole run; G = 61 full (MechAudit's interior point ~130 s on 2
  cores), 21 quick; ``--grid G``].

The CLI ``jaxmech bench [--workload W] [--quick] [--float64]`` and the scripts
``benchmarks/bench_w*.py`` call :func:`main`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

import jaxmech as jm
from jaxmech import __version__
from jaxmech._src.app import config as cfg
from jaxmech._src.core import mechanisms
from jaxmech._src.models import certify

A_TRADE, A_PUBLIC, N_PUBLIC, COST_PUBLIC = 0.5, 0.2, 8, 4.0
A_SEARCH, K_OUTCOMES, A_OUTCOMES = 0.3, 16, 0.5
KINK_EPS = 1e-4


class Row(NamedTuple):
    """One path of a workload: its rate, the size it ran at, and the statistics it computed."""

    path: str
    size: int  # profiles (W1-W3), batch (W4), s_-i (W5)
    rate: float
    compile_s: float | None
    stats: dict[str, float]


class Sizes(NamedTuple):
    jax: int
    numpy: int
    torch: int
    generic: bool = True  # also the generic (bisection-pivot) jaxmech path
    block_size: int | None = None  # audit blocks / chunks (None: the workload's CPU defaults)
    chunk_size: int | None = None
    grid: int | None = None  # W6: types per agent of the timed LPs
    starts: int = 4  # W6: cold starts of the design (not --profiles)


# --------------------------------------------------------------------------
# the baselines: benchmarks/baselines.py of the checkout (not in the wheel), loaded by path when a run wants them

BASELINES_DIR = Path(jm.__file__).resolve().parents[1] / "benchmarks"
BASELINES_FILE = "baselines.py"


def baselines_path(folder: str | os.PathLike | None = None) -> Path:
    """``folder / baselines.py``; ``folder`` defaults to :data:`BASELINES_DIR`, the checkout's ``benchmarks/``."""
    return Path(BASELINES_DIR if folder is None else folder) / BASELINES_FILE


def load_baselines(folder: str | os.PathLike | None = None) -> ModuleType | None:
    """The module :func:`baselines_path` ``(folder)``, or ``None`` where that file does not exist (jaxmech
    installed from a wheel).

    Loaded from its path with ``importlib`` on each call, never at import time of jaxmech, and without touching
    ``sys.path``; an error inside the file propagates."""
    path = baselines_path(folder)
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("jaxmech_bench_baselines", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def baselines_missing_line(folder: str | os.PathLike | None = None) -> str:
    """The one line ``jaxmech bench`` prints instead of the baseline rows when :func:`load_baselines` finds none."""
    return (
        f"baselines: {baselines_path(folder)} not found (they ship with the repository, not the wheel); JAX rows only"
    )


# --------------------------------------------------------------------------
# jaxmech paths (public API)


def _timed_best(fn, repeats):
    best, out = math.inf, None
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _audit_rows(label_mechs, env, misreports, n, evals_per_profile, dtype, repeats, block_size, chunk_size, stats_of):
    import jax

    prior = jm.independent(env.dims)
    rows = []
    for label, mech in label_mechs:
        runs = [
            jm.audit(
                env,
                mech,
                prior,
                key=jax.random.PRNGKey(0),
                n_profiles=n,
                misreports=misreports,
                dtype=dtype,
                options=jm.StreamOptions(block_size=block_size, chunk_size=chunk_size),
            )  # fmt: skip
            for _ in range(max(repeats, 1))
        ]
        res = min(runs, key=lambda r: r.info.run_s)
        rows.append(Row(label, n, n * evals_per_profile / res.info.run_s, res.info.compile_s, stats_of(res.report)))
    return rows


def _audit_stats(rep: dict) -> dict[str, float]:
    return {
        "regret_max": max(r["max"] for r in rep["regret"]),
        "deficit_mean": rep["deficit"]["mean"],
        "deficit_se": rep["deficit"]["se"],
    }


def _baseline_stats(st: dict[str, float]) -> dict[str, float]:
    return {
        "regret_max": max(v for k, v in st.items() if k.startswith("regret_") and k.endswith("_max")),
        "deficit_mean": st["deficit_mean"],
        "deficit_se": st["deficit_se"],
    }


def _backends(bl, n_np, n_torch, with_torch):
    """``(label, back end class, size)`` of the baseline rows: NumPy, and PyTorch eager where it runs; none
    without the baselines (``bl is None``)."""
    if bl is None:
        return []
    backends = [("numpy (vectorized)", bl.NumpyXP, n_np)]
    if with_torch:
        backends.append(("pytorch eager", bl.TorchXP, n_torch))
    return backends


def _baseline_rows(bl, fn, n_np, n_torch, evals_per_profile, float64, repeats, with_torch):
    rows = []
    for label, cls, n in _backends(bl, n_np, n_torch, with_torch):
        xp = cls(float64, 1)
        fn(xp, min(n, 256))  # warm up (imports, thread pools, allocator)
        t, st = _timed_best(lambda xp=xp, n=n: fn(xp, n), repeats)
        rows.append(Row(label, n, n * evals_per_profile / t, None, _baseline_stats(st)))
    return rows


def _bench_w1(size: Sizes, dtype, float64, repeats, bl, with_torch):
    k = 256
    env = jm.bilateral_trade(jm.linear_trade_values(A_TRADE))
    mis = jm.Misreports(grid=k, random=0, kinks=True)
    epp = 2 * (k + 2)
    rows = _audit_rows(
        [
            ("jaxmech audit (closed-form pivots)", jm.generalized_vcg(env, pivot=jm.linear_trade_pivot(A_TRADE))),
            ("jaxmech audit (bisection pivots)", jm.generalized_vcg(env)),
        ],
        env, mis, size.jax, epp, dtype, repeats, size.block_size or 8192, size.chunk_size or 1 << 17, _audit_stats,
    )  # fmt: skip
    rows += _baseline_rows(
        bl, lambda xp, n: bl.w1_baseline(xp, n, k), size.numpy, size.torch, epp, float64, repeats, with_torch
    )
    return (
        rows,
        "profile x agent x misreport evaluations / s",
        f"closed form E[deficit] = (1 + a)/6 = {(1 + A_TRADE) / 6:.4f}",
    )


def w2_pivot(vbar, m, i, a: float = A_PUBLIC):
    """Closed-form pivot of the threshold rule for linear values: ``clip(max_j s_i + (vbar_j - v_j) / slope_ij)``."""
    import jax.numpy as jnp

    n = m.shape[0]
    v = (1 - a) * m + a * jnp.sum(m)
    slope = jnp.where(jnp.arange(n) == i, 1.0, a).astype(m.dtype)
    return jnp.clip(jnp.max(m[i] + (vbar - v) / slope), 0.0, 1.0)


def _bench_w2(size: Sizes, dtype, float64, repeats, bl, with_torch):
    import jax.numpy as jnp

    k, n = 64, N_PUBLIC
    env = jm.public_good(jm.linear_public_values(A_PUBLIC, n), COST_PUBLIC, n)
    vbar = jnp.full((n,), COST_PUBLIC / n, dtype)
    closed = jm.pivot_payments(env, jm.threshold_rule(env), params=vbar, pivot=w2_pivot, name="threshold (closed form)")
    mis = jm.Misreports(grid=k, random=0, kinks=True)
    epp = n * (k + 2)
    mechs = [("jaxmech audit (closed-form pivots)", closed)]
    if size.generic:  # its compile is long (8 agents x 8 bisected roots, per menu and in the payments)
        mechs.append(("jaxmech audit (bisection pivots)", jm.threshold_contribution(env, vbar)))
    rows = _audit_rows(
        mechs,
        env, mis, size.jax, epp, dtype, repeats, size.block_size or 4096, size.chunk_size or 1 << 15, _audit_stats,
    )  # fmt: skip
    rows += _baseline_rows(
        bl, lambda xp, m: bl.w2_baseline(xp, m, k), size.numpy, size.torch, epp, float64, repeats, with_torch
    )
    return rows, "profile x agent x misreport evaluations / s", "regret 0 (CE Thm 9: the rule is monotone)"


def _bench_w3(size: Sizes, dtype, float64, repeats, bl, with_torch):
    env = jm.example1()
    mis = jm.Misreports(grid=16, random=0, kinks=True)
    epp = 2 * (16 * 16 + 6)
    rows = _audit_rows(
        [("jaxmech audit (B eq. (4), bisection kinks)", jm.personalized_prices(env, jm.example1_prices))],
        env, mis, size.jax, epp, dtype, repeats, size.block_size or 8192, size.chunk_size or 1 << 16, _audit_stats,
    )  # fmt: skip
    rows += _baseline_rows(
        bl, lambda xp, m: bl.w3_baseline(xp, m), size.numpy, size.torch, epp, float64, repeats, with_torch
    )
    return rows, "profile x agent x misreport evaluations / s", "regret 0 (B Lemma 1: admissible prices)"


def _bench_w4(size: Sizes, dtype, float64, repeats, bl, with_torch):
    import jax

    env = jm.public_good(jm.linear_public_values(A_SEARCH, 2), 1.0, 2)
    family = jm.threshold_family(env)
    prior = jm.independent(env.dims)
    extra = 16  # timed steps; the fastest counts (other load on the host only slows steps down)

    def run(family):
        # search() reports after every step (the step has finished: it reads the constraint back);
        # the first report comes after compile + step 0, the next `extra` time the steps themselves
        stamps = [time.perf_counter()]
        cfg = jm.SearchConfig(steps=1 + extra, batch=size.jax, log_every=1 + extra)
        out = jm.search(
            env, family, prior, jax.random.PRNGKey(0), cfg, dtype=dtype, progress=lambda k, n: stamps.append(time.perf_counter())
        )  # fmt: skip
        per_step = float(np.min(np.diff(stamps[1:])))
        return per_step, stamps[1] - stamps[0] - per_step, out

    rows = []
    for label, fam in (
        ("jaxmech search step (closed-form payments)", closed_form_family(family)),
        ("jaxmech search step (bisection payments)", family),
    ):
        per_step, compile_s, res = min((run(fam) for _ in range(max(repeats, 1))), key=lambda r: r[0])
        rows.append(Row(label, size.jax, 1.0 / per_step, compile_s, _search_stats(res.log)))
    hyper = (0.1, 0.0, 10.0, 0.005)  # temperature, lam, rho, tau
    steps = [] if bl is None else [("numpy (vectorized, gradient by hand)", bl.w4_numpy_steps, size.numpy)]
    if with_torch:
        steps.append(("pytorch eager (autograd)", bl.w4_torch_steps, size.torch))
    for label, fn, n in steps:
        t, loss = min((fn(n, extra, float64, *hyper) for _ in range(max(repeats, 1))), key=lambda r: r[0])
        rows.append(Row(label, n, 1.0 / t, None, {"loss": float(loss)}))
    return rows, "steps / s (batch = size)", "same loss at the same start (vbar = (0.5, 0.5), T = 0.1)"


def closed_form_family(family, a: float = A_SEARCH, cost: float = 1.0):
    """The threshold family with the generalized VCG payments in closed form (linear values): ``t_i = v_i(x_i^*, s_-i)``.

    Same parameters, relaxation, constraint and weights as ``jm.threshold_family``; only the payments
    skip the bisection (:func:`w2_pivot` gives ``x_i^*``).
    """
    import jax.numpy as jnp

    def violation(vbar, s):
        v = (1 - a) * s + a * jnp.sum(s)
        return cost - sum(v[i] + w2_pivot(vbar, s, i, a) - s[i] for i in range(s.shape[0]))

    return family._replace(name=family.name + " (closed-form payments)", violation=violation)


def _search_stats(log: dict) -> dict[str, float]:
    return {"objective": float(log["objective"][-1]), "constraint": float(log["constraint"][-1])}


def _bench_w5(size: Sizes, dtype, float64, repeats, bl, with_torch):
    import jax

    k, n_samples = K_OUTCOMES, 256
    env = certify.project_choice(k, 2, A_OUTCOMES)
    decide = mechanisms.efficient_rule(env)
    key_s, key_x = jax.random.split(jax.random.PRNGKey(0))
    samples = jax.random.uniform(key_x, (n_samples, k), dtype)

    profiles = jax.random.uniform(key_s, (size.jax, 2 * k), dtype)

    # certify() compiles on every call; time the same computation (pseudo_efficiency per s_-i, lax.map in
    # batches of 256 as certify does) compiled once, then run
    def one(s):
        return certify.pseudo_efficiency(env, decide, (), s, 0, samples)

    fn = jax.jit(lambda ps: jax.lax.map(one, ps, batch_size=256))
    t0 = time.perf_counter()
    compiled = fn.lower(profiles).compile()
    compile_s = time.perf_counter() - t0
    t, certs = _timed_best(lambda: jax.block_until_ready(compiled(profiles)), repeats)
    rep = certify.certify(env, decide, (), profiles[:256], 0, samples)  # the API's report agrees
    assert np.array_equal(rep.feasible, np.asarray(certs.feasible)[:256])
    rows = [Row("jaxmech certify", size.jax, size.jax / t, compile_s, _cert_stats(certs.feasible, certs.max_walk))]
    x_np = np.asarray(samples, np.float64 if float64 else np.float32)
    for label, cls, p in _backends(bl, size.numpy, size.torch, with_torch):
        xp = cls(float64, 1)
        x = xp.asarray(x_np)
        t, (feas, walk) = _timed_best(lambda xp=xp, x=x, p=p: bl.w5_certificates(xp, p, x, k), repeats)
        rows.append(Row(label, p, p / t, None, _cert_stats(feas, walk)))
    return (
        rows,
        "certificates / s (one s_-i each)",
        "every s_-i certified (CE Thm 1: the efficient rule is pseudo-efficient)",
    )


def _cert_stats(feasible, max_walk) -> dict[str, float]:
    return {"certified": float(np.mean(np.asarray(feasible))), "max_walk_max": float(np.max(np.asarray(max_walk)))}


# --------------------------------------------------------------------------
# W6: design vs a finite-type LP (also benchmarks/bench_design_vs_lp.py, with its own options)

GOAL_GAP = 0.005  # W6's goal: jm.design within 0.5% of the extrapolated optimum


def design_vs_lp(
    *,
    a: float = 0.0,
    family: str = "two_price",
    G: int = 61,
    grids: tuple[int, ...] = (17, 33, 65),
    starts: int = 4,
    seed: int = 0,
    mechaudit_grids: tuple[int, ...] = (),
    mechaudit_methods: tuple[str, ...] = ("simplex",),
    bl: ModuleType | None = None,
    dtype=None,
) -> tuple[list[Row], dict[str, Any]]:
    """Time ``jm.design`` against finite-type LPs on bilateral trade ``v_i = s_i + a s_-i`` (uniform signals, ex post
    IC, IR, budget balance): the rows (rate = one over the seconds of the whole run) and the references.

    ``jm.design(family, starts cold starts)`` includes compile and the exact audit; its value is the exact
    (quadrature) value of the mechanism found, its gap is measured against the 1/G limit of ``jm.lp_reference`` on
    ``grids`` (untimed). ``jm.lp_reference`` at ``G`` is timed once; MechAudit (``bl.mechaudit_trade``, the
    checkout's baselines, ``pip install 'jaxmech[bench]'``) at every G of ``mechaudit_grids`` with every HiGHS
    method of ``mechaudit_methods`` (``simplex``: MechAudit's default; ``ipm``). Both LPs solve the same grid and
    model, and their values agree to ~1e-8 (``tests/test_bench.py``)."""
    import jax

    env = jm.bilateral_trade(jm.linear_trade_values(a))
    prior = jm.independent(env.dims)
    closed = (1 - a) ** 3 * (1 + a) / 8  # the best deterministic rule (1/8 at a = 0: the optimum)
    try:
        import scipy.optimize  # noqa: F401  (the `lp` extra; a machine without it times the design alone)
    except ImportError:
        has_lp = False
    else:
        has_lp = True
    limit = lp = lp_s = None
    if has_lp:
        limit = jm.lp_reference(env, prior, grids=tuple(grids)).limit  # first: scipy's import is not in the timing
        t0 = time.perf_counter()
        lp = jm.lp_reference(env, prior, grids=(G,)).solutions[0].value
        lp_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = jm.design(env, prior, key=jax.random.PRNGKey(seed), family=family, starts=starts,
                  **({} if dtype is None else {"dtype": dtype}))  # fmt: skip
    design_s = time.perf_counter() - t0
    # the exact value, not the Monte Carlo mean: an SE of ~0.4% of the value would swamp a 0.5% goal
    gap = (limit - r.value) / limit if has_lp else (closed - r.value) / closed
    rows = [
        Row(f"jaxmech design ({family}, {starts} cold start{'s' * (starts != 1)})", starts, 1.0 / design_s, None,
            {"value": r.value, "mc": r.objective["mean"], "se": r.objective["se"], "gap_pct": 100 * gap,
             "seconds": design_s}),
    ]  # fmt: skip
    if has_lp:
        rows.append(Row("jaxmech LP (jm.lp_reference, HiGHS)", G, 1.0 / lp_s, None, {"value": lp, "seconds": lp_s}))
    missing = bool(mechaudit_grids) and bl is not None and not bl.mechaudit_available()
    if mechaudit_grids and bl is not None and not missing and has_lp:
        for g in mechaudit_grids:
            for method in mechaudit_methods:
                stages: dict = {}
                value, sec = bl.mechaudit_trade(g, a, stages=stages, method=method)
                stats = {"value": value, "seconds": sec, "solve_s": stages["solve"], "rows": stages["rows"]}
                if g == G:
                    stats["minus_jaxmech_lp"] = value - lp
                rows.append(Row(f"mechaudit LP ({method}, G = {g})", g, 1.0 / sec, None, stats))
    refs = {"limit": limit, "closed": closed, "gap": gap, "design_s": design_s, "lp_s": lp_s, "lp": lp,
            "mechaudit_missing": missing, "has_lp": has_lp}  # fmt: skip
    return rows, refs


SIMPLEX_MAX_G = 41  # MechAudit's default simplex grows ~G^5.6: G = 41 73 s, G = 61 > 20 min (BENCHMARKS.md)


def _bench_w6(size: Sizes, dtype, float64, repeats, bl, with_torch):
    G = size.grid or 61
    methods = ("simplex", "ipm") if G <= SIMPLEX_MAX_G else ("ipm",)
    rows, refs = design_vs_lp(G=G, starts=size.starts, mechaudit_grids=(G,), mechaudit_methods=methods, bl=bl,
                              dtype=dtype)  # fmt: skip
    verdict = "within" if refs["gap"] <= GOAL_GAP else "NOT within"
    if refs["has_lp"]:
        check = (f"design gap to the extrapolated optimum {refs['limit']:.6f} (jm.lp_reference on G = 17, 33, 65, 1/G "
                 f"limit; closed form 1/8): {100 * refs['gap']:+.2f}% ({verdict} {100 * GOAL_GAP:.1f}%); both LPs "
                 f"solve the same G = {G} grid")  # fmt: skip
    else:
        check = (f"scipy not installed (pip install 'jaxmech[lp]'): no LP rows; design gap to the closed form 1/8 "
                 f"{100 * refs['gap']:+.2f}% ({verdict} {100 * GOAL_GAP:.1f}%)")  # fmt: skip
    check += "; one run each (--repeats does not apply: a design is not repeated)"
    if refs["mechaudit_missing"]:
        check += "; mechaudit not installed (pip install 'jaxmech[bench]'): no MechAudit rows"
    elif G > SIMPLEX_MAX_G and any(r.path.startswith("mechaudit") for r in rows):
        check += (f"; MechAudit's default simplex only up to G = {SIMPLEX_MAX_G} (at 61 it ran > 20 min here: "
                  "benchmarks/bench_design_vs_lp.py --mechaudit-method simplex)")  # fmt: skip
    return rows, "solves / s (one over the seconds of one run, compile included)", check


WORKLOADS: dict[str, tuple[str, Callable, Sizes, Sizes]] = {
    # name: (title, runner, quick sizes, full sizes)
    "W1": ("bilateral trade audit, K = 256 + kinks (CE Sec. 4.4)", _bench_w1, Sizes(1 << 17, 1 << 14, 1 << 15),
           Sizes(1 << 22, 1 << 17, 1 << 19)),
    "W2": ("public good n = 8, threshold rule, K = 64 + kinks (CE Thm 9)", _bench_w2, Sizes(1 << 14, 1 << 11, 1 << 12, False),
           Sizes(1 << 19, 1 << 14, 1 << 16)),
    "W3": ("B Example 1, 16 x 16 grid + kinks", _bench_w3, Sizes(1 << 15, 1 << 12, 1 << 13),
           Sizes(1 << 21, 1 << 16, 1 << 18)),
    "W4": ("one second-best search step (CE Thm 9)", _bench_w4, Sizes(1 << 16, 1 << 16, 1 << 16),
           Sizes(1 << 20, 1 << 20, 1 << 20)),
    "W5": ("CE Thm 1 certificates, k = 16 outcomes, 256 signals", _bench_w5, Sizes(512, 256, 256),
           Sizes(1 << 14, 2048, 4096)),
    "W6": ("design vs finite-type LP, private-values trade (issue 21)", _bench_w6, Sizes(0, 0, 0, grid=21, starts=2),
           Sizes(0, 0, 0, grid=61, starts=4)),
}  # fmt: skip


# --------------------------------------------------------------------------
# environment, memory, report


def host_peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20


def device_peak_mb() -> float | None:
    """Peak device memory in use (MiB) where the backend reports it (GPU / TPU); ``None`` on CPU."""
    import jax

    stats = jax.devices()[0].memory_stats()
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return stats["peak_bytes_in_use"] / 2**20


def environment_lines(
    float64: bool, bl: ModuleType | None, baselines_dir: str | os.PathLike | None = None
) -> list[str]:
    """Device, versions, dtype and load; then the PyTorch baseline's line (``bl``: the baselines module), or
    :func:`baselines_missing_line` where there are none (``bl is None``)."""
    import jax
    import jaxlib

    devs = jax.devices()
    lines = [
        f"device: {devs[0].device_kind} ({jax.default_backend()}, {len(devs)} device(s)), host cpus={os.cpu_count()}, "
        f"{platform.processor() or platform.machine()}",
        f"versions: jaxmech {_version()}, jax {jax.__version__}, jaxlib {jaxlib.__version__}, numpy {np.__version__}, "
        f"python {platform.python_version()}",
        f"dtype: {'float64' if float64 else 'float32'}; host load average {os.getloadavg()[0]:.2f} (1 min)",
    ]
    if bl is None:
        lines.append(baselines_missing_line(baselines_dir))
    elif bl.torch_available():
        import torch

        lines.append(f"torch {torch.__version__} ({bl.torch_device()}, {torch.get_num_threads()} CPU threads)")
    else:
        lines.append("torch: not installed (pip install 'jaxmech[bench]' for the PyTorch eager baseline)")
    return lines


def _version() -> str:
    return __version__


def format_rows(rows: list[Row]) -> list[str]:
    out = []
    for r in rows:
        comp = f"compile {r.compile_s:5.2f}s" if r.compile_s is not None else " " * 13
        stats = "  ".join(f"{k} {v:.4g}" for k, v in r.stats.items())
        out.append(f"  {r.path:<44} n={r.size:>9,}  {r.rate:10.3e}/s  {comp}  {stats}")
    return out


def ratio_lines(rows: list[Row]) -> list[str]:
    """Each jaxmech row's rate over each baseline's, a baseline named by its first word (its whole label where two
    share one: W6's MechAudit simplex and interior point)."""
    others = [r for r in rows if not r.path.startswith("jaxmech")]
    first = [r.path.split()[0] for r in others]
    base = {(f if first.count(f) == 1 else r.path): r for f, r in zip(first, others, strict=True)}
    out = []
    for r in rows:
        if r.path.startswith("jaxmech") and base:
            parts = [f"{r.rate / b.rate:.2f}x {name}" for name, b in base.items()]
            out.append(f"  ratio {r.path}: " + ", ".join(parts))
    return out


def run_workloads(
    names,
    *,
    quick: bool,
    float64: bool,
    repeats: int,
    torch: bool | None = None,
    say=print,
    overrides: dict | None = None,
    baselines_dir: str | os.PathLike | None = None,
) -> dict:
    """Run the named workloads and print their tables; returns a JSON-ready record.

    The NumPy / PyTorch rows come from ``baselines_dir / baselines.py`` (default: the checkout's
    ``benchmarks/``, :func:`load_baselines`); without that file the JAX rows run alone, after one line saying so."""
    import jax
    import jax.numpy as jnp

    if float64:
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.float64 if float64 else jnp.float32
    bl = load_baselines(baselines_dir)
    with_torch = bl is not None and (bl.torch_available() if torch is None else torch)
    record: dict[str, Any] = {
        "environment": environment_lines(float64, bl, baselines_dir),
        "quick": quick,
        "baselines": bl.__file__ if bl is not None else None,
        "workloads": {},
    }
    for line in record["environment"]:
        say(line)
    for name in names:
        title, runner, quick_sizes, full_sizes = WORKLOADS[name]
        t0 = time.perf_counter()
        size = (quick_sizes if quick else full_sizes)._replace(**(overrides or {}))
        rows, unit, check = runner(size, dtype, float64, repeats, bl, with_torch)
        say(f"\n{name} {title}  [{unit}]; check: {check}")
        for line in format_rows(rows) + ratio_lines(rows):
            say(line)
        dev = device_peak_mb()
        mem = (
            f"peak device memory {dev:.1f} MiB"
            if dev is not None
            else "peak device memory: not reported by the backend"
        )
        say(f"  {mem}; host peak RSS {host_peak_rss_mb():.0f} MiB; wall {time.perf_counter() - t0:.1f}s")
        record["workloads"][name] = {
            "title": title,
            "unit": unit,
            "rows": [r._asdict() for r in rows],
            "device_peak_mb": dev,
            "host_peak_rss_mb": host_peak_rss_mb(),
        }
    return record


# (Sizes field, flag, argparse attribute) of the size overrides
_SIZE_FLAGS = (("jax", "--profiles", "profiles"), ("block_size", "--block-size", "block_size"),
               ("chunk_size", "--chunk-size", "chunk_size"), ("grid", "--grid", "grid"))  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="jaxmech bench", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run_from_args(p.parse_args(argv))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workload", action="append", choices=sorted(WORKLOADS), help="W1 .. W6 (repeatable; default all)")
    p.add_argument(
        "--quick", action="store_true", help="small sizes (W1-W5 in under 3 minutes on 2 CPU cores; W6 ~1 minute)"
    )
    p.add_argument("--float64", action="store_true", help="double precision (jax_enable_x64)")
    # the counts are read as text and checked by run_from_args (one-line usage errors, integral floats like 1e6)
    p.add_argument("--repeats", default=None, help="timed runs per path, best counts (default 1 quick, 3 full)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline even if torch is installed")
    p.add_argument(
        "--profiles",
        help="jaxmech size (profiles / batch / s_-i; W1-W5), e.g. 1e6, or 2147483648 (2^31) for W1 on a GPU",
    )
    p.add_argument("--grid", help="W6: types per agent of the timed LPs (default 61, quick 21)")
    p.add_argument("--block-size", help="audit block size (W1-W3; GPU: 262144 or more)")
    p.add_argument("--chunk-size", help="audit chunk size (W1-W3; GPU: 8388608 or more)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument(
        "--baselines",
        metavar="DIR",
        help="folder holding baselines.py (default: benchmarks/ of the checkout; without it, JAX rows only)",
    )


def _count(flag: str, raw) -> int | None:
    """A positive count from the command line: an integer or an integral float (``1e6``); ``ValueError`` (one line)
    otherwise, or above :data:`config.MAX_PROFILES`."""
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            value = int(raw)
        except ValueError:
            try:
                f = float(raw)
            except ValueError:
                raise ValueError(f"{flag} must be an integer, got {raw!r}") from None
            if not f.is_integer():
                raise ValueError(f"{flag} must be an integer, got {raw!r}") from None
            value = int(f)
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        raise ValueError(f"{flag} must be an integer, got {raw!r}")
    if value < 1:
        raise ValueError(f"{flag} must be >= 1, got {value}")
    if value > cfg.MAX_PROFILES:
        raise ValueError(cfg.too_many(flag, value))
    return value


def _check_json_path(raw: str) -> None:
    """``--json FILE`` must be writable before the benchmark runs (not after it)."""
    path = Path(raw)
    if path.is_dir():
        raise ValueError(f"--json {raw}: is a folder, not a file")
    parent = path.parent
    if not parent.exists():
        raise ValueError(f"--json {raw}: folder {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise ValueError(f"--json {raw}: {str(parent)!r} is not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"--json {raw}: file is not writable")
    if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--json {raw}: folder {str(parent)!r} is not writable")


def run_from_args(args) -> int:
    """Validate the arguments (``jaxmech: usage error: ...`` and 2 before anything runs), then run."""
    try:
        repeats = _count("--repeats", args.repeats)
        sizes = {k: _count(flag, getattr(args, attr)) for k, flag, attr in _SIZE_FLAGS}
        if args.json:
            _check_json_path(args.json)
    except ValueError as e:
        print(f"jaxmech: usage error: {e}", file=sys.stderr)
        return 2
    if repeats is None:
        repeats = 1 if args.quick else 3
    names = args.workload or sorted(WORKLOADS)
    over = {k: v for k, v in sizes.items() if v is not None}
    rec = run_workloads(
        names,
        quick=args.quick,
        float64=args.float64,
        repeats=repeats,
        torch=False if args.no_torch else None,
        overrides=over,
        baselines_dir=getattr(args, "baselines", None),
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rec, f, indent=2)
    return 0
