"""Virtual-surplus rules: the best ex post IC and IR mechanisms under an EX ANTE budget (independent priors).

In a separable two-outcome environment with one-dimensional signals (bilateral trade, CE Sec. 4; a public good,
CE Sec. 5) let ``G_i(s) = (h_i(1) - h_i(0)) V_i(s)`` be agent ``i``'s worth of the outcome and ``sigma_i`` the
direction in which it rises with the own signal (``+1`` a buyer or contributor, ``-1`` a seller). For a rule ``q``
monotone in every own signal in that direction, ex post IC pins each agent's utility down up to its lowest type's
(CE Thm 2-3): ``U_i(s) = U_i(lowest, s_-i) + int q d_i G_i`` along the own signal. With the signals independent,
taking the expectation over ``s_i`` first gives the expected payments (the interdependent-values form of Myerson
1981 and Myerson & Satterthwaite 1983, eq. (3))::

    E[t_i] = E[q J_i] - E[U_i(lowest, s_-i)],   J_i(s) = G_i(s) - sigma_i H_i(s_i) d_i G_i(s),

with ``H_i = (1 - F_i) / f_i`` where ``sigma_i = +1`` and ``F_i / f_i`` where ``sigma_i = -1``. Generalized VCG
(pivot) payments set every lowest type's utility to 0 (ex post IR binding, CE Sec. 3.4), so
``E[deficit] = -E[q J]`` with the *virtual surplus* ``J = sum_i J_i - (c(1) - c(0))``. Maximizing
``E[q (w + rho J)]`` (welfare ``w``, ``rho`` the revenue weight) subject to ``E[q J] >= 0`` (in expectation) by
maximizing its Lagrangian state by state gives::

    q(s) = 1{(1 - alpha) w(s) + alpha J(s) > 0},   alpha = (rho + mu) / (1 + rho + mu),

``mu >= 0`` the budget's multiplier (``alpha = 1``: the revenue objective, ``q = 1{J > 0}``). Where that rule is
monotone (a regular prior; checked on a grid) it is optimal among ALL ex post IC and IR mechanisms, randomized
ones included, whose expected deficit is ``<= 0``: every such mechanism's objective is at most the Lagrangian,
which the rule maximizes state by state. Assumed: independent signals, the prior's support equal to the
environment's (the pivots make the environment's lowest type's IR bind), a status quo worth nothing and costing
nothing (``h_i(0) = 0``, ``c(0) = 0``), and a tie set ``{(1 - alpha) w + alpha J = 0}`` of probability 0 (else
the best rule randomizes on it and ``E[q_alpha J]`` jumps over 0 at ``alpha``); the design checks the first three. Private trade with uniform signals: trade iff ``s_beta - s_sigma >= 1/4``,
welfare 9/64 (Chatterjee & Samuelson's linear equilibrium, Myerson & Satterthwaite's bound), above the 1/8 of the
best posted price, which an ex post budget forces.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc
from jax.scipy.stats import beta as beta_dist

from jaxmech._src.core import priors
from jaxmech._src.core.audit import grid_points
from jaxmech._src.core.environments import Environment
from jaxmech._src.core.mechanisms import Mechanism, pivot_payments

Array = jax.Array

MIN_DENSITY = 1e-9  # where a density vanishes (a Beta's end) the hazard term is large and finite, never inf * 0


def cdf_and_density(m: priors.Marginal, x: Array) -> tuple[Array, Array]:
    """``(F(x), f(x))`` of a :class:`~jaxmech._src.core.priors.Uniform` or :class:`~jaxmech._src.core.priors.Beta`
    marginal (its scaled support)."""
    width = m.hi - m.lo
    z = jnp.clip((x - m.lo) / width, 0.0, 1.0)
    if isinstance(m, priors.Uniform):
        return z, jnp.full_like(z, 1.0 / width)
    if isinstance(m, priors.Beta):
        return betainc(m.a, m.b, z).astype(z.dtype), (beta_dist.pdf(z, m.a, m.b) / width).astype(z.dtype)
    raise ValueError(f"virtual surplus: needs Uniform or Beta marginals, got {type(m).__name__}")  # pragma: no cover


def directions(env: Environment) -> np.ndarray:
    """``sigma_i``: ``+1`` where agent ``i``'s worth of the outcome ``h_i(1) V_i`` rises with its own signal (a buyer,
    a contributor), ``-1`` where it falls (a seller): the direction a monotone rule must respect (CE Def 8, 10)."""
    h = np.asarray(env.weights(jnp.ones((), jnp.float32)), np.float64)
    return np.where(h >= 0, 1.0, -1.0)


def gains(env: Environment, s: Array) -> Array:
    """``G_i(s) = (h_i(1) - h_i(0)) V_i(s)``: each agent's worth of the outcome at ``s``."""
    one, zero = jnp.ones((), s.dtype), jnp.zeros((), s.dtype)
    return (env.weights(one) - env.weights(zero)) * env.values(s)


