"""Layer 3 — provision rules for a public good (CE Sec. 5) and their generalized VCG payments.

A provision rule maps reports to ``f(m) in {0, 1}``. With values weakly
increasing in all signals the efficient rule is monotone (CE Thm 7). The
threshold contribution rule with pivotal valuations ``vbar`` (CE Def 12)
provides iff ``v_i(m) >= vbar_i`` for every ``i``; its generalized VCG payment
is ``t_i(m) = inf{v_i(x, m_-i) : f(x, m_-i) = 1}`` (CE Thm 9's proof), i.e.
``v_i`` at agent ``i``'s pivot ``x_i^* = max_j x_j``, where ``x_j`` solves
``v_j(x, m_-i) = vbar_j`` in agent ``i``'s own signal ``x``.

The pivots are found by bisection and then get one Newton step whose value is
(numerically) zero but whose derivative is the implicit-function derivative
``dx_j / d vbar_j = 1 / (d v_j / d x)``: payments are differentiable in
``vbar``, so search (layer 6) can put gradients through budget constraints.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxmech._src.core import priors
from jaxmech._src.core.environments import Environment
from jaxmech._src.core.mechanisms import Mechanism, bisect, bisection_steps, pivot_payments

Array = jax.Array


def check_public_good(env: Environment, who: str) -> None:
    if not env.is_separable or any(d != 1 for d in env.dims) or env.outcome_names != ("not_provided", "provided"):
        raise ValueError(f"{who}: needs a public-good environment (CE Sec. 5), got {env.name!r}")


def threshold_rule(env: Environment) -> Callable[[Array, Array], Array]:
    """CE Def 12: ``decide(vbar, m) = 1[v_i(m) >= vbar_i for all i]`` (``params`` are the pivotal valuations)."""

    def decide(vbar, m):
        return jnp.all(env.values(m) >= jnp.asarray(vbar, m.dtype)).astype(m.dtype)

    return decide


def threshold_pivot(env: Environment, vbar: Array, m: Array, i: int) -> Array:
    """Agent ``i``'s pivot ``inf{x : v_j(x, m_-i) >= vbar_j for all j}``, differentiable in ``vbar``.

    Each ``v_j`` weakly increases in ``x``, so the set is an interval ``[x^*, 1]``
    with ``x^* = max_j x_j``. One bisection on "every ``j`` is satisfied" finds
    ``x^*`` (``n`` values per step, not ``n^2`` as per-``j`` roots would need);
    then one Newton step on the binding ``v_j(x) - vbar_j`` (the ``j`` with the
    smallest linearized distance ``(v_j(x) - vbar_j) / v_j'(x)``, i.e. the
    largest root) with the value held fixed (``stop_gradient``) carries the
    implicit derivative ``dx^*/dvbar_j = 1 / v_j'(x^*)``.
    Returns 1 when no ``x`` provides (the pivot is then irrelevant).
    """
    vbar = jnp.asarray(vbar, m.dtype)
    lo, hi = jnp.zeros((), m.dtype), jnp.ones((), m.dtype)

    def v_at(x):
        return env.values(priors.replace_signal(m, env.dims, i, x[None]))

    fixed = jax.lax.stop_gradient(vbar)
    x = jax.lax.stop_gradient(bisect(lambda z: jnp.all(v_at(z) >= fixed), lo, hi, bisection_steps(m.dtype)))
    v, slope = jax.jvp(v_at, (x,), (jnp.ones_like(x),))  # every v_j and v_j' at x in one pass
    gap = v - vbar
    rising = slope > 0
    j = jnp.argmin(jnp.where(rising, jax.lax.stop_gradient(gap) / jnp.where(rising, slope, 1.0), jnp.inf))
    interior = (x > lo) & (x < hi) & rising[j]
    step = gap[j] / jnp.where(interior, slope[j], 1.0)
    # the step's value is ~0 (x is the root); its derivative is d x / d vbar_j
    return jnp.where(interior, x - (step - jax.lax.stop_gradient(step)), x)


def threshold_contribution(env: Environment, vbar, *, name: str | None = None) -> Mechanism:
    """The threshold contribution rule (CE Def 12) with its generalized VCG payments (CE Thm 9's proof).

    ``params`` = ``vbar`` (shape ``(n,)``): search may move it. Payments
    ``t_i = v_i(x_i^*, m_-i)`` when provided, 0 otherwise; the pivots are exposed
    to the audit as kinks. Budget balanced in every provided state when
    ``sum_i vbar_i >= c`` (each ``t_i >= vbar_i``); Thm 9: with increasing
    differences the undominated budget-balanced rules are those with
    ``sum vbar = c`` and a profile ``sbar`` with ``v(sbar) = vbar``.
    """
    check_public_good(env, "threshold_contribution")
    vbar = jnp.asarray(vbar, jnp.float32 if not jax.config.jax_enable_x64 else jnp.float64)
    if vbar.shape != (env.n_agents,):
        raise ValueError(f"threshold_contribution: need {env.n_agents} pivotal valuations, got shape {vbar.shape}")
    label = name or "threshold_contribution(" + ", ".join(f"{float(v):.4g}" for v in vbar) + ")"
    return pivot_payments(
        env, threshold_rule(env), params=vbar, pivot=lambda p, m, i: threshold_pivot(env, p, m, i), name=label
    )


def threshold_payments(env: Environment, vbar: Array, m: Array) -> Array:
    """Generalized VCG payments of the threshold rule at ``m`` (provided or not), differentiable in ``vbar``.

    ``t_i = v_i(x_i^*, m_-i)``: what agent ``i`` pays if the project is provided.
    """
    return jnp.stack(
        [
            env.values(priors.replace_signal(m, env.dims, i, threshold_pivot(env, vbar, m, i)[None]))[i]
            for i in range(env.n_agents)
        ]
    )


def budget_line_point(env: Environment, sbar: Array) -> Array:
    """``vbar = v(sbar)`` (CE Thm 9 condition 2): the pivotal valuations through the boundary profile ``sbar``."""
    return env.values(jnp.asarray(sbar))


def equal_shares(env: Environment, *, name: str = "equal_shares") -> Mechanism:
    """The efficient rule with equal cost shares ``t_i = c / n`` when provided: exactly budget balanced.

    Under pure common values (CE Def 11) every agent's own preference over
    provision agrees with efficiency (provide iff ``v(s) > c / n``), so this
    mechanism is ex post IC and IR and exactly budget balanced: CE Thm 8(3).
    The *generalized VCG* payments of the same rule are not: ``t_i = v_i`` at
    agent ``i``'s pivot exceeds ``c / n`` wherever the project is provided even
    at ``s_i = 0`` (e.g. ``v_i = s_1 + s_2``, ``c = 1``, ``s = (0.9, 0.9)``:
    ``t = (0.9, 0.9)``, a surplus of 0.8), so Thm 8(3) needs these payments.
    Outside common values the audit shows the regret of this mechanism.
    """
    check_public_good(env, "equal_shares")
    n = env.n_agents
    c = env.cost(jnp.ones(()))

    def decide(params, m):
        del params
        return env.efficient(m)

    def pay(params, m):
        return jnp.full((n,), c / n, m.dtype) * decide(params, m)

    return Mechanism(name, decide, pay)
