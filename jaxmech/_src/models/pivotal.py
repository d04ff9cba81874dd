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
  ``lo_i`` over the positive orthant (``d_i - 1`` hyperspherical angles), a root search
  (:func:`crossing`) along the monotone path ``lo_i -> (exit point of the ray) -> hi_i`` onto
  the level set, and a maximization over the angles (:func:`maximize_over_rays`) -- and
  :func:`lambda_star` bisects ``g_ij``.
* ``method="rays"`` (default, far cheaper) uses B Assumption 2 to collapse the nesting.
  Along a ray ``V_i - V_j`` is non-decreasing (Assumption 2), so
  ``{lam : g_ij(lam) <= 0} = {lam : V_i(lam 1) <= M_ij}`` with::

      M_ij(s_-i) = max{V_i(x, s_-i) : x in S_i, V_i(x, s_-i) <= V_j(x, s_-i)}

  and, when ``g_ij(1) >= 0 >= g_ij(0)``, ``t*_ij = V_i(lam*_ij 1) = M_ij``. On each ray
  ``M`` is attained at the last point where ``V_i <= V_j``; since ``V_i - max_j V_j`` is
  non-decreasing along rays too, ONE search per buyer gives ``max_j M_ij`` (:func:`buyer_price`).
  The end cases are closed forms: ``g_ij(1) < 0`` gives ``t*_ij = V^m_ij(1) = V_j(1, s_-i)``
  (Assumption 1a) and ``g_ij(0) > 0`` gives ``t*_ij = V^m_ij(0) = V_j(0, s_-i)`` (Assumption 2:
  ``V_j`` is constant on ``{V_i = V_i(0)}``).

Accuracy and cost (:class:`PivotalConfig`): on each ray a few bisection steps and then
regula-falsi steps in the final bracket (:func:`crossing`, exact to rounding for smooth ``V``);
over the angle a coarse grid and then a refinement (golden section for ``d_i = 2``, a halving
3-point pattern for ``d_i >= 3``). :func:`ray_accuracy` measures the result against the slow
:data:`FINE` setting; tests check it against a dense brute force of the definitions.

Both routes need B Assumptions 1a, 1b and 2; Assumption 3 is what makes the result
non-trivial. Under Assumption 2, ``V_j`` is constant along any piece of a ray on which
``V_i`` is flat, so taking the first crossing of the level set on each ray loses nothing.

This module holds the construction, the mechanism (B eq. (4) at these prices) and the accuracy
diagnostics (:func:`ray_accuracy`, :func:`lemma2_check`). The checks of the assumptions and of
admissibility (eq. (3)) on samples, and the price statistics, are in :mod:`pivotal_checks`; the
two-outcome contrast of B Sec. 3 is in :mod:`two_outcome`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.core import priors
from jaxmech._src.core.environments import Environment
from jaxmech._src.core.mechanisms import (
    bisect,
    buyer_price_of,
    personalized_prices,
    price_kinks,
    with_nested_loops,
)

Array = jax.Array
Params = Any

METHODS = ("rays", "nested")


