"""The ``interim`` kind (CE Cor. 1): [mechanism] vs its interim-payment version."""

from __future__ import annotations

import dataclasses

import jax

from jaxmech._src.app import config as cfg
from jaxmech._src.app import plots, streams
from jaxmech._src.app.build import build, build_prior, execute, is_trade, stream_options, sweep_cases
from jaxmech._src.app.kinds.common import Kind, mean_se_text, trade_figures
from jaxmech._src.core import audit as audit_lib
from jaxmech._src.core import engine
from jaxmech._src.models import trading


def _run_interim(settings, base_dir, progress, out_dir):
    """CE Cor. 1: generalized VCG vs its interim-payment version (Bayesian IC, interim IR, not ex post IC)."""
    ex = settings.experiment
    built = build(settings, base_dir)
    if built.prior.cholesky is not None:
        raise cfg.ConfigError("prior: the interim experiment needs independent signals (CE Cor. 1)")
    if any(d != 1 for d in built.env.dims):
        raise cfg.ConfigError("environment: the interim experiment needs one-dimensional signals")
    key = jax.random.PRNGKey(settings.seed)
    vcg = built.mechanism
    interim = trading.interim_payments(
        built.env, vcg, built.prior, streams.key_for(key, streams.INTERIM_PAYMENTS), inner=settings.mechanism.inner
    )
    out = {"environment": built.env.name, "mechanism": vcg.name, "interim_mechanism": interim.name}
    info = None
    for label, mech in (("ex_post", vcg), ("interim", interim)):
        result = execute(settings, built._replace(mechanism=mech), progress=progress)
        info = result.info
        out[f"{label}_audit"] = result.report
        out[f"{label}_bayesian"] = audit_lib.interim_check(
            built.env, mech, built.prior, streams.key_for(key, streams.INTERIM_CHECK), types=ex.types, misreports=ex.misreports,
            inner=ex.inner, dtype=built.dtype,
        )  # fmt: skip
    cmp = engine.compare_deficits(
        built.env, [vcg, interim], built.prior, key=key, n_profiles=settings.audit.profiles, dtype=built.dtype,
        rtol=settings.audit.rtol, options=stream_options(settings, progress=progress),
    )  # fmt: skip
    out["comparison"] = cmp.report
    # CE Prop 2 ("only if"): the same interim-payment mechanism (built under [prior]) checked under other priors
    other = []
    for k, (name, _, case) in enumerate(sweep_cases(settings) if ex.cases else []):
        prior = build_prior(case.prior, built.env.dims)
        if prior.cholesky is not None:
            raise cfg.ConfigError(f"experiment.cases[{k}] ({name}): the interim check needs independent signals")
        check = audit_lib.interim_check(
            built.env, interim, prior, streams.key_for(key, streams.INTERIM_CHECK), types=ex.types,
            misreports=ex.misreports, inner=ex.inner, dtype=built.dtype,
        )  # fmt: skip
        other.append({"case": name, "prior": dataclasses.asdict(case.prior), "interim_bayesian": check})
    if other:
        out["other_priors"] = other
    figs = []
    if ex.plots and plots.available() and is_trade(built.env):
        figs += trade_figures(built._replace(mechanism=interim), out_dir, f"{interim.name} in {built.env.name}")
    return out, info, figs


def _interim_summary(metrics: dict) -> str:
    lines = [
        f"{metrics['name']}: {metrics['mechanism']} vs {metrics['interim_mechanism']} in {metrics['environment']}",
        "",
    ]
    lines.append(
        f"{'mechanism':<10} {'agent':<8} {'ex post regret max':>19} {'P(regret>tol)':>14} {'interim regret ± se':>22} "
        f"{'min interim U':>14} {'deficit mean ± se':>22}"
    )
    for label in ("ex_post", "interim"):
        a, b = metrics[f"{label}_audit"], metrics[f"{label}_bayesian"]
        for i, name in enumerate(a["agents"]):
            r, bi = a["regret"][i], b["agents"][i]
            lines.append(
                f"{label:<10} {name:<8} {r['max']:>19.4g} {r['p_above_tol']['p']:>14.4g} "
                f"{bi['max_interim_regret']:>11.3g} ± {bi['se_at_max']:<8.2g} {bi['min_interim_utility']:>14.3g} "
                f"{mean_se_text(a['deficit']):>22}"
            )
    mb = metrics["comparison"]["mechanisms"][1]["minus_baseline"]
    lines.append(f"\ndeficit(interim) - deficit(ex post): {mean_se_text(mb)} (paired, same profiles)")
    return "\n".join(lines)


KIND = Kind(
    name="interim",
    doc="CE Cor. 1: [mechanism] vs its interim-payment version: ex post regret, Bayesian IC, interim IR, deficits; "
    "cases: the interim-payment mechanism's Bayesian IC under other (independent) priors (CE Prop 2)",
    options=("types", "misreports", "inner", "cases"),
    run=_run_interim,
    summary=_interim_summary,
)
