"""Settings -> (environment, prior, mechanism, misreports) -> audit: what every experiment kind builds on.

The registries of what a config can name (environments, mechanisms, priors,
misreport strategies), the builders that turn ``[environment]`` / ``[prior]`` /
``[mechanism]`` settings into model objects (user functions loaded and traced
once, so their errors name the config key), and :func:`execute` /
:func:`execute_family`, which run the audits. :mod:`runs` and the experiment kinds
(:mod:`jaxmech._src.app.kinds`) import it; it imports none of them.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.app import config as cfg
from jaxmech._src.app import streams
from jaxmech._src.core import audit as audit_lib
from jaxmech._src.core import engine, priors
from jaxmech._src.core import environments as envs
from jaxmech._src.core import mechanisms as mechs
from jaxmech._src.models import assignment, bayesian, pivotal, provision, trading
from jaxmech._src.models import certify as cert
from jaxmech._src.models.pivotal import PivotalConfig, all_buyers, pivotal_price_of, raise_price_of, raise_prices


class Entry(NamedTuple):
    """A registered name with its options and one-line doc (for configs and `jaxmech list`); environments and
    mechanisms also carry the function that builds them from their settings (:func:`build_environment`,
    :func:`build_mechanism`)."""

    options: tuple[str, ...]
    doc: str
    build: Callable | None = None


# environment builders: (e, base_dir) -> Environment, errors as ConfigError naming the [environment] key


def _bilateral_trade(e: cfg.EnvironmentSettings, base_dir: Path | None) -> envs.Environment:
    try:
        if e.values == "linear":
            return envs.bilateral_trade(envs.linear_trade_values(e.a), name=f"bilateral_trade(a={e.a})")
        if e.values == "multiplicative":
            fn = envs.multiplicative_trade_values(e.a, e.b, e.gamma)
            return envs.bilateral_trade(fn, name=f"bilateral_trade(multiplicative a={e.a}, b={e.b}, gamma={e.gamma})")
        if e.values == "deadzone":
            fn = envs.deadzone_trade_values(e.w, e.k)
            return envs.bilateral_trade(fn, name=f"bilateral_trade(deadzone w={e.w}, k={e.k})")
        if e.values == "convex":
            return envs.bilateral_trade(envs.convex_trade_values(e.a), name=f"bilateral_trade(convex a={e.a})")
        if ":" not in e.values:
            raise cfg.ConfigError(_unknown("environment.values", e.values, VALUE_FAMILIES))
        return envs.bilateral_trade(load_callable(e.values, base_dir, "environment.values"))
    except cfg.ConfigError:
        raise
    except ValueError as err:
        raise cfg.ConfigError(f"environment.{err}") from None


def _example1(e: cfg.EnvironmentSettings, base_dir: Path | None) -> envs.Environment:
    try:
        return envs.example1(e.n)
    except ValueError as err:
        raise cfg.ConfigError(f"environment.{err}") from None


def _private_common(e: cfg.EnvironmentSettings, base_dir: Path | None) -> envs.Environment:
    try:
        dims = e.dims if e.dims is not None else (2,) * e.n
        fn = envs.private_common_values(dims, e.weights, e.own)
        return envs.single_object(dims, fn, name=f"private_common(dims={list(dims)})")
    except ValueError as err:
        raise cfg.ConfigError(f"environment.{err}") from None


def _public_good(e: cfg.EnvironmentSettings, base_dir: Path | None) -> envs.Environment:
    try:
        if e.values == "linear":
            fn = envs.linear_public_values(e.a, e.n, e.weights)
            w = "" if e.weights is None else f", w={list(e.weights)}"
            return envs.public_good(fn, e.cost, e.n, name=f"public_good(n={e.n}, a={e.a}{w}, c={e.cost})")
        if ":" not in e.values:
            raise cfg.ConfigError(
                f"environment.values: public_good takes 'linear' or 'module:function', got {e.values!r}"
            )
        return envs.public_good(load_callable(e.values, base_dir, "environment.values"), e.cost, e.n)
    except cfg.ConfigError:
        raise
    except ValueError as err:
        raise cfg.ConfigError(f"environment.{err}") from None


def _single_object(e: cfg.EnvironmentSettings, base_dir: Path | None) -> envs.Environment:
    if e.dims is None:
        raise cfg.ConfigError("environment.dims: required for single_object (one signal dimension per buyer)")
    if e.values == "linear":  # B fn. 3's one-dimensional case: V_i = s_i + a sum_{j != i} s_j
        if any(d != 1 for d in e.dims):
            raise cfg.ConfigError(f"environment.values: 'linear' single_object values need dims of 1, got {list(e.dims)}")
        fn = envs.linear_public_values(e.a, len(e.dims))
        return envs.single_object(e.dims, fn, name=f"single_object(linear, n={len(e.dims)}, a={e.a})")
    fn = load_callable(e.values, base_dir, "environment.values")
    try:
        return envs.single_object(e.dims, fn)
    except cfg.ConfigError:
        raise
    except ValueError as err:
        raise cfg.ConfigError(f"environment.{err}") from None


def _project_size(e: cfg.EnvironmentSettings, base_dir: Path | None) -> envs.Environment:
    try:
        if e.values == "linear":
            fn = envs.linear_public_values(e.a, e.n, e.weights)
            return envs.project_size(
                fn, e.cost, e.levels, e.n, name=f"project_size(n={e.n}, a={e.a}, c={e.cost}, k={e.levels})"
            )
        if ":" not in e.values:
            raise cfg.ConfigError(
                f"environment.values: project_size takes 'linear' or 'module:function', got {e.values!r}"
            )
        return envs.project_size(load_callable(e.values, base_dir, "environment.values"), e.cost, e.levels, e.n)
    except cfg.ConfigError:
        raise
    except ValueError as err:
        raise cfg.ConfigError(f"environment.{err}") from None


def _two_objects(e: cfg.EnvironmentSettings, base_dir: Path | None) -> envs.Environment:
    try:
        return assignment.two_objects(e.n, e.a)
    except ValueError as err:
        raise cfg.ConfigError(f"environment.{err}") from None


def _project_choice(e: cfg.EnvironmentSettings, base_dir: Path | None) -> envs.Environment:
    return cert.project_choice(e.projects, e.n, e.a)


def _cyclic_allocation(e: cfg.EnvironmentSettings, base_dir: Path | None) -> envs.Environment:
    return cert.cyclic_allocation()


# mechanism builders: (m, env, e, base_dir, prior, seed) -> Mechanism; build_mechanism turns a ValueError into a
# ConfigError naming [mechanism]


def _generalized_vcg_or_pivot(m, env, e, base_dir, prior, seed) -> mechs.Mechanism:
    pivot = None
    if m.pivot == "closed_form":
        if not (env.name.startswith("bilateral_trade(") and e.values == "linear"):
            raise cfg.ConfigError("mechanism.pivot: closed_form is known only for bilateral_trade with linear values")
        if m.kind != "generalized_vcg":
            raise cfg.ConfigError("mechanism.pivot: closed_form applies to generalized_vcg only")
        pivot = mechs.linear_trade_pivot(e.a)
    if m.kind == "generalized_vcg":
        return mechs.generalized_vcg(env, pivot=pivot)
    if m.decide is None:
        raise cfg.ConfigError("mechanism.decide: required for kind 'pivot'")
    return mechs.pivot_payments(env, load_callable(m.decide, base_dir, "mechanism.decide"), name="pivot")


def _price_mechanism(m, env, e, base_dir, prior, seed) -> mechs.Mechanism:
    fn, price_of, label = prices_from_settings(env, m, base_dir)
    if m.kind == "pivotal":
        return pivotal.pivotal_mechanism(env, fn, price_of=price_of, name=label)
    return mechs.personalized_prices(env, fn, price_of=price_of, name=label)


def _threshold_with_rebate(m, env, e, base_dir, prior, seed) -> mechs.Mechanism:
    if env.dims != (1, 1):
        raise cfg.ConfigError("mechanism.kind: threshold_with_rebate needs bilateral trade")
    return mechs.threshold_with_rebate(env, cutoff=m.cutoff, window=m.window, rebate=m.rebate)


def _trade(make: Callable) -> Callable:
    """A bilateral-trade mechanism builder ``make(m, env, prior, seed)``: refused unless the signals are 1-d, 1-d."""

    def builder(m, env, e, base_dir, prior, seed) -> mechs.Mechanism:
        if env.dims != (1, 1):
            raise cfg.ConfigError(f"mechanism.kind: {m.kind} needs bilateral trade")
        return make(m, env, prior, seed)

    return builder


def _interim(m, env, prior, seed) -> mechs.Mechanism:
    if prior is None or prior.cholesky is not None:
        raise cfg.ConfigError("mechanism.kind: interim needs an independent prior (no correlation / rho)")
    base = mechs.generalized_vcg(env)
    key = jax.random.PRNGKey(seed)
    return trading.interim_payments(env, base, prior, streams.key_for(key, streams.INTERIM_PAYMENTS), inner=m.inner)


def _custom(m, env, e, base_dir, prior, seed) -> mechs.Mechanism:
    if m.decide is None or m.pay is None:
        raise cfg.ConfigError("mechanism: kind 'custom' needs both decide and pay ('module:function')")
    return mechs.Mechanism(
        "custom",
        load_callable(m.decide, base_dir, "mechanism.decide"),
        load_callable(m.pay, base_dir, "mechanism.pay"),
    )


def _envelope(m, env, e, base_dir, prior, seed) -> mechs.Mechanism:
    decide = mechs.efficient_rule(env) if m.decide is None else load_callable(m.decide, base_dir, "mechanism.decide")
    return trading.envelope_payments(env, decide, cells=m.cells, method="quadrature", name="envelope")


def _equal_shares(m, env, e, base_dir, prior, seed) -> mechs.Mechanism:
    if env.outcome_names != ("not_provided", "provided"):
        raise cfg.ConfigError("mechanism.kind: equal_shares needs public_good")
    return provision.equal_shares(env)


def _threshold_contribution(m, env, e, base_dir, prior, seed) -> mechs.Mechanism:
    if env.outcome_names != ("not_provided", "provided"):
        raise cfg.ConfigError("mechanism.kind: threshold_contribution needs public_good")
    if (m.thresholds is None) == (m.sbar is None):
        raise cfg.ConfigError("mechanism: threshold_contribution needs exactly one of thresholds or sbar")
    if m.thresholds is not None:
        vbar = m.thresholds
    else:
        if len(m.sbar) != env.n_agents:
            raise cfg.ConfigError(f"mechanism.sbar: need {env.n_agents} signals, got {len(m.sbar)}")
        vbar = [float(x) for x in provision.budget_line_point(env, jnp.asarray(m.sbar, jnp.float32))]
    if len(vbar) != env.n_agents:
        raise cfg.ConfigError(f"mechanism.thresholds: need {env.n_agents} values, got {len(vbar)}")
    return provision.threshold_contribution(env, vbar)


def _expected_externality(m, env, e, base_dir, prior, seed) -> mechs.Mechanism:
    if prior is None or prior.cholesky is not None:
        raise cfg.ConfigError("mechanism.kind: expected_externality needs an independent prior (no correlation / rho)")
    key = streams.key_for(jax.random.PRNGKey(seed), streams.EXPECTED_EXTERNALITY)
    return bayesian.expected_externality(env, prior, key, inner=m.inner)


def _assignment(make: Callable) -> Callable:
    """A builder for the two-object assignment environment (``two_objects``) only."""

    def builder(m, env, e, base_dir, prior, seed) -> mechs.Mechanism:
        if e.kind != "two_objects":
            raise cfg.ConfigError(f"mechanism.kind: {m.kind} needs environment.kind = 'two_objects'")
        return make(m, env, e)

    return builder


def _serial_dictatorship(m, env, e) -> mechs.Mechanism:
    r = None if m.reserves is None else np.asarray(m.reserves, np.float64)
    if r is not None and r.size == 2 * e.n and r.size != 2:
        r = r.reshape(e.n, 2)
    if r is not None and r.shape not in ((2,), (e.n, 2)):
        raise cfg.ConfigError(f"mechanism.reserves: need 2 or {2 * e.n} numbers, got {len(m.reserves)}")
    return assignment.serial_dictatorship(e.n, e.a, r)


def _affine_maximizer_builder(m, env, e, base_dir, prior, seed) -> mechs.Mechanism:
    return _affine_maximizer(env, m, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)


ENVIRONMENTS = {
    "bilateral_trade": Entry(
        ("values", "a", "b", "gamma", "w", "k"),
        "CE Sec. 4: buyer (agent 0) and seller (agent 1), s in [0,1]^2; values = 'linear' "
        "(v_i = s_i + a s_-i, CE Sec. 4.4) | 'multiplicative' (v_beta = s_beta + a s_sigma + b s_beta s_sigma, "
        "v_sigma = gamma + s_sigma + a s_beta) | 'deadzone' (common value s_beta + s_sigma plus k max(0, s_i - s_-i - w): "
        "ties on a band) | 'convex' (v_beta = s_beta + a s_sigma^2, v_sigma = s_sigma: single crossing fails for a > 1/2) "
        "| 'module:function' returning (v_beta, v_sigma)",
        build=_bilateral_trade,
    ),
    "example1": Entry(
        ("n",),
        "B Example 1: buyers with s_i = (p_i, c_i) in [0,1]^2, V_i = p_i + c_i c_j (n > 2: c_i times the mean of the "
        "others' c_j)",
        build=_example1,
    ),
    "private_common": Entry(
        ("dims", "weights", "own"),
        "B Sec. 1: V_i = mean_k x_ik^2 + own c_i + w_i mean_k c_k; s_i = (x_i1.., c_i) in [0,1]^{d_i} (d_i may differ)",
        build=_private_common,
    ),
    "public_good": Entry(
        ("values", "a", "weights", "n", "cost"),
        "CE Sec. 5: n agents, project of cost c; values = 'linear' (v_i = w_i s_i + a sum_{j != i} s_j: increasing "
        "differences for a < min w, common values a = w, decreasing a > max w) | 'module:function' returning v (n,)",
        build=_public_good,
    ),
    "single_object": Entry(
        ("dims", "values", "a"),
        "B Sec. 2: one object, n buyers with signals in [0,1]^{d_i}; values = 'module:function' returning V (n,) | "
        "'linear' (dims all 1: V_i = s_i + a sum_{j != i} s_j, B fn. 3)",
        build=_single_object,
    ),
    "project_size": Entry(
        ("values", "a", "weights", "n", "cost", "levels"),
        "CE Def 6 with k >= 3 ordered outcomes: a public project of size q in {0..k-1} (k = levels), v_i(q, s) = "
        "q v_i(s), cost c q^2 / 2; values = 'linear' (v_i = w_i s_i + a sum_{j != i} s_j) | 'module:function'",
        build=_project_size,
    ),
    "two_objects": Entry(
        ("n", "a"),
        "B Sec. 3, eq. (5): two objects A, B and n unit-demand buyers, s_i = (s_iA, s_iB) in [0,1]^2, "
        "V_iX = s_iX + a mean_{j != i} s_jX; outcomes = every assignment (7 for n = 2)",
        build=_two_objects,
    ),
    "project_choice": Entry(
        ("projects", "n", "a"),
        "CE Sec. 2.3 finite outcomes: choose one of k projects; s_i in [0,1]^k, v_i(q, s) = s_iq + a mean_j s_jq",
        build=_project_choice,
    ),
    "cyclic_allocation": Entry(
        (),
        "CE Thm 1 counterexample: 2 agents, 3 outcomes; the efficient rule is NOT ex post IC (a positive cycle)",
        build=_cyclic_allocation,
    ),
}

MECHANISMS = {
    "generalized_vcg": Entry(
        ("pivot",),
        "efficient rule + generalized VCG payments (CE Sec. 3.3, eqs. (5)-(6)); pivot = bisection | closed_form",
        build=_generalized_vcg_or_pivot,
    ),
    "pivot": Entry(
        ("decide", "pivot"),
        "your monotone deterministic rule ('module:function', decide(params, m) -> q) + pivot payments (CE Sec. 3.3)",
        build=_generalized_vcg_or_pivot,
    ),
    "personalized_prices": Entry(
        ("prices", "raise_by", "raise_shape"),
        "B eq. (4) allocation implementing personalized prices; prices = example1 (p_j + c_j^2) | own_signal "
        "(p_j, not admissible) | 'module:function' prices(params, m) -> (n,); raised by eps_i >= 0 (B Sec. 3)",
        build=_price_mechanism,
    ),
    "pivotal": Entry(
        ("method", "rays", "refine", "raise_by", "raise_shape"),
        "B Sec. 4 Theorem / 4.1: the construction's prices t*_i = max_j V^m_ij(lam*_ij) for any V (Assumptions 1-3), "
        "allocation by eq. (4)",
        build=_price_mechanism,
    ),
    "threshold_with_rebate": Entry(
        ("cutoff", "window", "rebate"),
        "NOT ex post IC: trade iff m_beta > cutoff, rebate for reports just above it (tests kink misreports)",
        build=_threshold_with_rebate,
    ),
    "serial_dictatorship": Entry(
        ("reserves",),
        "two_objects: buyers pick in turn among the objects left, X at V_kX(r_kX, m_-k) (full range, ex post IC, "
        "B fn. 12)",
        build=_assignment(_serial_dictatorship),
    ),
    "private_vcg": Entry(
        (),
        "NOT ex post IC: efficient assignment, VCG payments computed as if the reported values were private",
        build=_assignment(lambda m, env, e: assignment.private_vcg(env)),
    ),
    "custom": Entry(
        ("decide", "pay"),
        "your decide(params, m) -> q and pay(params, m) -> t, as 'module:function'",
        build=_custom,
    ),
    "efficient_trade": Entry(
        ("tie_break",),
        "bilateral trade: trade iff v_beta > v_sigma (tie_break = no_trade) or >= (trade); pivot payments",
        build=_trade(lambda m, env, prior, seed: trading.efficient_trade(env, tie_break=m.tie_break)),
    ),
    "deficit_minimizing": Entry(
        ("table_points",),
        "CE Thm 6: cutoff g_* = sup of the monotone efficient cutoffs, generalized VCG payments",
        build=_trade(lambda m, env, prior, seed: trading.deficit_minimizing(env, points=m.table_points)),
    ),
    "shifted_cutoff": Entry(
        ("shift",),
        "bilateral trade: trade iff m_beta > m_sigma + shift, generalized VCG payments",
        build=_trade(lambda m, env, prior, seed: trading.shifted_cutoff(env, m.shift)),
    ),
    "band_trade": Entry(
        ("width",),
        "NOT monotone (CE Thm 2): trade iff 0 < m_beta - m_sigma < width",
        build=_trade(lambda m, env, prior, seed: trading.band_trade(env, m.width)),
    ),
    "randomized_ramp": Entry(
        ("width", "cells", "subsidy"),
        "CE Lemma 5: trade with probability clip((m_beta - m_sigma + width) / (2 width), 0, 1), envelope payments "
        "(plus subsidy * m_-i to each agent)",
        build=_trade(lambda m, env, prior, seed: trading.randomized_ramp(env, m.width, cells=m.cells, subsidy=m.subsidy)),
    ),
    "lemma5_reduction": Entry(
        ("width",),
        "CE Lemma 5: the randomized_ramp rule reduced to T = f^{-1}(1)",
        build=_trade(lambda m, env, prior, seed: trading.lemma5_reduction(env, m.width)),
    ),
    "envelope": Entry(
        ("decide", "cells"),
        "any rule of a separable model with 1-d signals (decide = 'module:function', default the efficient rule; "
        "randomized rules too) + the envelope payments t_i = h_i V_i - int h_i dV_i (CE Thm 2, lowest type's IR "
        "binding; Gauss-Legendre on `cells` cells, split at jumps): ex post IC iff the rule is monotone",
        build=_envelope,
    ),
    "threshold_contribution": Entry(
        ("thresholds", "sbar"),
        "CE Def 12 / Thm 9: provide iff v_i(m) >= vbar_i for all i, generalized VCG payments; vbar = thresholds "
        "or v(sbar)",
        build=_threshold_contribution,
    ),
    "equal_shares": Entry(
        (),
        "public good: efficient rule, equal cost shares c/n when provided (CE Thm 8(3))",
        build=_equal_shares,
    ),
    "interim": Entry(
        ("inner",),
        "CE Sec. 3.4 / Cor. 1: generalized VCG with each payment replaced by its interim expectation "
        "(Bayesian IC, not ex post IC); independent prior",
        build=_trade(_interim),
    ),
    "affine_maximizer": Entry(
        ("potentials",),
        "finite outcomes: argmax_a sum_i v_i(a, m) + w(a) (w = potentials, default 0: efficient), payments from its "
        "CE Thm 1 certificate, z-bar normalized (generalized VCG, CE Thm 3)",
        build=_affine_maximizer_builder,
    ),
    "expected_externality": Entry(
        ("inner",),
        "d'Aspremont-Gerard-Varet: efficient rule, expected-externality transfers from the interim envelope formula "
        "(Bayesian IC, exactly budget balanced, not ex post IC); independent prior",
        build=_expected_externality,
    ),
}


VALUE_FAMILIES = {"linear": None, "multiplicative": None, "deadzone": None, "convex": None}

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
    return _user_function(fn, spec, what)


def _user_function(fn: Callable, spec: str, what: str) -> Callable:
    """``fn`` whose own errors read as one line naming the config key and the function, with the user's message."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (*_NEEDS_CONCRETE, cfg.ConfigError):
            raise  # a traced family member needs concrete numbers / already one line
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else "(no message)"
            raise cfg.ConfigError(f"{what} = {spec!r} raised {type(e).__name__}: {msg}") from None

    return call


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
    entry = ENVIRONMENTS.get(e.kind)
    if entry is None:
        raise cfg.ConfigError(_unknown("environment.kind", e.kind, ENVIRONMENTS))
    return entry.build(e, base_dir)


