"""Bikhchandani's pivotal personalized prices for one object, multi-dimensional signals (B Sec. 4, 4.1).

Fix the others' signals ``s_-i``. Buyer ``i``'s signal space ``S_i`` splits into
equivalence classes of his own value (B Sec. 4)::

    S_i(lam, s_-i) = {x in S_i : V_i(x, s_-i) = V_i(lam 1, s_-i)},   lam in [0, 1]
    V^m_ij(lam, s_-i) = max_{x in S_i(lam, s_-i)} V_j(x, s_-i)             (B, before eq. (6))
    g_ij(lam)        = V_i(lam 1, s_-i) - V^m_ij(lam, s_-i)              (non-decreasing, B Lemma 2)
    lam*_ij          = max{lam : g_ij(lam) = 0}  (1 if g_ij(1) < 0, 0^- if g_ij(0) > 0)
    t*_i             = max_{j != i} V^m_ij(lam*_ij, s_-i)                  (B eq. (8), Sec. 4.1)

Two numerical routes, written for ONE profile (vmap outside):

* ``method="nested"`` follows the text: :func:`pivotal_max` computes ``V^m_ij`` as a
  constrained maximization on the level set ``{V_i = L}`` -- directions from the corner
  ``lo_i`` over the positive orthant (``d_i - 1`` hyperspherical angles), a bisection
  along the monotone path ``lo_i -> (exit point of the ray) -> hi_i`` onto the level set,
  and a zooming grid over the angles (:func:`maximize_over_rays`) -- and
  :func:`lambda_star` bisects ``g_ij``.
* ``method="rays"`` (default, ~30x cheaper) uses B Assumption 2 to collapse the
  nesting. Along a ray ``V_i - V_j`` is non-decreasing (Assumption 2), so
  ``{lam : g_ij(lam) <= 0} = {lam : V_i(lam 1) <= M_ij}`` with::

      M_ij(s_-i) = max{V_i(x, s_-i) : x in S_i, V_i(x, s_-i) <= V_j(x, s_-i)}

  and, when ``g_ij(1) >= 0 >= g_ij(0)``, ``t*_ij = V_i(lam*_ij 1) = M_ij``. On each ray
  ``M`` is attained at the last point where ``V_i <= V_j`` (one bisection), then the
  same zooming grid over angles. The end cases are closed forms:
  ``g_ij(1) < 0`` gives ``t*_ij = V^m_ij(1) = V_j(1, s_-i)`` (Assumption 1a) and
  ``g_ij(0) > 0`` gives ``t*_ij = V^m_ij(0) = V_j(0, s_-i)`` (Assumption 2: ``V_j`` is
  constant on ``{V_i = V_i(0)}``).

Both routes need B Assumptions 1a, 1b and 2; Assumption 3 is what makes the result
non-trivial. Under Assumption 2, ``V_j`` is constant along any piece of a ray on which
``V_i`` is flat, so taking the first crossing of the level set on each ray loses nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src import priors
from jaxmech._src.environments import Environment
from jaxmech._src.mechanisms import bisect

Array = jax.Array
Params = Any

METHODS = ("rays", "nested")


class PivotalConfig(NamedTuple):
    """Static accuracy settings (hashable; each changes the compiled program).

    Attributes:
      rays: coarse grid points per angle (odd; ``rays ** (d_i - 1)`` rays; ``d_i = 1`` uses one ray).
      levels: zoom levels after the coarse grid when ``d_i >= 3`` (each shrinks the spacing by
        ``(rays - 1) / 2``).
      refine: golden-section steps on the angle when ``d_i = 2`` (the bracket is the coarse best
        +- one spacing and shrinks by 0.618 per step: the refinement step of the maximization).
      bisect_iters: bisection steps along a ray (and on ``lam`` for ``method="nested"``);
        ``None``: 8 in float32, 20 in float64.
      secant_iters: regula-falsi steps inside the final bisection bracket (the crossing of a
        smooth ``V_i - V_j`` is then exact to rounding; 0: plain bisection).
      g_tol: ``method="nested"`` only: ``g_ij(lam) > g_tol * (1 + |V|)`` counts as ``g > 0``
        (numerical zero of the flat part of ``g``); ``None``: 1e-5 in float32, 1e-9 in float64.
    """

    rays: int = 9
    levels: int = 6
    refine: int = 24
    bisect_iters: int | None = None
    secant_iters: int = 2
    g_tol: float | None = None


#: A slow, high-accuracy setting: the reference the default is checked against (``ray_accuracy``).
FINE = PivotalConfig(rays=65, levels=10, refine=40, bisect_iters=30, secant_iters=3)


class PivotalSolution(NamedTuple):
    """Diagnostics of the construction for one ordered pair ``(i, j)`` at one profile.

    Attributes:
      price: ``t*_ij = V^m_ij(lam*_ij, s_-i)``, shape ``()``.
      lam: ``lam*_ij``, shape ``()``; the ``0^-`` case (B Sec. 4) is reported as ``0`` with ``case == 2``.
      case: 0 interior (``g(1) >= 0 >= g(0)``), 1 ``g(1) < 0`` (i never wins), 2 ``g(0) > 0`` (i always wins).
      argmax: a maximizer in ``S_i`` (the pivotal signal ``s^m_ij`` for the nested route,
        the best signal with ``V_i <= V_j`` for the ray route), shape ``(d_i,)``.
    """

    price: Array
    lam: Array
    case: Array
    argmax: Array


def _is_int(x, least: int) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= least


def _validate(env: Environment, config: PivotalConfig, method: str) -> None:
    if not env.is_separable:
        raise ValueError(f"pivotal prices: environment {env.name!r} is not separable (needs env.values)")
    if env.n_agents < 2:
        raise ValueError(f"pivotal prices: need at least 2 buyers, got dims={env.dims}")
    if method not in METHODS:
        raise ValueError(f"pivotal prices: method must be one of {METHODS}, got {method!r}")
    r = config.rays
    if not _is_int(r, 3) or r % 2 == 0:
        raise ValueError(f"PivotalConfig.rays: expected an odd integer >= 3, got {r!r}")
    for field, least in (("levels", 0), ("refine", 0), ("secant_iters", 0)):
        if not _is_int(getattr(config, field), least):
            raise ValueError(f"PivotalConfig.{field}: expected an integer >= {least}, got {getattr(config, field)!r}")
    if config.bisect_iters is not None and not _is_int(config.bisect_iters, 1):
        raise ValueError(f"PivotalConfig.bisect_iters: expected an integer >= 1 or None, got {config.bisect_iters!r}")


def _iters(config: PivotalConfig, dtype) -> int:
    if config.bisect_iters is not None:
        return config.bisect_iters
    return 20 if jnp.dtype(dtype) == jnp.float64 else 8


def _g_tol(config: PivotalConfig, dtype) -> float:
    if config.g_tol is not None:
        return config.g_tol
    return 1e-9 if jnp.dtype(dtype) == jnp.float64 else 1e-5


def crossing(h: Callable[[Array], Array], lo: Array, hi: Array, iters: int, secant: int, *, strict: bool = True) -> Array:
    """``inf{r in [lo, hi] : h(r) > 0}`` (``>= 0`` if not ``strict``) for a non-decreasing ``h``.

    ``iters`` bisection steps keep a bracket ``[a, b]`` with ``h(a) <= 0 < h(b)``; then
    ``secant`` regula-falsi steps inside it (linear interpolation of ``h``), exact to rounding
    where ``h`` is smooth on the bracket. Returns ``lo`` if ``h(lo) > 0`` and ``hi`` if ``h(hi) <= 0``.
    ``2 + iters + secant`` evaluations of ``h``.
    """
    lo = jnp.asarray(lo)
    hi = jnp.asarray(hi, lo.dtype)

    def pos(x):
        return x > 0 if strict else x >= 0

    h_lo, h_hi = h(lo), h(hi)

    def step(carry, mid):
        a, b, ha, hb = carry
        hm = h(mid)
        up = pos(hm)
        return jnp.where(up, a, mid), jnp.where(up, mid, b), jnp.where(up, ha, hm), jnp.where(up, hm, hb)

    def bisect_body(_, carry):
        a, b = carry[0], carry[1]
        return step(carry, 0.5 * (a + b))

    def interp(carry):
        a, b, ha, hb = carry
        w = jnp.clip(ha / jnp.where(hb > ha, ha - hb, -1.0), 0.0, 1.0)  # h(a) <= 0 < h(b): root at a + w (b - a)
        return a + w * (b - a)

    def secant_body(_, carry):
        return step(carry, interp(carry))

    carry = jax.lax.fori_loop(0, iters, bisect_body, (lo, hi, h_lo, h_hi))
    carry = jax.lax.fori_loop(0, secant, secant_body, carry)
    x = interp(carry) if secant > 0 else carry[1]
    return jnp.where(pos(h_lo), lo, jnp.where(pos(h_hi), x, hi))


# --------------------------------------------------------------------------
# rays over the positive orthant of the unit cube


def ray_direction(angles: Array) -> Array:
    """Unit vector in the closed positive orthant from ``d - 1`` hyperspherical angles in ``[0, pi/2]``.

    ``u_1 = cos a_1, u_2 = sin a_1 cos a_2, ..., u_d = sin a_1 ... sin a_{d-1}``; shape ``(d,)``.
    """
    angles = jnp.asarray(angles)
    sines = jnp.concatenate([jnp.ones((1,), angles.dtype), jnp.cumprod(jnp.sin(angles))])  # (d,)
    cosines = jnp.concatenate([jnp.cos(angles), jnp.ones((1,), angles.dtype)])  # (d,)
    return jnp.maximum(sines * cosines, 0.0)


def ray_exit(u: Array) -> Array:
    """``r_max`` with ``r_max u`` on the far faces of ``[0, 1]^d`` (``u`` a direction of the orthant)."""
    return 1.0 / jnp.max(u)


def _unit_grid(n_angles: int, points: int) -> np.ndarray:
    """Product grid of ``points`` offsets per angle on ``[-1, 1]``, shape ``(points ** n_angles, n_angles)``."""
    axis = np.linspace(-1.0, 1.0, points)
    mesh = np.meshgrid(*([axis] * n_angles), indexing="ij")
    return np.stack([g.ravel() for g in mesh], axis=-1)


_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0


def _golden(objective, a: Array, b: Array, iters: int, best):
    """Golden-section maximization of a scalar ``objective`` on ``[a, b]``, keeping ``best = (value, x)``."""
    c, d = b - _INV_PHI * (b - a), a + _INV_PHI * (b - a)

    def body(_, carry):
        a, b, c, d, fc, fd = carry
        left = fc > fd  # the maximum is in [a, d]
        a2, b2 = jnp.where(left, a, c), jnp.where(left, d, b)
        new = jnp.where(left, b2 - _INV_PHI * (b2 - a2), a2 + _INV_PHI * (b2 - a2))
        fn = objective(new[None])
        c2, d2 = jnp.where(left, new, d), jnp.where(left, c, new)
        fc2, fd2 = jnp.where(left, fn, fd), jnp.where(left, fc, fn)
        return a2, b2, c2, d2, fc2, fd2

    fc, fd = objective(c[None]), objective(d[None])
    _, _, c, d, fc, fd = jax.lax.fori_loop(0, iters, body, (a, b, c, d, fc, fd))
    val, x = jnp.where(fc > fd, fc, fd), jnp.where(fc > fd, c, d)
    better = val > best[0]
    return jnp.where(better, val, best[0]), jnp.where(better, x[None], best[1])


def maximize_over_rays(
    objective: Callable[[Array], Array], d: int, config: PivotalConfig, dtype
) -> tuple[Array, Array]:
    """``max_angles objective(angles)`` over ``d - 1`` angles in ``[0, pi/2]``: a coarse grid, then a refinement.

    The coarse grid has ``rays`` points per angle over ``[0, pi/2]``. One angle (``d = 2``):
    golden-section search on the coarse best +- one spacing (``refine`` steps). Several
    angles: ``levels`` zoom levels, each the same grid on the previous best +- one spacing
    (the spacing shrinks by ``(rays - 1) / 2`` per level). The best point seen is kept, so the
    result is never worse than the coarse grid. Returns ``(value, angles)``, shapes ``()`` and ``(d - 1,)``.
    """
    if d == 1:
        angles = jnp.zeros((0,), dtype)
        return objective(angles), angles
    k = d - 1
    offsets = jnp.asarray(_unit_grid(k, config.rays), dtype)  # (P, k) in [-1, 1]
    half_pi = math.pi / 2
    shrink = 2.0 / (config.rays - 1)

    def level(state, center, half):
        best_val, best = state
        pts = jnp.clip(center[None, :] + half * offsets, 0.0, half_pi)
        vals = jax.vmap(objective)(pts)
        j = jnp.argmax(vals)
        better = vals[j] > best_val
        return jnp.where(better, vals[j], best_val), jnp.where(better, pts[j], best)

    center0 = jnp.full((k,), half_pi / 2, dtype)
    half0 = jnp.asarray(half_pi / 2, dtype)
    state = level((jnp.full((), -jnp.inf, dtype), center0), center0, half0)
    spacing = half0 * jnp.asarray(shrink, dtype)
    if k == 1:
        if config.refine == 0:
            return state
        x = state[1][0]
        return _golden(objective, jnp.maximum(x - spacing, 0.0), jnp.minimum(x + spacing, half_pi), config.refine, state)

    def body(step, state):
        return level(state, state[1], spacing * jnp.asarray(shrink, dtype) ** step.astype(dtype))

    return jax.lax.fori_loop(0, config.levels, body, state)


# --------------------------------------------------------------------------
# one ordered pair (i, j) at one profile


class _Section(NamedTuple):
    """``V`` as a function of buyer ``i``'s signal in unit-cube coordinates ``y in [0, 1]^{d_i}``."""

    vals: Callable[[Array], Array]  # y -> (n,)
    d: int


