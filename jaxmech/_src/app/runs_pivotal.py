"""Run layer for B (layer 7): the ``pivotal`` and ``two_outcome`` experiment kinds (prices from config settings:
:func:`jaxmech._src.app.build.prices_from_settings`).

Kept out of :mod:`pivotal` (layer 3) so that layers import downward only."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.app import build, plots
from jaxmech._src.app import config as cfg
from jaxmech._src.core import compile_options, priors
from jaxmech._src.core.environments import Environment
from jaxmech._src.models.pivotal import (
    Array,
    PivotalConfig,
    _mean_se,
    _ray_search,
    assumption_report,
    evaluate_two_outcome,
    lemma2_check,
    price_stats,
    price_table,
    ray_accuracy,
    score_family,
    signal_grids,
    two_outcome_searcher,
)


def _regret_summary(rep: dict) -> dict:
    return {
        "tol": rep["tol"],
        "max": [r["max"] for r in rep["regret"]],
        "p_above_tol": [r["p_above_tol"]["p"] for r in rep["regret"]],
        "worst_profile": [r["worst_profile"] for r in rep["regret"]],
        "worst_misreport": [r["worst_misreport"] for r in rep["regret"]],
        "misreports_per_profile": rep.get("misreports"),
    }


def _signal_square_data(env: Environment, prices, profile: Array, points: int = 121, compiler_options=None):
    """Buyer 1's square at ``profile``'s ``s_-1``: own values, max of the others' values, price, maximizer."""
    g = np.linspace(0.0, 1.0, points)
    a, b = np.meshgrid(g, g, indexing="ij")
    y = jnp.asarray(np.stack([a, b], -1).reshape(-1, 2), profile.dtype)
    sl = priors.agent_slice(env.dims, 0)
    lo, width = jnp.asarray(env.lo[sl], profile.dtype), jnp.asarray(env.hi[sl] - env.lo[sl], profile.dtype)
    others = tuple(range(1, env.n_agents))

    def square(p):  # one compile: an eager ray search would compile op by op
        v = jax.vmap(lambda x: env.values(priors.replace_signal(p, env.dims, 0, lo + x * width)))(y)
        return v, prices((), p)[0], _ray_search(env, p, 0, others, PivotalConfig())[2]

    v, price, arg = jax.jit(square, compiler_options=compiler_options)(profile)
    v = np.asarray(v).reshape(points, points, -1)
    return g, v[..., 0], v[..., 1:].max(axis=-1), float(price), np.asarray(arg)