def build_mechanism(
    m: cfg.MechanismSettings,
    env: envs.Environment,
    e: cfg.EnvironmentSettings,
    base_dir,
    prior: priors.Prior | None = None,
    seed: int = 0,
) -> mechs.Mechanism:
    entry = MECHANISMS.get(m.kind)
    if entry is None:
        raise cfg.ConfigError(_unknown("mechanism.kind", m.kind, MECHANISMS))
    try:
        return entry.build(m, env, e, base_dir, prior, seed)
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
    mech = build_mechanism(settings.mechanism, env, settings.environment, base_dir, prior, settings.seed)
    mis = audit_lib.Misreports(**cfg.to_dict(settings.audit.misreports))
    dtype = jnp.float64 if settings.precision == "float64" else jnp.float32
    _smoke_check(env, mech, prior, dtype)
    return Built(env, prior, mech, mis, dtype)


def _smoke_check(env, mech, prior, dtype) -> None:
    """Trace the model once on one profile so shape errors in user functions surface as one line.

    Abstract evaluation (``jax.eval_shape``): the same trace the audit's jit makes, without compiling
    or running anything (an eager run of B's ray-search prices compiled op by op for ~30 s)."""

    def model(key):
        s = prior.sample(key, 1, dtype)[0]
        q, t = mechs.decide_and_pay(mech, mech.params, s)
        return jnp.asarray(t), env.value(q, s)

    try:
        t, v = jax.eval_shape(model, jax.random.PRNGKey(0))
    except _NEEDS_CONCRETE:
        raise  # built with traced numbers (a family, :func:`execute_family`): not the user's error
    except Exception as e:
        raise cfg.ConfigError(
            f"model check failed on one profile: {type(e).__name__}: {str(e).splitlines()[0]}"
        ) from None
    n = env.n_agents
    if v.shape != (n,):
        raise cfg.ConfigError(f"environment.values: expected {n} values (one per agent), got shape {tuple(v.shape)}")
    if t.shape != (n,):
        raise cfg.ConfigError(f"mechanism.pay: expected {n} payments (one per agent), got shape {tuple(t.shape)}")