def _section(env: Environment, s: Array, i: int) -> _Section:
    sl = priors.agent_slice(env.dims, i)
    lo = jnp.asarray(env.lo[sl], s.dtype)
    width = jnp.asarray(env.hi[sl] - env.lo[sl], s.dtype)

    def vals(y):
        return env.values(priors.replace_signal(s, env.dims, i, lo + jnp.clip(y, 0.0, 1.0) * width))

    return _Section(vals, env.dims[i])


def _to_signal(env: Environment, i: int, y: Array) -> Array:
    sl = priors.agent_slice(env.dims, i)
    return jnp.asarray(env.lo[sl], y.dtype) + y * jnp.asarray(env.hi[sl] - env.lo[sl], y.dtype)


def pivotal_max(
    env: Environment, s: Array, i: int, j: int, lam: Array, config: PivotalConfig = PivotalConfig()
) -> tuple[Array, Array]:
    """``V^m_ij(lam, s_-i) = max {V_j(x, s_-i) : V_i(x, s_-i) = V_i(lam 1, s_-i)}`` (B Sec. 4).

    Each direction ``u`` gives the monotone path ``lo_i -> b -> hi_i`` with ``b`` where the
    ray along ``u`` leaves ``S_i``; ``V_i`` is non-decreasing on it (Assumption 1a), so
    :func:`crossing` finds its first point with ``V_i >= L`` (the path always reaches the
    class, and the first legs alone cover ``S_i``). Returns ``(value, maximizer)``; the
    maximizer ``s^m_ij`` has shape ``(d_i,)``. ``s_i`` in ``s`` is ignored; ``i``, ``j`` are static ints.
    """
    sec = _section(env, s, i)
    dtype = s.dtype
    iters = _iters(config, dtype)
    lam = jnp.asarray(lam, dtype)
    level = sec.vals(jnp.full((sec.d,), lam, dtype))[i]
    one = jnp.ones((sec.d,), dtype)

    def point(angles):
        # monotone path 0 -> b -> 1, b = r_max u on the far faces: V_i crosses every level on it
        b = ray_exit(ray_direction(angles)) * ray_direction(angles)

        def path(tau):
            return jnp.where(tau <= 1.0, tau * b, b + (tau - 1.0) * (one - b))

        h = lambda t: sec.vals(path(t))[i] - level  # noqa: E731
        tau = crossing(h, jnp.zeros((), dtype), jnp.full((), 2.0, dtype), iters + 1, config.secant_iters, strict=False)
        return path(tau)

    def objective(angles):
        return sec.vals(point(angles))[j]

    value, angles = maximize_over_rays(objective, sec.d, config, dtype)
    return value, _to_signal(env, i, point(angles))


