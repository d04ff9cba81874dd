"""The detail-free double auction of CE Sec. 4.3, solved by iterated ex post weak dominance on grids.

Bilateral trade (CE Sec. 4): the buyer ``beta`` (agent 0) and the seller
``sigma`` (agent 1) observe ``s_beta, s_sigma in [0, 1]``; ``values(s) =
(v_beta(s), v_sigma(s))`` for ONE profile ``s = (s_beta, s_sigma)``.

The trading game (CE Sec. 4.3): simultaneously the buyer offers a price ``x``
and the seller demands a price ``y``. Trade iff ``x >= y``; then the buyer pays
the seller's demand ``y`` and the seller receives the buyer's offer ``x``, so the
designer's deficit is ``x - y >= 0``. Ex post payoffs at the true signals::

    u_beta  = 1[x >= y] (v_beta(s) - y)
    u_sigma = 1[x >= y] (x - v_sigma(s))     (relative to keeping the good)

CE claim (a sketch, after Chung and Ely 2000) that under strong single crossing
(CE Def 7 / Def 9) the game is solved by iterated elimination of ex post weakly
dominated strategies, and that the solution is an efficient ex post equilibrium
with the bids

    phi_beta(s_beta)   = v_beta(s_beta, g_sigma(s_beta)),
    phi_sigma(s_sigma) = v_sigma(g_beta(s_sigma), s_sigma),

where ``g_beta(s_sigma) = inf{x : v_beta(x, s_sigma) > v_sigma(x, s_sigma)}`` and
``g_sigma(s_beta) = sup{y : v_beta(s_beta, y) > v_sigma(s_beta, y)}`` are the
tie types (clipped to ``[0, 1]`` when there is no root), i.e. each agent bids
its value at the opponent type that ties with it. Trading at these bids, the
buyer pays ``v_beta(g_beta(s_sigma), s_sigma)`` and the seller receives
``v_sigma(s_beta, g_sigma(s_beta))`` wherever the tie is interior: the
generalized VCG payments of CE eqs. (5)-(6).

:func:`solve_double_auction` discretizes the game (an ``n_s`` signal grid per
agent, an ``n_b`` bid grid shared by both), runs the elimination to its fixed
point, and measures the CE claims on the grid: distance of the survivors from
``phi``, efficiency, ex post equilibrium gains, and the deficit against the
generalized VCG deficit.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.core.mechanisms import bisect

Array = jax.Array

_ROOT_ITERS = 48


class DoubleAuctionResult(NamedTuple):
    """The grid solution of the CE Sec. 4.3 double auction and its checks.

    Index ``[0]`` is the buyer (offers), ``[1]`` the seller (demands). Profiles are
    indexed ``[i_beta, i_sigma]`` on the signal grid.

    The *selected profile* takes, per type, the buyer's highest surviving offer
    and the seller's lowest surviving demand: of all selections of surviving bids
    it trades the most and runs the largest deficit (``mean_deficit_low`` is the
    opposite selection). Most types keep one bid or two adjacent ones. Types that
    trade with every opponent type keep a range of offers (demands) that are
    payoff-equivalent for them; there this selection is the one nearest ``phi``'s
    boundary value (``phi_beta = v_beta(s_beta, 1)``, ``phi_sigma = v_sigma(0, s_sigma)``).

    Attributes:
      signals: signal grid, shape=(n_s,).
      bids: bid grid, shape=(n_b,).
      value_grid: ``values`` on the grid profiles, ``[i_beta, i_sigma, agent]``, shape=(n_s, n_s, 2).
      ties: the opponent's tie type per own type, ``(g_sigma(s_beta), g_beta(s_sigma))``
        (:func:`tie_types`); in ``(0, 1)`` where the tie is interior, shape=(2, n_s).
      alive: surviving bids per agent and own type, shape=(2, n_s, n_b), bool.
      rounds: elimination rounds that removed at least one bid, shape=().
      guarded: (type, round) pairs where every surviving bid of the type was
        dominated (they are then kept unchanged; only possible through ``tol``
        slack), shape=().
      selected: bid of each type in the selected profile, shape=(2, n_s).
      predicted: ``(phi_beta, phi_sigma)`` on the signal grid, shape=(2, n_s).
      phi_gap: per agent, max over types of the distance from ``phi`` to the
        nearest surviving bid, shape=(2,).
      spread: per agent, max over types of (highest - lowest surviving bid), shape=(2,).
      trade: trade in the selected profile, shape=(n_s, n_s), bool.
      efficient_share: share of grid profiles where the selected profile's outcome
        is efficient (trade iff ``v_beta > v_sigma``; ties within ``tol`` either way), shape=().
      efficient_share_all: share where EVERY pair of surviving bids gives an
        efficient outcome, shape=().
      inefficiency_gap: max ``|v_beta - v_sigma|`` over the selected profile's
        inefficient grid profiles (0 if none), shape=().
      equilibrium_gain: per agent, max over own type and opponent type of the ex
        post gain from the best grid bid against the selected profile, shape=(2,).
      equilibrium_gain_worst: the same, maximized also over every surviving own bid
        and every surviving opponent bid, shape=(2,).
      mean_deficit: mean over grid profiles (uniform) of ``1[x >= y] (x - y)`` in the
        selected profile, shape=().
      mean_deficit_low: the same with the opposite selection (the buyer's lowest
        surviving offer, the seller's highest surviving demand); profile by
        profile, the deficit of every selection of surviving bids lies between
        the two, shape=().
      min_deficit: min of ``x - y`` over the selected profile's trading profiles (0
        if none trade), shape=().
      vcg_mean_deficit: mean over grid profiles of the generalized VCG deficit of
        the efficient rule (CE eqs. (5)-(6), continuum pivots),
        ``1[v_beta > v_sigma] (v_sigma(s_beta, g_sigma(s_beta)) - v_beta(g_beta(s_sigma), s_sigma))``, shape=().
      deficit_interval: ``(D_min, D_max)`` of the efficient rule (trade iff ``v_beta - v_sigma > tol``,
        as in ``vcg_mean_deficit``): the range of the mean deficit over every payment rule that makes
        it ex post IC between grid types and ex post IR, with no transfer without trade
        (:func:`deficit_interval`), shape=(2,).
      auction_deficit_interval: the same for the selected profile's own trade set ``trade``, shape=(2,).
      tol: payoff tolerance used for ties, shape=().
    """

    signals: Array
    bids: Array
    value_grid: Array
    ties: Array
    alive: Array
    rounds: Array
    guarded: Array
    selected: Array
    predicted: Array
    phi_gap: Array
    spread: Array
    trade: Array
    efficient_share: Array
    efficient_share_all: Array
    inefficiency_gap: Array
    equilibrium_gain: Array
    equilibrium_gain_worst: Array
    mean_deficit: Array
    mean_deficit_low: Array
    min_deficit: Array
    vcg_mean_deficit: Array
    deficit_interval: Array
    auction_deficit_interval: Array
    tol: Array

    @property
    def bid_step(self) -> float:
        """Largest gap between adjacent bids."""
        return float(jnp.max(jnp.diff(self.bids)))

    @property
    def signal_step(self) -> float:
        return float(self.signals[1] - self.signals[0])


# --------------------------------------------------------------------------
# the game on grids


def grid_values(values: Callable[[Array], Array], signals: Array) -> Array:
    """``V[i, j] = values((signals[i], signals[j]))``, shape=(n_s, n_s, 2): ``[..., 0]`` buyer, ``[..., 1]`` seller."""
    sb, ss = jnp.meshgrid(signals, signals, indexing="ij")
    return jax.vmap(jax.vmap(values))(jnp.stack([sb, ss], axis=-1))


def default_bids(value_grid: Array, n_bids: int) -> Array:
    """``n_bids`` equally spaced bids from one step below the smallest grid value to one step above the largest.

    The step is ``(max - min) / (n_bids - 3)``, so ``min`` and ``max`` are bids and one
    bid lies beyond each (a bid that never trades and one that always trades).
    """
    if n_bids < 4:
        raise ValueError(f"default_bids: n_bids must be >= 4 (the range plus a bid beyond each end), got {n_bids}")
    lo, hi = jnp.min(value_grid), jnp.max(value_grid)
    span = jnp.where(hi > lo, hi - lo, 1.0)
    step = span / (n_bids - 3)
    return lo - step + step * jnp.arange(n_bids, dtype=value_grid.dtype)


def payoff_tensors(value_grid: Array, bids: Array) -> tuple[Array, Array]:
    """Ex post payoffs of the CE Sec. 4.3 game on grids, in full.

    Returns ``(U_beta, U_sigma)`` with
    ``U_beta[i, x, j, y] = 1[b_x >= b_y] (V[i, j, 0] - b_y)`` (buyer type ``i`` offers
    ``b_x``, seller type ``j`` demands ``b_y``) and
    ``U_sigma[j, y, i, x] = 1[b_x >= b_y] (b_x - V[i, j, 1])``; both shape=(n_s, n_b, n_s, n_b).
    """
    (t_b, w_b), (t_s, w_s) = trade_factors(value_grid, bids)
    u_b = jnp.where(t_b[None, :, None, :], w_b[:, None, :, :], 0.0)
    u_s = jnp.where(t_s[None, :, None, :], w_s[:, None, :, :], 0.0)
    return u_b, u_s


def trade_factors(value_grid: Array, bids: Array) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    """Each agent's payoff as ``u_i[s_i, b_i, s_-i, b_-i] = T_i[b_i, b_-i] w_i[s_i, s_-i, b_-i]``.

    The own bid enters only through whether trade happens: the buyer pays the
    seller's demand and the seller receives the buyer's offer (CE Sec. 4.3).

    Returns:
      ``((T_beta, w_beta), (T_sigma, w_sigma))``: ``T_beta[x, y] = 1[b_x >= b_y]``,
      ``w_beta[i, j, y] = v_beta(s_i, s_j) - b_y``, ``T_sigma = T_beta^T``,
      ``w_sigma[j, i, x] = b_x - v_sigma(s_i, s_j)``; ``T`` shape=(n_b, n_b), ``w`` shape=(n_s, n_s, n_b).
    """
    trade = bids[:, None] >= bids[None, :]  # [x, y]
    w_b = value_grid[:, :, 0, None] - bids[None, None, :]
    w_s = bids[None, None, :] - value_grid[:, :, 1].T[:, :, None]
    return (trade, w_b), (trade.T, w_s)


def dominated(trade: Array, w: Array, alive_own: Array, alive_opp: Array, tol: Array) -> Array:
    """Bids ex post weakly dominated by some surviving bid of the same type.

    ``x`` is dominated for type ``s_i`` if some surviving ``x'`` has
    ``u_i(x', b_-i; s) >= u_i(x, b_-i; s) - tol`` at every opponent type ``s_-i`` and
    every surviving opponent bid ``b_-i in B_-i(s_-i)``, and ``> u_i(x, ...) + tol`` at one.

    With ``u_i = T[b_i, b_-i] w[s_i, s_-i, b_-i]`` (:func:`trade_factors`) the payoff
    difference is ``c w`` with ``c = T[x', b_-i] - T[x, b_-i] in {-1, 0, 1}``, so its
    extremes over surviving opponent types reduce to ``min`` / ``max`` of ``w`` over
    them per opponent bid: ``O(n_s n_b^3)`` work instead of ``O(n_s^2 n_b^3)``.

    Args:
      trade: ``T[b_i, b_-i]``, shape=(n_b, n_b), bool.
      w: ``w[s_i, s_-i, b_-i]``, shape=(n_own, n_opp, n_b).
      alive_own: shape=(n_own, n_b), bool.
      alive_opp: shape=(n_opp, n_b), bool.
      tol: payoff tolerance, shape=().

    Returns:
      shape=(n_own, n_b), bool: surviving bids dominated by a surviving bid.
    """
    w_min = jnp.min(jnp.where(alive_opp[None], w, jnp.inf), axis=1)  # [s_i, b_-i]
    w_max = jnp.max(jnp.where(alive_opp[None], w, -jnp.inf), axis=1)
    played = jnp.any(alive_opp, axis=0)  # [b_-i]
    t = trade.astype(jnp.int32)
    c = t[None, :, :] - t[:, None, :]  # [x, x', b_-i]
    up, down = c[None] > 0, c[None] < 0
    lo = jnp.where(up, w_min[:, None, None], jnp.where(down, -w_max[:, None, None], 0.0))
    hi = jnp.where(up, w_max[:, None, None], jnp.where(down, -w_min[:, None, None], 0.0))
    worst = jnp.min(jnp.where(played[None, None, None], lo, jnp.inf), axis=-1)  # [s_i, x, x']
    best = jnp.max(jnp.where(played[None, None, None], hi, -jnp.inf), axis=-1)
    by = (worst >= -tol) & (best > tol) & alive_own[:, None, :]
    return jnp.any(by, axis=2) & alive_own


class _State(NamedTuple):
    alive_b: Array  # shape=(n_s, n_b)
    alive_s: Array  # shape=(n_s, n_b)
    rounds: Array  # shape=()
    guarded: Array  # shape=()
    changed: Array  # shape=()


@jax.jit
def eliminate(value_grid: Array, bids: Array, tol: Array) -> tuple[Array, Array, Array, Array]:
    """Iterated elimination of ex post weakly dominated bids to the fixed point (CE Sec. 4.3).

    Each round removes, simultaneously for both agents and all types, every bid
    dominated (:func:`dominated`) by a bid surviving at the start of the round.
    With ``tol = 0`` weak dominance is a strict partial order on payoff vectors, so
    the undominated bids of each type survive the round; with ``tol > 0`` it need
    not be transitive, and a type whose bids would all go keeps them and is
    counted in ``guarded``. Each round costs ``O(n_s n_b^3)`` (:func:`dominated`).

    Args:
      value_grid: ``V[i, j] = values(s_i, s_j)``, shape=(n_s, n_s, 2) (:func:`grid_values`).
      bids: bid grid, shape=(n_b,).
      tol: payoff tolerance, shape=().

    Returns:
      ``(alive_b, alive_s, rounds, guarded)``: surviving masks shape=(n_s, n_b),
      the number of rounds that removed a bid, and the guarded count.
    """

    def remove(alive, drop):
        wiped = jnp.all(drop | ~alive, axis=1)
        drop = drop & ~wiped[:, None]
        return alive & ~drop, jnp.any(drop), jnp.sum(wiped, dtype=jnp.int32)

    (t_b, w_b), (t_s, w_s) = trade_factors(value_grid, bids)

    def body(st):
        drop_b = dominated(t_b, w_b, st.alive_b, st.alive_s, tol)
        drop_s = dominated(t_s, w_s, st.alive_s, st.alive_b, tol)
        alive_b, ch_b, g_b = remove(st.alive_b, drop_b)
        alive_s, ch_s, g_s = remove(st.alive_s, drop_s)
        changed = ch_b | ch_s
        return _State(alive_b, alive_s, st.rounds + changed.astype(jnp.int32), st.guarded + g_b + g_s, changed)

    full = jnp.ones((value_grid.shape[0], bids.shape[0]), bool)
    init = _State(full, full, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), jnp.asarray(True))
    st = jax.lax.while_loop(lambda st: st.changed, body, init)
    return st.alive_b, st.alive_s, st.rounds, st.guarded


# --------------------------------------------------------------------------
# the paper's predictions


def tie_types(values: Callable[[Array], Array], signals: Array) -> tuple[Array, Array]:
    """Continuum pivots of the efficient rule (CE Sec. 4.1), clipped to ``[0, 1]``.

    ``g_beta(s_sigma) = inf{x : v_beta(x, s_sigma) > v_sigma(x, s_sigma)}`` (1 if no such
    ``x``) and ``g_sigma(s_beta) = sup{y : v_beta(s_beta, y) > v_sigma(s_beta, y)}``
    (0 if no such ``y``), by bisection; assumes single crossing (CE Def 9), i.e.
    ``v_beta - v_sigma`` increasing in ``s_beta`` and decreasing in ``s_sigma``.

    Returns:
      ``(g_beta, g_sigma)`` at the grid points, each shape=(n_s,).
    """

    def gap(s):
        v = values(s)
        return v[0] - v[1]

    def g_beta(s_sigma):
        pred = lambda x: gap(jnp.stack([x, s_sigma])) > 0
        return bisect(pred, jnp.zeros_like(s_sigma), jnp.ones_like(s_sigma), _ROOT_ITERS)

    def g_sigma(s_beta):
        pred = lambda y: gap(jnp.stack([s_beta, y])) <= 0
        return bisect(pred, jnp.zeros_like(s_beta), jnp.ones_like(s_beta), _ROOT_ITERS)

    return jax.vmap(g_beta)(signals), jax.vmap(g_sigma)(signals)


def _at_tie_types(values, signals):
    """Tie types and the values there: ``(g_beta, g_sigma, V(g_beta(s_sigma), s_sigma), V(s_beta, g_sigma(s_beta)))``."""
    g_b, g_s = tie_types(values, signals)
    at_gb = jax.vmap(lambda ss, x: values(jnp.stack([x, ss])))(signals, g_b)  # (n_s, 2) by seller type
    at_gs = jax.vmap(lambda sb, y: values(jnp.stack([sb, y])))(signals, g_s)  # (n_s, 2) by buyer type
    return g_b, g_s, at_gb, at_gs


def _phi(at_gb, at_gs):
    return jnp.stack([at_gs[:, 0], at_gb[:, 1]])


def _vcg(value_grid, at_gb, at_gs, tol):
    gap = value_grid[..., 0] - value_grid[..., 1]
    return jnp.where(gap > tol, at_gs[:, None, 1] - at_gb[None, :, 0], 0.0)


def predicted_bids(values: Callable[[Array], Array], signals: Array) -> Array:
    """CE Sec. 4.3's ex post equilibrium bids on the grid, shape=(2, n_s).

    ``phi_beta(s_beta) = v_beta(s_beta, g_sigma(s_beta))`` and
    ``phi_sigma(s_sigma) = v_sigma(g_beta(s_sigma), s_sigma)`` (:func:`tie_types`).
    """
    _, _, at_gb, at_gs = _at_tie_types(values, signals)
    return _phi(at_gb, at_gs)


def vcg_deficit(values: Callable[[Array], Array], signals: Array, tol: Array) -> Array:
    """Generalized VCG deficit of the efficient rule on the grid (CE eqs. (5)-(6)), shape=(n_s, n_s).

    ``1[v_beta(s) - v_sigma(s) > tol] (v_sigma(s_beta, g_sigma(s_beta)) - v_beta(g_beta(s_sigma), s_sigma))``
    with the continuum pivots of :func:`tie_types`; indexed ``[i_beta, i_sigma]``.
    """
    _, _, at_gb, at_gs = _at_tie_types(values, signals)
    return _vcg(grid_values(values, signals), at_gb, at_gs, tol)


def deficit_interval(value_grid: Array, trade: Array) -> Array:
    """Ends ``(D_min, D_max)`` of the mean deficit over all grid ex post IC + IR payments for a fixed trading rule.

    The rule ``trade[i, j]`` (buyer type ``i``, seller type ``j`` on the grid) is fixed; the
    payments ``t_beta(i, j)``, ``t_sigma(i, j)`` range over everything that makes it ex post IC
    between grid types and ex post IR (CE Sec. 4: utilities ``f v_beta - t_beta`` and
    ``-f v_sigma - t_sigma``, reservation 0). The constraints bind only within one opponent type,
    so for the buyer at seller type ``j``: all trading types pay one ``T_1``, all others one
    ``T_0 <= 0`` (IR), and IC between the last non-trading and the first trading type gives

        max_{i: no trade} v_beta(i, j) <= T_1 - T_0 <= min_{i: trade} v_beta(i, j) =: p_hi(j),

    with IR of the trading types ``T_1 <= p_hi(j)``; symmetrically the seller's receipt ``R`` at
    buyer type ``i`` lies in ``[max_{j: trade} v_sigma(i, j), min_{j: no trade} v_sigma(i, j)]``
    relative to its no-trade receipt. The mean deficit (uniform weights on grid profiles, as
    ``mean_deficit``) is linear and separable in these, so its ends are sums of per-type ends:

        D_min = mean_s trade(s) (r_lo(s_beta) - p_hi(s_sigma)),
        D_max = mean_s trade(s) (r_hi(s_beta) - p_lo(s_sigma)).

    ``D_min`` (the grid rule's revenue-maximal payments, each agent paying its value at the
    first trading grid type: CE Lemma 5's reduction on the grid; not the continuum generalized VCG
    payments, whose pivot is the tie type, a grid type that does not trade, so that their
    deficit is ``D_max``) needs no normalisation: the revenue maximiser sets
    ``T_0 = 0`` anyway. ``D_max`` does: IR and IC allow any subsidy ``-T_0 > 0`` to non-trading
    types (shifting ``T_1`` with it), so without one the supremum is ``+inf``. ``D_max`` here is
    taken with **no transfer without trade** (``T_0 = 0``), as in CE's generalized VCG rule
    (``t = 0`` off the trade set, Sec. 4.1) and the Sec. 4.3 auction (no trade, no payment); where
    the agent's worst type does not trade this is the same as "the worst type's IR binds". Then
    ``T_1 in [p_lo(j), p_hi(j)]``, each end the value at the last non-trading / first trading
    grid type, and ``D_max`` is finite unless some opponent type trades with every own type
    (``p_lo = -inf``: ``D_max = +inf``).

    Args:
      value_grid: ``V[i, j] = values(s_i, s_j)``, shape=(n_s, n_s, 2) (:func:`grid_values`).
      trade: the fixed rule, shape=(n_s, n_s), bool.

    Returns:
      ``(D_min, D_max)``, shape=(2,); both NaN if no payments make ``trade`` IC (``p_lo > p_hi``
      or ``r_lo > r_hi`` for some traded opponent type: the rule is not monotone, CE Thm 2).
    """
    vb, vs = value_grid[..., 0], value_grid[..., 1]
    p_lo = jnp.max(jnp.where(trade, -jnp.inf, vb), axis=0)  # [j]: last non-trading buyer type's value
    p_hi = jnp.min(jnp.where(trade, vb, jnp.inf), axis=0)  # [j]: first trading buyer type's value
    r_lo = jnp.max(jnp.where(trade, vs, -jnp.inf), axis=1)  # [i]: last trading seller type's value
    r_hi = jnp.min(jnp.where(trade, jnp.inf, vs), axis=1)  # [i]: first non-trading seller type's value
    ok = jnp.all(~jnp.any(trade, axis=0) | (p_lo <= p_hi)) & jnp.all(~jnp.any(trade, axis=1) | (r_lo <= r_hi))
    d_min = jnp.mean(jnp.where(trade, r_lo[:, None] - p_hi[None, :], 0.0))
    d_max = jnp.mean(jnp.where(trade, r_hi[:, None] - p_lo[None, :], 0.0))
    return jnp.where(ok, jnp.stack([d_min, d_max]), jnp.nan)


# --------------------------------------------------------------------------
# solve and check


def solve_double_auction(
    values: Callable[[Array], Array],
    n_signals: int = 21,
    n_bids: int = 41,
    tol: float | None = None,
    *,
    bids: Array | np.ndarray | None = None,
) -> DoubleAuctionResult:
    """Solve CE Sec. 4.3's double auction by iterated ex post weak dominance on grids, and check CE's claims.

    The elimination (:func:`eliminate`) and the checks are compiled once per grid
    shape; only the grid evaluation of ``values`` and the tie types are compiled
    per value model (``values`` is a static argument: pass the same function
    object to reuse the compilation).

    Args:
      values: ``values(s) -> (v_beta(s), v_sigma(s))`` for one profile ``s = (s_beta,
        s_sigma)``, pure JAX (vmapped here).
      n_signals: signal grid points per agent on ``[0, 1]`` (static, >= 2).
      n_bids: bid grid points (static, >= 4) for :func:`default_bids`; ignored when
        ``bids`` is given.
      tol: payoff tolerance for ties (default ``1e-5 * max(1, max |v|)`` on the grid).
      bids: an explicit, strictly increasing bid grid (shape=(n_b,), n_b >= 2).

    Returns:
      A :class:`DoubleAuctionResult`.
    """
    if not isinstance(n_signals, int | np.integer) or n_signals < 2:
        raise ValueError(f"solve_double_auction: n_signals must be an int >= 2, got {n_signals!r}")
    if tol is not None and not tol >= 0:
        raise ValueError(f"solve_double_auction: tol must be >= 0, got {tol!r}")
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    out = jax.eval_shape(values, jax.ShapeDtypeStruct((2,), dtype))
    if out.shape != (2,):
        raise ValueError(f"solve_double_auction: values(s) must have shape (2,), got {out.shape}")
    if bids is None:
        if not isinstance(n_bids, int | np.integer) or n_bids < 4:
            raise ValueError(f"solve_double_auction: n_bids must be an int >= 4, got {n_bids!r}")
    else:
        b = np.asarray(bids, np.float64)
        if b.ndim != 1 or b.size < 2 or not np.all(np.diff(b) > 0):
            raise ValueError(f"solve_double_auction: bids must be 1-D, strictly increasing, >= 2 points, got {b}")
        bids, n_bids = jnp.asarray(b, dtype), b.size
    tol = None if tol is None else jnp.asarray(tol, dtype)

    signals, v, bids, tol, ties, phi, vcg = _model(values, int(n_signals), int(n_bids), bids, tol)
    alive_b, alive_s, rounds, guarded = eliminate(v, bids, tol)
    return assess(signals, bids, v, ties, alive_b, alive_s, rounds, guarded, tol, phi, vcg)


@partial(jax.jit, static_argnames=("values", "n_signals", "n_bids"))
def _model(values, n_signals, n_bids, bids, tol):
    """Everything that depends on ``values``: grids, tolerance, ``phi`` and the VCG deficit."""
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    signals = jnp.linspace(0.0, 1.0, n_signals, dtype=dtype)
    v = grid_values(values, signals)
    if bids is None:
        bids = default_bids(v, n_bids)
    if tol is None:
        tol = 1e-5 * jnp.maximum(1.0, jnp.max(jnp.abs(v)))
    g_b, g_s, at_gb, at_gs = _at_tie_types(values, signals)
    return signals, v, bids, tol, jnp.stack([g_s, g_b]), _phi(at_gb, at_gs), _vcg(v, at_gb, at_gs, tol)


def _equilibrium_gains(u_b, u_s, alive_b, alive_s, sel_b, sel_s):
    """Ex post gains ``max_b' u_i(b', b_-i; s) - u_i(b_i, b_-i; s)``: (selected, worst over survivors), each (2,)."""
    ids = jnp.arange(u_b.shape[0])
    best_b = jnp.max(u_b, axis=1)  # [i, j, y]
    best_s = jnp.max(u_s, axis=1)  # [j, i, x]
    # selected profile: buyer type i offers sel_b[i], seller type j demands sel_s[j]
    u_b_sel = u_b[ids[:, None], sel_b[:, None], ids[None, :], sel_s[None, :]]  # [i, j]
    u_s_sel = u_s[ids[:, None], sel_s[:, None], ids[None, :], sel_b[None, :]]  # [j, i]
    best_b_sel = best_b[ids[:, None], ids[None, :], sel_s[None, :]]
    best_s_sel = best_s[ids[:, None], ids[None, :], sel_b[None, :]]
    gain = jnp.stack([jnp.max(best_b_sel - u_b_sel), jnp.max(best_s_sel - u_s_sel)])
    # every surviving own bid against every surviving opponent bid
    pair_b = alive_b[:, :, None, None] & alive_s[None, None, :, :]
    pair_s = alive_s[:, :, None, None] & alive_b[None, None, :, :]
    worst_b = jnp.max(jnp.where(pair_b, best_b[:, None] - u_b, -jnp.inf))
    worst_s = jnp.max(jnp.where(pair_s, best_s[:, None] - u_s, -jnp.inf))
    return gain, jnp.stack([worst_b, worst_s])


def _phi_gap(alive, bids, phi):
    dist = jnp.where(alive, jnp.abs(bids[None, :] - phi[:, None]), jnp.inf)
    return jnp.max(jnp.min(dist, axis=1))


def _spread(alive, bids):
    hi = jnp.max(jnp.where(alive, bids, -jnp.inf), axis=1)
    lo = jnp.min(jnp.where(alive, bids, jnp.inf), axis=1)
    return jnp.max(hi - lo)


@jax.jit
def assess(signals, bids, v, ties, alive_b, alive_s, rounds, guarded, tol, phi, vcg) -> DoubleAuctionResult:
    """The selected profile and CE Sec. 4.3's claims measured on the grid."""
    n_b = bids.shape[0]
    ids = jnp.arange(n_b)
    sel_b = jnp.max(jnp.where(alive_b, ids, -1), axis=1)  # highest surviving offer
    sel_s = jnp.min(jnp.where(alive_s, ids, n_b), axis=1)  # lowest surviving demand
    x, y = bids[sel_b], bids[sel_s]
    trade = x[:, None] >= y[None, :]  # the selected pair trades iff some surviving pair does
    gap = v[..., 0] - v[..., 1]
    efficient = jnp.where(trade, gap >= -tol, gap <= tol)
    x_lo = jnp.min(jnp.where(alive_b, bids, jnp.inf), axis=1)
    y_hi = jnp.max(jnp.where(alive_s, bids, -jnp.inf), axis=1)
    trade_all = x_lo[:, None] >= y_hi[None, :]  # every surviving pair trades
    efficient_all = jnp.where(gap > tol, trade_all, jnp.where(gap < -tol, ~trade, True))

    deficit = jnp.where(trade, x[:, None] - y[None, :], 0.0)
    deficit_low = jnp.where(x_lo[:, None] >= y_hi[None, :], x_lo[:, None] - y_hi[None, :], 0.0)
    min_deficit = jnp.where(jnp.any(trade), jnp.min(jnp.where(trade, deficit, jnp.inf)), 0.0)
    u_b, u_s = payoff_tensors(v, bids)
    gain, gain_worst = _equilibrium_gains(u_b, u_s, alive_b, alive_s, sel_b, sel_s)
    return DoubleAuctionResult(
        signals=signals,
        bids=bids,
        value_grid=v,
        ties=ties,
        alive=jnp.stack([alive_b, alive_s]),
        rounds=rounds,
        guarded=guarded,
        selected=jnp.stack([x, y]),
        predicted=phi,
        phi_gap=jnp.stack([_phi_gap(alive_b, bids, phi[0]), _phi_gap(alive_s, bids, phi[1])]),
        spread=jnp.stack([_spread(alive_b, bids), _spread(alive_s, bids)]),
        trade=trade,
        efficient_share=jnp.mean(efficient.astype(bids.dtype)),
        efficient_share_all=jnp.mean(efficient_all.astype(bids.dtype)),
        inefficiency_gap=jnp.max(jnp.where(efficient, 0.0, jnp.abs(gap))),
        equilibrium_gain=gain,
        equilibrium_gain_worst=gain_worst,
        mean_deficit=jnp.mean(deficit),
        mean_deficit_low=jnp.mean(deficit_low),
        min_deficit=min_deficit,
        vcg_mean_deficit=jnp.mean(vcg),
        deficit_interval=deficit_interval(v, gap > tol),
        auction_deficit_interval=deficit_interval(v, trade),
        tol=tol,
    )


def result_to_metrics(result: DoubleAuctionResult) -> dict:
    """JSON-ready summary of a :class:`DoubleAuctionResult` (floats, ints and lists) for a results folder."""
    r = jax.tree.map(np.asarray, result)
    lo = np.where(r.alive, r.bids[None, None, :], np.inf).min(axis=2)
    hi = np.where(r.alive, r.bids[None, None, :], -np.inf).max(axis=2)
    fl = lambda a: [float(t) for t in np.ravel(a)]
    return {
        "n_signals": int(r.signals.shape[0]),
        "n_bids": int(r.bids.shape[0]),
        "signal_step": result.signal_step,
        "bid_step": result.bid_step,
        "tol": float(r.tol),
        "rounds": int(r.rounds),
        "guarded": int(r.guarded),
        "efficient_share": float(r.efficient_share),
        "efficient_share_all": float(r.efficient_share_all),
        "inefficiency_gap": float(r.inefficiency_gap),
        "equilibrium_gain": {"buyer": float(r.equilibrium_gain[0]), "seller": float(r.equilibrium_gain[1])},
        "equilibrium_gain_worst": {
            "buyer": float(r.equilibrium_gain_worst[0]),
            "seller": float(r.equilibrium_gain_worst[1]),
        },
        "phi_gap": {"buyer": float(r.phi_gap[0]), "seller": float(r.phi_gap[1])},
        "spread": {"buyer": float(r.spread[0]), "seller": float(r.spread[1])},
        "mean_deficit": float(r.mean_deficit),
        "mean_deficit_low": float(r.mean_deficit_low),
        "min_deficit": float(r.min_deficit),
        "vcg_mean_deficit": float(r.vcg_mean_deficit),
        "deficit_interval": {"low": float(r.deficit_interval[0]), "high": float(r.deficit_interval[1])},
        "auction_deficit_interval": {
            "low": float(r.auction_deficit_interval[0]),
            "high": float(r.auction_deficit_interval[1]),
        },
        "trade_share": float(np.mean(r.trade)),
        "signals": fl(r.signals),
        "bids": fl(r.bids),
        **{
            agent: {
                "selected": fl(r.selected[k]),
                "predicted": fl(r.predicted[k]),
                "low": fl(lo[k]),
                "high": fl(hi[k]),
                "tie_type": fl(r.ties[k]),
            }
            for k, agent in enumerate(("buyer", "seller"))
        },
    }
