"""Layer 2 — the papers' assumptions on values, checked on grids (with witnesses when they fail).

Bilateral trade (CE Sec. 4), values ``values(s) = (v_beta(s), v_sigma(s))`` on
``[0, 1]^2``:

- :func:`value_monotonicity`: strictly increasing in the own signal (CE Def 6),
  weakly increasing in the other's (CE Sec. 4, needed by Thm 5 / Lemma 4; CE
  Sec. 4.4 drops it).
- :func:`single_crossing`: CE Def 9 — if ``s'_beta >= s_beta``, ``s'_sigma <=
  s_sigma`` and ``v_beta(s) > v_sigma(s)`` then ``v_beta(s') >= v_sigma(s')``.
  Some efficient trading rule is monotone (hence ex post IC) iff it holds.
- :func:`strong_single_crossing`: CE Def 7 specialised to trade
  (``h = (q, -q)``, ``q in {0, 1}``): at every tie ``v_beta(s) = v_sigma(s)``,
  ``d(v_beta - v_sigma)/d s_beta > 0`` and ``d(v_beta - v_sigma)/d s_sigma < 0``.
  Then every efficient trading rule is monotone.

Any separable environment (CE Def 6) with finitely many outcomes, ``n`` agents:
:func:`separable_single_crossing` (a raise of ``s_i`` never forces a lower ``h_i``
among the efficient outcomes: Def 9 one signal at a time) and
:func:`separable_strong_single_crossing` (CE Def 7 at grid ties and at bisected
switches of the efficient outcome, derivatives by ``jax.jvp``);
:func:`single_crossing` / :func:`strong_single_crossing` dispatch to them when
given an :class:`Environment` and ``outcomes``.

Each returns a :class:`Check`: whether the property held on the grid, how many
grid cells failed, and a witness (the profiles and values that break it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.core.environments import Environment

Array = jax.Array


class Check(NamedTuple):
    """Outcome of a grid check: ``holds``, the share of checked points that fail, and a witness."""

    name: str
    holds: bool
    fail_share: float
    witness: dict[str, Any] | None

    def as_dict(self) -> dict:
        return {"holds": bool(self.holds), "fail_share": float(self.fail_share), "witness": self.witness}


def _grid_values(values: Callable[[Array], Array], points: int) -> tuple[np.ndarray, np.ndarray]:
    """``t`` (P,) and ``V[i, j] = values(t_i, t_j)`` (P, P, 2) in float64 when enabled, else float32.

    Run eagerly, like the other small programs of these checks: each op's executable is cached by shape,
    so a sweep over environments reuses them, where a ``jax.jit`` of each new ``values`` closure would
    trace, lower, compile and free a program per environment (~0.1-0.3 s each on a CPU).
    """
    t = np.linspace(0.0, 1.0, points)
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    sb, ss = np.meshgrid(t, t, indexing="ij")
    prof = jnp.asarray(np.stack([sb, ss], -1), dtype)
    v = np.asarray(jax.vmap(jax.vmap(values))(prof), np.float64)
    return t, v


def _tol(v: np.ndarray) -> float:
    return 1e-5 * max(1.0, float(np.max(np.abs(v))))


def value_monotonicity(values: Callable[[Array], Array], *, points: int = 65) -> dict[str, Check]:
    """Own-signal strict and other-signal weak monotonicity of ``(v_beta, v_sigma)`` on a grid."""
    t, v = _grid_values(values, points)
    tol = _tol(v)
    out = {}
    # axis 0 is s_beta, axis 1 is s_sigma; agent 0 owns axis 0, agent 1 axis 1
    for label, strict in (("own_strict", True), ("others_weak", False)):
        fails, witness, total = 0, None, 0
        for i in range(2):
            axis = i if strict else 1 - i
            d = np.diff(v[..., i], axis=axis)
            bad = d <= tol if strict else d < -tol
            fails += int(bad.sum())
            total += bad.size
            if witness is None and bad.any():
                r, c = np.argwhere(bad)[0]
                a = (r, c)
                b = (r + 1, c) if axis == 0 else (r, c + 1)
                witness = {
                    "agent": ["buyer", "seller"][i],
                    "from_profile": [float(t[a[0]]), float(t[a[1]])],
                    "to_profile": [float(t[b[0]]), float(t[b[1]])],
                    "values": [float(v[a][i]), float(v[b][i])],
                }
        out[label] = Check(label, fails == 0, fails / total, witness)
    return out


def single_crossing(values: Callable[[Array], Array] | Environment, *, points: int = 129, **kw) -> Check:
    """CE Def 9 on a ``points x points`` grid, with a violating pair ``(s, s')`` as witness.

    Given a separable :class:`Environment` instead of trade values, the general check
    :func:`separable_single_crossing` (keywords ``outcomes``, ``profiles``, ``seed``).
    """
    if isinstance(values, Environment):
        return separable_single_crossing(values, kw.pop("outcomes"), points=points, **kw)
    t, v = _grid_values(values, points)
    tol = _tol(v)
    gain = v[..., 0] - v[..., 1]
    # m[i, j] = min over i' >= i (s'_beta >= s_beta) and j' <= j (s'_sigma <= s_sigma) of gain
    m = np.minimum.accumulate(gain[::-1], axis=0)[::-1]
    m = np.minimum.accumulate(m, axis=1)
    bad = (gain > tol) & (m < -tol)
    witness = None
    if bad.any():
        i, j = np.argwhere(bad)[0]
        sub = gain[i:, : j + 1]
        i2, j2 = np.unravel_index(np.argmin(sub), sub.shape)
        i2 += i
        witness = {
            "s": [float(t[i]), float(t[j])],
            "gain_at_s": float(gain[i, j]),
            "s_prime": [float(t[i2]), float(t[j2])],
            "gain_at_s_prime": float(gain[i2, j2]),
        }
    return Check("single_crossing", not bad.any(), float(bad.mean()), witness)


def strong_single_crossing(values: Callable[[Array], Array] | Environment, *, points: int = 129, **kw) -> Check:
    """CE Def 7 for trade: the gain's slopes at ties (grid ties and bisected crossings), witness if it fails.

    Given a separable :class:`Environment` instead of trade values, the general check
    :func:`separable_strong_single_crossing` (keywords ``outcomes``, ``profiles``, ``seed``).

    Ties are the grid points with ``|gain| <= tol`` and, on each row of fixed
    ``s_sigma``, the zero of the gain between neighbours where it changes sign
    (found by bisection). The slopes come from ``jax.grad`` of the gain.
    """
    if isinstance(values, Environment):
        return separable_strong_single_crossing(values, kw.pop("outcomes"), points=points, **kw)
    t, v = _grid_values(values, points)
    tol = _tol(v)
    gain = v[..., 0] - v[..., 1]
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32

    def g(s):
        vv = values(s)
        return vv[0] - vv[1]

    ties = [np.stack([t[i], t[j]]) for i, j in np.argwhere(np.abs(gain) <= tol)]
    # sign changes along s_beta at fixed s_sigma: bisect between the two grid points
    sgn = np.sign(np.where(np.abs(gain) <= tol, 0.0, gain))
    change = (sgn[:-1] * sgn[1:]) < 0
    if change.any():
        idx = np.argwhere(change)
        a = jnp.asarray(t[idx[:, 0]], dtype)
        b = jnp.asarray(t[idx[:, 0] + 1], dtype)
        ss = jnp.asarray(t[idx[:, 1]], dtype)
        ga = jnp.asarray(gain[idx[:, 0], idx[:, 1]], dtype)

        gain_at = jax.vmap(lambda x, y: g(jnp.stack([x, y])))
        lo_, hi_ = a, b
        for _ in range(40):  # eager bisection of every bracket at once (see _grid_values)
            mid = 0.5 * (lo_ + hi_)
            same = jnp.sign(gain_at(mid, ss)) == jnp.sign(ga)
            lo_, hi_ = jnp.where(same, mid, lo_), jnp.where(same, hi_, mid)
        roots = np.asarray(0.5 * (lo_ + hi_))
        ties += [np.stack([r, float(s)]) for r, s in zip(roots, np.asarray(ss), strict=True)]
    if not ties:
        return Check("strong_single_crossing", True, 0.0, None)
    pts = jnp.asarray(np.stack(ties), dtype)
    grads = np.asarray(jax.vmap(jax.grad(g))(pts), np.float64)
    slope_tol = 1e-6 * max(1.0, float(np.max(np.abs(v))))
    bad = (grads[:, 0] <= slope_tol) | (grads[:, 1] >= -slope_tol)
    witness = None
    if bad.any():
        k = int(np.argmax(bad))
        witness = {
            "tie_profile": np.asarray(pts[k], np.float64).tolist(),
            "d_gain_d_s_beta": float(grads[k, 0]),
            "d_gain_d_s_sigma": float(grads[k, 1]),
        }
    return Check("strong_single_crossing", not bad.any(), float(bad.mean()), witness)


# --------------------------------------------------------------------------
# any separable environment with finitely many outcomes (CE Def 6, Def 7, Thm 2)


class _Lines(NamedTuple):
    """Lines along each agent's own signal through sampled base profiles."""

    grid: np.ndarray  # shape=(G,): own-signal values (on [lo_i, hi_i] of agent i: lo + grid * (hi - lo))
    profiles: Array  # shape=(n, P, G, D): profile at base p with s_i = grid point g
    welfare: np.ndarray  # shape=(n, P, G, k): sum_j h_j(a) V_j(s) - cost(a)
    weights: np.ndarray  # shape=(k, n): h_j(a)


def _outcome_weights(env, outcomes) -> tuple[Array, Array]:
    table = jnp.asarray(outcomes)
    h = jax.vmap(env.weights)(table)  # (k, n)
    c = jax.vmap(env.cost)(table)  # (k,)
    return h, c


def _separable_lines(env, outcomes, profiles: int, points: int, seed: int) -> _Lines:
    if not env.is_separable or any(d != 1 for d in env.dims):
        raise ValueError(f"conditions: needs a separable environment with 1-d signals (CE Def 6), got {env.name!r}")
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    n = env.n_agents
    lo, hi = np.asarray(env.lo, np.float64), np.asarray(env.hi, np.float64)
    t = np.linspace(0.0, 1.0, points)
    base = lo + np.random.default_rng(seed).random((profiles, n)) * (hi - lo)
    prof = np.repeat(np.repeat(base[None, :, None, :], points, axis=2), n, axis=0)  # (n, P, G, n)
    for i in range(n):
        prof[i, :, :, i] = lo[i] + t[None, :] * (hi[i] - lo[i])
    prof = jnp.asarray(prof, dtype)
    h, c = _outcome_weights(env, outcomes)
    h, c = h.astype(dtype), c.astype(dtype)
    w = jax.jit(jax.vmap(jax.vmap(jax.vmap(lambda s: h @ env.values(s) - c))))(prof)
    return _Lines(t, prof, np.asarray(w, np.float64), np.asarray(h, np.float64))


def _names(env, outcomes, a: int) -> str:
    q = np.asarray(outcomes)[a]
    return env.outcome_names[a] if len(env.outcome_names) == len(np.asarray(outcomes)) else str(q.tolist())


def separable_single_crossing(env, outcomes, *, profiles: int = 64, points: int = 129, seed: int = 0) -> Check:
    """Single crossing along each agent's signal in a separable environment with outcomes ``outcomes`` (k rows).

    With ``E(s)`` the efficient outcomes at ``s`` (within a tolerance), a monotone efficient rule
    (CE Thm 2: ``h_i(f(x, s_-i))`` non-decreasing in ``x``) needs, for every ``s_-i`` and ``x < x'``,
    ``min_{a in E(x)} h_i(a) <= max_{a in E(x')} h_i(a)``: a raise of ``s_i`` never forces a lower
    ``h_i``. For bilateral trade this is CE Def 9 one signal at a time. Checked on ``points`` own-signal
    values at ``profiles`` random ``s_-i`` per agent; the witness is a base profile, ``x < x'`` and
    the efficient sets' ``h_i``.
    """
    return _single_crossing_on(env, outcomes, _separable_lines(env, outcomes, profiles, points, seed))


def _single_crossing_on(env, outcomes, L: _Lines) -> Check:
    tol = _tol(L.welfare)
    fails, total, witness = 0, 0, None
    for i in range(env.n_agents):
        w = L.welfare[i]  # (P, G, k)
        eff = w >= w.max(axis=-1, keepdims=True) - tol
        hi_ = L.weights[:, i]
        h_min = np.where(eff, hi_, np.inf).min(-1)  # (P, G)
        h_max = np.where(eff, hi_, -np.inf).max(-1)
        run = np.maximum.accumulate(h_min, axis=1)
        bad = np.zeros_like(h_min, bool)
        bad[:, 1:] = run[:, :-1] > h_max[:, 1:] + 1e-9
        fails += int(bad.sum())
        total += bad.size
        if witness is None and bad.any():
            p, g2 = np.argwhere(bad)[0]
            g1 = int(np.argmax(h_min[p, :g2] >= run[p, g2 - 1]))
            line = np.asarray(L.profiles[i, p], np.float64)
            witness = {
                "agent": i,
                "s": line[g1].tolist(),
                "s_prime": line[g2].tolist(),
                "efficient_at_s": [_names(env, outcomes, a) for a in np.flatnonzero(eff[p, g1])],
                "efficient_at_s_prime": [_names(env, outcomes, a) for a in np.flatnonzero(eff[p, g2])],
                "h_i_at_s_min": float(h_min[p, g1]),
                "h_i_at_s_prime_max": float(h_max[p, g2]),
            }
    return Check("single_crossing", fails == 0, fails / max(total, 1), witness)


def separable_strong_single_crossing(env, outcomes, *, profiles: int = 64, points: int = 129, seed: int = 0) -> Check:
    """CE Def 7 in a separable environment with finitely many outcomes, with ``jax.grad`` at the ties.

    Whenever ``q, q'`` are both efficient at ``s`` and ``h_i(q) > h_i(q')``, Def 7 asks
    ``sum_j dV_j/ds_i (s) (h_j(q) - h_j(q')) > 0``. Ties are (1) grid points of the lines of
    :func:`separable_single_crossing` where several outcomes are efficient within the tolerance, and
    (2) the points where the efficient outcome switches along a line, found by bisection between
    neighbouring grid points. The derivative ``dV/ds_i`` is a forward-mode ``jax`` derivative at the tie.
    The witness is a failing tie: profile, the two outcomes, their ``h_i`` and the derivative.
    """
    return _strong_single_crossing_on(env, outcomes, _separable_lines(env, outcomes, profiles, points, seed))


def _strong_single_crossing_on(env, outcomes, L: _Lines) -> Check:
    tol = _tol(L.welfare)
    dtype = L.profiles.dtype
    h, c = _outcome_weights(env, outcomes)
    h, c = h.astype(dtype), c.astype(dtype)
    n = env.n_agents
    fails, total, witness = 0, 0, None
    for i in range(n):
        e_i = jnp.zeros((n,), dtype).at[i].set(1.0)

        def dv(s, e_i=e_i):
            return jax.jvp(env.values, (s,), (e_i,))[1]  # dV_j / ds_i, shape (n,)

        w = L.welfare[i]
        eff = w >= w.max(axis=-1, keepdims=True) - tol  # (P, G, k)
        # (1) ties at grid points: every efficient pair with h_i(a) > h_i(b)
        grid_tie = eff[..., :, None] & eff[..., None, :] & (L.weights[:, None, i] > L.weights[None, :, i])
        pts = [np.argwhere(grid_tie.any(axis=(-1, -2)))]
        tie_prof = [L.profiles[i][tuple(pts[0].T)]] if len(pts[0]) else []
        tie_pairs = [np.argwhere(grid_tie[tuple(p)])[0] for p in pts[0]]
        # (2) switches of the first maximizer between neighbouring grid points, bisected
        arg = w.argmax(-1)
        sw = np.argwhere(arg[:, :-1] != arg[:, 1:])
        if len(sw):
            a_prof = L.profiles[i][sw[:, 0], sw[:, 1]]
            b_prof = L.profiles[i][sw[:, 0], sw[:, 1] + 1]
            a_out = jnp.asarray(arg[sw[:, 0], sw[:, 1]])

            def root(sa, sb, a0):
                def best(s):
                    return jnp.argmax(h @ env.values(s) - c)

                def body(_, lh):
                    lo_, hi_ = lh
                    mid = 0.5 * (lo_ + hi_)
                    same = best(sa + mid * (sb - sa)) == a0
                    return jnp.where(same, mid, lo_), jnp.where(same, hi_, mid)

                zero = jnp.zeros((), sa.dtype)
                lo_, hi_ = jax.lax.fori_loop(0, 40, body, (zero, jnp.ones((), sa.dtype)))
                return sa + 0.5 * (lo_ + hi_) * (sb - sa), best(sa + hi_ * (sb - sa))

            sbar, b_out = jax.jit(jax.vmap(root))(a_prof, b_prof, a_out)
            a_out, b_out = np.asarray(a_out), np.asarray(b_out)
            keep = L.weights[a_out, i] != L.weights[b_out, i]
            hi_first = L.weights[a_out, i] > L.weights[b_out, i]
            pair = np.stack([np.where(hi_first, a_out, b_out), np.where(hi_first, b_out, a_out)], -1)
            tie_prof.append(sbar[keep])
            tie_pairs.extend(pair[keep])
        if not tie_pairs:
            continue
        prof = jnp.concatenate(tie_prof)
        pairs = np.stack(tie_pairs)
        grads = np.asarray(jax.jit(jax.vmap(dv))(prof), np.float64)  # (T, n)
        gap = np.einsum("tj,tj->t", grads, L.weights[pairs[:, 0]] - L.weights[pairs[:, 1]])
        slope_tol = 1e-6 * max(1.0, float(np.max(np.abs(L.welfare))))
        bad = gap <= slope_tol
        fails += int(bad.sum())
        total += bad.size
        if witness is None and bad.any():
            t_ = int(np.argmax(bad))
            a, b = (int(x) for x in pairs[t_])
            witness = {
                "agent": i,
                "tie_profile": np.asarray(prof[t_], np.float64).tolist(),
                "outcomes": [_names(env, outcomes, a), _names(env, outcomes, b)],
                "h_i": [float(L.weights[a, i]), float(L.weights[b, i])],
                "d_welfare_gap_d_s_i": float(gap[t_]),
            }
    return Check("strong_single_crossing", fails == 0, fails / max(total, 1), witness)


def check_separable(env, outcomes, *, profiles: int = 64, points: int = 129, seed: int = 0) -> dict[str, dict]:
    """:func:`separable_single_crossing` and :func:`separable_strong_single_crossing` as a JSON-ready dict."""
    L = _separable_lines(env, outcomes, profiles, points, seed)
    return {
        "single_crossing": _single_crossing_on(env, outcomes, L).as_dict(),
        "strong_single_crossing": _strong_single_crossing_on(env, outcomes, L).as_dict(),
    }


def check_bilateral(values: Callable[[Array], Array], *, points: int = 129) -> dict[str, dict]:
    """All four checks as a JSON-ready dict."""
    mono = value_monotonicity(values, points=min(points, 65))
    return {
        "own_strict": mono["own_strict"].as_dict(),
        "others_weak": mono["others_weak"].as_dict(),
        "single_crossing": single_crossing(values, points=points).as_dict(),
        "strong_single_crossing": strong_single_crossing(values, points=points).as_dict(),
    }


# --------------------------------------------------------------------------
# public goods (CE Sec. 5)


class DifferenceClass(NamedTuple):
    """CE Def 11: ``increasing`` / ``decreasing`` differences, ``common`` values, or ``mixed`` (with a witness)."""

    kind: str
    shares: dict[str, float]
    witness: dict[str, Any] | None

    def as_dict(self) -> dict:
        return {"class": self.kind, "shares": self.shares, "witness": self.witness}


def difference_class(
    values: Callable[[Array], Array], n: int, *, points: int = 33, bases: int = 64, seed: int = 0
) -> DifferenceClass:
    """Classify ``v_i(s) - v_j(s)`` as strictly increasing / strictly decreasing / constant in ``s_i`` (CE Def 11).

    For every ordered pair ``i != j``, the difference is evaluated along a
    ``points``-point grid of ``s_i`` at ``bases`` base profiles of the other
    signals (a grid for ``n = 2``, uniform draws otherwise). ``shares`` gives
    the fraction of grid steps that rise, fall or stay flat; the class is the
    one that holds for every step, else ``mixed`` with a rising and a falling
    step as witness.
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, points)
    if n == 2:
        base = np.linspace(0.0, 1.0, bases)[:, None] * np.ones((1, n))
    else:
        base = rng.random((bases, n))
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    vals = jax.jit(jax.vmap(jax.vmap(values)))
    steps, where = [], []
    for i in range(n):
        prof = np.repeat(base[:, None, :], points, axis=1)
        prof[:, :, i] = t[None, :]
        v = np.asarray(vals(jnp.asarray(prof, dtype)), np.float64)  # (bases, points, n)
        for j in range(n):
            if j == i:
                continue
            d = np.diff(v[:, :, i] - v[:, :, j], axis=1)  # (bases, points - 1)
            steps.append(d.ravel())
            where.extend((i, j, b, k) for b in range(bases) for k in range(points - 1))
    d = np.concatenate(steps)
    tol = 1e-6 * max(1.0, float(np.max(np.abs(d))) * points)
    up, down = d > tol, d < -tol
    flat = ~(up | down)
    shares = {"rising": float(up.mean()), "falling": float(down.mean()), "flat": float(flat.mean())}
    if up.all():
        return DifferenceClass("increasing", shares, None)
    if down.all():
        return DifferenceClass("decreasing", shares, None)
    if flat.all():
        return DifferenceClass("common", shares, None)

    def describe(idx):
        i, j, b, k = where[idx]
        s0 = base[b].copy()
        s0[i] = t[k]
        s1 = s0.copy()
        s1[i] = t[k + 1]
        return {"pair": [i, j], "from_profile": s0.tolist(), "to_profile": s1.tolist(), "change": float(d[idx])}

    witness = {}
    for label, mask in (("rising", up), ("falling", down), ("flat", flat)):
        if mask.any():
            witness[label] = describe(int(np.argmax(mask)))
    return DifferenceClass("mixed", shares, witness)
