"""Search families (CE Def 10, Def 12, Sec. 4.2): parameterized mechanisms that :func:`search` optimizes.

Each family is a :class:`~jaxmech._src.core.search.Family`: a smooth relaxation of
its decision rule, differentiable constraint values and an exact restoration.
:func:`threshold_family` (CE Def 12, budget balance in every provided state,
CE Thm 9), :func:`trade_cutoff_family` (CE Sec. 4.2) and
:func:`provision_boundary_family` (CE Def 10).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.core import priors
from jaxmech._src.core.environments import Environment
from jaxmech._src.core.mechanisms import pivot_payments
from jaxmech._src.core.search import Family, support_grid
from jaxmech._src.models import provision, trading

Array = jax.Array


def threshold_family(env: Environment, init=None) -> Family:
    """Threshold contribution rules (CE Def 12) over the pivotal valuations ``vbar``, budget balance in every provided state.

    Relaxation: ``f_T(s) = prod_i sigmoid((v_i(s) - vbar_i) / T)``. Constraint:
    the deficit ``c - sum_i t_i(s)`` of the generalized VCG payments (differentiable
    in ``vbar``, :func:`jaxmech._src.models.provision.threshold_payments`) in every
    state where the hard rule provides. Restoration: if the worst deficit over a
    large sample is positive, raise every ``vbar_i`` by ``(c - sum vbar)^+ / n``
    (then ``t_i >= vbar_i`` gives ``sum t >= c`` in every provided state).
    """
    provision.check_public_good(env, "threshold_family")
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
    trading.check_trade(env, "trade_cutoff_family")
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
    provision.check_public_good(env, "provision_boundary_family")
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