def run_pivotal(settings, base_dir, progress, out_dir):
    """Experiment ``pivotal`` (B Secs. 3-4): every price mechanism of the config on common samples + audits."""

    ex = settings.experiment
    built = build.build(settings, base_dir)
    env = built.env
    # audit.fast_compile (set by `jaxmech reproduce --quick`): every compile here too (numbers equal up to float rounding)
    opts = compile_options.supported(compile_options.FAST_COMPILE) if settings.audit.fast_compile else None
    if not env.outcome_names or env.outcome_names[0] != "a0" or not env.is_separable:
        raise cfg.ConfigError("environment.kind: the pivotal experiment needs a single-object environment (B Sec. 2)")
    key = jax.random.PRNGKey(settings.seed)
    s = built.prior.sample(jax.random.fold_in(key, 31), ex.stats_profiles, built.dtype)
    steps = 0.3 * jax.random.uniform(jax.random.fold_in(key, 32), s.shape, built.dtype)
    k = min(ex.stats_profiles, 20000)
    out = {
        "environment": env.name,
        "dims": list(env.dims),
        "assumptions": assumption_report(env, s[:k], steps[:k], opts),
    }
    v = jax.vmap(env.values)(s)
    specs = [settings.mechanism, *ex.against]
    rows, tables, pivotal_fn = [], [], None
    mechanisms = [built.mechanism] + [
        build.build_mechanism(m, env, settings.environment, base_dir, built.prior, settings.seed) for m in ex.against
    ]
    # mechanisms that differ only in a number (e.g. raise_by) share one compiled audit kernel
    audits = build.execute_family(
        [dataclasses.replace(settings, mechanism=m) for m in specs],
        [built._replace(mechanism=mech) for mech in mechanisms], base_dir, progress=progress,
    )  # fmt: skip
    for m, result in zip(specs, audits, strict=True):
        fn, _, label = build.prices_from_settings(env, m, base_dir)
        table = price_table(fn, compiler_options=opts)  # compiled once: the stats here, the timing below
        t0 = _time()
        t = table(s)
        t.block_until_ready()
        secs = _time() - t0
        row = {"mechanism": label, "kind": m.kind, "price_seconds": secs, **price_stats(env, s, v, t)}
        row["audit"] = _regret_summary(result.report)
        rows.append(row)
        tables.append(np.asarray(t, np.float64))
        if m.kind == "pivotal" and pivotal_fn is None:
            pivotal_fn = (fn, m, table, t)
    base = tables[0]
    for row, t in zip(rows[1:], tables[1:], strict=True):
        d = np.where(np.isfinite(t) & np.isfinite(base), t - base, 0.0)
        row["price_minus_first"] = {
            "mean": [_mean_se(d[:, i]) for i in range(env.n_agents)],
            "max_abs": float(np.abs(d).max()),
            "share_at_least_first": float(np.mean(np.all(d >= -1e-5, axis=1))),
        }
    out["mechanisms"] = rows
    if pivotal_fn is not None:
        fn, m, table, t = pivotal_fn
        cfg_p = PivotalConfig(rays=m.rays, refine=m.refine)
        out["ray_accuracy"] = ray_accuracy(
            env, s[:256], cfg_p, prices=t[:256] if m.raise_by == 0 else None, compiler_options=opts
        )
        if m.method == "rays":
            out["price_timing"] = _timed_prices(table, built.prior, key, built.dtype, ex.stats_profiles)
            out["price_timing"]["fast_compile"] = (  # then slower code than a real run
                settings.audit.fast_compile or compile_options.process_compiles_fast()
            )
        out["lemma2"] = lemma2_check(env, s[:6], 17, cfg_p, compiler_options=opts)
        if env.name == "example1":  # the construction on Example 1: t*_i = p_j + c_j (tests/test_pivotal.py derives it)
            t = tables[[r["kind"] for r in rows].index("pivotal")]
            x = np.asarray(s, np.float64)
            closed = np.stack([x[:, 2] + x[:, 3], x[:, 0] + x[:, 1]], 1)
            out["example1_construction_vs_p_plus_c"] = float(np.abs(t - closed).max())
    figs = []
    if ex.plots and plots.available():
        names = [f"a{j}" for j in range(env.n_agents + 1)]
        mean = np.array([[r["outcomes"][n]["mean"] for n in names] for r in rows])
        se = np.array([[r["outcomes"][n]["se"] for n in names] for r in rows])
        f = plots.grouped_bars(out_dir / "outcomes.png", [r["mechanism"] for r in rows], names, mean, se,
                               ylabel="probability", title=f"{env.name}: outcome frequencies (95% CI)")  # fmt: skip
        figs.append(f.name)
        if env.dims[0] == 2:
            prof = jnp.asarray(ex.profile if ex.profile is not None else [0.5] * env.size, built.dtype)
            if prof.shape != (env.size,):
                raise cfg.ConfigError(f"experiment.profile: need {env.size} signals, got {prof.shape[0]}")
            fn = pivotal_fn[0] if pivotal_fn is not None else build.prices_from_settings(env, specs[0], base_dir)[0]
            g, vo, vj, price, arg = _signal_square_data(env, fn, prof, compiler_options=opts)
            f = plots.signal_classes(out_dir / "signal_square.png", g, vo, vj, price, arg,
                                     f"{env.name}: buyer 1 at s_-1 = {np.round(np.asarray(prof[2:], np.float64), 2).tolist()}")  # fmt: skip
            figs.append(f.name)
    return out, None, figs


def _time() -> float:
    import time

    return time.perf_counter()


def _timed_prices(table, prior, key, dtype, n: int) -> dict:
    """Wall time of a :func:`price_table` (already compiled on this shape) on ``n`` fresh profiles."""
    s = prior.sample(jax.random.fold_in(key, 77), n, dtype)
    t0 = _time()
    table(s).block_until_ready()
    secs = _time() - t0
    return {"profiles": n, "seconds": secs, "seconds_per_1e5": secs * 1e5 / n, "backend": jax.default_backend()}


