"""The ``audit`` kind (the default): ex post IC / IR / budget / efficiency audit of [mechanism]."""

from __future__ import annotations

from jaxmech._src.app import plots
from jaxmech._src.app.build import Built, build, execute, is_trade
from jaxmech._src.app.kinds.common import Kind, condition_checks, mean_se_text, trade_figures
from jaxmech._src.core import engine


def _audit_metrics(built: Built, result: engine.AuditResult) -> dict:
    return {
        "environment": built.env.name,
        "mechanism": built.mechanism.name,
        "outcome_names": list(built.env.outcome_names),
        "audit": result.report,
    }


def _run_audit(settings, base_dir, progress, out_dir, checkpoint=None):
    built = build(settings, base_dir)
    result = execute(settings, built, progress=progress, checkpoint=checkpoint)
    metrics = _audit_metrics(built, result)
    cond = condition_checks(built)
    if cond is not None:
        metrics["conditions"] = cond
    figs = []
    if settings.experiment.plots and plots.available() and is_trade(built.env):
        figs = trade_figures(built, out_dir, f"{built.mechanism.name} in {built.env.name}")
    return metrics, result.info, figs


def _audit_summary(metrics: dict) -> str:
    """A readable table of the audit."""
    a = metrics["audit"]
    lines = [
        f"{metrics['name']}: {metrics['mechanism']} in {metrics['environment']} — {a['profiles']:,} profiles, "
        f"tol {a['tol']:.2g}",
        "",
        f"{'agent':<10} {'regret mean ± se':>22} {'regret max':>11} {'P(regret>tol)':>14} "
        f"{'IR viol. max':>13} {'utility mean ± se':>22}",
    ]
    for i, name in enumerate(a["agents"]):
        r, ir, u = a["regret"][i], a["ir_violation"][i], a["utility"][i]
        lines.append(
            f"{name:<10} {mean_se_text(r):>22} {r['max']:>11.3g} {r['p_above_tol']['p']:>14.4g} {ir['max']:>13.3g} {mean_se_text(u):>22}"
        )
    for i, name in enumerate(a["agents"]):
        r = a["regret"][i]
        if r["p_above_tol"]["count"] > 0:
            prof = ", ".join(f"{x:.4g}" for x in r["worst_profile"])
            mis = ", ".join(f"{x:.4g}" for x in r["worst_misreport"])
            lines.append(f"  worst IC violation, {name}: profile ({prof}), misreport ({mis}), gain {r['max']:.4g}")
    d = a["deficit"]
    lines += [
        "",
        f"deficit      {mean_se_text(d)}   [min {d['min']:.4g}, max {d['max']:.4g}], P(deficit > tol) = "
        f"{d['p_above_tol']['p']:.4g}",
        f"welfare      {mean_se_text(a['welfare'])}   first best {mean_se_text(a['first_best_welfare'])}   "
        f"efficiency {mean_se_text(a['efficiency'])}",
        "outcomes     " + "   ".join(f"{k} {v['p']:.4g} ± {v['se']:.2g}" for k, v in a["outcomes"].items()),
    ]
    return "\n".join(lines)


KIND = Kind(
    name="audit",
    doc="ex post IC / IR / budget / efficiency audit of [mechanism] (the default)",
    options=(),
    run=_run_audit,
    summary=_audit_summary,
    checkpoints=True,
)
