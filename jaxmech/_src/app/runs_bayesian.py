"""Run layer for CE Secs. 2.1-3.4 (layer 7): the ``interim_audit``, ``thm4`` and ``cremer_mclean`` experiment kinds.

Kept out of :mod:`bayesian` (layer 4) so that layers import downward only."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.app import build, plots
from jaxmech._src.app import config as cfg
from jaxmech._src.core import engine
from jaxmech._src.models.bayesian import (
    cremer_mclean,
    discretize_copula,
    finite_report,
    interim_audit,
    ir_scan,
    payment_anchored,
    replay,
    sampled_revenue,
    thm4_construction,
)


def _agent_rows_max(rep: dict, key: str) -> float:
    return max(r[key] for r in rep["agents"])


def _ex_post_summary(rep: dict) -> dict:
    """The ex post side, next to the interim one: max regret / IR violation per agent with witnesses."""
    return {
        "regret_max": [r["max"] for r in rep["regret"]],
        "regret_p_above_tol": [r["p_above_tol"] for r in rep["regret"]],
        "ir_violation_max": [r["max"] for r in rep["ir_violation"]],
        "ir_p_above_tol": [r["p_above_tol"] for r in rep["ir_violation"]],
        "tol": rep["tol"],
    }


def _worst_witness(built, rep: dict) -> dict | None:
    """The largest ex post regret over agents, replayed from scratch (None when there is none above tol)."""
    i = int(np.argmax([r["max"] for r in rep["regret"]]))
    r = rep["regret"][i]
    if r["max"] <= rep["tol"]:
        return None
    dtype = built.dtype
    w = replay(
        built.env, built.mechanism, jnp.asarray(r["worst_profile"], dtype), i, jnp.asarray(r["worst_misreport"], dtype)
    )
    w["audit_regret"] = r["max"]
    return w


def run_interim_audit(settings, base_dir, progress, out_dir):
    """Experiment ``interim_audit``: ex post and interim (Bayesian) IC / IR of [mechanism], per prior case (CE Props 1–2)."""

    ex = settings.experiment
    cases = build._sweep_cases(settings) if (ex.cases or ex.parameter is not None) else [(settings.name, None, settings)]
    builts = [(name, s, build.build(s, base_dir)) for name, _, s in cases]  # validate every case first
    for _, _, built in builts:
        if any(d != 1 for d in built.env.dims):
            raise cfg.ConfigError("environment: the interim audit needs one-dimensional signals")
    results = build.execute_family([b[1] for b in builts], [b[2] for b in builts], base_dir, progress=progress)
    info = build.total_info(results)
    rows = []
    for (name, s, built), result in zip(builts, results, strict=True):
        key = jax.random.fold_in(jax.random.PRNGKey(s.seed), 11)
        interim = interim_audit(built.env, built.mechanism, built.prior, key, types=ex.types,
                                misreports=ex.misreports, inner=ex.inner, dtype=built.dtype)  # fmt: skip
        rep = result.report
        rows.append(
            {
                "case": name,
                "environment": built.env.name,
                "mechanism": built.mechanism.name,
                "correlated": built.prior.cholesky is not None,
                "ex_post": _ex_post_summary(rep),
                "witness": _worst_witness(built, rep),
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


def run_thm4(settings, base_dir, progress, out_dir):
    """Experiment ``thm4``: CE Thm 4 from the Bayesian IC [mechanism] (e.g. expected_externality), independent prior."""

    ex = settings.experiment
    built = build.build(settings, base_dir)
    if built.prior.cholesky is not None:
        raise cfg.ConfigError("prior: CE Thm 4 assumes independent signals (no correlation / rho)")
    key = jax.random.PRNGKey(settings.seed)
    try:
        tpp, fee_mech, rep = thm4_construction(built.env, built.mechanism, built.prior, jax.random.fold_in(key, 13),
                                               types=ex.types, inner=ex.inner, fee_inner=16 * ex.inner,
                                               dtype=built.dtype)  # fmt: skip
    except ValueError as e:
        raise cfg.ConfigError(f"mechanism: {e}") from None
    out = {"environment": built.env.name, "thm4": rep}
    info = None
    for label, mech in (("ex_post", tpp), ("fees", fee_mech)):
        b = built._replace(mechanism=mech)
        result = build.execute(settings, b, progress=progress)
        info = result.info
        out[f"{label}_audit"] = _ex_post_summary(result.report)
        out[f"{label}_witness"] = _worst_witness(b, result.report)
    text = payment_anchored(built.env, tpp, built.prior, key, taus=rep["lowest_type_payments"],
                            lowest=rep["lowest_types"], dtype=built.dtype)  # fmt: skip
    scan = built.prior.sample(jax.random.fold_in(key, 23), min(settings.audit.profiles, 1 << 18), built.dtype)
    out["text_anchored"] = {"mechanism": text.name, **ir_scan(built.env, text, scan)}
    a = settings.audit
    cmp = engine.compare_deficits(
        built.env, [tpp, fee_mech, built.mechanism], built.prior, key=key, n_profiles=a.profiles,
        block_size=a.block_size, chunk_size=a.chunk_size, dtype=built.dtype, rtol=a.rtol, progress=progress,
        fast_compile=a.fast_compile,
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


def run_cremer_mclean(settings, base_dir, progress, out_dir):
    """Experiment ``cremer_mclean``: CE fn. 6 on the [prior] discretized to ``experiment.signals`` types per bidder."""

    del progress
    ex = settings.experiment
    env = build.build_environment(settings.environment, base_dir)
    if env.dims != (1, 1) or env.outcome_names[:1] != ("a0",):
        raise cfg.ConfigError("environment: the Cremer-McLean example needs single_object with dims = [1, 1]")
    prior = build.build_prior(settings.prior, env.dims)
    types, pmf = discretize_copula(prior, ex.signals)
    try:
        fa = cremer_mclean(env.values, types, pmf)
    except ValueError as e:
        raise cfg.ConfigError(f"prior: {e}") from None
    rep = finite_report(fa)
    rep["sampled"] = sampled_revenue(fa, jax.random.PRNGKey(settings.seed), settings.audit.profiles)
    figs = []
    if ex.plots and plots.available():
        u = fa.alloc[..., 0] * fa.values[..., 0] - fa.pay[..., 0]
        figs.append(
            plots.heatmap(out_dir / "ex_post_utility.png", types[0], u,
                          "bidder 1 ex post utility", "CE fn. 6: Cremer-McLean, bidder 1 (negative: ex post IR fails)").name
        )  # fmt: skip
    return {"environment": env.name, "cremer_mclean": rep}, None, figs


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


def _cremer_mclean_summary(metrics: dict) -> str:
    c = metrics["cremer_mclean"]
    s = c["sampled"]["revenue"]
    lines = [
        f"{metrics['name']}: CE fn. 6, Cremer-McLean in {metrics['environment']} ({len(c['types'][0])} types each)",
        "",
    ]
    lines.append(
        f"ex post regret max {max(c['regret_max']):.2g}; interim utilities max |U| {c['interim_utility_max_abs']:.2g}"
    )
    lines.append(f"expected revenue {c['expected_revenue']:.6f} = expected surplus {c['expected_surplus']:.6f} "
                 f"(sampled {s['mean']:.4f} ± {s['se']:.1g}); ex post IC + IR pivot revenue {c['base_expected_revenue']:.4f}")  # fmt: skip
    for i, r in enumerate(c["ir"]):
        lines.append(f"bidder {i + 1}: min ex post utility {r['min_utility']:.4f} at profile "
                     f"{[round(x, 4) for x in r['at_profile']]}, P(violation) {r['p_violation']:.3f}")  # fmt: skip
    return "\n".join(lines)


SUMMARIES = {"interim_audit": _interim_audit_summary, "thm4": _thm4_summary, "cremer_mclean": _cremer_mclean_summary}
RUNNERS = {"interim_audit": run_interim_audit, "thm4": run_thm4, "cremer_mclean": run_cremer_mclean}