def run_two_outcome(settings, base_dir, progress, out_dir):
    """Experiment ``two_outcome`` (B Sec. 3, JMM): least regret of two-outcome rules at each non-triviality target."""

    ex, sc = settings.experiment, settings.search
    built = build.build(settings, base_dir)
    env = built.env
    if env.n_agents != 2 or env.outcome_names[:1] != ("a0",):
        raise cfg.ConfigError("environment: the two_outcome experiment needs two buyers of one object")
    key = jax.random.PRNGKey(settings.seed)
    fam = score_family(env, key=jax.random.fold_in(key, 41))
    s = built.prior.sample(jax.random.fold_in(key, 42), ex.stats_profiles, built.dtype)
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
        t0 = _time()
        fit = search(tau, key=jax.random.fold_in(key, 100 + k), steps=sc.steps if tau > 0 else 1, shift=shift,
                     eval_profiles=ex.stats_profiles)  # fmt: skip
        rows.append({"target": tau, "p_a1": fit.p_a1, "p_a2": fit.p_a2, "nontriviality": min(fit.p_a1[0], fit.p_a2[0]),
                     "regret_max": fit.regret_max, "regret_mean": fit.regret_mean, "seconds": _time() - t0,
                     "loss_first_last": [fit.loss[0], fit.loss[-1]]})  # fmt: skip
    eff = []
    for q in np.linspace(0.0, 1.0, 11):
        b = float(np.quantile(diff, q)) + (1.0 if q == 1.0 else 0.0)
        p1, p2, rmax, rmean = evaluate_two_outcome(
            env, lambda m, b=b: env.values(m)[0] - env.values(m)[1] - b, s, grids
        )
        eff.append(
            {"shift": b, "p_a1": p1, "nontriviality": min(p1[0], p2[0]), "regret_max": rmax, "regret_mean": rmean}
        )
    rep = build.execute(settings, built, progress=progress).report
    oc = rep["outcomes"]
    with_a0 = {"mechanism": built.mechanism.name, "outcomes": {k: {"p": x["p"], "se": x["se"]} for k, x in oc.items()},
               "nontriviality": min(oc["a1"]["p"], oc["a2"]["p"]), "regret": _regret_summary(rep)}  # fmt: skip
    out = {"environment": env.name, "search": rows, "shifted_efficient": eff, "with_a0": with_a0}
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


def _pivotal_summary(metrics: dict) -> str:
    a = metrics["assumptions"]
    lines = [
        f"{metrics['name']}: B Secs. 3-4 price mechanisms in {metrics['environment']}",
        f"assumptions  1a {'yes' if a['assumption1a']['holds'] else 'NO'}   2 {'yes' if a['assumption2']['holds'] else 'NO'}"
        f"   3 {'yes' if a['assumption3']['holds'] else 'NO'} (P(buyer strictly highest) "
        + ", ".join(f"{p:.3f}" for p in a["assumption3"]["share"])
        + ")",
        "",
        f"{'mechanism':<40} {'regret max':>10} {'eq.(3) viol.':>12} {'revenue':>17} {'welfare':>17} {'weak eff.':>9} outcomes",
    ]
    for r in metrics["mechanisms"]:
        we = r["weak_efficiency"]["share_of_sales"]
        lines.append(
            f"{r['mechanism'][:40]:<40} {max(r['audit']['max']):>10.2g} {r['admissible']['violations']:>12d} "
            f"{r['revenue']['mean']:>8.4f} ± {r['revenue']['se']:<6.4f} {r['welfare']['mean']:>8.4f} ± {r['welfare']['se']:<6.4f} "
            f"{(we['mean'] if we else float('nan')):>9.4f} "
            + " ".join(f"{k} {x['mean']:.3f}±{x['se']:.3f}" for k, x in r["outcomes"].items())
        )
    if "ray_accuracy" in metrics:
        ra = metrics["ray_accuracy"]
        lines.append(f"ray search   max |t* - fine t*| = {ra['max_abs_error']:.2g} on {ra['profiles']} profiles "
                     f"({ra['value_evaluations']['config']} vs {ra['value_evaluations']['reference']} value evaluations)")  # fmt: skip
    if "price_timing" in metrics:
        pt = metrics["price_timing"]
        lines.append(
            f"speed        prices of {pt['profiles']:,} profiles in {pt['seconds']:.2f} s ({pt['seconds_per_1e5']:.2f} s per 1e5)"
        )
    if "lemma2" in metrics:
        lines.append(f"Lemma 2      min increment of g_ij over lam: {np.min(metrics['lemma2']['min_increment']):.2g}")
    return "\n".join(lines)


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


RUNNERS = {"pivotal": run_pivotal, "two_outcome": run_two_outcome}
SUMMARIES = {"pivotal": _pivotal_summary, "two_outcome": _two_outcome_summary}
