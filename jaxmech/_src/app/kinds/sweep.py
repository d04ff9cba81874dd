"""The ``sweep`` kind: the audit repeated over parameter values or named cases."""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxmech._src.app import config as cfg
from jaxmech._src.app import plots
from jaxmech._src.app.build import build, execute_family, sweep_cases, total_info
from jaxmech._src.app.kinds.common import Kind, condition_checks, mean_se_text
from jaxmech._src.models import trading


def _closed_form_deficit(s: cfg.Settings) -> float | None:
    """``(1 + a) / 6`` where it applies: linear values, a < 1, independent U[0, 1] signals, an efficient rule (CE Sec. 4.4)."""
    e, p, m = s.environment, s.prior, s.mechanism
    uniform01 = p.marginal.kind == "uniform" and p.marginal.lo == 0.0 and p.marginal.hi == 1.0
    if (
        e.kind == "bilateral_trade" and e.values == "linear" and e.a < 1 and uniform01 and p.marginals is None
        and p.correlation is None and p.rho is None
        and m.kind in ("generalized_vcg", "efficient_trade", "deficit_minimizing")
    ):  # fmt: skip
        return trading.linear_uniform_deficit(e.a)
    return None


def _row(name, value, settings, built, rep) -> dict:
    d = rep["deficit"]
    row = {
        "case": name,
        "environment": built.env.name,
        "mechanism": built.mechanism.name,
        "deficit": {k: d[k] for k in ("mean", "se", "ci95", "min", "max")},
        "regret_max": max(r["max"] for r in rep["regret"]),
        "regret": [
            {k: r[k] for k in ("mean", "se", "max", "p_above_tol", "worst_profile", "worst_misreport")}
            for r in rep["regret"]
        ],
        "p_deficit_above_tol": d["p_above_tol"],
        "ir_violation_max": max(r["max"] for r in rep["ir_violation"]),
        "welfare": rep["welfare"],
        "outcomes": rep["outcomes"],
    }
    # the case's model as run (so that a reader, e.g. a paper experiment's independent reference, needs no config)
    row["settings"] = {k: dataclasses.asdict(getattr(settings, k)) for k in ("environment", "prior", "mechanism")}
    if value is not None:
        row["value"] = value
    closed = _closed_form_deficit(settings)
    if closed is not None:
        row["deficit_closed_form"] = closed
    return row


def _run_sweep(settings, base_dir, progress, out_dir):
    cases = sweep_cases(settings)
    builts = [(name, value, s, build(s, base_dir)) for name, value, s in cases]  # validate all before running
    results = execute_family([c[2] for c in builts], [c[3] for c in builts], base_dir, progress=progress)
    info = total_info(results)
    rows = []
    for (name, value, s, built), result in zip(builts, results, strict=True):
        row = _row(name, value, s, built, result.report)
        cond = condition_checks(built)
        if cond is not None:
            row["conditions"] = {k: v.get("holds", v.get("class")) for k, v in cond.items()}
            row["condition_witnesses"] = {k: v["witness"] for k, v in cond.items() if v.get("witness") is not None}
        rows.append(row)
    metrics = {"sweep": {"parameter": settings.experiment.parameter, "rows": rows}}
    figs = []
    if settings.experiment.plots and plots.available():
        x = np.array([r.get("value", k) for k, r in enumerate(rows)], float)
        mean = np.array([r["deficit"]["mean"] for r in rows])
        se = np.array([r["deficit"]["se"] for r in rows])
        if settings.experiment.parameter is not None and len(cases) == len(settings.experiment.values):
            ref = None
            if all("deficit_closed_form" in r for r in rows):
                ref = (
                    x,
                    np.array([r["deficit_closed_form"] for r in rows]),
                    "closed form (1 + a) / 6, uniform signals",
                )
            f = plots.curve_with_band(
                out_dir / "deficit_sweep.png", x, mean, se, xlabel=settings.experiment.parameter,
                ylabel="expected deficit", title=f"{settings.name}: expected deficit (mean, 95% CI)", reference=ref,
            )  # fmt: skip
        else:
            f = plots.bars(
                out_dir / "deficit_sweep.png", [r["case"] for r in rows], mean, se, ylabel="expected deficit",
                title=f"{settings.name}: expected deficit (mean, 95% CI)",
            )  # fmt: skip
        figs.append(f.name)
    return metrics, info, figs


def _sweep_summary(metrics: dict) -> str:
    rows = metrics["sweep"]["rows"]
    lines = [
        f"{metrics['name']}: sweep over {metrics['sweep']['parameter'] or 'cases'} ({len(rows)} cases)",
        "",
        f"{'case':<34} {'deficit mean ± se':>22} {'closed form':>12} {'min':>9} {'P(trade)':>9} {'regret max':>11}",
    ]
    worst = []
    for r in rows:
        for name, g in zip(("buyer", "seller"), r["regret"], strict=False):
            if g["p_above_tol"]["count"] > 0:
                worst.append(
                    f"  {r['case']}: {name} gains {g['max']:.4g} at profile {[round(x, 4) for x in g['worst_profile']]} "
                    f"by reporting {[round(x, 4) for x in g['worst_misreport']]}"
                )
    for r in rows:
        cf = f"{r['deficit_closed_form']:.5g}" if "deficit_closed_form" in r else "—"
        pt = r["outcomes"].get("trade", {}).get("p", float("nan"))
        lines.append(
            f"{r['case'][:34]:<34} {mean_se_text(r['deficit']):>22} {cf:>12} {r['deficit']['min']:>9.3g} {pt:>9.4g} "
            f"{r['regret_max']:>11.3g}"
        )
    if worst:
        lines += ["", "worst IC violations:"] + worst
    return "\n".join(lines)


KIND = Kind(
    name="sweep",
    doc="the audit repeated over parameter values or named cases (lists of overrides); table + deficit plot",
    options=("parameter", "values", "cases"),
    run=_run_sweep,
    summary=_sweep_summary,
)
