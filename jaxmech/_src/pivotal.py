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
      rays: grid points per angle and zoom level (odd; ``rays ** (d_i - 1)`` rays per level;
        ``d_i = 1`` uses one ray).
      levels: zoom levels of the angle grid (level 0 spans ``[0, pi/2]``; each later one
        shrinks the spacing by ``(rays - 1) / 2``).
      bisect_iters: bisection steps along a ray and on ``lam``; ``None``: 24 in float32, 52 in float64.
      g_tol: ``method="nested"`` only: ``g_ij(lam) > g_tol * (1 + |V|)`` counts as ``g > 0``
        (numerical zero of the flat part of ``g``); ``None``: 1e-5 in float32, 1e-9 in float64.
    """

    rays: int = 17
    levels: int = 8
    bisect_iters: int | None = None
    g_tol: float | None = None


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


def _validate(env: Environment, config: PivotalConfig, method: str) -> None:
    if not env.is_separable:
        raise ValueError(f"pivotal prices: environment {env.name!r} is not separable (needs env.values)")
    if env.n_agents < 2:
        raise ValueError(f"pivotal prices: need at least 2 buyers, got dims={env.dims}")
    if method not in METHODS:
        raise ValueError(f"pivotal prices: method must be one of {METHODS}, got {method!r}")
    r = config.rays
    if not isinstance(r, (int, np.integer)) or isinstance(r, bool) or r < 3 or r % 2 == 0:
        raise ValueError(f"PivotalConfig.rays: expected an odd integer >= 3, got {r!r}")
    lv = config.levels
    if not isinstance(lv, (int, np.integer)) or isinstance(lv, bool) or lv < 1:
        raise ValueError(f"PivotalConfig.levels: expected an integer >= 1, got {lv!r}")
    if config.bisect_iters is not None and (not isinstance(config.bisect_iters, int) or config.bisect_iters < 1):
        raise ValueError(f"PivotalConfig.bisect_iters: expected an integer >= 1 or None, got {config.bisect_iters!r}")


def _iters(config: PivotalConfig, dtype) -> int:
    if config.bisect_iters is not None:
        return config.bisect_iters
    return 52 if jnp.dtype(dtype) == jnp.float64 else 24


def _g_tol(config: PivotalConfig, dtype) -> float:
    if config.g_tol is not None:
        return config.g_tol
    return 1e-9 if jnp.dtype(dtype) == jnp.float64 else 1e-5


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


def maximize_over_rays(
    objective: Callable[[Array], Array], d: int, config: PivotalConfig, dtype
) -> tuple[Array, Array]:
    """``max_angles objective(angles)`` over ``d - 1`` angles in ``[0, pi/2]`` by a zooming grid.

    Level 0 is a product grid of ``rays`` points per angle over ``[0, pi/2]``; each later
    level puts the same grid on ``best +- one spacing`` of the previous level (the spacing
    shrinks by ``(rays - 1) / 2`` per level), which keeps the maximizer of a unimodal
    objective in the window. The best point seen is kept, so the result is never worse
    than the first grid. All levels share one loop (one compiled body). Returns
    ``(value, angles)``, shapes ``()`` and ``(d - 1,)``.
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
    init = (jnp.full((), -jnp.inf, dtype), center0)

    def body(step, carry):
        state = carry
        half = half0 * jnp.asarray(shrink, dtype) ** step.astype(dtype)
        center = jnp.where(step == 0, center0, state[1])
        return level(state, center, half)

    best_val, best = jax.lax.fori_loop(0, config.levels, body, init)
    return best_val, best


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
    ray along ``u`` leaves ``S_i``; ``V_i`` is non-decreasing on it (Assumption 1a), so a
    bisection finds its first point with ``V_i >= L`` (the path always reaches the class,
    and the first legs alone cover ``S_i``). Returns
    ``(value, maximizer)``; the maximizer ``s^m_ij`` has shape ``(d_i,)``. ``s_i`` in ``s``
    is ignored; ``i``, ``j`` are static ints.
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

        tau = bisect(lambda t: sec.vals(path(t))[i] >= level, jnp.zeros((), dtype), jnp.full((), 2.0, dtype), iters + 1)
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
    up to ``tol``.
    """
    dtype = s.dtype
    sec = _section(env, s, i)
    case, end_price = _end_cases(sec, i, j, dtype)
    tol = _g_tol(config, dtype)

    def positive(lam):
        level = sec.vals(jnp.full((sec.d,), lam, dtype))[i]
        return level - pivotal_max(env, s, i, j, lam, config)[0] > tol * (1.0 + jnp.abs(level))

    lam = bisect(positive, jnp.zeros((), dtype), jnp.ones((), dtype), _iters(config, dtype))
    lam = jnp.where(case == 1, 1.0, jnp.where(case == 2, 0.0, lam))
    vm, arg = pivotal_max(env, s, i, j, lam, config)
    price = jnp.where(case == 0, vm, end_price)
    return PivotalSolution(price, lam, case, arg)


def _ray_search(env: Environment, s: Array, i: int, j: int, config: PivotalConfig):
    dtype = s.dtype
    sec = _section(env, s, i)
    iters = _iters(config, dtype)
    case, end_price = _end_cases(sec, i, j, dtype)

    def point(angles):
        u = ray_direction(angles)

        def beats(r):
            v = sec.vals(r * u)
            return v[i] - v[j] > 0

        return bisect(beats, jnp.zeros((), dtype), ray_exit(u), iters) * u

    def objective(angles):
        return sec.vals(point(angles))[i]

    m, angles = maximize_over_rays(objective, sec.d, config, dtype)
    return sec, case, jnp.where(case == 0, m, end_price), m, point, angles


def ray_price(env: Environment, s: Array, i: int, j: int, config: PivotalConfig = PivotalConfig()) -> PivotalSolution:
    """``t*_ij`` by the one-level ray search (Assumption 2; see the module docstring).

    Interior case: ``t*_ij = max{V_i(x) : V_i(x) <= V_j(x)}``; on each ray the last point with
    ``V_i <= V_j`` is a bisection (``V_i - V_j`` is non-decreasing along rays). ``lam`` is
    recovered by bisecting ``V_i(lam 1) >= t*`` on the diagonal.
    """
    dtype = s.dtype
    sec, case, price, m, point, angles = _ray_search(env, s, i, j, config)
    lam = bisect(
        lambda lam: sec.vals(jnp.full((sec.d,), lam, dtype))[i] >= m,
        jnp.zeros((), dtype),
        jnp.ones((), dtype),
        _iters(config, dtype),
    )
    lam = jnp.where(case == 1, 1.0, jnp.where(case == 2, 0.0, lam))
    return PivotalSolution(price, lam, case, _to_signal(env, i, point(angles)))


def _pair_price(env: Environment, s: Array, i: int, j: int, config: PivotalConfig, method: str) -> Array:
    if method == "rays":
        return _ray_search(env, s, i, j, config)[2]
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
    unused and ``t*_i`` ignores ``m_i``. ``method="rays"`` (default) or ``"nested"``
    (see the module docstring). Requires B Assumptions 1a, 1b, 2 for admissibility (eq. (3)).
    """
    _validate(env, config, method)

    def prices(params, m):
        del params
        return jnp.max(pair_prices(env, m, config=config, method=method), axis=1)

    return prices


