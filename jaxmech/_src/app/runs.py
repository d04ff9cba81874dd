"""Layer 7 — runs: settings -> (environment, prior, mechanism) -> audit -> results folder.

``run(settings, out_dir)`` is a pure function of its inputs apart from the
files it writes: ``config.toml`` (the resolved settings), ``metrics.json`` (the
audit report) and ``manifest.json`` (versions, device, seed, git revision,
timings).
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmech import __version__
from jaxmech._src.app import config as cfg
from jaxmech._src.app import plots, results_dir, runs_bayesian, runs_pivotal
from jaxmech._src.app.build import (
    Built,
    Entry,
    _is_public,
    _is_trade,
    _outcome_table,
    _sweep_cases,
    build,
    build_environment,
    build_mechanism,
    execute,
    execute_family,
    total_info,
)
from jaxmech._src.core import audit as audit_lib
from jaxmech._src.core import compile_options, engine, priors, reduction
from jaxmech._src.core import environments as envs
from jaxmech._src.core import search as search_lib
from jaxmech._src.models import certify as cert
from jaxmech._src.models import (
    conditions,
    contributions,
    double_auction,
    families,
    provision,
    trading,
)

METRICS_SCHEMA_VERSION = 1


EXPERIMENTS = {
    "audit": Entry((), "ex post IC / IR / budget / efficiency audit of [mechanism] (the default)"),
    "sweep": Entry(
        ("parameter", "values", "cases"),
        "the audit repeated over parameter values or named cases (lists of overrides); table + deficit plot",
    ),
    "compare_deficits": Entry(
        ("against",), "CE Lemma 5 / Thm 6: deficits of [mechanism] vs each [[experiment.against]] state by state"
    ),
    "interim": Entry(
        ("types", "misreports", "inner"),
        "CE Cor. 1: [mechanism] vs its interim-payment version: ex post regret, Bayesian IC, interim IR, deficits",
    ),
    "interim_audit": Entry(
        ("types", "misreports", "inner", "cases"),
        "CE Props 1-2: ex post and interim (Bayesian) IC / IR of [mechanism] by nested Monte Carlo under the "
        "conditional prior, per [[experiment.cases]] (e.g. priors)",
    ),
    "thm4": Entry(
        ("types", "misreports", "inner"),
        "CE Thm 4 / Sec. 3.4: from the Bayesian IC [mechanism] with participation fees, the interim-payoff-equivalent "
        "ex post IC and IR mechanism (generalized VCG anchored at the lowest type); budgets compared",
    ),
    "cremer_mclean": Entry(
        ("signals",),
        "CE fn. 6: Cremer-McLean full surplus extraction on the [prior] discretized to `signals` types per bidder "
        "(single_object, two bidders): ex post IC, interim IR, NOT ex post IR; exact enumeration",
    ),
    "double_auction": Entry(
        ("signals", "bids"), "CE Sec. 4.3: iterated elimination of ex post weakly dominated bids on a grid"
    ),
    "contributions": Entry(
        ("signals", "bids"),
        "CE Sec. 5.3: the contingent-contribution scheme (d_i, p_i) with the paper's strategies for the "
        "[mechanism] threshold rule: implementation, ex post equilibrium (grid + random deviations), budget",
    ),
    "certify": Entry(
        ("profiles", "points"),
        "CE Thms 1-3: certificates (or cycles with witnesses and their regret) per agent over sampled s_-i, payoff "
        "equivalence (certificate vs eq. (4)), single crossing / Def 7 and envelope payments for separable models",
    ),
    "pivotal": Entry(
        ("against", "profile", "stats_profiles"),
        "B Secs. 3-4: [mechanism] and each [[experiment.against]] price mechanism: Assumptions 1a/2/3, eq. (3), audit "
        "(zero regret), outcomes, revenue, welfare, weak efficiency, price differences, ray accuracy, Lemma 2; plots",
    ),
    "two_outcome": Entry(
        ("targets", "stats_profiles", "[search]"),
        "B Sec. 3 (JMM): two outcomes only; least worst regret over a rich rule family at min(P(a_1), P(a_2)) = "
        "target, vs the a_0-allowed [mechanism]; frontier metrics + plot",
    ),
    "search": Entry(
        ("[search]",),
        "layer 6: optax search over a mechanism family (augmented Lagrangian, annealed relaxation), exact audit of "
        "the result, grid search over the same family for comparison (CE Thm 9)",
    ),
}

def _git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def manifest(settings: cfg.Settings, wall_s: float, info: engine.StreamInfo | None) -> dict:
    import jaxlib

    devs = jax.devices()
    m = {
        "jaxmech": __version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "device_kind": devs[0].device_kind,
        "device_count": len(devs),
        "seed": settings.seed,
        "precision": settings.precision,
        "git_revision": _git_revision(),
        "wall_s": wall_s,
        "argv": sys.argv,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    if info is not None:
        m.update(
            {
                "compile_s": info.compile_s,
                "run_s": info.run_s,
                "n_chunks": info.n_chunks,
                "blocks_per_chunk": info.blocks_per_chunk,
                "profiles_per_s": info.n_profiles / max(info.run_s, 1e-12),
                "n_processes": info.n_processes,
                "resumed_at_block": info.resumed_at_block,
            }
        )
    return m


def _trade_figures(built: Built, out_dir: Path, title: str) -> list[str]:
    """Trade region with the cutoff and one profile's pivots, and the deficit over the square (CE Sec. 4)."""
    env, mech = built.env, built.mechanism
    dtype = built.dtype
    grid = np.linspace(0.0, 1.0, 201)
    sb, ss = np.meshgrid(grid, grid, indexing="ij")
    prof = jnp.asarray(np.stack([sb, ss], -1).reshape(-1, 2), dtype)
    p = mech.params
    trade = np.asarray(jax.jit(jax.vmap(lambda m: mech.decide(p, m)))(prof)).reshape(sb.shape)
    deficit = np.asarray(
        jax.jit(jax.vmap(lambda m: env.cost(mech.decide(p, m)) - jnp.sum(mech.pay(p, m))))(prof)
    ).reshape(sb.shape)
    cutoff = pivots = None
    profile = (0.7, 0.3)
    if mech.kinks is not None:
        col = jnp.asarray(np.stack([np.full_like(grid, 0.5), grid], -1), dtype)
        cutoff = np.asarray(jax.jit(jax.vmap(lambda m: mech.kinks(p, m, 0)[0, 0]))(col))
        m0 = jnp.asarray(profile, dtype)
        pivots = (float(mech.kinks(p, m0, 0)[0, 0]), float(mech.kinks(p, m0, 1)[0, 0]))
    files = [
        plots.trade_region(out_dir / "trade_region.png", grid, trade, cutoff, profile, pivots, title),
        plots.heatmap(out_dir / "deficit.png", grid, deficit, "deficit  -(t_beta + t_sigma)", f"deficit — {title}"),
    ]
    return [f.name for f in files]


