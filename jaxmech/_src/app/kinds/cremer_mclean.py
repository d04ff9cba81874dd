"""The ``cremer_mclean`` kind (CE fn. 6): Cremer-McLean full surplus extraction on a discretized prior."""

from __future__ import annotations

import jax

from jaxmech._src.app import build, plots
from jaxmech._src.app import config as cfg
from jaxmech._src.app.kinds.common import Kind
from jaxmech._src.models.bayesian import cremer_mclean, discretize_copula, finite_report, sampled_revenue


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


KIND = Kind(
    name="cremer_mclean",
    doc=(
        "CE fn. 6: Cremer-McLean full surplus extraction on the [prior] discretized to `signals` types per bidder "
        "(single_object, two bidders): ex post IC, interim IR, NOT ex post IR; exact enumeration"
    ),
    options=("signals",),
    run=run_cremer_mclean,
    summary=_cremer_mclean_summary,
)
