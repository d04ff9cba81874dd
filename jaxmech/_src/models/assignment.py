"""Two private goods, unit demand: B Sec. 3's condition (5) and a full-range ex post IC mechanism (B fns. 11-12).

``n`` buyers, two objects ``A`` and ``B``; an outcome is an *assignment*: each buyer gets nothing, ``A`` or ``B``
and each object goes to at most one buyer (7 assignments for two buyers, 13 for three). Buyer ``i`` has signal
``s_i = (s_iA, s_iB)`` in ``[0, 1]^2`` and interdependent values ``V_iX(s) = s_iX + a mean_{j != i} s_jX``; with no
consumption externality ``v_i(a, s) = V_{i, a_i}(s)`` (0 for nothing).

B eq. (5): a pair of outcomes ``(a_l, a_k)`` satisfies it when some buyer ``j`` exists with every ``i != j``
indifferent between them at every ``s``. Without externalities that holds whenever the two assignments differ only
in buyer ``j``'s allocation (B Sec. 3, fn. 11); the Jehiel et al. theorem then puts no restriction on the boundary
between them, and a *full-range* ex post IC mechanism (every outcome at a positive measure of states, B fn. 12)
is possible: :func:`serial_dictatorship`. :func:`condition5` measures (5) for every pair of any finite-outcome
environment on sampled profiles; :func:`private_vcg` is a control that is not ex post IC.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.core.environments import Environment
from jaxmech._src.core.mechanisms import Mechanism
from jaxmech._src.models.certify import finite_environment

Array = jax.Array

OBJECTS = ("A", "B")


def assignments(n: int) -> np.ndarray:
    """Every assignment of two objects to ``n`` buyers with unit demand, shape ``(K, n)``: entry ``0`` nothing,
    ``1`` object A, ``2`` object B; each object to at most one buyer. Row 0 is "nobody gets anything"; rows are in
    lexicographic order of the buyers' allocations."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 2:
        raise ValueError(f"assignments: n must be an integer >= 2, got {n!r}")
    rows = [r for r in itertools.product(range(3), repeat=int(n)) if r.count(1) <= 1 and r.count(2) <= 1]
    return np.asarray(rows, np.int32)


def assignment_names(table: np.ndarray) -> tuple[str, ...]:
    """One name per assignment: buyer ``i``'s allocation at position ``i`` (``-`` nothing), e.g. ``"A-"``, ``"BA"``."""
    return tuple("".join("-AB"[int(x)] for x in row) for row in np.asarray(table))


def two_object_values(n: int = 2, a: float = 0.5) -> Callable[[Array], Array]:
    """``V(s) -> (n, 2)``: ``V_iX(s) = s_iX + a mean_{j != i} s_jX`` with ``s = (s_1A, s_1B, s_2A, s_2B, ...)``."""

    def values(s):
        x = s.reshape(n, 2)
        return x + a * (jnp.sum(x, axis=0, keepdims=True) - x) / (n - 1)

    return values


def two_objects(n: int = 2, a: float = 0.5) -> Environment:
    """Two objects, ``n`` unit-demand buyers, no consumption externality (B Sec. 3 after eq. (5)).

    Outcomes are the indices of :func:`assignments` (``int32``); ``v_i(q, s) = V_{i, X}(s)`` when assignment ``q``
    gives buyer ``i`` object ``X`` (:func:`two_object_values`), else 0; ``efficient`` maximizes the sum.
    """
    table = assignments(n)
    if not np.isfinite(a):
        raise ValueError(f"two_objects: a must be finite, got {a!r}")
    values = two_object_values(n, a)
    cols = jnp.asarray(table.T)  # (n, K): buyer i's allocation in each assignment

    def value_fn(s):
        v = jnp.concatenate([jnp.zeros((n, 1), s.dtype), values(s)], axis=1)  # (n, 3): nothing, A, B
        return jnp.take_along_axis(v, cols, axis=1)  # (n, K)

    return finite_environment(
        f"two_objects(n={n}, a={a:g})", (2,) * n, len(table), value_fn, assignment_names(table),
        agent_names=tuple(f"buyer{i + 1}" for i in range(n)),
    )  # fmt: skip