def _audit_metrics(built: Built, result: engine.AuditResult) -> dict:
    return {
        "environment": built.env.name,
        "mechanism": built.mechanism.name,
        "outcome_names": list(built.env.outcome_names),
        "audit": result.report,
    }


def _conditions(built: Built) -> dict | None:
    if _is_trade(built.env) and built.env.values is not None:
        return conditions.check_bilateral(built.env.values)
    if _is_public(built.env):
        mono = conditions.value_monotonicity(built.env.values) if built.env.n_agents == 2 else None
        out = {"difference_class": conditions.difference_class(built.env.values, built.env.n_agents).as_dict()}
        if mono is not None:
            out.update({k: v.as_dict() for k, v in mono.items()})
        return out
    return None


def _run_audit(settings, base_dir, progress, out_dir, checkpoint=None):
    built = build(settings, base_dir)
    result = execute(settings, built, progress=progress, checkpoint=checkpoint)
    metrics = _audit_metrics(built, result)
    cond = _conditions(built)
    if cond is not None:
        metrics["conditions"] = cond
    figs = []
    if settings.experiment.plots and plots.available() and _is_trade(built.env):
        figs = _trade_figures(built, out_dir, f"{built.mechanism.name} in {built.env.name}")
    return metrics, result.info, figs


def _closed_form_deficit(s: cfg.Settings) -> float | None:
    """``(1 + a) / 6`` where it applies: linear values, a < 1, independent U[0, 1] signals, an efficient rule (CE Sec. 4.4)."""
    e, p, m = s.environment, s.prior, s.mechanism
    uniform01 = p.marginal.kind == "uniform" and p.marginal.lo == 0.0 and p.marginal.hi == 1.0
    if (
        e.kind == "bilateral_trade" and e.values == "linear" and e.a < 1 and uniform01 and p.marginals is None
        and p.correlation is None and p.rho is None
        and m.kind in ("generalized_vcg", "efficient_trade", "deficit_minimizing")
    ):  # fmt: skip
        return trading.linear_uniform_deficit(e.a)
    return None


def _row(name, value, settings, built, rep) -> dict:
    d = rep["deficit"]
    row = {
        "case": name,
        "environment": built.env.name,
        "mechanism": built.mechanism.name,
        "deficit": {k: d[k] for k in ("mean", "se", "ci95", "min", "max")},
        "regret_max": max(r["max"] for r in rep["regret"]),
        "regret": [
            {k: r[k] for k in ("mean", "se", "max", "p_above_tol", "worst_profile", "worst_misreport")}
            for r in rep["regret"]
        ],
        "p_deficit_above_tol": d["p_above_tol"],
        "ir_violation_max": max(r["max"] for r in rep["ir_violation"]),
        "welfare": rep["welfare"],
        "outcomes": rep["outcomes"],
    }
    if value is not None:
        row["value"] = value
    closed = _closed_form_deficit(settings)
    if closed is not None:
        row["deficit_closed_form"] = closed
    return row


