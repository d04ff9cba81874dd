"""The ``certify`` kind (CE Thms 1-3) and ``jaxmech certify``: certificates, cycles, payoff equivalence."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.app import config as cfg
from jaxmech._src.app import plots, streams
from jaxmech._src.app.build import build, outcome_table
from jaxmech._src.app.kinds.common import Kind
from jaxmech._src.core import audit as audit_lib
from jaxmech._src.core import compile_options, priors
from jaxmech._src.models import certify as cert
from jaxmech._src.models import conditions, equivalence, trading


def _certify_all(settings: cfg.Settings, base_dir, profiles: int, points: int):
    """CE Thm 1 + Thm 3 per agent (:func:`equivalence.characterize_agent`), plus CE Def 7 / single crossing and
    envelope-vs-pivot payments (CE Thm 2) where the environment is separable with 1-d signals."""
    built = build(settings, base_dir)
    env, mech = built.env, built.mechanism
    key = jax.random.PRNGKey(settings.seed)
    others = built.prior.sample(streams.key_for(key, streams.CERTIFY_OTHERS), profiles, built.dtype)
    table = outcome_table(env)
    grids = []
    for i in range(env.n_agents):
        sl = priors.agent_slice(env.dims, i)
        grids.append(jnp.asarray(audit_lib.grid_points(env.lo[sl], env.hi[sl], points, 4096), built.dtype))
    agents = equivalence.characterize(env, mech, mech.params, others, grids, outcomes=table)
    rows = [row for row, _, _ in agents]
    raw = [(rep, pe) for _, rep, pe in agents]
    out = {"name": settings.name, "environment": env.name, "mechanism": mech.name, "profiles": profiles,
           "samples_per_agent": int(len(grids[0])), "agents": rows,
           "unoptimized_code": compile_options.process_compiles_fast()}  # timings then slower than a real run  # fmt: skip
    if table is not None and env.is_separable and all(d == 1 for d in env.dims):
        out["conditions"] = conditions.check_separable(env, table, profiles=16, points=65, seed=settings.seed)
        if mech.pay is not None:
            # CE Thm 3 + z-bar: the certificate's and eq. (4)'s menus are the mechanism's payments when it is IC, IR
            index_of, _ = cert.outcome_index(env, mech.decide, table)
            both = jax.jit(jax.vmap(lambda m: (mech.pay(mech.params, m), index_of(mech.params, m))))
            t_mech, a_all = (np.asarray(x) for x in both(others))
            diff = {"certificate": 0.0, "boundary": 0.0}
            for i, (_, pe) in enumerate(raw):
                idx = np.asarray(rows[i]["payoff_equivalence"]["profile_indices"], int)
                a, t, r = a_all[idx], t_mech[idx, i], np.arange(len(idx))
                diff["certificate"] = max(diff["certificate"], float(np.max(np.abs(pe.cert_payments[r, a] - t))))
                diff["boundary"] = max(diff["boundary"], float(np.max(np.abs(pe.boundary_payments[r, a] - t))))
            out["payments_vs_mechanism"] = diff
            if table.ndim == 1:  # CE Thm 2 / Def 6: envelope payments (jax.grad + quadrature) at the same profiles
                env_mech = trading.envelope_payments(
                    env, mech.decide, params=mech.params, cells=64, method="quadrature"
                )
                t_env = np.asarray(jax.jit(jax.vmap(lambda m: env_mech.pay(mech.params, m)))(others))
                out["envelope_vs_mechanism"] = {"profiles": int(len(others)), "cells": 64,
                                                "max_abs_diff": float(np.max(np.abs(t_env - t_mech)))}  # fmt: skip
    return out, built, raw, grids


def certify_model(
    settings: cfg.Settings, base_dir: Path | None = None, *, profiles: int = 256, points: int = 65
) -> dict:
    """CE Thm 1 / Lemma 1 for the configured decision rule: per agent, the share of sampled ``s_-i`` at which
    the rule is pseudo-efficient (certified: payments exist that make it ex post IC there), the worst
    violating cycle with its witnessing signals, and CE Thm 3 payoff equivalence (see :mod:`jaxmech._src.models.certify`);
    for separable environments also single crossing / CE Def 7 and envelope vs the mechanism's payments."""
    return _certify_all(settings, base_dir, profiles, points)[0]


def _witness_regret(env, mech, rep, grid, i: int, dtype) -> dict:
    """The audit's regret (best misreport on the own-signal grid) of each cycle witness at the worst ``s_-i``."""
    s_minus = jnp.asarray(rep.worst_profile, dtype)
    wit = jax.vmap(lambda x: priors.replace_signal(s_minus, env.dims, i, x))(jnp.asarray(rep.worst_signals, dtype))

    def best(s):
        return jnp.max(jax.vmap(lambda m: audit_lib.regret(env, mech, mech.params, s, m, i))(grid))

    gains = np.asarray(jax.jit(jax.vmap(best))(wit))
    return {"max_gain": float(gains.max()), "gains": gains.tolist(),
            "lower_bound": rep.worst_slack / (len(rep.worst_cycle) - 1)}  # fmt: skip


