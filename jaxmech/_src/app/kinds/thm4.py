"""The ``thm4`` kind (CE Thm 4 / Sec. 3.4): an ex post IC and IR mechanism from a Bayesian IC one."""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from jaxmech._src.app import build, plots, streams
from jaxmech._src.app import config as cfg
from jaxmech._src.app.kinds.common import Kind, ex_post_summary, worst_witness
from jaxmech._src.core import engine
from jaxmech._src.models.bayesian import ir_scan, payment_anchored, thm4_construction


def run_thm4(settings, base_dir, progress, out_dir):
    """Experiment ``thm4``: CE Thm 4 from the Bayesian IC [mechanism] (e.g. expected_externality), independent prior."""

    ex = settings.experiment
    built = build.build(settings, base_dir)
    if built.prior.cholesky is not None:
        raise cfg.ConfigError("prior: CE Thm 4 assumes independent signals (no correlation / rho)")
    key = jax.random.PRNGKey(settings.seed)
    try:
        tpp, fee_mech, rep = thm4_construction(built.env, built.mechanism, built.prior, streams.key_for(key, streams.THM4),
                                               types=ex.types, inner=ex.inner, fee_inner=16 * ex.inner,
                                               dtype=built.dtype)  # fmt: skip
    except ValueError as e:
        raise cfg.ConfigError(f"mechanism: {e}") from None
    out = {"environment": built.env.name, "thm4": rep,
           "settings": {k: dataclasses.asdict(getattr(settings, k)) for k in ("environment", "prior")}}  # fmt: skip
    info = None
    for label, mech in (("ex_post", tpp), ("fees", fee_mech)):
        b = built._replace(mechanism=mech)
        result = build.execute(settings, b, progress=progress)
        info = result.info
        out[f"{label}_audit"] = ex_post_summary(result.report)
        out[f"{label}_witness"] = worst_witness(b, result.report)
    text = payment_anchored(built.env, tpp, built.prior, key, taus=rep["lowest_type_payments"],
                            lowest=rep["lowest_types"], dtype=built.dtype)  # fmt: skip
    scan = built.prior.sample(streams.key_for(key, streams.THM4_SCAN), min(settings.audit.profiles, 1 << 18), built.dtype)
    out["text_anchored"] = {"mechanism": text.name, **ir_scan(built.env, text, scan)}
    cmp = engine.compare_deficits(
        built.env, [tpp, fee_mech, built.mechanism], built.prior, key=key, n_profiles=settings.audit.profiles,
        dtype=built.dtype, rtol=settings.audit.rtol, options=build.stream_options(settings, progress=progress),
    ).report  # fmt: skip
    mb = cmp["mechanisms"][1]["minus_baseline"]  # deficit(fees) - deficit(t'') state by state
    se = math.sqrt(mb["se"] ** 2 + rep["fees_sum_se"] ** 2)
    out["budget"] = {
        "comparison": cmp,
        "ex_post_deficit": cmp["mechanisms"][0]["deficit"],
        "fees_deficit": cmp["mechanisms"][1]["deficit"],
        "bic_deficit": cmp["mechanisms"][2]["deficit"],
        "bic_deficit_abs_max": max(abs(cmp["mechanisms"][2]["deficit_min"]), abs(cmp["mechanisms"][2]["deficit_max"])),
        "ex_post_minus_fees": {"mean": -mb["mean"], "se": se},
        "minus_fees_sum": {"mean": -rep["fees_sum"], "se": rep["fees_sum_se"]},
    }
    figs = []
    if ex.plots and plots.available():
        c = rep["agents"][0]["curve"]
        figs.append(
            plots.curve_with_band(
                out_dir / "interim_payoffs.png", np.array(c["types"]), np.array(c["utility_fee"]),
                np.array(c["utility_se"]), xlabel="type s_1", ylabel="interim utility of agent 1",
                title=f"CE Thm 4: {fee_mech.name} (MC) vs t'' (dashed)",
                reference=(np.array(c["types"]), np.array(c["utility_ex_post"]), "ex post IC and IR t''"),
            ).name
        )  # fmt: skip
    return out, info, figs


def _thm4_summary(metrics: dict) -> str:
    t, b = metrics["thm4"], metrics["budget"]
    lines = [f"{metrics['name']}: CE Thm 4 from {t['bic_mechanism']} in {metrics['environment']}", ""]
    for a in t["agents"]:
        lines.append(f"{a['agent']:<8} fee {a['fee']:+.4f} ± {a['fee_se']:.1g}   max |interim diff| / se = "
                     f"{a['max_abs_z']:.2f} (type {a['worst_type']:.3g})")  # fmt: skip
    lines.append(f"t'' ex post: regret max {max(metrics['ex_post_audit']['regret_max']):.3g}, IR violation max "
                 f"{max(metrics['ex_post_audit']['ir_violation_max']):.3g}; fee mechanism regret max "
                 f"{max(metrics['fees_audit']['regret_max']):.3g}")  # fmt: skip
    ta = max(metrics["text_anchored"]["agents"], key=lambda r: r["max_violation"])
    lines.append(f"Sec. 3.4 as written (payment at the lowest type held constant): ex post IR violation "
                 f"{ta['max_violation']:.4f} at {[round(x, 4) for x in ta['at_profile']]}, P = {ta['p_violation']:.3f}")  # fmt: skip
    d = b["ex_post_minus_fees"]
    lines.append(f"expected deficit: t'' {b['ex_post_deficit']['mean']:.4f} ± {b['ex_post_deficit']['se']:.1g}, "
                 f"{t['bic_mechanism']} {b['bic_deficit']['mean']:.2g} (exactly balanced), with fees "
                 f"-sum(fees) = {-t['fees_sum']:.4f}; paired t'' - fees {d['mean']:+.4f} ± {d['se']:.1g}")  # fmt: skip
    return "\n".join(lines)


KIND = Kind(
    name="thm4",
    doc=(
        "CE Thm 4 / Sec. 3.4: from the Bayesian IC [mechanism] with participation fees, the interim-payoff-equivalent "
        "ex post IC and IR mechanism (generalized VCG anchored at the lowest type); budgets compared"
    ),
    options=("types", "misreports", "inner"),
    run=run_thm4,
    summary=_thm4_summary,
)
