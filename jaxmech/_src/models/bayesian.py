"""The Bayesian side of CE (Props 1–2, Sec. 3.4, Thm 4, fn. 6): interim statistics and the mechanisms that need them.

Layer 4 (beside the audit). Everything here is a pure function of an environment, a mechanism, a prior and a key:

- :func:`conditional_sampler`: draws ``s_-i`` from the prior *conditional on* ``s_i`` (exact for independent
  priors and for the Gaussian copula, whose conditional is Gaussian in the normal scores).
- :func:`interim_audit`: Bayesian IC and interim IR (CE Sec. 2.1, Defs 1–2) by nested Monte Carlo: for each type
  ``s_i`` on a grid and each report ``m`` on a grid, ``U_i(m; s_i) = E[u_i(m, s_-i; s) | s_i]`` from ``inner``
  conditional draws (common to all reports of one type: paired differences), with standard errors.
- :func:`expected_externality`: the d'Aspremont–Gérard-Varet budget-balanced mechanism for an efficient rule with
  independent signals, its own-report term from the interim envelope formula (so it also covers interdependent
  values): Bayesian IC, exactly budget balanced, not ex post IC.
- :func:`thm4_construction`: CE Thm 4 / Sec. 3.4 — from an efficient, Bayesian IC mechanism made interim IR by
  participation fees, the interim-payoff-equivalent ex post IC and ex post IR mechanism ``t''`` (the generalized VCG
  payments anchored at the lowest type).
- :func:`cremer_mclean`: CE fn. 6 — a finite-type Crémer–McLean full-surplus-extraction auction: ex post IC and
  interim IR, extracts the whole surplus in expectation, NOT ex post IR. Exact enumeration.

The ``run_*`` functions at the bottom are the ``jaxmech run`` entry points of the experiment kinds
``interim_audit``, ``thm4`` and ``cremer_mclean`` (layer 7; they import the run layer when called).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc, ndtr, ndtri

from jaxmech._src.core import mechanisms, priors
from jaxmech._src.core.environments import Environment, linear_public_values
from jaxmech._src.core.mechanisms import Mechanism

Array = jax.Array

_U_EPS = 1e-6  # copula scores are taken at u in [eps, 1 - eps]: finite at the ends of the support


# --------------------------------------------------------------------------
# the prior conditional on one agent's signal


def marginal_cdf(m: priors.Marginal, x: Array) -> Array:
    """``F(x)`` of a :class:`~jaxmech._src.core.priors.Uniform` or :class:`~jaxmech._src.core.priors.Beta` marginal."""
    z = jnp.clip((x - m.lo) / (m.hi - m.lo), 0.0, 1.0)
    if isinstance(m, priors.Beta):
        return betainc(jnp.asarray(m.a, z.dtype), jnp.asarray(m.b, z.dtype), z)
    return z


def conditional_sampler(prior: priors.Prior, i: int) -> Callable[[Array, Array, int, object], Array]:
    """``sample(key, s_i, n, dtype) -> (n, D)`` profiles ``(s_i, s_-i)``, ``s_-i ~ prior(. | s_i)``.

    Independent prior: ``s_-i`` from the prior itself. Gaussian copula with correlation ``R``: with normal scores
    ``z = Phi^{-1}(F(s))``, ``z_-i | z_i ~ N(R_{-i,i} R_{ii}^{-1} z_i, R_{-i,-i} - R_{-i,i} R_{ii}^{-1} R_{i,-i})``,
    then ``s_j = F_j^{-1}(Phi(z_j))``. This is the expectation CE Sec. 2.1 takes (``E_mu[. | s_i]``); with
    correlated signals it differs from the unconditional one that independent-prior shortcuts use.
    """
    dims = prior.dims
    sl = priors.agent_slice(dims, i)
    own = np.arange(sl.start, sl.stop)
    rest = np.array([j for j in range(prior.size) if j not in own], dtype=int)

    if prior.cholesky is None:

        def sample_independent(key, s_i, n, dtype=jnp.float32):
            prof = prior.sample(key, n, dtype)
            return priors.replace_signal(prof, dims, i, jnp.asarray(s_i, dtype))

        return sample_independent

    corr = prior.cholesky @ prior.cholesky.T
    r_ii = corr[np.ix_(own, own)]
    r_oi = corr[np.ix_(rest, own)]
    gain = r_oi @ np.linalg.inv(r_ii)  # (|rest|, d_i)
    schur = corr[np.ix_(rest, rest)] - gain @ r_oi.T
    chol = np.linalg.cholesky(schur + 1e-12 * np.eye(len(rest)))

    def sample_copula(key, s_i, n, dtype=jnp.float32):
        s_i = jnp.broadcast_to(jnp.asarray(s_i, dtype), (len(own),))
        u_i = jnp.stack([marginal_cdf(prior.marginals[j], s_i[k]) for k, j in enumerate(own)])
        z_i = ndtri(jnp.clip(u_i, _U_EPS, 1 - _U_EPS))
        w = jax.random.normal(key, (n, len(rest)), dtype)
        z = w @ jnp.asarray(chol, dtype).T + (jnp.asarray(gain, dtype) @ z_i)[None, :]  # (n, |rest|)
        tiny = jnp.finfo(dtype).eps
        u = jnp.clip(ndtr(z), tiny, 1 - tiny)
        cols, r = [], 0
        for j in range(prior.size):
            if j in own:
                cols.append(jnp.full((n,), s_i[j - sl.start], dtype))
            else:
                cols.append(prior.marginals[j].ppf(u[:, r]).astype(dtype))
                r += 1
        return jnp.stack(cols, axis=-1)

    return sample_copula


class ConditionalPrior(NamedTuple):
    """Agent ``i``'s conditional prior ``prior(. | s_i)`` as arrays (CE Sec. 2.1: ``E_mu[. | s_i]``), built by
    :func:`conditional_arrays`: one compiled program (:func:`sample_conditional` inside :func:`interim_audit`)
    serves every prior over the same signal dimensions, uniform or Beta marginals, independent or a Gaussian
    copula, the numbers being its arguments."""

    kind: Array  # shape=(D,) priors.UNIFORM_KIND or priors.BETA_KIND
    a: Array  # shape=(D,) Beta parameters (1 for a uniform marginal)
    b: Array  # shape=(D,)
    lo: Array  # shape=(D,) support
    hi: Array  # shape=(D,)
    correlated: Array  # shape=() bool: a Gaussian copula (else independent coordinates)
    gain: Array  # shape=(|rest|, d_i) E[z_-i | z_i] = gain z_i (normal scores; zeros if independent)
    chol: Array  # shape=(|rest|, |rest|) Cholesky factor of Cov[z_-i | z_i] (identity if independent)


def conditional_arrays(prior: priors.Prior, i: int, dtype=jnp.float32) -> ConditionalPrior:
    """``prior`` conditional on agent ``i``'s signal as a :class:`ConditionalPrior` (the copula's conditional
    moments as in :func:`conditional_sampler`, in NumPy float64, then cast to ``dtype``)."""
    sl = priors.agent_slice(prior.dims, i)
    own = np.arange(sl.start, sl.stop)
    rest = np.array([j for j in range(prior.size) if j not in own], dtype=int)
    if prior.cholesky is None:
        gain, chol = np.zeros((len(rest), len(own))), np.eye(len(rest))
    else:
        corr = np.asarray(prior.cholesky, np.float64) @ np.asarray(prior.cholesky, np.float64).T
        r_oi = corr[np.ix_(rest, own)]
        gain = r_oi @ np.linalg.inv(corr[np.ix_(own, own)])
        chol = np.linalg.cholesky(corr[np.ix_(rest, rest)] - gain @ r_oi.T + 1e-12 * np.eye(len(rest)))
    pa = priors.prior_arrays(prior, dtype)
    return ConditionalPrior(
        pa.kind,
        pa.a,
        pa.b,
        pa.lo,
        pa.hi,
        pa.correlated,
        jnp.asarray(gain, dtype),
        jnp.asarray(chol, dtype),
    )


def sample_conditional(
    cp: ConditionalPrior, dims: tuple[int, ...], i: int, key: Array, s_i: Array, n: int, dtype=jnp.float32
) -> Array:
    """``(n, D)`` profiles ``(s_i, s_-i)``, ``s_-i ~ prior(. | s_i)`` from the arrays ``cp`` (traceable in them).

    Independent: ``s_j = F_j^{-1}(U_j)``, ``U_j`` uniform from ``fold_in(key, j)`` (for uniform marginals the
    numbers :meth:`Prior.sample` draws; a Beta marginal by its quantile where the prior draws by
    ``jax.random.beta``). Gaussian copula: the conditional normal scores of :func:`conditional_sampler`, the same
    numbers. Which of the two, and each marginal's kind, are arguments (``lax.cond``), not program structure.
    """
    sl = priors.agent_slice(dims, i)
    own = list(range(sl.start, sl.stop))
    rest = [j for j in range(sum(dims)) if j not in own]
    s_i = jnp.broadcast_to(jnp.asarray(s_i, dtype), (len(own),))

    def copula():
        u_i = jnp.stack([priors.marginal_cdf_of(cp, j, s_i[k]) for k, j in enumerate(own)])
        z_i = ndtri(jnp.clip(u_i, _U_EPS, 1 - _U_EPS))
        w = jax.random.normal(key, (n, len(rest)), dtype)
        z = w @ cp.chol.T + (cp.gain @ z_i)[None, :]
        tiny = jnp.finfo(dtype).eps
        return jnp.clip(ndtr(z), tiny, 1 - tiny)

    def independent():
        keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.asarray(rest))
        return jax.vmap(lambda k: jax.random.uniform(k, (n,), dtype))(keys).T

    u = jax.lax.cond(jnp.asarray(cp.correlated).astype(bool), copula, independent)  # (n, |rest|)
    cols = {j: jnp.full((n,), s_i[k], dtype) for k, j in enumerate(own)}
    cols.update({j: priors.marginal_quantile(cp, j, u[:, r]).astype(dtype) for r, j in enumerate(rest)})
    return jnp.stack([cols[j] for j in range(sum(dims))], axis=-1)


# --------------------------------------------------------------------------
# interim (Bayesian) IC and IR by nested Monte Carlo


def _one_dimensional(env: Environment, who: str) -> None:
    if any(d != 1 for d in env.dims):
        raise ValueError(f"{who}: needs one-dimensional signals, got dims={list(env.dims)}")


def _deviation_utilities(env: Environment, mech: Mechanism, params, s: Array, i: int, reports: Array):
    """``(u_i(m, s_-i; s) for m in reports, u_i(s; s))`` at one true profile ``s`` (the menu does the s_-i work once)."""
    respond = mechanisms.agent_menu(mech, env.dims, params, s, i)

    def u(m_i):
        q, t_i = respond(m_i)
        return env.value(q, s)[i] - t_i

    return jax.vmap(u)(reports[:, None]), u(s[i : i + 1])


def _se(x: Array, axis: int = 0) -> Array:
    n = x.shape[axis]
    return jnp.std(x, axis=axis, ddof=1) / jnp.sqrt(jnp.asarray(n, x.dtype))


def _interim_kernel(env: Environment, mech: Mechanism, i: int, types: int, misreports: int, inner: int, dtype):
    """Agent ``i``'s interim statistics per type as one jitted function of ``(params, cp, key_i, ts, ms, tie)``:
    the mechanism's parameters, the conditional prior's arrays (:class:`ConditionalPrior`), the key, the type and
    report grids and the tie tolerance are arguments, so one trace and compile serves every prior."""
    dims = tuple(env.dims)

    def per_type(params, cp, key_i, ms, tie, arg):
        k, t = arg
        prof = sample_conditional(cp, dims, i, jax.random.fold_in(key_i, k), t, inner, dtype)
        u_mis, u_true = jax.vmap(lambda s: _deviation_utilities(env, mech, params, s, i, ms))(prof)
        gain = u_mis - u_true[:, None]  # (inner, M)
        # the best report other than the truth (a grid point equal to s_i has gain 0 and SE 0)
        mean = jnp.where(jnp.abs(ms - t) <= tie, -jnp.inf, jnp.mean(gain, axis=0))
        j = jnp.argmax(mean)
        return mean[j], _se(gain[:, j]), ms[j], jnp.mean(u_true), _se(u_true)

    def kernel(params, cp, key_i, ts, ms, tie):
        return jax.lax.map(lambda arg: per_type(params, cp, key_i, ms, tie, arg), (jnp.arange(types), ts))

    return jax.jit(kernel)


def interim_audit(
    env: Environment,
    mech: Mechanism,
    prior: priors.Prior,
    key: Array,
    *,
    types: int = 33,
    misreports: int = 65,
    inner: int = 4096,
    agents: tuple[int, ...] | None = None,
    dtype=jnp.float32,
    kernels: dict | None = None,
) -> dict:
    """Bayesian IC and interim IR of ``mech`` under ``prior`` (CE Sec. 2.1, Defs 1–2), with Monte Carlo SEs.

    For agent ``i``, each type ``s_i`` on a ``types``-point grid of ``S_i`` and each report ``m`` on a
    ``misreports``-point grid (plus the truth): ``U_i(m; s_i) = E[v_i(f(m, s_-i), s) - t_i(m, s_-i) | s_i]`` from
    ``inner`` draws of ``s_-i`` from the CONDITIONAL prior (:func:`sample_conditional`), the same draws for every
    report of that type (``agents``: which agents, default all). Interim regret
    ``max(0, max_{m != s_i} U_i(m; s_i) - U_i(s_i; s_i))`` with the SE of the paired difference at the best report
    other than the truth, at the type where that gain (``best_gain``, possibly negative) is largest, so a regret
    of 0 still comes with the resolution of the test; interim IR violation ``max(0, -min_{s_i} U_i(s_i; s_i))`` with the SE of
    ``U_i`` at the minimizing type. The per-type curves are returned too. One-dimensional signals.

    The prior and the mechanism's parameters are arguments of each agent's compiled program, not constants in it.
    ``kernels``: a dict the caller keeps across calls whose ``env`` and ``mech`` are the same functions (e.g. the
    cases of one config that differ only in the prior, the mechanism not built from the prior); each agent's
    program is kept there and reused, so a further prior traces and compiles nothing and gives the numbers a
    fresh program gives. ``None``: a fresh dict for this call.
    """
    _one_dimensional(env, "interim_audit")
    kernels = {} if kernels is None else kernels
    params = jax.tree.map(lambda x: jnp.asarray(x), mech.params)
    rows = []
    for i in range(env.n_agents) if agents is None else agents:
        lo, hi = float(env.lo[i]), float(env.hi[i])
        ts = jnp.linspace(lo, hi, types, dtype=dtype)
        ms = jnp.linspace(lo, hi, misreports, dtype=dtype)
        cache_key = (env.name, mech.name, tuple(env.dims), i, types, misreports, inner, jnp.dtype(dtype).name)
        if cache_key not in kernels:
            kernels[cache_key] = _interim_kernel(env, mech, i, types, misreports, inner, dtype)
        cp = conditional_arrays(prior, i, dtype)
        tie = jnp.asarray(1e-6 * (hi - lo), dtype)
        out = kernels[cache_key](params, cp, jax.random.fold_in(key, i), ts, ms, tie)
        gain, reg_se, arg_m, u, u_se = (np.asarray(x, np.float64) for x in out)
        reg = np.maximum(gain, 0.0)
        tsn = np.asarray(ts, np.float64)
        k = int(np.argmax(gain))  # the type closest to a profitable deviation (gain may be < 0 everywhere)
        kk = int(np.argmin(u))
        rows.append(
            {
                "agent": env.agent_names[i] if env.agent_names else f"agent{i}",
                "max_interim_regret": float(reg[k]),
                "best_gain": float(gain[k]),
                "se": float(reg_se[k]),
                "worst_type": float(tsn[k]),
                "worst_misreport": float(arg_m[k]),
                "ir_violation": float(max(0.0, -u[kk])),
                "min_interim_utility": float(u[kk]),
                "se_min": float(u_se[kk]),
                "min_at_type": float(tsn[kk]),
                "curve": {
                    "types": tsn.tolist(),
                    "utility": u.tolist(),
                    "utility_se": u_se.tolist(),
                    "regret": reg.tolist(),
                    "regret_se": reg_se.tolist(),
                },
            }
        )
    return {"types": types, "misreports": misreports, "inner": inner, "agents": rows}


def replay(env: Environment, mech: Mechanism, profile, i: int, misreport) -> dict:
    """Re-evaluate one ex post witness from scratch: ``u_i`` truthful and after ``m_i = misreport`` (no menus)."""
    s = jnp.asarray(profile)
    m = priors.replace_signal(s, env.dims, i, jnp.asarray(misreport, s.dtype))

    def u(r):
        return env.value(mech.decide(mech.params, r), s)[i] - mech.pay(mech.params, r)[i]

    truth, dev = float(u(s)), float(u(m))
    return {"profile": np.asarray(s).tolist(), "agent": i, "misreport": np.asarray(misreport).tolist(),
            "u_truthful": truth, "u_misreport": dev, "gain": dev - truth}  # fmt: skip


# --------------------------------------------------------------------------
# d'Aspremont–Gérard-Varet: expected externality, exactly budget balanced


def _x64_dtype():
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def interim_envelope_tables(
    env: Environment, decide, params, prior: priors.Prior, key: Array, *, inner: int = 65536, table: int = 1025
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per agent ``(x, T_i(x), C_i(x))`` on a ``table``-point grid of ``S_i``, independent signals.

    ``T_i(x) = E[h_i(f(x, S)) V_i(x, S)] - int_lo^x E[h_i(f(y, S)) dV_i/ds_i(y, S)] dy`` is the interim expected
    payment of ANY Bayesian IC mechanism implementing the monotone rule ``f`` with ``U_i(lo) = 0`` (the interim
    envelope formula; CE Sec. 3.3 interim payoff equivalence); ``C_i(x) = E[cost(f(x, S))]``. Expectations over an
    ``inner``-point Latin hypercube of the prior (error ``O(1/inner)``), ``dV_i/ds_i`` by ``jax.grad``, the
    integral by the trapezoid rule on the grid.
    """
    if not env.is_separable:
        raise ValueError(f"expected externality: environment {env.name!r} is not separable (CE Def 6)")
    _one_dimensional(env, "expected externality")
    if prior.cholesky is not None:
        raise ValueError("expected externality: needs independent signals (the prior has a correlation matrix)")
    dtype = _x64_dtype()
    sample = prior.latin_hypercube(key, inner, dtype)

    def moments(x, i):
        def one(s):
            s = s.at[i].set(x)
            q = decide(params, s)
            h = env.weights(q)[i]
            dv = jax.grad(lambda y: env.values(s.at[i].set(y))[i])(x)
            return jnp.stack([h * env.values(s)[i], h * dv, env.cost(q)])

        return jnp.mean(jax.vmap(one)(sample), axis=0)

    grids = [jnp.linspace(env.lo[i], env.hi[i], table, dtype=dtype) for i in range(env.n_agents)]
    # one compiled function for all agents
    ms = jax.jit(lambda gs: [jax.lax.map(lambda x, i=i: moments(x, i), g) for i, g in enumerate(gs)])(grids)
    out = []
    for grid, m in zip(grids, ms, strict=True):
        m = np.asarray(m, np.float64)  # (table, 3)
        x = np.asarray(grid, np.float64)
        integral = np.concatenate([[0.0], np.cumsum(0.5 * (m[1:, 1] + m[:-1, 1]) * np.diff(x))])
        out.append((x, m[:, 0] - integral, m[:, 2]))
    return out


