"""The finite-type LP reference (jm.lp_reference): its solutions satisfy every constraint when checked by brute
force, the adjacent-type reduction equals the full LP, and its values match the closed forms it must.

One grid's LP (models/lp_reference.py: solve) is jm.lp_reference's step, too generic a name to export: used directly.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import jaxmech as jm
from jaxmech._src.models import lp_reference as lp

pytest.importorskip("scipy")


def _trade(a):
    env = jm.bilateral_trade(jm.linear_trade_values(a))
    return env, jm.independent(env.dims)


def _brute_force_violations(sol: jm.LPSolution, worth, cost_slope=0.0, budget="ex_post"):
    """Largest violation of ex post IC (every pair of grid types), IR and the budget, straight from (q, t)."""
    q, t = sol.q, sol.t
    n = t.shape[0]
    g = q.shape[0]
    ic = ir = 0.0
    for s in itertools.product(range(g), repeat=n):
        for i in range(n):
            a = worth(i, s)
            u_true = q[s] * a - t[i][s]
            ir = max(ir, -u_true)
            for k in range(g):
                r = tuple(k if d == i else s[d] for d in range(n))
                ic = max(ic, q[r] * a - t[i][r] - u_true)
    deficit = cost_slope * q - t.sum(0)
    bud = float(np.max(deficit)) if budget == "ex_post" else float(np.mean(deficit))
    return ic, ir, bud


@pytest.mark.parametrize("a", [0.0, 0.5])
def test_solution_is_ex_post_ic_ir_and_balanced_by_brute_force(a):
    env, prior = _trade(a)
    sol = lp.solve(env, prior, 9)
    x = sol.types

    def worth(i, s):  # bilateral trade: (v_beta, -v_sigma), v_i = s_i + a s_-i
        sb, ss = x[0][s[0]], x[1][s[1]]
        return sb + a * ss if i == 0 else -(ss + a * sb)

    ic, ir, bud = _brute_force_violations(sol, worth)
    assert ic < 1e-7 and ir < 1e-7 and bud < 1e-7
    # the objective is the expected gains from trade of that (q, t)
    gains = (x[0][:, None] - x[1][None, :]) * (1 - a)
    assert sol.welfare == pytest.approx(float(np.mean(sol.q * gains)), abs=1e-6)  # types in float32


def test_adjacent_type_ic_equals_the_full_lp():
    """Single crossing (a_i monotone in s_i): the local-IC LP has the optimum of the all-pairs LP."""
    for a in (0.0, 0.5):
        env, prior = _trade(a)
        full = lp.solve(env, prior, 7, ic="full")
        local = lp.solve(env, prior, 7, ic="local")
        assert local.rows < full.rows
        assert local.value == pytest.approx(full.value, abs=1e-9)


def test_private_values_limit_is_the_posted_price_optimum():
    """a = 0, uniform signals: ex post IC, IR and budget balance allow only posted prices (Hagerty-Rogerson); the
    best, p = 1/2, trades 1/4 of the time with gains 1/2 on average: 1/8. Every grid optimum is at least the best
    posted price on that grid (feasible there), and the 1/G extrapolation lands on 1/8."""
    env, prior = _trade(0.0)
    ref = jm.lp_reference(env, prior, grids=(9, 17, 33))
    for sol in ref.solutions:
        b, s = sol.types
        gains = b[:, None] - s[None, :]
        best_posted = max(
            float(np.mean(((b[:, None] >= p) & (s[None, :] <= p)) * gains)) for p in np.linspace(0, 1, 201)
        )
        assert sol.value >= best_posted - 1e-6  # float32 types
        assert sol.randomized_share == 0.0
    assert ref.limit == pytest.approx(1 / 8, abs=1.5e-3)
    assert ref.residual < 5e-4  # the 1/G fit is good to a few 1e-4 from G = 9 on


def test_ex_ante_budget_is_a_relaxation_that_helps():
    """The budget in expectation only is a relaxation: ex post optimum <= ex ante optimum <= first best, and here
    (a = 0, uniform) it strictly helps: payments may run a deficit in some states if others cover it."""
    env, prior = _trade(0.0)
    post = lp.solve(env, prior, 17, budget="ex_post")
    ante = lp.solve(env, prior, 17, budget="ex_ante")
    b, s = post.types
    first_best = float(np.mean(np.maximum(b[:, None] - s[None, :], 0.0)))
    assert post.value <= ante.value + 1e-9 <= first_best + 1e-9
    assert ante.value > post.value + 1e-4


def test_ex_ante_limit_is_myerson_satterthwaite():
    """a = 0, uniform, ex ante budget: the best ex post IC and IR mechanism trades iff s_beta - s_sigma >= 1/4,
    welfare 9/64 (Myerson & Satterthwaite 1983's bound, reached by Chatterjee-Samuelson's linear equilibrium; ex post
    IC too, since the rule is monotone and pivot payments have the same expectation). G = 9, 17, 33: the
    second-order limit 0.1406095 (the 1/G one 0.14151)."""
    env, prior = _trade(0.0)
    ref = jm.lp_reference(env, prior, grids=(9, 17, 33), budget="ex_ante")
    assert ref.limit2 == pytest.approx(9 / 64, abs=1e-4)
    assert ref.limit == pytest.approx(9 / 64, abs=2e-3)


def test_public_good_solution_is_feasible_and_at_least_the_best_threshold_rule():
    """Public good, n = 2, v_i = s_i + a s_j, c = 1: the LP's optimum satisfies every constraint by brute force and
    is at least the welfare of CE Thm 9's threshold rules restricted to the grid (each feasible there)."""
    a, cost = 0.3, 1.0
    env = jm.public_good(jm.linear_public_values(a, 2), cost, 2)
    prior = jm.independent(env.dims)
    sol = lp.solve(env, prior, 9)
    x = sol.types

    def worth(i, s):
        si, sj = x[i][s[i]], x[1 - i][s[1 - i]]
        return si + a * sj

    ic, ir, bud = _brute_force_violations(sol, worth, cost_slope=cost)
    assert ic < 1e-7 and ir < 1e-7 and bud < 1e-7
    v0 = x[0][:, None] + a * x[1][None, :]  # (G, G): agent 0's value at (s_0, s_1)
    v1 = x[1][None, :] + a * x[0][:, None]
    # threshold rules on the budget line (CE Thm 9: provide iff v_i >= vbar_i for both, vbar_1 + vbar_2 = c, pivot
    # payments sum to >= c): ex post IC, IR and balanced on the continuum, so feasible on the grid; their welfare
    # on the grid is a lower bound of the LP value
    best = 0.0
    for vb1 in np.linspace(0.0, cost, 101):
        provide = (v0 >= vb1) & (v1 >= cost - vb1)
        best = max(best, float(np.mean(provide * (v0 + v1 - cost))))
    assert sol.welfare >= best - 1e-9


