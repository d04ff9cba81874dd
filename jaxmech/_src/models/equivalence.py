"""Payoff equivalence (CE Lemma 3, Thm 3): payments from boundary differences, checked against the certificate.

At a point ``s-bar`` on the common boundary of the regions of two outcomes ``a`` and ``a'`` of agent ``i``'s
slice ``x -> f(x, s_-i)``, ex post IC pins the payment difference (CE Lemma 3, eq. (4))::

    t(a) - t(a') = v_i(a, s-bar) - v_i(a', s-bar).

:func:`boundary_points` finds such points by bisection along segments of ``S_i`` (:func:`segments`);
:func:`boundary_payments` chains eq. (4) along a tree of outcome pairs that share a boundary (Lemma 3's
construction) and z-bar normalizes (CE Sec. 3.3); :func:`payoff_equivalence` compares that menu with the
certificate's potentials (:mod:`certify`, CE Lemma 1 / Thm 1) over many ``s_-i``: by CE Thm 3 they agree up
to a constant for an ex post IC rule. :func:`characterize_agent` / :func:`characterize` run both theorems
for the CLI and ``[experiment] kind = "certify"``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.core import priors
from jaxmech._src.core.environments import Environment
from jaxmech._src.models.certify import (
    CertifyReport,
    build_graph,
    certify_fn,
    certify_report,
    decide_of,
    longest_paths,
    n_outcomes,
    outcome_index,
    per_agent_jit,
    solve_graph,
    zbar_normalize,
)

Array = jax.Array
Params = Any


# --------------------------------------------------------------------------
# samples near region boundaries


class BoundaryPoints(NamedTuple):
    """Bisection results along segments of agent ``i``'s signal space (leading axis: segment)."""

    lo: Array  # shape=(P, d_i): f(lo) = f(start)
    hi: Array  # shape=(P, d_i): f(hi) != f(start), |hi - lo| <= 2^-iters |end - start|
    a_lo: Array  # shape=(P,) int32: f(lo)
    a_hi: Array  # shape=(P,) int32: f(hi)
    crossed: Array  # shape=(P,) bool: the ends of the segment get different outcomes


def _boundary_points(env, decide, params, s_minus, i, starts, ends, outcomes, iters) -> BoundaryPoints:
    index_of, _ = outcome_index(env, decide, outcomes)

    def f(x):
        return index_of(params, priors.replace_signal(s_minus, env.dims, i, x))

    def one(a, b):
        fa = f(a)

        def body(_, lh):
            lo, hi = lh
            mid = 0.5 * (lo + hi)
            same = f(a + mid * (b - a)) == fa
            return jnp.where(same, mid, lo), jnp.where(same, hi, mid)

        lo, hi = jax.lax.fori_loop(0, iters, body, (jnp.zeros((), a.dtype), jnp.ones((), a.dtype)))
        x_lo, x_hi = a + lo * (b - a), a + hi * (b - a)
        return x_lo, x_hi, fa, f(x_hi), f(b) != fa

    return BoundaryPoints(*jax.vmap(one)(starts, ends))


def boundary_points(
    env: Environment,
    decide: Callable[[Params, Array], Array],
    params: Params,
    s_minus: Array,
    i: int,
    starts: Array,
    ends: Array,
    *,
    outcomes=None,
    iters: int = 40,
) -> BoundaryPoints:
    """Points on the common boundary of two outcome regions, by bisection along segments ``start -> end``.

    For each segment whose ends get different outcomes, bisection keeps ``f(lo) = f(start) != f(hi)``;
    ``lo`` and ``hi`` converge to a point ``s-bar`` in the closure of both regions (CE Lemma 3's
    ``theta^k -> theta-bar <- beta^k``), which pins ``t(a) - t(a')`` by eq. (4).
    """
    s_minus = jnp.asarray(s_minus)
    starts = jnp.asarray(starts, s_minus.dtype)
    ends = jnp.asarray(ends, s_minus.dtype)
    run = jax.jit(lambda p, s, a, b: _boundary_points(env, decide, p, s, i, a, b, outcomes, iters))
    return run(params, s_minus, starts, ends)


