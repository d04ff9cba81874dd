"""Randomized monotone trading rules with envelope payments: ex post IC by construction (CE Thm 2).

A rule is a trade probability ``q(s_beta, s_sigma)`` on ``[0, 1]^2``, bilinear between the knots of a ``K x K``
grid, with knot values ``Q = sigmoid(Z)`` and

    Z[j, k] = z0 + sum_{j' <= j} alpha[j'] - sum_{k' <= k} beta[k'] + sum_{j' <= j, k' >= k} gamma[j', k']

for ``alpha, beta, gamma >= 0`` (softplus of free parameters): ``Z`` and ``Q`` increase in the buyer's knot
``j`` and decrease in the seller's knot ``k``, and bilinear interpolation keeps both monotonicities, so ``q``
is non-decreasing in ``s_beta`` and non-increasing in ``s_sigma`` — the directions single crossing requires when
values increase in the own signal (CE Def 8, Sec. 4). Every such family member is a randomized monotone rule,
and with the envelope payments of CE Thm 2 it is ex post IC; the lowest type's IR binds:

    t_beta(s)  = q(s) v_beta(s)   - int_0^{s_beta}  q(x, s_sigma) dv_beta/ds_beta(x, s_sigma)  dx
    t_sigma(s) = -q(s) v_sigma(s) - int_{s_sigma}^1 q(s_beta, y) dv_sigma/ds_sigma(s_beta, y) dy

(buyer's utility 0 at ``s_beta = 0``, seller's at ``s_sigma = 1``; the environment's convention: ``u_sigma =
-q v_sigma - t_sigma``). The integrals run over the pieces of ``q`` (linear in the own signal between knots) by
Gauss-Legendre, exact for values linear in the own signal. :func:`randomized_trade_family` makes it a search
family under ex post budget balance (deficit ``-(t_beta + t_sigma) <= 0`` in every state).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.core import priors
from jaxmech._src.core.environments import Environment
from jaxmech._src.core.mechanisms import Mechanism
from jaxmech._src.core.search import Family, support_grid

Array = jax.Array
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(4)


def init_params(knots: int, z0: float = 0.0, slope: float = 4.0, dtype=jnp.float32) -> dict:
    """A cold start: ``Z = z0 + slope (x_j - y_k)`` on the knots (trade more as the buyer's signal rises), no
    interaction; ``slope`` spreads the sigmoid over the square."""
    step = slope / (knots - 1)
    inv = float(np.log(np.expm1(step)))  # softplus^{-1}
    return {
        "z0": jnp.asarray(z0, dtype),
        "alpha": jnp.full((knots - 1,), inv, dtype),
        "beta": jnp.full((knots - 1,), inv, dtype),
        "gamma": jnp.full((knots - 1, knots - 1), -8.0, dtype),
    }


def knot_values(params: dict) -> Array:
    """``Q = sigmoid(Z)`` on the ``K x K`` knots (buyer's axis first), monotone as the module docstring says; for
    a banded rule (``params["q"]``: raw knot values) the monotone projection ``Q[j, k] = min_{k' <= k} max_{j' <= j}
    clip(q[j', k'], 0, 1)``: non-decreasing in ``j`` (a minimum of non-decreasing columns), non-increasing in ``k``,
    and the identity on knot values that are already monotone."""
    if "q" in params:
        up = jax.lax.cummax(jnp.clip(params["q"], 0.0, 1.0), axis=0)
        return jax.lax.cummin(up, axis=1)
    a = jax.nn.softplus(params["alpha"])
    b = jax.nn.softplus(params["beta"])
    g = jax.nn.softplus(params["gamma"])  # (K-1, K-1): increments between knots
    zero = jnp.zeros((1,), a.dtype)
    up = jnp.concatenate([zero, jnp.cumsum(a)])  # (K,) increasing in j
    down = jnp.concatenate([zero, jnp.cumsum(b)])  # (K,) increasing in k (subtracted)
    # sum_{j' <= j, k' >= k} gamma: gamma padded so that index j' in 1..K-1, k' in 0..K-2
    gp = jnp.pad(g, ((1, 0), (0, 1)))  # (K, K): row 0 and last column zero
    inter = jnp.cumsum(jnp.flip(jnp.cumsum(jnp.flip(gp, 1), axis=1), 1), axis=0)
    z = params["z0"] + up[:, None] - down[None, :] + inter
    return jax.nn.sigmoid(z)


def band(params: dict, s: Array) -> Array:
    """``r(s)``: bilinear interpolation of :func:`knot_values` at ``s = (s_beta, s_sigma)`` in ``[0, 1]^2``."""
    q = knot_values(params)
    k = q.shape[0] - 1
    x = jnp.clip(s[0], 0.0, 1.0) * k
    y = jnp.clip(s[1], 0.0, 1.0) * k
    xi, yj = jnp.clip(jnp.floor(x), 0, k - 1), jnp.clip(jnp.floor(y), 0, k - 1)
    fx, fy = x - xi, y - yj
    i, j = xi.astype(jnp.int32), yj.astype(jnp.int32)
    return (q[i, j] * (1 - fx) * (1 - fy) + q[i + 1, j] * fx * (1 - fy) + q[i, j + 1] * (1 - fx) * fy
            + q[i + 1, j + 1] * fx * fy)  # fmt: skip


def in_box(params: dict, s: Array) -> Array:
    """``1{s_beta >= x, s_sigma <= y}`` for ``params["cut"] = (x, y)`` (the closed trade box; 1 without a cut)."""
    if "cut" not in params:
        return jnp.ones((), s.dtype)
    cut = params["cut"]
    return ((s[0] >= cut[0]) & (s[1] <= cut[1])).astype(s.dtype)


def trade_probability(params: dict, s: Array) -> Array:
    """``q(s) = 1{s_beta >= x, s_sigma <= y} r(s)``: the band :func:`band` inside the trade box of ``params["cut"]``
    (the whole square without one). Both factors are non-negative, non-decreasing in ``s_beta`` and non-increasing
    in ``s_sigma``, so their product is too."""
    return in_box(params, s) * band(params, s)


def _integral(f, lo, hi, knots: int):
    """``int_lo^hi f(x) dx`` over the knot cells of ``[0, 1]`` (``f`` smooth inside each), 4-point Gauss-Legendre."""
    edges = jnp.linspace(0.0, 1.0, knots)
    a = jnp.clip(edges[:-1], lo, hi)
    b = jnp.clip(edges[1:], lo, hi)
    mid, half = 0.5 * (a + b), 0.5 * (b - a)
    nodes = mid[:, None] + half[:, None] * jnp.asarray(_GL_NODES, a.dtype)[None, :]
    vals = jax.vmap(jax.vmap(f))(nodes)
    return jnp.sum(half[:, None] * jnp.asarray(_GL_WEIGHTS, a.dtype)[None, :] * vals)


def envelope_payments(env: Environment, params: dict, s: Array) -> Array:
    """``(t_beta, t_sigma)`` of the module docstring at reports ``s`` (CE Thm 2, lowest types' IR binding)."""
    knots = params["q"].shape[0] if "q" in params else params["alpha"].shape[0] + 1
    q = trade_probability(params, s)
    v = env.values(s)

    def buyer_slope(x):
        m = s.at[0].set(x)
        return band(params, m) * jax.grad(lambda z: env.values(m.at[0].set(z))[0])(x)

    def seller_slope(y):
        m = s.at[1].set(y)
        return band(params, m) * jax.grad(lambda z: env.values(m.at[1].set(z))[1])(y)

    if "cut" in params:  # q = r on [x, 1] x [0, y], 0 elsewhere: the integrals run over the box's part of the path
        x, y = jnp.clip(params["cut"][0], 0.0, 1.0), jnp.clip(params["cut"][1], 0.0, 1.0)
        buyer = jnp.where(s[1] <= y, _integral(buyer_slope, x, jnp.maximum(s[0], x), knots), 0.0)
        seller = jnp.where(s[0] >= x, _integral(seller_slope, jnp.minimum(s[1], y), y, knots), 0.0)
    else:
        buyer = _integral(buyer_slope, 0.0, s[0], knots)
        seller = _integral(seller_slope, s[1], 1.0, knots)
    return jnp.stack([q * v[0] - buyer, -q * v[1] - seller])


def randomized_trade_mechanism(env: Environment, params: dict, name: str = "randomized_monotone") -> Mechanism:
    """The randomized monotone rule with its envelope payments as a :class:`Mechanism` (trade probability ``q``)."""

    def decide(p, m):
        return trade_probability(p, m)

    def pay(p, m):
        return envelope_payments(env, p, m)

    return Mechanism(name, decide, pay, params)


def _check_trade(env: Environment, what: str) -> None:
    if env.outcome_names != ("no_trade", "trade") or env.dims != (1, 1):
        raise ValueError(f"{what}: needs bilateral trade with one-dimensional signals, got {env.name}")


def randomized_trade_family(
    env: Environment,
    prior: priors.Prior,
    *,
    knots: int = 9,
    init: dict | None = None,
    key: Array | None = None,
    repair_profiles: int = 1 << 14,
    repair_grid: int = 65,
    dtype=jnp.float32,
) -> Family:
    """Search family of randomized monotone trading rules with envelope payments under ex post budget balance.

    Objective: expected gains from trade ``E[q (v_beta - v_sigma)]`` (the environment's welfare). Constraint:
    the deficit ``-(t_beta + t_sigma)`` in every state (weight 1). Exact repair (:func:`repair_shift`): a
    scalar shift of ``z0`` found by bisection onto the budget boundary, down if the worst deficit over
    ``repair_profiles`` fresh profiles plus a ``repair_grid``-point support grid is positive, up while it stays
    non-positive.
    """
    _check_trade(env, "randomized_trade_family")
    if knots < 2:
        raise ValueError(f"knots: need >= 2, got {knots}")
    params0 = init_params(knots, dtype=dtype) if init is None else jax.tree.map(lambda x: jnp.asarray(x, dtype), init)
    key = jax.random.PRNGKey(0) if key is None else key
    check = jnp.concatenate([prior.sample(key, repair_profiles, dtype), support_grid(prior, repair_grid, dtype)])

    def soft_decide(params, s, temperature):
        del temperature  # already a probability: nothing to relax
        return trade_probability(params, s)

    def violation(params, s):
        return -jnp.sum(envelope_payments(env, params, s))

    def weight(params, s):
        return jnp.ones((), s.dtype)

    @jax.jit
    def worst(params, delta):
        p = dict(params, z0=params["z0"] + delta)
        return jnp.max(jax.vmap(lambda s: violation(p, s))(check))

    def restore(params):
        delta = repair_shift(lambda d: float(worst(params, jnp.asarray(d, dtype))))
        return dict(params, z0=params["z0"] + delta)

    def describe(params):
        q = np.asarray(knot_values(params))
        return {"z0": float(params["z0"]), "q_min": float(q.min()), "q_max": float(q.max())}

    def revenue(params, s):
        return jnp.sum(envelope_payments(env, params, s))

    return Family(
        "randomized_monotone_trade", params0, soft_decide, violation, weight,
        lambda p: randomized_trade_mechanism(env, p), restore, describe, revenue,
    )  # fmt: skip


def banded_trade_family(
    env: Environment,
    prior: priors.Prior,
    *,
    knots: int = 9,
    init: dict | None = None,
    box_grid: int = 129,
    dtype=jnp.float32,
) -> Family:
    """Search family of randomized rules ``q = 1{s_beta >= x, s_sigma <= y} r(s)``: a trade box (two prices) times a
    monotone band ``r`` (:func:`band`), with envelope payments, under ex post budget balance.

    With interdependent values the best ex post IC, IR and balanced rule randomizes this way (the finite-type LP,
    docs/lp-reference.md): ``r`` is highest at the corner ``(1, 0)`` of the box and lower near its inner edges,
    which lowers the information rents ``int q dv`` at the corner, where the budget binds, and so admits a larger
    box than the best deterministic rule's ``x - y = a``. Parameters: ``cut = (x, y)`` and the band's raw knot
    values ``q`` (``K x K`` on absolute knots of ``[0, 1]^2``), projected onto monotone ones (:func:`knot_values`).

    Exact repair (:func:`repair_box`): shrinking the box (``x`` up, ``y`` down by ``delta``) removes non-negative
    terms ``r dv`` from every remaining state's information rents, so each remaining state's surplus
    ``t_beta + t_sigma`` rises and removed states pay nothing: the worst deficit is non-increasing in ``delta``,
    and a bisection on the box's own ``box_grid``-point grid (closed box, corners and edges included) puts it on
    the budget boundary. The band is left as it is (a shift of the band's level would not help: the deficit is
    linear in ``q``).
    """
    _check_trade(env, "banded_trade_family")
    if knots < 2:
        raise ValueError(f"knots: need >= 2, got {knots}")
    if init is None:
        init = {"cut": jnp.asarray([0.6, 0.4], dtype), "q": jnp.full((knots, knots), 0.9, dtype)}
    params0 = jax.tree.map(lambda x: jnp.asarray(x, dtype), init)
    if set(params0) != {"cut", "q"}:
        raise ValueError(f"init: needs 'cut' (x, y) and 'q' (knots x knots), got {sorted(params0)}")

    def soft_decide(params, s, temperature):
        x, y = params["cut"][0], params["cut"][1]
        box = jax.nn.sigmoid((s[0] - x) / temperature) * jax.nn.sigmoid((y - s[1]) / temperature)
        return box * band(params, s)

    def violation(params, s):
        return -jnp.sum(envelope_payments(env, params, s))

    def weight(params, s):
        return jnp.ones((), s.dtype)

    worst = jax.jit(lambda params, delta: box_deficit(env, shrink(params, delta), box_grid))

    def restore(params):
        delta = repair_box(lambda d: float(worst(params, jnp.asarray(d, dtype))))
        return shrink(params, delta)

    def describe(params):
        r = np.asarray(knot_values(params))
        return {"cut": [float(c) for c in np.asarray(params["cut"])], "band": np.round(r, 6).tolist()}

    def revenue(params, s):
        return jnp.sum(envelope_payments(env, params, s))

    return Family(
        "banded_randomized_trade", params0, soft_decide, violation, weight,
        lambda p: randomized_trade_mechanism(env, p, name="banded_randomized"), restore, describe, revenue,
    )  # fmt: skip


def shrink(params: dict, delta) -> dict:
    """The box ``(x + delta, y - delta)``: ``delta > 0`` trades less, ``< 0`` more; the band unchanged."""
    cut = params["cut"]
    return dict(params, cut=cut + jnp.asarray([1.0, -1.0], cut.dtype) * delta)


def box_grid_points(params: dict, points: int) -> Array:
    """``points x points`` profiles of the closed trade box ``[x, 1] x [0, y]`` (clipped to the square)."""
    cut = params["cut"]
    x, y = jnp.clip(cut[0], 0.0, 1.0), jnp.clip(cut[1], 0.0, 1.0)
    t = jnp.linspace(0.0, 1.0, points, dtype=cut.dtype)
    b, sg = jnp.meshgrid(x + (1.0 - x) * t, y * t, indexing="ij")
    return jnp.stack([b.ravel(), sg.ravel()], -1)


def box_deficit(env: Environment, params: dict, points: int) -> Array:
    """The worst deficit ``-(t_beta + t_sigma)`` over :func:`box_grid_points` (outside the box nothing is paid);
    ``-inf`` for an empty box."""
    g = box_grid_points(params, points)
    d = jnp.max(jax.vmap(lambda s: -jnp.sum(envelope_payments(env, params, s)))(g))
    cut = params["cut"]
    return jnp.where((cut[0] <= 1.0) & (cut[1] >= 0.0), d, -jnp.inf)


def repair_box(worst_deficit, span: float = 1.0, iters: int = 50, tol: float = 0.0) -> float:
    """The least shrink ``delta`` of the box in ``[-span, span]`` with ``worst_deficit(delta) <= tol``
    (``worst_deficit`` non-increasing in ``delta``), by bisection: negative (a larger box) when there is slack."""
    lo, hi = -span, span
    if worst_deficit(hi) > tol:
        raise ValueError("repair: no shrink of the trade box makes the rule budget feasible")
    if worst_deficit(lo) <= tol:
        return lo
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if worst_deficit(mid) <= tol:
            hi = mid
        else:
            lo = mid
    return hi


def repair_shift(worst_deficit, span: float = 40.0, iters: int = 60, tol: float = 0.0) -> float:
    """The shift ``delta`` of ``z0`` that puts the worst deficit on the budget boundary, from either side.

    ``worst_deficit(delta)`` is assumed non-decreasing in ``delta`` (more trade, more to pay). If it is positive
    at 0, bisect on ``[-span, 0]`` for the largest feasible shift; if not, on ``[0, span]``: the result is the
    largest ``delta`` with ``worst_deficit(delta) <= tol`` (to ``span / 2^iters``).
    """
    if worst_deficit(0.0) > tol:
        lo, hi = -span, 0.0
        if worst_deficit(lo) > tol:
            raise ValueError("repair: no shift of z0 makes the rule budget feasible (even almost never trading)")
    else:
        lo, hi = 0.0, span
        if worst_deficit(hi) <= tol:
            return hi
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if worst_deficit(mid) <= tol:
            lo = mid
        else:
            hi = mid
    return lo
