"""The ``search`` kind (layer 6, CE Thm 9): optax search over a mechanism family, exact audit, grid comparison."""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmech._src.app import config as cfg
from jaxmech._src.app import plots, streams
from jaxmech._src.app.build import build, execute, is_public, is_trade
from jaxmech._src.app.kinds.common import Kind, condition_checks, mean_se_text, trade_figures
from jaxmech._src.core import environments as envs
from jaxmech._src.core import search as search_lib
from jaxmech._src.models import design as design_lib
from jaxmech._src.models import families, provision


def _search_config(s: cfg.SearchSettings) -> search_lib.SearchConfig:
    fields = search_lib.SearchConfig._fields
    return search_lib.SearchConfig(**{k: v for k, v in cfg.to_dict(s).items() if k in fields})


def _boundary_point(env: envs.Environment, vbar: np.ndarray) -> tuple[list[float], float]:
    """A profile ``sbar`` in ``[0, 1]^n`` minimizing ``|v(sbar) - vbar|`` (CE Thm 9 condition 2) and the residual."""
    target = jnp.asarray(vbar, jnp.float32)

    def loss(z):
        return jnp.sum((env.values(jax.nn.sigmoid(z)) - target) ** 2)

    z = jnp.zeros(env.n_agents, jnp.float32)
    opt = optax.adam(0.05)
    state = opt.init(z)

    @jax.jit
    def step(z, state):
        g = jax.grad(loss)(z)
        with jax.numpy_dtype_promotion("standard"):
            upd, state = opt.update(g, state, z)
        return optax.apply_updates(z, upd), state

    for _ in range(2000):
        z, state = step(z, state)
    sbar = jax.nn.sigmoid(z)
    return [float(x) for x in sbar], float(jnp.sqrt(loss(z)))


def _paired(a: np.ndarray, b: np.ndarray) -> dict:
    d = a - b
    return {"mean": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d)))}


def _mc(x: np.ndarray) -> dict:
    return {"mean": float(x.mean()), "se": float(x.std(ddof=1) / np.sqrt(len(x)))}


# the best two-price rule by jm.design: short annealed search from cold starts, exact repair onto the budget boundary,
# Nelder-Mead polish by quadrature (continuous prices; the grid is only a coarse cross-check)
_BASELINE_DESIGN = {"family": "two_price", "starts": 2, "search": search_lib.SearchConfig(steps=60, learning_rate=0.02,
                    temperature_start=0.05), "eval_profiles": 1 << 12, "run_audit": False}  # fmt: skip