def welfare_gain(env: Environment, s: Array) -> Array:
    """``w(s) = W(1, s) - W(0, s)``: the outcome's gain in welfare (values less the cost)."""
    return env.welfare(jnp.ones((), s.dtype), s) - env.welfare(jnp.zeros((), s.dtype), s)


def virtual_surplus(env: Environment, prior: priors.Prior, s: Array) -> Array:
    """``J(s) = sum_i (G_i - sigma_i H_i d_i G_i) - (c(1) - c(0))``: the outcome's expected revenue density (module
    docstring), so that ``E[deficit] = -E[q J]`` for a monotone rule with pivot payments."""
    one, zero = jnp.ones((), s.dtype), jnp.zeros((), s.dtype)
    sign = jnp.where(env.weights(one) - env.weights(zero) >= 0, 1.0, -1.0).astype(s.dtype)  # traced: no numpy
    d_own = jnp.diagonal(jax.jacfwd(lambda x: gains(env, x))(s))
    hazard = []
    for i, m in enumerate(prior.marginals):
        f_cdf, f_pdf = cdf_and_density(m, s[i])
        tail = jnp.where(sign[i] > 0, 1.0 - f_cdf, f_cdf)
        hazard.append(tail / jnp.maximum(f_pdf, MIN_DENSITY))
    hazard = jnp.stack(hazard).astype(s.dtype)
    dc = env.cost(one) - env.cost(zero)
    return jnp.sum(gains(env, s) - sign * hazard * d_own) - dc


def virtual_rule(env: Environment, prior: priors.Prior):
    """``decide(alpha, s) -> q``: the outcome iff ``(1 - alpha) w(s) + alpha J(s) > 0`` (``alpha`` in ``[0, 1]``)."""

    def decide(alpha, s):
        alpha = jnp.asarray(alpha, s.dtype)
        score = (1.0 - alpha) * welfare_gain(env, s) + alpha * virtual_surplus(env, prior, s)
        return (score > 0).astype(s.dtype)  # strict: a tie at the support's edge (J = w = 0) does not trade

    return decide


def virtual_mechanism(env: Environment, prior: priors.Prior, alpha) -> Mechanism:
    """The virtual-surplus rule at ``alpha`` with generalized VCG (pivot) payments, the lowest type's IR binding
    (CE eqs. (5)-(6), Sec. 3.4): ex post IC and IR where the rule is monotone (:func:`monotone_witness`)."""
    return pivot_payments(env, virtual_rule(env, prior), params=jnp.asarray(alpha), name="virtual_surplus")


def monotone_witness(env: Environment, prior: priors.Prior, alpha: float, points: int | None = None) -> str | None:
    """Where the rule at ``alpha`` fails to be monotone in an own signal (in the direction the environment needs)
    on a ``points``-per-coordinate support grid: a description of the first such pair of profiles, else None."""
    n = env.n_agents
    points = points or max(9, int(round(4225 ** (1.0 / n))))  # 65 x 65 for two agents
    lo, hi = np.asarray(prior.lo, np.float64), np.asarray(prior.hi, np.float64)
    g = grid_points(lo, hi, points, points**n)
    decide = virtual_rule(env, prior)
    q = np.asarray(jax.jit(jax.vmap(lambda s: decide(alpha, s)))(jnp.asarray(g, jnp.float32)))
    q = q.reshape((points,) * n)
    sign = directions(env)
    for i in range(n):
        step = np.diff(q, axis=i) * sign[i]  # must be >= 0 along the own signal
        bad = np.argwhere(step < 0)
        if len(bad):
            idx = tuple(bad[0])
            a = np.array([lo[k] + (hi[k] - lo[k]) * idx[k] / (points - 1) for k in range(n)])
            b = a.copy()
            b[i] += (hi[i] - lo[i]) / (points - 1)
            return (f"at alpha = {alpha:.6g} the rule gives q = {q[idx]:g} at s = {np.round(a, 4).tolist()} and "
                    f"{q[tuple(np.add(idx, np.eye(n, dtype=int)[i]))]:g} at s = {np.round(b, 4).tolist()} (agent {i}'s "
                    f"own signal up)")  # fmt: skip
    return None
