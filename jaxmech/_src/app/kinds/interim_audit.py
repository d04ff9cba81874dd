"""The ``interim_audit`` kind (CE Props 1-2): ex post and interim (Bayesian) IC / IR per case.

Kept out of :mod:`bayesian` (models/) so that floors import downward only."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jaxmech._src.app import build, plots, streams
from jaxmech._src.app import config as cfg
from jaxmech._src.app.kinds.common import Kind, ex_post_summary, worst_witness
from jaxmech._src.models.bayesian import interim_audit


def run_interim_audit(settings, base_dir, progress, out_dir):
    """Experiment ``interim_audit``: ex post and interim (Bayesian) IC / IR of [mechanism], per prior case (CE Props 1–2)."""

    ex = settings.experiment
    cases = build.sweep_cases(settings) if (ex.cases or ex.parameter is not None) else [(settings.name, None, settings)]
    builts = [(name, s, build.build(s, base_dir)) for name, _, s in cases]  # validate every case first
    for _, _, built in builts:
        if any(d != 1 for d in built.env.dims):
            raise cfg.ConfigError("environment: the interim audit needs one-dimensional signals")
    results = build.execute_over_priors([b[1] for b in builts], [b[2] for b in builts], base_dir, progress=progress)
    info = build.total_info(results)
    rows = []
    kernels: dict[str, dict] = {}  # one interim program per agent for the cases that differ only in the prior
    for (name, s, built), result in zip(builts, results, strict=True):
        key = streams.key_for(jax.random.PRNGKey(s.seed), streams.INTERIM_CHECK)
        interim = interim_audit(built.env, built.mechanism, built.prior, key, types=ex.types,
                                misreports=ex.misreports, inner=ex.inner, dtype=built.dtype,
                                kernels=_kernels(kernels, s, built, base_dir))  # fmt: skip
        rep = result.report
        rows.append(
            {
                "case": name,
                "environment": built.env.name,
                "mechanism": built.mechanism.name,
                "correlated": built.prior.cholesky is not None,
                "settings": {k: dataclasses.asdict(getattr(s, k)) for k in ("environment", "prior")},  # references
                "ex_post": ex_post_summary(rep),
                "witness": worst_witness(built, rep),
                "deficit": {k: rep["deficit"][k] for k in ("mean", "se", "min", "max")},
                "interim": interim,
            }
        )
    figs = []
    if ex.plots and plots.available():
        worst = [max(a["agents"], key=lambda r: r["max_interim_regret"]) for a in (r["interim"] for r in rows)]
        figs.append(
            plots.bars(
                out_dir / "interim_regret.png", [r["case"] for r in rows],
                np.array([w["max_interim_regret"] for w in worst]), np.array([w["se"] for w in worst]),
                ylabel="max interim regret (worst agent)", title=f"{settings.name}: Bayesian IC violation per case",
            ).name
        )  # fmt: skip
        c = rows[0]["interim"]["agents"][0]["curve"]
        figs.append(
            plots.curve_with_band(
                out_dir / "interim_utility.png", np.array(c["types"]), np.array(c["utility"]),
                np.array(c["utility_se"]), xlabel="type s_1", ylabel="interim utility U_1(s_1)",
                title=f"{rows[0]['case']}: interim utility of agent 1 (interim IR: >= 0)",
            ).name
        )  # fmt: skip
    return {"cases": rows}, info, figs


def _kernels(kernels: dict, s: cfg.Settings, built: build.Built, base_dir) -> dict:
    """The dict of compiled interim programs shared by the cases that differ only in the prior (a case whose
    mechanism is built from the prior gets a dict of its own)."""
    key = build.prior_family_key(s, built, base_dir)
    return kernels.setdefault(key, {}) if key is not None else {}


def _interim_audit_summary(metrics: dict) -> str:
    lines = [f"{metrics['name']}: ex post vs interim (Bayesian) IC / IR, CE Props 1-2", ""]
    lines.append(f"{'case':<28} {'ex post regret':>15} {'ex post IR viol':>16} {'interim regret ± se':>22} "
                 f"{'interim IR viol ± se':>22}")  # fmt: skip
    for r in metrics["cases"]:
        w = max(r["interim"]["agents"], key=lambda a: a["max_interim_regret"])
        v = max(r["interim"]["agents"], key=lambda a: a["ir_violation"])
        lines.append(
            f"{r['case'][:28]:<28} {max(r['ex_post']['regret_max']):>15.3g} {max(r['ex_post']['ir_violation_max']):>16.3g} "
            f"{w['max_interim_regret']:>11.3g} ± {w['se']:<8.2g} {v['ir_violation']:>11.3g} ± {v['se_min']:<8.2g}"
        )
    return "\n".join(lines)


KIND = Kind(
    name="interim_audit",
    doc=(
        "CE Props 1-2: ex post and interim (Bayesian) IC / IR of [mechanism] by nested Monte Carlo under the "
        "conditional prior, per [[experiment.cases]] (e.g. priors)"
    ),
    options=("types", "misreports", "inner", "cases"),
    run=run_interim_audit,
    summary=_interim_audit_summary,
)
