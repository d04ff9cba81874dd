"""Layer 2 — environments: who values what.

The general form is CE Sec. 2.3: a set of outcomes ``Q``, agent values
``v_i(q, s)`` (quasi-linear utility ``v_i(q, s) - t_i``) and a cost of each
outcome. An :class:`Environment` stores exactly that, as pure functions of one
outcome and one profile, so finite outcome sets with arbitrary ``v_i(q, s)``
(CE Sec. 3.1) fit as well as the separable form.

The separable form (CE Def 6) is ``v_i(q, s) = h_i(q) V_i(s)``: ``values(s)``
gives ``V(s)`` (one per agent) and ``weights(q)`` gives the allocation weights
``h(q)``; :func:`separable` builds the general functions from these two.

Outcomes are arrays. Each environment names its *outcome events*
(``outcome_names``) and maps an outcome to the probability of each event
(``outcome_probs``), so the audit can report outcome frequencies for
deterministic and randomized rules alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.core import priors

Array = jax.Array


class Environment(NamedTuple):
    """A quasi-linear environment (CE Sec. 2.3), written for ONE profile.

    Attributes:
      name: short identifier.
      dims: signal dimension of each agent (static), ``len == n_agents``.
      value: ``value(q, s) -> (n_agents,)``, agent values ``v_i(q, s)``.
      cost: ``cost(q) -> ()``, the designer's cost of outcome ``q``.
      efficient: ``efficient(s) -> q``, a first-best outcome (maximizes
        ``sum_i v_i(q, s) - cost(q)``).
      outcome_names: names of the outcome events, e.g. ``("no_trade", "trade")``.
      outcome_probs: ``outcome_probs(q) -> (len(outcome_names),)``.
      lo, hi: signal domain per coordinate (``S_i = [lo, hi]^{d_i}``), shape ``(D,)``.
      values: separable environments only: ``values(s) -> V(s)``, shape ``(n_agents,)``.
      weights: separable environments only: ``weights(q) -> h(q)``, shape ``(n_agents,)``.
      agent_names: a label per agent, for reports.
    """

    name: str
    dims: tuple[int, ...]
    value: Callable[[Array, Array], Array]
    cost: Callable[[Array], Array]
    efficient: Callable[[Array], Array]
    outcome_names: tuple[str, ...]
    outcome_probs: Callable[[Array], Array]
    lo: np.ndarray
    hi: np.ndarray
    values: Callable[[Array], Array] | None = None
    weights: Callable[[Array], Array] | None = None
    agent_names: tuple[str, ...] = ()

    @property
    def n_agents(self) -> int:
        return len(self.dims)

    @property
    def size(self) -> int:
        return sum(self.dims)

    @property
    def is_separable(self) -> bool:
        return self.values is not None and self.weights is not None

    def welfare(self, q: Array, s: Array) -> Array:
        """Total surplus ``sum_i v_i(q, s) - cost(q)``."""
        return jnp.sum(self.value(q, s)) - self.cost(q)


def signal_domain(dims, lo, hi):
    """The signal box ``[lo, hi]`` as float64 arrays of shape ``(sum(dims),)`` (scalars broadcast); ``ValueError``
    (naming the coordinate) unless ``lo < hi`` everywhere."""
    size = sum(dims)
    lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), (size,)).copy()
    hi = np.broadcast_to(np.asarray(hi, dtype=np.float64), (size,)).copy()
    if np.any(lo >= hi):
        j = int(np.argmax(lo >= hi))
        raise ValueError(f"signal domain: lo must be < hi, got lo={lo[j]}, hi={hi[j]} at coordinate {j}")
    return lo, hi


def separable(
    name: str,
    dims: Sequence[int],
    values: Callable[[Array], Array],
    weights: Callable[[Array], Array],
    cost: Callable[[Array], Array],
    efficient: Callable[[Array], Array],
    outcome_names: Sequence[str],
    outcome_probs: Callable[[Array], Array],
    *,
    lo=0.0,
    hi=1.0,
    agent_names: Sequence[str] = (),
) -> Environment:
    """A separable environment, ``v_i(q, s) = h_i(q) V_i(s)`` (CE Def 6)."""
    dims = priors.validate_dims(dims)
    lo, hi = signal_domain(dims, lo, hi)

    def value(q, s):
        return weights(q) * values(s)

    names = tuple(agent_names) or tuple(f"agent{i}" for i in range(len(dims)))
    return Environment(
        name, dims, value, cost, efficient, tuple(outcome_names), outcome_probs, lo, hi, values, weights, names
    )


# --------------------------------------------------------------------------
# bilateral trade (CE Sec. 4)


def linear_trade_values(a: float) -> Callable[[Array], Array]:
    """``v_beta = s_beta + a s_sigma``, ``v_sigma = s_sigma + a s_beta`` (CE Sec. 4.4)."""

    def values(s):
        return jnp.stack([s[0] + a * s[1], s[1] + a * s[0]])

    return values


def multiplicative_trade_values(a: float = 0.3, b: float = 0.4, gamma: float = 0.1) -> Callable[[Array], Array]:
    """A nonlinear family: ``v_beta = s_beta + a s_sigma + b s_beta s_sigma``, ``v_sigma = gamma + s_sigma + a s_beta``.

    Values increase weakly in all signals for ``a, b >= 0`` and strictly in the
    own signal; ``gamma`` is the seller's premium. The gain from trade
    ``(1 - a)(s_beta - s_sigma) + b s_beta s_sigma - gamma`` increases in
    ``s_beta`` and decreases in ``s_sigma`` when ``0 <= b < 1 - a``: strong single
    crossing (CE Def 7) holds and the trade region has a curved boundary
    ``s_beta = ((1 - a) s_sigma + gamma) / (1 - a + b s_sigma)``.
    """
    if not (a < 1 and 0 <= b < 1 - a and gamma >= 0):
        raise ValueError(
            f"multiplicative values: need a < 1, 0 <= b < 1 - a, gamma >= 0; got a={a}, b={b}, gamma={gamma}"
        )

    def values(s):
        return jnp.stack([s[0] + a * s[1] + b * s[0] * s[1], gamma + s[1] + a * s[0]])

    return values


def convex_trade_values(a: float = 1.5) -> Callable[[Array], Array]:
    """``v_beta = s_beta + a s_sigma^2``, ``v_sigma = s_sigma``: values increase in every signal, yet for ``a > 1/2``
    single crossing (CE Def 9) fails.

    The gain from trade ``s_beta - s_sigma + a s_sigma^2`` falls in ``s_sigma`` below ``1 / (2a)`` and rises above
    it, so for ``s_beta`` just above 0 trade happens at low and at high ``s_sigma`` but not between: every
    efficient rule is non-monotone for the seller (CE Sec. 4: a monotone efficient rule exists iff single crossing
    holds), and no payments make it ex post IC.
    """
    if a < 0:
        raise ValueError(f"convex values: need a >= 0 (values increasing in s_sigma); got a={a}")

    def values(s):
        return jnp.stack([s[0] + a * s[1] ** 2, s[1]])

    return values


def deadzone_trade_values(w: float = 0.2, k: float = 0.5) -> Callable[[Array], Array]:
    """Common values with a band of ties: ``v_i = s_beta + s_sigma + k max(0, s_i - s_-i - w)``.

    The gain from trade is ``k deadzone_w(s_beta - s_sigma)``: zero on the band
    ``|s_beta - s_sigma| <= w``, a set of positive measure. Single crossing
    (CE Def 9) holds, strong single crossing (CE Def 7) fails on the band, and
    efficient rules differ there: the family for CE Thm 6 (the deficit-minimizing
    cutoff ``g_*(s_sigma) = min(1, s_sigma + w)``) and CE Lemma 5 (randomizing
    on the band). Values increase weakly in all signals for ``0 < k <= 1``.
    """
    if not (0 < w < 1 and 0 < k <= 1):
        raise ValueError(f"deadzone values: need 0 < w < 1 and 0 < k <= 1; got w={w}, k={k}")

    def values(s):
        common = s[0] + s[1]
        return jnp.stack(
            [common + k * jnp.maximum(0.0, s[0] - s[1] - w), common + k * jnp.maximum(0.0, s[1] - s[0] - w)]
        )

    return values


def check_own_monotone(values: Callable[[Array], Array], dims: Sequence[int], lo, hi, *, points: int = 33) -> None:
    """Raise ``ValueError`` (with a witness) unless each ``V_i`` strictly increases in ``s_i`` on a grid (CE Def 6).

    One-dimensional signals: for every agent ``i``, ``V_i`` is evaluated along
    ``s_i`` on a ``points``-point grid at ``points`` grid values of each other
    coordinate (all other coordinates moved together along their diagonal, so
    the cost stays ``points**2`` per agent).
    """
    dims = priors.validate_dims(dims)
    if any(d != 1 for d in dims):
        return
    lo, hi = np.broadcast_to(np.asarray(lo, float), (len(dims),)), np.broadcast_to(np.asarray(hi, float), (len(dims),))
    t = np.linspace(0.0, 1.0, points)
    vals = jax.jit(jax.vmap(jax.vmap(values)))
    for i in range(len(dims)):
        own = lo[i] + t * (hi[i] - lo[i])  # (P,)
        others = lo[None, :] + t[:, None] * (hi - lo)[None, :]  # (P, n): diagonal of the others
        prof = np.repeat(others[:, None, :], points, axis=1)
        prof[:, :, i] = own[None, :]
        v = vals(jnp.asarray(prof, jnp.float32))  # (P others, P own, n)
        if isinstance(v, jax.core.Tracer):  # values close over traced parameters (built under jit): no check
            return
        v = np.asarray(v)
        if v.shape[-1] != len(dims):
            raise ValueError(f"values: expected {len(dims)} values (one per agent), got shape {v.shape[2:]}")
        if not np.all(np.isfinite(v)):
            raise ValueError("values: not finite on the signal grid")
        dv = np.diff(v[:, :, i], axis=1)
        scale = max(1.0, float(np.max(np.abs(v))))
        bad = dv <= 1e-6 * scale
        if np.any(bad):
            r, c = np.argwhere(bad)[0]
            s_lo, s_hi = prof[r, c].copy(), prof[r, c + 1].copy()
            raise ValueError(
                f"values: V_{i} must be strictly increasing in agent {i}'s own signal (CE Def 6), but "
                f"V_{i}({s_lo.tolist()}) = {v[r, c, i]:.6g} >= V_{i}({s_hi.tolist()}) = {v[r, c + 1, i]:.6g}"
            )


def bilateral_trade(
    values: Callable[[Array], Array], *, name: str = "bilateral_trade", check: bool = True
) -> Environment:
    """Bilateral trade (CE Sec. 4): agent 0 is the buyer beta, agent 1 the seller sigma.

    Signals ``s = (s_beta, s_sigma)`` in ``[0, 1]^2``; ``values(s) = (v_beta(s), v_sigma(s))``.
    The outcome ``q`` (shape ``()``) is the probability of trade. Net payoffs are
    exactly CE Sec. 4's::

        u_beta  =  q v_beta(s)  - t_beta
        u_sigma = -q v_sigma(s) - t_sigma

    i.e. allocation weights ``h(q) = (q, -q)``: the seller's ex post IR level is
    keeping the good, worth ``v_sigma(s)``, which in net terms is utility 0.
    Welfare is the gain from trade ``q (v_beta - v_sigma)``; the deficit is
    ``-(t_beta + t_sigma)`` (CE Sec. 4.1). The first-best rule trades iff
    ``v_beta(s) > v_sigma(s)`` (ties: no trade).

    CE Sec. 4 assumes values continuous, weakly increasing, and strictly
    increasing in the own signal; the last is checked on a grid (``check``) and
    a violation raises ``ValueError`` with a witness. Weak monotonicity in the
    other signal is NOT required (CE Sec. 4.4 drops it); see
    :mod:`jaxmech._src.models.conditions` for that and the single crossing checks.
    """
    if check:
        check_own_monotone(values, (1, 1), 0.0, 1.0)

    def weights(q):
        return jnp.stack([q, -q])

    def cost(q):
        return jnp.zeros_like(q)

    def efficient(s):
        v = values(s)
        return (v[0] > v[1]).astype(s.dtype)

    def outcome_probs(q):
        return jnp.stack([1 - q, q])

    return separable(
        name, (1, 1), values, weights, cost, efficient, ("no_trade", "trade"), outcome_probs,
        agent_names=("buyer", "seller"),
    )  # fmt: skip


# --------------------------------------------------------------------------
# public goods (CE Sec. 5)


def linear_public_values(
    a: float = 0.0, n: int = 2, weights: Sequence[float] | None = None, *, matrix=None
) -> Callable[[Array], Array]:
    """``v_i(s) = w_i s_i + a sum_{j != i} s_j`` (CE Sec. 5 with ``n`` agents; ``w_i = 1`` by default).

    The differences ``v_i - v_j = (w_i - a) s_i - (w_j - a) s_j + ...`` make the
    environment one of increasing differences for ``a < min w``, pure common
    values for ``a = w_i`` (all equal), decreasing differences for ``a > max w``
    (CE Def 11). Values increase weakly in all signals for ``a >= 0``.

    ``matrix`` (``n x n``, replaces ``a`` and ``weights``): ``v_i(s) = sum_j M_ij s_j``, asymmetric
    interdependence (agent ``i`` weighs agent ``j``'s signal by ``M_ij``); the diagonal must be positive
    (values strictly increasing in the own signal, CE Def 6), off-diagonal entries are free (negative:
    values falling in others' signals).
    """
    if matrix is not None:
        m = np.asarray(matrix, np.float64)
        if m.shape != (n, n) or not np.all(np.isfinite(m)) or np.any(np.diag(m) <= 0):
            raise ValueError(
                f"linear public values: matrix must be {n} x {n}, finite, with a positive diagonal, got {matrix!r}"
            )

        def matrix_values(s):
            return jnp.asarray(m, s.dtype) @ s

        return matrix_values
    w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (n,) or np.any(w <= 0):
        raise ValueError(f"linear public values: need {n} positive own-signal weights, got {weights!r}")

    def values(s):
        total = jnp.sum(s)
        return jnp.asarray(w, s.dtype) * s + a * (total - s)

    return values


def public_good(
    values: Callable[[Array], Array], cost: float, n: int = 2, *, name: str = "public_good", check: bool = True
) -> Environment:
    """Provision of a public project of cost ``c`` (CE Sec. 5), ``n`` agents with signals in ``[0, 1]``.

    The outcome ``q`` (shape ``()``) is the probability of provision; ``h_i(q) = q``
    for every agent and the designer's cost is ``c q``, so the deficit is
    ``c q - sum_i t_i``: budget balance (CE Sec. 5) is ``deficit <= 0`` whenever
    the project is provided, exact budget balance is ``deficit = 0``. The
    efficient rule provides iff ``V(s) = sum_i v_i(s) > c`` (ties: no provision);
    by CE Thm 7 it is monotone, hence ex post IC, when values are weakly
    increasing. Own-signal strict monotonicity is checked on a grid (``check``).
    """
    if n < 2:
        raise ValueError(f"public_good: needs n >= 2 agents, got {n}")
    if not np.isfinite(cost):
        raise ValueError(f"public_good: cost must be finite, got {cost}")
    dims = (1,) * n
    if check:
        check_own_monotone(values, dims, 0.0, 1.0)
    c = float(cost)

    def weights(q):
        return jnp.broadcast_to(q, (n,))

    def cost_fn(q):
        return c * q

    def efficient(s):
        return (jnp.sum(values(s)) > c).astype(s.dtype)

    def outcome_probs(q):
        return jnp.stack([1 - q, q])

    env = separable(
        name, dims, values, weights, cost_fn, efficient, ("not_provided", "provided"), outcome_probs,
        agent_names=tuple(f"agent{i + 1}" for i in range(n)),
    )  # fmt: skip
    return env


def project_size(
    values: Callable[[Array], Array],
    cost: float,
    levels: int = 3,
    n: int = 2,
    *,
    name: str = "project_size",
    check: bool = True,
) -> Environment:
    """A public project of size ``q in {0, 1, ..., levels - 1}`` (CE Def 6 with ``k >= 3`` ordered outcomes).

    ``h_i(q) = q`` for every agent, so ``v_i(q, s) = q V_i(s)``; the designer's cost is convex,
    ``cost(q) = c q^2 / 2``, and the deficit is ``cost(q) - sum_i t_i``. The efficient size maximizes
    ``q V(s) - c q^2 / 2`` with ``V(s) = sum_i v_i(s)`` (the smallest maximizer on ties): it steps up from ``q`` to
    ``q + 1`` where ``V`` crosses ``c (q + 1/2)``, so it is non-decreasing in ``V`` and, with values weakly
    increasing, monotone in every signal (CE Def 8): ex post IC with envelope payments (CE Thm 2). ``q`` may be
    fractional (a randomized rule's expected size): ``outcome_probs`` then splits it between the two nearest sizes.
    Own-signal strict monotonicity of the values is checked on a grid (``check``).
    """
    if n < 1:
        raise ValueError(f"project_size: needs n >= 1 agents, got {n}")
    if not isinstance(levels, (int, np.integer)) or isinstance(levels, bool) or levels < 3:
        raise ValueError(f"project_size: levels must be an integer >= 3 (k >= 3 ordered outcomes), got {levels!r}")
    if not (np.isfinite(cost) and cost > 0):
        raise ValueError(f"project_size: cost must be finite and > 0, got {cost}")
    dims = (1,) * n
    if check:
        check_own_monotone(values, dims, 0.0, 1.0)
    c, k = float(cost), int(levels)

    def weights(q):
        return jnp.broadcast_to(q, (n,))

    def cost_fn(q):
        return 0.5 * c * q * q

    def efficient(s):
        q = jnp.arange(k, dtype=s.dtype)
        return jnp.argmax(q * jnp.sum(values(s)) - 0.5 * c * q * q).astype(s.dtype)

    def outcome_probs(q):
        return jnp.clip(1.0 - jnp.abs(q - jnp.arange(k, dtype=q.dtype)), 0.0, 1.0)

    return separable(
        name, dims, values, weights, cost_fn, efficient, tuple(f"size{j}" for j in range(k)), outcome_probs,
        agent_names=tuple(f"agent{i + 1}" for i in range(n)),
    )  # fmt: skip


# --------------------------------------------------------------------------
# single object, n buyers (Bikhchandani 2005)


def single_object(dims: Sequence[int], values: Callable[[Array], Array], *, name: str = "single_object") -> Environment:
    """One indivisible object, ``n`` buyers, no consumption externalities (B Sec. 2).

    Outcome ``q = x`` is the allocation vector (shape ``(n,)``, ``x_i`` = probability
    buyer ``i`` gets the object, ``sum x <= 1``); ``h(x) = x``; outcomes
    ``a_0`` (nobody) and ``a_i`` (buyer ``i``). The seller's value is 0, so the
    first best gives the object to the highest ``V_i`` when it is positive
    (ties to the lowest index).
    """
    dims = priors.validate_dims(dims)
    n = len(dims)

    def weights(x):
        return x

    def cost(x):
        return jnp.zeros((), x.dtype)

    def efficient(s):
        v = values(s)
        win = jnp.argmax(v)
        return jax.nn.one_hot(win, n, dtype=s.dtype) * (v[win] > 0).astype(s.dtype)

    def outcome_probs(x):
        return jnp.concatenate([1 - jnp.sum(x, keepdims=True), x])

    names = tuple(f"a{i}" for i in range(n + 1))
    return separable(
        name, dims, values, weights, cost, efficient, names, outcome_probs,
        agent_names=tuple(f"buyer{i + 1}" for i in range(n)),
    )  # fmt: skip


def example1_values(s: Array) -> Array:
    """B Example 1: ``V_i = p_i + c_i c_j`` with ``s = (p_1, c_1, p_2, c_2)``."""
    p1, c1, p2, c2 = s[0], s[1], s[2], s[3]
    return jnp.stack([p1 + c1 * c2, p2 + c1 * c2])


def example1_n_values(n: int) -> Callable[[Array], Array]:
    """B Example 1 with ``n`` buyers: ``V_i = p_i + c_i mean_{j != i} c_j``, ``s = (p_1, c_1, ..., p_n, c_n)``.

    ``n = 2`` is :func:`example1_values`. B Assumption 2 holds: ``d(V_i - V_j)/dp_i = 1`` and
    ``d(V_i - V_j)/dc_i = sum_{k != i, j} c_k / (n - 1) >= 0``.
    """

    def values(s):
        x = s.reshape(s.shape[:-1] + (n, 2))
        p, c = x[..., 0], x[..., 1]
        return p + c * (jnp.sum(c, axis=-1, keepdims=True) - c) / (n - 1)

    return values


def example1(n: int = 2) -> Environment:
    """Buyers with signals ``(p_i, c_i)`` in ``[0,1]^2`` and ``V_i = p_i + c_i c_j`` (B Example 1; ``n > 2``: the mean of the others' ``c_j``)."""
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"example1: n must be an integer >= 2, got {n!r}")
    if n == 2:
        return single_object((2, 2), example1_values, name="example1")
    return single_object((2,) * n, example1_n_values(n), name=f"example1(n={n})")


def private_common_values(
    dims: Sequence[int], weights: Sequence[float] | None = None, own: float | None = None
) -> Callable[[Array], Array]:
    """A private component plus a weighted common component with buyer-specific weights (B Sec. 1).

    Buyer ``i``'s signal is ``(x_i1, ..., x_i(d_i - 1), c_i)``: private signals and an estimate
    ``c_i`` of the common value ``C = mean_k c_k``; ``d_i`` may differ between buyers (``d_i = 1``:
    no private signal). ``V_i = mean_k x_ik^2 + own c_i + w_i C`` (private part convex, so
    buyer ``i``'s classes ``S_i(lam, s_-i)`` are curved). B Assumption 1a needs ``w_i, own >= 0``;
    Assumption 2 (``d(V_i - V_j)/dc_i = own + (w_i - w_j) / n >= 0``) needs
    ``own >= (max w - min w) / n`` (default ``own``: that bound plus 0.25).
    """
    dims = priors.validate_dims(dims)
    n = len(dims)
    w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (n,) or np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError(f"private_common values: need {n} non-negative common weights, got {weights!r}")
    bound = float(w.max() - w.min()) / n
    own = bound + 0.25 if own is None else float(own)
    if own < bound:
        raise ValueError(
            f"private_common values: own = {own} < (max w - min w) / n = {bound:.4g} breaks B Assumption 2"
        )
    starts = np.cumsum((0,) + dims[:-1])  # buyer i's coordinates: starts[i] .. starts[i] + d_i - 1 (the last is c_i)

    def values(s):  # static slices per buyer: cheap to trace
        c = jnp.stack([s[..., a + d - 1] for a, d in zip(starts, dims, strict=True)], -1)
        priv = jnp.stack(
            [jnp.mean(s[..., a : a + d - 1] ** 2, axis=-1) if d > 1 else jnp.zeros_like(s[..., 0])
             for a, d in zip(starts, dims, strict=True)], -1,
        )  # fmt: skip
        common = jnp.mean(c, axis=-1, keepdims=True)
        return priv + own * c + jnp.asarray(w, s.dtype).reshape((1,) * (s.ndim - 1) + (n,)) * common

    return values


def own_signal_mean(dims: Sequence[int], lo, hi) -> Callable[[Array], Array]:
    """``e_i(s)``: the mean of buyer ``i``'s own signal coordinates, rescaled from ``[lo, hi]`` to ``[0, 1]``."""
    dims = priors.validate_dims(dims)
    lo, hi = signal_domain(dims, lo, hi)

    def envy(s):
        x = (s - jnp.asarray(lo, s.dtype)) / jnp.asarray(hi - lo, s.dtype)
        return jnp.stack([jnp.mean(x[priors.agent_slice(dims, i)]) for i in range(len(dims))])

    return envy


def consumption_externality(
    env: Environment, eps, envy: Callable[[Array], Array] | None = None, *, name: str | None = None
) -> Environment:
    """A single-object environment (:func:`single_object`) with a consumption externality (B Sec. 5).

    ``v_i(x, s) = x_i V_i(s) - eps e_i(s) sum_{j != i} x_j``: buyer ``i`` loses ``eps e_i(s)`` when another buyer
    gets the object (``0 <= e_i <= 1``; default :func:`own_signal_mean`). At ``eps > 0`` no buyer is indifferent
    between ``a_0`` and ``a_j``, so B eq. (5) fails for every pair of outcomes (B Sec. 5: "at a tiny perturbation
    of preferences away from selfish preferences, (5) is not satisfied by any pair of outcomes"). Not separable
    (``values`` / ``weights`` are ``None``): mechanisms are built on ``env`` (the selfish model) and audited here.
    ``eps`` may be traced (a family of audits over ``eps`` compiles once).
    """
    if not env.is_separable or not env.outcome_names or env.outcome_names[0] != "a0":
        raise ValueError(f"consumption_externality: needs a single-object environment, got {env.name!r}")
    values, n = env.values, env.n_agents
    envy = envy if envy is not None else own_signal_mean(env.dims, env.lo, env.hi)

    def value(x, s):
        return x * values(s) - eps * envy(s) * (jnp.sum(x) - x)

    def efficient(s):  # the best of a_0 (welfare 0) and a_i (V_i(s) - eps sum_{j != i} e_j(s))
        e = envy(s)
        w = values(s) - eps * (jnp.sum(e) - e)
        win = jnp.argmax(w)
        return jax.nn.one_hot(win, n, dtype=s.dtype) * (w[win] > 0).astype(s.dtype)

    label = name or f"{env.name} + externality" + ("" if isinstance(eps, jax.core.Tracer) else f" {float(eps):g}")
    return env._replace(name=label, value=value, efficient=efficient, values=None, weights=None)
