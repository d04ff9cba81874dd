"""Single-object design: reserve auctions, ex post IC by construction (CE Thm 2, B Sec. 2).

``reserve``: buyer ``i`` is *eligible* when ``s_i > r_i`` (its own reserve signal); the object goes to the eligible
buyer with the highest value ``V_i(s)`` when that value is positive (ties to the lowest index), else it is kept. It
is the efficient rule restricted to the eligible buyers. With values strictly increasing in the own signal and
single crossing (``V_i - V_j`` non-decreasing in ``s_i``), raising ``s_i`` never makes ``i`` lose, and nobody's
eligibility but ``i``'s depends on ``s_i``: the rule is monotone, so generalized VCG (pivot) payments with the lowest
type's IR binding make it ex post IC and IR (CE Sec. 3.3-3.4): the winner pays ``V_i(g_i(s_-i), s_-i)`` at its
pivot ``g_i = inf{x : i wins at (x, s_-i)}``, losers pay nothing. The seller has no cost, so every payment is
``>= 0`` and the budget (``sum t >= 0``) holds in every state: there is nothing to repair.

The objective is exact up to quadrature (:func:`reserve_objective`): for an independent prior, in quantile space,
``E[t_i] = E_{s_-i}[(1 - u_i*) V_i(g_i, s_-i)]`` with ``u_i* = F_i(g_i)`` found by bisection on the rule, and
``E[1{i wins} V_i] = E_{s_-i}[int_{u_i*}^1 V_i(F_i^-1(u), s_-i) du]``; the outer integral is composite
Gauss-Legendre over ``s_-i``, each coordinate split at the quantiles of every reserve (where eligibility jumps).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.core import priors
from jaxmech._src.core.environments import Environment
from jaxmech._src.core.mechanisms import Mechanism, bisect, pivot_payments
from jaxmech._src.models import conditions

Array = jax.Array


def is_single_object(env: Environment) -> bool:
    """``env`` is :func:`jaxmech._src.core.environments.single_object` (outcomes ``a0`` nobody, ``a_i`` buyer i)."""
    return env.outcome_names == tuple(f"a{i}" for i in range(env.n_agents + 1))


def reserve_rule(env: Environment) -> Callable[[Array, Array], Array]:
    """``decide(r, s) -> x``: the highest positive value among buyers with ``s_i > r_i`` wins (lowest index on ties)."""
    n = env.n_agents

    def decide(r, s):
        v = env.values(s)
        ok = (s > r.astype(s.dtype)) & (v > 0)
        masked = jnp.where(ok, v, -jnp.inf)
        win = jnp.argmax(masked)
        return jax.nn.one_hot(win, n, dtype=s.dtype) * jnp.any(ok).astype(s.dtype)

    return decide


def reserve_mechanism(env: Environment, r: Array) -> Mechanism:
    """The reserve rule with its generalized VCG payments (pivots by bisection on the rule): ex post IC and IR."""
    return pivot_payments(env, reserve_rule(env), params=jnp.asarray(r), name="reserve_auction")


def check_single_crossing(env: Environment, *, profiles: int = 32, points: int = 65) -> None:
    """Refuse (``ValueError`` with the library's witness) unless single crossing holds for the efficient rule among
    every pair of buyers (the reserve rule is the efficient rule restricted to the eligible buyers, so every subset
    must be monotone: pairs suffice, and with them the full set is checked too)."""
    n = env.n_agents
    eye = np.eye(n, dtype=np.float32)
    sets = [tuple(range(n))] + ([c for c in itertools.combinations(range(n), 2)] if n > 2 else [])
    for buyers in sets:
        outcomes = np.concatenate([np.zeros((1, n), np.float32), eye[list(buyers)]])
        chk = conditions.separable_single_crossing(env, jnp.asarray(outcomes), profiles=profiles, points=points)
        if not chk.holds:
            raise ValueError(
                "family reserve: the rule is monotone (ex post IC with pivot payments) only under single crossing "
                f"(CE Def 9: V_i - V_j non-decreasing in s_i), which fails among buyers {list(buyers)} on "
                f"{100 * chk.fail_share:.2g}% of the checked lines; witness {chk.witness}"
            )


def _segments(breaks: Array, panels: int, dtype) -> tuple[Array, Array]:
    """Composite 4-point Gauss-Legendre on ``[0, 1]`` split at the (unsorted) ``breaks``: ``panels`` per segment."""
    gx, gw = np.polynomial.legendre.leggauss(4)
    e = np.linspace(0.0, 1.0, panels + 1)
    mid, half = (e[:-1] + e[1:]) / 2, (e[1:] - e[:-1]) / 2
    x0 = jnp.asarray((mid[:, None] + half[:, None] * gx[None]).ravel(), dtype)
    w0 = jnp.asarray((half[:, None] * gw[None]).ravel(), dtype)
    b = jnp.concatenate([jnp.zeros((1,), dtype), jnp.sort(jnp.clip(breaks, 0.0, 1.0)), jnp.ones((1,), dtype)])
    a, c = b[:-1], b[1:]
    x = (a[:, None] + (c - a)[:, None] * x0[None]).ravel()
    w = ((c - a)[:, None] * w0[None]).ravel()
    return x, w


def reserve_objective(env: Environment, prior: priors.Prior, *, objective: str, revenue_weight: float,
                      panels: int, dtype, ppfs) -> Callable[[Array], Array]:  # fmt: skip
    """``r -> E[objective]`` of the reserve rule by quadrature (see the module docstring).

    A correlated prior (Gaussian copula) weights each point by its density in quantile space ``c(u)``
    (:func:`jaxmech._src.core.priors.copula_density`): ``E[t_i] = E_{u_-i}[V_i(g_i, s_-i) int_{u_i*}^1 c(u) du_i]`` and
    ``E[1{i wins} V_i] = E_{u_-i}[int_{u_i*}^1 V_i c(u) du_i]`` over the uniform cube, the inner integrals by 32-point
    composite Gauss-Legendre (8 for an independent prior, where ``c = 1`` and the payment's is exact).
    Returns the jitted function of ``r`` giving ``(objective, welfare, revenue)``."""
    n = env.n_agents
    decide = reserve_rule(env)
    steps = 40 if dtype == jnp.float64 else 30
    density = priors.copula_density(prior, dtype)
    inner = 2 if density is None else 8  # panels of the inner integral over [u_i*, 1]

    def cdf(i, x):  # the quantile of signal x of buyer i (bisection on the ppf)
        return bisect(lambda u: ppfs[i](u) > x, jnp.zeros((), dtype), jnp.ones((), dtype), steps)

    def per_buyer(r, i, u_others):
        def quantiles(u_i):
            return jnp.concatenate([u_others[:i], u_i[None], u_others[i:]])

        def at(u_i):
            u = quantiles(u_i)
            return jnp.stack([ppfs[k](u[k]) for k in range(n)]).astype(dtype)

        wins = lambda u_i: decide(r, at(u_i))[i] > 0  # noqa: E731 (monotone in u_i under single crossing)
        u_star = bisect(wins, jnp.zeros((), dtype), jnp.ones((), dtype), steps)  # 1: never wins
        x, w = _segments(jnp.zeros((0,), dtype), inner, dtype)
        us = u_star + (1.0 - u_star) * x
        c = jnp.ones_like(us) if density is None else jax.vmap(lambda z: density(quantiles(z)))(us)
        mass = (1.0 - u_star) * (1.0 if density is None else jnp.sum(w * c))  # P(i wins, u_-i) / du_-i
        pay = mass * env.values(at(u_star))[i]
        welfare = (1.0 - u_star) * jnp.sum(w * c * jax.vmap(lambda z: env.values(at(z))[i])(us))
        return jnp.stack([welfare, pay])

    def run(r):
        r = r.astype(dtype)
        total = jnp.zeros((2,), dtype)
        for i in range(n):
            others = [k for k in range(n) if k != i]
            axes = []
            for k in others:
                breaks = jnp.stack([cdf(k, r[j]) for j in range(n)])
                axes.append(_segments(breaks, panels, dtype))
            xs = jnp.stack([a.ravel() for a in jnp.meshgrid(*[a[0] for a in axes], indexing="ij")], -1)
            ws = _tensor_weights([a[1] for a in axes])
            vals = jax.lax.map(lambda u, i=i: per_buyer(r, i, u), xs, batch_size=4096)
            total = total + jnp.sum(ws[:, None] * vals, axis=0)
        welfare, revenue = total[0], total[1]
        obj = revenue if objective == "revenue" else welfare + revenue_weight * revenue
        return jnp.stack([obj, welfare, revenue])

    return jax.jit(run)


def _tensor_weights(weights: list[Array]) -> Array:
    """The tensor product of per-axis weights, flattened in ``meshgrid(..., indexing="ij")`` order."""
    out = weights[0]
    for w in weights[1:]:
        out = (out[:, None] * w[None, :]).ravel()
    return out