def expected_externality(
    env: Environment,
    prior: priors.Prior,
    key: Array,
    *,
    decide=None,
    inner: int = 16384,
    table: int = 513,
    name: str = "expected_externality",
) -> Mechanism:
    """The d'Aspremont–Gérard-Varet (expected-externality) mechanism: Bayesian IC, exactly budget balanced.

    For the efficient rule ``f`` (or ``decide``) and independent signals, agent ``i`` pays::

        t_i(m) = cost(f(m)) / n + A_i(m_i) - (1 / (n - 1)) sum_{j != i} A_j(m_j),   A_i = T_i - C_i / n,

    with ``T_i`` the interim envelope payment and ``C_i`` the interim expected cost
    (:func:`interim_envelope_tables`), tabulated: ``params = (x, A)``, each ``(n, table)``. The ``A`` terms cancel in the sum, so ``sum_i t_i = cost(f(m))`` at every
    report profile (exact budget balance); agent ``i``'s interim payment is ``T_i(m_i)`` plus a constant, so truth
    telling is a Bayesian Nash equilibrium (CE Sec. 2.1). With private values ``A_i(m_i)`` is dAGV's
    ``-E[sum_{j != i} (v_j - c/n) f(m_i, s_-i)]`` up to a constant; with interdependent values the envelope form is
    what keeps it Bayesian IC. The payment depends on ``m_-i`` only through the others' own terms, not through
    ``s_-i``'s effect on agent i's value, so it is NOT ex post IC (the audit finds the regret).
    """
    decide = decide if decide is not None else mechanisms.efficient_rule(env)
    tables = interim_envelope_tables(env, decide, (), prior, key, inner=inner, table=table)
    n = env.n_agents
    # params: the grids x_i and the own-report terms A_i(x_i), each (n, table)
    params = (np.stack([x for x, _, _ in tables]), np.stack([t - c / n for _, t, c in tables]))

    def pay(params, m):
        xs, own = params
        q = decide((), m)
        a = jnp.stack([jnp.interp(m[i], jnp.asarray(xs[i], m.dtype), jnp.asarray(own[i], m.dtype)) for i in range(n)])
        return env.cost(q) / n + a - (jnp.sum(a) - a) / (n - 1)

    vcg = mechanisms.generalized_vcg(env)
    return Mechanism(name, lambda params, m: decide((), m), pay, params, lambda p, m, i: vcg.kinks((), m, i))