def _run_sweep(settings, base_dir, progress, out_dir):
    cases = _sweep_cases(settings)
    builts = [(name, value, s, build(s, base_dir)) for name, value, s in cases]  # validate all before running
    results = execute_family([c[2] for c in builts], [c[3] for c in builts], base_dir, progress=progress)
    info = total_info(results)
    rows = []
    for (name, value, s, built), result in zip(builts, results, strict=True):
        row = _row(name, value, s, built, result.report)
        cond = _conditions(built)
        if cond is not None:
            row["conditions"] = {k: v.get("holds", v.get("class")) for k, v in cond.items()}
        rows.append(row)
    metrics = {"sweep": {"parameter": settings.experiment.parameter, "rows": rows}}
    figs = []
    if settings.experiment.plots and plots.available():
        x = np.array([r.get("value", k) for k, r in enumerate(rows)], float)
        mean = np.array([r["deficit"]["mean"] for r in rows])
        se = np.array([r["deficit"]["se"] for r in rows])
        if settings.experiment.parameter is not None and len(cases) == len(settings.experiment.values):
            ref = None
            if all("deficit_closed_form" in r for r in rows):
                ref = (
                    x,
                    np.array([r["deficit_closed_form"] for r in rows]),
                    "closed form (1 + a) / 6, uniform signals",
                )
            f = plots.curve_with_band(
                out_dir / "deficit_sweep.png", x, mean, se, xlabel=settings.experiment.parameter,
                ylabel="expected deficit", title=f"{settings.name}: expected deficit (mean, 95% CI)", reference=ref,
            )  # fmt: skip
        else:
            f = plots.bars(
                out_dir / "deficit_sweep.png", [r["case"] for r in rows], mean, se, ylabel="expected deficit",
                title=f"{settings.name}: expected deficit (mean, 95% CI)",
            )  # fmt: skip
        figs.append(f.name)
    return metrics, info, figs


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
    a = settings.audit
    result = engine.compare_deficits(
        built.env, [built.mechanism, *others], built.prior, key=jax.random.PRNGKey(settings.seed),
        n_profiles=a.profiles, block_size=a.block_size, chunk_size=a.chunk_size, dtype=built.dtype, rtol=a.rtol,
        progress=progress, fast_compile=a.fast_compile,
    )  # fmt: skip
    metrics = {"environment": built.env.name, "mechanism": built.mechanism.name, "comparison": result.report}
    cond = _conditions(built)
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
        if _is_trade(built.env):
            figs += _trade_figures(built, out_dir, f"{built.mechanism.name} in {built.env.name}")
    return metrics, result.info, figs


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
        built.env, vcg, built.prior, jax.random.fold_in(key, 7), inner=settings.mechanism.inner
    )
    out = {"environment": built.env.name, "mechanism": vcg.name, "interim_mechanism": interim.name}
    info = None
    for label, mech in (("ex_post", vcg), ("interim", interim)):
        result = execute(settings, built._replace(mechanism=mech), progress=progress)
        info = result.info
        out[f"{label}_audit"] = result.report
        out[f"{label}_bayesian"] = audit_lib.interim_check(
            built.env, mech, built.prior, jax.random.fold_in(key, 11), types=ex.types, misreports=ex.misreports,
            inner=ex.inner, dtype=built.dtype,
        )  # fmt: skip
    a = settings.audit
    cmp = engine.compare_deficits(
        built.env, [vcg, interim], built.prior, key=key, n_profiles=a.profiles, block_size=a.block_size,
        chunk_size=a.chunk_size, dtype=built.dtype, rtol=a.rtol, progress=progress, fast_compile=a.fast_compile,
    )  # fmt: skip
    out["comparison"] = cmp.report
    figs = []
    if ex.plots and plots.available() and _is_trade(built.env):
        figs += _trade_figures(built._replace(mechanism=interim), out_dir, f"{interim.name} in {built.env.name}")
    return out, info, figs


def _run_double_auction(settings, base_dir, progress, out_dir):
    env = build_environment(settings.environment, base_dir)
    if not _is_trade(env):
        raise cfg.ConfigError("environment.kind: the double auction needs bilateral_trade")
    ex = settings.experiment
    t0 = time.perf_counter()
    res = double_auction.solve_double_auction(env.values, n_signals=ex.signals, n_bids=ex.bids)
    metrics = {
        "environment": env.name,
        "double_auction": double_auction.result_to_metrics(res),
        "conditions": conditions.check_bilateral(env.values),
        "solve_s": time.perf_counter() - t0,
    }
    figs = []
    if ex.plots and plots.available():
        f = plots.strategies(
            out_dir / "double_auction.png", np.asarray(res.signals), np.asarray(res.bids),
            [np.asarray(res.alive[0]), np.asarray(res.alive[1])],
            [np.asarray(res.predicted[0]), np.asarray(res.predicted[1])],
            f"CE Sec. 4.3 double auction in {env.name}: surviving bids after {int(res.rounds)} rounds",
        )  # fmt: skip
        figs.append(f.name)
    return metrics, None, figs


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


def _two_price_baseline(env, s, grid_pts, points, dtype) -> dict:
    """Two-price trading rules: trade iff ``s_beta > p_b`` and ``s_sigma < p_s`` (``p_s <= p_b``), a monotone cutoff
    rule (``g = p_b`` below ``p_s``, no trade above) whose generalized VCG payments are ``t_beta = v_beta(p_b, s_sigma)``
    and ``-t_sigma = v_sigma(s_beta, p_s)``. ``p_b = p_s`` is a posted price (the budget-balanced rules of private
    values). Each pair's budget balance is checked on the support grid; the best balanced pair is returned."""
    pairs = np.array(
        [(pb, ps) for pb in np.linspace(0, 1, points) for ps in np.linspace(0, 1, points) if ps <= pb + 1e-12]
    )

    def one(pp):
        pb, ps = pp[0], pp[1]

        def trade(x):
            return ((x[0] > pb) & (x[1] < ps)).astype(x.dtype)

        def deficit(x):
            return trade(x) * (env.values(jnp.stack([x[0], ps]))[1] - env.values(jnp.stack([pb, x[1]]))[0])

        w = jax.vmap(lambda x: env.welfare(trade(x), x))(s)
        return jnp.mean(w), jnp.max(jax.vmap(deficit)(grid_pts))

    means, worst = jax.jit(lambda ps: jax.lax.map(one, ps))(jnp.asarray(pairs, dtype))
    means, worst = np.asarray(means, np.float64), np.asarray(worst, np.float64)
    feasible = worst <= 1e-6
    out = {"pairs": int(len(pairs)), "feasible_share": float(feasible.mean())}
    posted = np.abs(pairs[:, 0] - pairs[:, 1]) < 1e-12
    if (feasible & posted).any():
        k = int(np.argmax(np.where(feasible & posted, means, -np.inf)))
        out["best_posted_price"] = {"price": float(pairs[k, 0]), "welfare": float(means[k])}
    if feasible.any():
        k = int(np.argmax(np.where(feasible, means, -np.inf)))
        pb, ps = pairs[k]
        trade = (np.asarray(s[:, 0]) > pb) & (np.asarray(s[:, 1]) < ps)
        w = np.asarray(jax.vmap(lambda x, t: env.welfare(t, x))(s, jnp.asarray(trade, dtype)), np.float64)
        out["best"] = {"buyer_price": float(pb), "seller_price": float(ps), "welfare": _mc(w)}
        out["_best_per_profile"] = w
    return out