class PivotalConfig(NamedTuple):
    """Static accuracy settings (hashable; each changes the compiled program).

    Attributes:
      rays: coarse grid points per angle (odd; ``rays ** (d_i - 1)`` rays; ``d_i = 1`` uses one ray).
      levels: zoom levels after the coarse grid when ``d_i >= 3``: a 3-point pattern per angle around the
        best point, its half-width halving per level.
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
    levels: int = 14
    refine: int = 24
    bisect_iters: int | None = None
    secant_iters: int = 2
    g_tol: float | None = None


#: A slow, high-accuracy setting: the reference the default is checked against (``ray_accuracy``).
FINE = PivotalConfig(rays=33, levels=24, refine=40, bisect_iters=30, secant_iters=3)


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


def crossing(
    h: Callable[[Array], Array], lo: Array, hi: Array, iters: int, secant: int, *, strict: bool = True
) -> Array:
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

    h_lo, h_hi = jax.vmap(h)(jnp.stack([lo, hi]))  # one trace of h for both ends

    def interp(carry):
        a, b, ha, hb = carry
        w = jnp.clip(ha / jnp.where(hb > ha, ha - hb, -1.0), 0.0, 1.0)  # h(a) <= 0 < h(b): root at a + w (b - a)
        return a + w * (b - a)

    def body(k, carry):  # bisection for the first iters steps, then regula falsi: one loop, one trace of h
        a, b, ha, hb = carry
        mid = jnp.where(k < iters, 0.5 * (a + b), interp(carry))
        hm = h(mid)
        up = pos(hm)
        return jnp.where(up, a, mid), jnp.where(up, mid, b), jnp.where(up, ha, hm), jnp.where(up, hm, hb)

    carry = jax.lax.fori_loop(0, iters + secant, body, (lo, hi, h_lo, h_hi))
    x = interp(carry) if secant > 0 else carry[1]
    return jnp.where(pos(h_lo), lo, jnp.where(pos(h_hi), x, hi))


# --------------------------------------------------------------------------
# rays over the positive orthant of the unit cube


def ray_direction(angles: Array) -> Array:
    """Unit vector in the closed positive orthant from ``d - 1`` hyperspherical angles in ``[0, pi/2]``.

    ``u_1 = cos a_1, u_2 = sin a_1 cos a_2, ..., u_d = sin a_1 ... sin a_{d-1}``; shape ``(d,)``.

    At ``a = pi/2`` (the angle rounded to the dtype, or beyond) the cosine is exactly 0, so that ray lies ON
    the face of the cube: in float64 ``cos(pi/2) = 6e-17 > 0`` otherwise, and where the pivotal set is that
    face (B Example 1 at ``p_j = 0``: ``V_i <= V_j`` iff ``p_i = 0``) every ray would cross at the origin and
    the price come out 0, not ``c_j``. In float32 ``cos(pi/2)`` rounds below 0 and the clip already gives 0, so
    float32 programs are left exactly as they are (the ray maximization is sensitive to rounding: a changed
    float32 program moved b_private_common's menu and decide_and_pay prices apart by 2e-3 on a few profiles).
    """
    angles = jnp.asarray(angles)
    sines = jnp.concatenate([jnp.ones((1,), angles.dtype), jnp.cumprod(jnp.sin(angles))])  # (d,)
    cos = jnp.cos(angles)
    if jnp.dtype(angles.dtype) == jnp.float64:
        cos = jnp.where(angles >= jnp.asarray(jnp.pi / 2, angles.dtype), 0.0, cos)
    cosines = jnp.concatenate([cos, jnp.ones((1,), angles.dtype)])  # (d,)
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

    fc, fd = jax.vmap(objective)(jnp.stack([c, d])[:, None])  # one trace of the objective for both
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
    angles: ``levels`` zoom levels, each a 3-point grid per angle on the previous best +- a
    half-width that starts at one spacing and halves per level. The best point seen is kept, so the
    result is never worse than the coarse grid. Returns ``(value, angles)``, shapes ``()`` and ``(d - 1,)``.
    """
    if d == 1:
        angles = jnp.zeros((0,), dtype)
        return objective(angles), angles
    k = d - 1
    offsets = jnp.asarray(_unit_grid(k, config.rays), dtype)  # (P, k) in [-1, 1]
    half_pi = math.pi / 2
    center = jnp.full((k,), half_pi / 2, dtype)
    pts = jnp.clip(center[None, :] + (half_pi / 2) * offsets, 0.0, half_pi)
    vals = jax.vmap(objective)(pts)
    state = (jnp.max(vals), pts[jnp.argmax(vals)])
    spacing = jnp.asarray(half_pi / (config.rays - 1), dtype)
    if k == 1:
        if config.refine == 0:
            return state
        x = state[1][0]
        return _golden(
            objective, jnp.maximum(x - spacing, 0.0), jnp.minimum(x + spacing, half_pi), config.refine, state
        )

    local = jnp.asarray(_unit_grid(k, 3), dtype)  # zoom levels: center +- half per angle, half shrinks by 2

    def body(step, state):
        best_val, best = state
        half = spacing * jnp.asarray(0.5, dtype) ** step.astype(dtype)
        pts = jnp.clip(best[None, :] + half * local, 0.0, half_pi)
        vals = jax.vmap(objective)(pts)
        j = jnp.argmax(vals)
        better = vals[j] > best_val
        return jnp.where(better, vals[j], best_val), jnp.where(better, pts[j], best)

    return jax.lax.fori_loop(0, config.levels, body, state)


# --------------------------------------------------------------------------
# one ordered pair (i, j) at one profile


class _Section(NamedTuple):
    """``V`` as a function of buyer ``i``'s signal in unit-cube coordinates ``y in [0, 1]^{d_i}``."""

    vals: Callable[[Array], Array]  # y -> (n,)
    d: int


def _agent_box(env: Environment, i: int | Array, dtype) -> tuple[Array, Array, int]:
    """Buyer ``i``'s ``(lo, hi - lo, d_i)``; ``i`` may be traced where all signal dimensions are equal."""
    if isinstance(i, (int, np.integer)):
        sl = priors.agent_slice(env.dims, i)
        return jnp.asarray(env.lo[sl], dtype), jnp.asarray(env.hi[sl] - env.lo[sl], dtype), env.dims[i]
    if not priors.equal_dims(env.dims):
        raise ValueError(f"a traced buyer index needs equal signal dimensions, got {env.dims}")
    d = env.dims[0]
    lo, width = jnp.asarray(env.lo, dtype), jnp.asarray(env.hi - env.lo, dtype)
    return jax.lax.dynamic_slice_in_dim(lo, i * d, d), jax.lax.dynamic_slice_in_dim(width, i * d, d), d


def _section(env: Environment, s: Array, i: int | Array) -> _Section:
    lo, width, d = _agent_box(env, i, s.dtype)

    def vals(y):
        return env.values(priors.replace_signal(s, env.dims, i, lo + jnp.clip(y, 0.0, 1.0) * width))

    return _Section(vals, d)


def _to_signal(env: Environment, i: int | Array, y: Array) -> Array:
    lo, width, _ = _agent_box(env, i, y.dtype)
    return lo + y * width


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


def ray_search(env: Environment, s: Array, i: int, others: tuple[int, ...], config: PivotalConfig):
    """``M = max{V_i(x) : V_i(x) <= max_{j in others} V_j(x)}`` over rays (``-inf`` if the set is empty).

    ``V_i - max_j V_j = min_j (V_i - V_j)`` is non-decreasing along rays (Assumption 2), so the
    last point with ``V_i <= max_j V_j`` on each ray is one :func:`crossing`. Returns ``(section, M, y)``:
    ``V`` as a function of buyer ``i``'s signal in unit-cube coordinates, ``M`` (shape ``()``) and its
    maximizer ``y`` in those coordinates (shape ``(d_i,)``). ``others`` are static ints.
    """
    dtype = s.dtype
    sec = _section(env, s, i)
    idx = jnp.asarray(others)

    def margin(y):
        v = sec.vals(y)
        return v[i] - jnp.max(v[idx])

    def point(angles):
        u = ray_direction(angles)
        r = crossing(
            lambda r: margin(r * u), jnp.zeros((), dtype), ray_exit(u), _iters(config, dtype), config.secant_iters
        )
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
    sec, m, arg = ray_search(env, s, i, (j,), config)
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
    sec, m, _ = ray_search(env, s, i, others, config)
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


def pivotal_price_of(
    env: Environment, *, config: PivotalConfig = PivotalConfig(), method: str = "rays"
) -> Callable[[Params, Array, int], Array]:
    """Buyer ``i``'s price alone: ``price_of(params, m, i) -> t*_i(m_-i)`` (``i`` a static int), see :func:`pivotal_prices`.

    ``method="rays"``: one ray search (:func:`buyer_price`); otherwise ``max_{j != i} t*_ij`` over the pairs.
    """
    _validate(env, config, method)
    n = env.n_agents

    def price_of(params, m, i):
        del params
        if method == "rays":
            return buyer_price(env, m, i, config)
        return jnp.max(jnp.stack([_pair_price(env, m, i, j, config, method) for j in range(n) if j != i]))

    return with_nested_loops(price_of)  # a root finder inside the search over rays / over lam


def pivotal_prices(
    env: Environment, *, config: PivotalConfig = PivotalConfig(), method: str = "rays"
) -> Callable[[Params, Array], Array]:
    """B's admissible personalized prices ``t*_i(s_-i) = max_{j != i} V^m_ij(lam*_ij(s_-i), s_-i)`` (eq. (8), Sec. 4.1).

    Returns ``prices(params, m) -> (n,)`` for :func:`personalized_prices`; ``params`` is
    unused and ``t*_i`` ignores ``m_i``. ``method="rays"`` (default: one search per buyer,
    :func:`buyer_price`) or ``"nested"`` (``lam*_ij`` by bisection over constrained maxima, per pair;
    see the module docstring). Requires B Assumptions 1a, 1b, 2 for admissibility (eq. (3)).
    """
    return with_nested_loops(all_buyers(pivotal_price_of(env, config=config, method=method), env.n_agents))


def all_buyers(price_of: Callable[[Params, Array, int], Array], n: int) -> Callable[[Params, Array], Array]:
    """``prices(params, m) -> (n,)`` stacking ``price_of(params, m, i)`` over the ``n`` buyers (B eq. (8) for all)."""

    def prices(params, m):
        return jnp.stack([price_of(params, m, i) for i in range(n)])

    return prices


def raise_prices(prices: Callable[[Params, Array], Array], eps: Callable[[Array], Array]):
    """``t'_i = t_i + eps_i(m)`` with ``eps_i >= 0`` a function of ``m_-i`` only (B Sec. 3: the continuum of prices).

    Any price tuple above an admissible one is admissible (eq. (3)), so the mechanism stays ex post IC
    (Lemma 1). ``eps(m) -> (n,)``; its ``i``-th entry must not depend on ``m_i``; negative entries are clipped.
    """

    def raised(params, m):
        return prices(params, m) + jnp.maximum(eps(m), 0.0)

    return with_nested_loops(raised) if getattr(prices, "nested_loops", False) else raised


def raise_price_of(price_of: Callable[[Params, Array, int], Array], eps: Callable[[Array], Array]):
    """Buyer ``i``'s price of :func:`raise_prices` alone: ``price_of(params, m, i) + max(eps(m)[i], 0)``."""

    def raised(params, m, i):
        return price_of(params, m, i) + jnp.maximum(eps(m)[i], 0.0)

    return with_nested_loops(raised) if getattr(price_of, "nested_loops", False) else raised


def pivotal_mechanism(
    env: Environment,
    prices: Callable[[Params, Array], Array] | None = None,
    *,
    price_of: Callable[[Params, Array, int], Array] | None = None,
    config: PivotalConfig = PivotalConfig(),
    method: str = "rays",
    name: str = "pivotal_prices",
):
    """B eq. (4) for ``prices`` (default: the construction, :func:`pivotal_prices`) with the prices computed once.

    Same decision and payments as :func:`personalized_prices` (buyer ``i`` wins iff
    ``V_i(m) > t_i(m_-i)``; if several clear, the largest surplus); ``decide_and_pay`` evaluates
    the prices once. The menu of buyer ``i`` (what the audit deviates against)
    computes ``t_i(m_-i)`` once, as ``prices(p, m)[i]``: the same function on the same reports as
    ``decide_and_pay`` (XLA evaluates it once per profile in an audit). Buyer ``i``'s price alone
    (``price_of``, one ray search instead of ``n``) is faster but, in another compiled context, the ray
    maximization rounds differently: on b_private_common its prices differed from ``decide_and_pay``'s by
    up to 2.5e-3 on ~2% of profiles, which the audit's menu check refuses. It answers ``a_i`` iff
    ``V_i(m_i, m_-i) > t_i``: exactly the
    allocation to ``i`` when the prices are admissible (eq. (3)); where they are not, truthful
    ``decide`` may give the object to another clearing buyer and the audit shows that as regret.
    """
    if prices is None:
        price_of = pivotal_price_of(env, config=config, method=method)
        prices = all_buyers(price_of, env.n_agents)
    price_of = price_of or buyer_price_of(prices)
    base = personalized_prices(env, prices, price_of=price_of, name=name)
    n = env.n_agents

    def menu(p, m, i):
        t_i = prices(p, m)[i]  # the very computation decide_and_pay makes at m (see the docstring)
        one = jax.nn.one_hot(i, n, dtype=m.dtype)

        def respond(m_i):
            v = env.values(priors.replace_signal(m, env.dims, i, m_i))[i]
            win = (v > t_i).astype(m.dtype)
            return one * win, win * t_i

        respond.kinks = lambda: price_kinks(env, m, i, t_i)  # = kinks(p, m, i), on the price found above
        return respond

    if getattr(prices, "nested_loops", False):
        menu = with_nested_loops(menu)
    return base._replace(menu=menu)


# --------------------------------------------------------------------------
# price tables and the accuracy of the construction


def price_table(
    prices: Callable[[Params, Array], Array], params: Params = (), chunk: int = 1024, compiler_options=None
) -> Callable[[Array], Array]:
    """A jit-compiled ``(N, D) -> (N, n)`` map of ``prices(params, m)`` over rows, ``chunk`` rows at a time.

    Chunks of ~1e3 profiles keep the ray searches' working set in cache (2-4x faster on a CPU than one
    vmap over 1e5 profiles). Keep the returned function to reuse its compile across calls of one shape.
    ``compiler_options`` go to ``jax.jit`` (e.g. ``compile_options.FAST_COMPILE`` for small tables: equal up to float rounding).
    """
    return jax.jit(
        lambda x: jax.lax.map(lambda m: prices(params, m), x, batch_size=min(chunk, x.shape[0])),
        compiler_options=compiler_options,
    )


def batched_prices(
    prices: Callable[[Params, Array], Array],
    profiles: Array,
    params: Params = (),
    chunk: int = 1024,
    compiler_options=None,
) -> Array:
    """``prices(params, m)`` for every row of ``profiles`` ``(N, D)`` -> ``(N, n)`` (one-off :func:`price_table`)."""
    return price_table(prices, params, chunk, compiler_options)(profiles)


def ray_accuracy(
    env: Environment,
    profiles: Array,
    config: PivotalConfig = PivotalConfig(),
    reference=FINE,
    prices=None,
    compiler_options=None,
) -> dict:
    """How far the ray search at ``config`` is from a fine setting (``reference``) on ``profiles``: max and mean ``|dt*|``.

    Also reports the number of value evaluations per buyer and profile of each setting. ``prices``: the
    ``(N, n)`` prices at ``config`` on ``profiles`` when the caller already has them (saves a compile).
    ``compiler_options`` go to ``jax.jit``.
    """

    def table(c: PivotalConfig) -> Array:
        return batched_prices(pivotal_prices(env, config=c), profiles, compiler_options=compiler_options)

    t = np.asarray(table(config) if prices is None else prices, np.float64)
    r = np.asarray(table(reference), np.float64)
    fin = np.isfinite(t) & np.isfinite(r)
    err = np.where(fin, np.abs(t - r), 0.0)

    def evals(c: PivotalConfig):
        per_ray = 2 + _iters(c, profiles.dtype) + c.secant_iters + 1
        dmax = max(env.dims)
        rays = c.rays + 2 + c.refine if dmax == 2 else c.rays ** (dmax - 1) + 3 ** (dmax - 1) * c.levels
        return int(rays * per_ray)

    return {
        "profiles": int(len(t)),
        "max_abs_error": float(err.max()),
        "mean_abs_error": float(err.mean()),
        "value_evaluations": {"config": evals(config), "reference": evals(reference)},
        "config": config._asdict(),
        "reference": reference._asdict(),
    }


def lemma2_check(
    env: Environment,
    profiles: Array,
    lam_points: int = 17,
    config: PivotalConfig = PivotalConfig(),
    compiler_options=None,
) -> dict:
    """B Lemma 2 numerically: ``g_ij(lam)`` on a grid of ``lam`` for every ordered pair; the smallest step ``g(lam') - g(lam)``.

    Non-negative (up to the accuracy of ``V^m``) when the Lemma holds; the nested route (:func:`pivotal_max`).
    ``compiler_options`` go to ``jax.jit``.
    """
    lam = jnp.linspace(0.0, 1.0, lam_points, dtype=profiles.dtype)
    n = env.n_agents
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]

    @partial(jax.jit, compiler_options=compiler_options)  # every pair in one compile
    def min_steps(p):
        def g(ij):
            i, j = ij
            return jnp.min(
                jnp.diff(jax.vmap(lambda m: jax.vmap(lambda x: g_pair(env, m, i, j, x, config))(lam))(p), axis=1)
            )

        if priors.equal_dims(env.dims):  # one copy of the nested search for all pairs (traced buyer indices)
            return jax.lax.map(g, jnp.asarray(pairs, jnp.int32))
        return jnp.stack([g(ij) for ij in pairs])

    worst = np.zeros((n, n))
    for (i, j), w in zip(pairs, np.asarray(min_steps(profiles)), strict=True):
        worst[i, j] = float(w)
    return {"profiles": int(profiles.shape[0]), "lam_points": lam_points, "min_increment": worst.tolist()}
