"""The ``thm2`` kind (CE Thm 2 / Thm 1 in any separable model): per case the ex post audit, the mechanism's
payments at sampled profiles, and the CE Thm 1 certificate at the audit's worst ``s_-i``.

A case is a list of overrides, as in ``sweep``. For each case the audit gives the regret and IR violation with
their witnesses (the worst one replayed from scratch); ``experiment.profiles`` profiles from the prior record the
reports, outcomes and payments, so that a reader can integrate the envelope formula (CE Thm 2) independently; and
where the rule is deterministic on a finite outcome table (an object: nobody / bidder ``i``; a project's sizes),
agent ``i``'s outcome graph at the audit's worst ``s_-i`` on ``experiment.points`` own signals is solved (CE Lemma 1
/ Thm 1): no positive cycle means IC payments exist there, a positive cycle means NO payments make the rule ex post
IC there, and every menu leaves a witness a gain of at least ``slack / cycle length``.

Costs: one audit compile per case (cases whose settings differ only in floats share one, as in ``sweep``), one for
the payments and the replayed witness together, one for the certificate.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.app import streams
from jaxmech._src.app.build import build, execute_family, outcome_table, sweep_cases, total_info
from jaxmech._src.app.kinds.common import Kind
from jaxmech._src.core import audit as audit_lib
from jaxmech._src.core import priors
from jaxmech._src.models import certify as cert


def _evaluate(built, profiles, witness) -> tuple[dict, dict | None]:
    """One compiled pass: reports, outcomes and payments at ``profiles`` (truthful), and the audit's worst witness
    ``(i, profile, misreport)`` replayed from scratch (``u_i`` truthful and after the misreport, no menus)."""
    env, mech = built.env, built.mechanism
    reports = truths = profiles
    if witness is not None:
        i, s, m_i = witness
        s = jnp.asarray(s, built.dtype)
        lie = priors.replace_signal(s, env.dims, i, jnp.asarray(m_i, s.dtype))
        reports = jnp.concatenate([profiles, jnp.stack([s, lie])])
        truths = jnp.concatenate([profiles, jnp.stack([s, s])])

    def one(m, s_true):
        q = mech.decide(mech.params, m)
        t = mech.pay(mech.params, m)
        return q, t, env.value(q, s_true) - t

    q, t, u = jax.jit(jax.vmap(one))(reports, truths)
    p = len(profiles)
    pays = {"profiles": np.asarray(profiles, np.float64).tolist(), "outcomes": np.asarray(q[:p], np.float64).tolist(),
            "payments": np.asarray(t[:p], np.float64).tolist()}  # fmt: skip
    if witness is None:
        return pays, None
    u = np.asarray(u[p:, i], np.float64)
    return pays, {"profile": np.asarray(s, np.float64).tolist(), "agent": i, "misreport": list(witness[2]),
                  "u_truthful": float(u[0]), "u_misreport": float(u[1]), "gain": float(u[1] - u[0])}  # fmt: skip


def _on_table(table, outcomes) -> bool:
    """Every sampled outcome is a row of the finite outcome table (the rule is deterministic there)."""
    if table is None:
        return False
    q = np.asarray(outcomes, np.float64).reshape(len(outcomes), -1)
    rows = np.asarray(table, np.float64).reshape(len(table), -1)
    dist = np.min(np.sum((q[:, None, :] - rows[None, :, :]) ** 2, axis=-1), axis=1)
    return bool(np.all(dist <= 1e-10))


def _certificates(built, rep: dict, table, points: int) -> list[dict]:
    """CE Thm 1 for each agent at the audit's worst ``s_-i`` (:func:`certify.certify_fn` on a grid of own signals;
    one compile for all agents when their signal dimensions are equal)."""
    env, mech = built.env, built.mechanism
    solve = cert.certify_fn(env, mech.decide, table, 1e-5, None)
    out = []
    for i, r in enumerate(rep["regret"]):
        sl = priors.agent_slice(env.dims, i)
        grid = jnp.asarray(audit_lib.grid_points(env.lo[sl], env.hi[sl], points, 4096), built.dtype)
        at = jnp.asarray([r["worst_profile"]], built.dtype)
        c = cert.certify_report(solve(mech.params, priors.agent_index(env.dims, i), at, grid), at, grid)
        out.append({"agent": i, "at_profile": r["worst_profile"], "samples": int(len(grid)),
                    "feasible": bool(c.feasible[0]), "max_walk": float(c.max_walk[0]), "slack": c.worst_slack,
                    "cycle": list(c.worst_cycle), "signals": np.asarray(c.worst_signals, np.float64).ravel().tolist()})  # fmt: skip
    return out


def _row(name, settings, built, rep, pays, certs, witness) -> dict:
    return {
        "case": name,
        "environment": built.env.name,
        "mechanism": built.mechanism.name,
        "settings": {k: dataclasses.asdict(getattr(settings, k)) for k in ("environment", "prior", "mechanism")},
        "tol": rep["tol"],
        "regret_max": max(r["max"] for r in rep["regret"]),
        "ir_violation_max": max(r["max"] for r in rep["ir_violation"]),
        "regret": [{k: r[k] for k in ("max", "worst_profile", "worst_misreport")} for r in rep["regret"]],
        "payments": pays,
        "certificate": certs,
        "witness": witness,
    }


def _run_thm2(settings, base_dir, progress, out_dir):
    ex = settings.experiment
    cases = sweep_cases(settings)
    builts = [(name, s, build(s, base_dir)) for name, _, s in cases]  # validate all before running
    results = execute_family([c[1] for c in builts], [c[2] for c in builts], base_dir, progress=progress)
    key = streams.key_for(jax.random.PRNGKey(settings.seed), streams.THM2_PAYMENTS)
    rows = []
    for (name, s, b), result in zip(builts, results, strict=True):
        rep = result.report
        worst = int(np.argmax([r["max"] for r in rep["regret"]]))
        w = rep["regret"][worst]
        witness = (worst, w["worst_profile"], w["worst_misreport"]) if w["max"] > rep["tol"] else None
        pays, replayed = _evaluate(b, b.prior.sample(key, ex.profiles, b.dtype), witness)
        if replayed is not None:
            replayed["audit_regret"] = w["max"]
        table = outcome_table(b.env)
        certs = _certificates(b, rep, table, ex.points) if _on_table(table, pays["outcomes"]) else None
        rows.append(_row(name, s, b, rep, pays, certs, replayed))
    return {"thm2": {"rows": rows}}, total_info(results), []


def _thm2_summary(metrics: dict) -> str:
    rows = metrics["thm2"]["rows"]
    lines = [f"{metrics['name']}: CE Thm 2 ({len(rows)} cases)", "",
             f"{'case':<44} {'regret max':>11} {'IR viol max':>12}  certificate (CE Thm 1, worst s_-i per agent)"]  # fmt: skip
    for r in rows:
        c = r["certificate"]
        text = "—" if c is None else "; ".join(
            "IC payments exist" if a["feasible"] else f"cycle {a['cycle']} slack {a['slack']:.3g}" for a in c
        )  # fmt: skip
        lines.append(f"{r['case'][:44]:<44} {r['regret_max']:>11.3g} {r['ir_violation_max']:>12.3g}  {text}")
    return "\n".join(lines)


KIND = Kind(
    name="thm2",
    doc=(
        "CE Thm 2 in any separable model with 1-d signals: per case (a list of overrides) the ex post audit, payments "
        "at `profiles` sampled profiles, and for deterministic finite-outcome rules the CE Thm 1 certificate (IC "
        "payments or a positive cycle) at the audit's worst s_-i on `points` own signals"
    ),
    options=("cases", "profiles", "points"),
    run=_run_thm2,
    summary=_thm2_summary,
)