def boundary_samples(
    env: Environment,
    decide: Callable[[Params, Array], Array],
    params: Params,
    s_minus: Array,
    i: int,
    starts: Array,
    ends: Array,
    *,
    outcomes=None,
    iters: int = 40,
) -> Array:
    """Own signals on both sides of outcome boundaries: ``concat(lo, hi)`` of :func:`boundary_points`, ``(2P, d_i)``.

    Such pairs of nearby types with different outcomes are what pins payments
    down to eq. (4) of CE Lemma 3; adding them to a certificate's samples makes
    its payments converge to the unique ones (CE Thm 3).
    """
    b = boundary_points(env, decide, params, s_minus, i, starts, ends, outcomes=outcomes, iters=iters)
    return jnp.concatenate([b.lo, b.hi], axis=0)


def segments(samples, *, key: Array | None = None, pairs: int = 0) -> tuple[Array, Array]:
    """Segments for :func:`boundary_points`: consecutive rows of ``samples`` plus ``pairs`` random pairs.

    For a sorted 1-d grid, or a grid from :func:`jaxmech._src.core.audit.grid_points` (rows vary fastest in
    the last coordinate), consecutive rows are grid neighbours, so every boundary the grid resolves is
    crossed; random pairs reach boundaries in other directions.
    """
    samples = jnp.asarray(samples)
    starts, ends = samples[:-1], samples[1:]
    if pairs > 0:
        if key is None:
            raise ValueError("segments: random pairs need a key")
        idx = jax.random.randint(key, (2, pairs), 0, samples.shape[0])
        starts = jnp.concatenate([starts, samples[idx[0]]])
        ends = jnp.concatenate([ends, samples[idx[1]]])
    return starts, ends


# --------------------------------------------------------------------------
# payoff equivalence (CE Lemma 3 / Thm 3)


class BoundaryPayments(NamedTuple):
    """An outcome menu from boundary differences, CE eq. (4), at one ``s_-i``."""

    payments: Array  # shape=(k,): t(a), z-bar normalized on the samples and boundary points
    reached: Array  # shape=(k,) bool: outcomes connected to the reference by the boundary tree
    edges: Array  # shape=(k, k) bool: pairs (a, a') with a boundary point
    residual: Array  # () max over ALL boundary points of |t(a) - t(a') - (v_i(a, s-bar) - v_i(a', s-bar))|
    connected: Array  # () bool: every outcome the samples get is reached


def _boundary_payments(env, decide, params, s_minus, i, samples, b: BoundaryPoints, outcomes) -> BoundaryPayments:
    k = n_outcomes(env, outcomes)
    index_of, value_at = outcome_index(env, decide, outcomes)

    def own_values(x):
        s = priors.replace_signal(s_minus, env.dims, i, x)
        return jax.vmap(lambda a: value_at(a, s)[i])(jnp.arange(k, dtype=jnp.int32)).astype(s_minus.dtype)

    vb = jax.vmap(own_values)(0.5 * (b.lo + b.hi))  # (P, k) at s-bar
    ok = b.crossed & (b.a_lo != b.a_hi)
    diff = jnp.take_along_axis(vb, b.a_lo[:, None], 1)[:, 0] - jnp.take_along_axis(vb, b.a_hi[:, None], 1)[:, 0]
    # one boundary point per ordered pair (the first found): e[a, a'] = t(a) - t(a') by eq. (4)
    n_seg = diff.shape[0]
    pair = jnp.where(ok, b.a_lo * k + b.a_hi, k * k)
    first = jax.ops.segment_min(jnp.where(ok, jnp.arange(n_seg, dtype=jnp.int32), n_seg), pair, num_segments=k * k + 1)[
        : k * k
    ]
    has = (first < n_seg).reshape(k, k)
    e = jnp.where(has, diff[jnp.minimum(first, n_seg - 1)].reshape(k, k), 0.0)
    e = jnp.where(has, e, -e.T)  # from the reverse crossing where only that one was found
    edges = has | has.T

    # the tree of CE Lemma 3, grown breadth-first from the first outcome the samples get
    a_x = jax.vmap(lambda x: index_of(params, priors.replace_signal(s_minus, env.dims, i, x)))(samples)
    seen = jnp.zeros((k,), bool).at[a_x].set(True)
    known0 = jnp.arange(k, dtype=jnp.int32) == a_x[0]

    def grow(_, carry):
        t, known = carry
        cand = known[:, None] & edges  # a known, a -> a' an edge
        src = jnp.argmax(cand, axis=0)
        new = jnp.any(cand, axis=0) & ~known
        return jnp.where(new, t[src] - e[src, jnp.arange(k)], t), known | new

    t, known = jax.lax.fori_loop(0, k - 1, grow, (jnp.zeros((k,), s_minus.dtype), known0))
    res = jnp.where(ok & known[b.a_lo] & known[b.a_hi], jnp.abs(t[b.a_lo] - t[b.a_hi] - diff), 0.0)
    # z-bar on the samples and both sides of every boundary point
    vals = jnp.concatenate([jax.vmap(own_values)(samples), jax.vmap(own_values)(b.lo), jax.vmap(own_values)(b.hi)])
    outs = jnp.concatenate([a_x, b.a_lo, b.a_hi])
    t = zbar_normalize(t, known, vals, outs)
    return BoundaryPayments(t, known, edges, jnp.max(res, initial=0.0), jnp.all(known | ~seen))


