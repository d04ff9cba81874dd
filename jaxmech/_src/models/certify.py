"""Pseudo-efficiency certificates (CE Lemma 1 / Thm 1) and payments from them (CE Thm 3).

Fix agent ``i`` and the others' signals ``s_-i``. By CE Thm 1 a decision rule
``f`` is ex post IC iff every such slice ``x -> f(x, s_-i)`` is pseudo-efficient
(CE Def 4): there are payments ``t(a)`` on outcomes (``w = -t``, CE Lemma 1)
with, for every own signal ``x`` with ``f = a`` and every outcome ``a'``::

    v_i(a, x) - t(a) >= v_i(a', x) - t(a')   <=>   t(a') - t(a) >= d(a, a'),
    d(a, a') = max_{x : f(x, s_-i) = a} [v_i(a', x) - v_i(a, x)].

On a finite set of own-signal samples this is a system of difference
constraints on the graph with an edge ``a -> a'`` of weight ``d(a, a')``. It is
feasible iff no cycle has positive weight (summing ``t(a_{j+1}) - t(a_j)``
around a cycle gives ``0 >= sum_j d(a_j, a_{j+1})``). A positive cycle is a
certificate that NO payment rule makes ``f`` ex post IC at this ``s_-i``: for any
menu ``t``, some witness ``x_j`` (a type that gets ``a_j``) gains at least
``slack / len`` by reporting a type that gets ``a_{j+1}``.

When feasible, the longest-path distances ``L`` give the extreme solutions
``t(a) = L(r, a)`` and ``t(a) = -L(a, r)`` (reference ``r``, ``t(r) = 0``); we use
their midpoint, which converges to the unique solution of CE Thm 3 (payoff
equivalence, eq. (4)) as the samples refine, and shift by the largest constant
``z-bar`` that keeps ex post IR over the samples, ``min_x v_i(a_x, x) - t(a_x) = 0``
(CE Sec. 3.3): for an efficient rule this is the generalized VCG mechanism.

Outcomes are integer indices ``0..k-1``. Environments whose outcomes are
arrays (e.g. a trade probability) are handled by passing ``outcomes``, an array
whose ``a``-th row is outcome ``a``; a rule's outcome is mapped to the nearest row.

Cycles are found with max-plus matrix products (``W_m = W_{m-1} (x) D``, walks of
exactly ``m`` edges, ``m <= k``), vmapped over many ``s_-i``. The shortest
positive closed walk is a simple cycle (otherwise it splits into two shorter
closed walks, one of them positive), and so is the shortest maximum-weight
closed walk when no closed walk is positive; that is the cycle reported.

This module holds the finite outcome sets, the graph, the certificate over many ``s_-i``, the
payments from it (:func:`certificate_payments`) and two example environments. The independent
construction of CE Lemma 3 (eq. (4) at boundary points) and the CE Thm 3 comparison are in
:mod:`equivalence`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.core import priors
from jaxmech._src.core.environments import Environment, signal_domain
from jaxmech._src.core.mechanisms import Mechanism

Array = jax.Array
Params = Any


# --------------------------------------------------------------------------
# finite outcome sets


def finite_environment(
    name: str,
    dims: Sequence[int],
    k: int,
    value_fn: Callable[[Array], Array],
    outcome_names: Sequence[str] | None = None,
    *,
    lo=0.0,
    hi=1.0,
    agent_names: Sequence[str] = (),
) -> Environment:
    """An environment with outcomes ``0..k-1`` (CE Sec. 3.1): ``v_i(a, s) = value_fn(s)[i, a]``.

    Args:
      name: identifier.
      dims: signal dimension per agent.
      k: number of outcomes (static, ``>= 1``).
      value_fn: ``value_fn(s) -> (n_agents, k)``, the values ``v_i(a, s)`` at a flat profile ``s``.
      outcome_names: a name per outcome (default ``a0..a{k-1}``).

    Outcomes are ``int32`` scalars; cost is 0; ``efficient(s)`` is the first
    maximizer of ``sum_i v_i(a, s)``.
    """
    dims = priors.validate_dims(dims)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"finite_environment: k must be an integer >= 1, got {k!r}")
    k = int(k)
    names = tuple(outcome_names) if outcome_names is not None else tuple(f"a{j}" for j in range(k))
    if len(names) != k:
        raise ValueError(f"finite_environment: outcome_names has {len(names)} names for k={k} outcomes")
    lo, hi = signal_domain(dims, lo, hi)

    def value(q, s):
        return value_fn(s)[:, q]

    def cost(q):
        del q
        return jnp.zeros((), jnp.float32)

    def efficient(s):
        return jnp.argmax(jnp.sum(value_fn(s), axis=0)).astype(jnp.int32)

    def outcome_probs(q):
        return jax.nn.one_hot(q, k, dtype=jnp.float32)

    agents = tuple(agent_names) or tuple(f"agent{j}" for j in range(len(dims)))
    return Environment(name, dims, value, cost, efficient, names, outcome_probs, lo, hi, None, None, agents)


def n_outcomes(env: Environment, outcomes) -> int:
    """``k``: the number of outcome indices, ``len(env.outcome_names)`` or the rows of the ``outcomes`` table."""
    return len(env.outcome_names) if outcomes is None else int(np.shape(outcomes)[0])


def outcome_index(env: Environment, decide, outcomes):
    """``(index_of(params, m) -> int32, value_at(a, s) -> (n,))`` for integer outcome indices.

    Without ``outcomes`` ``decide`` returns the index itself; with an ``outcomes`` table ``(k, ...)`` a rule's
    outcome maps to the nearest row (squared distance) and ``value_at`` evaluates ``env.value`` at that row."""
    if outcomes is None:

        def index_of(params, m):
            return jnp.asarray(decide(params, m)).astype(jnp.int32)

        return index_of, env.value
    table = jnp.asarray(outcomes)

    def index_of(params, m):
        q = jnp.asarray(decide(params, m), table.dtype)
        dist = jnp.sum(jnp.reshape((table - q[None]) ** 2, (table.shape[0], -1)), axis=1)
        return jnp.argmin(dist).astype(jnp.int32)

    def value_at(a, s):
        return env.value(table[a].astype(s.dtype), s)

    return index_of, value_at


# --------------------------------------------------------------------------
# the outcome graph at one s_-i


class OutcomeGraph(NamedTuple):
    """Agent ``i``'s constraint graph at one ``s_-i`` (CE Lemma 1 on samples)."""

    d: Array  # shape=(k, k): d(a, a') = max_{x: a_x = a} v_i(a', x) - v_i(a, x); -inf where a does not occur
    witness: Array  # shape=(k, k) int32: the first sample attaining d(a, a') (0 where a does not occur)
    occurs: Array  # shape=(k,) bool: some sample gets outcome a
    outcome: Array  # shape=(S,) int32: a_x
    values: Array  # shape=(S, k): v_i(a, x) for every sample x and outcome a


