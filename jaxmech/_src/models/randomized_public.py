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
cells (``r`` linear in the own signal inside each) by 4-point Gauss-Legendre per cell: exact for values polynomial of
degree <= 6 in the own signal. Ex post IC and IR follow from monotonicity (CE Thm 2); the budget ``sum_i t_i(s) >=
c q(s)`` is what the design enforces (ex post in every state, or ex ante), repaired exactly by shrinking the box:
raising ``x_i`` removes non-negative terms ``r dV_i`` from agent ``i``'s information rents in every remaining state
and leaves the others' paths (along which ``s_i`` stays fixed) untouched, so every remaining state's surplus rises,
removed states pay and cost nothing, and the worst deficit is non-increasing in the shrink.

For a fixed box every term is linear in ``Q``, so the best band is a linear program (:func:`band_program`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.core import priors
from jaxmech._src.core.environments import Environment
from jaxmech._src.core.mechanisms import Mechanism
from jaxmech._src.core.search import Family
from jaxmech._src.models import randomized

Array = jax.Array
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(4)


def check_public(env: Environment, what: str) -> None:
    """``ValueError`` unless ``env`` is a public good (outcomes not provided / provided) with 1-d signals."""
    if env.outcome_names != ("not_provided", "provided") or any(d != 1 for d in env.dims) or env.n_agents < 2:
        raise ValueError(f"{what}: needs a public good with n >= 2 agents and one-dimensional signals, got {env.name}")


def knot_values(q: Array) -> Array:
    """The monotone projection of raw knot values ``q`` (shape ``(K,) * n``): clip to ``[0, 1]``, then cumulative
    maxima along axis 0, 1, ..., n - 1. Non-decreasing along every axis; the identity on monotone ``q`` in ``[0, 1]``."""
    out = jnp.clip(q, 0.0, 1.0)
    for axis in range(q.ndim):
        out = jax.lax.cummax(out, axis=axis)
    return out


def band(params: dict, s: Array, lo: Array, hi: Array) -> Array:
    """``r(s)``: multilinear interpolation of :func:`knot_values` at ``s`` (knots evenly spaced on ``[lo, hi]``)."""
    qk = knot_values(params["q"])
    n, k = qk.ndim, qk.shape[0] - 1
    x = (jnp.clip(s, lo, hi) - lo) / (hi - lo) * k
    cell = jnp.clip(jnp.floor(x), 0, k - 1)
    frac = x - cell
    idx = cell.astype(jnp.int32)
    out = jnp.zeros((), s.dtype)
    for corner in itertools.product((0, 1), repeat=n):
        w = jnp.prod(jnp.stack([frac[d] if c else 1.0 - frac[d] for d, c in enumerate(corner)]))
        out = out + w * qk[tuple(idx[d] + c for d, c in enumerate(corner))]
    return out


def in_box(params: dict, s: Array) -> Array:
    """``1{s_i >= x_i for every i}`` for the cutoffs ``x = params["cut"]`` (the closed box)."""
    return jnp.all(s >= params["cut"]).astype(s.dtype)


def provision_probability(params: dict, s: Array, lo: Array, hi: Array) -> Array:
    """``q(s) = 1{s >= x} r(s)``: non-negative, non-decreasing in every signal (both factors are)."""
    return in_box(params, s) * band(params, s, lo, hi)


def _integral(f, a, b, lo, hi, knots: int):
    """``int_a^b f(z) dz`` over the knot cells of ``[lo, hi]`` (``f`` smooth inside each), 4-point Gauss-Legendre."""
    edges = jnp.linspace(lo, hi, knots)
    left = jnp.clip(edges[:-1], a, b)
    right = jnp.clip(edges[1:], a, b)
    mid, half = 0.5 * (left + right), 0.5 * (right - left)
    nodes = mid[:, None] + half[:, None] * jnp.asarray(_GL_NODES, left.dtype)[None, :]
    vals = jax.vmap(jax.vmap(f))(nodes)
    return jnp.sum(half[:, None] * jnp.asarray(_GL_WEIGHTS, left.dtype)[None, :] * vals)


def envelope_payments(env: Environment, params: dict, s: Array) -> Array:
    """``t(s)``, shape ``(n,)``: the envelope payments of the module docstring at reports ``s`` (CE Thm 2)."""
    n = env.n_agents
    knots = params["q"].shape[0]
    lo = jnp.asarray(env.lo, s.dtype)
    hi = jnp.asarray(env.hi, s.dtype)
    cut = jnp.clip(params["cut"], lo, hi)
    q = provision_probability(params, s, lo, hi)
    v = env.values(s)
    out = []
    for i in range(n):

        def slope(z, i=i):
            m = s.at[i].set(z)
            return band(params, m, lo, hi) * jax.grad(lambda y: env.values(m.at[i].set(y))[i])(z)

        others = jnp.all(jnp.delete(s >= params["cut"], i))  # the others inside the box (as in q)
        rent = _integral(slope, cut[i], jnp.maximum(s[i], cut[i]), lo[i], hi[i], knots)
        out.append(q * v[i] - jnp.where(others, rent, 0.0))
    return jnp.stack(out)


def deficit(env: Environment, params: dict, s: Array) -> Array:
    """``c q(s) - sum_i t_i(s)``: what the designer pays out net at reports ``s`` (``<= 0``: the budget holds)."""
    lo, hi = jnp.asarray(env.lo, s.dtype), jnp.asarray(env.hi, s.dtype)
    return env.cost(provision_probability(params, s, lo, hi)) - jnp.sum(envelope_payments(env, params, s))


def randomized_public_mechanism(env: Environment, params: dict, name: str = "randomized_provision") -> Mechanism:
    """The rule with its envelope payments as a :class:`Mechanism` (outcome: the provision probability ``q``)."""

    def decide(p, m):
        return provision_probability(p, m, jnp.asarray(env.lo, m.dtype), jnp.asarray(env.hi, m.dtype))

    def pay(p, m):
        return envelope_payments(env, p, m)

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


def randomized_public_family(
    env: Environment, *, knots: int = 9, init: dict | None = None, box_grid: int = 65, dtype=jnp.float32
) -> Family:
    """Search family of randomized provision rules ``q = 1{s >= x} r(s)`` with envelope payments (module docstring)
    under ex post budget balance.

    Relaxation: the box's indicator becomes ``prod_i sigmoid((s_i - x_i) / T)``; the band is already a probability.
    Constraint: the deficit ``c q - sum_i t_i`` in every state (weight 1: payments are owed whatever the lottery's
    draw). Restoration: the least shrink of the box whose worst deficit on the box's own ``box_grid^n`` grid is
    ``<= 0``, by bisection (:func:`jaxmech._src.models.randomized.repair_box`), larger boxes where there is slack.
    """
    check_public(env, "randomized_public_family")
    if knots < 2:
        raise ValueError(f"knots: need >= 2, got {knots}")
    n = env.n_agents
    if init is None:
        lo, hi = np.asarray(env.lo, np.float64), np.asarray(env.hi, np.float64)
        init = {"cut": lo + 0.6 * (hi - lo), "q": np.full((knots,) * n, 0.9)}
    params0 = jax.tree.map(lambda x: jnp.asarray(x, dtype), init)
    if set(params0) != {"cut", "q"} or params0["cut"].shape != (n,) or params0["q"].shape != (knots,) * n:
        raise ValueError(f"init: needs 'cut' (shape ({n},)) and 'q' (shape {(knots,) * n}), got "
                         f"{ {k: tuple(np.shape(v)) for k, v in params0.items()} }")  # fmt: skip

    def soft_decide(params, s, temperature):
        lo, hi = jnp.asarray(env.lo, s.dtype), jnp.asarray(env.hi, s.dtype)
        box = jnp.prod(jax.nn.sigmoid((s - params["cut"]) / temperature))
        return box * band(params, s, lo, hi)

    def violation(params, s):
        return deficit(env, params, s)

    def weight(params, s):
        return jnp.ones((), s.dtype)

    worst = jax.jit(lambda params, delta: box_deficit(env, shrink(params, delta), box_grid))

    def restore(params):
        delta = randomized.repair_box(lambda d: float(worst(params, jnp.asarray(d, dtype))))
        return shrink(params, delta)

    def describe(params):
        r = np.asarray(knot_values(jnp.asarray(params["q"])))
        return {"cut": [float(c) for c in np.asarray(params["cut"])], "band": np.round(r, 6).tolist()}

    def revenue(params, s):
        return jnp.sum(envelope_payments(env, params, s))

    return Family(
        "randomized_provision", params0, soft_decide, violation, weight,
        lambda p: randomized_public_mechanism(env, p), restore, describe, revenue,
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
    dtype=jnp.float32,
):
    """``cut -> (value, q)``: the best band for a fixed box, exactly (an LP in the ``K^n`` knot values).

    Inside the box ``q`` is linear in the knot values ``Q`` and so are the envelope payments, hence the objective
    ``E[1{box} (q (sum V - c) + revenue_weight (sum t - c q))]`` (tensor Gauss-Legendre in quantile space over the
    box, ``nodes`` per axis; ``ppfs`` / ``cdfs``: the marginals' quantile functions and CDFs), the ex post budget
    ``sum t >= c q`` at the box's own ``points^n`` grid, and ``Q`` non-decreasing between adjacent knots along every
    axis. The coefficients are gradients at a strictly monotone interior ``Q`` (where the projection is the identity);
    scipy HiGHS solves it. Returns ``(-inf, None)`` where the LP fails.
    """
    from scipy.optimize import linprog  # optional dependency (the `lp` extra)

    check_public(env, "band_program")
    n, k = env.n_agents, knots
    points = points or max(3, int(round(1089 ** (1.0 / n))))  # 33 x 33 for two agents
    nodes = nodes or max(4, int(round(2304 ** (1.0 / n))))  # 48 x 48 for two agents
    grid = np.indices((k,) * n).sum(0)
    base = jnp.asarray(0.5 + 0.1 * grid / (n * k), dtype)  # strictly increasing along every axis, inside (0, 1)
    gx, gw = np.polynomial.legendre.leggauss(nodes)
    gx, gw = jnp.asarray((gx + 1) / 2, dtype), jnp.asarray(gw / 2, dtype)

    def cost(q, cut, s):
        return deficit(env, {"cut": cut, "q": q}, s)

    def value(q, cut, s):
        p = {"cut": cut, "q": q}
        lo, hi = jnp.asarray(env.lo, s.dtype), jnp.asarray(env.hi, s.dtype)
        w = env.welfare(provision_probability(p, s, lo, hi), s)
        r = -deficit(env, p, s)
        return r if objective == "revenue" else w + revenue_weight * r

    @jax.jit
    def coefficients(cut):
        lo, hi = jnp.asarray(env.lo, dtype), jnp.asarray(env.hi, dtype)
        cut = jnp.clip(cut, lo, hi)
        pts = box_grid_points(env, {"cut": cut}, points)
        budget = jax.vmap(jax.grad(cost), in_axes=(None, None, 0))(base, cut, pts)
        u0 = jnp.stack([cdfs[i](cut[i]) for i in range(n)])  # the box in quantile space: [u0_i, 1]
        axes = [ppfs[i](u0[i] + (1.0 - u0[i]) * gx) for i in range(n)]
        s = jnp.stack([x.ravel() for x in jnp.meshgrid(*axes, indexing="ij")], -1)
        w = gw
        for _ in range(n - 1):
            w = jnp.outer(w, gw).ravel()
        w = w * jnp.prod(1.0 - u0)
        grads = jax.vmap(jax.grad(value), in_axes=(None, None, 0))(base, cut, s)
        obj = jnp.tensordot(w, grads, axes=1)
        return budget.reshape(budget.shape[0], -1), obj.reshape(-1)

    rows = []
    flat = np.arange(k**n).reshape((k,) * n)
    for axis in range(n):  # Q[j] <= Q[j + e_axis]
        a = np.take(flat, np.arange(k - 1), axis=axis).ravel()
        b = np.take(flat, np.arange(1, k), axis=axis).ravel()
        r = np.zeros((a.size, k**n))
        r[np.arange(a.size), a] = 1.0
        r[np.arange(a.size), b] = -1.0
        rows.append(r)
    mono = np.concatenate(rows)

    def solve(cut):
        budget, obj = (np.asarray(x, np.float64) for x in coefficients(jnp.asarray(cut, dtype)))
        a_ub = np.vstack([budget, mono])  # deficit <= 0 at the grid; monotone knots
        res = linprog(-obj, A_ub=a_ub, b_ub=np.zeros(len(a_ub)), bounds=[(0.0, 1.0)] * (k**n), method="highs")
        if res.status != 0:
            return -np.inf, None
        return float(-res.fun), res.x.reshape((k,) * n)

    return solve
