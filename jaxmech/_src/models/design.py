"""Design: the best ex post IC and IR mechanism for the user's model, found without knowing the answer.

:func:`design` searches a family of rules that are ex post IC by construction (monotone in each agent's own signal
in the direction single crossing requires, paid by generalized VCG / envelope payments with the lowest type's IR
binding: CE Thm 2, CE Sec. 3.3-3.4) and reports how sure it is:

1. **Cold starts.** ``starts`` initial parameters drawn from an explicit PRNG key (continuous draws, so never a
   known optimum), searched together (vmapped) by one compiled loop: optax Adam on the annealed relaxation
   (sigmoid temperature ``temperature_start -> temperature_end``) under an augmented Lagrangian for the budget
   (ex post: a soft maximum of the deficit over the batch and a support grid; ex ante: its mean).
2. **Exact repair.** Each start's rule is moved onto the budget boundary by a scalar shift found by bisection
   over ``[-span, span]``, so it moves down (more trade / provision) as readily as up: the largest shift whose
   exact budget statistic (the worst deficit over fresh profiles, a support grid and, for posted cutoffs, the
   trade box's own grid; ex ante: the mean deficit) is ``<= 0``. Threshold rules (CE Def 12) need no bisection:
   their payments satisfy ``t_i >= vbar_i`` with equality at the boundary profile, so the worst deficit is
   ``c - sum vbar`` and the repair is ``vbar + (c - sum vbar) / n``: ON the budget line (CE Thm 9).
3. **Polish** (low-dimensional deterministic families: posted cutoffs, thresholds). The repaired rule's objective
   is computed by deterministic nested quadrature in quantile space (every monotone region is
   ``{u_k >= tau(u_<k)}`` in each coordinate, the entry point and ``tau`` found by bisection), and Nelder-Mead moves
   along the budget boundary (threshold rules: ``sum vbar = c`` exactly; posted cutoffs: repaired at every step)
   to a tolerance of 1e-6. Monte Carlo alone cannot place an optimum to 1e-3: with ``N`` profiles the argmax of a
   discontinuous rule's sample welfare wanders like ``N^(-1/3)``. Randomized rules (a trade box times a monotone band): for each box the best
   band is an exact LP (:func:`band_program`: everything is linear in the band's knot values), Nelder-Mead moves
   the box, and the exact repair shrinks it onto the budget boundary; their objective is computed by quadrature.
4. **Exact audit** of the chosen rule (:func:`jaxmech._src.core.engine.audit`: regret, IR and deficit over sampled
   profiles and misreports) and a support-grid check (deficit, IR and regret against an own-signal grid at every
   grid profile); the objective on fresh profiles with its standard error; the spread across starts.
5. **Reference** (``reference=True``): the finite-type LP (:func:`jaxmech._src.models.lp_reference.lp_reference`)
   per grid, its ``1/G`` limit and the gap; a flag where the design is more than 1% below the limit.

Families: bilateral trade (CE Sec. 4): ``two_price`` (trade iff ``s_beta > x`` and ``s_sigma < y``; posted prices
are ``x = y`` under private values), ``randomized`` (:mod:`jaxmech._src.models.randomized`), ``cutoff`` (monotone
piecewise-linear cutoff curves, :func:`jaxmech._src.models.families.trade_cutoff_family`). Public goods with
``n >= 2`` (CE Sec. 5): ``threshold`` (CE Def 12, Thm 9; needs values weakly increasing in every signal),
``posted`` (provide iff every ``s_i > p_i``: monotone whatever the sign of the interdependence), ``boundary``
(two agents, monotone piecewise-linear boundary, :func:`jaxmech._src.models.families.provision_boundary_family`).
A single object with ``n >= 2`` buyers (B Sec. 2): ``reserve`` (:mod:`jaxmech._src.models.auction`: the highest
value among buyers with ``s_i > r_i`` wins, pivot payments; needs single crossing). Its payments are ``>= 0`` and
the seller has no cost, so the budget holds in every state and steps 2-3 become Nelder-Mead from each cold start on
the exact quadrature objective (:func:`design_reserve`).

Ex ante budgets (``E[deficit] <= 0``), independent priors: ``virtual`` (:mod:`jaxmech._src.models.virtual`), the
virtual-surplus rule ``1{(1 - alpha) w + alpha J > 0}`` with pivot payments, ``alpha`` set by bisection so that the
expected deficit ``-E[q J]`` is 0 (or ``rho / (1 + rho)`` where a revenue weight ``rho`` leaves budget slack; 1 for
revenue): where it is monotone (checked on a grid) it is the best ex post IC and IR mechanism of all, randomized ones
included (Myerson & Satterthwaite 1983; :func:`design_virtual`). It is the default family under an ex ante budget.

Correlated priors (a Gaussian copula): the search, the repair, the Monte Carlo evaluation and the audit only sample
the prior; the quadrature (the polish of posted cutoffs and thresholds, the reserve family's objective) integrates
in quantile space weighted by the copula's density (:func:`jaxmech._src.core.priors.copula_density`); the families
without a quadrature path under a copula (``randomized``: its band LP assumes independence; ``cutoff``,
``boundary``) are chosen and reported by their Monte Carlo objective with its standard error; the LP reference
weights each grid profile by its cell's probability under the copula
(:func:`jaxmech._src.models.lp_reference.grid_weights`).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmech._src.core import audit as audit_lib
from jaxmech._src.core import engine, priors
from jaxmech._src.core.compile_options import FULL_OPTIMIZATION, supported
from jaxmech._src.core.environments import Environment, check_own_monotone
from jaxmech._src.core.mechanisms import Mechanism, bisect, decide_and_pay, pivot_payments
from jaxmech._src.core.search import Family, SearchConfig, make_optimizer, soft_max, support_grid
from jaxmech._src.models import auction, randomized, randomized_public, virtual
from jaxmech._src.models import families as fam
from jaxmech._src.models import lp_reference as lp

Array = jax.Array
Params = Any

TRADE = ("no_trade", "trade")
PUBLIC = ("not_provided", "provided")
FAMILIES = {
    TRADE: ("two_price", "randomized", "cutoff", "virtual"),
    PUBLIC: ("threshold", "posted", "boundary", "randomized", "virtual"),
}
EX_ANTE_ONLY = ("virtual",)  # families whose rule is set by the expected deficit (independent priors)
SEARCHED_UNDER_EX_ANTE = tuple(f for fs in FAMILIES.values() for f in fs if f not in EX_ANTE_ONLY)
SINGLE_OBJECT = ("reserve",)  # single-object environments (outcomes a0, a1, ..., an), any number of buyers
OBJECTIVES = ("welfare", "revenue")
BUDGETS = ("ex_post", "ex_ante")
POLISHED = ("two_price", "posted", "threshold")
CURVES = ("cutoff", "boundary")  # monotone piecewise-linear curves: polished over their knots (independent priors)
QUADRATURE = (*POLISHED, "randomized", *CURVES)  # objective by quadrature (the others: independent priors only)
REPAIR_TOL = 1e-7  # the repaired rule's worst (or mean) deficit is <= this: float32 rounding of values of order 1
_GL_X, _GL_W = np.polynomial.legendre.leggauss(4)


class DesignResult(NamedTuple):
    """What :func:`design` found and how sure it is (``to_json()``: JSON-ready).

    Attributes:
      environment, family, objective_name, budget: what was designed.
      params: the chosen rule's parameters (a pytree); ``description``: them as JSON numbers.
      mechanism: the chosen rule as a :class:`~jaxmech._src.core.mechanisms.Mechanism` (jit-able).
      objective, welfare, revenue: ``{"mean", "se", "profiles"}`` on fresh profiles (revenue = ``-deficit``).
      exact: the objective by quadrature (``{"value", "error"}``: the change from halving the panels), or None.
      starts: per start: its cold parameters, the repaired (and polished) ones, the repair's shift, the objective.
        A start whose search diverged (non-finite parameters) has ``feasible`` false and ``diverged`` true.
      spread: the per-start objectives' ``min``, ``max``, ``std``.
      precision: how precisely the design is pinned down: low-dimensional (polished) families, the parameters'
        spread across the starts at the best value and the optimizer's tolerance; the others, the spread of the
        decision rules of the starts within 0.1% of the best value on a support grid (:func:`decision_spread`).
      audit: the exact audit's summary (sampled profiles) and the support-grid check (``None``: not run).
      reference: LP values per grid, the ``1/G`` limit, the gap and ``below_reference`` (more than 1% below), or None.
      seconds: wall time of each stage.
    """

    environment: str
    family: str
    objective_name: str
    budget: str
    params: Params
    description: dict
    mechanism: Mechanism
    objective: dict
    welfare: dict
    revenue: dict
    exact: dict | None
    starts: tuple[dict, ...]
    spread: dict
    precision: dict
    audit: dict | None
    reference: dict | None
    seconds: dict

    @property
    def value(self) -> float:
        """The design's objective: the quadrature value where there is one, else the Monte Carlo mean."""
        return self.exact["value"] if self.exact is not None else self.objective["mean"]

    def to_json(self) -> dict:
        return {
            "environment": self.environment,
            "family": self.family,
            "objective_name": self.objective_name,
            "budget": self.budget,
            "description": self.description,
            "value": self.value,
            "objective": self.objective,
            "welfare": self.welfare,
            "revenue": self.revenue,
            "exact": self.exact,
            "starts": list(self.starts),
            "spread": self.spread,
            "precision": self.precision,
            "audit": self.audit,
            "reference": self.reference,
            "seconds": self.seconds,
        }


class Spec(NamedTuple):
    """One design family: the search family plus what the design pipeline needs around it.

    ``cold(key) -> params``: a cold start; ``shift(params, delta)``: the repair's scalar move (``delta > 0``: more
    trade / provision); ``span``: the bisection's range of ``delta``; ``hard_q(params, s)``: the outcome of the hard
    rule; ``expected_payments``: payments are owed whatever the outcome (randomized rules) rather than if it
    happens; ``box``: ``box(params) -> (lo, hi)`` of posted cutoffs (the region whose own grid the repair checks),
    or None; ``closed_repair``: an exact repair in closed form, or None; ``polish_dim``: free coordinates of the
    polish (0: none); ``to_free`` / ``from_free``: those coordinates; ``points(params) -> (m, n)``: states where the
    ex post budget may bind along whole edges (randomized rules), each with its own multiplier in the search;
    ``check_points(params, states) -> states'``: the states where the repair checks an ex post budget, given the
    sampled and support-grid states (a value box adds its edges), or None (those states as they are).
    """

    family: Family
    cold: Callable[[Array], Params]
    shift: Callable[[Params, Array], Params]
    span: float
    hard_q: Callable[[Params, Array], Array]
    expected_payments: bool = False
    box: Callable[[Params], tuple[Array, Array]] | None = None
    closed_repair: Callable[[Params], Params] | None = None
    polish_dim: int = 0
    to_free: Callable[[np.ndarray], np.ndarray] | None = None
    from_free: Callable[[np.ndarray], np.ndarray] | None = None
    points: Callable[[Params], Array] | None = None
    check_points: Callable[[Params, Array], Array] | None = None