def outcome_graph(
    env: Environment,
    decide: Callable[[Params, Array], Array],
    params: Params,
    s_minus: Array,
    i: int,
    samples: Array,
    *,
    outcomes=None,
) -> OutcomeGraph:
    """The graph ``d(a, a')`` of CE Lemma 1 for agent ``i`` at ``s_-i`` (``s_minus``'s ``i``-part is ignored).

    Args:
      env: the environment; ``env.value(a, s)`` takes an outcome index unless ``outcomes`` is given.
      decide: ``decide(params, m) -> q``.
      s_minus: a full flat profile, shape ``(D,)``.
      i: the agent (static int).
      samples: own signals ``x``, shape ``(S, d_i)``.
      outcomes: optional ``(k, ...)`` table mapping indices to ``decide``'s outcomes.
    """
    s_minus = jnp.asarray(s_minus)
    samples = jnp.asarray(samples, s_minus.dtype)
    return jax.jit(lambda p, s, x: build_graph(env, decide, p, s, i, x, outcomes))(params, s_minus, samples)


def build_graph(env, decide, params, s_minus, i, samples, outcomes) -> OutcomeGraph:
    """:func:`outcome_graph` without its ``jax.jit``: traceable, for use inside a compiled function (``i`` may be
    traced where the signal dimensions are equal, :func:`priors.agent_index`)."""
    k = n_outcomes(env, outcomes)
    index_of, value_at = outcome_index(env, decide, outcomes)

    def at(x):
        s = priors.replace_signal(s_minus, env.dims, i, x)
        a = index_of(params, s)
        v = jax.vmap(lambda b: value_at(b, s)[i])(jnp.arange(k, dtype=jnp.int32))
        return a, v.astype(s_minus.dtype)

    a_x, vals = jax.vmap(at)(samples)  # (S,), (S, k)
    own = jnp.take_along_axis(vals, a_x[:, None], axis=1)  # (S, 1)
    gain = vals - own  # (S, k): v_i(a', x) - v_i(a_x, x)
    n_samples = gain.shape[0]
    d = jax.ops.segment_max(gain, a_x, num_segments=k, indices_are_sorted=False)  # (k, k), -inf if empty
    # the first sample attaining d(a_x, a'), in O(S k) memory
    idx = jnp.arange(n_samples, dtype=jnp.int32)[:, None]
    hit = jnp.where(gain >= d[a_x], idx, n_samples)  # (S, k)
    witness = jax.ops.segment_min(hit, a_x, num_segments=k)
    occurs = jax.ops.segment_max(jnp.ones_like(a_x), a_x, num_segments=k) > 0
    witness = jnp.where(occurs[:, None], witness, 0)
    d = jnp.where(occurs[:, None], d, -jnp.inf)
    return OutcomeGraph(d, witness, occurs, a_x, vals)