def g_pair(env: Environment, s: Array, i: int, j: int, lam: Array, config: PivotalConfig = PivotalConfig()) -> Array:
    """``g_ij(lam; s_-i) = V_i(lam 1, s_-i) - V^m_ij(lam, s_-i)``, non-decreasing in ``lam`` (B Lemma 2)."""
    sec = _section(env, s, i)
    lam = jnp.asarray(lam, s.dtype)
    return sec.vals(jnp.full((sec.d,), lam, s.dtype))[i] - pivotal_max(env, s, i, j, lam, config)[0]


def _end_cases(sec: _Section, i: int, j: int, dtype):
    v0 = sec.vals(jnp.zeros((sec.d,), dtype))
    v1 = sec.vals(jnp.ones((sec.d,), dtype))
    g0 = v0[i] - v0[j]  # = g_ij(0): V_j is constant on {V_i = V_i(0)} (Assumption 2)
    g1 = v1[i] - v1[j]  # = g_ij(1): V^m_ij(1) = V_j(1) (Assumption 1a)
    case = jnp.where(g1 < 0, 1, jnp.where(g0 > 0, 2, 0))
    end_price = jnp.where(case == 1, v1[j], v0[j])
    return case, end_price


def lambda_star(env: Environment, s: Array, i: int, j: int, config: PivotalConfig = PivotalConfig()) -> PivotalSolution:
    """``lam*_ij`` by bisection on the monotone ``g_ij`` (B Lemma 2) and ``t*_ij = V^m_ij(lam*_ij)`` (eq. (8)).

    The nested route: every bisection step on ``lam`` solves a constrained maximization
    (:func:`pivotal_max`). ``lam* = inf{lam : g_ij(lam) > tol}`` equals ``max{lam : g = 0}``
    up to ``tol``. Bisection only (``g`` is flat at 0 on an interval in general, so no secant steps).
    """
    dtype = s.dtype
    sec = _section(env, s, i)
    case, end_price = _end_cases(sec, i, j, dtype)
    tol = _g_tol(config, dtype)

    def positive(lam):
        level = sec.vals(jnp.full((sec.d,), lam, dtype))[i]
        return level - pivotal_max(env, s, i, j, lam, config)[0] > tol * (1.0 + jnp.abs(level))

    lam = bisect(positive, jnp.zeros((), dtype), jnp.ones((), dtype), max(_iters(config, dtype), 20))
    lam = jnp.where(case == 1, 1.0, jnp.where(case == 2, 0.0, lam))
    vm, arg = pivotal_max(env, s, i, j, lam, config)
    price = jnp.where(case == 0, vm, end_price)
    return PivotalSolution(price, lam, case, arg)