def _potential_recovery(env, mech, pe, profiles_minus, i: int) -> float:
    """Affine maximizer, private values: agent i's potential is ``w(a) + sum_{j != i} v_j(a, s_-i)`` (CE Def 4);
    the spread of ``t_cert + potential`` over the outcomes that occur (0 = recovered up to a constant)."""
    k = len(env.outcome_names)
    w = jnp.asarray(mech.params)

    def potential(s):
        v = jax.vmap(lambda a: env.value(a, s))(jnp.arange(k, dtype=jnp.int32))  # (k, n)
        return w.astype(v.dtype) + jnp.sum(v, axis=1) - v[:, i]

    dev = pe.cert_payments + np.asarray(jax.vmap(potential)(profiles_minus))
    spread = np.where(pe.shared, dev, -np.inf).max(1) - np.where(pe.shared, dev, np.inf).min(1)
    return float(np.max(spread))


def _refine(settings, built, others, table) -> dict:
    """CE Thm 3 without boundary points: agent 1's widths ``w(a, a')`` of the IC payment-difference intervals
    (:func:`equivalence.payment_gaps`) on ``refine`` uniform own-signal samples, and with ``band > 0`` on a
    disconnected type space ``{x_2 = 0, |x_0 - x_1| >= band}`` at ``s_-1`` with ``s_j0 = s_j1``, ``s_j2 = 0``.
    The sampled profiles and own signals are kept in the metrics so that a report can recompute the widths."""
    ex, env, mech = settings.experiment, built.env, built.mechanism
    sl = priors.agent_slice(env.dims, 0)
    lo, hi = np.asarray(env.lo[sl], np.float64), np.asarray(env.hi[sl], np.float64)
    key = streams.key_for(jax.random.PRNGKey(settings.seed), streams.CERTIFY_REFINE)
    rows, band = [], []
    for j, n in enumerate(ex.refine):
        u = np.asarray(jax.random.uniform(jax.random.fold_in(key, j), (n, len(lo)), built.dtype), np.float64)
        x = lo + (hi - lo) * u
        w = equivalence.payment_gaps(env, mech.decide, mech.params, others, 0, jnp.asarray(x, built.dtype), outcomes=table)
        worst = np.nanmax(np.where(np.isnan(w), -np.inf, w).reshape(len(w), -1), axis=1)
        rows.append({"samples": n, "mean_max_width": float(np.mean(worst)), "max_width": float(np.max(worst)),
                     "min_width": float(np.nanmin(w)), "max_width_by_profile": worst.tolist(),
                     "own_signals": x.tolist()})  # fmt: skip
        if ex.band > 0 and env.dims[0] >= 3:
            xb = x[np.abs(x[:, 0] - x[:, 1]) >= ex.band].copy()
            xb[:, 2:] = 0.0
            o = np.asarray(others, np.float64).copy()
            rest = np.delete(np.arange(o.shape[1]), np.arange(sl.start, sl.stop))
            o[:, rest[1]] = o[:, rest[0]]
            o[:, rest[2:]] = 0.0
            wb = equivalence.payment_gaps(env, mech.decide, mech.params, jnp.asarray(o, built.dtype), 0,
                                          jnp.asarray(xb, built.dtype), outcomes=table)  # fmt: skip
            band.append({"samples": int(len(xb)), "min_width_01": float(np.min(wb[:, 0, 1])),
                         "max_width_01": float(np.max(wb[:, 0, 1]))})  # fmt: skip
    return {"agent": 0, "band": ex.band, "connected": rows, "disconnected": band,
            "a": settings.environment.a, "n": env.n_agents,
            "profiles": np.asarray(others, np.float64).tolist()}  # fmt: skip


