"""Randomized monotone provision rules for a public good with envelope payments: ex post IC by construction.

A rule provides the project (cost ``c``, ``n >= 2`` agents, one-dimensional signals ``s_i in [lo_i, hi_i]``, CE
Sec. 5) with probability

    q(s) = 1{s_i >= x_i for every i} r(s)

a *box* of cutoffs ``x = params["cut"]`` times a *band* ``r``: a multilinear interpolation (a tensor-product linear
spline) of knot values ``Q`` on a ``K^n`` grid of the support. ``Q`` is the monotone projection of the raw knot values
``params["q"]``: clipped to ``[0, 1]``, then cumulative maxima along agent 1's axis, then agent 2's, ... Each pass
keeps the earlier axes non-decreasing (a maximum of non-decreasing functions), so ``Q`` is non-decreasing along every
axis for ANY parameters, and the projection is the identity on knot values that are already monotone. Multilinear
interpolation of monotone knot values is monotone in each coordinate, and so is the box, so ``q`` is non-decreasing
in each agent's own signal: the direction CE Def 10 requires (``h_i(q) = q``, values increasing in the own signal),
whatever the sign of the interdependence (values may FALL in the others' signals).

Payments by the envelope formula (CE Thm 2, the lowest type's IR binding, utility ``u_i = q V_i - t_i``):

    t_i(s) = q(s) V_i(s) - 1{s_-i >= x_-i} int_{x_i}^{max(s_i, x_i)} r(z, s_-i) dV_i/dz(z, s_-i) dz

(below the box ``q = 0``, so the integral from ``lo_i`` starts at the cutoff). The integral runs over the band's knot
cells (``r`` linear in the own signal inside each) by 2-point Gauss-Legendre per cell: exact for values polynomial of
degree <= 3 in the own signal (the integrand ``r dV_i/dz`` of degree <= 3), else an error of order ``h^5`` per cell of
width ``h``; the mechanism pays by this formula itself, so the audit checks what is paid. Ex post IC and IR follow from monotonicity (CE Thm 2); the budget ``sum_i t_i(s) >=
c q(s)`` is what the design enforces (ex post in every state, or ex ante), repaired exactly by shrinking the box:
raising ``x_i`` removes non-negative terms ``r dV_i`` from agent ``i``'s information rents in every remaining state
and leaves the others' paths (along which ``s_i`` stays fixed) untouched, so every remaining state's surplus rises,
removed states pay and cost nothing, and the worst deficit is non-increasing in the shrink.

For a fixed box every term is linear in ``Q``, so the best band is a linear program (:func:`band_program`).

**The value box.** Where every value rises in every signal (CE Sec. 5) the box can be taken in value space,
``q(s) = 1{V_i(s) >= x_i for every i} r(s)`` (``value_box=True``; the thresholds ``x`` in value units): each
indicator is non-decreasing in every signal there, so ``q`` is monotone and the envelope payments make it ex post
IC. With ``r = 1`` its members are CE Thm 9's threshold rules (CE Def 12; payments ``t_i = V_i(z*_i, s_-i)``), which a
box in signal space cannot express: their provision region is bounded by the level sets of the values, slanted in the
signal square. The envelope integral of agent ``i`` starts where ``i`` enters the box along its own signal,
``z*_i(s_-i)`` (:func:`value_entry`, by bisection: ``min_j V_j(z, s_-i) - x_j`` is non-decreasing in ``z``), and is
empty where it never does. Raising every threshold shrinks the region and raises every ``z*_i``, so each remaining
state's rents ``int r dV_i`` shrink and its surplus rises: the worst deficit is again monotone in the repair's shift.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.core import priors
from jaxmech._src.core.audit import grid_points
from jaxmech._src.core.compile_options import FULL_OPTIMIZATION, supported
from jaxmech._src.core.environments import Environment
from jaxmech._src.core.mechanisms import Mechanism
from jaxmech._src.core.search import Family
from jaxmech._src.models import randomized

Array = jax.Array
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(2)


def check_public(env: Environment, what: str) -> None:
    """``ValueError`` unless ``env`` is a public good (outcomes not provided / provided) with 1-d signals."""
    if env.outcome_names != ("not_provided", "provided") or any(d != 1 for d in env.dims) or env.n_agents < 2:
        raise ValueError(f"{what}: needs a public good with n >= 2 agents and one-dimensional signals, got {env.name}")


def knot_values(q: Array) -> Array:
    """The monotone projection of raw knot values ``q`` (shape ``(K,) * n``): clip to ``[0, 1]``, then cumulative
    maxima along axis 0, 1, ..., n - 1. Non-decreasing along every axis; the identity on monotone ``q`` in ``[0, 1]``."""
    out = jnp.clip(q, 0.0, 1.0)
    k = q.shape[0]
    below = jnp.tril(jnp.ones((k, k), bool)).reshape((k, k) + (1,) * (q.ndim - 1))  # [j, j']: j' <= j
    for axis in range(q.ndim):  # a masked maximum: the same values as lax.cummax, a gradient that compiles ~5x faster
        moved = jnp.moveaxis(out, axis, 0)
        out = jnp.moveaxis(jnp.max(jnp.where(below, moved[None], -jnp.inf), axis=1), 0, axis)
    return out


def hats(x: Array, lo: Array, hi: Array, knots: int) -> Array:
    """The ``knots`` hat functions ``max(0, 1 - |k (x - lo) / (hi - lo) - j|)`` of one signal at ``x`` (shape
    ``(knots,)``): the linear-interpolation weights of the knots ``j = 0..K-1`` evenly spaced on ``[lo, hi]``."""
    u = (jnp.clip(x, lo, hi) - lo) / (hi - lo) * (knots - 1)
    return jnp.maximum(0.0, 1.0 - jnp.abs(u - jnp.arange(knots, dtype=u.dtype)))


def _outer(vectors: Sequence[Array]) -> Array:
    """``prod_d vectors[d][j_d]`` as a ``(K,) * n`` tensor."""
    out = vectors[0]
    for v in vectors[1:]:
        out = out[..., None] * v.reshape((1,) * out.ndim + v.shape)
    return out


def band(params: dict, s: Array, lo: Array, hi: Array) -> Array:
    """``r(s)``: multilinear interpolation of :func:`knot_values` at ``s``: ``sum_j Q[j] prod_d hat_{j_d}(s_d)``."""
    qk = knot_values(params["q"])
    return jnp.sum(qk * _outer([hats(s[d], lo[d], hi[d], qk.shape[0]) for d in range(qk.ndim)]))


def in_box(params: dict, s: Array, values: Callable[[Array], Array] | None = None) -> Array:
    """``1{s_i >= x_i for every i}`` for the cutoffs ``x = params["cut"]`` (the closed box); with ``values`` (a value
    box) ``1{V_i(s) >= x_i for every i}``, the thresholds ``x`` in value units."""
    return jnp.all((s if values is None else values(s)) >= params["cut"]).astype(s.dtype)


def provision_probability(
    params: dict, s: Array, lo: Array, hi: Array, values: Callable[[Array], Array] | None = None
) -> Array:
    """``q(s) = 1{s >= x} r(s)`` (``values``: ``1{V(s) >= x} r(s)``): non-negative, non-decreasing in every signal
    (both factors are; a value box only where every value rises in every signal)."""
    return in_box(params, s, values) * band(params, s, lo, hi)


def value_entry(env: Environment, cut: Array, s: Array, i: int, iters: int = 32) -> Array:
    """Where agent ``i`` enters the value box along its own signal at ``s_-i``: the least ``z`` in ``[lo_i, hi_i]``
    with ``V_j(z, s_-i) >= x_j`` for every ``j``, ``hi_i`` where no ``z`` is inside (then nothing is provided along
    the path and the envelope integral from here is empty). Every ``V_j`` rises in ``s_i``, so
    ``g(z) = min_j V_j(z, s_-i) - x_j`` is non-decreasing and bisection finds it; one Newton step of the binding
    ``j`` (its value kept, only its derivative used) carries the implicit derivative
    ``dz / dx_j = 1 / dV_j/dz`` and ``dz / ds_k = -(dV_j/ds_k) / (dV_j/dz)`` into gradients."""
    lo, hi = jnp.asarray(env.lo, s.dtype)[i], jnp.asarray(env.hi, s.dtype)[i]

    def g(z):
        return jnp.min(env.values(s.at[i].set(z)) - cut)

    # unrolled, not a fori_loop: inside the repair's bisection (a loop whose float comparison steers it) the nested
    # loop was miscompiled by XLA's CPU backend without YNNPACK fusions (jaxlib 0.10.2: the repair of CE Thm 9's
    # rule shifted -0.799 instead of -0.00066; the same program with XLA's defaults, or this unrolled form, is right)
    a, z = jax.lax.stop_gradient(lo), jax.lax.stop_gradient(hi)
    for _ in range(iters):
        mid = 0.5 * (a + z)
        inside = jax.lax.stop_gradient(g(mid)) >= 0
        a, z = jnp.where(inside, a, mid), jnp.where(inside, mid, z)
    z = jax.lax.stop_gradient(z)
    g_lo, g_hi = g(lo), g(hi)
    z = jnp.where(g_lo >= 0, lo, jnp.where(g_hi < 0, hi, z))
    # the implicit derivative through the binding value (a zero correction in value, not in gradient)
    # (among the values that move with z: a flat one never binds at an interior entry point)
    excess = env.values(s.at[i].set(z)) - cut
    slopes = jax.jacfwd(lambda y: env.values(s.at[i].set(y)))(z)
    moving = jax.lax.stop_gradient(slopes) > 0
    j = jnp.argmin(jnp.where(moving, jax.lax.stop_gradient(excess), jnp.inf))
    slope = slopes[j]
    interior = (g_lo < 0) & (g_hi >= 0) & jnp.any(moving)
    step = -excess[j] / jnp.where(interior, slope, 1.0)
    return z + jnp.where(interior, step - jax.lax.stop_gradient(step), 0.0)


def payment_basis(env: Environment, cut: Array, s: Array, knots: int, value_box: bool = False) -> tuple[Array, Array]:
    """``(B, T)`` with ``q(s) = <Q, B>`` and ``t_i(s) = <Q, T[i]>`` for knot values ``Q`` (shapes ``(K,) * n`` and
    ``(n,) + (K,) * n``): everything is linear in ``Q`` for a fixed box. ``B = 1{s >= x} prod_d hat(s_d)``;
    ``T[i] = B V_i(s) - 1{s_-i >= x_-i} (int_{x_i}^{max(s_i, x_i)} hat(z) dV_i/dz(z, s_-i) dz) prod_{d != i} hat(s_d)``
    (the envelope formula, CE Thm 2), the integral over the knot cells by 2-point Gauss-Legendre per cell. With
    ``value_box`` the box is ``1{V(s) >= x}`` and the integral starts where agent ``i`` enters it along its own
    signal (:func:`value_entry`; empty where it never does)."""
    n = env.n_agents
    lo, hi = jnp.asarray(env.lo, s.dtype), jnp.asarray(env.hi, s.dtype)
    c = jnp.clip(cut, lo, hi)
    h = [hats(s[d], lo[d], hi[d], knots) for d in range(n)]
    b = in_box({"cut": cut}, s, env.values if value_box else None) * _outer(h)
    v = env.values(s)
    gl_x, gl_w = jnp.asarray(_GL_NODES, s.dtype), jnp.asarray(_GL_WEIGHTS, s.dtype)
    rows = []
    for i in range(n):
        edges = jnp.linspace(lo[i], hi[i], knots)
        ci = value_entry(env, cut, s, i) if value_box else c[i]
        top = jnp.maximum(s[i], ci)
        left, right = jnp.clip(edges[:-1], ci, top), jnp.clip(edges[1:], ci, top)
        mid, half = 0.5 * (left + right), 0.5 * (right - left)
        z = (mid[:, None] + half[:, None] * gl_x[None, :]).ravel()
        w = (half[:, None] * gl_w[None, :]).ravel()

        def slope(y, i=i):
            return jax.grad(lambda x: env.values(s.at[i].set(x))[i])(y)

        dv = jax.vmap(slope)(jax.lax.stop_gradient(z))
        rent = jnp.sum((w * dv)[:, None] * jax.vmap(lambda y, i=i: hats(y, lo[i], hi[i], knots))(z), axis=0)
        # the others inside the box (as in q); a value box's entry point already says whether the path enters it
        others = True if value_box else jnp.all(jnp.delete(s >= cut, i))
        rows.append(b * v[i] - jnp.where(others, 1.0, 0.0) * _outer([rent if d == i else h[d] for d in range(n)]))
    return b, jnp.stack(rows)


def envelope_payments(env: Environment, params: dict, s: Array, value_box: bool = False) -> Array:
    """``t(s)``, shape ``(n,)``: the envelope payments of the module docstring at reports ``s`` (CE Thm 2)."""
    qk = knot_values(params["q"])
    _, t = payment_basis(env, params["cut"], s, qk.shape[0], value_box)
    return jnp.sum(t * qk[None], axis=tuple(range(1, qk.ndim + 1)))


def deficit(env: Environment, params: dict, s: Array, value_box: bool = False) -> Array:
    """``c q(s) - sum_i t_i(s)``: what the designer pays out net at reports ``s`` (``<= 0``: the budget holds)."""
    lo, hi = jnp.asarray(env.lo, s.dtype), jnp.asarray(env.hi, s.dtype)
    q = provision_probability(params, s, lo, hi, env.values if value_box else None)
    return env.cost(q) - jnp.sum(envelope_payments(env, params, s, value_box))


def randomized_public_mechanism(
    env: Environment, params: dict, name: str = "randomized_provision", value_box: bool = False
) -> Mechanism:
    """The rule with its envelope payments as a :class:`Mechanism` (outcome: the provision probability ``q``)."""

    def decide(p, m):
        lo, hi = jnp.asarray(env.lo, m.dtype), jnp.asarray(env.hi, m.dtype)
        return provision_probability(p, m, lo, hi, env.values if value_box else None)

    def pay(p, m):
        return envelope_payments(env, p, m, value_box)

    return Mechanism(name, decide, pay, params)


def shrink(params: dict, delta) -> dict:
    """Every cutoff raised by ``delta`` (``> 0``: provide less, ``< 0``: more); the band unchanged."""
    return dict(params, cut=params["cut"] + delta)


def box_grid_points(env: Environment, params: dict, points: int) -> Array:
    """``points^n`` profiles of the closed box ``[x, hi]`` (cutoffs clipped to the support), corners included."""
    cut = params["cut"]
    lo, hi = jnp.asarray(env.lo, cut.dtype), jnp.asarray(env.hi, cut.dtype)
    a = jnp.clip(cut, lo, hi)
    t = jnp.linspace(0.0, 1.0, points, dtype=cut.dtype)
    axes = [a[i] + (hi[i] - a[i]) * t for i in range(env.n_agents)]
    return jnp.stack([x.ravel() for x in jnp.meshgrid(*axes, indexing="ij")], -1)


def box_deficit(env: Environment, params: dict, points: int) -> Array:
    """The worst deficit over :func:`box_grid_points` (outside the box nothing is provided or paid): the payments
    are continuous on the closed box, so this converges to the supremum as ``points`` grows."""
    g = box_grid_points(env, params, points)
    return jnp.max(jax.vmap(lambda s: deficit(env, params, s))(g))


def value_box_points(env: Environment, params: dict, grid: Array) -> Array:
    """The states where a value box's ex post budget is checked: the profiles ``grid`` (shape ``(m, n)``) and, for
    each agent ``i``, each profile moved along ``s_i`` to where ``i`` enters the box (:func:`value_entry`): the
    box's edge, where the payments are lowest along the path, which a grid of the support alone never meets;
    ``(n + 1) m`` states. Outside the box nothing is provided or paid (deficit 0)."""
    cut = jax.lax.stop_gradient(params["cut"])
    edges = [grid.at[:, i].set(jax.vmap(lambda s, i=i: value_entry(env, cut, s, i))(grid)) for i in range(env.n_agents)]
    return jnp.concatenate([grid, *edges])


def diagonal_values(env: Environment, fraction: float) -> np.ndarray:
    """``V(lo + fraction (hi - lo))``: the values at a profile on the support's diagonal (value-box thresholds)."""
    lo, hi = np.asarray(env.lo, np.float64), np.asarray(env.hi, np.float64)
    return np.asarray(env.values(jnp.asarray(lo + fraction * (hi - lo), jnp.float32)), np.float64)


