"""The ``two_outcome`` kind (B Sec. 3, JMM): least regret of two-outcome rules at each non-triviality target."""

from __future__ import annotations

import jax
import numpy as np

from jaxmech._src.app import build, plots, streams
from jaxmech._src.app import config as cfg
from jaxmech._src.app.kinds.common import Kind, clock, regret_summary
from jaxmech._src.models.two_outcome import evaluate_two_outcome, score_family, signal_grids, two_outcome_searcher


def run_two_outcome(settings, base_dir, progress, out_dir):
    """Experiment ``two_outcome`` (B Sec. 3, JMM): least regret of two-outcome rules at each non-triviality target."""

    ex, sc = settings.experiment, settings.search
    built = build.build(settings, base_dir)
    env = built.env
    if env.n_agents != 2 or env.outcome_names[:1] != ("a0",):
        raise cfg.ConfigError("environment: the two_outcome experiment needs two buyers of one object")
    key = jax.random.PRNGKey(settings.seed)
    fam = score_family(env, key=streams.key_for(key, streams.TWO_OUTCOME_FAMILY))
    s = built.prior.sample(streams.key_for(key, streams.TWO_OUTCOME_STATS), ex.stats_profiles, built.dtype)
    v = jax.vmap(env.values)(s)
    diff = np.asarray(v[:, 0] - v[:, 1], np.float64)
    grids = signal_grids(env, 33, built.dtype)
    rows = []
    for k, tau in enumerate(ex.targets):
        if not 0.0 <= tau <= 0.5:
            raise cfg.ConfigError(f"experiment.targets[{k}]: must be in [0, 0.5], got {tau}")
    search = two_outcome_searcher(env, built.prior, fam, batch=sc.batch, learning_rate=sc.learning_rate,
                                  dtype=built.dtype)  # fmt: skip
    for k, tau in enumerate(ex.targets):
        shift = float(np.quantile(diff, 1.0 - tau)) if tau > 0 else float(diff.max()) + 1.0
        t0 = clock()
        fit = search(tau, key=streams.key_for(key, streams.TWO_OUTCOME_FIT, k), steps=sc.steps if tau > 0 else 1, shift=shift,
                     eval_profiles=ex.stats_profiles)  # fmt: skip
        rows.append({"target": tau, "p_a1": fit.p_a1, "p_a2": fit.p_a2, "nontriviality": min(fit.p_a1[0], fit.p_a2[0]),
                     "regret_max": fit.regret_max, "regret_mean": fit.regret_mean, "seconds": clock() - t0,
                     "loss_first_last": [fit.loss[0], fit.loss[-1]]})  # fmt: skip
    eff = []
    for q in np.linspace(0.0, 1.0, 11):
        b = float(np.quantile(diff, q)) + (1.0 if q == 1.0 else 0.0)
        p1, p2, rmax, rmean, g = evaluate_two_outcome(
            env, lambda m, b=b: env.values(m)[0] - env.values(m)[1] - b, s, grids
        )
        eff.append({"shift": b, "p_a1": p1, "nontriviality": min(p1[0], p2[0]), "regret_max": rmax, "regret_mean": rmean,
                    "regret_sample": g[:64].tolist()})  # fmt: skip
    rep = build.execute(settings, built, progress=progress).report
    oc = rep["outcomes"]
    with_a0 = {"mechanism": built.mechanism.name, "outcomes": {k: {"p": x["p"], "se": x["se"]} for k, x in oc.items()},
               "nontriviality": min(oc["a1"]["p"], oc["a2"]["p"]), "regret": regret_summary(rep)}  # fmt: skip
    out = {"environment": env.name, "search": rows, "shifted_efficient": eff, "with_a0": with_a0,
           # the profiles of each shifted rule's regret_sample, and the grid that stands for S_i (closed-form checks)
           "profile_sample": np.asarray(s[:64], np.float64).tolist(), "grid_points": 33}  # fmt: skip
    figs = []
    if ex.plots and plots.available():
        eff_sorted = sorted(eff, key=lambda r: (r["nontriviality"], r["regret_max"]))
        series = [
            (np.array([r["nontriviality"] for r in eff_sorted]), np.array([r["regret_max"] for r in eff_sorted]),
             "two outcomes: a_1 iff V_1 - V_2 > shift", "s--"),
            (np.array([r["nontriviality"] for r in rows]), np.array([r["regret_max"] for r in rows]),
             "two outcomes: searched rule (MLP boundary)", "o-"),
            (np.array([with_a0["nontriviality"]]), np.array([max(with_a0["regret"]["max"])]),
             f"a_0 allowed: {built.mechanism.name}", "*"),
        ]  # fmt: skip
        f = plots.frontier(out_dir / "frontier.png", series, xlabel="non-triviality min(P(a_1), P(a_2))",
                           ylabel="worst regret (best payments)", title=f"{env.name}: JMM (two outcomes) vs B (a_0 allowed)")  # fmt: skip
        figs.append(f.name)
    return out, None, figs


def _two_outcome_summary(metrics: dict) -> str:
    lines = [f"{metrics['name']}: two outcomes (JMM) vs a_0 allowed (B) in {metrics['environment']}", "",
             f"{'target':>7} {'min P(a_k)':>10} {'regret max':>10} {'regret mean ± se':>20}"]  # fmt: skip
    for r in metrics["search"]:
        lines.append(f"{r['target']:>7.2f} {r['nontriviality']:>10.3f} {r['regret_max']:>10.4f} "
                     f"{r['regret_mean'][0]:>11.4f} ± {r['regret_mean'][1]:.4f}")  # fmt: skip
    w = metrics["with_a0"]
    lines.append(
        f"a_0 allowed ({w['mechanism']}): min P(a_k) {w['nontriviality']:.3f}, regret max {max(w['regret']['max']):.2g}"
    )
    return "\n".join(lines)


KIND = Kind(
    name="two_outcome",
    doc=(
        "B Sec. 3 (JMM): two outcomes only; least worst regret over a rich rule family at min(P(a_1), P(a_2)) = "
        "target, vs the a_0-allowed [mechanism]; frontier metrics + plot"
    ),
    options=("targets", "stats_profiles", "[search]"),
    run=run_two_outcome,
    summary=_two_outcome_summary,
)