def _run_boundary_search(settings, built, progress, out_dir):
    """Search over a monotone piecewise-linear boundary (bilateral cutoff or two-agent provision boundary)."""
    env, sc = built.env, settings.search
    key = jax.random.PRNGKey(settings.seed)
    if sc.family == "monotone_cutoff":
        if not _is_trade(env):
            raise cfg.ConfigError("search.family: monotone_cutoff needs bilateral_trade")
        make = families.trade_cutoff_family
    else:
        if not (_is_public(env) and env.n_agents == 2):
            raise cfg.ConfigError("search.family: monotone_boundary needs public_good with n = 2")
        make = families.provision_boundary_family
    if sc.init is not None and len(sc.init) != sc.knots:
        raise cfg.ConfigError(f"search.init: need one value per knot ({sc.knots}), got {len(sc.init)}")
    s = built.prior.sample(jax.random.fold_in(key, 2), sc.grid_profiles, built.dtype)
    grid_pts = search_lib.support_grid(built.prior, 129, built.dtype)
    baseline = (
        _two_price_baseline(env, s, grid_pts, min(sc.grid_points, 51), built.dtype)
        if sc.family == "monotone_cutoff"
        else None
    )
    init = sc.init
    if sc.warm_start and baseline is not None and "best" in baseline:
        pb, ps = baseline["best"]["buyer_price"], baseline["best"]["seller_price"]
        xs = np.linspace(0.0, 1.0, sc.knots)
        init = np.where(xs < ps, pb, 1.05 + 0.5 * (xs - ps))  # g = p_b below p_s, no trade above
    family = make(env, built.prior, jax.random.fold_in(key, 3), knots=sc.knots, init=init)
    t0 = time.perf_counter()
    found = search_lib.search(
        env, family, built.prior, jax.random.fold_in(key, 1), _search_config(sc), dtype=built.dtype, progress=progress
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
            figs += _trade_figures(built._replace(mechanism=mech), out_dir, f"searched cutoff in {env.name}")
    else:
        grid = families.budget_line_grid(env, sc.grid_points)
        mean, se, per = search_lib.welfare_table(
            env,
            grid,
            provision.threshold_rule(env),
            built.prior,
            jax.random.fold_in(key, 2),
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
    if not _is_public(env):
        raise cfg.ConfigError("environment.kind: search with family 'threshold' needs public_good")
    init = sc.init
    if init is not None and len(init) != env.n_agents:
        raise cfg.ConfigError(f"search.init: need {env.n_agents} values, got {len(init)}")
    family = families.threshold_family(env, init)
    key = jax.random.PRNGKey(settings.seed)
    t0 = time.perf_counter()
    found = search_lib.search(
        env, family, built.prior, jax.random.fold_in(key, 1), _search_config(sc), dtype=built.dtype, progress=progress
    )
    search_s = time.perf_counter() - t0
    c = float(env.cost(jnp.ones(())))
    raw = np.asarray(found.params, np.float64)
    restored = np.asarray(found.restored, np.float64)
    # the same family on a grid along the budget line, on one common sample with the found rule
    grid = families.budget_line_grid(env, sc.grid_points if env.n_agents == 2 else min(sc.grid_points, 61))
    rows = np.concatenate([restored[None], grid])
    mean, se, per = search_lib.welfare_table(
        env, rows, provision.threshold_rule(env), built.prior, jax.random.fold_in(key, 2), sc.grid_profiles, built.dtype
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
    }
    cond = _conditions(built)
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


def _run_contributions(settings, base_dir, progress, out_dir):
    built = build(settings, base_dir)
    env = built.env
    if not _is_public(env) or env.n_agents != 2:
        raise cfg.ConfigError("environment: the contribution scheme (CE Sec. 5.3) needs public_good with n = 2")
    if settings.mechanism.kind != "threshold_contribution":
        raise cfg.ConfigError("mechanism.kind: the contribution scheme implements a threshold_contribution rule")
    vbar = np.asarray(built.mechanism.params, np.float64)
    ex = settings.experiment
    t0 = time.perf_counter()
    res = contributions.check_equilibrium(
        env.values, vbar, n_types=ex.signals, n_grid=ex.bids, key=jax.random.PRNGKey(settings.seed)
    )
    body = {
        "environment": env.name,
        "mechanism": built.mechanism.name,
        "contributions": contributions.result_to_metrics(res),
        "solve_s": time.perf_counter() - t0,
        "conditions": _conditions(built),
    }
    figs = []
    if ex.plots and plots.available():
        st = res.strategies
        sig = np.asarray(res.signals)
        figs.append(
            plots.contribution_strategies(
                out_dir / "contribution_strategies.png", sig, np.asarray(st.d), np.asarray(st.p), np.asarray(st.phi),
                f"CE Sec. 5.3 in {env.name}, vbar = ({vbar[0]:.3f}, {vbar[1]:.3f})",
            ).name
        )  # fmt: skip
    return body, None, figs


EXPERIMENT_RUNNERS = {
    "audit": _run_audit,
    "sweep": _run_sweep,
    "compare_deficits": _run_compare,
    "interim": _run_interim,
    "double_auction": _run_double_auction,
    "search": _run_search,
    "contributions": _run_contributions,
    "certify": lambda *args: _run_certify(*args),  # defined below, beside certify_model
    **runs_bayesian.RUNNERS,
    **runs_pivotal.RUNNERS,
}


def checkpoint_path(out_dir: Path, process: int | None = None) -> Path:
    """The checkpoint file of this process (or of ``process``) in a results folder."""
    return Path(out_dir) / "checkpoint" / f"process-{jax.process_index() if process is None else process}.npz"


def resume_settings(out_dir: Path) -> tuple[cfg.Settings, Path | None]:
    """The settings and config folder of the interrupted run in ``out_dir``, read from its checkpoint."""
    path = checkpoint_path(out_dir)
    if not path.exists():  # this process may not have saved yet (or had no share): the config is the same in all
        path = next(iter(sorted(path.parent.glob("process-*.npz"))), path)
    if not path.exists():
        if (Path(out_dir) / "metrics.json").exists():
            raise cfg.ConfigError(f"--resume {out_dir}: the run is complete (metrics.json is there)")
        raise cfg.ConfigError(
            f"--resume {out_dir}: no checkpoint {path} (a run writes its first after --checkpoint-every)"
        )
    meta = reduction.read_checkpoint_meta(path)["meta"]
    settings = cfg.parse(cfg.Settings, tomllib.loads(meta["config"]))
    return settings, Path(meta["base_dir"]) if meta.get("base_dir") else None


def _checkpoint(settings: cfg.Settings, out_dir: Path, base_dir: Path | None, every_s: float, resume: bool):
    if settings.experiment.kind != "audit":
        raise cfg.ConfigError(f"--resume: only audit runs checkpoint (experiment.kind = {settings.experiment.kind!r})")
    config = cfg.dump_toml(cfg.to_dict(settings))
    return reduction.Checkpoint(
        path=checkpoint_path(out_dir),
        every_s=every_s,
        fingerprint=hashlib.sha256(config.encode()).hexdigest(),
        resume=resume,
        meta={"config": config, "base_dir": None if base_dir is None else str(Path(base_dir).resolve())},
    )


def run(
    settings: cfg.Settings,
    out_dir: Path,
    *,
    base_dir: Path | None = None,
    progress=None,
    checkpoint_every: float | None = None,
    resume: bool = False,
) -> dict:
    """Run the experiment the settings describe; write ``config.toml``, ``metrics.json``, ``manifest.json``, plots.

    Returns the metrics dict. Nothing is written if the settings do not build.
    Audit runs save their running reductions to ``out_dir/checkpoint/`` every
    ``checkpoint_every`` seconds (``None``: never) and, with ``resume``, continue
    from there, ending with the numbers of an uninterrupted run. In a
    multi-process run (``jax.distributed``) every process computes its share and
    process 0 alone writes the results.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    staging = out_dir / f".staging-{os.getpid()}"  # plots are made here and renamed into place at the end
    runner = EXPERIMENT_RUNNERS[settings.experiment.kind]
    ck = None
    if resume or (checkpoint_every is not None and settings.experiment.kind == "audit"):
        ck = _checkpoint(settings, out_dir, base_dir, 300.0 if checkpoint_every is None else checkpoint_every, resume)
        runner = functools.partial(runner, checkpoint=ck)
    staging.mkdir(parents=True, exist_ok=True)
    try:
        body, info, figs = runner(settings, base_dir, progress, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if out_dir.exists() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    if ck is not None:
        ck.path.unlink(missing_ok=True)
    if jax.process_index() != 0:
        shutil.rmtree(staging, ignore_errors=True)
        return _body_metrics(settings, body, figs)
    if ck is not None and ck.path.parent.exists() and not any(ck.path.parent.iterdir()):
        ck.path.parent.rmdir()
    for f in figs:
        (staging / f).replace(out_dir / f)
    shutil.rmtree(staging, ignore_errors=True)
    wall = time.perf_counter() - t0
    metrics = _body_metrics(settings, body, figs)
    results_dir.write_text(out_dir / "config.toml", cfg.dump_toml(cfg.to_dict(settings)))
    results_dir.write_text(out_dir / "manifest.json", results_dir.dumps(manifest(settings, wall, info)) + "\n")
    results_dir.write_text(out_dir / "metrics.json", results_dir.dumps(metrics) + "\n")  # last: marks a whole run
    return metrics


def _body_metrics(settings: cfg.Settings, body: dict, figs: list[str]) -> dict:
    metrics = {"schema_version": METRICS_SCHEMA_VERSION, "name": settings.name, "experiment": settings.experiment.kind}
    metrics.update(body)
    metrics["plots"] = (
        figs if figs or not settings.experiment.plots or plots.available() else "matplotlib not installed"
    )
    return metrics


def _certify_all(settings: cfg.Settings, base_dir, profiles: int, points: int):
    """CE Thm 1 + Thm 3 per agent (:func:`certify.characterize_agent`), plus CE Def 7 / single crossing and
    envelope-vs-pivot payments (CE Thm 2) where the environment is separable with 1-d signals."""
    built = build(settings, base_dir)
    env, mech = built.env, built.mechanism
    key = jax.random.PRNGKey(settings.seed)
    others = built.prior.sample(jax.random.fold_in(key, 5), profiles, built.dtype)
    table = _outcome_table(env)
    grids = []
    for i in range(env.n_agents):
        sl = priors.agent_slice(env.dims, i)
        grids.append(jnp.asarray(audit_lib.grid_points(env.lo[sl], env.hi[sl], points, 4096), built.dtype))
    agents = cert.characterize(env, mech, mech.params, others, grids, outcomes=table)
    rows = [row for row, _, _ in agents]
    raw = [(rep, pe) for _, rep, pe in agents]
    out = {"name": settings.name, "environment": env.name, "mechanism": mech.name, "profiles": profiles,
           "samples_per_agent": int(len(grids[0])), "agents": rows,
           "unoptimized_code": compile_options.process_compiles_fast()}  # timings then slower than a real run  # fmt: skip
    if table is not None and env.is_separable and all(d == 1 for d in env.dims):
        out["conditions"] = conditions.check_separable(env, table, profiles=16, points=65, seed=settings.seed)
        if mech.pay is not None:
            # CE Thm 3 + z-bar: the certificate's and eq. (4)'s menus are the mechanism's payments when it is IC, IR
            index_of, _ = cert._indexed(env, mech.decide, table)
            both = jax.jit(jax.vmap(lambda m: (mech.pay(mech.params, m), index_of(mech.params, m))))
            t_mech, a_all = (np.asarray(x) for x in both(others))
            diff = {"certificate": 0.0, "boundary": 0.0}
            for i, (_, pe) in enumerate(raw):
                idx = np.asarray(rows[i]["payoff_equivalence"]["profile_indices"], int)
                a, t, r = a_all[idx], t_mech[idx, i], np.arange(len(idx))
                diff["certificate"] = max(diff["certificate"], float(np.max(np.abs(pe.cert_payments[r, a] - t))))
                diff["boundary"] = max(diff["boundary"], float(np.max(np.abs(pe.boundary_payments[r, a] - t))))
            out["payments_vs_mechanism"] = diff
            if table.ndim == 1:  # CE Thm 2 / Def 6: envelope payments (jax.grad + quadrature) at the same profiles
                env_mech = trading.envelope_payments(
                    env, mech.decide, params=mech.params, cells=64, method="quadrature"
                )
                t_env = np.asarray(jax.jit(jax.vmap(lambda m: env_mech.pay(mech.params, m)))(others))
                out["envelope_vs_mechanism"] = {"profiles": int(len(others)), "cells": 64,
                                                "max_abs_diff": float(np.max(np.abs(t_env - t_mech)))}  # fmt: skip
    return out, built, raw, grids


def certify_model(
    settings: cfg.Settings, base_dir: Path | None = None, *, profiles: int = 256, points: int = 65
) -> dict:
    """CE Thm 1 / Lemma 1 for the configured decision rule: per agent, the share of sampled ``s_-i`` at which
    the rule is pseudo-efficient (certified: payments exist that make it ex post IC there), the worst
    violating cycle with its witnessing signals, and CE Thm 3 payoff equivalence (see :mod:`jaxmech._src.models.certify`);
    for separable environments also single crossing / CE Def 7 and envelope vs the mechanism's payments."""
    return _certify_all(settings, base_dir, profiles, points)[0]


def _witness_regret(env, mech, rep, grid, i: int, dtype) -> dict:
    """The audit's regret (best misreport on the own-signal grid) of each cycle witness at the worst ``s_-i``."""
    s_minus = jnp.asarray(rep.worst_profile, dtype)
    wit = jax.vmap(lambda x: priors.replace_signal(s_minus, env.dims, i, x))(jnp.asarray(rep.worst_signals, dtype))

    def best(s):
        return jnp.max(jax.vmap(lambda m: audit_lib.regret(env, mech, mech.params, s, m, i))(grid))

    gains = np.asarray(jax.jit(jax.vmap(best))(wit))
    return {"max_gain": float(gains.max()), "gains": gains.tolist(),
            "lower_bound": rep.worst_slack / (len(rep.worst_cycle) - 1)}  # fmt: skip


def _potential_recovery(env, mech, pe, profiles_minus, i: int) -> float:
    """Affine maximizer, private values: agent i's potential is ``w(a) + sum_{j != i} v_j(a, s_-i)`` (CE Def 4);
    the spread of ``t_cert + potential`` over the outcomes that occur (0 = recovered up to a constant)."""
    k = len(env.outcome_names)
    w = jnp.asarray(mech.params)

    def potential(s):
        v = jax.vmap(lambda a: env.value(a, s))(jnp.arange(k, dtype=jnp.int32))  # (k, n)
        return w.astype(v.dtype) + jnp.sum(v, axis=1) - v[:, i]

    dev = pe.cert_payments + np.asarray(jax.vmap(potential)(profiles_minus))
    spread = np.where(pe.shared, dev, -np.inf).max(1) - np.where(pe.shared, dev, np.inf).min(1)
    return float(np.max(spread))


def _run_certify(settings, base_dir, progress, out_dir):
    """``certify`` experiment: :func:`certify_model` plus, where a cycle is found, the best misreport of each
    cycle witness under the mechanism's payments (any menu leaves one a gain >= slack / cycle length), the
    recovery of an affine maximizer's potentials, and a plot of the menu at the worst ``s_-i``."""
    ex = settings.experiment
    out, built, raw, grids = _certify_all(settings, base_dir, ex.profiles, ex.points)
    env, mech = built.env, built.mechanism
    table = _outcome_table(env)
    others = built.prior.sample(jax.random.fold_in(jax.random.PRNGKey(settings.seed), 5), ex.profiles, built.dtype)
    for i, (row, (rep, pe), grid) in enumerate(zip(out["agents"], raw, grids, strict=True)):
        if rep.fraction < 1.0:
            row["witness_regret"] = _witness_regret(env, mech, rep, grid, i, built.dtype)
        idx = np.asarray(row["payoff_equivalence"]["profile_indices"], int)
        if (
            table is None
            and settings.mechanism.kind == "affine_maximizer"
            and settings.environment.a == 0.0
            and len(idx)
        ):
            row["potential_recovery_max_dev"] = _potential_recovery(env, mech, pe, others[idx], i)
    figs = []
    if ex.plots and plots.available():
        i = int(np.argmin([r["certified_share"] for r in out["agents"]]))
        rep, pe = raw[i]
        s_minus = jnp.asarray(rep.worst_profile, built.dtype)
        sl = priors.agent_slice(env.dims, i)
        lo, hi = env.lo[sl], env.hi[sl]
        xs = np.linspace(lo[0], hi[0], 401)
        own = np.tile(np.asarray(s_minus[sl], np.float64), (len(xs), 1))
        own[:, 0] = xs
        graph = cert.outcome_graph(
            env, mech.decide, mech.params, s_minus, i, jnp.asarray(own, built.dtype), outcomes=table
        )
        t_cert = np.asarray(cert.solve_graph(graph).payments)
        names = [str(a) for a in (env.outcome_names if table is None or len(env.outcome_names) == len(table)
                                  else range(len(table)))]  # fmt: skip
        f = plots.outcome_menu(
            out_dir / "certificate.png", xs, np.asarray(graph.outcome), np.asarray(graph.values), t_cert, names,
            np.asarray(rep.worst_signals)[:, 0] if rep.fraction < 1.0 else None,
            f"{mech.name} in {env.name}: {out['agents'][i]['agent']}'s menu at s_-i = "
            f"{[round(float(x), 3) for x in np.delete(np.asarray(s_minus), np.arange(sl.start, sl.stop))]}",
        )  # fmt: skip
        figs.append(f.name)
    return out, None, figs


def certify_summary(rep: dict) -> str:
    lines = [
        f"{rep['name']}: CE Thm 1 certificate for {rep['mechanism']} in {rep['environment']} "
        f"({rep['profiles']} sampled s_-i, {rep['samples_per_agent']} own signals each)",
        "",
    ]
    for r in rep["agents"]:
        if r["certified_share"] == 1.0:
            lines.append(f"{r['agent']:<10} certified at every s_-i (pseudo-efficient: IC payments exist)")
        else:
            sig = "; ".join(", ".join(f"{x:.4g}" for x in v) for v in r["worst_signals"])
            lines.append(
                f"{r['agent']:<10} NOT certified at {1 - r['certified_share']:.1%} of s_-i; worst cycle "
                f"{' -> '.join(map(str, r['worst_cycle']))} with slack {r['worst_slack']:.4g} at profile "
                f"{[round(x, 4) for x in r['worst_profile']]} (witness own signals: {sig})"
            )
        if "payoff_equivalence" in r:
            pe = r["payoff_equivalence"]
            lines.append(
                f"{'':<10} CE Thm 3: certificate vs eq. (4) payments differ by {pe['max_deviation']:.2g} after a "
                f"constant ({pe['profiles']} s_-i, residual {pe['max_residual']:.2g}); "
                f"{r['certificates_per_s']:.0f} certificates/s"
            )
        if "witness_regret" in r:
            w = r["witness_regret"]
            lines.append(
                f"{'':<10} best misreport of a cycle witness gains {w['max_gain']:.4g} (>= slack/len {w['lower_bound']:.4g})"
            )
        if r.get("potential_recovery_max_dev") is not None:
            lines.append(
                f"{'':<10} potentials recovered up to a constant: max deviation {r['potential_recovery_max_dev']:.2g}"
            )
    if "payments_vs_mechanism" in rep:
        d = rep["payments_vs_mechanism"]
        lines.append(
            f"certificate / eq. (4) payments vs the mechanism's: max |diff| {d['certificate']:.2g} / {d['boundary']:.2g}"
        )
    if "envelope_vs_mechanism" in rep:
        lines.append(
            f"envelope (jax.grad + quadrature) vs mechanism payments: max |diff| {rep['envelope_vs_mechanism']['max_abs_diff']:.2g}"
        )
    return "\n".join(lines)


def _pm(x: dict, digits: int = 4) -> str:
    return f"{x['mean']:.{digits}g} ± {x['se']:.2g}"


def summary(metrics: dict) -> str:
    """A readable summary of any experiment's metrics."""
    kind = metrics.get("experiment", "audit")
    text = {
        "audit": _audit_summary,
        "sweep": _sweep_summary,
        "compare_deficits": _compare_summary,
        "interim": _interim_summary,
        "double_auction": _double_auction_summary,
        "search": _search_summary,
        "contributions": _contributions_summary,
        "certify": certify_summary,
        **runs_bayesian.SUMMARIES,
        **runs_pivotal.SUMMARIES,
    }[kind](metrics)
    if "conditions" in metrics:
        text += "\nconditions   " + "   ".join(
            f"{k} {v['class']}" if "class" in v else f"{k} {'yes' if v['holds'] else 'NO'}"
            for k, v in metrics["conditions"].items()
        )
    if metrics.get("plots"):
        text += f"\nplots        {metrics['plots']}"
    return text


def _sweep_summary(metrics: dict) -> str:
    rows = metrics["sweep"]["rows"]
    lines = [
        f"{metrics['name']}: sweep over {metrics['sweep']['parameter'] or 'cases'} ({len(rows)} cases)",
        "",
        f"{'case':<34} {'deficit mean ± se':>22} {'closed form':>12} {'min':>9} {'P(trade)':>9} {'regret max':>11}",
    ]
    worst = []
    for r in rows:
        for name, g in zip(("buyer", "seller"), r["regret"], strict=False):
            if g["p_above_tol"]["count"] > 0:
                worst.append(
                    f"  {r['case']}: {name} gains {g['max']:.4g} at profile {[round(x, 4) for x in g['worst_profile']]} "
                    f"by reporting {[round(x, 4) for x in g['worst_misreport']]}"
                )
    for r in rows:
        cf = f"{r['deficit_closed_form']:.5g}" if "deficit_closed_form" in r else "—"
        pt = r["outcomes"].get("trade", {}).get("p", float("nan"))
        lines.append(
            f"{r['case'][:34]:<34} {_pm(r['deficit']):>22} {cf:>12} {r['deficit']['min']:>9.3g} {pt:>9.4g} "
            f"{r['regret_max']:>11.3g}"
        )
    if worst:
        lines += ["", "worst IC violations:"] + worst
    return "\n".join(lines)


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
            f"{r['mechanism'][:30]:<30} {_pm(r['deficit']):>22} {r['deficit_min']:>9.3g} {_pm(mb):>22} "
            f"{mb['min']:>10.3g} {mb['p_below_minus_tol']['p']:>10.3g}"
        )
    return "\n".join(lines)


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
                f"{_pm(a['deficit']):>22}"
            )
    mb = metrics["comparison"]["mechanisms"][1]["minus_baseline"]
    lines.append(f"\ndeficit(interim) - deficit(ex post): {_pm(mb)} (paired, same profiles)")
    return "\n".join(lines)