def randomized_public_family(
    env: Environment,
    *,
    knots: int = 9,
    init: dict | None = None,
    box_grid: int = 65,
    value_box: bool = False,
    dtype=jnp.float32,
) -> Family:
    """Search family of randomized provision rules ``q = 1{s >= x} r(s)`` with envelope payments (module docstring)
    under ex post budget balance; ``value_box``: ``q = 1{V(s) >= x} r(s)``, thresholds in value units (monotone,
    hence ex post IC, only where every value rises in every signal, CE Sec. 5; its members with ``r = 1`` are CE
    Thm 9's threshold rules, CE Def 12).

    Relaxation: the box's indicator becomes ``prod_i sigmoid((s_i - x_i) / T)`` (value box:
    ``sigmoid((V_i(s) - x_i) / T)``); the band is already a probability. Constraint: the deficit ``c q - sum_i t_i`` in
    every state (weight 1: payments are owed whatever the lottery's draw). Restoration: the least shrink of the box
    whose worst deficit on the box's own ``box_grid^n`` grid (value box: a support grid of about 65^2 profiles and
    their entry points, :func:`value_box_points`) is ``<= 0``, by bisection
    (:func:`jaxmech._src.models.randomized.repair_box`), larger boxes where there is slack.
    """
    check_public(env, "randomized_public_family")
    if knots < 2:
        raise ValueError(f"knots: need >= 2, got {knots}")
    n = env.n_agents
    lo, hi = np.asarray(env.lo, np.float64), np.asarray(env.hi, np.float64)
    if init is None:
        cut = diagonal_values(env, 0.6) if value_box else lo + 0.6 * (hi - lo)
        init = {"cut": cut, "q": np.full((knots,) * n, 0.9)}
    params0 = jax.tree.map(lambda x: jnp.asarray(x, dtype), init)
    if set(params0) != {"cut", "q"} or params0["cut"].shape != (n,) or params0["q"].shape != (knots,) * n:
        raise ValueError(f"init: needs 'cut' (shape ({n},)) and 'q' (shape {(knots,) * n}), got "
                         f"{ {k: tuple(np.shape(v)) for k, v in params0.items()} }")  # fmt: skip

    def soft_decide(params, s, temperature):
        lo, hi = jnp.asarray(env.lo, s.dtype), jnp.asarray(env.hi, s.dtype)
        box = jnp.prod(jax.nn.sigmoid(((env.values(s) if value_box else s) - params["cut"]) / temperature))
        return box * band(params, s, lo, hi)

    def violation(params, s):
        return deficit(env, params, s, value_box)

    def weight(params, s):
        return jnp.ones((), s.dtype)

    if value_box:
        grid = jnp.asarray(grid_points(lo, hi, 65, 65**2), dtype)  # 65^2 for two agents, 16^3 for three

        def worst_at(params):
            return jnp.max(jax.vmap(lambda s: deficit(env, params, s, True))(value_box_points(env, params, grid)))

        span = float(np.max(diagonal_values(env, 1.0) - diagonal_values(env, 0.0)))
    else:

        def worst_at(params):
            return box_deficit(env, params, box_grid)

        span = 1.0
    worst = jax.jit(lambda params, delta: worst_at(shrink(params, delta)))

    def restore(params):
        delta = randomized.repair_box(lambda d: float(worst(params, jnp.asarray(d, dtype))), span)
        return shrink(params, delta)

    def describe(params):
        r = np.asarray(knot_values(jnp.asarray(params["q"])))
        out = {"cut": [float(c) for c in np.asarray(params["cut"])], "band": np.round(r, 6).tolist()}
        return {**out, "box": "value"} if value_box else out

    def revenue(params, s):
        return jnp.sum(envelope_payments(env, params, s, value_box))

    return Family(
        "randomized_provision", params0, soft_decide, violation, weight,
        lambda p: randomized_public_mechanism(env, p, value_box=value_box), restore, describe, revenue,
    )  # fmt: skip