def _run_certify(settings, base_dir, progress, out_dir):
    """``certify`` experiment: :func:`certify_model` plus, where a cycle is found, the best misreport of each
    cycle witness under the mechanism's payments (any menu leaves one a gain >= slack / cycle length), the
    recovery of an affine maximizer's potentials, and a plot of the menu at the worst ``s_-i``."""
    ex = settings.experiment
    out, built, raw, grids = _certify_all(settings, base_dir, ex.profiles, ex.points)
    env, mech = built.env, built.mechanism
    table = outcome_table(env)
    others = built.prior.sample(streams.key_for(jax.random.PRNGKey(settings.seed), streams.CERTIFY_OTHERS), ex.profiles, built.dtype)
    for i, (row, (rep, pe), grid) in enumerate(zip(out["agents"], raw, grids, strict=True)):
        if rep.fraction < 1.0:
            row["witness_regret"] = _witness_regret(env, mech, rep, grid, i, built.dtype)
        idx = np.asarray(row["payoff_equivalence"]["profile_indices"], int)
        if (
            table is None
            and settings.mechanism.kind == "affine_maximizer"
            and settings.environment.a == 0.0
            and len(idx)
        ):
            row["potential_recovery_max_dev"] = _potential_recovery(env, mech, pe, others[idx], i)
    if ex.refine:
        out["refine"] = _refine(settings, built, others, table)
    figs = []
    if ex.plots and plots.available():
        i = int(np.argmin([r["certified_share"] for r in out["agents"]]))
        rep, pe = raw[i]
        s_minus = jnp.asarray(rep.worst_profile, built.dtype)
        sl = priors.agent_slice(env.dims, i)
        lo, hi = env.lo[sl], env.hi[sl]
        xs = np.linspace(lo[0], hi[0], 401)
        own = np.tile(np.asarray(s_minus[sl], np.float64), (len(xs), 1))
        own[:, 0] = xs
        graph = cert.outcome_graph(
            env, mech.decide, mech.params, s_minus, i, jnp.asarray(own, built.dtype), outcomes=table
        )
        t_cert = np.asarray(cert.solve_graph(graph).payments)
        names = [str(a) for a in (env.outcome_names if table is None or len(env.outcome_names) == len(table)
                                  else range(len(table)))]  # fmt: skip
        f = plots.outcome_menu(
            out_dir / "certificate.png", xs, np.asarray(graph.outcome), np.asarray(graph.values), t_cert, names,
            np.asarray(rep.worst_signals)[:, 0] if rep.fraction < 1.0 else None,
            f"{mech.name} in {env.name}: {out['agents'][i]['agent']}'s menu at s_-i = "
            f"{[round(float(x), 3) for x in np.delete(np.asarray(s_minus), np.arange(sl.start, sl.stop))]}",
        )  # fmt: skip
        figs.append(f.name)
    return out, None, figs


def certify_summary(rep: dict) -> str:
    lines = [
        f"{rep['name']}: CE Thm 1 certificate for {rep['mechanism']} in {rep['environment']} "
        f"({rep['profiles']} sampled s_-i, {rep['samples_per_agent']} own signals each)",
        "",
    ]
    for r in rep["agents"]:
        if r["certified_share"] == 1.0:
            lines.append(f"{r['agent']:<10} certified at every s_-i (pseudo-efficient: IC payments exist)")
        else:
            sig = "; ".join(", ".join(f"{x:.4g}" for x in v) for v in r["worst_signals"])
            lines.append(
                f"{r['agent']:<10} NOT certified at {1 - r['certified_share']:.1%} of s_-i; worst cycle "
                f"{' -> '.join(map(str, r['worst_cycle']))} with slack {r['worst_slack']:.4g} at profile "
                f"{[round(x, 4) for x in r['worst_profile']]} (witness own signals: {sig})"
            )
        if "payoff_equivalence" in r:
            pe = r["payoff_equivalence"]
            lines.append(
                f"{'':<10} CE Thm 3: certificate vs eq. (4) payments differ by {pe['max_deviation']:.2g} after a "
                f"constant ({pe['profiles']} s_-i, residual {pe['max_residual']:.2g}); "
                f"{r['certificates_per_s']:.0f} certificates/s"
            )
        if "witness_regret" in r:
            w = r["witness_regret"]
            lines.append(
                f"{'':<10} best misreport of a cycle witness gains {w['max_gain']:.4g} (>= slack/len {w['lower_bound']:.4g})"
            )
        if r.get("potential_recovery_max_dev") is not None:
            lines.append(
                f"{'':<10} potentials recovered up to a constant: max deviation {r['potential_recovery_max_dev']:.2g}"
            )
    if "payments_vs_mechanism" in rep:
        d = rep["payments_vs_mechanism"]
        lines.append(
            f"certificate / eq. (4) payments vs the mechanism's: max |diff| {d['certificate']:.2g} / {d['boundary']:.2g}"
        )
    if "envelope_vs_mechanism" in rep:
        lines.append(
            f"envelope (jax.grad + quadrature) vs mechanism payments: max |diff| {rep['envelope_vs_mechanism']['max_abs_diff']:.2g}"
        )
    return "\n".join(lines)


KIND = Kind(
    name="certify",
    doc=(
        "CE Thms 1-3: certificates (or cycles with witnesses and their regret) per agent over sampled s_-i, payoff "
        "equivalence (certificate vs eq. (4)), single crossing / Def 7 and envelope payments for separable models"
    ),
    options=("profiles", "points", "refine", "band"),
    run=_run_certify,
    summary=certify_summary,
)
