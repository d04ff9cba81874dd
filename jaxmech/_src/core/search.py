"""Layer 6 — gradient search for second-best mechanisms under ex post constraints (optax).

A :class:`Family` is a parameterized set of hard mechanisms together with a
smooth relaxation of its decision rule (temperature ``T``) and differentiable
per-profile constraint values. :func:`search` maximizes the relaxed objective
(expected welfare ``E[W(f_T(s), s)]``, or revenue) on fresh Monte Carlo batches
from the prior, subject to ``C(theta) <= 0`` where ``C`` is a soft maximum over
the batch of the per-state violations (ex post constraints hold in *every*
state, so the search looks at the worst states it sees, not the mean). The
constraint enters an augmented Lagrangian: a multiplier ``lambda`` (dual ascent
every ``dual_every`` steps) and a penalty ``rho`` that grows geometrically; the
temperature anneals geometrically from ``temperature_start`` to
``temperature_end``. At the end the family may restore feasibility exactly
(``Family.restore``), and the hard mechanism is returned for an exact audit.

The families themselves are the papers' models: :mod:`jaxmech._src.models.families`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmech._src.core import priors
from jaxmech._src.core.compile_options import FULL_OPTIMIZATION, supported
from jaxmech._src.core.environments import Environment
from jaxmech._src.core.mechanisms import Mechanism

Array = jax.Array
Params = Any


class Family(NamedTuple):
    """A searchable mechanism family.

    Attributes:
      name: label.
      init: initial parameters (pytree).
      soft_decide: ``soft_decide(params, s, T) -> q``: relaxed outcome (``T -> 0``: the hard rule).
      violation: ``violation(params, s) -> ()``: how much the hard mechanism breaks
        the ex post constraint at ``s`` (``<= 0`` is feasible), differentiable in ``params``.
      weight: ``weight(params, s) -> ()``: whether state ``s`` counts for the
        constraint (e.g. the project is provided), in ``[0, 1]``.
      mechanism: ``mechanism(params) -> Mechanism``: the hard mechanism to audit.
      restore: ``restore(params) -> params``: exact feasibility restoration.
      describe: ``describe(params) -> dict`` of JSON-ready numbers for the log.
      revenue: ``revenue(params, s) -> ()``: ``sum_i t_i`` of the hard mechanism's payments if
        the outcome happens (differentiable in ``params``), for ``objective = "revenue"``.
    """

    name: str
    init: Params
    soft_decide: Callable[[Params, Array, Array], Array]
    violation: Callable[[Params, Array], Array]
    weight: Callable[[Params, Array], Array]
    mechanism: Callable[[Params], Mechanism]
    restore: Callable[[Params], Params]
    describe: Callable[[Params], dict]
    revenue: Callable[[Params, Array], Array] | None = None


class SearchConfig(NamedTuple):
    """Search settings (see README / ``[search]`` in configs)."""

    steps: int = 400
    batch: int = 4096
    optimizer: str = "adam"
    learning_rate: float = 0.01
    schedule: str = "cosine"
    temperature_start: float = 0.1
    temperature_end: float = 0.002
    penalty_start: float = 10.0
    penalty_growth: float = 1.01
    penalty_max: float = 100.0
    average_tail: float = 0.3
    dual_every: int = 10
    softmax_temperature: float = 0.005
    objective: str = "welfare"
    log_every: int = 1
    constraint_grid: int = 33


OPTIMIZERS = {"adam": optax.adam, "sgd": optax.sgd, "adamw": optax.adamw, "rmsprop": optax.rmsprop}


def make_optimizer(cfg: SearchConfig) -> optax.GradientTransformation:
    """The optax optimizer named in the config with its learning-rate schedule."""
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: unknown {cfg.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    lr = cfg.learning_rate
    if cfg.schedule == "constant":
        sched = optax.constant_schedule(lr)
    elif cfg.schedule == "cosine":
        sched = optax.cosine_decay_schedule(lr, cfg.steps, alpha=0.05)
    elif cfg.schedule == "exponential":
        sched = optax.exponential_decay(lr, cfg.steps, 0.05)
    else:
        raise ValueError(f"schedule: unknown {cfg.schedule!r}; choose constant | cosine | exponential")
    return OPTIMIZERS[cfg.optimizer](sched)


def support_grid(prior: priors.Prior, points: int, dtype=jnp.float32) -> Array:
    """A full grid over the prior's support box (corners included), ``points`` per coordinate (capped at 2^16 rows).

    Ex post constraints must hold in every state; the worst states often sit at
    the corners of ``S``, which random batches rarely reach, so the search and
    the restorations evaluate constraints on this grid as well.
    """
    d = prior.size
    k = points
    while k > 2 and k**d > 1 << 16:
        k -= 1
    axes = [np.linspace(prior.lo[j], prior.hi[j], k) for j in range(d)]
    return jnp.asarray(np.array(np.meshgrid(*axes, indexing="ij")).reshape(d, -1).T, dtype)


def soft_max(x: Array, w: Array, tau: float) -> Array:
    """``tau log(sum_s w_s exp(x_s / tau) / sum_s w_s)``: a smooth maximum of ``x`` over the states with weight."""
    wsum = jnp.maximum(jnp.sum(w), 1e-12)
    m = jax.lax.stop_gradient(jnp.max(jnp.where(w > 0, x, -jnp.inf)))
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    # states without weight never enter: exp of their (possibly huge) x - m would overflow, and 0 * inf is NaN
    z = jnp.where(w > 0, x - m, 0.0)
    return m + tau * jnp.log(jnp.maximum(jnp.sum(w * jnp.exp(z / tau)), 1e-30) / wsum)


class SearchResult(NamedTuple):
    params: Params
    restored: Params
    mechanism: Mechanism
    log: dict[str, list]
    steps: int


def search(
    env: Environment,
    family: Family,
    prior: priors.Prior,
    key: Array,
    cfg: SearchConfig = SearchConfig(),
    *,
    dtype=jnp.float32,
    progress: Callable[[int, int], None] | None = None,
) -> SearchResult:
    """Augmented-Lagrangian search (see module docstring); returns the parameters, the restored ones and the log."""
    if cfg.objective not in ("welfare", "revenue"):
        raise ValueError(f"objective: must be welfare or revenue, got {cfg.objective!r}")
    if cfg.objective == "revenue" and family.revenue is None:
        raise ValueError(f"objective: family {family.name!r} does not define revenue")
    opt = make_optimizer(cfg)
    steps = cfg.steps
    temps = cfg.temperature_start * (cfg.temperature_end / cfg.temperature_start) ** (
        np.arange(steps) / max(steps - 1, 1)
    )

    grid = (
        support_grid(prior, cfg.constraint_grid, dtype)
        if cfg.constraint_grid > 1
        else jnp.zeros((0, prior.size), dtype)
    )

    def objective_terms(params, s, temperature):
        q = jax.vmap(lambda x: family.soft_decide(params, x, temperature))(s)
        if cfg.objective == "welfare":
            obj = jnp.mean(jax.vmap(env.welfare)(q, s))
        else:  # revenue: the payments collected if the outcome happens, weighted by the soft outcome
            pay = jax.vmap(lambda x: family.revenue(params, x))(s)
            obj = jnp.mean(q * pay)
        sc = jnp.concatenate([s, grid])  # constraints: the batch and the support grid
        viol = jax.vmap(lambda x: family.violation(params, x))(sc)
        w = jax.vmap(lambda x: family.weight(params, x))(sc)
        con = soft_max(viol, w, cfg.softmax_temperature)
        return obj, con, jnp.max(jnp.where(w > 0, viol, -jnp.inf))

    def lagrangian(params, s, temperature, lam, rho):
        obj, con, hard_max = objective_terms(params, s, temperature)
        # inequality AL: (rho/2) [max(0, C + lam/rho)^2 - (lam/rho)^2]
        al = 0.5 * rho * (jnp.maximum(0.0, con + lam / rho) ** 2 - (lam / rho) ** 2)
        return -obj + al, (obj, con, hard_max)

    @functools.partial(jax.jit, compiler_options=supported(FULL_OPTIMIZATION))  # the run time is the search's
    def step(params, opt_state, key, temperature, lam, rho):
        s = prior.sample(key, cfg.batch, dtype)
        (loss, aux), grads = jax.value_and_grad(lagrangian, has_aux=True)(params, s, temperature, lam, rho)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, loss, aux

    params = family.init
    opt_state = opt.init(params)
    # Polyak averaging over the last ``average_tail`` of the steps: the batch-max constraint is noisy, and
    # the average sits on the constraint boundary where single iterates scatter around it.
    tail_start = int(steps * (1.0 - cfg.average_tail))
    avg, n_avg = None, 0
    lam, rho = 0.0, cfg.penalty_start
    log: dict[str, list] = {
        k: []
        for k in ("step", "objective", "constraint", "violation_max", "multiplier", "penalty", "temperature", "params")
    }
    for k in range(steps):
        t = float(temps[k])
        with jax.numpy_dtype_promotion("standard"):  # optax's int32 step count meets float params
            params, opt_state, loss, (obj, con, hard_max) = step(
                params, opt_state, jax.random.fold_in(key, k), jnp.asarray(t, dtype), jnp.asarray(lam, dtype),
                jnp.asarray(rho, dtype),
            )  # fmt: skip
        con = float(con)
        if k >= tail_start:
            n_avg += 1
            avg = params if avg is None else jax.tree.map(lambda a, p, w=1.0 / n_avg: a + (p - a) * w, avg, params)
        if (k + 1) % cfg.dual_every == 0:
            lam = max(0.0, lam + rho * con)
            rho = min(rho * cfg.penalty_growth**cfg.dual_every, cfg.penalty_max)
        if k % cfg.log_every == 0 or k == steps - 1:
            log["step"].append(k)
            log["objective"].append(float(obj))
            log["constraint"].append(con)
            log["violation_max"].append(float(hard_max))
            log["multiplier"].append(lam)
            log["penalty"].append(rho)
            log["temperature"].append(t)
            log["params"].append(family.describe(params))
        if progress is not None:
            progress(k + 1, steps)
    if avg is not None:
        params = avg
    restored = family.restore(params)
    return SearchResult(params, restored, family.mechanism(restored), log, steps)


# --------------------------------------------------------------------------
# evaluating a family's hard rules


def welfare_table(
    env: Environment, rule_params: np.ndarray, decide, prior: priors.Prior, key: Array, n: int, dtype=jnp.float32
):
    """Expected welfare (mean, SE) of the hard rule at each parameter row, on ONE common sample of ``n`` profiles.

    Also returns the per-profile welfare of every row (``(G, n)``) so callers
    can form paired differences. Rows are looped with ``lax.map``.
    """
    s = prior.sample(key, n, dtype)

    def row(p):
        q = jax.vmap(lambda x: decide(p, x))(s)
        return jax.vmap(env.welfare)(q, s)

    w = np.asarray(jax.jit(lambda ps: jax.lax.map(row, ps))(jnp.asarray(rule_params, dtype)), np.float64)
    return w.mean(axis=1), w.std(axis=1, ddof=1) / np.sqrt(n), w