def _two_price_baseline(env, prior, key, s, grid_pts, points, dtype) -> dict:
    """Two-price trading rules: trade iff ``s_beta > p_b`` and ``s_sigma < p_s`` (``p_s <= p_b``), a monotone cutoff
    rule (``g = p_b`` below ``p_s``, no trade above) whose generalized VCG payments are ``t_beta = v_beta(p_b, s_sigma)``
    and ``-t_sigma = v_sigma(s_beta, p_s)``. ``p_b = p_s`` is a posted price (the budget-balanced rules of private
    values).

    The best budget-balanced pair is a continuous optimization: ``jm.design(family="two_price")`` (cold starts,
    exact repair onto the ex post budget boundary by bisection, Nelder-Mead polish by quadrature), its welfare
    measured on the run's common profiles ``s`` (paired with the search). A ``points x points`` grid of pairs, each
    checked for balance on the support grid, is kept as a coarse cross-check (``grid``)."""
    pairs = np.array(
        [(pb, ps) for pb in np.linspace(0, 1, points) for ps in np.linspace(0, 1, points) if ps <= pb + 1e-12]
    )

    def at(pp):  # welfare per common profile and the worst deficit on the support grid of the pair pp = (p_b, p_s)
        pb, ps = pp[0], pp[1]

        def trade(x):
            return ((x[0] > pb) & (x[1] < ps)).astype(x.dtype)

        def deficit(x):
            return trade(x) * (env.values(jnp.stack([x[0], ps]))[1] - env.values(jnp.stack([pb, x[1]]))[0])

        return jax.vmap(lambda x: env.welfare(trade(x), x))(s), jnp.max(jax.vmap(deficit)(grid_pts))

    def one(pp):
        w, worst = at(pp)
        return jnp.mean(w), worst

    means, worst = jax.jit(lambda ps: jax.lax.map(one, ps))(jnp.asarray(pairs, dtype))
    means, worst = np.asarray(means, np.float64), np.asarray(worst, np.float64)
    feasible = worst <= 1e-6
    out = {"pairs": int(len(pairs)), "feasible_share": float(feasible.mean())}
    if feasible.any():
        k = int(np.argmax(np.where(feasible, means, -np.inf)))
        out["grid"] = {"buyer_price": float(pairs[k, 0]), "seller_price": float(pairs[k, 1]), "welfare": float(means[k])}
    try:
        r = design_lib.design(env, prior, key=key, dtype=dtype, **_BASELINE_DESIGN)
    except ValueError as e:  # the environment is refused, or no two-price rule is budget balanced
        out["design_error"] = str(e)
        return out
    pb, ps = (float(x) for x in np.asarray(r.params, np.float64))
    w, worst_best = jax.jit(at)(jnp.asarray([pb, ps], dtype))  # and its balance on the run's support grid
    w = np.asarray(w, np.float64)
    out["best"] = {"buyer_price": pb, "seller_price": ps, "welfare": _mc(w), "exact": r.exact,
                   "deficit_max": float(worst_best),
                   "method": f"jm.design two_price: {_BASELINE_DESIGN['starts']} cold starts, exact repair onto the "
                             "budget boundary, polish by quadrature"}  # fmt: skip
    out["_best_per_profile"] = w
    if abs(pb - ps) <= 1e-4:  # the best balanced two-price rule is a posted price
        out["best_posted_price"] = {"price": 0.5 * (pb + ps), "welfare": float(w.mean())}
    return out