def test_bad_arguments_are_one_line():
    env, prior = _trade(0.5)
    with pytest.raises(ValueError, match="objective: one of welfare, revenue"):
        lp.solve(env, prior, 5, objective="profit")
    with pytest.raises(ValueError, match="one-dimensional signals"):
        lp.solve(jm.example1(), jm.independent(jm.example1().dims), 5)
    with pytest.raises(ValueError, match="grid: need >= 2"):
        lp.solve(env, prior, 1)
    with pytest.raises(ValueError, match="method: one of auto, highs-ds, highs-ipm"):
        lp.solve(env, prior, 5, method="simplex")


def test_interior_point_and_simplex_agree():
    """Both HiGHS methods give the same optimal value (the auto choice only changes the time), n = 3 and n = 2."""
    env = jm.public_good(jm.linear_public_values(0.3, 3), 1.5, 3)
    prior = jm.independent(env.dims)
    ds, ipm = (lp.solve(env, prior, 5, method=m).value for m in ("highs-ds", "highs-ipm"))
    assert ipm == pytest.approx(ds, abs=1e-7) and lp.highs_method(3, 500) == "highs-ipm"
    env, prior = _trade(0.3)
    ds, ipm = (lp.solve(env, prior, 9, method=m).value for m in ("highs-ds", "highs-ipm"))
    assert ipm == pytest.approx(ds, abs=1e-7) and lp.highs_method(2, 500) == "highs-ds"