def boundary_payments(
    env: Environment,
    decide: Callable[[Params, Array], Array],
    params: Params,
    s_minus: Array,
    i: int,
    samples: Array,
    starts: Array,
    ends: Array,
    *,
    outcomes=None,
    iters: int = 40,
) -> BoundaryPayments:
    """Payments from boundary differences (CE Lemma 3, eq. (4)): ``t(a) - t(a') = v_i(a, s-bar) - v_i(a', s-bar)``.

    Boundary points ``s-bar`` between the regions of ``a`` and ``a'`` come from
    :func:`boundary_points` on the segments ``starts -> ends``; a breadth-first
    tree over the outcome pairs that share a boundary fixes ``t`` up to a constant
    (Lemma 3's construction), then ``z-bar`` on ``samples`` and the boundary points
    (:func:`zbar_normalize`). ``residual`` checks eq. (4) at EVERY boundary point found
    (the tree uses one per pair): it is ~0 iff the differences are path-independent, as
    CE Thm 3 says they are for an ex post IC rule. This construction never looks at the
    incentive constraints, so it is an independent check of the certificate's payments.
    """
    s_minus = jnp.asarray(s_minus)
    samples, starts, ends = (jnp.asarray(x, s_minus.dtype) for x in (samples, starts, ends))

    @jax.jit
    def run(p, s, x, a, b):
        pts = _boundary_points(env, decide, p, s, i, a, b, outcomes, iters)
        return _boundary_payments(env, decide, p, s, i, x, pts, outcomes)

    return run(params, s_minus, samples, starts, ends)


class PayoffEquivalence(NamedTuple):
    """CE Thm 3 over many ``s_-i``: certificate payments vs boundary-difference payments."""

    max_deviation: float  # max over s_-i and shared outcomes of |t_cert - t_boundary - mean difference|
    max_residual: float  # max eq. (4) residual over every boundary point (path independence)
    connected_share: float  # share of s_-i where the boundary tree reaches every sampled outcome
    certified_share: float  # share of s_-i certified by CE Thm 1
    deviation: np.ndarray  # shape=(P,)
    cert_payments: np.ndarray  # shape=(P, k)
    boundary_payments: np.ndarray  # shape=(P, k)
    shared: np.ndarray  # shape=(P, k) bool: outcomes some sample gets that the boundary tree reaches


_PE_ITERS, _PE_BATCH = 40, 64  # payoff_equivalence's bisection steps and profiles per batch


def payoff_equivalence(
    env: Environment,
    mech_or_decide,
    params: Params,
    profiles_minus: Array,
    i: int,
    samples: Array,
    starts: Array,
    ends: Array,
    *,
    outcomes=None,
    iters: int = _PE_ITERS,
    tol: float = 1e-5,
    batch_size: int | None = _PE_BATCH,
) -> PayoffEquivalence:
    """CE Thm 3 numerically: two IC payment constructions agree up to a constant in ``s_i`` at each ``s_-i``.

    (1) the certificate potentials of :func:`solve_graph` on ``samples`` plus both sides of every
    boundary point; (2) :func:`boundary_payments` (eq. (4) along a tree). Both are z-bar normalized;
    the deviation is measured after removing the mean difference over outcomes both reach, so it does
    not depend on the normalization.
    """
    decide = decide_of(mech_or_decide)
    fn = _payoff_equivalence_fn(env, decide, outcomes, iters, tol, batch_size)
    return _payoff_equivalence_on(fn, env, params, profiles_minus, i, samples, starts, ends)


