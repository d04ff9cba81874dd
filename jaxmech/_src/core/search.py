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

Families here: :func:`threshold_family` (CE Def 12, budget balance in every
provided state, CE Thm 9).
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
from jaxmech._src.models import provision

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
    return m + tau * jnp.log(jnp.maximum(jnp.sum(w * jnp.exp((x - m) / tau)), 1e-30) / wsum)


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
# families


def threshold_family(env: Environment, init=None) -> Family:
    """Threshold contribution rules (CE Def 12) over the pivotal valuations ``vbar``, budget balance in every provided state.

    Relaxation: ``f_T(s) = prod_i sigmoid((v_i(s) - vbar_i) / T)``. Constraint:
    the deficit ``c - sum_i t_i(s)`` of the generalized VCG payments (differentiable
    in ``vbar``, :func:`jaxmech._src.models.provision.threshold_payments`) in every
    state where the hard rule provides. Restoration: if the worst deficit over a
    large sample is positive, raise every ``vbar_i`` by ``(c - sum vbar)^+ / n``
    (then ``t_i >= vbar_i`` gives ``sum t >= c`` in every provided state).
    """
    provision._check_public(env, "threshold_family")
    n = env.n_agents
    c = float(env.cost(jnp.ones(())))
    decide = provision.threshold_rule(env)
    if init is None:
        init = jnp.full((n,), c / n)
    init = jnp.asarray(init, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)

    def soft_decide(vbar, s, temperature):
        return jnp.prod(jax.nn.sigmoid((env.values(s) - vbar) / temperature))

    def violation(vbar, s):
        return c - jnp.sum(provision.threshold_payments(env, vbar, s))

    def weight(vbar, s):
        return decide(jax.lax.stop_gradient(vbar), s)

    def restore(vbar):
        gap = c - float(jnp.sum(vbar))
        return vbar + max(gap, 0.0) / n

    def describe(vbar):
        return {"vbar": [float(v) for v in vbar], "sum_minus_cost": float(jnp.sum(vbar)) - c}

    def revenue(vbar, s):
        return jnp.sum(provision.threshold_payments(env, vbar, s))

    return Family(
        "threshold_contribution", init, soft_decide, violation, weight,
        lambda vbar: provision.threshold_contribution(env, vbar), restore, describe, revenue,
    )  # fmt: skip


def budget_line_grid(env: Environment, points: int) -> np.ndarray:
    """Pivotal valuations on the budget line ``sum vbar = c`` (CE Thm 9): a grid of ``points`` per free coordinate.

    ``n = 2``: ``vbar_1`` over the range of ``v_1`` on ``[0, 1]^2``; ``n = 3``: a
    triangular grid over ``(vbar_1, vbar_2)``. Returns shape ``(G, n)``.
    """
    n = env.n_agents
    c = float(env.cost(jnp.ones(())))
    corners = np.array(np.meshgrid(*[[0.0, 1.0]] * n, indexing="ij")).reshape(n, -1).T
    vals = np.asarray(jax.vmap(env.values)(jnp.asarray(corners, jnp.float32)))
    lo, hi = vals.min(axis=0), vals.max(axis=0)
    axes = [np.linspace(lo[i], hi[i], points) for i in range(n - 1)]
    free = np.array(np.meshgrid(*axes, indexing="ij")).reshape(n - 1, -1).T
    last = c - free.sum(axis=1, keepdims=True)
    grid = np.concatenate([free, last], axis=1)
    ok = (grid[:, -1] >= lo[-1]) & (grid[:, -1] <= hi[-1])
    return grid[ok]


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


# --------------------------------------------------------------------------
# monotone piecewise-linear boundaries (richer families)


def monotone_knots(params: dict, knots: Array, increasing: bool) -> Array:
    """Values of a monotone piecewise-linear function at ``knots``: ``y0 +/- cumsum(softplus(steps))``."""
    steps = jax.nn.softplus(params["steps"])
    sign = 1.0 if increasing else -1.0
    return params["y0"] + sign * jnp.concatenate([jnp.zeros((1,), steps.dtype), jnp.cumsum(steps)])