def _double_auction_summary(metrics: dict) -> str:
    d = metrics["double_auction"]

    def fmt(v):
        if isinstance(v, dict):
            return ", ".join(f"{k} {fmt(x)}" for k, x in v.items())
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    def short(v):
        return not isinstance(v, (list, dict)) or (
            isinstance(v, dict) and all(isinstance(x, float) for x in v.values())
        )

    lines = [f"{metrics['name']}: CE Sec. 4.3 double auction in {metrics['environment']}"]
    lines += [f"  {k:<24} {fmt(v)}" for k, v in d.items() if short(v)]
    return "\n".join(lines)


def _contributions_summary(metrics: dict) -> str:
    c = metrics["contributions"]
    lines = [
        f"{metrics['name']}: CE Sec. 5.3 contingent contributions for {metrics['mechanism']} in {metrics['environment']}",
        f"  implementation share   {c['implementation_share']:.4f} ({c['n_mismatch']} grid profiles differ, all within "
        f"{c['mismatch_margin']:.2g} of the rule's boundary; off the boundary {c['strict_share']:.4f})",
        f"  budget                 min(taxes - c) over produced profiles = {c['budget_margin']}",
    ]
    for a in ("agent1", "agent2"):
        x = c[a]
        lines.append(
            f"  {a}: max deviation gain {x['gain']:.3g} over {c['n_deviations']} deviations (d, p); "
            f"|taxes - VCG| {x['vcg_gap']:.2g} ({x['n_full']} types that are always funded)"
        )
    return "\n".join(lines)