# --------------------------------------------------------------------------
# max-plus cycle detection and potentials


class Certificate(NamedTuple):
    """Pseudo-efficiency at one ``s_-i`` (CE Def 4): payments, or a positive cycle."""

    feasible: Array  # () bool: no closed walk has weight > tol
    slack: Array  # () weight of the reported cycle; > 0 violates CE Lemma 1; -inf if < 2 outcomes occur
    max_walk: Array  # () the largest closed-walk weight (<= k edges); == max simple cycle weight when <= 0
    cycle: Array  # shape=(k + 1,) int32: a_0 -> ... -> a_m = a_0, padded with -1
    cycle_len: Array  # () int32: m (0 if no cycle)
    cycle_witness: Array  # shape=(k,) int32: sample that witnesses edge a_j -> a_{j+1}, -1 padded
    payments: Array  # shape=(k,): t_i(a), normalized by z-bar: min_x v_i(a_x, x) - t(a_x) = 0
    occurs: Array  # shape=(k,) bool


def _maxplus(a: Array, b: Array) -> tuple[Array, Array]:
    """Max-plus product ``(a (x) b)[p, r] = max_c a[p, c] + b[c, r]`` and its argmax ``c``."""
    s = a[:, :, None] + b[None, :, :]
    return jnp.max(s, axis=1), jnp.argmax(s, axis=1).astype(jnp.int32)


@jax.jit
def solve_graph(graph: OutcomeGraph, *, tol: float = 1e-5) -> Certificate:
    """Feasibility of ``t(a') - t(a) >= d(a, a')`` over occurring outcomes (CE Lemma 1), for ONE graph.

    ``tol`` is an absolute tolerance on cycle weights (float rounding of ties).
    For outcomes no sample gets, ``t(a') = max_x v_i(a', x) - U(x)``, the least
    payment that no sampled type prefers (CE Lemma 1's ``w = -M``).
    """
    d, occurs = graph.d, graph.occurs
    k = d.shape[0]
    dtype = d.dtype
    neg = jnp.asarray(-jnp.inf, dtype)
    eye = jnp.eye(k, dtype=bool)
    both = occurs[:, None] & occurs[None, :]
    D = jnp.where(both & ~eye, d, neg)

    # walks of exactly m edges, m = 1..k
    def step(W, _):
        Wn, _ = _maxplus(W, D)
        return Wn, Wn

    _, Ws = jax.lax.scan(step, D, None, length=k - 1)
    Ws = jnp.concatenate([D[None], Ws], axis=0)  # (k, k, k): Ws[m-1] = walks of m edges
    diag = jnp.diagonal(Ws, axis1=1, axis2=2)  # (k, k): [m-1, a]
    best = jnp.max(diag, axis=1)  # (k,)
    top = jnp.max(best)
    positive = top > 0
    first_pos = jnp.argmax(best > 0)
    first_top = jnp.argmax(best >= top)
    m_idx = jnp.where(positive, first_pos, first_top)  # m* - 1
    a_star = jnp.argmax(diag[m_idx]).astype(jnp.int32)
    has_cycle = top > neg
    m_star = jnp.where(has_cycle, m_idx + 1, 0).astype(jnp.int32)

    # single-source walks from a* with predecessors, to backtrack the cycle
    def src_step(w, _):
        s = w[:, None] + D
        return jnp.max(s, axis=0), jnp.argmax(s, axis=0).astype(jnp.int32)

    _, preds = jax.lax.scan(src_step, D[a_star], None, length=k - 1)  # preds[m-2] for walks of m edges
    preds = jnp.concatenate([jnp.full((1, k), a_star, jnp.int32), preds], axis=0)  # preds[m-1]

    def back(j, cyc):
        m = m_star - j  # from m* down to 1
        prev = preds[jnp.maximum(m - 1, 0), cyc[jnp.maximum(m, 0)]]
        return jnp.where((m >= 1) & (jnp.arange(k + 1, dtype=jnp.int32) == m - 1), prev, cyc)

    cyc0 = jnp.full((k + 1,), -1, jnp.int32).at[m_star].set(a_star)
    cyc = jax.lax.fori_loop(0, k, back, cyc0)
    cyc = jnp.where(has_cycle, cyc, jnp.full((k + 1,), -1, jnp.int32))
    edge = jnp.arange(k, dtype=jnp.int32) < m_star
    src, dst = jnp.maximum(cyc[:-1], 0), jnp.maximum(cyc[1:], 0)
    slack = jnp.where(has_cycle, jnp.sum(jnp.where(edge, d[src, dst], 0.0)), neg)
    wit = jnp.where(edge, graph.witness[src, dst], -1)

    # longest paths (<= k - 1 edges) and midpoint payments
    L = jnp.maximum(jnp.where(eye, jnp.zeros((), dtype), neg), jnp.max(Ws[: max(k - 1, 1)], axis=0))
    L = jnp.where(both, L, neg)
    r = jnp.argmax(occurs)
    t = 0.5 * (L[r] - L[:, r])
    t = jnp.where(occurs, t, jnp.zeros((), dtype))
    t = zbar_normalize(t, occurs, graph.values, graph.outcome)
    return Certificate(top <= tol, slack, top, cyc, m_star, wit, t, occurs)