def _run_boundary_search(settings, built, progress, out_dir):
    """Search over a monotone piecewise-linear boundary (bilateral cutoff or two-agent provision boundary)."""
    env, sc = built.env, settings.search
    key = jax.random.PRNGKey(settings.seed)
    if sc.family == "monotone_cutoff":
        if not is_trade(env):
            raise cfg.ConfigError("search.family: monotone_cutoff needs bilateral_trade")
        make = families.trade_cutoff_family
    else:
        if not (is_public(env) and env.n_agents == 2):
            raise cfg.ConfigError("search.family: monotone_boundary needs public_good with n = 2")
        make = families.provision_boundary_family
    if sc.init is not None and len(sc.init) != sc.knots:
        raise cfg.ConfigError(f"search.init: need one value per knot ({sc.knots}), got {len(sc.init)}")
    s = built.prior.sample(streams.key_for(key, streams.GRID_PROFILES), sc.grid_profiles, built.dtype)
    grid_pts = search_lib.support_grid(built.prior, 129, built.dtype)
    baseline = (
        _two_price_baseline(env, built.prior, streams.key_for(key, streams.TWO_PRICE_BASELINE), s, grid_pts,
                            min(sc.grid_points, 51), built.dtype)  # fmt: skip
        if sc.family == "monotone_cutoff"
        else None
    )
    init = sc.init
    if sc.warm_start and baseline is not None and "best" in baseline:
        pb, ps = baseline["best"]["buyer_price"], baseline["best"]["seller_price"]
        xs = np.linspace(0.0, 1.0, sc.knots)
        init = np.where(xs < ps, pb, 1.05 + 0.5 * (xs - ps))  # g = p_b below p_s, no trade above
    family = make(env, built.prior, streams.key_for(key, streams.FAMILY), knots=sc.knots, init=init)
    t0 = time.perf_counter()
    found = search_lib.search(
        env, family, built.prior, streams.key_for(key, streams.SEARCH), _search_config(sc), dtype=built.dtype, progress=progress
    )
    search_s = time.perf_counter() - t0
    mech = found.mechanism
    audit_res = execute(settings, built._replace(mechanism=mech), progress=progress)
    w_found = np.asarray(jax.jit(jax.vmap(lambda x: env.welfare(mech.decide(mech.params, x), x)))(s), np.float64)
    body = {
        "environment": env.name,
        "mechanism": mech.name,
        "search": {
            "family": family.name,
            "steps": found.steps,
            "seconds": search_s,
            "warm_start": bool(sc.warm_start and baseline is not None and "best" in baseline),
            "found": family.describe(found.params),
            "restored": family.describe(found.restored),
            "welfare": _mc(w_found),
            "log": found.log,
        },
        "first_best_welfare": audit_res.report["first_best_welfare"],
        "audit": audit_res.report,
    }
    figs = []
    if baseline is not None:
        if "best" in baseline:
            baseline["search_minus_best"] = _paired(w_found, baseline.pop("_best_per_profile"))
        body["two_price_rules"] = baseline
        if settings.experiment.plots and plots.available():
            figs += trade_figures(built._replace(mechanism=mech), out_dir, f"searched cutoff in {env.name}")
    else:
        grid = families.budget_line_grid(env, sc.grid_points)
        mean, se, per = search_lib.welfare_table(
            env,
            grid,
            provision.threshold_rule(env),
            built.prior,
            streams.key_for(key, streams.GRID_PROFILES),
            sc.grid_profiles,
            built.dtype,
        )
        b = int(np.argmax(mean))
        body["threshold_rules"] = {
            "best_vbar": grid[b].tolist(),
            "best_welfare": {"mean": float(mean[b]), "se": float(se[b])},
            "search_minus_best": _paired(w_found, per[b]),
        }
        if settings.experiment.plots and plots.available():
            gx = np.linspace(0.0, 1.0, 201)
            s1, s2 = np.meshgrid(gx, gx, indexing="ij")
            prof = jnp.asarray(np.stack([s1, s2], -1).reshape(-1, 2), built.dtype)
            thr = np.asarray(
                jax.vmap(lambda m: provision.threshold_rule(env)(jnp.asarray(grid[b], built.dtype), m))(prof)
            )
            rule = np.asarray(jax.vmap(lambda m: mech.decide(mech.params, m))(prof))
            figs.append(
                plots.regions(
                    out_dir / "provision_region.png", gx, rule.reshape(s1.shape), thr.reshape(s1.shape), None,
                    f"searched monotone boundary vs best threshold rule (line) in {env.name}",
                ).name
            )  # fmt: skip
    if settings.experiment.plots and plots.available():
        figs.insert(
            0, plots.search_trajectory(out_dir / "search_trajectory.png", found.log, f"{settings.name}: search").name
        )
    return body, audit_res.info, figs