def with_fees(mech: Mechanism, fees, *, name: str | None = None) -> Mechanism:
    """``mech`` with a participation fee ``fees[i]`` added to agent ``i``'s payment (negative: a subsidy)."""
    fees = np.asarray(fees, np.float64)

    def pay(params, m):
        return mech.pay(params, m) + jnp.asarray(fees, m.dtype)

    def menu(params, m, i):
        respond = mech.menu(params, m, i)

        def with_fee(m_i):
            q, t_i = respond(m_i)
            return q, t_i + jnp.asarray(fees[i], m.dtype)

        with_fee.kinks = getattr(respond, "kinks", None)  # a fee moves no kink (None: mech.kinks is used)
        return with_fee

    label = name or f"{mech.name}+fees"
    return Mechanism(label, mech.decide, pay, mech.params, mech.kinks, menu if mech.menu is not None else None)


# --------------------------------------------------------------------------
# CE Thm 4 / Sec. 3.4: interim-payoff-equivalent ex post IC and IR mechanism


def _paired_moments(env, bic, vcg, prior, key, i, at, inner, dtype):
    """For each type in ``at``: ``inner`` conditional draws of ``s_-i``, ``a = u_i`` under ``bic`` and ``b`` under
    ``vcg`` (truthful): ``(mean a, var a, mean b, mean (a - b), var (a - b), mean t_i^vcg)``, each ``(len(at),)``."""
    sample = conditional_sampler(prior, i)

    def u(mech, s):
        return env.value(mech.decide(mech.params, s), s)[i] - mech.pay(mech.params, s)[i]

    def one(arg):
        k, t = arg
        prof = sample(jax.random.fold_in(key, k), t, inner, dtype)
        a = jax.vmap(lambda s: u(bic, s))(prof)
        b = jax.vmap(lambda s: u(vcg, s))(prof)
        t = jax.vmap(lambda s: vcg.pay(vcg.params, s)[i])(prof)
        return jnp.mean(a), jnp.var(a, ddof=1), jnp.mean(b), jnp.mean(a - b), jnp.var(a - b, ddof=1), jnp.mean(t)

    out = jax.jit(lambda ts: jax.lax.map(one, (jnp.arange(len(at)), ts)))(jnp.asarray(at, dtype))
    return tuple(np.asarray(x, np.float64) for x in out)