def _index_of(table: np.ndarray) -> Callable[[Array], Array]:
    """Buyers' allocations ``(n,)`` (0 / 1 / 2) -> the assignment's row index in ``table``."""
    n = table.shape[1]
    codes = np.full(3**n, -1, np.int32)
    codes[(table * 3 ** np.arange(n)).sum(1)] = np.arange(len(table))
    codes = jnp.asarray(codes)
    powers = jnp.asarray(3 ** np.arange(n), jnp.int32)

    def index(alloc):
        return codes[jnp.sum(alloc.astype(jnp.int32) * powers)]

    return index


def serial_dictatorship(n: int = 2, a: float = 0.5, reserves=None, *, name: str = "serial_dictatorship") -> Mechanism:
    """A full-range ex post IC mechanism for :func:`two_objects` (B fn. 12): a serial dictatorship with prices.

    Buyers choose in the order 1, ..., n. Buyer ``k`` faces the objects the earlier buyers left, object ``X`` at the
    price ``p_kX(m_-k) = V_kX(r_kX, m_-k)``, his value at the reserve signal ``r_kX`` (so the price never depends on
    his own report), and takes his favourite among nothing and the objects left (ties: nothing, then A). With
    ``V_kX = s_kX + g_kX(s_-k)`` his surplus ``V_kX(m) - p_kX = m_kX - r_kX`` depends on his own report only, so
    by induction the objects left to buyer ``k`` depend on ``m_1 .. m_(k-1)`` only: each buyer gets his favourite
    item of a menu that his report does not move, and truth-telling is ex post IC (CE Thm 1). Every assignment has
    positive probability when ``0 < r_kX < 1``.

    ``reserves``: ``(n, 2)`` (per buyer and object) or ``(2,)`` (the same for all buyers); default 0.5. It is the
    mechanism's ``params``. Payments: the price of the object taken, 0 for nothing.
    """
    table = assignments(n)
    r = np.full((n, 2), 0.5) if reserves is None else np.asarray(reserves, np.float64)
    r = np.broadcast_to(r, (n, 2)).copy() if r.shape == (2,) else r
    if r.shape != (n, 2) or not np.all(np.isfinite(r)):
        raise ValueError(f"serial_dictatorship: reserves must be 2 or {n} x 2 finite numbers, got {reserves!r}")
    values = two_object_values(n, a)
    index = _index_of(table)

    def decide_and_pay(res, m):
        v = values(m)  # (n, 2) at the reports
        left = jnp.ones((2,), bool)
        alloc, pays = [], []
        for k in range(n):
            price = jnp.stack([values(m.at[2 * k + x].set(res[k, x].astype(m.dtype)))[k, x] for x in range(2)])
            surplus = jnp.where(left, v[k] - price, -jnp.inf)
            best = jnp.argmax(surplus)
            take = surplus[best] > 0
            alloc.append(jnp.where(take, best + 1, 0))
            pays.append(jnp.where(take, price[best], jnp.zeros((), m.dtype)))
            left = left & ~(take & (jnp.arange(2) == best))
        return index(jnp.stack(alloc)), jnp.stack(pays)

    return Mechanism(
        name,
        lambda res, m: decide_and_pay(res, m)[0],
        lambda res, m: decide_and_pay(res, m)[1],
        jnp.asarray(r, jnp.float32),
        decide_and_pay=decide_and_pay,
    )


def private_vcg(env: Environment, *, name: str = "private_vcg") -> Mechanism:
    """NOT ex post IC with interdependent values: the efficient assignment with the Clarke (VCG) payments computed
    as if the reported values were private, ``t_i = max_q sum_{j != i} v_j(q, m) - sum_{j != i} v_j(f(m), m)``.

    ``env``: a finite-outcome environment (outcomes ``0..K-1``). Buyer ``i``'s report moves the others' values
    ``v_j(q, m)`` (``a != 0``), which the payment charges him for: a misreport can pay off.
    """
    k = len(env.outcome_names)
    outcomes = jnp.arange(k, dtype=jnp.int32)

    def table(m):  # (K, n): every agent's value of every outcome at the reports
        return jax.vmap(lambda q: env.value(q, m))(outcomes)

    def decide_and_pay(p, m):
        v = table(m)
        q = jnp.argmax(jnp.sum(v, axis=1)).astype(jnp.int32)
        others = jnp.sum(v, axis=1, keepdims=True) - v  # (K, n): sum_{j != i} v_j(q', m)
        return q, jnp.max(others, axis=0) - others[q]

    return Mechanism(
        name, lambda p, m: decide_and_pay(p, m)[0], lambda p, m: decide_and_pay(p, m)[1], (),
        decide_and_pay=decide_and_pay,
    )  # fmt: skip