def _payoff_equivalence_fn(env, decide, outcomes, iters, tol, batch_size):
    """``(params, i, profiles_minus, samples, starts, ends) -> arrays`` of :func:`payoff_equivalence`, jitted."""

    def one(params, i, s, samples, starts, ends):
        b = _boundary_points(env, decide, params, s, i, starts, ends, outcomes, iters)
        bp = _boundary_payments(env, decide, params, s, i, samples, b, outcomes)
        xs = jnp.concatenate([samples, b.lo, b.hi])
        cert = solve_graph(build_graph(env, decide, params, s, i, xs, outcomes), tol=tol)
        both = cert.occurs & bp.reached
        d = cert.payments - bp.payments
        shift = jnp.sum(jnp.where(both, d, 0.0)) / jnp.maximum(jnp.sum(both), 1).astype(d.dtype)
        dev = jnp.max(jnp.where(both, jnp.abs(d - shift), 0.0))
        return dev, bp.residual, bp.connected, cert.feasible, cert.payments, bp.payments, both

    def run(params, i, profiles_minus, samples, starts, ends):
        return jax.lax.map(lambda s: one(params, i, s, samples, starts, ends), profiles_minus, batch_size=batch_size)

    return per_agent_jit(env, run)


def _payoff_equivalence_on(fn, env, params, profiles_minus, i, samples, starts, ends) -> PayoffEquivalence:
    profiles_minus = jnp.asarray(profiles_minus)
    dt = profiles_minus.dtype
    samples, starts, ends = (jnp.asarray(x, dt) for x in (samples, starts, ends))
    out = fn(params, priors.agent_index(env.dims, i), profiles_minus, samples, starts, ends)
    dev, res, conn, feas, tc, tb, both = (np.asarray(x) for x in out)
    return PayoffEquivalence(
        float(dev.max()), float(res.max()), float(conn.mean()), float(feas.mean()), dev, tc, tb, both
    )


def payment_gaps(
    env: Environment,
    mech_or_decide,
    params: Params,
    profiles_minus: Array,
    i: int,
    samples: Array,
    *,
    outcomes=None,
) -> np.ndarray:
    """CE Thm 3 from the samples alone: ``w(a, a') = -(L(a, a') + L(a', a))`` per ``s_-i``, shape ``(P, k, k)``.

    ``L`` is :func:`~jaxmech._src.models.certify.longest_paths` on the graph of ``samples`` only (no boundary
    points): ``w(a, a')`` is the width of the interval of IC payment differences ``t(a') - t(a)`` that the samples
    leave. It is ``>= 0`` on a certified graph; by payoff equivalence it shrinks to 0 as the samples fill a connected
    type space, and stays positive between outcomes whose regions lie in different components of a disconnected
    one. ``nan`` where ``a`` or ``a'`` does not occur.
    """
    decide = decide_of(mech_or_decide)
    profiles_minus = jnp.asarray(profiles_minus)
    samples = jnp.asarray(samples, profiles_minus.dtype)

    def one(p, s, x):
        g = build_graph(env, decide, p, s, i, x, outcomes)
        L = longest_paths(g)
        both = g.occurs[:, None] & g.occurs[None, :]
        return jnp.where(both, -(L + L.T), jnp.nan)

    fn = jax.jit(lambda p, ps, x: jax.lax.map(lambda s: one(p, s, x), ps, batch_size=_PE_BATCH))
    return np.asarray(fn(params, profiles_minus, samples), np.float64)


# --------------------------------------------------------------------------
# one agent, everything (CE Thm 1 + Thm 3), for runs and the CLI