def _ray_search(env: Environment, s: Array, i: int, others: tuple[int, ...], config: PivotalConfig):
    """``M = max{V_i(x) : V_i(x) <= max_{j in others} V_j(x)}`` over rays (``-inf`` if the set is empty).

    ``V_i - max_j V_j = min_j (V_i - V_j)`` is non-decreasing along rays (Assumption 2), so the
    last point with ``V_i <= max_j V_j`` on each ray is one :func:`crossing`.
    """
    dtype = s.dtype
    sec = _section(env, s, i)
    idx = jnp.asarray(others)

    def margin(y):
        v = sec.vals(y)
        return v[i] - jnp.max(v[idx])

    def point(angles):
        u = ray_direction(angles)
        r = crossing(lambda r: margin(r * u), jnp.zeros((), dtype), ray_exit(u), _iters(config, dtype), config.secant_iters)
        return r * u

    def objective(angles):
        return sec.vals(point(angles))[i]

    m, angles = maximize_over_rays(objective, sec.d, config, dtype)
    empty = margin(jnp.zeros((sec.d,), dtype)) > 0  # i beats every j at s_i = 0, hence everywhere
    return sec, jnp.where(empty, -jnp.inf, m), point(angles)


def ray_price(env: Environment, s: Array, i: int, j: int, config: PivotalConfig = PivotalConfig()) -> PivotalSolution:
    """``t*_ij`` by the one-level ray search (Assumption 2; see the module docstring).

    Interior case: ``t*_ij = max{V_i(x) : V_i(x) <= V_j(x)}``; on each ray the last point with
    ``V_i <= V_j`` is a :func:`crossing` (``V_i - V_j`` is non-decreasing along rays). ``lam`` is
    recovered by bisecting ``V_i(lam 1) >= t*`` on the diagonal.
    """
    dtype = s.dtype
    sec, m, arg = _ray_search(env, s, i, (j,), config)
    case, end_price = _end_cases(sec, i, j, dtype)
    lam = bisect(
        lambda lam: sec.vals(jnp.full((sec.d,), lam, dtype))[i] >= m,
        jnp.zeros((), dtype),
        jnp.ones((), dtype),
        max(_iters(config, dtype), 24),
    )
    lam = jnp.where(case == 1, 1.0, jnp.where(case == 2, 0.0, lam))
    return PivotalSolution(jnp.where(case == 0, m, end_price), lam, case, _to_signal(env, i, arg))