def _boundary_search_summary(metrics: dict) -> str:
    s, a = metrics["search"], metrics["audit"]
    lines = [
        f"{metrics['name']}: {s['family']} search in {metrics['environment']} ({s['steps']} steps, {s['seconds']:.1f} s)",
        "",
        "restored knots  " + ", ".join(f"{x:.3f}" for x in next(v for k, v in s["restored"].items() if k != "knots")),
        f"welfare         search {_pm(s['welfare'])}   first best {_pm(metrics['first_best_welfare'])}",
    ]
    if "two_price_rules" in metrics:
        tp = metrics["two_price_rules"]
        if "best_posted_price" in tp:
            bp = tp["best_posted_price"]
            lines.append(f"posted prices   best budget-balanced p = {bp['price']:.3f}: welfare {bp['welfare']:.4f}")
        else:
            lines.append("posted prices   none is budget balanced here")
        if "best" in tp:
            b = tp["best"]
            lines.append(
                f"two prices      best budget-balanced (p_b, p_s) = ({b['buyer_price']:.3f}, {b['seller_price']:.3f}): "
                f"welfare {_pm(b['welfare'])}; search - best {_pm(tp['search_minus_best'])} (paired)"
                + ("  [search warm-started there]" if s.get("warm_start") else "")
            )
    if "threshold_rules" in metrics:
        tr = metrics["threshold_rules"]
        lines.append(
            f"threshold rules best on the budget line {tuple(round(x, 4) for x in tr['best_vbar'])}: welfare "
            f"{_pm(tr['best_welfare'])}; search - best {_pm(tr['search_minus_best'])} (paired)"
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
            f"welfare         search {_pm(s['welfare'])}   grid best {_pm(g['best_welfare'])} at {fmt(g['best_vbar'])}   "
            f"search - grid {_pm(g['search_minus_best'])} (paired, {g['profiles']:,} profiles)",
            f"first best      {_pm(metrics['first_best_welfare'])}",
            f"exact audit     regret max {max(r['max'] for r in a['regret']):.3g}   IR violation max "
            f"{max(r['max'] for r in a['ir_violation']):.3g}   deficit max {d['max']:.3g} (budget balance: <= tol "
            f"{a['tol']:.1g})   P(provided) {a['outcomes']['provided']['p']:.4f}",
        ]
    )