def longest_paths(graph: OutcomeGraph) -> Array:
    """``L(a, a')``: the longest path (``<= k - 1`` edges) from ``a`` to ``a'`` in agent ``i``'s graph (CE Lemma 1).

    ``L(a, a) = 0``; ``-inf`` where ``a`` or ``a'`` does not occur. On a certified graph (no positive cycle) the IC
    payment differences are exactly the interval ``L(a, a') <= t(a') - t(a) <= -L(a', a)``, so
    ``L(a, a') + L(a', a) <= 0`` is minus its width: 0 iff the samples pin the difference (CE Thm 3)."""
    d, occurs = graph.d, graph.occurs
    k = d.shape[0]
    neg = jnp.asarray(-jnp.inf, d.dtype)
    eye = jnp.eye(k, dtype=bool)
    both = occurs[:, None] & occurs[None, :]
    D = jnp.where(both & ~eye, d, neg)
    L = jnp.where(eye, jnp.zeros((), d.dtype), D)
    for _ in range(max(k - 2, 0)):
        L = jnp.maximum(L, _maxplus(L, D)[0])
    return jnp.where(both, L, neg)


def zbar_normalize(t: Array, occurs: Array, values: Array, outcome: Array) -> Array:
    """Shift an outcome menu ``t`` by ``z-bar`` (CE Sec. 3.3): the largest constant keeping ex post IR on the samples.

    ``values`` ``(S, k)`` are ``v_i(a, x)`` at the samples, ``outcome`` ``(S,)`` their outcomes. After the
    shift ``min_x v_i(a_x, x) - t(a_x) = 0``: among the IC menus ``t + z`` (payoff equivalence, CE Thm 3) the
    pointwise revenue-maximizing IR one, the generalized VCG mechanism for an efficient rule. Outcomes
    that no sample gets are priced at the least payment that no sampled type prefers (CE Lemma 1's ``-M``).
    """
    u = jnp.take_along_axis(values, outcome[:, None], axis=1)[:, 0] - t[outcome]  # (S,)
    t = t + jnp.min(u)
    u = u - jnp.min(u)
    unseen = jnp.max(values - u[:, None], axis=0)
    return jnp.where(occurs, t, unseen)


def pseudo_efficiency(
    env: Environment,
    decide: Callable[[Params, Array], Array],
    params: Params,
    s_minus: Array,
    i: int,
    samples: Array,
    *,
    outcomes=None,
    tol: float = 1e-5,
) -> Certificate:
    """CE Thm 1 at one ``s_-i``: :func:`outcome_graph` then :func:`solve_graph`."""
    s_minus = jnp.asarray(s_minus)
    samples = jnp.asarray(samples, s_minus.dtype)

    @jax.jit
    def run(params, s_minus, samples):
        return solve_graph(build_graph(env, decide, params, s_minus, i, samples, outcomes), tol=tol)

    return run(params, s_minus, samples)