def _auction(a=0.0, rho=None):
    env = jm.single_object((1, 1), jm.linear_public_values(a, 2))
    prior = (
        jm.independent(env.dims) if rho is None else jm.gaussian_copula(env.dims, jm.uniform(), [[1, rho], [rho, 1]])
    )
    return env, prior


def test_single_object_solution_is_feasible_by_brute_force_and_local_ic_suffices():
    """A single object, V_i = s_i + 0.5 s_j: the LP's (q_1, q_2, t) satisfy every IC pair, IR, sum q <= 1 and a
    non-negative revenue in every state; the adjacent-type LP equals the all-pairs one (V_i rises in s_i)."""
    env, prior = _auction(0.5)
    sol = lp.solve(env, prior, 7, objective="revenue")
    full = lp.solve(env, prior, 7, objective="revenue", ic="full")
    assert sol.q.shape == (2, 7, 7) and sol.rows < full.rows
    assert sol.value == pytest.approx(full.value, abs=1e-9)
    x = sol.types
    ic = ir = 0.0
    for s in itertools.product(range(7), repeat=2):
        for i in range(2):
            v = x[i][s[i]] + 0.5 * x[1 - i][s[1 - i]]
            u = sol.q[i][s] * v - sol.t[i][s]
            ir = max(ir, -u)
            for k in range(7):
                r = (k, s[1]) if i == 0 else (s[0], k)
                ic = max(ic, sol.q[i][r] * v - sol.t[i][r] - u)
    assert ic < 1e-7 and ir < 1e-7
    assert np.all(sol.q >= -1e-9) and np.max(sol.q.sum(0)) <= 1 + 1e-9
    assert np.min(sol.t.sum(0)) >= -1e-7  # no seller cost: revenue >= 0 in every state
    assert sol.revenue == pytest.approx(float(np.mean(sol.t.sum(0))), abs=1e-9)


def test_single_object_limits_are_myerson_and_the_first_best():
    """Two uniform private-value buyers: revenue -> 5/12 (Myerson: second price, reserve 1/2), welfare -> E[max s] =
    2/3, welfare + 0.5 revenue -> (1 + 2w) 2/3 (1 - r^3) - w (1 - r^2) at r = w / (1 + 2w) (the virtual surplus
    s + w (2s - 1) is positive above r) = 0.84375; every 1/G limit within 1e-3 (measured: 2e-4, 3e-4, 3e-4)."""
    env, prior = _auction()
    rev = jm.lp_reference(env, prior, grids=(17, 33, 65), objective="revenue")
    assert rev.limit == pytest.approx(5 / 12, abs=1e-3)
    assert all(s.value > 5 / 12 for s in rev.solutions)  # the grid optimum is biased upward
    assert rev.solutions[-1].randomized_share == 0.0
    wel = jm.lp_reference(env, prior, grids=(17, 33))
    assert wel.limit == pytest.approx(2 / 3, abs=1e-3)
    w, r = 0.5, 0.5 / 2.0
    mix = jm.lp_reference(env, prior, grids=(17, 33, 65), revenue_weight=w)
    assert mix.limit == pytest.approx((1 + 2 * w) * 2 / 3 * (1 - r**3) - w * (1 - r**2), abs=1e-3)


def test_copula_cell_probabilities_against_the_bivariate_normal_cdf():
    """Gaussian copula, rho = 0.5: the cell probabilities (Gauss-Legendre of the copula density per cell) against the
    exact ones by inclusion-exclusion of scipy's bivariate normal CDF: total variation < 3e-4 at G = 17; the midpoint
    rule (one node) is far worse in the corner cells; an identity correlation gives 1/G^n exactly."""
    from scipy.stats import multivariate_normal, norm

    rho, g = 0.5, 17
    _, prior = _auction(rho=rho)
    e = norm.ppf(np.linspace(0.0, 1.0, g + 1))
    e[0], e[-1] = -40.0, 40.0
    corners = np.stack(np.meshgrid(e, e, indexing="ij"), -1)
    cdf = multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, rho], [rho, 1.0]]).cdf(corners)
    exact = np.diff(np.diff(cdf, axis=0), axis=1)
    w = lp.grid_weights(prior, g)
    assert np.abs(w - exact).sum() < 3e-4 and w.sum() == pytest.approx(1.0)
    assert np.max(np.abs(w / exact - 1)) < 5e-3
    assert np.max(np.abs(lp.grid_weights(prior, g, nodes=1) / exact - 1)) > 0.1
    three = jm.gaussian_copula((1, 1, 1), jm.uniform(), np.eye(3))
    np.testing.assert_allclose(lp.grid_weights(three, 5), 1 / 125, rtol=1e-12)


