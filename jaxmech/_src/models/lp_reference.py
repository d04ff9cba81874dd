"""The finite-type LP reference for mechanism design: the best ex post IC and IR mechanism on a type grid.

An independent check on any design result. Each agent's one-dimensional signal takes ``G`` values (the
marginal's quantiles at ``(j + 1/2) / G``, probability ``1/G`` each); for every profile ``s`` of the grid the
LP chooses a trade / provision probability ``q(s) in [0, 1]`` (randomized allocations allowed) and payments
``t_i(s)``, subject to

* ex post IC between grid types (CE Def 2 restricted to grid misreports): for every agent ``i``, ``s_-i`` and
  types ``x, x'``: ``q(x, s_-i) a_i(x, s_-i) - t_i(x, s_-i) >= q(x', s_-i) a_i(x, s_-i) - t_i(x', s_-i)``;
* ex post IR: ``q(s) a_i(s) - t_i(s) >= 0``;
* the budget, ex post (``sum_i t_i(s) - cost(q(s)) >= 0`` in every state, the papers' notion) or ex ante
  (in expectation);

and maximizes expected welfare, revenue, or a weighted sum. Here ``a_i(s) = v_i(1, s) - v_i(0, s)`` is what
the outcome is worth to agent ``i`` in a separable two-outcome environment (CE Def 6: bilateral trade,
``a = (v_beta, -v_sigma)``; a public good, ``a_i = V_i``), read off the environment itself.

Where ``a_i`` is monotone in the agent's own signal (single crossing, CE Def 7) the IC constraints between
adjacent types imply all the others (their sum gives monotone ``q``, and monotone ``q`` with adjacent IC gives
global IC), so ``ic="local"`` keeps ``2 (G - 1) G^{n-1}`` rows per agent instead of ``G^n (G - 1)``; ``ic="full"``
writes every pair (used by the tests to confirm the reduction). The LP's optimum is biased upward on a grid
(fewer IC constraints than the continuum), so :func:`lp_reference` solves several ``G`` and extrapolates in
``1/G``. Types and values are evaluated with the environment's own functions in the working precision
(float32 unless ``jax_enable_x64``: ~1e-7 relative), the LP in float64. Needs scipy (HiGHS):
``pip install 'jaxmech[lp]'``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.core.environments import Environment
from jaxmech._src.core.priors import Prior


class LPSolution(NamedTuple):
    """One grid's LP optimum.

    Attributes:
      grid: types per agent ``G``.
      value: the optimal objective (expected welfare / revenue / weighted sum).
      welfare, revenue: the optimal mechanism's expected welfare and revenue (= -deficit).
      q: ``(G,) * n`` allocation probabilities; ``t``: ``(n,) + (G,) * n`` payments.
      types: ``(n, G)`` the grid of each agent's signal.
      randomized_share: probability of profiles whose ``q`` is strictly between 1e-6 and 1 - 1e-6.
      solve_s: HiGHS wall time; rows, cols: the LP's size.
    """

    grid: int
    value: float
    welfare: float
    revenue: float
    q: np.ndarray
    t: np.ndarray
    types: np.ndarray
    randomized_share: float
    solve_s: float
    rows: int
    cols: int


class LPReference(NamedTuple):
    """LP values per grid and their ``1/G`` extrapolation ``value(G) ~ limit + slope / G`` (least squares)."""

    solutions: tuple[LPSolution, ...]
    limit: float
    slope: float
    residual: float  # largest |fit - value| over the grids

    def to_json(self) -> dict:
        return {
            "grids": [s.grid for s in self.solutions],
            "values": [s.value for s in self.solutions],
            "welfare": [s.welfare for s in self.solutions],
            "revenue": [s.revenue for s in self.solutions],
            "randomized_share": [s.randomized_share for s in self.solutions],
            "solve_s": [s.solve_s for s in self.solutions],
            "limit": self.limit,
            "slope": self.slope,
            "fit_residual": self.residual,
        }


OBJECTIVES = ("welfare", "revenue")
BUDGETS = ("ex_post", "ex_ante")


def grid_types(prior: Prior, grid: int) -> np.ndarray:
    """``(n, G)``: each agent's signal at its marginal's quantiles ``(j + 1/2) / G`` (equal probabilities)."""
    if prior.cholesky is not None:
        raise ValueError("lp_reference: needs independent signals (the prior has a correlation matrix)")
    if any(d != 1 for d in prior.dims):
        raise ValueError(f"lp_reference: needs one-dimensional signals, got dims {list(prior.dims)}")
    u = (np.arange(grid) + 0.5) / grid
    return np.stack([np.asarray(m.ppf(jnp.asarray(u, jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)),
                                np.float64) for m in prior.marginals])  # fmt: skip


def _coefficients(env: Environment, types: np.ndarray):
    """On the grid: ``a[i][s]`` (worth of the outcome to agent i), the welfare and cost slopes and constants."""
    n, g = types.shape
    profiles = np.array(list(itertools.product(*types)), np.float64)  # (G^n, n), agent 0 slowest
    s = jnp.asarray(profiles, jnp.float32 if not jax.config.jax_enable_x64 else jnp.float64)
    one, zero = jnp.ones((), s.dtype), jnp.zeros((), s.dtype)

    def per_profile(x):
        v1, v0 = env.value(one, x), env.value(zero, x)
        return v1 - v0, env.welfare(one, x) - env.welfare(zero, x), env.welfare(zero, x), env.cost(one) - env.cost(zero), env.cost(zero)

    a, w1, w0, c1, c0 = (np.asarray(x, np.float64) for x in jax.vmap(per_profile)(s))
    shape = (g,) * n
    return a.T.reshape((n,) + shape), w1.reshape(shape), w0.reshape(shape), c1.reshape(shape), c0.reshape(shape)


def solve(
    env: Environment,
    prior: Prior,
    grid: int,
    *,
    objective: str = "welfare",
    revenue_weight: float = 0.0,
    budget: str = "ex_post",
    ic: str = "auto",
    deterministic_check: bool = False,
) -> LPSolution:
    """The best ex post IC and IR mechanism on a ``grid``-point type grid per agent (see the module docstring).

    ``objective``: ``"welfare"`` (plus ``revenue_weight`` x revenue) or ``"revenue"``; ``budget``: ``"ex_post"``
    or ``"ex_ante"``; ``ic``: ``"local"`` (adjacent types; valid where each ``a_i`` is monotone in the own signal),
    ``"full"`` (every pair) or ``"auto"`` (local where valid, else full).
    """
    from scipy import sparse  # optional dependency (the `lp` extra)
    from scipy.optimize import linprog

    if objective not in OBJECTIVES:
        raise ValueError(f"objective: one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if budget not in BUDGETS:
        raise ValueError(f"budget: one of {', '.join(BUDGETS)}, got {budget!r}")
    if ic not in ("auto", "local", "full"):
        raise ValueError(f"ic: one of auto, local, full, got {ic!r}")
    if grid < 2:
        raise ValueError(f"grid: need >= 2 types per agent, got {grid}")
    types = grid_types(prior, grid)
    n, g = types.shape
    a, w1, w0, c1, c0 = _coefficients(env, types)
    shape = (g,) * n
    m = g**n
    p = np.full(m, 1.0 / m)
    idx = np.arange(m).reshape(shape)
    qv = idx.ravel()  # column of q(s)

    def tv(i):  # columns of t_i(s)
        return (1 + i) * m + idx

    monotone = all(
        np.all(np.diff(a[i], axis=i) >= -1e-12) or np.all(np.diff(a[i], axis=i) <= 1e-12) for i in range(n)
    )
    local = ic == "local" or (ic == "auto" and monotone)
    if ic == "local" and not monotone:
        raise ValueError("ic='local' needs each agent's worth a_i monotone in its own signal (single crossing)")

    rows, cols, vals, rhs = [], [], [], []
    r = 0

    # IC: u_i(x | x, s_-i) >= u_i(x' | x, s_-i):  q(x') a(x) - t(x') - q(x) a(x) + t(x) <= 0
    for i in range(n):
        ai, ti = a[i], tv(i)
        pairs = [(j, j + 1) for j in range(g - 1)] + [(j + 1, j) for j in range(g - 1)] if local else [
            (j, k) for j in range(g) for k in range(g) if j != k
        ]  # fmt: skip
        for j, k in pairs:  # true type j, report k
            sl_j = tuple(j if d == i else slice(None) for d in range(n))
            sl_k = tuple(k if d == i else slice(None) for d in range(n))
            aj = ai[sl_j].ravel()
            cnt = aj.size
            base = np.arange(cnt) + r
            rows += [base, base, base, base]
            cols += [idx[sl_k].ravel(), ti[sl_k].ravel(), idx[sl_j].ravel(), ti[sl_j].ravel()]
            vals += [aj, -np.ones(cnt), -aj, np.ones(cnt)]
            rhs.append(np.zeros(cnt))
            r += cnt
    # IR: -q a_i + t_i <= 0
    for i in range(n):
        base = np.arange(m) + r
        rows += [base, base]
        cols += [qv, tv(i).ravel()]
        vals += [-a[i].ravel(), np.ones(m)]
        rhs.append(np.zeros(m))
        r += m
    # budget: cost(q) - sum t <= 0, cost(q) = c0 + c1 q
    if budget == "ex_post":
        base = np.arange(m) + r
        rows += [base] + [base] * n
        cols += [qv] + [tv(i).ravel() for i in range(n)]
        vals += [c1.ravel()] + [-np.ones(m)] * n
        rhs.append(-c0.ravel())
        r += m
    else:
        rows += [np.full(m, r)] * (n + 1)
        cols += [qv] + [tv(i).ravel() for i in range(n)]
        vals += [p * c1.ravel()] + [-p] * n
        rhs.append(np.array([-np.sum(p * c0.ravel())]))
        r += 1
    a_ub = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r, m * (1 + n))
    )
    b_ub = np.concatenate(rhs)
    # maximize welfare (+ weight x revenue) or revenue; revenue = sum t - cost
    welfare_c = np.concatenate([p * w1.ravel(), np.zeros(n * m)])
    revenue_c = np.concatenate([-p * c1.ravel(), np.tile(p, n)])
    c = revenue_c if objective == "revenue" else welfare_c + revenue_weight * revenue_c
    bounds = [(0.0, 1.0)] * m + [(None, None)] * (n * m)
    t0 = time.perf_counter()
    res = linprog(-c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
    solve_s = time.perf_counter() - t0
    if res.status != 0:
        raise RuntimeError(f"lp_reference: HiGHS did not solve the G = {grid} LP ({res.message})")
    x = res.x
    q = x[:m]
    const_w = float(np.sum(p * w0.ravel()))
    const_r = -float(np.sum(p * c0.ravel()))
    welfare = float(welfare_c @ x) + const_w
    revenue = float(revenue_c @ x) + const_r
    value = revenue if objective == "revenue" else welfare + revenue_weight * revenue
    return LPSolution(
        grid=grid,
        value=value,
        welfare=welfare,
        revenue=revenue,
        q=q.reshape(shape),
        t=x[m:].reshape((n,) + shape),
        types=types,
        randomized_share=float(np.mean((q > 1e-6) & (q < 1 - 1e-6))),
        solve_s=solve_s,
        rows=r,
        cols=m * (1 + n),
    )


def extrapolate(grids: Sequence[int], values: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares ``value(G) = limit + slope / G``; returns ``(limit, slope, largest residual)``."""
    x = 1.0 / np.asarray(grids, np.float64)
    y = np.asarray(values, np.float64)
    if len(x) == 1:
        return float(y[0]), 0.0, 0.0
    design = np.stack([np.ones_like(x), x], 1)
    (limit, slope), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(limit), float(slope), float(np.max(np.abs(design @ [limit, slope] - y)))


def lp_reference(
    env: Environment,
    prior: Prior,
    grids: Sequence[int] = (17, 33, 65),
    **kwargs,
) -> LPReference:
    """:func:`solve` on each grid and the ``1/G`` extrapolation of the optimal value (the reference a design is
    measured against: the grid optimum is biased upward, the limit estimates the continuum's)."""
    sols = tuple(solve(env, prior, g, **kwargs) for g in grids)
    limit, slope, resid = extrapolate([s.grid for s in sols], [s.value for s in sols])
    return LPReference(sols, limit, slope, resid)
