"""The voluntary contingent-contribution scheme of CE Sec. 5.3, checked on grids.

Public goods with two agents (CE Sec. 5): signals ``s_i in [0, 1]``, values
``values(s) = (v_1(s), v_2(s))`` for ONE profile ``s = (s_1, s_2)`` (weakly
increasing, strictly in the own signal), a project of cost ``c``. A *threshold
contribution rule* (CE Def 12) with pivotal valuations ``vbar = (vbar_1, vbar_2)``
provides iff ``v_1(s) >= vbar_1`` and ``v_2(s) >= vbar_2``. Under increasing
differences (CE Def 11) the second-best rules are exactly those with
``vbar_1 + vbar_2 = c`` and ``vbar = v(sbar)`` for some profile ``sbar`` (CE Thm 9).

The scheme (CE Sec. 5.3): each agent ``i`` announces ``(d_i, p_i)``, "I contribute
up to ``p_i`` if the other promises at least ``d_i``". The project is produced iff
``p_i >= d_{-i}`` for both agents; then ``i`` pays ``d_{-i}``. Ex post utility::

    u_i = 1[p_1 >= d_2 and p_2 >= d_1] (v_i(s) - d_{-i})

CE's strategies: ``F_i(s_i) = {s_{-i} : v_i(s_i, s_{-i}) > vbar_i, v_{-i}(s_i, s_{-i}) > vbar_{-i}}``,
``phi_{-i}(s_i) = inf F_i(s_i)`` (1 when empty). If ``F_i(s_i) = [0, 1]`` (*full*
type) agent ``i`` offers ``p_i = v_i(s_i, 0)`` against the demand ``d_i = vbar_{-i}``;
otherwise ``p_i = v_i(s_i, phi_{-i}(s_i))`` and ``d_i = v_{-i}(s_i, phi_{-i}(s_i))``.
CE claim this is an ex post equilibrium that implements the rule, with each
demand equal to the generalized VCG payment of the rule (CE Thm 9's proof).

Two points the grid checks make concrete (see :func:`check_equilibrium`):

* the scheme relies on exact ties: under interdependence, on a set of profiles
  of positive measure ``p_i = d_{-i} = vbar_i`` (``i``'s own constraint binds at
  ``phi_{-i}(s_i)`` and the other's demand is ``i``'s pivotal value), and
  ``p_i >= d_{-i}`` must hold there. Evaluating ``v`` at a bisected ``phi`` breaks
  those ties at random; :func:`contribution_strategies` sets binding pledges and
  demands to their pivotal values (``exact=True``);
* full types demand ``vbar_{-i}``, below the generalized VCG payment
  ``v_{-i}(s_i, 0)`` of the other agent: there the taxes differ from the VCG
  payments (by a function of ``s_i`` alone, as payoff equivalence allows), and
  demanding the VCG payment instead breaks implementation.

Notation: ``v_i(s_i, x)`` is agent ``i``'s value at the profile where ``i`` has
``s_i`` and the other ``x``; profiles are always built in agent order
(:func:`_profile`). Arrays indexed by type are ``[agent, type]``; grid profiles
are ``[k_1, k_2]`` (agent 1's type index first). Agents are ``0, 1`` in code and
``1, 2`` in the paper.
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


def _dtype():
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def _iters(dtype) -> int:
    return 64 if jnp.dtype(dtype) == jnp.float64 else 32


def _profile(i, s_i: Array, x: Array) -> Array:
    """The profile where agent ``i`` (int or traced) has ``s_i`` and the other agent has ``x``, in agent order."""
    return jnp.where(i == 0, jnp.stack([s_i, x]), jnp.stack([x, s_i]))


def _as_pytree(values) -> jax.tree_util.Partial:
    """``values`` as a pytree jit argument: a ``jax.tree_util.Partial`` keeps its bound
    arrays traced (one compilation for a family of value models); a plain function
    becomes a leafless ``Partial`` (one compilation per function object)."""
    return values if isinstance(values, jax.tree_util.Partial) else jax.tree_util.Partial(values)


def _validate(values, vbar, name: str) -> Array:
    dtype = _dtype()
    out = jax.eval_shape(values, jax.ShapeDtypeStruct((2,), dtype))
    if out.shape != (2,):
        raise ValueError(f"{name}: values(s) must have shape (2,) for one profile s of shape (2,), got {out.shape}")
    vb = np.asarray(vbar, np.float64)
    if vb.shape != (2,) or not np.all(np.isfinite(vb)):
        raise ValueError(f"{name}: vbar must be 2 finite pivotal valuations, got {vbar!r}")
    return jnp.asarray(vb, dtype)


# --------------------------------------------------------------------------
# the rule (CE Def 12) and its generalized VCG payments (CE Thm 9's proof)


def _provides(values, vbar, s):
    return jnp.all(values(s) >= vbar)


def _vcg_price(values, vbar, i: int, x_opp):
    """``inf{v_i(y, x_opp) : f(y, x_opp) = 1}`` (the pivot ``y`` by bisection; ``v_i(1, x_opp)`` if none)."""
    pred = lambda y: _provides(values, vbar, _profile(i, y, x_opp))
    y = bisect(pred, jnp.zeros_like(x_opp), jnp.ones_like(x_opp), _iters(x_opp.dtype))
    return values(_profile(i, y, x_opp))[i]


def vcg_payments(values: Callable[[Array], Array], vbar: Array, s: Array) -> Array:
    """Generalized VCG payments of the threshold rule at one profile (CE Thm 9's proof), shape=(2,).

    ``t_i(s) = f(s) inf{v_i(y, s_{-i}) : f(y, s_{-i}) = 1}``, with ``f`` the threshold
    contribution rule of CE Def 12 and the infimum found by bisection on the own
    signal (``f`` is monotone when values are weakly increasing, CE Def 10).
    """
    q = _provides(values, vbar, s).astype(s.dtype)
    return q * jnp.stack([_vcg_price(values, vbar, 0, s[1]), _vcg_price(values, vbar, 1, s[0])])


# --------------------------------------------------------------------------
# the contribution game (CE Sec. 5.3)


def play(d: Array, p: Array) -> tuple[Array, Array]:
    """Outcome and taxes of the contingent-contribution scheme for one announced profile (CE Sec. 5.3).

    Args:
      d: demands ``(d_1, d_2)``: ``i`` contributes only if the other promises ``>= d_i``, shape=(2,).
      p: pledges ``(p_1, p_2)``: ``i`` contributes up to ``p_i``, shape=(2,).

    Returns:
      ``(produced, taxes)``: ``produced = 1[p_1 >= d_2 and p_2 >= d_1]`` (1.0 / 0.0,
      shape=()) and ``taxes = produced (d_2, d_1)`` (agent ``i`` pays the other's
      demand), shape=(2,).
    """
    d, p = jnp.asarray(d), jnp.asarray(p)
    produced = ((p[0] >= d[1]) & (p[1] >= d[0])).astype(p.dtype)
    return produced, produced * d[::-1]


def utility(values: Callable[[Array], Array], s: Array, d: Array, p: Array, i) -> Array:
    """Agent ``i``'s ex post utility ``1[produced] (v_i(s) - d_{-i})`` at true profile ``s`` (CE Sec. 5.3), shape=()."""
    produced, taxes = play(d, p)
    return produced * values(s)[i] - taxes[i]


class Strategies(NamedTuple):
    """CE Sec. 5.3's strategies on a type grid; ``[i, k]`` is agent ``i`` of type ``signals[k]``.

    Attributes:
      phi: ``phi_{-i}(s_i) = inf F_i(s_i)`` (1 when ``F_i`` is empty), the lowest
        opponent type with which ``i`` gets the project, shape=(2, n_s).
      d: demands ``d_i(s_i)``, shape=(2, n_s).
      p: pledges ``p_i(s_i)``, shape=(2, n_s).
    """

    phi: Array
    d: Array
    p: Array


# the cutoffs: inf{x in [0, 1] : pred(x)} at the profiles (agent a at s, the other at x), for four predicates
_OWN, _OTHER, _RULE, _F = 0, 1, 2, 3


def _cutoff_preds(values, vbar, a, s, x):
    """At the profile (``a``: ``s``, other: ``x``): ``v_a > vbar_a``, ``v_{-a} > vbar_{-a}``,
    ``f = 1`` (weak, CE Def 12) and ``x in F_a(s)`` (both strict, CE Sec. 5.3), shape=(4,)."""
    v = values(_profile(a, s, x))
    own, other = v[a] > vbar[a], v[1 - a] > vbar[1 - a]
    return jnp.stack([own, other, jnp.all(v >= vbar), own & other])


def _cutoffs(values, vbar, signals):
    """Every cutoff by one batched bisection (values weakly increase in ``x``, so each predicate is monotone).

    Returns ``(x, at_0, at_1)``, each shape=(2, 4, n_s) ``[a, predicate, k]``: the
    infimum (1 when the predicate fails at 1) and the predicate at ``x = 0`` and ``x = 1``.
    """
    zero, one = jnp.zeros((), signals.dtype), jnp.ones((), signals.dtype)
    iters = _iters(signals.dtype)

    def one_cutoff(a, kind, s):
        pred = lambda x: _cutoff_preds(values, vbar, a, s, x)[kind]
        return bisect(pred, zero, one, iters), pred(zero), pred(one)

    a, kind, s = jnp.meshgrid(jnp.arange(2), jnp.arange(4), signals, indexing="ij")
    out = jax.vmap(one_cutoff)(a.ravel(), kind.ravel(), s.ravel())
    return tuple(o.reshape(a.shape) for o in out)


def _strategies_from(values, vbar, signals, cuts, exact):
    """CE Sec. 5.3's ``(phi, d, p, full, empty)`` from the cutoffs, each shape=(2, n_s).

    ``F_i(s_i) = {x : v_i(s_i, x) > vbar_i} cap {x : v_{-i}(s_i, x) > vbar_{-i}}`` is an
    up-set; ``phi_{-i}(s_i) = inf F_i(s_i)`` (1 when empty). With ``exact``, ``phi =
    max(x_own, x_other)`` and a pledge or demand whose constraint binds at ``phi`` is
    set to its pivotal value (in exact arithmetic ``v_i(s_i, x_own) = vbar_i``); else
    ``phi`` is the bisection on ``x in F_i(s_i)`` and ``(p_i, d_i)`` are the values there.
    """
    x, at_0, at_1 = cuts
    full, empty = at_0[:, _F], ~at_1[:, _F]
    x_own, x_other = x[:, _OWN], x[:, _OTHER]
    phi_exact = jnp.where(empty, 1.0, jnp.maximum(x_own, x_other))
    phi_joint = jnp.where(empty, 1.0, x[:, _F])  # bisect gives 0 when full
    phi = jnp.where(exact, phi_exact, phi_joint)
    binds_own = exact & ~empty & ~at_0[:, _OWN] & (x_own >= x_other)
    binds_other = exact & ~empty & ~at_0[:, _OTHER] & (x_other >= x_own)
    agent = jnp.broadcast_to(jnp.arange(2)[:, None], phi.shape)
    sig = jnp.broadcast_to(signals[None, :], phi.shape)
    v = jax.vmap(jax.vmap(lambda i, s, y: values(_profile(i, s, y))))(agent, sig, phi)  # (2, n_s, 2)
    own_v = jnp.where(agent == 0, v[..., 0], v[..., 1])
    other_v = jnp.where(agent == 0, v[..., 1], v[..., 0])
    p = jnp.where(binds_own, vbar[:, None], own_v)
    d = jnp.where(full | binds_other, vbar[::-1][:, None], other_v)
    return phi, d, p, full, empty


def _vcg_prices(values, vbar, signals, cuts):
    """Generalized VCG price of agent ``i`` when the other has ``signals[k]``: ``v_i`` at the
    pivot ``inf{y : f(y, s_{-i}) = 1}``, shape=(2, n_s) ``[i, k]``."""
    pivot = cuts[0][::-1, _RULE]  # [i, k]: agent 1 - i fixed at signals[k]
    agent = jnp.broadcast_to(jnp.arange(2)[:, None], pivot.shape)
    sig = jnp.broadcast_to(signals[None, :], pivot.shape)
    v = jax.vmap(jax.vmap(lambda i, s, y: values(_profile(i, y, s))))(agent, sig, pivot)  # i at y, other at s
    return jnp.where(agent == 0, v[..., 0], v[..., 1])


@jax.jit
def _strategies(values, vbar, signals, exact, vcg_full):
    cuts = _cutoffs(values, vbar, signals)
    phi, d, p, full, empty = _strategies_from(values, vbar, signals, cuts, exact)
    d = jnp.where(vcg_full & full, _vcg_prices(values, vbar, signals, cuts)[::-1], d)
    return phi, d, p, full, empty


_FULL_DEMANDS = ("pivotal", "vcg")


def contribution_strategies(
    values: Callable[[Array], Array], vbar, signals, *, exact: bool = True, full_demand: str = "pivotal"
) -> Strategies:
    """CE Sec. 5.3's strategy profile for the threshold rule with pivotal valuations ``vbar`` (CE Def 12).

    For agent ``i`` of type ``s_i``: ``phi_{-i}(s_i) = inf F_i(s_i)`` by bisection
    (``x in F_i(s_i)`` is monotone in ``x`` when values weakly increase), 1 when
    ``F_i(s_i)`` is empty; ``p_i = v_i(s_i, phi_{-i}(s_i))`` and ``d_i = v_{-i}(s_i,
    phi_{-i}(s_i))``, except for *full* types (``F_i(s_i) = [0, 1]``, i.e. ``0 in
    F_i(s_i)``), which pledge ``v_i(s_i, 0)`` against the demand ``vbar_{-i}``.

    At ``phi`` at least one of ``v_i = vbar_i``, ``v_{-i} = vbar_{-i}`` holds exactly,
    and the scheme needs those equalities: where agent ``i``'s own constraint binds,
    ``p_i = vbar_i``, and where the other's binds for ``-i``, ``d_{-i} = vbar_i``; these
    meet as the tie ``p_i = d_{-i}`` on a set of profiles of positive measure (under
    interdependence), and ``p_i >= d_{-i}`` must hold there. ``exact=True`` (default)
    sets a binding pledge or demand to its pivotal value; ``exact=False`` evaluates
    ``values`` at the bisected ``phi`` (off by rounding, which breaks those ties at
    random: kept to measure that effect).

    Args:
      values: ``values(s) -> (v_1(s), v_2(s))`` for one profile, pure JAX (vmapped
        here). Compiled once per function object; a ``jax.tree_util.Partial`` is
        compiled once per function with its bound arrays traced.
      vbar: pivotal valuations ``(vbar_1, vbar_2)``.
      signals: type grid shared by both agents, values in ``[0, 1]``, shape=(n_s,).
      exact: set binding pledges and demands to the pivotal values.
      full_demand: what full types demand: ``"pivotal"`` (CE's ``vbar_{-i}``) or ``"vcg"``, the other's
        generalized VCG payment ``v_{-i}(s_i, 0)`` that the end of CE Sec. 5.3 suggests (a deviation from
        CE's strategies, kept to measure that it breaks implementation).

    Returns:
      :class:`Strategies` ``(phi, d, p)``, each shape=(2, n_s).
    """
    vbar = _validate(values, vbar, "contribution_strategies")
    if full_demand not in _FULL_DEMANDS:
        raise ValueError(f"contribution_strategies: full_demand must be one of {_FULL_DEMANDS}, got {full_demand!r}")
    signals = jnp.asarray(signals, vbar.dtype)
    if signals.ndim != 1:
        raise ValueError(f"contribution_strategies: signals must be 1-D, got shape {signals.shape}")
    vcg = jnp.asarray(full_demand == "vcg")
    phi, d, p, _, _ = _strategies(_as_pytree(values), vbar, signals, jnp.asarray(bool(exact)), vcg)
    return Strategies(phi, d, p)


class ContributionSurplus(NamedTuple):
    """Expected outcomes of CE Sec. 5.3's scheme under a prior, mean and standard error over sampled profiles.

    Attributes:
      surplus: the designer's budget surplus ``produced (d_1 + d_2 - c)`` (CE Thm 9: ``>= 0`` in every state).
      welfare: ``produced (v_1 + v_2 - c)``.
      produced: the probability that the project is funded.
      n_profiles: the number of sampled profiles.
    """

    surplus: dict
    welfare: dict
    produced: dict
    n_profiles: int


def contribution_surplus(
    values: Callable[[Array], Array], vbar, prior, *, key: Array, n_profiles: int = 1 << 14, exact: bool = True
) -> ContributionSurplus:
    """Expected budget surplus and welfare of CE Sec. 5.3's contingent-contribution scheme, with standard errors.

    Profiles ``s ~ prior``; each agent plays :func:`contribution_strategies` at its own sampled type (no type
    grid); the project is funded when each pledge covers the other's demand, ``p_i >= d_{-i}``, and then the
    designer collects ``d_1 + d_2`` against the cost ``c = vbar_1 + vbar_2``. ``{"mean", "se"}`` per quantity
    (the sample SE: ``std / sqrt(n)``).
    """
    if not isinstance(n_profiles, int | np.integer) or n_profiles < 2:
        raise ValueError(f"contribution_surplus: n_profiles must be an int >= 2, got {n_profiles!r}")
    vbar = _validate(values, vbar, "contribution_surplus")
    if tuple(prior.dims) != (1, 1):
        raise ValueError(f"contribution_surplus: needs two agents with one signal each, got prior dims {prior.dims}")
    s = prior.sample(key, int(n_profiles), vbar.dtype)  # (N, 2)
    st = [contribution_strategies(values, vbar, s[:, i], exact=exact) for i in (0, 1)]
    d = jnp.stack([st[0].d[0], st[1].d[1]])  # (2, N): agent i's demand of the other at its own type
    p = jnp.stack([st[0].p[0], st[1].p[1]])
    cost = vbar[0] + vbar[1]
    produced = (p[0] >= d[1]) & (p[1] >= d[0])
    v = jax.vmap(values)(s)
    out = {}
    for name, x in (("surplus", jnp.where(produced, d[0] + d[1] - cost, 0.0)),
                    ("welfare", jnp.where(produced, v[:, 0] + v[:, 1] - cost, 0.0)),
                    ("produced", produced.astype(jnp.float64 if vbar.dtype == jnp.float64 else jnp.float32))):  # fmt: skip
        x = np.asarray(x, np.float64)
        out[name] = {"mean": float(np.mean(x)), "se": float(np.std(x, ddof=1) / np.sqrt(len(x)))}
    return ContributionSurplus(out["surplus"], out["welfare"], out["produced"], int(n_profiles))


# --------------------------------------------------------------------------
# checks on grids


class ContributionResult(NamedTuple):
    """CE Sec. 5.3's claims measured on a type grid. Profiles are ``[k_1, k_2]``; agent axes ``[i]``.

    Attributes:
      signals: type grid, shape=(n_s,).
      vbar: pivotal valuations, shape=(2,).
      cost: ``c = vbar_1 + vbar_2`` (CE Thm 9, condition 1), shape=().
      strategies: the checked strategy profile, :class:`Strategies` of shape=(2, n_s) arrays.
      full: types with ``F_i(s_i) = [0, 1]``, shape=(2, n_s), bool.
      empty: types with ``F_i(s_i)`` empty, shape=(2, n_s), bool.
      value_grid: ``values`` at the grid profiles, shape=(n_s, n_s, 2).
      provide: the threshold rule ``f`` (CE Def 12) on the grid, shape=(n_s, n_s), bool.
      produced: the scheme's outcome under the strategies, shape=(n_s, n_s), bool.
      implementation_share: share of grid profiles where ``produced == provide``, shape=().
      n_mismatch: number of profiles where they differ, shape=().
      mismatch_margin: max over mismatches of ``|min_i (v_i(s) - vbar_i)|``, the
        distance (in values) of the profile from the rule's boundary; 0 if none, shape=().
      mismatch_witness: the mismatch profile ``(s_1, s_2)`` with that margin (nan if none), shape=(2,).
      strict_share: implementation share over profiles with margin ``> tol`` (off the boundary), shape=().
      gain: per agent, max over own and opponent types and over the deviation set
        of ``u_i(dev) - u_i(strategies)``, against the opponent's strategy, shape=(2,).
      gain_witness: per agent, the profile ``(s_1, s_2)`` of that max, shape=(2, 2).
      gain_deviation: per agent, the deviation ``(d, p)`` of that max, shape=(2, 2).
      gain_exact: per agent, the same max against the exact best reply: the
        scheme lets ``i`` get the project at tax ``d_{-i}`` or not, so the best
        reply is worth ``max(0, v_i(s) - d_{-i}(s_{-i}))``, shape=(2,).
      budget_margin: min over produced grid profiles of ``d_1 + d_2 - c`` (CE Thm 9:
        ``>= 0``); ``+inf`` if nothing is produced, shape=().
      vcg_gap: per agent, max of ``|tax_i - t_i|`` over profiles produced by both the
        scheme and ``f`` and off the boundary (margin ``> tol``), ``t_i`` the
        generalized VCG payment (:func:`vcg_payments`), shape=(2,).
      vcg_gap_regular: the same, leaving out profiles where the other agent's
        type is full (there the demand is ``vbar_i``, not ``t_i``), shape=(2,).
      value_scale: ``max(1, max |v|)`` on the grid, shape=().
      tol: tie tolerance on values, shape=().
      n_deviations: size of the deviation set, shape=().
    """

    signals: Array
    vbar: Array
    cost: Array
    strategies: Strategies
    full: Array
    empty: Array
    value_grid: Array
    provide: Array
    produced: Array
    implementation_share: Array
    n_mismatch: Array
    mismatch_margin: Array
    mismatch_witness: Array
    strict_share: Array
    gain: Array
    gain_witness: Array
    gain_deviation: Array
    gain_exact: Array
    budget_margin: Array
    vcg_gap: Array
    vcg_gap_regular: Array
    value_scale: Array
    tol: Array
    n_deviations: Array


def check_equilibrium(
    values: Callable[[Array], Array],
    vbar,
    *,
    n_types: int = 101,
    n_grid: int = 41,
    n_random: int = 256,
    key: Array,
    strategies: Strategies | None = None,
    exact: bool = True,
    tol: float | None = None,
) -> ContributionResult:
    """Check CE Sec. 5.3's claims for the threshold rule with pivotal valuations ``vbar`` (CE Def 12).

    On the ``n_types x n_types`` grid of profiles, with the strategies of
    :func:`contribution_strategies` (or ``strategies``, e.g. a perturbed profile for
    a negative control):

    (a) implementation: the scheme's outcome equals ``f(s)``;
    (b) ex post equilibrium: for each agent, own type and opponent type, the gain
        of the best deviation ``(d, p)`` from a ``n_grid x n_grid`` grid over the
        value range (widened by 10%) plus ``n_random`` uniform pairs in the same box,
        against the opponent's strategy (one own type at a time, ``lax.map``);
    (c) budget: ``d_1 + d_2 - c`` where produced, ``c = vbar_1 + vbar_2`` (CE Thm 9),
        and the taxes against the generalized VCG payments of ``f``.

    Args:
      values: ``values(s) -> (v_1(s), v_2(s))`` for one profile; compiled once per
        function object, or once per function for a ``jax.tree_util.Partial``
        (its bound arrays are traced).
      vbar: pivotal valuations ``(vbar_1, vbar_2)``.
      n_types: type grid points per agent on ``[0, 1]`` (static, >= 2).
      n_grid: deviation grid points per coordinate (static, >= 2).
      n_random: random deviations (static, >= 0).
      key: PRNG key for the random deviations.
      strategies: a :class:`Strategies` on the same type grid to check instead of CE's.
      exact: passed to :func:`contribution_strategies`.
      tol: tie tolerance on values (default ``1e-5 * max(1, max |v|)``).

    Returns:
      A :class:`ContributionResult`.
    """
    for name, n, least in (("n_types", n_types, 2), ("n_grid", n_grid, 2), ("n_random", n_random, 0)):
        if not isinstance(n, int | np.integer) or n < least:
            raise ValueError(f"check_equilibrium: {name} must be an int >= {least}, got {n!r}")
    if tol is not None and not tol >= 0:
        raise ValueError(f"check_equilibrium: tol must be >= 0, got {tol!r}")
    vbar = _validate(values, vbar, "check_equilibrium")
    dtype = vbar.dtype
    if strategies is not None:
        shapes = [np.shape(a) for a in strategies]
        if any(s != (2, n_types) for s in shapes):
            raise ValueError(f"check_equilibrium: strategies must have (2, n_types={n_types}) arrays, got {shapes}")
        given = Strategies(*(jnp.asarray(a, dtype) for a in strategies))
    else:
        given = Strategies(*(jnp.zeros((2, n_types), dtype) for _ in range(3)))
    tol = jnp.asarray(-1.0 if tol is None else tol, dtype)  # < 0: the default
    use_given = jnp.asarray(strategies is not None)
    args = (vbar, key, given, use_given, tol)
    return _check(_as_pytree(values), int(n_types), int(n_grid), int(n_random), jnp.asarray(bool(exact)), *args)


def _deviation_gains(v_own, u_own, d_opp, p_opp, dev_d, dev_p):
    """Best deviation gain per profile, own type major; one own type at a time (``lax.map``).

    Args:
      v_own, u_own: own value and equilibrium utility, ``[row, k_opp]``, shape=(R, n_opp).
      d_opp, p_opp: the opponent's strategy against each row, shape=(R, n_opp).
      dev_d, dev_p: the deviation set, shape=(M,).

    Returns:
      ``(gain, j)``: max over deviations of ``u(dev) - u_own`` and the argmax, shape=(R, n_opp).
    """

    def one_row(row):
        v_row, u_row, d_row, p_row = row  # (n_opp,)
        produced = (dev_p[None, :] >= d_row[:, None]) & (p_row[:, None] >= dev_d[None, :])  # (n_opp, M)
        gain = jnp.where(produced, (v_row - d_row)[:, None], 0.0) - u_row[:, None]
        j = jnp.argmax(gain, axis=1)
        return jnp.take_along_axis(gain, j[:, None], axis=1)[:, 0], j

    return jax.lax.map(one_row, (v_own, u_own, d_opp, p_opp))


def _argmax2(x):
    k = jnp.argmax(x)
    return k // x.shape[1], k % x.shape[1]


def _own_major(x):
    """``[k_1, k_2]`` -> ``[i, k_own, k_opp]``, shape=(2, n, n)."""
    return jnp.stack([x, x.T])


@partial(jax.jit, static_argnames=("n_types", "n_grid", "n_random"))
def _check(values, n_types, n_grid, n_random, exact, vbar, key, given, use_given, tol):
    dtype = vbar.dtype
    signals = jnp.linspace(0.0, 1.0, n_types, dtype=dtype)
    cuts = _cutoffs(values, vbar, signals)
    phi, d_ce, p_ce, full, empty = _strategies_from(values, vbar, signals, cuts, exact)
    strat = jax.tree.map(lambda g, ce: jnp.where(use_given, g, ce), given, Strategies(phi, d_ce, p_ce))
    d, p = strat.d, strat.p
    cost = vbar[0] + vbar[1]

    grid = jnp.stack(jnp.meshgrid(signals, signals, indexing="ij"), axis=-1)  # (n, n, 2)
    v = jax.vmap(jax.vmap(values))(grid)  # (n, n, 2)
    scale = jnp.maximum(1.0, jnp.max(jnp.abs(v)))
    tol = jnp.where(tol < 0, 1e-5 * scale, tol)

    # (a) implementation
    vb = vbar[None, None, :]
    provide = jnp.all(v >= vb, axis=-1)
    produced = (p[0][:, None] >= d[1][None, :]) & (p[1][None, :] >= d[0][:, None])
    mismatch = provide != produced
    margin = jnp.abs(jnp.min(v - vb, axis=-1))
    n_mismatch = jnp.sum(mismatch)
    mm = jnp.where(mismatch, margin, -1.0)
    k1, k2 = _argmax2(mm)
    mismatch_witness = jnp.where(n_mismatch > 0, grid[k1, k2], jnp.nan)
    off_boundary = margin > tol
    strict_share = jnp.sum(off_boundary & ~mismatch) / jnp.maximum(1, jnp.sum(off_boundary))

    # (b) ex post equilibrium against the opponent's strategy, own type major [i, k_own, k_opp]
    v_own = jnp.stack([v[..., 0], v[..., 1].T])
    q_own = _own_major(produced).astype(dtype)
    d_opp = jnp.broadcast_to(d[::-1][:, None, :], v_own.shape)  # i pays d_{-i}(s_{-i})
    p_opp = jnp.broadcast_to(p[::-1][:, None, :], v_own.shape)
    u_own = q_own * (v_own - d_opp)
    lo = jnp.minimum(jnp.min(v), jnp.min(vbar))
    hi = jnp.maximum(jnp.max(v), jnp.max(vbar))
    lo, hi = lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)
    axis = jnp.linspace(lo, hi, n_grid, dtype=dtype)
    gd, gp = (a.ravel() for a in jnp.meshgrid(axis, axis, indexing="ij"))
    rnd = jax.random.uniform(key, (2, n_random), dtype, lo, hi)
    dev_d, dev_p = jnp.concatenate([gd, rnd[0]]), jnp.concatenate([gp, rnd[1]])
    flat = lambda x: x.reshape(2 * n_types, n_types)
    g, j = _deviation_gains(flat(v_own), flat(u_own), flat(d_opp), flat(p_opp), dev_d, dev_p)
    g, j = g.reshape(v_own.shape), j.reshape(v_own.shape)
    gain, gain_witness, gain_deviation = [], [], []
    for i in (0, 1):
        ko, kx = _argmax2(g[i])
        gain.append(g[i, ko, kx])
        gain_witness.append(_profile(i, signals[ko], signals[kx]))
        gain_deviation.append(jnp.stack([dev_d[j[i, ko, kx]], dev_p[j[i, ko, kx]]]))
    gain_exact = jnp.max(jnp.maximum(0.0, v_own - d_opp) - u_own, axis=(1, 2))

    # (c) budget and generalized VCG payments (off the boundary)
    budget = jnp.min(jnp.where(produced, d[0][:, None] + d[1][None, :] - cost, jnp.inf))
    prices = _vcg_prices(values, vbar, signals, cuts)  # [i, k_opp]
    gap = jnp.broadcast_to(jnp.abs(d[::-1] - prices)[:, None, :], v_own.shape)
    counted = _own_major(produced & provide & off_boundary)
    regular = counted & ~full[::-1][:, None, :]  # the demanding agent -i is not a full type
    vcg_gap = jnp.max(jnp.where(counted, gap, 0.0), axis=(1, 2))
    vcg_regular = jnp.max(jnp.where(regular, gap, 0.0), axis=(1, 2))

    return ContributionResult(
        signals=signals,
        vbar=vbar,
        cost=cost,
        strategies=strat,
        full=full,
        empty=empty,
        value_grid=v,
        provide=provide,
        produced=produced,
        implementation_share=1.0 - n_mismatch / (n_types * n_types),
        n_mismatch=n_mismatch,
        mismatch_margin=jnp.maximum(0.0, mm[k1, k2]),
        mismatch_witness=mismatch_witness,
        strict_share=strict_share,
        gain=jnp.stack(gain),
        gain_witness=jnp.stack(gain_witness),
        gain_deviation=jnp.stack(gain_deviation),
        gain_exact=gain_exact,
        budget_margin=budget,
        vcg_gap=vcg_gap,
        vcg_gap_regular=vcg_regular,
        value_scale=scale,
        tol=tol,
        n_deviations=jnp.asarray(dev_d.shape[0]),
    )


