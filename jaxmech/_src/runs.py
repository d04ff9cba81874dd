"""Layer 7 — runs: settings -> (environment, prior, mechanism) -> audit -> results folder.

``run(settings, out_dir)`` is a pure function of its inputs apart from the
files it writes: ``config.toml`` (the resolved settings), ``metrics.json`` (the
audit report) and ``manifest.json`` (versions, device, seed, git revision,
timings).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmech._src import audit as audit_lib
from jaxmech._src import config as cfg
from jaxmech._src import engine, priors
from jaxmech._src import environments as envs
from jaxmech._src import mechanisms as mechs

METRICS_SCHEMA_VERSION = 1


class Entry(NamedTuple):
    """A registered name with its options and one-line doc (for configs and `jaxmech list`)."""

    options: tuple[str, ...]
    doc: str


ENVIRONMENTS = {
    "bilateral_trade": Entry(
        ("values", "a"),
        "CE Sec. 4: buyer (agent 0) and seller (agent 1), s in [0,1]^2; values = 'linear' "
        "(v_i = s_i + a s_-i, CE Sec. 4.4) or 'module:function' returning (v_beta, v_sigma)",
    ),
    "example1": Entry((), "B Example 1: two buyers, s_i = (p_i, c_i) in [0,1]^2, V_i = p_i + c_i c_j"),
    "single_object": Entry(
        ("dims", "values"),
        "B Sec. 2: one object, n buyers with signals in [0,1]^{d_i}; values = 'module:function' returning V (n,)",
    ),
}

MECHANISMS = {
    "generalized_vcg": Entry(
        ("pivot",),
        "efficient rule + generalized VCG payments (CE Sec. 3.3, eqs. (5)-(6)); pivot = bisection | closed_form",
    ),
    "pivot": Entry(
        ("decide", "pivot"),
        "your monotone deterministic rule ('module:function', decide(params, m) -> q) + pivot payments (CE Sec. 3.3)",
    ),
    "personalized_prices": Entry(
        ("prices",),
        "B eq. (4) allocation implementing personalized prices; prices = example1 (p_j + c_j^2) | own_signal "
        "(p_j, not admissible) | 'module:function' prices(params, m) -> (n,)",
    ),
    "threshold_with_rebate": Entry(
        ("cutoff", "window", "rebate"),
        "NOT ex post IC: trade iff m_beta > cutoff, rebate for reports just above it (tests kink misreports)",
    ),
    "custom": Entry(("decide", "pay"), "your decide(params, m) -> q and pay(params, m) -> t, as 'module:function'"),
}

PRIORS = {
    "uniform": Entry(("lo", "hi"), "independent Uniform(lo, hi) per coordinate"),
    "beta": Entry(("a", "b", "lo", "hi"), "independent Beta(a, b) scaled to [lo, hi]"),
    "gaussian copula": Entry(
        ("correlation", "rho"), "[prior] correlation = D x D matrix (or rho = equicorrelation) over the marginals"
    ),
}

MISREPORTS = {
    "grid": Entry(("grid", "max_grid"), "full grid over S_i, `grid` points per dimension"),
    "random": Entry(("random",), "uniform draws from S_i per profile"),
    "kinks": Entry(("kinks", "kink_eps"), "just below / above the mechanism's pivots and thresholds"),
    "gradient": Entry(
        ("gradient_steps", "gradient_restarts", "gradient_lr"),
        "Adam ascent on u_i(m_i) from the best point found + random restarts",
    ),
}


def load_callable(spec: str, base_dir: Path | None = None, what: str = "function") -> Callable:
    """Resolve ``'package.module:function'`` or ``'path/to/file.py:function'``."""
    if ":" not in spec:
        raise cfg.ConfigError(f"{what}: expected 'module:function' or 'file.py:function', got {spec!r}")
    mod_name, fn_name = spec.rsplit(":", 1)
    try:
        if mod_name.endswith(".py"):
            path = Path(mod_name)
            if not path.is_absolute():
                cands = [Path.cwd() / path] + ([base_dir / path] if base_dir is not None else [])
                path = next((c for c in cands if c.exists()), cands[0])
            if not path.exists():
                raise cfg.ConfigError(f"{what}: file {mod_name!r} not found")
            mspec = importlib.util.spec_from_file_location(f"_jaxmech_user_{path.stem}", path)
            module = importlib.util.module_from_spec(mspec)
            mspec.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except cfg.ConfigError:
        raise
    except Exception as e:  # import errors of user code: one line
        raise cfg.ConfigError(f"{what}: cannot import {mod_name!r} ({type(e).__name__}: {e})") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise cfg.ConfigError(f"{what}: {mod_name!r} has no function {fn_name!r}")
    return fn


def _marginal(m: cfg.MarginalSettings, path: str):
    try:
        if m.kind == "uniform":
            return priors.uniform(m.lo, m.hi)
        return priors.beta(m.a, m.b, m.lo, m.hi)
    except ValueError as e:
        raise cfg.ConfigError(f"{path}: {e}") from None


def build_prior(p: cfg.PriorSettings, dims: tuple[int, ...]) -> priors.Prior:
    size = sum(dims)
    if p.marginals is not None:
        if len(p.marginals) != size:
            raise cfg.ConfigError(
                f"prior.marginals: need {size} entries (one per signal coordinate), got {len(p.marginals)}"
            )
        marg = tuple(_marginal(m, f"prior.marginals[{k}]") for k, m in enumerate(p.marginals))
    else:
        marg = _marginal(p.marginal, "prior.marginal")
    if p.correlation is not None and p.rho is not None:
        raise cfg.ConfigError("prior: give either correlation or rho, not both")
    try:
        if p.correlation is not None:
            return priors.gaussian_copula(dims, marg, p.correlation)
        if p.rho is not None:
            return priors.gaussian_copula(dims, marg, priors.equicorrelation(size, p.rho))
        return priors.independent(dims, marg)
    except ValueError as e:
        raise cfg.ConfigError(f"prior.{e}") from None


def build_environment(e: cfg.EnvironmentSettings, base_dir: Path | None) -> envs.Environment:
    if e.kind not in ENVIRONMENTS:
        raise cfg.ConfigError(_unknown("environment.kind", e.kind, ENVIRONMENTS))
    if e.kind == "bilateral_trade":
        if e.values == "linear":
            return envs.bilateral_trade(envs.linear_trade_values(e.a), name=f"bilateral_trade(a={e.a})")
        return envs.bilateral_trade(load_callable(e.values, base_dir, "environment.values"))
    if e.kind == "example1":
        return envs.example1()
    if e.dims is None:
        raise cfg.ConfigError("environment.dims: required for single_object (one signal dimension per buyer)")
    fn = load_callable(e.values, base_dir, "environment.values")
    try:
        return envs.single_object(e.dims, fn)
    except ValueError as err:
        raise cfg.ConfigError(f"environment.{err}") from None


def build_mechanism(
    m: cfg.MechanismSettings, env: envs.Environment, e: cfg.EnvironmentSettings, base_dir
) -> mechs.Mechanism:
    if m.kind not in MECHANISMS:
        raise cfg.ConfigError(_unknown("mechanism.kind", m.kind, MECHANISMS))
    try:
        if m.kind in ("generalized_vcg", "pivot"):
            pivot = None
            if m.pivot == "closed_form":
                if not (env.name.startswith("bilateral_trade(") and e.values == "linear"):
                    raise cfg.ConfigError(
                        "mechanism.pivot: closed_form is known only for bilateral_trade with linear values"
                    )
                if m.kind != "generalized_vcg":
                    raise cfg.ConfigError("mechanism.pivot: closed_form applies to generalized_vcg only")
                pivot = mechs.linear_trade_pivot(e.a)
            if m.kind == "generalized_vcg":
                return mechs.generalized_vcg(env, pivot=pivot)
            if m.decide is None:
                raise cfg.ConfigError("mechanism.decide: required for kind 'pivot'")
            return mechs.pivot_payments(env, load_callable(m.decide, base_dir, "mechanism.decide"), name="pivot")
        if m.kind == "personalized_prices":
            builtin = {"example1": mechs.example1_prices, "own_signal": mechs.own_signal_prices}
            if m.prices in builtin:
                if env.dims != (2, 2):
                    raise cfg.ConfigError(
                        f"mechanism.prices: '{m.prices}' needs two buyers with 2-d signals (example1)"
                    )
                fn = builtin[m.prices]
            else:
                fn = load_callable(m.prices, base_dir, "mechanism.prices")
            return mechs.personalized_prices(env, fn, name=f"personalized_prices({m.prices})")
        if m.kind == "threshold_with_rebate":
            if env.dims != (1, 1):
                raise cfg.ConfigError("mechanism.kind: threshold_with_rebate needs bilateral trade")
            return mechs.threshold_with_rebate(env, cutoff=m.cutoff, window=m.window, rebate=m.rebate)
        if m.decide is None or m.pay is None:
            raise cfg.ConfigError("mechanism: kind 'custom' needs both decide and pay ('module:function')")
        return mechs.Mechanism(
            "custom",
            load_callable(m.decide, base_dir, "mechanism.decide"),
            load_callable(m.pay, base_dir, "mechanism.pay"),
        )
    except ValueError as err:
        if isinstance(err, cfg.ConfigError):
            raise
        raise cfg.ConfigError(f"mechanism: {err}") from None


def _unknown(path, value, table) -> str:
    import difflib

    close = difflib.get_close_matches(value, list(table), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{path}: unknown {value!r}; choose one of {', '.join(table)}{hint}"


class Built(NamedTuple):
    env: envs.Environment
    prior: priors.Prior
    mechanism: mechs.Mechanism
    misreports: audit_lib.Misreports
    dtype: object


def build(settings: cfg.Settings, base_dir: Path | None = None) -> Built:
    """Everything a run needs, validated; raises ``ConfigError`` (one line) on bad input."""
    env = build_environment(settings.environment, base_dir)
    prior = build_prior(settings.prior, env.dims)
    mech = build_mechanism(settings.mechanism, env, settings.environment, base_dir)
    mis = audit_lib.Misreports(**cfg.to_dict(settings.audit.misreports))
    dtype = jnp.float64 if settings.precision == "float64" else jnp.float32
    _smoke_check(env, mech, prior, dtype)
    return Built(env, prior, mech, mis, dtype)


def _smoke_check(env, mech, prior, dtype) -> None:
    """Run the model once on one profile so shape errors in user functions surface as one line."""
    try:
        s = prior.sample(jax.random.PRNGKey(0), 1, dtype)[0]
        q = mech.decide(mech.params, s)
        t = jnp.asarray(mech.pay(mech.params, s))
        v = env.value(q, s)
    except Exception as e:
        raise cfg.ConfigError(
            f"model check failed on one profile: {type(e).__name__}: {str(e).splitlines()[0]}"
        ) from None
    n = env.n_agents
    if v.shape != (n,):
        raise cfg.ConfigError(f"environment.values: expected {n} values (one per agent), got shape {tuple(v.shape)}")
    if t.shape != (n,):
        raise cfg.ConfigError(f"mechanism.pay: expected {n} payments (one per agent), got shape {tuple(t.shape)}")


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

    from jaxmech import __version__

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
    }
    if info is not None:
        m.update(
            {
                "compile_s": info.compile_s,
                "run_s": info.run_s,
                "n_chunks": info.n_chunks,
                "blocks_per_chunk": info.blocks_per_chunk,
                "profiles_per_s": info.n_profiles / max(info.run_s, 1e-12),
            }
        )
    return m


def execute(settings: cfg.Settings, built: Built, *, progress=None) -> engine.AuditResult:
    """Run the audit the settings describe (no files)."""
    a = settings.audit
    return engine.audit(
        built.env,
        built.mechanism,
        built.prior,
        key=jax.random.PRNGKey(settings.seed),
        n_profiles=a.profiles,
        misreports=built.misreports,
        block_size=a.block_size,
        chunk_size=a.chunk_size,
        dtype=built.dtype,
        rtol=a.rtol,
        progress=progress,
    )


def run(settings: cfg.Settings, out_dir: Path, *, base_dir: Path | None = None, progress=None) -> dict:
    """Build, audit and write ``config.toml``, ``metrics.json``, ``manifest.json`` into ``out_dir``.

    Returns the metrics dict. Nothing is written if the settings do not build.
    """
    t0 = time.perf_counter()
    built = build(settings, base_dir)
    result = execute(settings, built, progress=progress)
    wall = time.perf_counter() - t0
    metrics = {
        "schema_version": METRICS_SCHEMA_VERSION,
        "name": settings.name,
        "environment": built.env.name,
        "mechanism": built.mechanism.name,
        "outcome_names": list(built.env.outcome_names),
        "audit": result.report,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.toml").write_text(cfg.dump_toml(cfg.to_dict(settings)))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=True) + "\n")
    (out_dir / "manifest.json").write_text(json.dumps(manifest(settings, wall, result.info), indent=2) + "\n")
    return metrics


def _pm(x: dict, digits: int = 4) -> str:
    return f"{x['mean']:.{digits}g} ± {x['se']:.2g}"


def summary(metrics: dict) -> str:
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
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("results") / f"{settings.name}-{stamp}-{os.getpid()}"
