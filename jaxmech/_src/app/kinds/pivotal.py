"""The ``pivotal`` kind (B Secs. 3-4): price mechanisms on common samples, with audits (prices from config settings:
:func:`jaxmech._src.app.build.prices_from_settings`).

Kept out of :mod:`pivotal` (models/) so that floors import downward only."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.app import build, plots, streams
from jaxmech._src.app import config as cfg
from jaxmech._src.app.kinds.common import Kind, clock, regret_summary
from jaxmech._src.core import compile_options, priors
from jaxmech._src.core.environments import Environment
from jaxmech._src.models.pivotal import Array, PivotalConfig, lemma2_check, price_table, ray_accuracy, ray_search
from jaxmech._src.models.pivotal_checks import assumption_report, mean_se, price_stats


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
        return v, prices((), p)[0], ray_search(env, p, 0, others, PivotalConfig())[2]

    v, price, arg = jax.jit(square, compiler_options=compiler_options)(profile)
    v = np.asarray(v).reshape(points, points, -1)
    return g, v[..., 0], v[..., 1:].max(axis=-1), float(price), np.asarray(arg)


def run_pivotal(settings, base_dir, progress, out_dir):
    """Experiment ``pivotal`` (B Secs. 3-4): every price mechanism of the config on common samples + audits."""

    ex = settings.experiment
    built = build.build(settings, base_dir)
    env = built.env
    # audit.fast_compile ("auto": by the number of profiles) holds for every compile here too, with the options for
    # programs with nested loops (the ray search), which XLA's CPU backend miscompiles with FAST_COMPILE
    fast = compile_options.fast_compile_for(settings.audit.fast_compile, ex.stats_profiles)
    opts = compile_options.compile_options_for(fast, nested_loops=True)
    if not env.outcome_names or env.outcome_names[0] != "a0" or not env.is_separable:
        raise cfg.ConfigError("environment.kind: the pivotal experiment needs a single-object environment (B Sec. 2)")
    key = jax.random.PRNGKey(settings.seed)
    s = built.prior.sample(streams.key_for(key, streams.PIVOTAL_STATS), ex.stats_profiles, built.dtype)
    steps = 0.3 * jax.random.uniform(streams.key_for(key, streams.PIVOTAL_STEPS), s.shape, built.dtype)
    k = min(ex.stats_profiles, 20000)
    out = {
        "environment": env.name,
        "settings": {"environment": dataclasses.asdict(settings.environment)},  # the model as run (references)
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
        t0 = clock()
        t = table(s)
        t.block_until_ready()
        secs = clock() - t0
        row = {"mechanism": label, "kind": m.kind, "price_seconds": secs, **price_stats(env, s, v, t)}
        row["audit"] = regret_summary(result.report)
        rows.append(row)
        tables.append(np.asarray(t, np.float64))
        if len(tables) == 1:
            first_table = table
        if m.kind == "pivotal" and pivotal_fn is None:
            pivotal_fn = (fn, m, table, t)
    base = tables[0]
    for row, t in zip(rows[1:], tables[1:], strict=True):
        d = np.where(np.isfinite(t) & np.isfinite(base), t - base, 0.0)
        row["price_minus_first"] = {
            "mean": [mean_se(d[:, i]) for i in range(env.n_agents)],
            "max_abs": float(np.abs(d).max()),
            "share_at_least_first": float(np.mean(np.all(d >= -1e-5, axis=1))),
        }
    out["mechanisms"] = rows
    if env.name == "example1":  # B fn. 7 and the a_1 / a_2 boundary, with the config's first price mechanism
        out["example1_sets"] = _example1_sets(env, s, first_table)
    if pivotal_fn is not None:
        fn, m, table, t = pivotal_fn
        cfg_p = PivotalConfig(rays=m.rays, refine=m.refine)
        out["ray_accuracy"] = ray_accuracy(
            env, s[:256], cfg_p, prices=t[:256] if m.raise_by == 0 else None, compiler_options=opts
        )
        if m.method == "rays":
            out["price_timing"] = _timed_prices(table, built.prior, key, built.dtype, ex.stats_profiles)
            out["price_timing"]["fast_compile"] = (  # then slower code than a real run
                fast or compile_options.process_compiles_fast()
            )
        out["lemma2"] = lemma2_check(env, s[:6], 17, cfg_p, compiler_options=opts)
        # a sample of the construction's prices with their profiles, for checks against closed forms (B fn. 3)
        out["price_sample"] = {"signals": np.asarray(s[:256], np.float64).tolist(), "prices": np.asarray(t[:256], np.float64).tolist()}
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


# buyer 1's types where B fn. 7 is checked: corners, edge midpoints, the centre
FN7_TYPES = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.5, 0.5), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5), (0.5, 0.0))


def _outcomes(env, s, table) -> np.ndarray:
    """Outcome index per profile (0: nobody; i: buyer i) of the price mechanism: i wins iff V_i > t_i (B eq. (4))."""
    v = np.asarray(jax.vmap(env.values)(s), np.float64)
    surplus = v - np.asarray(table(s), np.float64)
    win = surplus.argmax(axis=1)
    return np.where(surplus[np.arange(len(v)), win] > 0, win + 1, 0)


def _example1_sets(env, s, table) -> dict:
    """B Example 1 on the config's first price mechanism: for each of buyer 1's types in :data:`FN7_TYPES`, the
    share of the sampled s_2 giving each outcome (B fn. 7); and, at sampled points (p, c, p, c) of the set
    {p_1 = p_2, c_1 = c_2}, whether moving p_1 by +-1e-3 gives a_1 and a_2 (both closures meet there)."""
    x = np.asarray(s, np.float64)
    types = []
    for p, c in FN7_TYPES:
        y = x.copy()
        y[:, 0], y[:, 1] = p, c
        o = _outcomes(env, jnp.asarray(y, s.dtype), table)
        types.append({"type": [p, c], "share": [float(np.mean(o == k)) for k in range(3)], "profiles": len(o)})
    diag = x.copy()
    diag[:, 2], diag[:, 3] = diag[:, 0], diag[:, 1]
    diag[:, :2] = np.clip(diag[:, :2], 0.01, 0.99)
    diag[:, 2:] = diag[:, :2]
    up, down = diag.copy(), diag.copy()
    up[:, 0] += 1e-3
    down[:, 0] -= 1e-3
    o_up = _outcomes(env, jnp.asarray(up, s.dtype), table)
    o_down = _outcomes(env, jnp.asarray(down, s.dtype), table)
    both = (o_up == 1) & (o_down == 2)
    return {"fn7": types, "boundary": {"points": len(x), "share_both_sides": float(both.mean()),
                                       "c_range": [float(diag[both, 1].min()), float(diag[both, 1].max())] if both.any() else None}}  # fmt: skip


def _timed_prices(table, prior, key, dtype, n: int) -> dict:
    """Wall time of a :func:`price_table` (already compiled on this shape) on ``n`` fresh profiles."""
    s = prior.sample(streams.key_for(key, streams.PRICE_TIMING), n, dtype)
    t0 = clock()
    table(s).block_until_ready()
    secs = clock() - t0
    return {"profiles": n, "seconds": secs, "seconds_per_1e5": secs * 1e5 / n, "backend": jax.default_backend()}


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


KIND = Kind(
    name="pivotal",
    doc=(
        "B Secs. 3-4: [mechanism] and each [[experiment.against]] price mechanism: Assumptions 1a/2/3, eq. (3), audit "
        "(zero regret), outcomes, revenue, welfare, weak efficiency, price differences, ray accuracy, Lemma 2; plots"
    ),
    options=("against", "profile", "stats_profiles"),
    run=run_pivotal,
    summary=_pivotal_summary,
)