def prices_from_settings(env: envs.Environment, m, base_dir=None):
    """``(prices, price_of, label)`` of a ``[mechanism]`` of kind ``personalized_prices`` or ``pivotal`` (with eps).

    ``prices(params, m) -> (n,)``; ``price_of(params, m, i)`` is one buyer's price alone (``None`` where the
    rule has no cheaper way than ``prices(params, m)[i]``)."""
    price_of = None
    if m.kind == "pivotal":
        try:
            price_of = pivotal_price_of(env, config=PivotalConfig(rays=m.rays, refine=m.refine), method=m.method)
            fn = all_buyers(price_of, env.n_agents)  # = pivotal_prices, on the same per-buyer searches
        except ValueError as e:
            raise cfg.ConfigError(f"mechanism: {e}") from None
        label = "pivotal" if m.method == "rays" else f"pivotal({m.method})"
    elif m.kind == "personalized_prices":
        builtin = {"example1": mechs.example1_prices, "own_signal": mechs.own_signal_prices}
        if m.prices in builtin:
            if env.dims != (2, 2):
                raise cfg.ConfigError(f"mechanism.prices: '{m.prices}' needs two buyers with 2-d signals (example1)")
            fn = builtin[m.prices]
        else:
            fn = load_callable(m.prices, base_dir, "mechanism.prices")
        label = f"personalized_prices({m.prices})"
    else:
        raise cfg.ConfigError(f"mechanism.kind: the pivotal experiment compares price mechanisms, got {m.kind!r}")
    traced = isinstance(m.raise_by, jax.core.Tracer)  # a family of runs over raise_by (execute_family)
    if traced or m.raise_by > 0:
        eps = m.raise_by
        if m.raise_shape == "constant":

            def by(x):
                return jnp.full((env.n_agents,), eps, x.dtype)

            label += "" if traced else f" + {eps:g}"
        else:
            sizes = np.asarray(env.dims, np.float64)

            def by(x):  # eps times the mean of the others' signals
                own = jnp.stack([jnp.sum(x[priors.agent_slice(env.dims, i)]) for i in range(env.n_agents)])
                return eps * (jnp.sum(x) - own) / jnp.asarray(env.size - sizes, x.dtype)

            label += "" if traced else f" + {eps:g} mean(s_-i)"
        fn = raise_prices(fn, by)
        price_of = raise_price_of(price_of, by) if price_of is not None else None
    return fn, price_of, label


