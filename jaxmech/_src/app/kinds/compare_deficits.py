"""The ``compare_deficits`` kind (CE Lemma 5 / Thm 6): deficits of several mechanisms state by state."""

from __future__ import annotations

import jax
import numpy as np

from jaxmech._src.app import config as cfg
from jaxmech._src.app import plots
from jaxmech._src.app.build import build, build_mechanism, is_trade, stream_options
from jaxmech._src.app.kinds.common import Kind, condition_checks, mean_se_text, trade_figures
from jaxmech._src.core import engine


def _run_compare(settings, base_dir, progress, out_dir):
    ex = settings.experiment
    if not ex.against:
        raise cfg.ConfigError(
            "experiment.against: compare_deficits needs at least one [[experiment.against]] mechanism"
        )
    built = build(settings, base_dir)
    others = []
    for k, m in enumerate(ex.against):
        try:
            others.append(build_mechanism(m, built.env, settings.environment, base_dir, built.prior, settings.seed))
        except cfg.ConfigError as e:
            raise cfg.ConfigError(f"experiment.against[{k}]: {e}") from None
    result = engine.compare_deficits(
        built.env, [built.mechanism, *others], built.prior, key=jax.random.PRNGKey(settings.seed),
        n_profiles=settings.audit.profiles, dtype=built.dtype, rtol=settings.audit.rtol,
        options=stream_options(settings, progress=progress),
    )  # fmt: skip
    metrics = {"environment": built.env.name, "mechanism": built.mechanism.name, "comparison": result.report}
    cond = condition_checks(built)
    if cond is not None:
        metrics["conditions"] = cond
    figs = []
    if ex.plots and plots.available():
        rows = result.report["mechanisms"]
        f = plots.bars(
            out_dir / "deficits.png", [r["mechanism"] for r in rows], np.array([r["deficit"]["mean"] for r in rows]),
            np.array([r["deficit"]["se"] for r in rows]), ylabel="expected deficit",
            title=f"{built.env.name}: deficit of each mechanism (baseline first)",
        )  # fmt: skip
        figs.append(f.name)
        if is_trade(built.env):
            figs += trade_figures(built, out_dir, f"{built.mechanism.name} in {built.env.name}")
    return metrics, result.info, figs


def _compare_summary(metrics: dict) -> str:
    c = metrics["comparison"]
    lines = [
        f"{metrics['name']}: deficits state by state in {metrics['environment']}, {c['profiles']:,} profiles, "
        f"baseline {c['baseline']}",
        "",
        f"{'mechanism':<30} {'deficit mean ± se':>22} {'min':>9} {'minus baseline ± se':>22} {'worst':>10} "
        f"{'P(< -tol)':>10}",
    ]
    for r in c["mechanisms"]:
        mb = r["minus_baseline"]
        lines.append(
            f"{r['mechanism'][:30]:<30} {mean_se_text(r['deficit']):>22} {r['deficit_min']:>9.3g} {mean_se_text(mb):>22} "
            f"{mb['min']:>10.3g} {mb['p_below_minus_tol']['p']:>10.3g}"
        )
    return "\n".join(lines)


KIND = Kind(
    name="compare_deficits",
    doc="CE Lemma 5 / Thm 6: deficits of [mechanism] vs each [[experiment.against]] state by state",
    options=("against",),
    run=_run_compare,
    summary=_compare_summary,
)