def _pl_init(knots: np.ndarray, ys: np.ndarray, increasing: bool) -> dict:
    """Parameters whose function interpolates ``ys`` (made strictly monotone) at ``knots``."""
    d = np.diff(ys) * (1.0 if increasing else -1.0)
    d = np.maximum(d, 1e-3)
    raw = np.log(np.expm1(d))  # softplus^{-1}
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    return {"y0": jnp.asarray(ys[0], dtype), "steps": jnp.asarray(raw, dtype)}


def _shift_restore(violation_max: Callable[[float], float], hi: float = 1.0, iters: int = 40) -> float:
    """Smallest ``delta in [0, hi]`` with ``violation_max(delta) <= 0`` (bisection; ``hi`` if none found)."""
    if violation_max(0.0) <= 0:
        return 0.0
    lo_, hi_ = 0.0, hi
    for _ in range(iters):
        mid = 0.5 * (lo_ + hi_)
        if violation_max(mid) <= 0:
            hi_ = mid
        else:
            lo_ = mid
    return hi_


def _shift_restorer(prior, key, n, violation, weight, dtype, grid_points: int = 129):
    """Restoration for boundary families: raise ``y0`` by the least ``delta`` that makes the constraint hold
    on ``n`` fresh profiles plus a ``grid_points`` support grid (corners included)."""
    sample = jnp.concatenate([prior.sample(key, n, dtype), support_grid(prior, grid_points, dtype)])

    @jax.jit
    def worst(params, delta):
        p = {"y0": params["y0"] + delta, "steps": params["steps"]}
        v = jax.vmap(lambda s: violation(p, s))(sample)
        w = jax.vmap(lambda s: weight(p, s))(sample)
        return jnp.max(jnp.where(w > 0, v, -jnp.inf))

    def restore(params):
        delta = _shift_restore(lambda d: float(worst(params, d)) - 1e-6, hi=2.0)
        return {"y0": params["y0"] + delta, "steps": params["steps"]}

    return restore


def trade_cutoff_family(
    env: Environment, prior: priors.Prior, key: Array, *, knots: int = 9, init=None, restore_profiles: int = 1 << 16
) -> Family:
    """Monotone cutoff trading rules (CE Sec. 4.2) with a piecewise-linear non-decreasing cutoff ``g``.

    Trade iff ``s_beta > g(s_sigma)``; generalized VCG payments (CE eqs. (5)-(6)):
    ``t_beta = v_beta(g(s_sigma), s_sigma)``, ``t_sigma = -v_sigma(s_beta, g^{-1}(s_beta))`` — ex post IC and
    IR by construction. Objective: expected gains from trade. Constraint: ex post
    budget balance, ``deficit = v_sigma(s_beta, g^{-1}(s_beta)) - v_beta(g(s_sigma), s_sigma) <= 0`` in every
    trading state. Restoration: raise ``g`` by the smallest ``delta`` that makes the
    deficit non-positive on ``restore_profiles`` fresh profiles (then the exact audit
    checks fresh ones).
    """
    from jaxmech._src.models import trading

    trading._check_trade(env, "trade_cutoff_family")
    xs = np.linspace(0.0, 1.0, knots)
    params0 = _pl_init(xs, np.asarray(init if init is not None else xs, np.float64), True)
    kx = jnp.asarray(xs, params0["y0"].dtype)

    def g_of(params):
        ys = monotone_knots(params, kx, True)
        return (lambda y: jnp.interp(y, kx, ys)), (lambda sb: jnp.interp(sb, ys, kx))

    def soft_decide(params, s, temperature):
        g, _ = g_of(params)
        return jax.nn.sigmoid((s[0] - g(s[1])) / temperature)

    def violation(params, s):
        g, ginv = g_of(params)
        vb = env.values(jnp.stack([jnp.clip(g(s[1]), 0.0, 1.0), s[1]]))[0]
        vs = env.values(jnp.stack([s[0], jnp.clip(ginv(s[0]), 0.0, 1.0)]))[1]
        return vs - vb

    def weight(params, s):
        g, _ = g_of(jax.lax.stop_gradient(params))
        return (s[0] > g(s[1])).astype(s.dtype)

    def mechanism(params):
        g, ginv = g_of(params)
        return trading.cutoff_mechanism(env, g, g_inverse=ginv, name="searched_cutoff")

    restore = _shift_restorer(prior, key, restore_profiles, violation, weight, params0["y0"].dtype)

    def describe(params):
        ys = monotone_knots(params, kx, True)
        return {"knots": xs.tolist(), "g": [float(y) for y in ys]}

    def revenue(params, s):  # the designer's net receipts t_beta + t_sigma = -deficit
        return -violation(params, s)

    return Family("monotone_cutoff", params0, soft_decide, violation, weight, mechanism, restore, describe, revenue)