# --------------------------------------------------------------------------
# many s_-i


class CertifyReport(NamedTuple):
    """CE Thm 1 over many ``s_-i`` for one agent."""

    fraction: float  # share of s_-i certified pseudo-efficient
    feasible: np.ndarray  # shape=(P,) bool
    max_walk: np.ndarray  # shape=(P,): the largest closed-walk weight per s_-i
    worst: int  # index of the s_-i with the largest max_walk
    worst_profile: np.ndarray  # shape=(D,)
    worst_slack: float  # weight of the reported cycle at the worst s_-i
    worst_cycle: tuple[int, ...]  # a_0 -> ... -> a_m = a_0
    worst_signals: np.ndarray  # shape=(m, d_i): x_j gets a_j and witnesses d(a_j, a_{j+1})


def decide_of(mech_or_decide):
    """The decision rule ``decide(params, m)`` of a :class:`Mechanism`, or the argument itself if it is one."""
    return mech_or_decide.decide if isinstance(mech_or_decide, Mechanism) else mech_or_decide


def certify(
    env: Environment,
    mech_or_decide,
    params: Params,
    profiles_minus: Array,
    i: int,
    samples: Array,
    *,
    outcomes=None,
    tol: float = 1e-5,
    batch_size: int | None = 256,
) -> CertifyReport:
    """Check CE Thm 1 for agent ``i`` at each row of ``profiles_minus`` (shape ``(P, D)``).

    Returns the fraction certified and the worst ``s_-i`` with its cycle and
    witness signals. ``batch_size`` profiles are processed at once (memory ``~ S k + k^3`` each).
    """
    decide = decide_of(mech_or_decide)
    if not 0 <= i < env.n_agents:
        raise ValueError(f"certify: agent index i={i} out of range for {env.n_agents} agents")
    profiles_minus = jnp.asarray(profiles_minus)
    samples = jnp.asarray(samples, profiles_minus.dtype)
    if samples.ndim != 2 or samples.shape[1] != env.dims[i]:
        raise ValueError(f"certify: samples must have shape (S, {env.dims[i]}), got {samples.shape}")
    certs = certify_fn(env, decide, outcomes, tol, batch_size)(
        params, priors.agent_index(env.dims, i), profiles_minus, samples
    )
    return certify_report(certs, profiles_minus, samples)


def per_agent_jit(env: Environment, fn):
    """``jax.jit(fn)`` for ``fn(params, i, ...)``: one compile for every agent where the signal dimensions are
    equal (``i`` traced, :func:`priors.agent_index`), else one per agent (``i`` static)."""
    return jax.jit(fn, static_argnums=() if priors.equal_dims(env.dims) else (1,))


def certify_fn(env, decide, outcomes, tol, batch_size):
    """``(params, i, profiles_minus, samples) -> Certificate`` (leading axis: profile), jitted."""

    def run(params, i, profiles_minus, samples):
        def one(s):
            return solve_graph(build_graph(env, decide, params, s, i, samples, outcomes), tol=tol)

        return jax.lax.map(one, profiles_minus, batch_size=batch_size)

    return per_agent_jit(env, run)


def certify_report(certs: Certificate, profiles_minus, samples) -> CertifyReport:
    """The :class:`CertifyReport` of stacked certificates (leading axis: the rows of ``profiles_minus``)."""
    feasible = np.asarray(certs.feasible)
    walk = np.asarray(certs.max_walk)
    w = int(np.argmax(walk))
    m = int(certs.cycle_len[w])
    cycle = tuple(int(a) for a in np.asarray(certs.cycle[w, : m + 1]))
    signals = np.asarray(samples)[np.asarray(certs.cycle_witness[w, :m])]
    return CertifyReport(
        float(np.mean(feasible)), feasible, walk, w, np.asarray(profiles_minus[w]),
        float(certs.slack[w]), cycle, signals,
    )  # fmt: skip


# --------------------------------------------------------------------------
# payments from the certificate (CE Thm 3 + z-bar)