def _run_search(settings, base_dir, progress, out_dir):
    built = build(settings, base_dir)
    env = built.env
    sc = settings.search
    if sc.family != "threshold":
        return _run_boundary_search(settings, built, progress, out_dir)
    if not is_public(env):
        raise cfg.ConfigError("environment.kind: search with family 'threshold' needs public_good")
    init = sc.init
    if init is not None and len(init) != env.n_agents:
        raise cfg.ConfigError(f"search.init: need {env.n_agents} values, got {len(init)}")
    family = families.threshold_family(env, init)
    key = jax.random.PRNGKey(settings.seed)
    t0 = time.perf_counter()
    found = search_lib.search(
        env, family, built.prior, streams.key_for(key, streams.SEARCH), _search_config(sc), dtype=built.dtype, progress=progress
    )
    search_s = time.perf_counter() - t0
    c = float(env.cost(jnp.ones(())))
    raw = np.asarray(found.params, np.float64)
    restored = np.asarray(found.restored, np.float64)
    # the same family on a grid along the budget line, on one common sample with the found rule
    grid = families.budget_line_grid(env, sc.grid_points if env.n_agents == 2 else min(sc.grid_points, 61))
    rows = np.concatenate([restored[None], grid])
    mean, se, per = search_lib.welfare_table(
        env, rows, provision.threshold_rule(env), built.prior, streams.key_for(key, streams.GRID_PROFILES), sc.grid_profiles, built.dtype
    )
    best = int(np.argmax(mean[1:])) + 1
    diff = per[0] - per[best]
    sbar, resid = _boundary_point(env, restored)
    audit_res = execute(settings, built._replace(mechanism=found.mechanism), progress=progress)
    first_best = audit_res.report["first_best_welfare"]
    body = {
        "environment": env.name,
        "mechanism": found.mechanism.name,
        "search": {
            "family": family.name,
            "steps": found.steps,
            "seconds": search_s,
            "vbar_found": raw.tolist(),
            "sum_minus_cost_found": float(raw.sum() - c),
            "vbar_restored": restored.tolist(),
            "sum_minus_cost_restored": float(restored.sum() - c),
            "boundary_point": {"sbar": sbar, "residual": resid},
            "welfare": {"mean": float(mean[0]), "se": float(se[0])},
            "log": found.log,
        },
        "grid": {
            "points": int(len(grid)),
            "profiles": sc.grid_profiles,
            "best_vbar": rows[best].tolist(),
            "best_welfare": {"mean": float(mean[best]), "se": float(se[best])},
            "search_minus_best": {"mean": float(diff.mean()), "se": float(diff.std(ddof=1) / np.sqrt(len(diff)))},
            "vbar": grid.tolist(),
            "welfare": mean[1:].tolist(),
            "welfare_se": se[1:].tolist(),
        },
        "first_best_welfare": first_best,
        "audit": audit_res.report,
        # the model as run, for independent references (e.g. quadrature of the same threshold rules)
        "settings": {k: dataclasses.asdict(getattr(settings, k)) for k in ("environment", "prior")},
    }
    cond = condition_checks(built)
    if cond is not None:
        body["conditions"] = cond
    figs = []
    if settings.experiment.plots and plots.available():
        figs.append(
            plots.search_trajectory(out_dir / "search_trajectory.png", found.log, f"{settings.name}: search").name
        )
        if env.n_agents == 2:
            figs.append(
                plots.curve_with_band(
                    out_dir / "welfare_budget_line.png", grid[:, 0], mean[1:], se[1:],
                    xlabel="vbar_1 (vbar_2 = c - vbar_1)", ylabel="expected welfare",
                    title=f"{env.name}: threshold rules on the budget line\nfound vbar_1 = {restored[0]:.4f}",
                    marker=(restored[0], mean[0], "search result"),
                ).name
            )  # fmt: skip
            gx = np.linspace(0.0, 1.0, 201)
            s1, s2 = np.meshgrid(gx, gx, indexing="ij")
            prof = jnp.asarray(np.stack([s1, s2], -1).reshape(-1, 2), built.dtype)
            decide = provision.threshold_rule(env)
            fb = np.asarray(jax.vmap(env.efficient)(prof)).reshape(s1.shape)
            tr = np.asarray(jax.vmap(lambda m: decide(jnp.asarray(restored, built.dtype), m))(prof)).reshape(s1.shape)
            figs.append(
                plots.regions(
                    out_dir / "provision_region.png", gx, tr, fb, sbar, f"{env.name}: threshold rule vs first best",
                    ("s_1", "s_2"),
                ).name
            )  # fmt: skip
    return body, audit_res.info, figs