def outcome_table(env: envs.Environment):
    """Finite outcome rows for CE Thm 1 certificates: trade / provision (0, 1), an object (nobody, buyer i), a
    project's sizes (0, ..., k - 1)."""
    if is_trade(env) or is_public(env):
        return jnp.asarray([0.0, 1.0])
    if env.outcome_names and env.outcome_names[0] == "size0":  # project_size: q = 0, 1, ..., k - 1
        return jnp.arange(len(env.outcome_names), dtype=jnp.float32)
    if env.outcome_names and env.outcome_names[0] == "a0":
        n = env.n_agents
        return jnp.concatenate([jnp.zeros((1, n)), jnp.eye(n)])
    return None


def _affine_maximizer(env: envs.Environment, m: cfg.MechanismSettings, dtype) -> mechs.Mechanism:
    """``f(m) = argmax_a sum_i v_i(a, m) + w(a)`` on a finite outcome set, payments from its certificate (CE Thm 3)."""
    table = outcome_table(env)
    k = len(env.outcome_names) if table is None else int(table.shape[0])
    if table is not None or env.is_separable:
        raise cfg.ConfigError(
            "mechanism.kind: affine_maximizer needs a finite-outcome environment (project_choice, ...)"
        )
    w = np.zeros(k) if m.potentials is None else np.asarray(m.potentials, np.float64)
    if w.shape != (k,):
        raise cfg.ConfigError(f"mechanism.potentials: need {k} values (one per outcome), got {len(w)}")

    def decide(w, r):
        welfare = jax.vmap(lambda a: jnp.sum(env.value(a, r)))(jnp.arange(k, dtype=jnp.int32))
        return jnp.argmax(welfare + w.astype(welfare.dtype)).astype(jnp.int32)

    samples = [jnp.asarray(audit_lib.grid_points(env.lo[sl], env.hi[sl], 9, 729), dtype)
               for sl in (priors.agent_slice(env.dims, i) for i in range(env.n_agents))]  # fmt: skip
    name = "efficient" if not np.any(w) else f"affine_maximizer(w={w.tolist()})"
    return cert.certificate_payments(env, decide, samples, params=jnp.asarray(w, dtype), name=name)