# --------------------------------------------------------------------------
# conditions


def _compiled():
    """``jax.jit`` with full optimization: the design's kernels run long (search, quadrature), so they are compiled
    optimized even where the process compiles fast by default (``reproduce --quick``)."""
    return functools.partial(jax.jit, compiler_options=supported(FULL_OPTIMIZATION))


directions = virtual.directions  # +1 / -1: the direction a monotone rule must respect in each own signal


def check_environment(env: Environment, prior: priors.Prior, family: str) -> None:
    """Refuse (``ValueError`` with the reason and a witness) what :func:`design` cannot design for.

    Needs a separable two-outcome environment with one-dimensional signals (bilateral trade, CE Sec. 4, or a public
    good, CE Sec. 5), values strictly increasing in the own signal (CE Def 6: else no monotone rule is ex post IC
    with these payments), a prior over the same signals, and a family of that environment; threshold rules
    (CE Def 12) are monotone only when every value weakly increases in every signal (CE Sec. 5), checked on a grid.
    A single object (B Sec. 2) needs single crossing among its buyers
    (:func:`jaxmech._src.models.auction.check_single_crossing`). Any prior over the signals, correlated (a Gaussian
    copula) included: its quadrature is weighted by the copula's density.
    """
    check_support(env, prior)
    if env.is_separable and all(d == 1 for d in env.dims) and auction.is_single_object(env):
        if tuple(prior.dims) != tuple(env.dims):
            raise ValueError(f"design: the prior's dims {list(prior.dims)} differ from the environment's "
                             f"{list(env.dims)}")  # fmt: skip
        if family not in SINGLE_OBJECT:
            raise ValueError(f"family: {family!r} is not a family of {env.name!r}; choose one of "
                             f"{', '.join(SINGLE_OBJECT)}")  # fmt: skip
        check_own_monotone(env.values, env.dims, env.lo, env.hi)
        auction.check_single_crossing(env)
        return
    if not env.is_separable or any(d != 1 for d in env.dims) or env.outcome_names not in FAMILIES:
        raise ValueError(
            "design: needs a separable environment with one-dimensional signals (bilateral trade, CE Sec. 4, a "
            f"public good, CE Sec. 5, or a single object, B Sec. 2), got {env.name!r} with outcomes "
            f"{env.outcome_names} and dims {list(env.dims)}"
        )
    if tuple(prior.dims) != tuple(env.dims):
        raise ValueError(f"design: the prior's dims {list(prior.dims)} differ from the environment's {list(env.dims)}")
    names = FAMILIES[env.outcome_names]
    if family not in names:
        raise ValueError(f"family: {family!r} is not a family of {env.name!r}; choose one of {', '.join(names)}")
    check_own_monotone(env.values, env.dims, env.lo, env.hi)
    if family == "threshold":
        witness = falling_value(env)
        if witness is not None:
            raise ValueError(
                f"family threshold: CE Def 12 rules are monotone (ex post IC) only when every value weakly "
                f"increases in every signal (CE Sec. 5), but {witness}; use family 'posted' or 'boundary'"
            )
    if family in EX_ANTE_ONLY and prior.cholesky is not None:
        raise ValueError(
            f"family {family}: needs independent signals (the expected payment E[t_i] = E[q J_i] integrates each "
            "own signal against its own marginal, independent of the others'); under a correlated prior use "
            "family 'randomized' or a deterministic family"
        )
    if family in EX_ANTE_ONLY:
        check_support(env, prior, family=family)
        zero = jnp.zeros((), jnp.float32)
        if np.any(np.asarray(env.weights(zero)) != 0) or float(env.cost(zero)) != 0.0:
            raise ValueError(
                f"family {family}: needs the status quo to be worth nothing to everyone and to cost nothing "
                "(h_i(0) = 0, c(0) = 0: the virtual surplus is that of the outcome against it)"
            )


def check_support(env: Environment, prior: priors.Prior, family: str | None = None) -> None:
    """Refuse a prior whose support leaves the environment's: the families' pivots, boxes and grids live on the
    environment's support (a seller's signal above its top would be paid as at the top: a private-trade design
    under Uniform[0, 2] signals reported 0.28125, above the true 0.25, with a deficit of 1 and IR violated).
    ``family`` (one of :data:`EX_ANTE_ONLY`): the supports must be equal, not only nested."""
    if len(prior.lo) != len(env.lo):
        return  # the dims check names it
    lo, hi = np.asarray(prior.lo, np.float64), np.asarray(prior.hi, np.float64)
    elo, ehi = np.asarray(env.lo, np.float64), np.asarray(env.hi, np.float64)
    if family is None:
        bad = np.flatnonzero((lo < elo - 1e-12) | (hi > ehi + 1e-12))
    else:
        bad = np.flatnonzero((np.abs(lo - elo) > 1e-6) | (np.abs(hi - ehi) > 1e-6))
    if len(bad):
        i = int(bad[0])
        if family is not None:
            raise ValueError(
                f"family {family}: needs the prior's support to be the environment's (the pivot payments make the "
                f"environment's lowest type's IR bind, the virtual surplus the prior's), got signal {i} on "
                f"[{lo[i]:g}, {hi[i]:g}] against [{elo[i]:g}, {ehi[i]:g}]"
            )
        raise ValueError(
            f"design: the prior's support of signal {i}, [{lo[i]:g}, {hi[i]:g}], leaves the environment's "
            f"[{elo[i]:g}, {ehi[i]:g}] (the families' pivots, boxes and grids live on the environment's support); "
            "rescale the signals onto it (the values as functions of the rescaled signals) or give the prior a "
            "support inside it"
        )


def falling_value(env: Environment) -> str | None:
    """Where some value falls in some signal on a ``G^n`` grid of the support (``G`` = 65, 33, 17 for two, three,
    more agents): the witness ``"V_i falls in s_j: V_i(s) = .. > V_i(s') = .."`` (steps of ``1/(G - 1)`` of the
    support), else ``None`` (every value weakly increases in every signal, CE Sec. 5: threshold rules, CE Def 12, are
    monotone, and so is the randomized family's value box). A grid of 17 missed a value with a wiggle of period 1/16
    in the other's signal, ``0.03 sin(32 pi s_j)``, whose threshold design then had regret 1."""
    n = env.n_agents
    g = {1: 65, 2: 65, 3: 33}.get(n, 17)
    lo, hi = np.asarray(env.lo, np.float64), np.asarray(env.hi, np.float64)
    base = audit_lib.grid_points(lo, hi, g, g**n)
    vals = jax.jit(jax.vmap(env.values))
    v0 = np.asarray(vals(jnp.asarray(base, jnp.float32)), np.float64)
    for j in range(n):
        up = base.copy()
        up[:, j] = np.minimum(up[:, j] + (hi[j] - lo[j]) / (g - 1), hi[j])
        dv = np.asarray(vals(jnp.asarray(up, jnp.float32)), np.float64) - v0
        bad = dv < -1e-6
        if bad.any():
            r, i = np.argwhere(bad)[0]
            return (f"V_{i} falls in s_{j}: V_{i}({base[r].tolist()}) = {v0[r, i]:.6g} > V_{i}({up[r].tolist()}) = "
                    f"{v0[r, i] + dv[r, i]:.6g}")  # fmt: skip
    return None


# --------------------------------------------------------------------------
# families


def worth(env: Environment, s: Array) -> Array:
    """``a_i(s) = v_i(1, s) - v_i(0, s)``: what the outcome is worth to each agent (trade: ``(v_beta, -v_sigma)``)."""
    return env.value(jnp.ones((), s.dtype), s) - env.value(jnp.zeros((), s.dtype), s)


def posted_family(env: Environment, signs: np.ndarray) -> tuple[Family, Callable]:
    """Posted cutoffs: the outcome iff every ``signs_i (s_i - p_i) > 0`` (trade: ``s_beta > x``, ``s_sigma < y``).

    Monotone in each own signal in the required direction, so with generalized VCG payments at the pivots ``p_i``,
    ``t_i = a_i(p_i, s_-i)`` if the outcome happens (CE Sec. 3.3, eqs. (5)-(6)), ex post IC and IR. Under private
    values a posted price ``x = y`` is budget balanced in every state. Returns the family and ``box(p)``.
    """
    n = env.n_agents
    c = float(env.cost(jnp.ones(())))
    lo, hi = np.asarray(env.lo, np.float64), np.asarray(env.hi, np.float64)

    def sg(dtype):
        return jnp.asarray(signs, dtype)

    def inside(p, s):
        return jnp.all(sg(s.dtype) * (s - p) > 0).astype(s.dtype)

    def soft_decide(p, s, temperature):
        return jnp.prod(jax.nn.sigmoid(sg(s.dtype) * (s - p) / temperature))

    def payments(p, s):
        pc = jnp.clip(p, jnp.asarray(lo, s.dtype), jnp.asarray(hi, s.dtype))
        return jnp.stack([worth(env, s.at[i].set(pc[i]))[i] for i in range(n)])

    def violation(p, s):
        return c - jnp.sum(payments(p, s))

    def weight(p, s):
        return inside(jax.lax.stop_gradient(p), s)

    def mechanism(p):
        def pivot(pp, m, i):
            return jnp.clip(pp[i], lo[i], hi[i]).astype(m.dtype)

        return pivot_payments(env, inside, params=jnp.asarray(p), pivot=pivot, name="posted_cutoffs")

    def describe(p):
        return {"cutoffs": [float(x) for x in np.asarray(p)]}

    def revenue(p, s):
        return -violation(p, s)

    def box(p):
        a = jnp.where(sg(p.dtype) > 0, jnp.clip(p, lo, hi), lo)
        b = jnp.where(sg(p.dtype) > 0, hi, jnp.clip(p, lo, hi))
        return a, b

    family = Family("posted_cutoffs", jnp.asarray((lo + hi) / 2), soft_decide, violation, weight, mechanism,
                    lambda p: p, describe, revenue)  # fmt: skip
    return family, box


def _uniform(key, shape, lo, hi, dtype):
    return jax.random.uniform(key, shape, dtype, lo, hi)


def _monotone_params(key, knots: int, y0_range: tuple[float, float], step_range: tuple[float, float], dtype):
    """A cold piecewise-linear monotone curve: ``y0`` and the softplus-inverse of positive knot steps."""
    k1, k2 = jax.random.split(key)
    y0 = _uniform(k1, (), *y0_range, dtype)
    d = _uniform(k2, (knots - 1,), *step_range, dtype)
    return {"y0": y0, "steps": jnp.log(jnp.expm1(d))}