def band_program(
    env: Environment,
    prior: priors.Prior,
    knots: int,
    *,
    ppfs: Sequence[Callable[[Array], Array]],
    cdfs: Sequence[Callable[[Array], Array]],
    points: int | None = None,
    nodes: int | None = None,
    objective: str = "welfare",
    revenue_weight: float = 0.0,
    region_expectation: Callable | None = None,
    budget: str = "ex_post",
    dtype=jnp.float32,
):
    """``cut -> (value, q)``: the best band for a fixed box, exactly (an LP in the ``K^n`` knot values).

    Inside the box ``q`` is linear in the knot values ``Q`` and so are the envelope payments, hence the objective
    ``E[1{box} (q (sum V - c) + revenue_weight (sum t - c q))]`` (tensor Gauss-Legendre in quantile space over the
    box, ``nodes`` per axis; ``ppfs`` / ``cdfs``: the marginals' quantile functions and CDFs), the budget (ex post:
    ``sum t >= c q`` at the box's own ``points^n`` grid; ex ante: ``E[1{box} (sum t - c q)] >= 0`` by the same
    quadrature as the objective, since outside the box nobody is charged: no own report provides), and ``Q``
    non-decreasing between adjacent knots along every axis. The coefficients are :func:`payment_basis` (no autodiff); scipy HiGHS solves it. Returns ``(-inf, None)``
    where the LP fails.

    ``region_expectation``: the band of a VALUE box (thresholds ``cut`` in value units):
    ``region_expectation(inside, integrand) -> E[1{inside} integrand]`` over the box, an upward-closed region
    (the design's nested quadrature, ``jaxmech._src.models.design.monotone_expectation``), and the budget at a
    ``points^n`` support grid with each profile moved onto the box's edge along every agent's signal
    (:func:`value_box_points`; ex ante: by ``region_expectation`` too).
    """
    from scipy.optimize import linprog  # optional dependency (the `lp` extra)

    check_public(env, "band_program")
    n, k = env.n_agents, knots
    points = points or max(3, int(round(1089 ** (1.0 / n))))  # 33 x 33 for two agents
    nodes = nodes or max(4, int(round(2304 ** (1.0 / n))))  # 48 x 48 for two agents
    gx, gw = np.polynomial.legendre.leggauss(nodes)
    gx, gw = jnp.asarray((gx + 1) / 2, dtype), jnp.asarray(gw / 2, dtype)
    c1 = env.cost(jnp.ones((), dtype)) - env.cost(jnp.zeros((), dtype))  # cost and welfare are linear in q

    value_box = region_expectation is not None
    ex_ante = budget == "ex_ante"
    support = grid_points(np.asarray(env.lo, np.float64), np.asarray(env.hi, np.float64), points, points**n)

    def deficit_row(cut, s):
        b, t = payment_basis(env, cut, s, k, value_box)
        return (c1 * b - jnp.sum(t, axis=0)).ravel()

    def value_row(cut, s):
        w1 = env.welfare(jnp.ones((), s.dtype), s) - env.welfare(jnp.zeros((), s.dtype), s)
        b, t = payment_basis(env, cut, s, k, value_box)
        rev = jnp.sum(t, axis=0) - c1 * b
        return (rev if objective == "revenue" else w1 * b + revenue_weight * rev).ravel()

    def rows(cut, s):  # the objective's row (ex ante: and the deficit's, stacked: one integrand, one quadrature)
        return jnp.concatenate([value_row(cut, s), deficit_row(cut, s)]) if ex_ante else value_row(cut, s)

    @functools.partial(jax.jit, compiler_options=supported(FULL_OPTIMIZATION))  # run once per Nelder-Mead step
    def coefficients(cut):
        if value_box:
            both = region_expectation(lambda s: in_box({"cut": cut}, s, env.values), lambda s: rows(cut, s))
            obj = both[: k**n]
            if ex_ante:
                return both[None, k**n :], obj
            states = value_box_points(env, {"cut": cut}, jnp.asarray(support, dtype))
            return jax.vmap(lambda s: deficit_row(cut, s))(states), obj
        lo, hi = jnp.asarray(env.lo, dtype), jnp.asarray(env.hi, dtype)
        cut = jnp.clip(cut, lo, hi)
        u0 = jnp.stack([cdfs[i](cut[i]) for i in range(n)])  # the box in quantile space: [u0_i, 1]
        axes = [ppfs[i](u0[i] + (1.0 - u0[i]) * gx) for i in range(n)]
        s = jnp.stack([x.ravel() for x in jnp.meshgrid(*axes, indexing="ij")], -1)
        w = gw
        for _ in range(n - 1):
            w = jnp.outer(w, gw).ravel()
        both = jnp.tensordot(w * jnp.prod(1.0 - u0), jax.vmap(lambda x: rows(cut, x))(s), axes=1)
        obj = both[: k**n]
        if ex_ante:
            return both[None, k**n :], obj
        return jax.vmap(lambda s: deficit_row(cut, s))(box_grid_points(env, {"cut": cut}, points)), obj

    order = []
    flat = np.arange(k**n).reshape((k,) * n)
    for axis in range(n):  # Q[j] <= Q[j + e_axis]
        a = np.take(flat, np.arange(k - 1), axis=axis).ravel()
        b = np.take(flat, np.arange(1, k), axis=axis).ravel()
        r = np.zeros((a.size, k**n))
        r[np.arange(a.size), a] = 1.0
        r[np.arange(a.size), b] = -1.0
        order.append(r)
    mono = np.concatenate(order)

    def solve(cut):
        balance, obj = (np.asarray(x, np.float64) for x in coefficients(jnp.asarray(cut, dtype)))
        a_ub = np.vstack([balance, mono])  # deficit <= 0 (at the grid, or in expectation); monotone knots
        res = linprog(-obj, A_ub=a_ub, b_ub=np.zeros(len(a_ub)), bounds=[(0.0, 1.0)] * (k**n), method="highs")
        if res.status != 0:
            return -np.inf, None
        return float(-res.fun), res.x.reshape((k,) * n)

    return solve