def is_trade(env: envs.Environment) -> bool:
    return env.dims == (1, 1) and env.outcome_names == ("no_trade", "trade")


def is_public(env: envs.Environment) -> bool:
    return env.outcome_names == ("not_provided", "provided")


def stream_options(settings: cfg.Settings, *, progress=None, checkpoint=None) -> engine.StreamOptions:
    """The ``[audit]`` section's streaming settings as one :class:`engine.StreamOptions` (every audit of a run)."""
    a = settings.audit
    return engine.StreamOptions(block_size=a.block_size, chunk_size=a.chunk_size, progress=progress,
                                segment_blocks=a.segment_blocks, checkpoint=checkpoint, fast_compile=a.fast_compile)  # fmt: skip


def execute(settings: cfg.Settings, built: Built, *, progress=None, checkpoint=None) -> engine.AuditResult:
    """Run the audit the settings describe (no files besides the optional ``reduction.Checkpoint``)."""
    return engine.audit(
        built.env,
        built.mechanism,
        built.prior,
        key=jax.random.PRNGKey(settings.seed),
        n_profiles=settings.audit.profiles,
        misreports=built.misreports,
        dtype=built.dtype,
        rtol=settings.audit.rtol,
        options=stream_options(settings, progress=progress, checkpoint=checkpoint),
    )