def _boundary_search_summary(metrics: dict) -> str:
    s, a = metrics["search"], metrics["audit"]
    lines = [
        f"{metrics['name']}: {s['family']} search in {metrics['environment']} ({s['steps']} steps, {s['seconds']:.1f} s)",
        "",
        "restored knots  " + ", ".join(f"{x:.3f}" for x in next(v for k, v in s["restored"].items() if k != "knots")),
        f"welfare         search {mean_se_text(s['welfare'])}   first best {mean_se_text(metrics['first_best_welfare'])}",
    ]
    if "two_price_rules" in metrics:
        tp = metrics["two_price_rules"]
        if "best" in tp:
            b = tp["best"]
            kind = "a posted price" if "best_posted_price" in tp else "not a posted price"
            exact = f", {b['exact']['value']:.6f} by quadrature" if b.get("exact") else ""
            lines.append(
                f"two prices      best budget-balanced (p_b, p_s) = ({b['buyer_price']:.4f}, {b['seller_price']:.4f}) "
                f"({kind}; continuous, jm.design; deficit max {b['deficit_max']:.2g} on the support grid): welfare "
                f"{mean_se_text(b['welfare'])}{exact}; search - best "
                f"{mean_se_text(tp['search_minus_best'])} (paired)"
                + ("  [search warm-started there]" if s.get("warm_start") else "")
            )
        else:
            lines.append(f"two prices      no two-price design: {tp.get('design_error', '')}")
        if "grid" in tp:
            g = tp["grid"]
            lines.append(f"                coarse grid check ({tp['pairs']} pairs): best ({g['buyer_price']:.3f}, "
                         f"{g['seller_price']:.3f}), welfare {g['welfare']:.4f}")  # fmt: skip
    if "threshold_rules" in metrics:
        tr = metrics["threshold_rules"]
        lines.append(
            f"threshold rules best on the budget line {tuple(round(x, 4) for x in tr['best_vbar'])}: welfare "
            f"{mean_se_text(tr['best_welfare'])}; search - best {mean_se_text(tr['search_minus_best'])} (paired)"
        )
    lines.append(
        f"exact audit     regret max {max(r['max'] for r in a['regret']):.3g}   IR violation max "
        f"{max(r['max'] for r in a['ir_violation']):.3g}   deficit max {a['deficit']['max']:.3g} (tol {a['tol']:.1g})"
    )
    return "\n".join(lines)


def _search_summary(metrics: dict) -> str:
    if "grid" not in metrics:
        return _boundary_search_summary(metrics)
    s, g, a = metrics["search"], metrics["grid"], metrics["audit"]
    fmt = lambda v: "(" + ", ".join(f"{x:.4f}" for x in v) + ")"  # noqa: E731
    d = a["deficit"]
    return "\n".join(
        [
            f"{metrics['name']}: {s['family']} search in {metrics['environment']} ({s['steps']} steps, {s['seconds']:.1f} s)",
            "",
            f"found vbar      {fmt(s['vbar_found'])}   sum - c = {s['sum_minus_cost_found']:+.2e}",
            f"restored vbar   {fmt(s['vbar_restored'])}   sum - c = {s['sum_minus_cost_restored']:+.2e}   "
            f"boundary sbar {fmt(s['boundary_point']['sbar'])} (|v(sbar) - vbar| = {s['boundary_point']['residual']:.1e})",
            f"welfare         search {mean_se_text(s['welfare'])}   grid best {mean_se_text(g['best_welfare'])} at {fmt(g['best_vbar'])}   "
            f"search - grid {mean_se_text(g['search_minus_best'])} (paired, {g['profiles']:,} profiles)",
            f"first best      {mean_se_text(metrics['first_best_welfare'])}",
            f"exact audit     regret max {max(r['max'] for r in a['regret']):.3g}   IR violation max "
            f"{max(r['max'] for r in a['ir_violation']):.3g}   deficit max {d['max']:.3g} (budget balance: <= tol "
            f"{a['tol']:.1g})   P(provided) {a['outcomes']['provided']['p']:.4f}",
        ]
    )


KIND = Kind(
    name="search",
    doc=(
        "layer 6: optax search over a mechanism family (augmented Lagrangian, annealed relaxation), exact audit of "
        "the result, grid search over the same family for comparison (CE Thm 9)"
    ),
    options=("[search]",),
    run=_run_search,
    summary=_search_summary,
)