def make_spec(env: Environment, prior: priors.Prior, family: str, *, key: Array, knots: int, dtype) -> Spec:
    """The :class:`Spec` of ``family`` in ``env`` (names in :data:`FAMILIES`)."""
    n = env.n_agents
    signs = directions(env)
    c = float(env.cost(jnp.ones(())))
    if family in ("two_price", "posted"):
        f, box = posted_family(env, signs)
        lo, hi = np.asarray(env.lo), np.asarray(env.hi)

        def cold(k):
            return _uniform(k, (n,), 0.0, 1.0, dtype) * jnp.asarray(hi - lo, dtype) + jnp.asarray(lo, dtype)

        def shift(p, delta):
            return p - jnp.asarray(signs, p.dtype) * delta

        def to_free(p):
            return np.asarray(p, np.float64)

        return Spec(f, cold, shift, float(np.max(hi - lo)) * 1.5, f.weight, box=box, polish_dim=n, to_free=to_free,
                    from_free=to_free)  # fmt: skip
    if family == "threshold":
        f = fam.threshold_family(env)
        corners = np.array(np.meshgrid(*[[0.0, 1.0]] * n, indexing="ij")).reshape(n, -1).T
        vals = np.asarray(jax.vmap(env.values)(jnp.asarray(corners, jnp.float32)), np.float64)
        vlo, vhi = vals.min(axis=0), vals.max(axis=0)

        def cold(k):
            return _uniform(k, (n,), 0.0, 1.0, dtype) * jnp.asarray(vhi - vlo, dtype) + jnp.asarray(vlo, dtype)

        def shift(v, delta):
            return v - delta / n

        def closed(v):  # CE Thm 9: the worst deficit is c - sum vbar; land ON the line (float64 before the cast)
            v = np.asarray(v, np.float64)
            v = v + (c - v.sum()) / n
            v[-1] = c - v[:-1].sum()
            return v

        def to_free(v):
            return np.asarray(v, np.float64)[:-1]

        def from_free(z):
            z = np.asarray(z, np.float64)
            return np.concatenate([z, [c - z.sum()]])

        return Spec(f, cold, shift, float(np.sum(vhi - vlo)) + abs(c), f.weight, closed_repair=closed,
                    polish_dim=n - 1, to_free=to_free, from_free=from_free)  # fmt: skip
    if family == "randomized" and env.outcome_names == PUBLIC:
        return randomized_public_spec(env, knots=knots, dtype=dtype)
    if family == "randomized":
        f = randomized.banded_trade_family(env, prior, knots=knots, dtype=dtype)

        def cold(k):  # random two prices and a random monotone band: never a known optimum
            k1, k2, k3, k4 = jax.random.split(k, 4)
            x = _uniform(k1, (), 0.4, 0.9, dtype)
            y = _uniform(k2, (), 0.1, 0.6, dtype)
            level = _uniform(k3, (), 0.3, 1.0, dtype)
            return {"cut": jnp.stack([x, y]), "q": level + _uniform(k4, (knots, knots), -0.1, 0.1, dtype)}

        def shift(p, delta):  # a larger box: more trade
            return randomized.shrink(p, -delta)

        def box(p):
            x, y = jnp.clip(p["cut"][0], 0.0, 1.0), jnp.clip(p["cut"][1], 0.0, 1.0)
            return jnp.stack([x, jnp.zeros_like(y)]), jnp.stack([jnp.ones_like(x), y])

        def points(p):  # the box's own grid, moving with it: the budget binds along its edges
            return randomized.box_grid_points(p, 17)

        return Spec(f, cold, shift, 1.0, randomized.trade_probability, expected_payments=True, box=box, points=points)
    if family == "cutoff":
        f = fam.trade_cutoff_family(env, prior, key, knots=knots, restore_profiles=256)

        def cold(k):
            return _monotone_params(k, knots, (-0.3, 0.5), (0.02, 1.2 / (knots - 1)), dtype)

        def shift(p, delta):  # a lower cutoff: more trade
            return {"y0": p["y0"] - delta, "steps": p["steps"]}

        return Spec(f, cold, shift, 2.0, f.weight)
    if family == "boundary":
        if n != 2:
            raise ValueError(f"family boundary: two agents (CE Def 10 boundaries s_2 = b(s_1)), got n = {n}")
        f = fam.provision_boundary_family(env, prior, key, knots=knots, restore_profiles=256)

        def cold(k):
            return _monotone_params(k, knots, (0.6, 1.6), (0.02, 1.2 / (knots - 1)), dtype)

        def shift(p, delta):  # a lower boundary: more provision
            return {"y0": p["y0"] - delta, "steps": p["steps"]}

        return Spec(f, cold, shift, 2.0, f.weight)
    raise ValueError(f"family: unknown {family!r}")  # pragma: no cover (check_environment names the choices)


def randomized_public_spec(env: Environment, *, knots: int, dtype) -> Spec:
    """The :class:`Spec` of randomized provision rules (:mod:`jaxmech._src.models.randomized_public`): a box times a
    monotone multilinear band, envelope payments (CE Thm 2). The box is in value space, ``1{V_i(s) >= x_i}``, where
    every value rises in every signal (CE Sec. 5: the family then contains CE Thm 9's threshold rules, the band
    ``r = 1``), else in signal space, ``1{s_i >= x_i}`` (values falling in the others' signals). Cold starts: random
    cutoffs in the upper part of the support (value box: the values there) and a random band (never a known
    optimum); the repair's shift enlarges the box (more provision) or shrinks it. The search places the box (one
    soft-maximum multiplier for the ex post budget: per-state multipliers as for trade cost a third more compile time
    and did not change the polished design); the band LP of the polish
    (:func:`jaxmech._src.models.randomized_public.band_program`) shapes the band (ex post budgets, independent
    priors)."""
    n = env.n_agents
    lo, hi = np.asarray(env.lo, np.float64), np.asarray(env.hi, np.float64)
    value_box = falling_value(env) is None
    f = randomized_public.randomized_public_family(env, knots=knots, value_box=value_box, dtype=dtype)
    values = env.values if value_box else None

    def cold(k):
        k1, k2, k3 = jax.random.split(k, 3)
        cut = _uniform(k1, (n,), 0.4, 0.9, dtype) * jnp.asarray(hi - lo, dtype) + jnp.asarray(lo, dtype)
        if value_box:
            cut = env.values(cut)  # the values at a random profile of the upper support
        level = _uniform(k2, (), 0.3, 1.0, dtype)
        return {"cut": cut, "q": level + _uniform(k3, (knots,) * n, -0.1, 0.1, dtype)}

    def shift(p, delta):  # a larger box: more provision
        return randomized_public.shrink(p, -delta)

    def box(p):  # the closed box [x, hi] whose own grid the repair checks
        dt = p["cut"].dtype
        return jnp.clip(p["cut"], jnp.asarray(lo, dt), jnp.asarray(hi, dt)), jnp.asarray(hi, dt)

    def hard_q(p, s):
        return randomized_public.provision_probability(p, s, jnp.asarray(lo, s.dtype), jnp.asarray(hi, s.dtype), values)

    if value_box:
        span = float(np.max(randomized_public.diagonal_values(env, 1.0) - randomized_public.diagonal_values(env, 0.0)))
        return Spec(f, cold, shift, span, hard_q, expected_payments=True,
                    check_points=lambda p, states: randomized_public.value_box_points(env, p, states))  # fmt: skip
    return Spec(f, cold, shift, float(np.max(hi - lo)), hard_q, expected_payments=True, box=box)


# --------------------------------------------------------------------------
# the annealed search (all starts at once)


def annealed_search(env, spec: Spec, prior, inits, key, cfg: SearchConfig, *, objective, revenue_weight, budget,
                    dtype):  # fmt: skip
    """Augmented-Lagrangian search from every start at once (``inits``: a pytree with a leading start axis).

    One compiled ``lax.scan`` over the steps: each step draws a fresh batch (common to all starts), anneals the
    relaxation temperature geometrically, updates every start with optax, and every ``dual_every`` steps raises
    the multipliers (dual ascent) and the penalty. Returns the Polyak average of the last ``average_tail`` steps.
    """
    f = spec.family
    opt = make_optimizer(cfg)
    steps = cfg.steps
    temps = cfg.temperature_start * (cfg.temperature_end / cfg.temperature_start) ** (
        np.arange(steps) / max(steps - 1, 1)
    )
    grid = support_grid(prior, cfg.constraint_grid, dtype) if cfg.constraint_grid > 1 and budget == "ex_post" else None
    tail = int(steps * (1.0 - cfg.average_tail))

    def terms(params, s, temperature):
        q = jax.vmap(lambda x: f.soft_decide(params, x, temperature))(s)
        viol = jax.vmap(lambda x: f.violation(params, x))(s)
        rev = -viol if spec.expected_payments else -q * viol
        w_obj = jnp.mean(jax.vmap(env.welfare)(q, s))
        obj = jnp.mean(rev) if objective == "revenue" else w_obj + revenue_weight * jnp.mean(rev)
        if budget == "ex_ante":
            con = -jnp.mean(rev)[None]
        else:
            sc = s if grid is None else jnp.concatenate([s, grid])
            v = jax.vmap(lambda x: f.violation(params, x))(sc)
            w = jax.vmap(lambda x: f.weight(params, x))(sc)
            con = soft_max(v, w, cfg.softmax_temperature)[None]
            if spec.points is not None:  # one multiplier per state of the rule's own grid (many bind at once)
                con = jnp.concatenate([con, jax.vmap(lambda x: f.violation(params, x))(spec.points(params))])
        return obj, con

    def loss(params, s, temperature, lam, rho):
        obj, con = terms(params, s, temperature)
        pen = jnp.sum(jnp.maximum(0.0, con + lam / rho) ** 2 - (lam / rho) ** 2)
        return -obj + 0.5 * rho * pen, con

    def total(params, s, temperature, lam, rho):
        ls, cons = jax.vmap(loss, in_axes=(0, None, None, 0, None))(params, s, temperature, lam, rho)
        return jnp.sum(ls), cons

    def body(carry, x):
        params, opt_state, lam, rho, avg = carry
        k, temperature = x
        s = prior.sample(jax.random.fold_in(key, k), cfg.batch, dtype)
        (_, con), grads = jax.value_and_grad(total, has_aux=True)(params, s, temperature, lam, rho)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        dual = (k + 1) % cfg.dual_every == 0
        lam = jnp.where(dual, jnp.maximum(0.0, lam + rho * con), lam)
        rho = jnp.where(dual, jnp.minimum(rho * cfg.penalty_growth**cfg.dual_every, cfg.penalty_max), rho)
        weight = jnp.where(k >= tail, 1.0 / jnp.maximum(k - tail + 1, 1).astype(dtype), 0.0).astype(dtype)
        avg = jax.tree.map(lambda a, p: a + (p - a) * weight, avg, params)
        return (params, opt_state, lam, rho, avg), jnp.max(con, axis=-1)

    @_compiled()
    def run(inits):
        starts = jax.tree.leaves(inits)[0].shape[0]
        with jax.numpy_dtype_promotion("standard"):  # optax's int32 step count meets float params
            m = 1 if budget == "ex_ante" or spec.points is None else 1 + spec.points(_index(inits, 0)).shape[0]
            carry = (inits, opt.init(inits), jnp.zeros((starts, m), dtype), jnp.asarray(cfg.penalty_start, dtype),
                     inits)  # fmt: skip
            xs = (jnp.arange(steps), jnp.asarray(temps, dtype))
            (params, _, _, _, avg), cons = jax.lax.scan(body, carry, xs)
        return (avg if cfg.average_tail > 0 else params), cons

    return run(inits)