def test_correlated_private_trade_limit_is_the_best_posted_price():
    """Private-values trade under a Gaussian copula (rho = 0.5): ex post IC, IR and balanced rules are posted prices
    whatever the prior (Hagerty-Rogerson), so the LP's 1/G limit is the best posted price's gains from trade, here by
    an independent midpoint rule in the copula's conditional (Rosenblatt) coordinates: p = 1/2, 0.067488."""
    from scipy.special import ndtr, ndtri

    rho = 0.5
    env = jm.bilateral_trade(jm.linear_trade_values(0.0))
    prior = jm.gaussian_copula(env.dims, jm.uniform(), [[1, rho], [rho, 1]])
    ref = jm.lp_reference(env, prior, grids=(17, 33))
    u = (np.arange(2000) + 0.5) / 2000
    z = ndtri(u)
    b = u[:, None]
    s = ndtr(rho * z[:, None] + np.sqrt(1 - rho**2) * z[None, :])  # seller's signal given the buyer's
    best = max(float(np.mean((b - s) * (b >= p) * (s <= p))) for p in np.linspace(0.4, 0.6, 41))
    assert ref.limit == pytest.approx(best, abs=5e-4)


def test_correlated_ex_ante_budget_weights_the_states_by_the_copula():
    """Under a copula the ex ante budget is the copula-weighted mean deficit: the optimum's mean deficit under the
    cell probabilities is <= 0, and ex post <= ex ante <= the grid's first best under the same weights."""
    env = jm.bilateral_trade(jm.linear_trade_values(0.0))
    prior = jm.gaussian_copula(env.dims, jm.uniform(), [[1.0, 0.5], [0.5, 1.0]])
    post = lp.solve(env, prior, 9)
    ante = lp.solve(env, prior, 9, budget="ex_ante")
    b, s = ante.types
    first_best = float(np.sum(ante.weights * np.maximum(b[:, None] - s[None, :], 0.0)))
    assert post.value <= ante.value + 1e-9 <= first_best + 1e-9
    assert float(np.sum(ante.weights * ante.t.sum(0))) >= -1e-9  # revenue >= 0 in expectation under the copula
    assert ante.welfare == pytest.approx(float(np.sum(ante.weights * ante.q * (b[:, None] - s[None, :]))), abs=1e-6)


def test_second_order_extrapolation_recovers_a_quadratic_in_one_over_g():
    grids = (9, 13, 17, 21)
    values = [0.8 + 0.3 / g - 0.7 / g**2 for g in grids]
    assert lp.extrapolate_second_order(grids, values) == pytest.approx(0.8, abs=1e-12)
    assert lp.extrapolate_second_order(grids[:2], values[:2]) is None


def test_second_order_limit_is_closer_to_the_closed_form_than_the_first_order():
    """Private trade (the optimum 1/8, Hagerty-Rogerson) on G = 9, 17, 33: the 1/G fit overshoots by 5.9e-4, the fit
    with a 1/G^2 term lands within 3e-5; the run reports both (the first-order one decides the 1% flag)."""
    env = jm.bilateral_trade(jm.linear_trade_values(0.0))
    ref = jm.lp_reference(env, jm.independent(env.dims), (9, 17, 33))
    assert abs(ref.limit - 0.125) > 5e-4 and abs(ref.limit2 - 0.125) <= 3e-5
    assert ref.to_json()["limit_second_order"] == ref.limit2