def _audit_summary(metrics: dict) -> str:
    """A readable table of the audit."""
    a = metrics["audit"]
    lines = [
        f"{metrics['name']}: {metrics['mechanism']} in {metrics['environment']} — {a['profiles']:,} profiles, "
        f"tol {a['tol']:.2g}",
        "",
        f"{'agent':<10} {'regret mean ± se':>22} {'regret max':>11} {'P(regret>tol)':>14} "
        f"{'IR viol. max':>13} {'utility mean ± se':>22}",
    ]
    for i, name in enumerate(a["agents"]):
        r, ir, u = a["regret"][i], a["ir_violation"][i], a["utility"][i]
        lines.append(
            f"{name:<10} {_pm(r):>22} {r['max']:>11.3g} {r['p_above_tol']['p']:>14.4g} {ir['max']:>13.3g} {_pm(u):>22}"
        )
    for i, name in enumerate(a["agents"]):
        r = a["regret"][i]
        if r["p_above_tol"]["count"] > 0:
            prof = ", ".join(f"{x:.4g}" for x in r["worst_profile"])
            mis = ", ".join(f"{x:.4g}" for x in r["worst_misreport"])
            lines.append(f"  worst IC violation, {name}: profile ({prof}), misreport ({mis}), gain {r['max']:.4g}")
    d = a["deficit"]
    lines += [
        "",
        f"deficit      {_pm(d)}   [min {d['min']:.4g}, max {d['max']:.4g}], P(deficit > tol) = "
        f"{d['p_above_tol']['p']:.4g}",
        f"welfare      {_pm(a['welfare'])}   first best {_pm(a['first_best_welfare'])}   "
        f"efficiency {_pm(a['efficiency'])}",
        "outcomes     " + "   ".join(f"{k} {v['p']:.4g} ± {v['se']:.2g}" for k, v in a["outcomes"].items()),
    ]
    return "\n".join(lines)


def default_out_dir(settings: cfg.Settings) -> Path:
    """``results/<name>-<time>-<pid>``; a name that would leave ``results/`` is refused."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("results") / f"{results_dir.check_name(settings.name)}-{stamp}-{os.getpid()}"