# --------------------------------------------------------------------------
# exact repair


def budget_statistic(spec: Spec, prior, key, *, budget: str, profiles: int, grid_points: int, dtype):
    """``stat(params) -> ()``: the exact budget statistic the repair puts at 0 (ex post: the worst deficit over
    fresh profiles, a support grid and, for posted cutoffs, the box's own grid; ex ante: the mean deficit)."""
    f = spec.family
    sample = prior.sample(key, profiles, dtype)
    pts = sample if budget == "ex_ante" else jnp.concatenate([sample, support_grid(prior, grid_points, dtype)])
    n = prior.size
    k = max(2, int(round((1 << 14) ** (1.0 / n))))

    def deficit(params, s):
        v = f.violation(params, s)
        if spec.expected_payments:
            return v
        return jnp.where(f.weight(params, s) > 0, v, 0.0 if budget == "ex_ante" else -jnp.inf)

    def stat(params):
        if budget == "ex_post" and spec.box is not None:
            # the posted rule's region is a box: a grid of the box itself, corners and edges included (the payments
            # are continuous, so the supremum over the open box is the maximum over its closure)
            a, b = spec.box(params)
            t = jnp.linspace(0.0, 1.0, k, dtype=dtype)
            axes = [a[i] + (b[i] - a[i]) * t for i in range(n)]
            g = jnp.stack([x.ravel() for x in jnp.meshgrid(*axes, indexing="ij")], -1)
            return jnp.max(jax.vmap(lambda s: f.violation(params, s))(g))
        at = spec.check_points(params, pts) if budget == "ex_post" and spec.check_points is not None else pts
        d = jax.vmap(lambda s: deficit(params, s))(at)
        return jnp.mean(d) if budget == "ex_ante" else jnp.max(d)

    return stat


def bisect_shift(stat: Callable[[Array], Array], span: float, iters: int = 60, tol: float = 0.0):
    """The largest ``delta`` in ``[-span, span]`` with ``stat(delta) <= tol`` (``stat`` non-decreasing in ``delta``)
    by bisection, in JAX: the repair moves either way. Returns ``(delta, feasible)``; ``feasible`` is False when
    even ``-span`` breaks the budget."""
    lo = jnp.asarray(-span, jnp.float32)
    hi = jnp.asarray(span, jnp.float32)
    top_ok = stat(hi) <= tol

    def body(_, b):
        a, c = b
        mid = 0.5 * (a + c)
        ok = stat(mid) <= tol
        return jnp.where(ok, mid, a), jnp.where(ok, c, mid)

    a, _ = jax.lax.fori_loop(0, iters, body, (lo, hi))
    return jnp.where(top_ok, hi, a), stat(lo) <= tol


# --------------------------------------------------------------------------
# deterministic quadrature (independent priors)


def _nodes(panels: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite 4-point Gauss-Legendre nodes and weights on ``[0, 1]`` with ``panels`` panels."""
    e = np.linspace(0.0, 1.0, panels + 1)
    mid, half = (e[:-1] + e[1:]) / 2, (e[1:] - e[:-1]) / 2
    return (mid[:, None] + half[:, None] * _GL_X[None]).ravel(), (half[:, None] * _GL_W[None]).ravel()


def quantile_function(marginal, dtype, points: int = 16385) -> Callable[[Array], Array]:
    """The marginal's quantile function: exact for a uniform marginal, else tabulated once on ``points`` quantiles
    and interpolated (a Beta quantile costs a 60-step bisection; the table's error is far below the quadrature's)."""
    if isinstance(marginal, priors.Uniform):
        return marginal.ppf
    u = np.linspace(0.0, 1.0, points)
    table = np.asarray(marginal.ppf(jnp.asarray(u, jnp.float32)), np.float64)

    def ppf(x):
        return jnp.interp(x, jnp.asarray(u, dtype), jnp.asarray(table, dtype))

    return ppf


def monotone_expectation(
    prior: priors.Prior, signs: np.ndarray, inside, integrand, panels: Sequence[int], dtype, ppfs=None, density=None
):
    """``E[1{inside(s)} integrand(s)]`` for a region monotone in every signal (direction ``signs``), by nested
    quadrature in quantile space: with ``w_k = u_k`` (``signs_k > 0``) or ``1 - u_k``, the region is upward closed
    in ``w``, so at each level the entry point (the least ``w_k`` inside when the later coordinates are at their
    top) and, at the last level, the threshold are found by bisection and the rest of ``[entry, 1]`` is
    integrated by composite Gauss-Legendre (``panels[k]`` panels). ``ppfs``: the marginals'
    :func:`quantile_function`, built outside any trace; ``density``: the prior's density in quantile space
    (:func:`jaxmech._src.core.priors.copula_density`; None: independent), which weights the integrand."""
    n = prior.size
    sg = np.asarray(signs, np.float64)
    ppfs = ppfs if ppfs is not None else [quantile_function(m, dtype) for m in prior.marginals]

    def to_u(w):
        return jnp.where(jnp.asarray(sg > 0), w, 1.0 - w)

    def to_s(w):
        u = to_u(w)
        return jnp.stack([ppfs[i](u[i]) for i in range(n)]).astype(dtype)

    def weighted(w):
        v = integrand(to_s(w))
        return v if density is None else v * density(to_u(w))

    def level(prefix: Array, k: int):
        top = jnp.ones((n - k - 1,), dtype)

        def inside_at(x):
            return inside(to_s(jnp.concatenate([prefix, x[None], top]))) > 0

        entry = bisect(inside_at, jnp.zeros((), dtype), jnp.ones((), dtype), 40)  # 1 when nowhere inside
        x, w = _nodes(panels[k])
        xs = entry + (1.0 - entry) * jnp.asarray(x, dtype)
        ws = (1.0 - entry) * jnp.asarray(w, dtype)
        if k == n - 1:
            vals = jax.vmap(lambda z: weighted(jnp.concatenate([prefix, z[None]])))(xs)
        else:
            vals = jax.vmap(lambda z: level(jnp.concatenate([prefix, z[None]]), k + 1))(xs)
        return jnp.sum(ws * vals) if vals.ndim == 1 else jnp.tensordot(ws, vals, axes=1)  # a vector integrand too

    return level(jnp.zeros((0,), dtype), 0)


def exact_objective(env, spec: Spec, prior, signs, *, objective, revenue_weight, panels, dtype, compiled=True):
    """``params -> E[objective]`` of a deterministic family by :func:`monotone_expectation` (jit-compiled unless
    ``compiled`` is False, for use inside another compiled program; a correlated prior's density weights the
    integrand)."""
    f = spec.family

    def value(params, s):
        r = -f.violation(params, s)
        w = env.welfare(spec.hard_q(params, s), s)  # deterministic: 1 inside the region
        return r if objective == "revenue" else w + revenue_weight * r

    ppfs = [quantile_function(m, dtype) for m in prior.marginals]  # tabulated here, outside the trace
    density = priors.copula_density(prior, dtype)

    def run(params):
        return monotone_expectation(prior, signs, lambda s: spec.hard_q(params, s), lambda s: value(params, s), panels,
                                    dtype, ppfs, density)  # fmt: skip

    return _compiled()(run) if compiled else run


def default_panels(n: int) -> int:
    """Quadrature panels per level: 48 for two agents, 8 for three, 4 beyond (the work grows like panels^n)."""
    return 48 if n <= 2 else 8 if n == 3 else 4


def nelder_mead(fn, x0: np.ndarray, step: float, *, xtol: float = 1e-6, max_iter: int = 300) -> np.ndarray:
    """Minimize ``fn`` from ``x0`` (Nelder-Mead, standard coefficients) until the simplex is smaller than ``xtol``."""
    d = len(x0)
    simplex = [np.asarray(x0, np.float64)] + [x0 + step * np.eye(d)[i] for i in range(d)]
    vals = [fn(x) for x in simplex]
    for _ in range(max_iter):
        order = np.argsort(vals)
        simplex, vals = [simplex[i] for i in order], [vals[i] for i in order]
        if max(np.max(np.abs(x - simplex[0])) for x in simplex[1:]) < xtol:
            break
        centroid = np.mean(simplex[:-1], axis=0)
        xr = centroid + (centroid - simplex[-1])
        fr = fn(xr)
        if fr < vals[0]:
            xe = centroid + 2.0 * (centroid - simplex[-1])
            fe = fn(xe)
            simplex[-1], vals[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < vals[-2]:
            simplex[-1], vals[-1] = xr, fr
        else:
            xc = centroid + 0.5 * (simplex[-1] - centroid)
            fc = fn(xc)
            if fc < vals[-1]:
                simplex[-1], vals[-1] = xc, fc
            else:
                simplex = [simplex[0]] + [simplex[0] + 0.5 * (x - simplex[0]) for x in simplex[1:]]
                vals = [vals[0]] + [fn(x) for x in simplex[1:]]
    return simplex[int(np.argmin(vals))]


def band_program(env: Environment, prior: priors.Prior, knots: int, *, points: int = 33, nodes: int = 48,
                 revenue_weight: float = 0.0, objective: str = "welfare", budget: str = "ex_post",
                 dtype=jnp.float32):  # fmt: skip
    """``cut -> (value, q)``: the best band of a banded randomized rule for a fixed trade box, exactly.

    Every term is linear in the band's knot values ``Q`` (``q(s)`` is bilinear in them inside the box, and so are the
    envelope payments): the objective ``E[1{box} (q w + revenue_weight (t_beta + t_sigma))]`` (Gauss-Legendre in
    quantile space over the box, ``nodes`` per axis), the budget (ex post: ``t_beta + t_sigma >= 0`` at the box's
    own ``points x points`` grid; ex ante: ``E[1{box} (t_beta + t_sigma)] >= 0`` by the same quadrature as the
    objective: outside the box nobody trades at any own report, so nobody pays), and monotonicity between adjacent
    knots. A linear program in the ``K^2`` knot values (scipy HiGHS); the coefficients are gradients at a strictly
    monotone interior ``Q``, where the monotone projection is the identity. Returns ``(-inf, None)`` where the LP
    fails.
    """
    from scipy.optimize import linprog  # optional dependency (the `lp` extra)

    k = knots
    ex_ante = budget == "ex_ante"
    base = 0.5 + 0.1 * (np.arange(k)[:, None] - np.arange(k)[None, :]) / k  # strictly monotone, inside (0, 1)
    base = jnp.asarray(base, dtype)
    ppfs = [quantile_function(m, dtype) for m in prior.marginals]
    gx, gw = np.polynomial.legendre.leggauss(nodes)
    gx, gw = jnp.asarray((gx + 1) / 2, dtype), jnp.asarray(gw / 2, dtype)

    def surplus(q, cut, s):
        return jnp.sum(randomized.envelope_payments(env, {"cut": cut, "q": q}, s))

    def value(q, cut, s):
        w = env.welfare(randomized.trade_probability({"cut": cut, "q": q}, s), s)
        r = surplus(q, cut, s)
        return r if objective == "revenue" else w + revenue_weight * r

    @_compiled()
    def coefficients(cut):
        cut = jnp.clip(cut, 0.0, 1.0)
        ub = priors_cdf(prior, 0, cut[0])
        vs = priors_cdf(prior, 1, cut[1])
        u = ub + (1.0 - ub) * gx  # quantiles of the buyer inside the box, then of the seller
        v = vs * gx
        s = jnp.stack(jnp.meshgrid(ppfs[0](u), ppfs[1](v), indexing="ij"), -1).reshape(-1, 2)
        w = (jnp.outer(gw, gw) * (1.0 - ub) * vs).reshape(-1)
        obj = jnp.einsum("m,mjk->jk", w, jax.vmap(jax.grad(value), in_axes=(None, None, 0))(base, cut, s))
        if ex_ante:  # one row: the expected surplus
            balance = jnp.einsum("m,mjk->jk", w, jax.vmap(jax.grad(surplus), in_axes=(None, None, 0))(base, cut, s))
        else:  # one row per profile of the box's grid
            pts = randomized.box_grid_points({"cut": cut}, points)
            balance = jax.vmap(jax.grad(surplus), in_axes=(None, None, 0))(base, cut, pts)
        return balance.reshape(-1, k * k), obj.reshape(-1)

    rows = []
    for j in range(k):
        for c in range(k):
            i = j * k + c
            if j + 1 < k:  # Q[j, c] <= Q[j + 1, c]
                r = np.zeros(k * k)
                r[i], r[i + k] = 1.0, -1.0
                rows.append(r)
            if c + 1 < k:  # Q[j, c + 1] <= Q[j, c]
                r = np.zeros(k * k)
                r[i + 1], r[i] = 1.0, -1.0
                rows.append(r)
    mono = np.asarray(rows)

    def solve(cut):
        balance, obj = (np.asarray(x, np.float64) for x in coefficients(jnp.asarray(cut, dtype)))
        a_ub = np.vstack([-balance, mono])  # surplus >= 0 (at every grid profile, or in expectation); monotone knots
        res = linprog(-obj, A_ub=a_ub, b_ub=np.zeros(len(a_ub)), bounds=[(0.0, 1.0)] * (k * k), method="highs")
        if res.status != 0:
            return -np.inf, None
        return float(-res.fun), res.x.reshape(k, k)

    return solve


def priors_cdf(prior: priors.Prior, i: int, x: Array) -> Array:
    """The ``i``-th marginal's CDF at ``x`` (by bisection on its quantile function: any marginal with a ppf)."""
    m = prior.marginals[i]
    lo, hi = jnp.zeros_like(x), jnp.ones_like(x)

    def body(_, b):
        a, c = b
        mid = 0.5 * (a + c)
        below = m.ppf(mid) <= x
        return jnp.where(below, mid, a), jnp.where(below, c, mid)

    a, c = jax.lax.fori_loop(0, 40, body, (lo, hi))
    return 0.5 * (a + c)