def provision_boundary_family(
    env: Environment, prior: priors.Prior, key: Array, *, knots: int = 9, init=None, restore_profiles: int = 1 << 16
) -> Family:
    """Monotone provision rules for two agents (CE Def 10) with a piecewise-linear non-increasing boundary ``b``.

    Provide iff ``s_2 > b(s_1)``; generalized VCG payments ``t_2 = v_2(s_1, b(s_1))``,
    ``t_1 = v_1(b^{-1}(s_2), s_2)``. A richer family than threshold contribution
    rules (those are the boundaries ``max`` of two lines, CE Def 12); CE Thm 9 says
    that, with budget balance enforced exactly, none does better. Constraint:
    ``c - t_1 - t_2 <= 0`` in every provided state; restoration raises ``b``.
    """
    provision._check_public(env, "provision_boundary_family")
    if env.n_agents != 2:
        raise ValueError("provision_boundary_family: two agents")
    c = float(env.cost(jnp.ones(())))
    xs = np.linspace(0.0, 1.0, knots)
    params0 = _pl_init(xs, np.asarray(init if init is not None else 1.0 - xs, np.float64), False)
    kx = jnp.asarray(xs, params0["y0"].dtype)

    def b_of(params):
        ys = monotone_knots(params, kx, False)
        return (lambda x: jnp.interp(x, kx, ys)), (lambda y: jnp.interp(y, ys[::-1], kx[::-1]))

    def decide(params, m):
        b, _ = b_of(params)
        return (m[1] > b(m[0])).astype(m.dtype)

    def soft_decide(params, s, temperature):
        b, _ = b_of(params)
        return jax.nn.sigmoid((s[1] - b(s[0])) / temperature)

    def payments(params, s):
        b, binv = b_of(params)
        t2 = env.values(jnp.stack([s[0], jnp.clip(b(s[0]), 0.0, 1.0)]))[1]
        t1 = env.values(jnp.stack([jnp.clip(binv(s[1]), 0.0, 1.0), s[1]]))[0]
        return jnp.stack([t1, t2])

    def violation(params, s):
        return c - jnp.sum(payments(params, s))

    def weight(params, s):
        return decide(jax.lax.stop_gradient(params), s)

    def mechanism(params):
        from jaxmech._src.core.mechanisms import pivot_payments

        b, binv = b_of(params)

        def pivot(p, m, i):
            del p
            return jnp.clip(binv(m[1]), 0.0, 1.0) if i == 0 else jnp.clip(b(m[0]), 0.0, 1.0)

        return pivot_payments(env, decide, params=params, pivot=pivot, name="searched_boundary")

    restore = _shift_restorer(prior, key, restore_profiles, violation, weight, params0["y0"].dtype)

    def describe(params):
        ys = monotone_knots(params, kx, False)
        return {"knots": xs.tolist(), "b": [float(y) for y in ys]}

    def revenue(params, s):
        return jnp.sum(payments(params, s))

    return Family("monotone_boundary", params0, soft_decide, violation, weight, mechanism, restore, describe, revenue)