# Sections whose float settings may vary within one compiled family of audits (see :func:`families`).
_FAMILY_SECTIONS = ("environment", "prior", "mechanism")
# What a builder raises when it needs a number of a family as a Python value (then each run compiles alone).
_NEEDS_CONCRETE = (
    jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError, jax.errors.TracerIntegerConversionError,
)  # fmt: skip


def _leaves(d: dict, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_leaves(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = v
    return out


def _float_differences(a: dict, b: dict) -> set | None:
    """The paths where two flattened settings differ, if all are floats in :data:`_FAMILY_SECTIONS`; else ``None``."""
    if a.keys() != b.keys():
        return None
    diff = set()
    for path, x in a.items():
        y = b[path]
        if x == y and type(x) is type(y):
            continue
        if path[0] in _FAMILY_SECTIONS and type(x) is float and type(y) is float:
            diff.add(path)
        else:
            return None
    return diff


def families(settings: Sequence[cfg.Settings]) -> list[tuple[list[int], list[tuple[str, ...]]]]:
    """Group runs whose settings differ only in float environment / prior / mechanism values: ``(indices, paths)``."""
    groups: list[tuple[dict, list[int], set]] = []
    for k, s in enumerate(settings):
        flat = _leaves(cfg.to_dict(s))
        for rep, idx, varying in groups:
            diff = _float_differences(rep, flat)
            if diff is not None:
                idx.append(k)
                varying |= diff
                break
        else:
            groups.append((flat, [k], set()))
    return [(idx, sorted(varying)) for _, idx, varying in groups]


def _get_path(obj, path: tuple[str, ...]):
    for name in path:
        obj = getattr(obj, name)
    return obj


def _replace_path(obj, path: tuple[str, ...], value):
    if not path:
        return value
    return dataclasses.replace(obj, **{path[0]: _replace_path(getattr(obj, path[0]), path[1:], value)})


def family_model(base: cfg.Settings, paths: Sequence[tuple[str, ...]], base_dir: Path | None, dtype):
    """``model(theta) -> (env, mech, prior)`` for the runs of one family (``theta``: the numbers at ``paths``, in
    order), or ``None`` where a builder needs them concretely. Tried abstractly, nothing compiled: :func:`build`
    runs the model on one profile (:func:`_smoke_check`)."""

    def model(theta):
        s = base
        for p, v in zip(paths, theta, strict=True):
            s = _replace_path(s, p, v)
        b = build(s, base_dir)
        return b.env, b.mechanism, b.prior

    try:
        jax.eval_shape(lambda th: (model(th), ())[1], tuple(jnp.asarray(_get_path(base, p), dtype) for p in paths))
    except _NEEDS_CONCRETE:
        return None
    return model


def execute_family(
    settings: Sequence[cfg.Settings], builts: Sequence[Built], base_dir: Path | None = None, *, progress=None
) -> list[engine.AuditResult]:
    """:func:`execute` for each run, one compiled kernel per family of runs that differ only in float
    environment / prior / mechanism values (e.g. a sweep over ``environment.a``): those numbers become arguments of
    the kernel (:func:`engine.audit_family`). A family whose builders are not traceable in them (e.g. a value a
    builder needs as a Python number) falls back to one compile per run, with the same numbers."""
    results: list[engine.AuditResult | None] = [None] * len(settings)
    for idx, paths in families(settings):
        base, first = settings[idx[0]], builts[idx[0]]
        model = family_model(base, paths, base_dir, first.dtype) if len(idx) > 1 and paths else None
        if model is None:
            for k in idx:
                results[k] = execute(settings[k], builts[k], progress=progress)
            continue
        a = base.audit
        thetas = [tuple(_get_path(settings[k], p) for p in paths) for k in idx]
        out = engine.audit_family(
            model, thetas, key=jax.random.PRNGKey(base.seed), n_profiles=a.profiles, misreports=first.misreports,
            dtype=first.dtype, rtol=a.rtol, options=stream_options(base, progress=progress),
            built=[(builts[k].env, builts[k].mechanism, builts[k].prior) for k in idx],
        )  # fmt: skip
        for k, r in zip(idx, out, strict=True):
            results[k] = r
    return results


def prior_family_key(settings: cfg.Settings, built: Built, base_dir: Path | None = None) -> str | None:
    """Runs with the same key differ only in ``[prior]`` and may share compiled programs with the prior's numbers as
    arguments (:class:`priors.PriorArrays`); ``None`` where the mechanism is built from the prior (e.g.
    ``interim``: it closes over the prior's numbers)."""
    try:
        build_mechanism(settings.mechanism, built.env, settings.environment, base_dir, None, settings.seed)
    except cfg.ConfigError:
        return None
    rest = {k: v for k, v in cfg.to_dict(settings).items() if k != "prior"}
    return json.dumps(rest, sort_keys=True, default=str)


def execute_over_priors(
    settings: Sequence[cfg.Settings], builts: Sequence[Built], base_dir: Path | None = None, *, progress=None
) -> list[engine.AuditResult]:
    """:func:`execute` for each run; runs that differ only in ``[prior]`` (uniform or Beta marginals, independent
    or a Gaussian copula: :func:`prior_family_key`) through one audit kernel, the prior's numbers its argument
    (:class:`priors.PriorArrays`, :func:`engine.audit_family`); the others as :func:`execute_family` runs them.
    The same numbers as :func:`execute` up to float rounding, except an independent Beta marginal: drawn by its
    quantile there (:func:`priors.sample_arrays`), by ``jax.random.beta`` in :meth:`priors.Prior.sample`."""
    groups: dict[str | None, list[int]] = {}
    for k, (s, b) in enumerate(zip(settings, builts, strict=True)):
        groups.setdefault(prior_family_key(s, b, base_dir), []).append(k)
    results: list[engine.AuditResult | None] = [None] * len(settings)
    rest = []
    for key, idx in groups.items():
        if key is None or len(idx) < 2:
            rest.extend(idx)
            continue
        base, first = settings[idx[0]], builts[idx[0]]
        dims = tuple(first.prior.dims)

        def model(arrays, env=first.env, mech=first.mechanism, dims=dims):
            return env, mech, priors.TracedPrior(dims, arrays)

        out = engine.audit_family(
            model, [priors.prior_arrays(builts[k].prior, first.dtype) for k in idx], key=jax.random.PRNGKey(base.seed),
            n_profiles=base.audit.profiles, misreports=first.misreports, dtype=first.dtype, rtol=base.audit.rtol,
            options=stream_options(base, progress=progress),
            built=[(builts[k].env, builts[k].mechanism, builts[k].prior) for k in idx],
        )  # fmt: skip
        for k, r in zip(idx, out, strict=True):
            results[k] = r
    if rest:
        rest.sort()
        for k, r in zip(rest, execute_family([settings[k] for k in rest], [builts[k] for k in rest], base_dir,
                                             progress=progress), strict=True):  # fmt: skip
            results[k] = r
    return results


def total_info(results: Sequence[engine.AuditResult]) -> engine.StreamInfo:
    """The first audit's run info with the compile and run times of all (the manifest's figures for a sweep)."""
    infos = [r.info for r in results]
    return infos[0]._replace(compile_s=sum(i.compile_s for i in infos), run_s=sum(i.run_s for i in infos))


def settings_with(settings: cfg.Settings, overrides: Sequence[str]) -> cfg.Settings:
    """The settings with ``path=value`` overrides applied (as ``--set`` does), the experiment reset to an audit."""
    data = cfg.to_dict(settings)
    data.pop("experiment", None)
    for item in overrides:
        if "=" not in item:
            raise cfg.ConfigError(f"experiment case override {item!r}: expected path.to.key=value")
        k, v = item.split("=", 1)
        cfg.set_path(data, k.strip(), v.strip())
    return cfg.parse(cfg.Settings, data)


def sweep_cases(settings: cfg.Settings) -> list[tuple[str, float | None, cfg.Settings]]:
    ex = settings.experiment
    cases: list[tuple[str, float | None, cfg.Settings]] = []
    if ex.parameter is not None:
        if not ex.values:
            raise cfg.ConfigError("experiment.values: a sweep over experiment.parameter needs a list of values")
        for v in ex.values:
            try:
                cases.append((f"{ex.parameter}={v:g}", v, settings_with(settings, [f"{ex.parameter}={v!r}"])))
            except cfg.ConfigError as e:
                raise cfg.ConfigError(f"experiment.parameter: {e}") from None
    for k, c in enumerate(ex.cases):
        try:
            cases.append((c.name, None, settings_with(settings, c.set)))
        except cfg.ConfigError as e:
            raise cfg.ConfigError(f"experiment.cases[{k}] ({c.name}): {e}") from None
    if not cases:
        raise cfg.ConfigError("experiment: a sweep needs parameter + values, or cases")
    return cases
