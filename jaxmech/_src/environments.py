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

from jaxmech._src import priors

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


def _domain(dims, lo, hi):
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
    lo, hi = _domain(dims, lo, hi)

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


def bilateral_trade(values: Callable[[Array], Array], *, name: str = "bilateral_trade") -> Environment:
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
    """

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


def example1() -> Environment:
    """Two buyers with signals ``(p_i, c_i)`` in ``[0,1]^2`` and ``V_i = p_i + c_i c_j`` (B Example 1)."""
    return single_object((2, 2), example1_values, name="example1")