def result_to_metrics(result: ContributionResult) -> dict:
    """JSON-ready summary of a :class:`ContributionResult` (floats, ints, lists; ``None`` for "none")."""
    r = jax.tree.map(np.asarray, result)
    fl = lambda a: [float(t) for t in np.ravel(a)]
    opt = lambda x: float(x) if np.isfinite(x) else None
    agents = ("agent1", "agent2")
    return {
        "n_types": int(r.signals.shape[0]),
        "n_deviations": int(r.n_deviations),
        "vbar": fl(r.vbar),
        "cost": float(r.cost),
        "value_scale": float(r.value_scale),
        "tol": float(r.tol),
        "implementation_share": float(r.implementation_share),
        "strict_share": float(r.strict_share),
        "n_mismatch": int(r.n_mismatch),
        "mismatch_margin": float(r.mismatch_margin),
        "mismatch_witness": fl(r.mismatch_witness) if int(r.n_mismatch) else None,
        "produced_share": float(np.mean(r.produced)),
        "budget_margin": opt(r.budget_margin),
        **{
            agent: {
                "gain": float(r.gain[k]),
                "gain_exact": float(r.gain_exact[k]),
                "gain_witness": fl(r.gain_witness[k]),
                "gain_deviation": {"d": float(r.gain_deviation[k, 0]), "p": float(r.gain_deviation[k, 1])},
                "vcg_gap": float(r.vcg_gap[k]),
                "vcg_gap_regular": float(r.vcg_gap_regular[k]),
                "n_full": int(np.sum(r.full[k])),
                "n_empty": int(np.sum(r.empty[k])),
                "phi": fl(r.strategies.phi[k]),
                "d": fl(r.strategies.d[k]),
                "p": fl(r.strategies.p[k]),
            }
            for k, agent in enumerate(agents)
        },
        "signals": fl(r.signals),
    }