def certificate_payments(
    env: Environment,
    decide: Callable[[Params, Array], Array],
    samples,
    *,
    params: Params = (),
    outcomes=None,
    name: str = "certificate",
) -> Mechanism:
    """The rule ``decide`` with payments from its pseudo-efficiency certificate (CE Lemma 1, Thm 3).

    At each ``m_-i``: the midpoint potentials of :func:`solve_graph` on agent
    ``i``'s samples, shifted by ``z-bar`` so that the lowest sampled utility is 0
    (CE Sec. 3.3); agent ``i`` pays ``t_i(a)`` for the reported outcome ``a``.
    For an efficient rule this approximates the generalized VCG mechanism to the
    sample resolution. If the certificate fails at ``m_-i`` the payments are
    still finite but no payments make the rule ex post IC there (the audit shows it).

    Args:
      samples: own-signal samples, ``(S, d)`` for every agent (equal dims) or a
        sequence of ``(S_i, d_i)`` arrays, one per agent.
    """
    n = env.n_agents
    if isinstance(samples, (list, tuple)):
        per_agent = tuple(jnp.asarray(x) for x in samples)
    else:
        per_agent = (jnp.asarray(samples),) * n
    if len(per_agent) != n:
        raise ValueError(f"certificate_payments: need samples for {n} agents, got {len(per_agent)}")
    for j, x in enumerate(per_agent):
        if x.ndim != 2 or x.shape[1] != env.dims[j]:
            raise ValueError(f"certificate_payments: samples[{j}] must have shape (S, {env.dims[j]}), got {x.shape}")
    index_of, _ = outcome_index(env, decide, outcomes)

    def menu(p, m, i):
        cert = pseudo_efficiency(env, decide, p, m, i, per_agent[i].astype(m.dtype), outcomes=outcomes)

        def respond(m_i):
            mm = priors.replace_signal(m, env.dims, i, m_i)
            return decide(p, mm), cert.payments[index_of(p, mm)]

        return respond

    def pay(p, m):
        return jnp.stack([menu(p, m, i)(m[priors.agent_slice(env.dims, i)])[1] for i in range(n)])

    return Mechanism(name, decide, pay, params, None, menu)


# --------------------------------------------------------------------------
# built-in examples


def project_choice(k: int = 3, n: int = 2, a: float = 0.0) -> Environment:
    """Choose one of ``k`` projects; agent ``i`` has signal ``s_i in [0, 1]^k`` and ``v_i(q, s) = s_iq + a mean_j s_jq``.

    Private values at ``a = 0`` (the efficient rule is VCG-implementable). For
    any ``a`` the slice ``x -> argmax_q x_q + c_q`` (``c_q = sum_{j != i} s_jq``)
    is pseudo-efficient for ``v_i(q, x) = (1 + a/n) x_q + (a/n) c_q`` with
    ``w(q) = c_q``: the common term is symmetric in agents, so the efficient
    rule passes CE Thm 1 for every ``a``.
    """
    if k < 2 or n < 1:
        raise ValueError(f"project_choice: need k >= 2 projects and n >= 1 agents, got k={k}, n={n}")

    def value_fn(s):
        S = jnp.reshape(s, (n, k))
        return S + a * jnp.mean(S, axis=0, keepdims=True)

    return finite_environment(f"projects_k{k}_a{a}", (k,) * n, k, value_fn, tuple(f"project{j}" for j in range(k)))


CYCLIC_H = (0.0, 1.0, 2.0)
CYCLIC_B = (0.0, 0.6, 0.9)


def cyclic_allocation() -> Environment:
    """Two agents, one-dimensional signals, three outcomes; the efficient rule is NOT ex post IC.

    Outcome ``a`` gives agent 0 ``h_a = (0, 1, 2)[a]`` units: ``v_0(a, s) = h_a s_0``;
    agent 1's value ``v_1(a, s) = b_a (1 + s_1) - 2 h_a s_0`` (``b = (0, .6, .9)``)
    falls in agent 0's signal twice as fast. Welfare ``b_a (1 + s_1) - h_a s_0``,
    so raising ``s_0`` moves the efficient outcome 2 -> 1 -> 0 (at ``s_1 = 0``,
    switches at ``s_0 = 0.3, 0.6``), against agent 0's preference: agent 0's
    outcome graph has a positive cycle (CE Thm 1 fails).
    """
    h = jnp.asarray(CYCLIC_H, jnp.float32)
    b = jnp.asarray(CYCLIC_B, jnp.float32)

    def value_fn(s):
        s = s.astype(jnp.float32)
        return jnp.stack([h * s[0], b * (1 + s[1]) - 2 * h * s[0]])

    return finite_environment("cyclic_allocation", (1, 1), 3, value_fn, ("zero", "one", "two"))