def thm4_construction(
    env: Environment,
    bic: Mechanism,
    prior: priors.Prior,
    key: Array,
    *,
    types: int = 33,
    inner: int = 16384,
    fee_inner: int = 262144,
    ex_post: Mechanism | None = None,
    dtype=jnp.float32,
) -> tuple[Mechanism, Mechanism, dict]:
    """CE Thm 4 and the construction before it (Sec. 3.4), for an efficient Bayesian IC ``bic`` and independent signals.

    1. Participation fees make ``bic`` interim IR with the constraint binding at the lowest type ``lo_i``, the end of
       ``S_i`` with the smaller interim utility (``s_i = 0`` when ``h_i >= 0``, CE fn. 7; the seller's ``s = 1`` in
       bilateral trade): ``phi_i = U_i^bic(lo_i) = E[u_i(lo_i, s_-i)]`` is charged (a subsidy when negative),
       ``fee_inner`` draws at each end.
    2. ``f`` efficient and monotone (strong single crossing) is ex post IC with the generalized VCG payments (CE Thm 2,
       Sec. 3.3), unique up to a function of ``s_-i`` (CE Thm 3). ``t''`` anchors them at the lowest type as the paper
       does, ``t''_i(lo_i, s_-i) = const = `` the fee mechanism's interim payment of ``lo_i``, i.e.
       ``t''_i = t^VCG_i - k_i`` with ``k_i = E[u^fee_i(lo_i, S)] - E[u^VCG_i(lo_i, S)]`` on the fee sample.
    3. Check: interim payoffs of the two agree at every type on a ``types``-point grid (paired draws; the SE adds
       the fee's SE), ``lo_i`` minimizes the interim utility on that grid (within 4 SE).

    ``ex_post``: the generalized VCG mechanism of ``f`` when a closed form is at hand (default: pivots by
    bisection, :func:`~jaxmech._src.core.mechanisms.generalized_vcg`). Returns ``(t'' mechanism, fee mechanism,
    report)``; the caller audits ``t''`` ex post (zero regret, ex post IR) and compares expected budgets (interim
    payoff equivalence: the same).
    """
    _one_dimensional(env, "thm4_construction")
    if prior.cholesky is not None:
        raise ValueError("thm4_construction: CE Thm 4 assumes independent signals (the prior has a correlation matrix)")
    check = prior.sample(jax.random.fold_in(key, 99), 4096, dtype)
    same = jax.vmap(
        lambda s: jnp.all(env.outcome_probs(bic.decide(bic.params, s)) == env.outcome_probs(env.efficient(s)))
    )(check)
    if not bool(jnp.all(same)):
        raise ValueError(
            f"thm4_construction: {bic.name!r} does not use the efficient rule (CE Thm 4 needs efficient f)"
        )
    vcg = ex_post if ex_post is not None else mechanisms.generalized_vcg(env)
    n = env.n_agents
    chunks = max(1, fee_inner // inner)  # the fee sample: `chunks` blocks of `inner` draws at each end of S_i
    fees, fee_se, shifts, taus, lowest = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    moments = []
    for i in range(n):
        ends = (float(env.lo[i]), float(env.hi[i]))
        ts = np.linspace(*ends, types)
        at = np.concatenate([np.full(chunks, ends[0]), np.full(chunks, ends[1]), ts])
        mb, vb, mv, md, vd, mt = _paired_moments(env, bic, vcg, prior, jax.random.fold_in(key, i), i, at, inner, dtype)
        e = int(np.mean(mb[chunks : 2 * chunks]) < np.mean(mb[:chunks]))  # the end with the smaller U^bic
        sl = slice(e * chunks, (e + 1) * chunks)
        lowest[i] = ends[e]
        fees[i] = np.mean(mb[sl])
        fee_se[i] = math.sqrt((np.mean(vb[sl]) + np.var(mb[sl])) / (chunks * inner))
        # on the fee sample the fee mechanism's U(lo) = mean(u_bic) - fee is 0 by construction, U^VCG(lo) = mean(u_vcg)
        shifts[i] = (np.mean(mb[sl]) - fees[i]) - np.mean(mv[sl])
        taus[i] = np.mean(mt[sl]) - shifts[i]  # E[t''_i(lo_i, S)], for :func:`payment_anchored`
        k = 2 * chunks
        moments.append((ts, mb[k:], vb[k:], mv[k:], md[k:], vd[k:]))
    fee_mech = with_fees(bic, fees, name=f"{bic.name}+fees")
    tpp = with_fees(vcg, -shifts, name="thm4_ex_post(t'')")

    rows = []
    for i, (tsn, mb, vb, mv, md, vd) in enumerate(moments):
        u_fee, u_tpp = mb - fees[i], mv + shifts[i]
        diff = md - fees[i] - shifts[i]  # u_fee - u_tpp, paired
        total_se = np.sqrt(vd / inner + fee_se[i] ** 2)
        u_se = np.sqrt(vb / inner)
        z = np.abs(diff) / np.maximum(total_se, 1e-300)
        k = int(np.argmax(z))
        rows.append(
            {
                "agent": env.agent_names[i] if env.agent_names else f"agent{i}",
                "fee": float(fees[i]),
                "fee_se": float(fee_se[i]),
                "shift": float(shifts[i]),
                "lowest_type": float(lowest[i]),
                "lowest_type_minimizes": bool(u_fee[0 if lowest[i] == tsn[0] else -1] <= np.min(u_fee + 4 * u_se)),
                "max_abs_z": float(z[k]),
                "worst_type": float(tsn[k]),
                "diff_at_worst": float(diff[k]),
                "se_at_worst": float(total_se[k]),
                "curve": {"types": tsn.tolist(), "utility_fee": u_fee.tolist(), "utility_ex_post": u_tpp.tolist(),
                          "diff": diff.tolist(), "diff_se": total_se.tolist(), "utility_se": u_se.tolist()},
            }
        )  # fmt: skip
    report = {
        "bic_mechanism": bic.name,
        "fee_mechanism": fee_mech.name,
        "ex_post_mechanism": tpp.name,
        "types": types,
        "inner": inner,
        "fee_inner": chunks * inner,
        "fees_sum": float(np.sum(fees)),
        "fees_sum_se": float(math.sqrt(float(np.sum(fee_se**2)))),
        "lowest_types": lowest.tolist(),
        "lowest_type_payments": taus.tolist(),
        "agents": rows,
    }
    return tpp, fee_mech, report


def payment_anchored(
    env: Environment,
    mech: Mechanism,
    prior: priors.Prior,
    key: Array,
    *,
    inner: int = 65536,
    taus=None,
    lowest=None,
    dtype=jnp.float32,
) -> Mechanism:
    """Sec. 3.4's construction AS WRITTEN: ``t''_i(s_-i, lo_i) = E[t'_i(S_-i, lo_i)]`` for every ``s_-i``.

    ``t_i(s) = t'_i(s) - t'_i(lo_i, s_-i) + E[t'_i(lo_i, S_-i)]`` (a function of ``s_-i`` added: still ex post IC and
    interim-payoff-equivalent, independent signals). The text says this is ex post IR when ``lo_i`` is the lowest
    type; that needs the lowest type's VALUE ``v_i(f(lo_i, s_-i), lo_i, s_-i)`` constant in ``s_-i``. With
    interdependent values it is not, and the ex post utility at ``lo_i``, ``v_i(lo_i, s_-i) - E[t'_i(lo_i, S)]``,
    is negative wherever the lowest type's value is below its mean (:func:`thm4_construction` anchors the utility
    instead). ``lowest``: the lowest type of each agent (default ``env.lo``); ``inner`` draws estimate the constants
    ``E[t'_i(lo_i, S)]`` unless ``taus`` gives them.
    """
    n = env.n_agents
    lowest = np.asarray(env.lo if lowest is None else lowest, np.float64)
    if taus is not None:
        taus = np.asarray(taus, np.float64)
    else:
        taus = np.zeros(n)
        for i in range(n):
            sample = conditional_sampler(prior, i)
            lo = float(lowest[i])
            draw = jax.jit(lambda k, i=i, sample=sample, lo=lo: jax.vmap(lambda s: mech.pay(mech.params, s)[i])(
                sample(k, lo, inner, dtype)))  # fmt: skip
            taus[i] = float(np.mean(np.asarray(draw(jax.random.fold_in(key, i)), np.float64)))

    def pay(params, m):
        at_lo = [mech.pay(params, priors.replace_signal(m, env.dims, i, jnp.asarray(lowest[i : i + 1], m.dtype)))[i]
                 for i in range(n)]  # fmt: skip
        return mech.pay(params, m) - jnp.stack(at_lo) + jnp.asarray(taus, m.dtype)

    return Mechanism(f"{mech.name}, payment anchored", mech.decide, pay, mech.params, mech.kinks)


def ir_scan(env: Environment, mech: Mechanism, profiles: Array) -> dict:
    """Ex post IR on given profiles: per agent the largest violation ``max(0, -u_i)`` with its profile, ``P(u_i < 0)``."""
    u = np.asarray(
        jax.jit(jax.vmap(lambda s: env.value(mech.decide(mech.params, s), s) - mech.pay(mech.params, s)))(profiles),
        np.float64,
    )
    prof = np.asarray(profiles, np.float64)
    rows = []
    for i in range(env.n_agents):
        j = int(np.argmin(u[:, i]))
        p = float(np.mean(u[:, i] < -1e-6))
        rows.append({"max_violation": float(max(0.0, -u[j, i])), "at_profile": prof[j].tolist(), "p_violation": p,
                     "p_se": math.sqrt(p * (1 - p) / len(u))})  # fmt: skip
    return {"profiles": len(u), "agents": rows}


# --------------------------------------------------------------------------
# CE fn. 6: Crémer–McLean full surplus extraction with finitely many correlated types


def linear_auction_values(s: Array) -> Array:
    """``V_i = s_i + 0.5 sum_{j != i} s_j``: a single object with interdependent values (single crossing)."""
    return linear_public_values(0.5, s.shape[-1])(s)


def discretize_copula(prior: priors.Prior, k: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Two agents: types at the ``k`` marginal quantile midpoints, pmf proportional to the copula density there.

    Cells have equal marginal probability, so ``p[a, b] ~ c(u_a, u_b)`` (Gaussian copula density with the
    prior's correlation; 1 for an independent prior). Returns ``(types per agent, pmf (k, k))``.
    """
    if prior.dims != (1, 1):
        raise ValueError(f"Cremer-McLean: needs two agents with one-dimensional signals, got dims={list(prior.dims)}")
    u = (np.arange(k) + 0.5) / k
    types = [np.asarray(prior.marginals[j].ppf(jnp.asarray(u, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)),
                        np.float64) for j in range(2)]  # fmt: skip
    if prior.cholesky is None:
        return types, np.full((k, k), 1.0 / (k * k))
    rho = float((prior.cholesky @ prior.cholesky.T)[0, 1])
    from statistics import NormalDist

    z = np.array([NormalDist().inv_cdf(x) for x in u])
    z1, z2 = z[:, None], z[None, :]
    dens = np.exp(-(rho**2 * (z1**2 + z2**2) - 2 * rho * z1 * z2) / (2 * (1 - rho**2))) / math.sqrt(1 - rho**2)
    return types, dens / dens.sum()


class FiniteAuction(NamedTuple):
    """Every quantity of a two-bidder finite-type auction, indexed ``[a, b]`` = (bidder 0 type a, bidder 1 type b)."""

    types: tuple[np.ndarray, np.ndarray]  # (k,), (k,)
    pmf: np.ndarray  # (k, k)
    values: np.ndarray  # (k, k, 2): V_i at each profile
    alloc: np.ndarray  # (k, k, 2): who gets the object (efficient, ties to bidder 0)
    base_pay: np.ndarray  # (k, k, 2): pivot payments (ex post IC and IR)
    lottery: np.ndarray  # (2, k): bidder i's side bet as a function of the OTHER bidder's report
    pay: np.ndarray  # (k, k, 2): Cremer-McLean payments = base + lottery


def _finite_efficient(values: np.ndarray) -> np.ndarray:
    win0 = (values[..., 0] >= values[..., 1]) & (values[..., 0] > 0)
    win1 = (values[..., 1] > values[..., 0]) & (values[..., 1] > 0)
    return np.stack([win0, win1], -1).astype(np.float64)


def cremer_mclean(values: Callable[[Array], Array], types: list[np.ndarray], pmf: np.ndarray) -> FiniteAuction:
    """Crémer–McLean (1985) full-surplus extraction on a finite type grid (CE Sec. 3.4, fn. 6), exact.

    Base: the efficient allocation (highest ``V_i``) with pivot payments ``t_i = V_i(g_i(s_-i), s_-i)`` when ``i``
    wins, ``g_i`` the lowest type of ``i`` that still wins against ``s_-i``: ex post IC and ex post IR. Bidder ``i``'s
    interim rent ``R_i(s_i) = E[u_i | s_i]`` is taken back by a lottery ``l_i(s_-i)`` that depends only on the
    OTHER bidder's report, solving ``sum_{s_-i} p(s_-i | s_i) l_i(s_-i) = R_i(s_i)`` (full-rank beliefs: the
    prior's correlation). Since ``l_i`` does not move with ``i``'s own report, ex post IC is kept (CE Thm 3);
    every type's interim utility is 0 (interim IR, binding), so revenue = expected surplus — but the ex post
    utility ``u_i - l_i(s_-i)`` is negative at some profiles: NOT ex post IR. Raises ``ValueError`` when a
    belief matrix is singular (e.g. independent types: no full extraction).
    """
    k = len(types[0])
    grid = np.stack(np.meshgrid(types[0], types[1], indexing="ij"), -1)  # (k, k, 2)
    vals = np.asarray(jax.vmap(jax.vmap(values))(jnp.asarray(grid)), np.float64)
    alloc = _finite_efficient(vals)
    base = np.zeros_like(vals)
    for i in range(2):
        for b in range(k):
            for a in range(k):
                prof = (a, b) if i == 0 else (b, a)
                if alloc[prof][i] == 0:
                    continue
                wins = [alloc[(x, b) if i == 0 else (b, x)][i] > 0 for x in range(k)]
                g = wins.index(True)
                base[prof + (i,)] = vals[((g, b) if i == 0 else (b, g)) + (i,)]
    util = alloc * vals - base
    lottery = np.zeros((2, k))
    for i in range(2):
        joint = pmf if i == 0 else pmf.T  # [own, other]
        beliefs = joint / joint.sum(axis=1, keepdims=True)
        ui = util[..., 0] if i == 0 else util[..., 1].T  # [own, other]
        rent = np.sum(beliefs * ui, axis=1)
        rank = np.linalg.matrix_rank(beliefs, tol=1e-10)
        if rank < k:
            raise ValueError(
                f"Cremer-McLean: bidder {i}'s belief matrix p(s_-i | s_i) has rank {rank} < {k} types; full surplus "
                "extraction needs correlated (full-rank) beliefs"
            )
        lottery[i] = np.linalg.solve(beliefs, rent)
    pay = base.copy()
    pay[..., 0] += lottery[0][None, :]
    pay[..., 1] += lottery[1][:, None]
    return FiniteAuction((types[0], types[1]), pmf, vals, alloc, base, lottery, pay)


def finite_report(fa: FiniteAuction, *, tol: float = 1e-9) -> dict:
    """Exact enumeration: interim utilities, ex post regret over all misreports, ex post IR, revenue vs surplus."""
    k = len(fa.types[0])
    p = fa.pmf
    out = {"types": [t.tolist() for t in fa.types], "pmf": p.tolist(), "lottery": fa.lottery.tolist()}
    util = fa.alloc * fa.values - fa.pay  # truthful ex post utilities
    base_util = fa.alloc * fa.values - fa.base_pay
    regret_max, ir_rows, interim = [], [], []
    for i in range(2):
        ui = util[..., i]
        # bidder i of true profile (a, b) reports x instead: allocation / payment at the reported profile
        best = np.full((k, k), -np.inf)
        for x in range(k):
            rep_alloc = fa.alloc[x, :, 0] if i == 0 else fa.alloc[:, x, 1]
            rep_pay = fa.pay[x, :, 0] if i == 0 else fa.pay[:, x, 1]
            if i == 0:
                dev = rep_alloc[None, :] * fa.values[..., 0] - rep_pay[None, :]
            else:
                dev = rep_alloc[:, None] * fa.values[..., 1] - rep_pay[:, None]
            best = np.maximum(best, dev)
        regret_max.append(float(np.max(best - ui)))
        joint = p if i == 0 else p.T
        own_u = ui if i == 0 else ui.T
        own_base = base_util[..., i] if i == 0 else base_util[..., i].T
        marg = joint.sum(axis=1)
        interim.append({"utility": (np.sum(joint * own_u, 1) / marg).tolist(),
                        "base_utility": (np.sum(joint * own_base, 1) / marg).tolist()})  # fmt: skip
        a, b = np.unravel_index(int(np.argmin(ui)), ui.shape)
        ir_rows.append(
            {
                "min_utility": float(ui[a, b]),
                "at_profile": [float(fa.types[0][a]), float(fa.types[1][b])],
                "at_index": [int(a), int(b)],
                "p_violation": float(np.sum(p * (ui < -tol))),
                "expected_violation": float(np.sum(p * np.maximum(0.0, -ui))),
            }
        )
    surplus = float(np.sum(p * np.max(np.maximum(fa.values, 0.0), axis=-1)))
    out.update(
        {
            "regret_max": regret_max,
            "interim": interim,
            "interim_utility_max_abs": float(max(np.max(np.abs(r["utility"])) for r in interim)),
            "base_ir_min": float(np.min(base_util)),
            "ir": ir_rows,
            "expected_surplus": surplus,
            "expected_revenue": float(np.sum(p * fa.pay.sum(-1))),
            "base_expected_revenue": float(np.sum(p * fa.base_pay.sum(-1))),
        }
    )
    return out


def sampled_revenue(fa: FiniteAuction, key: Array, n: int) -> dict:
    """Monte Carlo check of the exact numbers: ``n`` profiles drawn from the pmf, revenue and bidder utilities ± SE."""
    k = len(fa.types[0])
    idx = np.asarray(jax.random.categorical(key, jnp.log(jnp.asarray(fa.pmf.reshape(-1))), shape=(n,)))
    a, b = idx // k, idx % k
    rev = fa.pay[a, b].sum(-1)
    util = fa.alloc[a, b] * fa.values[a, b] - fa.pay[a, b]

    def stat(x):
        return {"mean": float(np.mean(x)), "se": float(np.std(x, ddof=1) / math.sqrt(n))}

    return {"n": n, "revenue": stat(rev), "utility": [stat(util[:, i]) for i in range(2)],
            "p_ir_violation": [stat((util[:, i] < -1e-9).astype(float)) for i in range(2)]}  # fmt: skip


# --------------------------------------------------------------------------
# `jaxmech run` entry points (layer 7: they import the run layer when called)