def buyer_price(env: Environment, s: Array, i: int, config: PivotalConfig = PivotalConfig()) -> Array:
    """``t*_i(s_-i) = max_{j != i} t*_ij`` with ONE ray search (B Sec. 4.1, ray route).

    With ``M_i = max{V_i : V_i <= max_{j != i} V_j}`` (one search for all opponents) and the end
    cases of each pair (``g_ij(1) < 0``: ``t*_ij = V_j(1)``; ``g_ij(0) > 0``: ``t*_ij = V_j(0)``)::

        t*_i = max(max_{j: g_ij(1) < 0} V_j(1 , s_-i), max_{j: g_ij(0) > 0} V_j(0, s_-i), M_i)

    equals ``max_j t*_ij``: interior pairs have ``t*_ij = M_ij`` and ``M_i = max_j M_ij``; a pair with
    ``g_ij(1) < 0`` has ``V_j(1) > V_i(1) >= M_i``; pairs with ``g_ij(0) > 0`` have ``M_ij = -inf``.
    """
    n = env.n_agents
    others = tuple(j for j in range(n) if j != i)
    sec, m, _ = _ray_search(env, s, i, others, config)
    dtype = s.dtype
    v0 = sec.vals(jnp.zeros((sec.d,), dtype))
    v1 = sec.vals(jnp.ones((sec.d,), dtype))
    idx = jnp.asarray(others)
    never = v1[idx] > v1[i]  # g_ij(1) < 0
    always = v0[idx] < v0[i]  # g_ij(0) > 0
    ends = jnp.maximum(jnp.max(jnp.where(never, v1[idx], -jnp.inf)), jnp.max(jnp.where(always, v0[idx], -jnp.inf)))
    return jnp.maximum(ends, m)


