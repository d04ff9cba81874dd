"""Layer 4 — audit: ex post IC / IR / budget / efficiency checks, per profile and per block.

Single-profile functions (:func:`utility`, :func:`regret`) read like the paper;
:func:`block_stats` vmaps them over a block of profiles and loops (``lax.scan``)
over misreports, reducing to sums, sums of squares, counts and maxima with
their witnesses. The engine (layer 5) streams blocks and adds the per-block
results up; :func:`finalize` turns the totals into the audit report (a JSON-ready dict)
with standard errors.

Definitions (docs/design.md): ``u_i = v_i(f(m), s) - t_i(m)``; regret of agent ``i``
at profile ``s`` is ``max(0, max_{m_i} u_i(m_i, s_-i; s) - u_i(s; s))`` (ex post
IC, CE Def 2); IR violation ``max(0, -u_i(s; s))`` (reservation utility 0, the
seller's CE Sec. 4 level in net terms); deficit ``cost(f(s)) - sum_i t_i(s)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmech._src.core import mechanisms, priors
from jaxmech._src.core.compile_options import FULL_OPTIMIZATION, supported
from jaxmech._src.core.environments import Environment
from jaxmech._src.core.mechanisms import Mechanism
from jaxmech._src.core.reduction import BlockStats, Extremum, Moments

Array = jax.Array

Z95 = 1.959963984540054


class Misreports(NamedTuple):
    """Misreport strategies; all enabled ones are combined (the best deviation counts).

    Attributes:
      grid: points per signal dimension of a full grid over ``S_i`` (0: off).
      max_grid: cap on the grid size ``grid ** d_i`` (the per-dimension count is
        lowered to fit).
      random: uniform draws from ``S_i`` per profile and agent (0: off).
      kinks: try ``b - eps`` and ``b + eps`` (along the diagonal) for each kink
        point ``b`` the mechanism exposes (``Mechanism.kinks``).
      kink_eps: ``eps`` relative to the width of ``S_i``.
      gradient_steps: Adam steps of gradient ascent on ``u_i(m_i)`` (0: off),
        from the best point found so far plus ``gradient_restarts - 1`` random
        starts.
      gradient_restarts: number of ascent starts (>= 1).
      gradient_lr: Adam learning rate, relative to the width of ``S_i``.
      grid_chunk: misreports evaluated per ``scan`` step; 0 chooses by backend
        (:func:`default_grid_chunk`). The statistics do not depend on it.
    """

    grid: int = 16
    max_grid: int = 4096
    random: int = 8
    kinks: bool = True
    kink_eps: float = 1e-4
    gradient_steps: int = 0
    gradient_restarts: int = 2
    gradient_lr: float = 0.02
    grid_chunk: int = 0


CPU_GRID_CHUNK = 16


def default_grid_chunk(backend: str) -> int:
    """Misreports per scan step when ``Misreports.grid_chunk`` is 0: 16 on a CPU, the whole grid elsewhere.

    Measured on W1 (BENCHMARKS.md): on 2 CPU cores 16 is the best of 4..258 (larger steps spill the
    cache); on an H200 a step of 16 leaves the GPU idle between tiny kernels, 8.9e10 evaluations/s,
    against 5.7e11 with all 258 misreports in one step.
    """
    return CPU_GRID_CHUNK if backend == "cpu" else 1 << 30


def grid_points(lo: np.ndarray, hi: np.ndarray, points: int, max_points: int) -> np.ndarray:
    """Full grid over the box ``[lo, hi]`` (shape ``(G, d)``), ``points`` per dimension, ``G <= max_points``."""
    d = len(lo)
    k = points
    while k > 2 and k**d > max_points:
        k -= 1
    axes = [np.linspace(lo[j], hi[j], k) for j in range(d)]
    return np.array(list(itertools.product(*axes)), dtype=np.float64).reshape(-1, d)


def utility(env: Environment, mech: Mechanism, params, s: Array, m: Array, i: int) -> Array:
    """``u_i`` of an agent with true profile ``s`` when reports are ``m`` (one profile)."""
    q = mech.decide(params, m)
    t = mech.pay(params, m)
    return env.value(q, s)[i] - t[i]


def regret(env: Environment, mech: Mechanism, params, s: Array, m_i: Array, i: int) -> Array:
    """Gain of agent ``i`` from reporting ``m_i`` instead of ``s_i`` (others truthful), clipped at 0."""
    deviate = utility(env, mech, params, s, priors.replace_signal(s, env.dims, i, m_i), i)
    return jnp.maximum(0.0, deviate - utility(env, mech, params, s, s, i))


class Truthful(NamedTuple):
    """Per-profile quantities at truthful reports (fields have a leading batch axis when vmapped)."""

    outcome_probs: Array  # (k,)
    payments: Array  # (n,)
    utility: Array  # (n,)
    deficit: Array  # ()
    welfare: Array  # ()
    first_best: Array  # ()


def truthful(env: Environment, mech: Mechanism, params, s: Array) -> Truthful:
    q, t = mechanisms.decide_and_pay(mech, params, s)
    v = env.value(q, s)
    q_fb = env.efficient(s)
    return Truthful(
        outcome_probs=env.outcome_probs(q),
        payments=t,
        utility=v - t,
        deficit=env.cost(q) - jnp.sum(t),
        welfare=env.welfare(q, s),
        first_best=env.welfare(q_fb, s),
    )


def _n_draws(misreports: Misreports) -> tuple[int, int]:
    """Uniform draws per profile and agent: ``(random misreports, extra gradient-ascent starts)``."""
    extra = max(1, misreports.gradient_restarts) - 1 if misreports.gradient_steps > 0 else 0
    return misreports.random, extra


def _best_deviation(env, mech, params, misreports: Misreports, profiles, draws, i):
    """Best misreport of agent ``i`` at each profile of a block: ``(best_u (B,), best_m (B, d_i), menu_u (B,),
    payment_error (B,) or None)``: ``menu_u`` is the utility the menu gives at the truthful report,
    ``payment_error`` the menu's own bound on the truthful payment's numerical error where it carries one
    (``respond.payment_error``, see :class:`mechanisms.Mechanism`).

    ``draws`` (``(B, R + E, d_max)``, uniform on ``[0, 1)``) give the ``R`` random misreports and the
    ``E`` extra ascent starts (:func:`_n_draws`), scaled to ``S_i``.

    One function per profile, vmapped over the block: agent ``i``'s menu at ``s_-i`` is built once and
    every strategy (grid chunks, random draws, kinks, gradient ascent) asks it, so the ``m_-i``-only work
    (e.g. B's ray-search prices) is traced once and run once per profile, not once per strategy or chunk;
    the kinks come from the same menu where it carries them (:func:`mechanisms.menu_kinks`).
    """
    dims = env.dims
    sl = priors.agent_slice(dims, i)
    d = dims[i]
    dtype = profiles.dtype
    lo_np, hi_np = env.lo[sl], env.hi[sl]
    lo, hi = jnp.asarray(lo_np, dtype), jnp.asarray(hi_np, dtype)

    chunks = None
    if misreports.grid > 0:  # shared by all profiles, scanned in chunks of grid_chunk
        grid = grid_points(lo_np, hi_np, misreports.grid, misreports.max_grid)
        c = misreports.grid_chunk or default_grid_chunk(jax.default_backend())
        c = max(1, min(c, len(grid)))
        pad = (-len(grid)) % c
        grid = np.concatenate([grid, np.repeat(grid[:1], pad, axis=0)]) if pad else grid
        chunks = jnp.asarray(grid.reshape(-1, c, d), dtype)

    scale = hi - lo
    n_rand, _ = _n_draws(misreports)
    points = jnp.clip(
        lo[None, None] + scale[None, None] * draws[:, :, :d], lo[None, None], hi[None, None]
    )  # (B, R + E, d)
    cands, extra_starts = points[:, :n_rand], points[:, n_rand:]  # random misreports; ascent starts besides the best
    use_kinks = misreports.kinks and mech.kinks is not None
    eps = (misreports.kink_eps * (hi - lo))[None, :]
    opt = optax.adam(misreports.gradient_lr)

    def take_better(best, u, ms):  # u: (C,), ms: (C, d); strict improvement keeps the earlier point on ties
        j = jnp.argmax(u)
        better = u[j] > best[0]
        return jnp.where(better, u[j], best[0]), jnp.where(better, ms[j], best[1])

    has_error = []  # set while tracing: whether the menu carries payment_error

    def one(s, cands, extra_starts):
        respond = mechanisms.agent_menu(mech, dims, params, s, i)  # the s_-i-only work, once
        bound = getattr(respond, "payment_error", None)
        has_error.append(bound is not None)
        if use_kinks:  # just below and above each kink (from the menu's own s_-i work where it carries them)
            b = mechanisms.menu_kinks(mech, respond, params, s, i)  # (K, d)
            cands = jnp.concatenate([cands, jnp.clip(jnp.concatenate([b - eps, b + eps]), lo[None, :], hi[None, :])])

        def u(m_i):
            q, t_i = respond(m_i)
            return env.value(q, s)[i] - t_i

        best = (jnp.full((), -jnp.inf, dtype), s[sl])
        if chunks is not None:
            best, _ = jax.lax.scan(lambda b, chunk: (take_better(b, jax.vmap(u)(chunk), chunk), None), best, chunks)
        if cands.shape[0] > 0:
            best = take_better(best, jax.vmap(u)(cands), cands)
        if misreports.gradient_steps > 0:
            grad_u = jax.grad(lambda z: -u(lo + scale * z))  # z in [0, 1]^d: one learning rate for every domain

            def ascend(m0):
                z0 = (m0 - lo) / scale

                def body(carry, _):
                    z, state, bz, bu = carry
                    with jax.numpy_dtype_promotion("standard"):  # optax mixes its int32 step count with floats
                        upd, state = opt.update(grad_u(z), state, z)
                    z = jnp.clip(optax.apply_updates(z, upd), 0.0, 1.0)
                    uz = u(lo + scale * z)
                    better = uz > bu
                    return (z, state, jnp.where(better, z, bz), jnp.where(better, uz, bu)), None

                init = (z0, opt.init(z0), z0, u(m0))
                (_, _, bz, bu), _ = jax.lax.scan(body, init, None, misreports.gradient_steps)
                return bu, lo + scale * bz

            starts = jnp.concatenate([best[1][None, :], extra_starts], axis=0)
            gu, gm = jax.vmap(ascend)(starts)
            best = take_better(best, gu, gm)
        # the menu at the truthful report: must give the utility decide / pay give (checked by block_stats)
        truth = u(s[sl]) if mech.menu is not None else jnp.zeros((), dtype)
        err = jnp.asarray(bound(), dtype) if bound is not None else jnp.zeros((), dtype)
        return best + (truth, err)

    best_u, best_m, menu_u, err = jax.vmap(one)(profiles, cands, extra_starts)
    return best_u, best_m, menu_u, (err if any(has_error) else None)


def _masked_argext(x, valid, largest: bool):
    fill = -jnp.inf if largest else jnp.inf
    xm = jnp.where(valid, x, fill)
    j = jnp.argmax(xm) if largest else jnp.argmin(xm)
    return xm[j], j


def block_stats(
    env: Environment,
    mech: Mechanism,
    params,
    misreports: Misreports,
    profiles: Array,
    n_valid: Array,
    key: Array,
    tol: Array,
) -> BlockStats:
    """Reduce one block of profiles (``(B, D)``, first ``n_valid`` real) to typed statistics.

    :class:`Moments` (weighted sums; ``*_count``: profiles above the tolerance) are added across
    blocks; an :class:`Extremum` keeps the largest / smallest value with its profile (and
    misreport), the earliest block winning ties (``reduction.add_blocks``).
    """
    batch = profiles.shape[0]
    dtype = profiles.dtype
    valid = jnp.arange(batch, dtype=jnp.int32) < jnp.asarray(n_valid, jnp.int32)
    w = valid.astype(dtype)
    tr = jax.vmap(lambda s: truthful(env, mech, params, s))(profiles)

    out: BlockStats = {"n": Moments(jnp.sum(w))}

    def moments(name, x):
        wx = w.reshape((batch,) + (1,) * (x.ndim - 1)) * x
        out[name] = Moments(jnp.sum(wx, axis=0), jnp.sum(wx * x, axis=0))

    n = env.n_agents
    dmax = max(env.dims)
    regrets, reg_max, reg_j, reg_m = [], [], [], []
    # One uniform draw for every agent's random misreports and ascent starts: each threefry call is its
    # own loop in the compiled program (rolled on CPU), so one call instead of n * 4 compiles faster.
    n_draws = sum(_n_draws(misreports))
    draws = jax.random.uniform(key, (n, batch, n_draws, dmax), dtype)
    menu_gap, errors = [], []
    for i in range(n):
        best_u, best_m, menu_u, err = _best_deviation(env, mech, params, misreports, profiles, draws[i], i)
        errors.append(err)
        r = jnp.maximum(0.0, best_u - tr.utility[:, i])
        regrets.append(r)
        mx, j = _masked_argext(r, valid, True)
        reg_max.append(mx)
        reg_j.append(j)
        reg_m.append(jnp.pad(best_m[j], (0, dmax - env.dims[i])))
        menu_gap.append(jnp.abs(menu_u - tr.utility[:, i]) if mech.menu is not None else jnp.zeros_like(r))
    reg = jnp.stack(regrets, axis=1)  # (B, n)
    _integrity_stats(out, profiles, valid, tr, reg, jnp.stack(menu_gap, axis=1), tol)
    moments("regret", reg)
    out["regret_count"] = Moments(jnp.sum(w[:, None] * (reg > tol).astype(dtype), axis=0))
    out["regret_max"] = Extremum(jnp.stack(reg_max), jnp.stack(reg_j).astype(jnp.int32),
                                 {"profile": profiles[jnp.stack(reg_j)], "misreport": jnp.stack(reg_m)})  # fmt: skip

    ir = jnp.maximum(0.0, -tr.utility)
    moments("ir_violation", ir)
    moments("utility", tr.utility)
    moments("payment", tr.payments)
    out["ir_violation_count"] = Moments(jnp.sum(w[:, None] * (ir > tol).astype(dtype), axis=0))
    out["ir_violation_max"] = _extremum_per_column(ir, valid, profiles, True)

    moments("deficit", tr.deficit)
    if any(e is not None for e in errors):  # the payments' own numerical error bound (e.g. bisection brackets)
        err = jnp.stack([jnp.zeros((batch,), dtype) if e is None else e for e in errors], axis=1)  # (B, n)
        out["payment_error"] = Moments(jnp.sum(w[:, None] * err, axis=0))
        out["deficit_error_max"] = _extremum_per_column(jnp.sum(err, axis=1, keepdims=True), valid, profiles, True)
    out["deficit_count"] = Moments(jnp.sum(w * (tr.deficit > tol).astype(dtype)))
    for name, largest in (("deficit_max", True), ("deficit_min", False)):
        x, j = _masked_argext(tr.deficit, valid, largest)
        out[name] = Extremum(x, j.astype(jnp.int32), {"profile": profiles[j]}, largest)

    moments("welfare", tr.welfare)
    moments("first_best", tr.first_best)
    out["welfare_x_first_best"] = Moments(jnp.sum(w * tr.welfare * tr.first_best))
    moments("outcome", tr.outcome_probs)
    # paired statistics of any linear combination (e.g. total utility, a winner's surplus): first and cross
    # moments of z = (utilities, payments, deficit, welfare, first-best welfare) on the same profiles
    z = jnp.concatenate([tr.utility, tr.payments, jnp.stack([tr.deficit, tr.welfare, tr.first_best], axis=1)], 1)
    out["paired"] = Moments(jnp.sum(w[:, None] * z, axis=0))
    out["paired_cross"] = Moments(jnp.einsum("b,bk,bl->kl", w, z, z))
    return out


def _extremum_per_column(x: Array, valid: Array, profiles: Array, largest: bool) -> Extremum:
    """The largest (smallest) valid entry of each column of ``x`` (``(B, K)``) with its profile."""
    ext = [_masked_argext(x[:, k], valid, largest) for k in range(x.shape[1])]
    idx = jnp.stack([e[1] for e in ext]).astype(jnp.int32)
    return Extremum(jnp.stack([e[0] for e in ext]), idx, {"profile": profiles[idx]}, largest)


def _integrity_stats(out: BlockStats, profiles, valid, tr: Truthful, reg, menu_gap, tol) -> None:
    """Counts that make a report trustworthy or refused: non-finite per-profile numbers, menu disagreements.

    ``nonfinite_*_count``: profiles whose decision (outcome weights), payment, utility or regret
    (per agent), or deficit / welfare are NaN or infinite; ``nonfinite_any_max`` with its witnesses
    marks the first such profile (earliest block, then earliest in the block). ``menu_gap_*``: agents
    whose menu at the truthful report gives another utility than ``decide`` / ``pay`` (by more than tol).
    """
    w = valid.astype(profiles.dtype)
    per_agent = {
        "payment": ~jnp.isfinite(tr.payments),
        "utility": ~jnp.isfinite(tr.utility),
        "regret": ~jnp.isfinite(reg),
    }  # each (B, n)
    decision = ~jnp.all(jnp.isfinite(tr.outcome_probs), axis=1)
    budget = ~(jnp.isfinite(tr.deficit) & jnp.isfinite(tr.welfare) & jnp.isfinite(tr.first_best))
    for name, bad in per_agent.items():
        out[f"nonfinite_{name}_count"] = Moments(jnp.sum(w[:, None] * bad.astype(w.dtype), axis=0))
    out["nonfinite_decision_count"] = Moments(jnp.sum(w * decision.astype(w.dtype)))
    out["nonfinite_deficit_count"] = Moments(jnp.sum(w * budget.astype(w.dtype)))
    anybad = decision | budget | jnp.any(per_agent["payment"] | per_agent["utility"] | per_agent["regret"], axis=1)
    x, j = _masked_argext(anybad.astype(profiles.dtype), valid, True)
    out["nonfinite_any_max"] = Extremum(x, j.astype(jnp.int32), {"profile": profiles[j]})
    gap = jnp.where(jnp.isfinite(menu_gap), menu_gap, 0.0)  # non-finite rows are counted above
    out["menu_gap_count"] = Moments(jnp.sum(w[:, None] * (gap > tol).astype(w.dtype), axis=0))
    out["menu_gap_max"] = _extremum_per_column(gap, valid, profiles, True)


def _deficit(env: Environment, mech: Mechanism, s: Array) -> Array:
    q, t = mechanisms.decide_and_pay(mech, mech.params, s)
    return env.cost(q) - jnp.sum(t)


def deficit_comparison_stats(
    env: Environment, mechs: tuple[Mechanism, ...], profiles: Array, n_valid: Array, tol: Array
) -> BlockStats:
    """State-by-state deficits of ``mechs[0]`` (the claimed minimizer) against each other mechanism.

    For ``k >= 1``, ``diff_k(s) = deficit_k(s) - deficit_0(s)``; CE Lemma 5 and
    Thm 6 claim ``diff_k >= 0`` in every state. Reduced to per-mechanism deficit
    moments and min / max (with profile), the moments of ``diff_k``, its minimum
    (the worst counterexample, with its profile) and ``#{diff_k < -tol}``.
    """
    batch = profiles.shape[0]
    dtype = profiles.dtype
    valid = jnp.arange(batch, dtype=jnp.int32) < jnp.asarray(n_valid, jnp.int32)
    w = valid.astype(dtype)
    deficits = jnp.stack(
        [jax.vmap(lambda s, m=m: _deficit(env, m, s))(profiles) for m in mechs],
        axis=1,
    )  # (B, K)
    diff = deficits - deficits[:, :1]
    out: BlockStats = {"n": Moments(jnp.sum(w))}
    for name, x in (("deficit", deficits), ("diff", diff)):
        out[name] = Moments(jnp.sum(w[:, None] * x, axis=0), jnp.sum(w[:, None] * x * x, axis=0))
    out["diff_count"] = Moments(jnp.sum(w[:, None] * (diff < -tol).astype(dtype), axis=0))
    out["deficit_count"] = Moments(jnp.sum(w[:, None] * (deficits < -tol).astype(dtype), axis=0))
    for name, x, largest in (
        ("diff_min", diff, False),
        ("deficit_min", deficits, False),
        ("deficit_max", deficits, True),
    ):
        out[name] = _extremum_per_column(x, valid, profiles, largest)
    return out


def finalize_comparison(totals: BlockStats, names: tuple[str, ...], tol: float) -> dict:
    """JSON-ready report of :func:`deficit_comparison_stats` totals."""
    n = totals["n"].sum
    d = _stat(totals["deficit"], n)
    f = _stat(totals["diff"], n)
    rows = []
    for k, name in enumerate(names):
        rows.append(
            {
                "mechanism": name,
                "deficit": {"mean": d["mean"][k], "se": d["se"][k], "ci95": [d["ci95"][0][k], d["ci95"][1][k]]},
                "deficit_min": totals["deficit_min"].value[k],
                "deficit_min_profile": totals["deficit_min"].witness["profile"][k].tolist(),
                "deficit_max": totals["deficit_max"].value[k],
                "p_deficit_below_tol": _prob(totals["deficit_count"].sum[k], n),
                "minus_baseline": {
                    "mean": f["mean"][k],
                    "se": f["se"][k],
                    "min": totals["diff_min"].value[k],
                    "min_profile": totals["diff_min"].witness["profile"][k].tolist(),
                    "p_below_minus_tol": _prob(totals["diff_count"].sum[k], n),
                },
            }
        )
    return _jsonable({"profiles": int(n), "tol": float(tol), "baseline": names[0], "mechanisms": rows})


def interim_check(
    env: Environment,
    mech: Mechanism,
    prior: priors.Prior,
    key: Array,
    *,
    types: int = 33,
    misreports: int = 129,
    inner: int = 16384,
    dtype=jnp.float32,
) -> dict:
    """Bayesian IC and interim IR (CE Sec. 2.1, 3.4) by Monte Carlo, for independent one-dimensional signals.

    For agent ``i`` and type ``s_i`` on a ``types``-point grid, the interim
    utility of reporting ``m`` is ``U_i(m; s_i) = E_{s_-i}[u_i(m, s_-i; s_i, s_-i)]``,
    estimated on an ``inner``-point Latin hypercube of the prior (shared by all
    ``(s_i, m)``: common random numbers; midpoint quantiles, error ``O(1/inner)``
    for two agents). Interim regret ``max_m U_i(m; s_i) - U_i(s_i; s_i)`` over a
    ``misreports``-point grid (plus the truth), with the standard error of the
    difference at the maximizer; interim IR is ``min_{s_i} U_i(s_i; s_i) >= 0``.
    Types are looped with ``lax.map`` (memory: ``misreports x inner`` per step).
    """
    if prior.cholesky is not None:
        raise ValueError("interim_check: needs independent signals (the prior has a correlation matrix)")
    if any(d != 1 for d in env.dims):
        raise ValueError("interim_check: needs one-dimensional signals")
    sample = prior.latin_hypercube(key, inner, dtype)
    rows = []
    for i in range(env.n_agents):
        lo, hi = float(env.lo[i]), float(env.hi[i])
        ts = jnp.linspace(lo, hi, types, dtype=dtype)
        ms = jnp.linspace(lo, hi, misreports, dtype=dtype)

        def per_type(t, i=i, ms=ms):
            truth = sample.at[:, i].set(t)  # (inner, n): true profiles (t, s_-i)

            def u_report(m):
                return jax.vmap(lambda s: utility(env, mech, mech.params, s, s.at[i].set(m), i))(truth)  # (inner,)

            u_true = u_report(t)
            u_mis = jax.lax.map(u_report, ms)  # (M, inner)
            gain = u_mis - u_true[None, :]
            mean_gain = jnp.mean(gain, axis=1)
            j = jnp.argmax(mean_gain)
            se = jnp.std(gain[j]) / jnp.sqrt(jnp.asarray(inner, dtype))
            return (
                jnp.maximum(mean_gain[j], 0.0),
                se,
                ms[j],
                jnp.mean(u_true),
                jnp.std(u_true) / jnp.sqrt(jnp.asarray(inner, dtype)),
            )

        reg, reg_se, arg_m, u, u_se = (
            np.asarray(x, np.float64)
            for x in jax.jit(lambda ts: jax.lax.map(per_type, ts), compiler_options=supported(FULL_OPTIMIZATION))(ts)
        )
        k = int(np.argmax(reg))
        kk = int(np.argmin(u))
        rows.append(
            {
                "max_interim_regret": float(reg[k]),
                "se_at_max": float(reg_se[k]),
                "worst_type": float(ts[k]),
                "worst_misreport": float(arg_m[k]),
                "min_interim_utility": float(u[kk]),
                "se_at_min": float(u_se[kk]),
                "lowest_type": float(ts[kk]),
            }
        )
    return {"types": types, "misreports": misreports, "inner": inner, "agents": rows}


def _mean_se(total_sum, total_sumsq, n):
    mean = total_sum / n
    var = np.maximum(total_sumsq / n - mean**2, 0.0) * (n / max(n - 1, 1))
    se = np.sqrt(var / n)
    return mean, se


def _stat(m: Moments, n) -> dict:
    mean, se = _mean_se(m.sum, m.sumsq, n)
    return {"mean": mean, "se": se, "ci95": [mean - Z95 * se, mean + Z95 * se]}


def finalize(totals: BlockStats, env: Environment, tol: float) -> dict:
    """The audit report (JSON-ready nested dict, the schema of docs/metrics.md) from accumulated totals."""
    n = totals["n"].sum
    agents = env.agent_names or tuple(f"agent{i}" for i in range(env.n_agents))
    rep: dict[str, Any] = {"profiles": int(n), "tol": float(tol), "agents": list(agents)}

    def per_agent(prefix, extra):
        rows = []
        st = _stat(totals[prefix], n)
        for i in range(env.n_agents):
            row = {"mean": st["mean"][i], "se": st["se"][i], "ci95": [st["ci95"][0][i], st["ci95"][1][i]]}
            row.update(extra(i))
            rows.append(row)
        return rows

    def regret_extra(i):
        worst = totals["regret_max"]
        return {
            "max": worst.value[i],
            "p_above_tol": _prob(totals["regret_count"].sum[i], n),
            "worst_profile": worst.witness["profile"][i].tolist(),
            "worst_misreport": worst.witness["misreport"][i][: env.dims[i]].tolist(),
            "worst_index": int(worst.index[i]),
        }

    def ir_extra(i):
        worst = totals["ir_violation_max"]
        return {
            "max": worst.value[i],
            "p_above_tol": _prob(totals["ir_violation_count"].sum[i], n),
            "worst_profile": worst.witness["profile"][i].tolist(),
        }

    rep["regret"] = per_agent("regret", regret_extra)
    rep["ir_violation"] = per_agent("ir_violation", ir_extra)
    rep["utility"] = per_agent("utility", lambda i: {})
    rep["payment"] = per_agent("payment", lambda i: {})
    deficit = _stat(totals["deficit"], n)
    dmax, dmin = totals["deficit_max"], totals["deficit_min"]
    deficit.update(
        {
            "max": dmax.value,
            "min": dmin.value,
            "p_above_tol": _prob(totals["deficit_count"].sum, n),
            "max_profile": dmax.witness["profile"].tolist(),
            "min_profile": dmin.witness["profile"].tolist(),
        }
    )
    if "payment_error" in totals:  # the mechanism's own numerical error bound on its payments (per profile)
        per_agent = np.asarray(totals["payment_error"].sum, np.float64) / n
        worst = totals["deficit_error_max"]
        deficit["numerical_error"] = {
            "mean": float(np.sum(per_agent)),
            "max": float(worst.value[0]),
            "max_profile": worst.witness["profile"][0].tolist(),
            "per_agent_mean": per_agent.tolist(),
        }
    rep["deficit"] = deficit
    rep["revenue"] = {  # the designer's budget surplus, -deficit (sum of payments minus the cost)
        "mean": -deficit["mean"],
        "se": deficit["se"],
        "ci95": [-deficit["ci95"][1], -deficit["ci95"][0]],
        "min": -dmax.value,
        "max": -dmin.value,
    }
    w = _stat(totals["welfare"], n)
    fb = _stat(totals["first_best"], n)
    rep["welfare"] = w
    rep["first_best_welfare"] = fb
    rep["efficiency"] = _ratio(totals, n)
    out = _stat(totals["outcome"], n)
    rep["outcomes"] = {
        name: {"p": out["mean"][k], "se": out["se"][k], "ci95": [out["ci95"][0][k], out["ci95"][1][k]]}
        for k, name in enumerate(env.outcome_names)
    }
    if "paired" in totals:
        rep["paired"] = _paired(totals, agents, n)
        rep["total_utility"] = linear_combination(rep, {f"utility.{a}": 1.0 for a in agents})
    rep["integrity"] = _integrity(totals, env)
    return _jsonable(rep)


def _paired(totals: BlockStats, agents, n) -> dict:
    names = [f"utility.{a}" for a in agents] + [f"payment.{a}" for a in agents]
    names += ["deficit", "welfare", "first_best_welfare"]
    mean = np.asarray(totals["paired"].sum, np.float64) / n
    with np.errstate(invalid="ignore", over="ignore"):
        cov = (np.asarray(totals["paired_cross"].sum, np.float64) / n - np.outer(mean, mean)) * (n / max(n - 1, 1))
    return {"names": names, "mean": mean.tolist(), "cov": cov.tolist(), "profiles": int(n)}


def linear_combination(report: dict, weights: dict[str, float]) -> dict:
    """Mean, paired standard error and 95% interval of ``sum_k w_k x_k`` over the audited profiles.

    ``weights`` maps names of ``report["paired"]["names"]`` (``"utility.<agent>"``, ``"payment.<agent>"``,
    ``"deficit"``, ``"welfare"``, ``"first_best_welfare"``) to coefficients; the SE uses the per-profile
    covariance, so e.g. total utility or a difference between agents gets its exact (paired) error, not the
    conservative sum of the parts' SEs. Example: ``linear_combination(rep, {"utility.buyer": 1, "utility.seller": 1})``.
    """
    paired = report["paired"]
    names = paired["names"]
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"linear_combination: unknown quantities {unknown}; choose from {names}")
    w = np.array([float(weights.get(k, 0.0)) for k in names])
    with np.errstate(invalid="ignore", over="ignore"):  # overflowed sums: NaN here, refused by the integrity check
        mean = float(w @ np.asarray(paired["mean"], np.float64))
        var = float(w @ np.asarray(paired["cov"], np.float64) @ w) / paired["profiles"]
    se = math.sqrt(max(var, 0.0)) if math.isfinite(var) else float("nan")
    return {"mean": mean, "se": se, "ci95": [mean - Z95 * se, mean + Z95 * se]}


def _integrity(totals: BlockStats, env: Environment) -> dict:
    """The report's ``integrity`` section (see :func:`_integrity_stats`) and the moments that overflowed."""
    if "nonfinite_any_max" not in totals:  # a report of totals made before these counts existed
        return {}
    agents = range(env.n_agents)
    nonfinite = {
        k: [int(totals[f"nonfinite_{k}_count"].sum[i]) for i in agents] for k in ("payment", "utility", "regret")
    }
    nonfinite["decision"] = int(totals["nonfinite_decision_count"].sum)
    nonfinite["deficit_or_welfare"] = int(totals["nonfinite_deficit_count"].sum)
    total_bad = sum(sum(v) if isinstance(v, list) else v for v in nonfinite.values())
    first = None
    if total_bad:
        bad = totals["nonfinite_any_max"]
        first = {"index": int(bad.index), "profile": bad.witness["profile"].tolist()}
    overflow = sorted(
        k
        for k, m in totals.items()
        if isinstance(m, Moments)
        and not all(np.all(np.isfinite(np.asarray(x, np.float64))) for x in m if x is not None)
    )
    gap, gap_count = totals["menu_gap_max"], totals["menu_gap_count"]
    menu = [
        {
            "count": int(gap_count.sum[i]),
            "max": float(gap.value[i]),
            "profile": gap.witness["profile"][i].tolist(),
            "index": int(gap.index[i]),
        }
        for i in agents
    ]
    return {"nonfinite": nonfinite, "first_nonfinite": first, "overflow": sorted(set(overflow)), "menu_gap": menu}


class AuditError(ValueError):
    """An audit whose numbers cannot be trusted: non-finite values, overflowing moments, or a mechanism whose
    menu disagrees with its decision / payment rules. ``result`` holds the report for inspection."""

    def __init__(self, message: str, result: Any = None):
        super().__init__(message)
        self.result = result


def integrity_problem(report: dict, agents: Sequence[str] | None = None) -> str | None:
    """One line saying why ``report`` (from :func:`finalize`) cannot be trusted, or ``None`` when it can."""
    integ = report.get("integrity") or {}
    if not integ:
        return None
    names = list(agents or report.get("agents") or [])

    def who(i):
        return names[i] if i < len(names) else f"agent {i}"

    nf = integ["nonfinite"]
    parts = [f"{k} of {who(i)} {c}x" for k, v in nf.items() if isinstance(v, list) for i, c in enumerate(v) if c]
    parts += [f"{k} {v}x" for k, v in nf.items() if not isinstance(v, list) and v]
    if parts:
        f = integ["first_nonfinite"]
        return (
            f"non-finite numbers (NaN or inf) in {report['profiles']:,} profiles: {', '.join(parts)}; "
            f"first at profile #{f['index']} = {_fmt_profile(f['profile'])}"
        )
    if integ["overflow"]:
        return (
            f"the sums behind {', '.join(integ['overflow'])} overflowed (finite values too large for the "
            'working precision): rescale the values or run with precision = "float64"'
        )
    for i, g in enumerate(integ["menu_gap"]):
        if g["count"]:
            return (
                f"the mechanism's menu disagrees with its decide / pay for {who(i)} at the truthful report "
                f"({g['count']:,} of {report['profiles']:,} profiles, by up to {g['max']:.3g} in utility; largest "
                f"at profile #{g['index']} = {_fmt_profile(g['profile'])}): rebuild the mechanism after changing "
                "decide or pay (Mechanism._replace drops stale views)"
            )
    return None


def _fmt_profile(p) -> str:
    return "[" + ", ".join(f"{x:.6g}" for x in p) + "]"


def _prob(count, n) -> dict:
    p = count / n
    se = math.sqrt(max(p * (1 - p), 0.0) / n)
    return {"p": p, "se": se, "count": int(count)}


def _ratio(totals, n) -> dict:
    """``E[W] / E[W*]`` with a delta-method standard error."""
    mw, mf = totals["welfare"].sum / n, totals["first_best"].sum / n
    if mf == 0 or not np.isfinite(mf):  # undefined (null in metrics.json); an overflow is reported by integrity
        return {"mean": float("nan"), "se": float("nan"), "ci95": [float("nan"), float("nan")]}
    with np.errstate(invalid="ignore", over="ignore"):  # overflowed sums: NaN here, refused by the integrity check
        vw = totals["welfare"].sumsq / n - mw**2
        vf = totals["first_best"].sumsq / n - mf**2
        cov = totals["welfare_x_first_best"].sum / n - mw * mf
        r = mw / mf
        var = max((vw - 2 * r * cov + r**2 * vf) / mf**2, 0.0) / max(n - 1, 1)
    se = math.sqrt(var)
    return {"mean": r, "se": se, "ci95": [r - Z95 * se, r + Z95 * se]}


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x)
    if isinstance(x, (np.integer, int)) and not isinstance(x, bool):
        return int(x)
    return x