def check_assumption2(env: Environment, profiles: Array, steps: Array) -> Array:
    """Worst violation of B Assumption 2 on samples, ``max(0, dV_j - dV_i)`` for ``s_i -> s_i + step``.

    ``profiles`` shape ``(N, D)``, ``steps`` shape ``(N, D)`` with non-negative entries (the
    part of buyer ``i``'s block is used; the step is clipped to the domain). Returns the
    worst violation per ordered pair ``[i, j]``, shape ``(n, n)`` (0 on the diagonal); values
    near float rounding (~1e-6 in float32) are noise.
    """
    n = env.n_agents
    hi = jnp.asarray(env.hi, profiles.dtype)
    out = []
    for i in range(n):
        sl = priors.agent_slice(env.dims, i)

        def one(s, dstep, sl=sl, i=i):
            up = priors.replace_signal(s, env.dims, i, jnp.minimum(s[sl] + jnp.abs(dstep[sl]), hi[sl]))
            dv = env.values(up) - env.values(s)
            return jnp.maximum(dv - dv[i], 0.0)

        out.append(jnp.max(jax.vmap(one)(profiles, steps), axis=0))
    return jnp.stack(out).at[jnp.diag_indices(n)].set(0.0)


def pivotal_mechanism(
    env: Environment, *, config: PivotalConfig = PivotalConfig(), method: str = "rays", name: str = "pivotal_prices"
):
    """``personalized_prices(env, pivotal_prices(env))`` (B Theorem), with each evaluation computing ``t*`` once.

    Same decision, payments and kinks as :func:`personalized_prices`; ``decide``, ``pay``
    and the per-agent ``menu`` share one evaluation of the prices per report profile
    (the generic mechanism evaluates them once in ``decide`` and twice in ``pay``), which
    matters because each evaluation runs the ray searches of every ordered pair.
    """
    from jaxmech._src.mechanisms import personalized_prices

    prices = pivotal_prices(env, config=config, method=method)
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
        def respond(m_i):
            q, t = outcome(p, priors.replace_signal(m, env.dims, i, m_i))
            return q, t[i]

        return respond

    return base._replace(decide=decide, pay=pay, menu=menu)