def _pair_price(env: Environment, s: Array, i: int, j: int, config: PivotalConfig, method: str) -> Array:
    if method == "rays":
        return ray_price(env, s, i, j, config).price
    return lambda_star(env, s, i, j, config).price


# --------------------------------------------------------------------------
# prices and the mechanism


def pair_prices(env: Environment, s: Array, *, config: PivotalConfig = PivotalConfig(), method: str = "rays") -> Array:
    """All ``t*_ij(s_-i)`` at one profile, shape ``(n, n)`` (diagonal ``-inf``)."""
    _validate(env, config, method)
    n = env.n_agents
    rows = []
    for i in range(n):
        row = [
            _pair_price(env, s, i, j, config, method) if j != i else jnp.full((), -jnp.inf, s.dtype) for j in range(n)
        ]
        rows.append(jnp.stack(row))
    return jnp.stack(rows)


def pivotal_prices(
    env: Environment, *, config: PivotalConfig = PivotalConfig(), method: str = "rays"
) -> Callable[[Params, Array], Array]:
    """B's admissible personalized prices ``t*_i(s_-i) = max_{j != i} V^m_ij(lam*_ij(s_-i), s_-i)`` (eq. (8), Sec. 4.1).

    Returns ``prices(params, m) -> (n,)`` for :func:`personalized_prices`; ``params`` is
    unused and ``t*_i`` ignores ``m_i``. ``method="rays"`` (default: one search per buyer,
    :func:`buyer_price`) or ``"nested"`` (``lam*_ij`` by bisection over constrained maxima, per pair;
    see the module docstring). Requires B Assumptions 1a, 1b, 2 for admissibility (eq. (3)).
    """
    _validate(env, config, method)
    n = env.n_agents

    def prices(params, m):
        del params
        if method == "rays":
            return jnp.stack([buyer_price(env, m, i, config) for i in range(n)])
        return jnp.max(pair_prices(env, m, config=config, method=method), axis=1)

    return prices


def raise_prices(prices: Callable[[Params, Array], Array], eps: Callable[[Array], Array]):
    """``t'_i = t_i + eps_i(m)`` with ``eps_i >= 0`` a function of ``m_-i`` only (B Sec. 3: the continuum of prices).

    Any price tuple above an admissible one is admissible (eq. (3)), so the mechanism stays ex post IC
    (Lemma 1). ``eps(m) -> (n,)``; its ``i``-th entry must not depend on ``m_i``; negative entries are clipped.
    """

    def raised(params, m):
        return prices(params, m) + jnp.maximum(eps(m), 0.0)

    return raised