def characterize_agent(
    env: Environment,
    mech_or_decide,
    params: Params,
    profiles_minus: Array,
    i: int,
    samples: Array,
    *,
    outcomes=None,
    equivalence_profiles: int = 16,
    tol: float = 1e-5,
    batch_size: int | None = 256,
) -> tuple[dict, CertifyReport, PayoffEquivalence]:
    """CE Thm 1 certificates at every row of ``profiles_minus`` and CE Thm 3 payoff equivalence at the first
    ``equivalence_profiles`` certified ones, for agent ``i``; a JSON-ready row plus the raw reports.

    The row holds the certified share, the worst cycle (slack, outcome names, witness signals, profile),
    the payoff-equivalence deviation between :func:`solve_graph`'s and :func:`boundary_payments`' menus
    and the eq. (4) residual, and the certificate throughput (graphs built and solved per second, timed
    on a second, compiled call).
    """
    decide = decide_of(mech_or_decide)
    fns = _characterize_fns(env, decide, outcomes, tol, batch_size)
    return _characterize_on(fns, env, params, profiles_minus, i, samples, outcomes, equivalence_profiles)


def characterize(
    env: Environment,
    mech_or_decide,
    params: Params,
    profiles_minus: Array,
    samples: Sequence[Array],
    *,
    outcomes=None,
    equivalence_profiles: int = 16,
    tol: float = 1e-5,
    batch_size: int | None = 256,
) -> list[tuple[dict, CertifyReport, PayoffEquivalence]]:
    """:func:`characterize_agent` for every agent (``samples[i]``: agent ``i``'s own-signal samples).

    Where all agents have the same signal dimension the agent index is a traced argument, so the
    certificate and payoff-equivalence programs compile once for all agents.
    """
    if len(samples) != env.n_agents:
        raise ValueError(f"characterize: need one sample array per agent ({env.n_agents}), got {len(samples)}")
    decide = decide_of(mech_or_decide)
    fns = _characterize_fns(env, decide, outcomes, tol, batch_size)
    return [
        _characterize_on(fns, env, params, profiles_minus, i, x, outcomes, equivalence_profiles)
        for i, x in enumerate(samples)
    ]


def _characterize_fns(env, decide, outcomes, tol, batch_size):
    pe_fn = _payoff_equivalence_fn(env, decide, outcomes, _PE_ITERS, tol, _PE_BATCH)  # payoff_equivalence's defaults
    return certify_fn(env, decide, outcomes, tol, batch_size), pe_fn


def _characterize_on(fns, env, params, profiles_minus, i, samples, outcomes, equivalence_profiles):
    import time

    cert_fn, pe_fn = fns
    profiles_minus = jnp.asarray(profiles_minus)
    samples = jnp.asarray(samples, profiles_minus.dtype)
    agent = priors.agent_index(env.dims, i)
    rep = certify_report(cert_fn(params, agent, profiles_minus, samples), profiles_minus, samples)
    t0 = time.perf_counter()
    jax.block_until_ready(cert_fn(params, agent, profiles_minus, samples))  # compiled: the throughput
    per_s = len(profiles_minus) / max(time.perf_counter() - t0, 1e-9)

    certified = np.flatnonzero(rep.feasible)[:equivalence_profiles]
    pick = certified if len(certified) else np.arange(min(equivalence_profiles, len(profiles_minus)))
    starts, ends = segments(samples)
    pe = _payoff_equivalence_on(pe_fn, env, params, profiles_minus[pick], i, samples, starts, ends)
    names = env.outcome_names if outcomes is None or len(env.outcome_names) == n_outcomes(env, outcomes) else None
    label = (lambda a: names[a]) if names else (lambda a: int(a))
    row = {
        "agent": env.agent_names[i] if env.agent_names else f"agent{i}",
        "certified_share": rep.fraction,
        "profiles": len(profiles_minus),
        "samples": int(samples.shape[0]),
        "worst_max_walk": float(rep.max_walk[rep.worst]),
        "worst_slack": rep.worst_slack,
        "worst_profile": np.asarray(rep.worst_profile).tolist(),
        "worst_cycle": [label(a) for a in rep.worst_cycle],
        "worst_signals": np.asarray(rep.worst_signals).tolist(),
        "certificates_per_s": per_s,
        "payoff_equivalence": {
            "profiles": len(pick),
            "profile_indices": pick.tolist(),
            "on_certified": bool(len(certified)),
            "max_deviation": pe.max_deviation,
            "max_residual": pe.max_residual,
            "connected_share": pe.connected_share,
        },
    }
    return row, rep, pe