class Condition5(NamedTuple):
    """B eq. (5) for every pair of a finite environment's outcomes, measured on sampled profiles.

    ``gap[l, k, i] = max_s |v_i(a_l, s) - v_i(a_k, s)|`` over the profiles (0: buyer ``i`` indifferent at every
    sampled ``s``). ``holds[l, k]``: at most one buyer has a positive gap (some ``j`` with every ``i != j``
    indifferent, eq. (5)). ``second[l, k]`` and ``witness[l, k]``: the largest second-largest ``|v_i(a_l, s) -
    v_i(a_k, s)|`` over buyers and the profile index where it is attained (where two buyers are not indifferent
    at once; 0 where (5) holds).
    """

    gap: Array  # (K, K, n)
    holds: Array  # (K, K) bool
    second: Array  # (K, K)
    witness: Array  # (K, K) int32


def condition5(env: Environment, profiles: Array, *, tol: float = 0.0, chunk: int = 1024) -> Condition5:
    """B eq. (5) (``a_l ~_i a_k`` for all ``s`` and all ``i != j``) for every pair of outcomes ``0..K-1`` of ``env``
    at the sampled ``profiles`` (``(N, D)``); a gap above ``tol`` counts as not indifferent. The profiles are
    reduced ``chunk`` at a time (memory ``chunk x K^2 x n``, not ``N x K^2 x n``)."""
    k = len(env.outcome_names)
    outcomes = jnp.arange(k, dtype=jnp.int32)
    n_prof = profiles.shape[0]
    c = max(1, min(chunk, n_prof))
    pad = (-n_prof) % c
    x = jnp.concatenate([profiles, jnp.repeat(profiles[:1], pad, axis=0)]) if pad else profiles
    starts = jnp.arange(0, x.shape[0], c)

    def block(carry, start):
        gap, second, witness = carry
        s = jax.lax.dynamic_slice_in_dim(x, start, c)
        v = jax.vmap(lambda z: jax.vmap(lambda q: env.value(q, z))(outcomes))(s)  # (c, K, n)
        d = jnp.abs(v[:, :, None, :] - v[:, None, :, :])  # (c, K, K, n)
        sec = jnp.sort(d, axis=-1)[..., -2] if env.n_agents > 1 else jnp.zeros(d.shape[:-1], d.dtype)
        j = jnp.argmax(sec, axis=0)  # (K, K)
        top = jnp.max(sec, axis=0)
        better = top > second  # the earliest profile wins ties
        return (jnp.maximum(gap, jnp.max(d, axis=0)), jnp.where(better, top, second),
                jnp.where(better, start + j, witness)), None  # fmt: skip

    dtype = profiles.dtype
    init = (jnp.zeros((k, k, env.n_agents), dtype), jnp.full((k, k), -1.0, dtype), jnp.zeros((k, k), jnp.int32))
    gap, second, witness = jax.jit(lambda init: jax.lax.scan(block, init, starts)[0])(init)
    holds = jnp.sum(gap > tol, axis=-1) <= 1
    return Condition5(gap, holds, second, witness.astype(jnp.int32))


def agents_moved(table: np.ndarray) -> np.ndarray:
    """``(K, K)``: how many buyers' allocations differ between assignments ``l`` and ``k`` (B fn. 11's "differs only
    in the allocation that buyer j receives" is 1)."""
    t = np.asarray(table)
    return np.sum(t[:, None, :] != t[None, :, :], axis=-1)