# --------------------------------------------------------------------------
# evaluation and audit


def _mc(x: np.ndarray) -> dict:
    return {"mean": float(x.mean()), "se": float(x.std(ddof=1) / math.sqrt(len(x))), "profiles": int(len(x))}


def evaluate(env, spec: Spec, prior, key, n: int, *, objective, revenue_weight, dtype, block: int = 8192):
    """``params -> (objective, welfare, revenue)`` per profile on ``n`` profiles drawn from ``key`` (one compile)."""
    f = spec.family
    n_blocks = max(1, -(-n // block))
    s_all = prior.sample(key, n_blocks * block, dtype).reshape(n_blocks, block, -1)

    @_compiled()
    def run(params):
        def one(s):
            q = spec.hard_q(params, s)
            v = f.violation(params, s)
            rev = -v if spec.expected_payments else jnp.where(q > 0, -v, 0.0)
            w = env.welfare(q, s)
            return jnp.stack([rev if objective == "revenue" else w + revenue_weight * rev, w, rev])

        return jax.lax.map(lambda s: jax.vmap(one)(s), s_all).reshape(-1, 3)

    return run


def grid_check(env: Environment, mech: Mechanism, prior: priors.Prior, points: int, dtype) -> dict:
    """Deficit, IR and regret of ``mech`` at every profile of a ``points``-per-coordinate support grid (regret
    against the same grid of own-signal misreports): the states random samples rarely reach (corners, edges)."""
    g = support_grid(prior, points, dtype)
    n = env.n_agents
    own = [jnp.linspace(prior.lo[i], prior.hi[i], points, dtype=dtype) for i in range(n)]

    agent = jnp.repeat(jnp.arange(n, dtype=jnp.int32), points)
    report = jnp.concatenate(own)

    @_compiled()
    def run(g):
        def one(s):
            q, t = decide_and_pay(mech, mech.params, s)
            u = env.value(q, s) - t

            def deviate(x):  # one compiled body for every agent (a traced index: one-dimensional signals)
                i, m_i = x
                return audit_lib.utility(env, mech, mech.params, s, priors.replace_signal(s, env.dims, i, m_i[None]), i)

            dev = jax.vmap(deviate)((agent, report))
            regret = jnp.max(jnp.maximum(0.0, dev - u[agent]))
            return env.cost(q) - jnp.sum(t), jnp.max(-u), regret

        return jax.lax.map(one, g)

    d, ir, reg = (np.asarray(x, np.float64) for x in run(g))
    ir_max = float(max(ir.max(), 0.0)) + 0.0  # + 0.0: never -0.0
    return {"points": int(g.shape[0]), "deficit_max": float(d.max()), "ir_violation_max": ir_max,
            "regret_max": float(reg.max())}  # fmt: skip


DECISION_GRID = {1: 65, 2: 33, 3: 9}  # decision_spread's grid points per coordinate by the number of agents (else 5)


def decision_spread(
    spec: Spec, finals: Sequence[Params], best: Params, prior: priors.Prior, points: int, dtype
) -> dict:
    """How far the decision rules ``finals`` are from ``best`` on a ``points``-per-coordinate support grid: over the
    rules, the largest ``max_s |q_k(s) - q_best(s)|`` and the largest grid mean of ``|q_k(s) - q_best(s)|`` (``q``:
    the allocation, a trade or provision probability).

    The precision of a many-parameter family (a curve's knots, a randomized rule's band) is that of the rule, not of
    its parameters, which need not be identified: two parameter vectors can give the same rule. Starts whose rules
    agree where the prior has mass pin the design down; a large spread at an equal value says the optimum is flat
    in that direction (the objective's standard error and the spread of values say how much it matters)."""
    g = support_grid(prior, points, dtype)

    @_compiled()
    def rule(p):
        mech = spec.family.mechanism(p)
        return jax.vmap(lambda s: mech.decide(mech.params, s))(g)

    q0 = np.asarray(rule(best), np.float64)
    diffs = [np.abs(np.asarray(rule(p), np.float64) - q0) for p in finals]
    return {
        "decision_spread_max": float(max(float(d.max()) for d in diffs)) if diffs else 0.0,
        "decision_spread_mean": float(max(float(d.mean()) for d in diffs)) if diffs else 0.0,
        "decision_grid": int(g.shape[0]),
    }


def final_audit(env, mech: Mechanism, prior, key, profiles: int, misreports, options, check_grid: int, dtype,
                run: bool = True) -> dict | None:  # fmt: skip
    """Step 4: the exact audit of the chosen mechanism on fresh profiles (:func:`audit_summary`) and the support-grid
    check (:func:`grid_check`); ``None`` where ``run`` is false."""
    if not run:
        return None
    rep = engine.audit(env, mech, prior, key=key, n_profiles=profiles, misreports=misreports, dtype=dtype,
                       options=options).report  # fmt: skip
    return {"sampled": audit_summary(rep), "grid": grid_check(env, mech, prior, check_grid, dtype)}


def audit_summary(report: dict) -> dict:
    """The exact audit's headline numbers (the full report stays available from :func:`jaxmech.audit`)."""
    return {
        "profiles": report["profiles"],
        "tol": report["tol"],
        "regret_max": max(r["max"] for r in report["regret"]),
        "ir_violation_max": max(r["max"] for r in report["ir_violation"]),
        "deficit_max": report["deficit"]["max"],
        "deficit": {k: report["deficit"][k] for k in ("mean", "se")},
        "welfare": {k: report["welfare"][k] for k in ("mean", "se")},
        "first_best_welfare": {k: report["first_best_welfare"][k] for k in ("mean", "se")},
    }


def _describe(spec: Spec, params) -> dict:
    return spec.family.describe(jax.tree.map(np.asarray, params))


def _index(tree, k):
    return jax.tree.map(lambda x: x[k], tree)


# --------------------------------------------------------------------------
# the design


def with_reference(result: DesignResult, reference: bool, env, prior, grids, objective, revenue_weight, budget):
    """``result`` with the finite-type LP reference attached (and its seconds) when ``reference``."""
    if not reference:
        return result
    t0 = time.perf_counter()
    result = result._replace(reference=compare_reference(result, env, prior, grids, objective=objective,
                                                         revenue_weight=revenue_weight, budget=budget))  # fmt: skip
    result.seconds["reference"] = time.perf_counter() - t0
    return result


def design(
    env: Environment,
    prior: priors.Prior,
    *,
    key: Array,
    family: str | None = None,
    objective: str = "welfare",
    revenue_weight: float = 0.0,
    budget: str = "ex_post",
    starts: int = 4,
    search: SearchConfig = SearchConfig(steps=300, learning_rate=0.02, temperature_start=0.05),
    knots: int = 9,
    repair_profiles: int = 1 << 14,
    repair_grid: int = 65,
    polish: bool = True,
    quadrature_panels: int | None = None,
    eval_profiles: int = 1 << 18,
    audit_profiles: int = 1 << 14,
    misreports: audit_lib.Misreports = audit_lib.Misreports(grid=32, random=4),
    audit_options: engine.StreamOptions = engine.StreamOptions(),
    check_grid: int = 33,
    reference: bool = False,
    grids: Sequence[int] = (17, 33, 65),
    run_audit: bool = True,
    dtype=jnp.float32,
) -> DesignResult:
    """The best ex post IC and IR mechanism of ``family`` for ``env`` under ``prior`` (see the module docstring).

    Args:
      key: the PRNG key of everything random (cold starts, batches, repair and evaluation samples, the audit).
      family: one of :data:`FAMILIES` for the environment (default: ``two_price`` for trade, ``threshold`` for a
        public good whose values increase in every signal, else ``posted``; ``reserve`` for a single object).
      objective: ``"welfare"`` (plus ``revenue_weight`` x revenue) or ``"revenue"`` (revenue = ``-deficit``).
      budget: ``"ex_post"`` (deficit <= 0 in every state, the papers' notion) or ``"ex_ante"`` (``E[deficit] <= 0``).
      starts: cold starts (searched at once); ``search``: the annealed search's settings (its ``objective`` is
        ignored: ``objective`` above rules).
      polish: refine low-dimensional deterministic families on the budget boundary (:data:`POLISHED`).
      quadrature_panels: panels per level of the quadrature (default :func:`default_panels`).
      reference, grids: solve the finite-type LP on these grids and compare (needs scipy).
      run_audit: ``False`` skips step 4's exact audit and grid check (``audit`` is then ``None``): for a rule used as
        a baseline that is checked where it is used (the ``search`` kind's best two-price rule: its worst deficit on
        the run's support grid).

    Raises:
      ValueError: an environment, prior or family it cannot design for (:func:`check_environment`), or a rule no
        shift makes budget feasible.
    """
    t0 = time.perf_counter()
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if budget not in BUDGETS:
        raise ValueError(f"budget: one of {', '.join(BUDGETS)}, got {budget!r}")
    if starts < 1:
        raise ValueError(f"starts: need >= 1, got {starts}")
    if reference and len({int(g) for g in grids}) < 2:
        raise ValueError(f"grids: the LP reference extrapolates in 1/G, which needs two or more distinct grids, got "
                         f"{list(grids)}")  # fmt: skip
    if family in EX_ANTE_ONLY and budget != "ex_ante" and env.outcome_names in FAMILIES:
        others = [f for f in FAMILIES[env.outcome_names] if f not in EX_ANTE_ONLY]
        raise ValueError(
            f"family {family}: its rule is set by the EXPECTED deficit, so it needs budget 'ex_ante', got "
            f"{budget!r} (under an ex post budget use {', '.join(others)})"
        )
    default = family is None
    if family is None and auction.is_single_object(env):
        family = "reserve"
    if family is None and budget == "ex_ante" and prior.cholesky is None and env.outcome_names in FAMILIES:
        family = "virtual"
    if family is None:
        family = fallback_family(env, prior)
    check_environment(env, prior, family)
    if family == "virtual":
        try:
            return design_virtual(env, prior, key=key, objective=objective, revenue_weight=revenue_weight,
                                  panels=quadrature_panels or default_panels(env.n_agents),
                                  eval_profiles=eval_profiles, audit_profiles=audit_profiles, misreports=misreports,
                                  audit_options=audit_options, check_grid=check_grid, reference=reference,
                                  grids=grids, run_audit=run_audit, dtype=dtype, t0=t0)  # fmt: skip
        except NotMonotone:
            if not default:
                raise
            family = fallback_family(env, prior)  # an irregular prior: the searched default instead
            check_environment(env, prior, family)
    if family == "reserve":
        return design_reserve(env, prior, key=key, objective=objective, revenue_weight=revenue_weight, budget=budget,
                              starts=starts, panels=quadrature_panels or default_panels(env.n_agents),
                              eval_profiles=eval_profiles, audit_profiles=audit_profiles, misreports=misreports,
                              audit_options=audit_options, check_grid=check_grid, reference=reference, grids=grids,
                              run_audit=run_audit, dtype=dtype, t0=t0)  # fmt: skip
    k_start, k_search, k_repair, k_fam, k_eval, k_audit, k_pick = jax.random.split(key, 7)
    spec = make_spec(env, prior, family, key=k_fam, knots=knots, dtype=dtype)
    signs = directions(env)
    n = env.n_agents

    # 1. cold starts, searched at once
    inits = jax.vmap(spec.cold)(jax.random.split(k_start, starts))
    found, _ = annealed_search(env, spec, prior, inits, k_search, search, objective=objective,
                               revenue_weight=revenue_weight, budget=budget, dtype=dtype)  # fmt: skip
    t_search = time.perf_counter()

    # 2. exact repair onto the budget boundary, from either side
    stat = budget_statistic(spec, prior, k_repair, budget=budget, profiles=repair_profiles, grid_points=repair_grid,
                            dtype=dtype)  # fmt: skip
    if budget == "ex_ante" and family in QUADRATURE and (family in POLISHED or prior.cholesky is None):
        # the mean deficit exactly, by the same quadrature as the objective (a sample mean would leave the repaired
        # rule off the budget line by its Monte Carlo error: trade a = 0.3, 4,096 profiles, E[deficit] +5.8e-5 and
        # cutoffs 0.014 from the optimum (0.5882, 0.4118))
        mean_revenue = exact_objective(env, spec, prior, signs, objective="revenue", revenue_weight=0.0,
                                       panels=(quadrature_panels or default_panels(n),) * n, dtype=dtype,
                                       compiled=False)  # fmt: skip

        def stat(p):
            return -mean_revenue(p)

    repair = _compiled()(lambda p: bisect_shift(lambda d: stat(spec.shift(p, d)), spec.span, tol=REPAIR_TOL))

    # Where revenue counts in the objective the budget need not bind at the optimum (a broker keeps a surplus: private
    # trade's best posted prices for revenue are (2/3, 1/3), deficit -1/27 < 0), so a feasible rule keeps its slack
    # and only an infeasible one moves onto the boundary. For welfare alone the boundary is where the optimum is.
    slack = objective == "revenue" or revenue_weight > 0
    stat_c = _compiled()(stat)
    c = float(env.cost(jnp.ones(()))) if spec.closed_repair is not None else 0.0

    def feasible(p):
        if spec.closed_repair is not None and budget == "ex_post":  # CE Thm 9: t_i >= vbar_i, so sum vbar >= c
            return float(np.sum(np.asarray(p, np.float64))) >= c
        return float(stat_c(p)) <= REPAIR_TOL

    def repaired(p):
        if slack and feasible(p):
            return p, 0.0, True
        if spec.closed_repair is not None and budget == "ex_post":
            v = spec.closed_repair(p)  # shift(v, delta) = v - delta / n: delta = sum(old) - sum(new)
            return jnp.asarray(v, dtype), float(np.sum(np.asarray(p, np.float64)) - np.sum(v)), True
        delta, ok = repair(p)
        return spec.shift(p, delta), float(delta), bool(ok)

    def repaired_ok(p):  # the repaired rule and whether any shift made it budget feasible (the polish's candidates)
        q, _, ok = repaired(p)
        return q, ok

    # 3. polish (low-dimensional deterministic families), by quadrature (a copula's density weighting it)
    quad = None
    if (family in POLISHED or prior.cholesky is None) and family in QUADRATURE and (polish or family not in POLISHED):
        panels = quadrature_panels or default_panels(n)
        quad = exact_objective(env, spec, prior, signs, objective=objective, revenue_weight=revenue_weight,
                               panels=(panels,) * n, dtype=dtype)  # fmt: skip
    pick = evaluate(env, spec, prior, k_pick, 1 << 15, objective=objective, revenue_weight=revenue_weight,
                    dtype=dtype)  # fmt: skip

    value_box = family == "randomized" and env.outcome_names == PUBLIC and spec.box is None
    band_lp = None
    if family == "randomized" and polish and prior.cholesky is None:
        if env.outcome_names == PUBLIC:
            ppfs = [quantile_function(m, dtype) for m in prior.marginals]
            region = None
            if value_box:  # the band's objective over the box by the nested quadrature

                def region(inside, integrand):
                    return monotone_expectation(prior, signs, inside, integrand,
                                                (quadrature_panels or default_panels(n),) * n, dtype, ppfs)  # fmt: skip

            band_lp = randomized_public.band_program(
                env, prior, knots, ppfs=ppfs, cdfs=[functools.partial(priors_cdf, prior, i) for i in range(n)],
                objective=objective, revenue_weight=revenue_weight, region_expectation=region, budget=budget,
                dtype=dtype,
            )  # fmt: skip
        else:
            band_lp = band_program(env, prior, knots, objective=objective, revenue_weight=revenue_weight, budget=budget,
                                   dtype=dtype)  # fmt: skip

    polish_range = (np.asarray(prior.lo) + 0.05, np.asarray(prior.hi) - 0.05)  # cutoffs in the support
    if value_box:  # thresholds: the values between 5% and 95% of the support
        polish_range = (randomized_public.diagonal_values(env, 0.05), randomized_public.diagonal_values(env, 0.95))

    def polish_band(p):
        """Along the budget boundary: for each box the best band (an exact LP, :func:`band_program`), the box moved by
        Nelder-Mead, then the exact repair (shrink the box) on the finer grid of the budget statistic."""
        cache = {}

        def loss(z):
            key_ = tuple(np.round(z, 9))
            if key_ not in cache:
                cache[key_] = band_lp(z)
            return -cache[key_][0]

        # from the repaired box, kept inside the support (value box: thresholds between the values at 5% and 95% of
        # it), so that a search that collapsed to no trade or no provision still gets a box
        z0 = np.clip(np.asarray(p["cut"], np.float64), *polish_range)
        z = nelder_mead(loss, z0, 0.1, xtol=1e-4, max_iter=80)
        _, q = cache[tuple(np.round(z, 9))]
        if q is None:
            return p
        q2, ok = repaired_ok({"cut": jnp.asarray(z, dtype), "q": jnp.asarray(q, dtype)})
        return q2 if ok else p  # a box no shrink makes budget feasible is not taken

    def polish_knots(p):
        """Nelder-Mead over a curve's parameters (its level ``y0`` and the softplus steps) on the quadrature objective,
        every point repaired; kept where it beats the repaired search (private trade, 9 knots: 0.088 -> 0.1195, the
        family's own limit short of 1/8 being the ramp one knot interval wide that replaces a posted price's jump)."""

        def lift(z):
            return repaired_ok({"y0": jnp.asarray(z[0], dtype), "steps": jnp.asarray(z[1:], dtype)})

        def loss(z):  # a curve that no shift makes budget feasible is not a candidate
            q, ok = lift(z)
            return -float(quad(q)) if ok else np.inf

        z0 = np.concatenate([[float(p["y0"])], np.asarray(p["steps"], np.float64)])
        q, ok = lift(nelder_mead(loss, z0, 0.1, xtol=1e-5, max_iter=1500))
        if not ok or float(quad(q)) <= float(quad(p)):
            return p
        # the simplex goes where the repair's samples and grid see no deficit; the mechanism itself on a support grid
        # (its own pivots, endpoints included) must agree, else the polished curve is dropped (a boundary curve at
        # a = -0.3 reached "0.073", above the LP limit 0.0357, with a deficit of 1.14 at a grid profile)
        worst = grid_check(env, spec.family.mechanism(q), prior, 33, dtype)["deficit_max"]
        return q if worst <= 10 * REPAIR_TOL else p

    rows, finals, values = [], [], []
    for k in range(starts):
        p0 = _index(inits, k)
        p1 = _index(found, k)
        if not all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree.leaves(p1)):
            # a start whose search diverged is reported as such, never repaired into a number
            rows.append({"cold": _describe(spec, p0), "searched": _describe(spec, p1), "feasible": False,
                         "diverged": True})  # fmt: skip
            continue
        p2, delta, ok = repaired(p1)
        if not ok:
            rows.append({"cold": _describe(spec, p0), "searched": _describe(spec, p1), "feasible": False})
            continue
        p3 = p2
        if quad is not None and family in POLISHED:

            def lift(z):
                if slack:  # every parameter free; an infeasible point is moved onto the boundary
                    return repaired_ok(jnp.asarray(z, dtype))
                p = jnp.asarray(spec.from_free(z), dtype)
                if spec.closed_repair is not None and budget == "ex_post":
                    return p, True
                return repaired_ok(p)

            def loss(z):  # a point that no shift makes budget feasible is not a candidate
                q, ok = lift(z)
                return -float(quad(q)) if ok else np.inf

            z0 = np.asarray(p2, np.float64) if slack else spec.to_free(p2)
            if family in ("two_price", "posted"):
                # a cutoff outside the support is a rule that never (or always) trades on that side: a flat plateau
                # where the simplex stalls (a 3-agent public good's cold start ended at (0.65, 0.75, 1.60), value 0).
                # Start inside the support instead; lift repairs it.
                lo_, hi_ = np.asarray(env.lo, np.float64), np.asarray(env.hi, np.float64)
                inside = np.clip(z0, lo_ + 0.05 * (hi_ - lo_), hi_ - 0.05 * (hi_ - lo_))
                z0 = np.where((z0 < lo_) | (z0 > hi_), inside, z0)
            z = nelder_mead(loss, z0, 0.02)
            p3, ok3 = lift(z)
            p3 = p3 if ok3 else p2
        if family in CURVES and polish and quad is not None:
            p3 = polish_knots(p2)
        if band_lp is not None:
            p3 = polish_band(p2)
            p3 = p3 if float(quad(p3)) >= float(quad(p2)) else p2  # never worse than the repaired search
        val = float(quad(p3)) if quad is not None else float(np.mean(np.asarray(pick(p3), np.float64)[:, 0]))
        if not np.isfinite(val):
            rows.append({"cold": _describe(spec, p0), "searched": _describe(spec, p1), "feasible": False,
                         "diverged": True})  # fmt: skip
            continue
        rows.append({"cold": _describe(spec, p0), "searched": _describe(spec, p1), "repair_shift": delta,
                     "repair_direction": "more trade" if delta > 0 else "less trade" if delta < 0 else "none",
                     "final": _describe(spec, p3), "objective": val, "feasible": True})  # fmt: skip
        finals.append(p3)
        values.append(val)
    if not finals:
        raise ValueError(f"design: no start of family {family!r} could be made budget feasible ({budget})")
    best = int(np.argmax(values))
    params = finals[best]
    t_polish = time.perf_counter()

    # 4. the chosen rule: fresh profiles, exact audit, support grid
    per = np.asarray(evaluate(env, spec, prior, k_eval, eval_profiles, objective=objective,
                              revenue_weight=revenue_weight, dtype=dtype)(params), np.float64)  # fmt: skip
    exact = None
    if quad is not None:
        coarse = exact_objective(env, spec, prior, signs, objective=objective, revenue_weight=revenue_weight,
                                 panels=(max(2, (quadrature_panels or default_panels(n)) // 2),) * n,
                                 dtype=dtype)  # fmt: skip
        v_fine = float(quad(params))
        exact = {"value": v_fine, "error": abs(v_fine - float(coarse(params)))}
    mech = spec.family.mechanism(params)
    audit = final_audit(env, mech, prior, k_audit, audit_profiles, misreports, audit_options, check_grid, dtype,
                        run_audit)  # fmt: skip
    t_audit = time.perf_counter()

    vals = np.asarray(values, np.float64)
    spread = {"values": vals.tolist(), "min": float(vals.min()), "max": float(vals.max()),
              "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0}  # fmt: skip
    precision = {"starts_feasible": len(finals)}
    if family in POLISHED:
        near = [np.asarray(p, np.float64) for p, v in zip(finals, values, strict=True) if v >= vals.max() - 1e-6]
        dev = max(float(np.max(np.abs(p - np.asarray(params, np.float64)))) for p in near)
        precision.update({"params_spread": dev, "starts_at_best": len(near),
                          "optimizer_tol": 1e-6 if quad is not None else None})  # fmt: skip
        if family == "threshold":
            precision["sum_minus_cost"] = float(np.sum(np.asarray(params, np.float64)) - float(env.cost(jnp.ones(()))))
    else:  # many parameters: how far apart the RULES of the starts that reach the best value (to 0.1%) are
        near = [p for p, v in zip(finals, values, strict=True) if v >= vals.max() - 1e-3 * abs(vals.max())]
        precision.update({"starts_within_0.1%": len(near),
                          **decision_spread(spec, near, params, prior, DECISION_GRID.get(n, 5), dtype)})  # fmt: skip
    result = DesignResult(
        environment=env.name, family=family, objective_name=objective, budget=budget, params=params,
        description=_describe(spec, params), mechanism=mech, objective=_mc(per[:, 0]), welfare=_mc(per[:, 1]),
        revenue=_mc(per[:, 2]), exact=exact, starts=tuple(rows), spread=spread, precision=precision, audit=audit,
        reference=None, seconds={"search": t_search - t0, "repair_polish": t_polish - t_search,
                                 "evaluate_audit": t_audit - t_polish},
    )  # fmt: skip
    return with_reference(result, reference, env, prior, grids, objective, revenue_weight, budget)


class NotMonotone(ValueError):
    """The virtual-surplus rule is not monotone in an own signal (an irregular prior): not ex post IC as it is."""


def fallback_family(env: Environment, prior: priors.Prior) -> str:
    """The searched default: ``two_price`` for trade; ``threshold`` for a public good whose values increase in
    every signal, else ``posted``."""
    if env.outcome_names == TRADE:
        return "two_price"
    try:
        check_environment(env, prior, "threshold")
    except ValueError:
        return "posted"
    return "threshold"


def design_virtual(env, prior, *, key, objective, revenue_weight, panels, eval_profiles, audit_profiles, misreports,
                   audit_options, check_grid, reference, grids, run_audit, dtype, t0) -> DesignResult:  # fmt: skip
    """The best mechanism under an ex ante budget (:mod:`jaxmech._src.models.virtual`): the virtual-surplus rule
    ``1{(1 - alpha) w + alpha J > 0}`` with pivot payments.

    ``alpha`` is ``rho / (1 + rho)`` for the objective ``welfare + rho revenue`` (1 for revenue) where its expected
    deficit ``-E[q J]`` is ``<= 0``, else the least ``alpha`` above it with ``E[q J] >= 0``: the budget binds (it is
    non-decreasing in ``alpha``: the rule at ``alpha`` maximizes ``E[q ((1 - alpha) w + alpha J)]``). Every
    expectation is the nested quadrature of :func:`monotone_expectation` over the rule's (monotone) region; the
    bisection on ``alpha`` runs until its bracket is one unit in the working dtype (``dtype``'s epsilon: the
    precision reported). The rule found is checked monotone on a support grid
    (:func:`jaxmech._src.models.virtual.monotone_witness`; else :class:`NotMonotone` with the witness: an irregular
    prior would need ironing), then evaluated on fresh profiles by its own pivot payments, whose Monte Carlo mean
    revenue must agree with the quadrature's ``E[q J]`` (within 5 SE + 1e-4, else ``ValueError``: the identity
    behind the rule does not hold for this model), and audited like every design.

    Raises:
      NotMonotone: the rule at the ``alpha`` found is not monotone.
      ValueError: the mechanism's own payments contradict ``E[deficit] = -E[q J]``.
    """
    n = env.n_agents
    k_eval, k_audit = jax.random.split(key)
    signs = directions(env)
    rule = virtual.virtual_rule(env, prior)
    ppfs = [quantile_function(m, dtype) for m in prior.marginals]

    def integrand(s):  # (w, J): welfare and revenue densities of the outcome
        return jnp.stack([virtual.welfare_gain(env, s), virtual.virtual_surplus(env, prior, s)])

    def expectations(p):
        @_compiled()
        def run(alpha):
            return monotone_expectation(prior, signs, lambda s: rule(alpha, s), integrand, (p,) * n, dtype, ppfs)

        return lambda alpha: np.asarray(run(jnp.asarray(alpha, dtype)), np.float64)

    fine, coarse = expectations(panels), expectations(max(2, panels // 2))
    a0 = 1.0 if objective == "revenue" else revenue_weight / (1.0 + revenue_weight)
    lo, hi = a0, 1.0
    slack = fine(a0)[1] >= 0.0
    if not slack:  # the least alpha with E[q J] >= 0 (alpha = 1 always qualifies: q = 1{J > 0})
        for _ in range(60):  # to the resolution of alpha in the working dtype
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if fine(mid)[1] >= 0.0 else (mid, hi)
            if np.asarray(lo, dtype) == np.asarray(hi, dtype) or hi - lo < 1e-12:
                break
    alpha = a0 if slack else hi
    witness = virtual.monotone_witness(env, prior, alpha)
    if witness is not None:
        raise NotMonotone(
            f"family virtual: the virtual-surplus rule is not monotone in an own signal ({witness}): the prior is "
            "not regular here and would need ironing (Myerson 1981), which jaxmech does not do; use family "
            "'randomized' or a deterministic family"
        )
    w_j, w_j_coarse = fine(alpha), coarse(alpha)

    def value(x):
        return x[1] if objective == "revenue" else x[0] + revenue_weight * x[1]

    v = float(value(w_j))
    exact = {"value": v, "error": abs(v - float(value(w_j_coarse))), "welfare": float(w_j[0]),
             "revenue": float(w_j[1])}  # fmt: skip
    t_solve = time.perf_counter()
    mech = virtual.virtual_mechanism(env, prior, jnp.asarray(alpha, dtype))
    per = np.asarray(_mechanism_outcomes(env, mech, prior, k_eval, eval_profiles, dtype), np.float64)
    obj = per[:, 1] if objective == "revenue" else per[:, 0] + revenue_weight * per[:, 1]
    mc = _mc(per[:, 1])
    if abs(mc["mean"] - exact["revenue"]) > 5 * mc["se"] + 1e-4:
        raise ValueError(
            f"family virtual: the mechanism's own payments give a mean revenue of {mc['mean']:.6g} ± {mc['se']:.2g} "
            f"({mc['profiles']:,} profiles), not E[q J] = {exact['revenue']:.6g}: the expected-payment identity "
            "does not hold for this model (the lowest types' IR does not bind where the prior puts its mass)"
        )
    audit = final_audit(env, mech, prior, k_audit, audit_profiles, misreports, audit_options, check_grid, dtype,
                        run_audit)  # fmt: skip
    t_audit = time.perf_counter()
    multiplier = alpha / (1.0 - alpha) if alpha < 1.0 else None  # None: revenue alone (an infinite weight)
    description = {
        "alpha": alpha,
        "multiplier": multiplier,  # rho + mu: the weight of the virtual surplus against welfare
        "budget_binds": not slack,
        "mean_deficit": -float(w_j[1]),  # by quadrature: -E[q J]
        "rule": "the outcome iff (1 - alpha) w(s) + alpha J(s) > 0 (J: the virtual surplus)",
    }
    row = {"cold": None, "final": description, "objective": v, "feasible": True}
    result = DesignResult(
        environment=env.name, family="virtual", objective_name=objective, budget="ex_ante",
        params=jnp.asarray(alpha, dtype), description=description, mechanism=mech, objective=_mc(obj),
        welfare=_mc(per[:, 0]), revenue=_mc(per[:, 1]), exact=exact, starts=(row,),
        spread={"values": [v], "min": v, "max": v, "std": 0.0},
        precision={"starts_feasible": 1, "starts_at_best": 1, "optimizer_tol": float(jnp.finfo(dtype).eps),
                   "params_spread": 0.0},
        audit=audit, reference=None,
        seconds={"search": t_solve - t0, "repair_polish": 0.0, "evaluate_audit": t_audit - t_solve},
    )  # fmt: skip
    return with_reference(result, reference, env, prior, grids, objective, revenue_weight, "ex_ante")


def design_reserve(env, prior, *, key, objective, revenue_weight, budget, starts, panels, eval_profiles,
                   audit_profiles, misreports, audit_options, check_grid, reference, grids, dtype, t0,
                   run_audit: bool = True) -> DesignResult:  # fmt: skip
    """Single object, family ``reserve`` (:mod:`jaxmech._src.models.auction`): the object goes to the eligible buyer
    (``s_i > r_i``) with the highest positive value, generalized VCG payments. Ex post IC and IR by construction
    (monotone under single crossing); payments are ``>= 0`` and the seller has no cost, so the budget holds in every
    state (both ``budget`` notions) and there is no repair. Each cold start ``r`` (uniform on the support) is moved
    by Nelder-Mead on the exact quadrature objective (:func:`jaxmech._src.models.auction.reserve_objective`, smooth
    in ``r``) to a tolerance of 1e-6; then the Monte Carlo objective of the mechanism itself (its pivot payments by
    bisection, independent of the quadrature's formula), the exact audit and the support-grid check.

    Under a correlated prior (a Gaussian copula) the quadrature weights every point by the copula's density
    (:func:`jaxmech._src.models.auction.reserve_objective`): the same Nelder-Mead, and the Monte Carlo mean of the
    mechanism on fresh profiles (sampled by the prior itself) checks it."""
    n = env.n_agents
    lo, hi = np.asarray(env.lo, np.float64), np.asarray(env.hi, np.float64)
    k_start, k_eval, k_audit = jax.random.split(key, 3)
    ppfs = [quantile_function(m, dtype) for m in prior.marginals]
    quad = auction.reserve_objective(env, prior, objective=objective, revenue_weight=revenue_weight, panels=panels,
                                     dtype=dtype, ppfs=ppfs)  # fmt: skip
    coarse = auction.reserve_objective(env, prior, objective=objective, revenue_weight=revenue_weight,
                                       panels=max(2, panels // 2), dtype=dtype, ppfs=ppfs)  # fmt: skip

    def value(r):
        return float(quad(jnp.asarray(np.clip(r, lo, hi), dtype))[0])

    colds = np.asarray(jax.random.uniform(k_start, (starts, n), jnp.float32), np.float64) * (hi - lo) + lo

    def loss(z):  # outside the support: the value at its edge less the distance, so no flat plateau (where a
        # simplex collapses: welfare stalled at r = (0, 1), buyer 2 never eligible) but a slope back inside
        return -value(z) + float(np.sum(np.abs(z - np.clip(z, lo, hi))))

    rows, finals, values = [], [], []
    for r0 in colds:
        r = np.clip(nelder_mead(loss, r0, 0.1, xtol=1e-6), lo, hi)
        v = value(r)
        rows.append({"cold": {"reserves": r0.tolist()}, "final": {"reserves": r.tolist()}, "objective": v,
                     "feasible": True})  # fmt: skip
        finals.append(r)
        values.append(v)
    best = int(np.argmax(values))
    params = jnp.asarray(finals[best], dtype)
    t_polish = time.perf_counter()

    mech = auction.reserve_mechanism(env, params)
    per = np.asarray(_mechanism_outcomes(env, mech, prior, k_eval, eval_profiles, dtype), np.float64)
    obj = per[:, 1] if objective == "revenue" else per[:, 0] + revenue_weight * per[:, 1]
    fine = np.asarray(quad(params), np.float64)
    exact = {"value": float(fine[0]), "error": abs(float(fine[0]) - float(coarse(params)[0])),
             "welfare": float(fine[1]), "revenue": float(fine[2])}  # fmt: skip
    audit = final_audit(env, mech, prior, k_audit, audit_profiles, misreports, audit_options, check_grid, dtype,
                        run_audit)  # fmt: skip
    t_audit = time.perf_counter()
    vals = np.asarray(values, np.float64)
    near = [p for p, v in zip(finals, values, strict=True) if v >= vals.max() - 1e-6]
    precision = {"starts_feasible": len(finals), "starts_at_best": len(near), "optimizer_tol": 1e-6,
                 "params_spread": max(float(np.max(np.abs(p - finals[best]))) for p in near)}  # fmt: skip
    result = DesignResult(
        environment=env.name, family="reserve", objective_name=objective, budget=budget, params=params,
        description={"reserves": [float(x) for x in finals[best]]}, mechanism=mech, objective=_mc(obj),
        welfare=_mc(per[:, 0]), revenue=_mc(per[:, 1]), exact=exact, starts=tuple(rows),
        spread={"values": vals.tolist(), "min": float(vals.min()), "max": float(vals.max()),
                "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0},
        precision=precision, audit=audit, reference=None,
        seconds={"search": t_polish - t0, "repair_polish": 0.0, "evaluate_audit": t_audit - t_polish},
    )  # fmt: skip
    return with_reference(result, reference, env, prior, grids, objective, revenue_weight, budget)


def _mechanism_outcomes(env, mech: Mechanism, prior, key, n: int, dtype, block: int = 8192) -> Array:
    """``(welfare, revenue)`` per profile of ``mech`` itself (its own decision and payments) on ``n`` profiles."""
    n_blocks = max(1, -(-n // block))
    s_all = prior.sample(key, n_blocks * block, dtype).reshape(n_blocks, block, -1)

    @_compiled()
    def run(s_all):
        def one(s):
            q, t = decide_and_pay(mech, mech.params, s)
            return jnp.stack([env.welfare(q, s), jnp.sum(t) - env.cost(q)])

        return jax.lax.map(jax.vmap(one), s_all).reshape(-1, 2)

    return run(s_all)


def compare_reference(result: DesignResult, env, prior, grids, *, objective, revenue_weight, budget) -> dict:
    """The LP reference per grid, its ``1/G`` limit and the gap ``limit - design`` (relative too); a message where
    the design is more than 1% below the limit, or why there is no reference."""
    try:
        ref = lp.lp_reference(env, prior, tuple(grids), objective=objective, revenue_weight=revenue_weight,
                              budget=budget)  # fmt: skip
    except (ValueError, ImportError, RuntimeError) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    value = result.value
    gap = ref.limit - value
    rel = gap / abs(ref.limit) if ref.limit != 0 else float("nan")
    out = ref.to_json()
    below = bool(value < ref.limit - 0.01 * abs(ref.limit))
    above = bool(value > ref.limit + 0.01 * abs(ref.limit))
    out.update({"design": value, "design_se": result.objective["se"], "gap": gap, "gap_relative": rel,
                "below_reference": below, "above_reference": above})  # fmt: skip
    if ref.limit2 is not None:
        out["gap_relative_second_order"] = (ref.limit2 - value) / abs(ref.limit2) if ref.limit2 != 0 else float("nan")
    if below:
        out["message"] = (
            f"the design ({value:.6g}) is {100 * rel:.2f}% below the extrapolated LP value {ref.limit:.6g}: a better "
            "mechanism may exist (another family, more starts or steps)"
        )
        if ref.limit2 is not None:
            out["message"] += (
                f"; the second-order fit (limit + b/G + c/G^2) gives {ref.limit2:.6g}, gap "
                f"{100 * out['gap_relative_second_order']:.2f}%: where the two fits differ, the extrapolation's own "
                "error is of that size (finer grids settle it)"
            )
        if budget == "ex_ante" and getattr(result, "family", None) in SEARCHED_UNDER_EX_ANTE:
            out["message"] += (
                "; under an ex ante budget family 'virtual' gives the best mechanism where its rule is monotone "
                "(the default when no family is named)"
            )
    if above:  # no mechanism beats the continuum's optimum: the extrapolation (or a constraint) is off
        out["message"] = (
            f"the design ({value:.6g}) is {-100 * rel:.2f}% ABOVE the extrapolated LP value {ref.limit:.6g}: the "
            f"extrapolation from grids {[x.grid for x in ref.solutions]} is not reliable "
            "(finer or more grids settle it), or the design breaks a constraint (see its audit)"
        )
    return out