def pivotal_mechanism(
    env: Environment,
    prices: Callable[[Params, Array], Array] | None = None,
    *,
    config: PivotalConfig = PivotalConfig(),
    method: str = "rays",
    name: str = "pivotal_prices",
):
    """B eq. (4) for ``prices`` (default: the construction, :func:`pivotal_prices`) with the prices computed once.

    Same decision and payments as :func:`personalized_prices` (buyer ``i`` wins iff
    ``V_i(m) > t_i(m_-i)``; if several clear, the largest surplus); ``decide`` and ``pay`` share
    one evaluation of the prices. The menu of buyer ``i`` (what the audit deviates against)
    computes ``t_i(m_-i)`` once and answers ``a_i`` iff ``V_i(m_i, m_-i) > t_i``: exactly the
    allocation to ``i`` when the prices are admissible (eq. (3)); where they are not, truthful
    ``decide`` may give the object to another clearing buyer and the audit shows that as regret.
    """
    from jaxmech._src.mechanisms import personalized_prices

    prices = pivotal_prices(env, config=config, method=method) if prices is None else prices
    base = personalized_prices(env, prices, name=name)
    n = env.n_agents

    def outcome(p, m):
        t = prices(p, m)
        surplus = env.values(m) - t
        win = jnp.argmax(surplus)
        q = jax.nn.one_hot(win, n, dtype=m.dtype) * (surplus[win] > 0).astype(m.dtype)
        return q, q * t

    def decide(p, m):
        return outcome(p, m)[0]

    def pay(p, m):
        return outcome(p, m)[1]

    def menu(p, m, i):
        t_i = prices(p, m)[i]
        one = jax.nn.one_hot(i, n, dtype=m.dtype)

        def respond(m_i):
            v = env.values(priors.replace_signal(m, env.dims, i, m_i))[i]
            win = (v > t_i).astype(m.dtype)
            return one * win, win * t_i

        return respond

    return base._replace(decide=decide, pay=pay, menu=menu)


# --------------------------------------------------------------------------
# checks on samples: B Assumptions 1a, 2, 3 and admissibility (eq. (3)), each with a witness


class Violation(NamedTuple):
    """Worst violation of a sampled inequality and where it happens.

    Attributes:
      worst: the worst violation (``<= 0``: none found), shape ``(n, n)`` indexed ``[i, k]`` as documented
        by the check.
      profile: the witness profile ``s``, shape ``(n, n, D)``.
      moved: the second profile ``s'`` of the witness pair, shape ``(n, n, D)``.
    """

    worst: Array
    profile: Array
    moved: Array


def _up(env: Environment, s: Array, step: Array, k: int, hi: Array) -> Array:
    sl = priors.agent_slice(env.dims, k)
    return priors.replace_signal(s, env.dims, k, jnp.minimum(s[sl] + jnp.abs(step[sl]), hi[sl]))


def _worst(env: Environment, profiles: Array, steps: Array, gap: Callable[[Array, Array, int], Array]) -> Violation:
    """``max`` over samples of ``gap(s, s', k)[i]`` with ``s'`` = ``s`` with buyer ``k``'s signal raised by the step."""
    n = env.n_agents
    hi = jnp.asarray(env.hi, profiles.dtype)
    worst, prof, moved = [], [], []
    for k in range(n):

        def one(s, step, k=k):
            s2 = _up(env, s, step, k, hi)
            return gap(s, s2, k), s2

        g, s2 = jax.vmap(one)(profiles, steps)  # (N, n), (N, D)
        j = jnp.argmax(g, axis=0)  # (n,)
        worst.append(g[j, jnp.arange(n)])
        prof.append(profiles[j])
        moved.append(s2[j])
    # stacked over the moved buyer k: transpose to [i, k]
    return Violation(jnp.stack(worst, axis=1), jnp.stack(prof, axis=1), jnp.stack(moved, axis=1))


def check_assumption1a(env: Environment, profiles: Array, steps: Array) -> Violation:
    """B Assumption 1a on samples: ``worst[i, k] = max V_i(s) - V_i(s')`` over ``s' = s`` with ``s_k`` raised.

    ``profiles``, ``steps`` shape ``(N, D)`` (steps' absolute values are used, clipped to the
    domain). ``worst <= 0`` (up to rounding) means no decrease was found; otherwise
    ``profile[i, k]`` and ``moved[i, k]`` are a pair with ``s' >= s`` and ``V_i(s') < V_i(s)``.
    """
    return _worst(env, profiles, steps, lambda s, s2, k: env.values(s) - env.values(s2))


def check_assumption2(env: Environment, profiles: Array, steps: Array) -> Violation:
    """B Assumption 2 on samples (footnote 14 form): ``worst[i, j] = max (dV_j - dV_i)`` for ``s_i -> s_i'``.

    ``V_i(s'_i, s_-i) - V_i(s) >= V_j(s'_i, s_-i) - V_j(s)`` for ``s'_i > s_i``: buyer ``i``'s value
    is the more sensitive to ``i``'s own signal. ``worst[i, i] = 0``; a positive entry comes with
    its witness pair ``profile[i, j]``, ``moved[i, j]`` (entries near float rounding, ~1e-6 in float32, are noise).
    """
    def gap(s, s2, k):
        dv = env.values(s2) - env.values(s)
        return dv - dv[k]  # [j]: dV_j - dV_k for buyer k's signal raised

    v = _worst(env, profiles, steps, gap)  # [j, k]
    n = env.n_agents
    t = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731  -> [k = i, j]
    return Violation(t(v.worst).at[jnp.diag_indices(n)].set(0.0), t(v.profile), t(v.moved))


class Leadership(NamedTuple):
    """B Assumption 3 on samples: how often each buyer's value is strictly the highest.

    Attributes:
      share: ``P(V_i > max_{j != i} V_j)`` per buyer, shape ``(n,)``.
      se: its Monte Carlo standard error, shape ``(n,)``.
      margin: ``max_s (V_i - max_{j != i} V_j)`` over the samples, shape ``(n,)``.
      profile: where the margin is attained (a witness of leadership when ``margin > 0``, else the
        closest buyer ``i`` came), shape ``(n, D)``.
    """

    share: Array
    se: Array
    margin: Array
    profile: Array


def check_assumption3(env: Environment, profiles: Array) -> Leadership:
    """B Assumption 3 (Sec. 4.1 form): each buyer strictly highest on a set of positive measure.

    Holds on the samples when ``share - 1.96 se > 0`` for every buyer (and at least two buyers for
    n > 2, which is what Sec. 4.1 needs).
    """
    v = jax.vmap(env.values)(profiles)  # (N, n)
    n = env.n_agents
    lead = jnp.stack([v[:, i] - jnp.max(jnp.delete(v, i, axis=1, assume_unique_indices=True), axis=1) for i in range(n)], 1)
    p = jnp.mean((lead > 0).astype(v.dtype), axis=0)
    j = jnp.argmax(lead, axis=0)
    return Leadership(p, jnp.sqrt(p * (1 - p) / v.shape[0]), lead[j, jnp.arange(n)], profiles[j])


class Admissibility(NamedTuple):
    """B eq. (3) on samples: at most one buyer's value exceeds his personalized price.

    Attributes:
      violations: number of sampled profiles where two or more buyers clear their prices, shape ``()``.
      share: ``violations / N``, shape ``()``.
      margin: the largest second-highest surplus ``V_i - t_i`` over the samples (``> 0``: a violation),
        shape ``()``.
      profile: the witness profile, shape ``(D,)``; ``values`` and ``prices`` there, shape ``(n,)`` each.
    """

    violations: Array
    share: Array
    margin: Array
    profile: Array
    values: Array
    prices: Array


def check_admissible(
    env: Environment, prices: Callable[[Params, Array], Array], profiles: Array, params: Params = ()
) -> Admissibility:
    """Check B eq. (3) for any price tuple ``prices(params, m) -> (n,)`` on sampled profiles ``(N, D)``."""
    v = jax.vmap(env.values)(profiles)
    t = jax.vmap(lambda m: prices(params, m))(profiles)
    surplus = v - t
    second = jnp.sort(surplus, axis=1)[:, -2]
    j = jnp.argmax(second)
    bad = jnp.sum((second > 0).astype(jnp.int32))
    return Admissibility(bad, bad / profiles.shape[0], second[j], profiles[j], v[j], t[j])
