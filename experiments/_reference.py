"""Independent references for the paper experiments: closed forms and quadrature in NumPy / SciPy only.

Nothing here imports ``jaxmech``: each function restates a paper formula (or its closed-form consequence) and
integrates it on its own, so that a report row compares the library's Monte Carlo number with a second
computation that shares no code with it. (``reproduce`` skips modules whose name starts with ``_``.)

Every expectation over the signal square is a midpoint rule in Rosenblatt coordinates: independent
``u_1, u_2 ~ U[0, 1]``, ``s_1 = Q_1(u_1)``, ``s_2 = Q_2(Phi(rho z_1 + sqrt(1 - rho^2) z_2))`` with ``z = Phi^{-1}(u)``,
which is the Gaussian copula with marginal quantiles ``Q_j`` (uniform or beta). The integrands are continuous and
bounded, so the rule converges like ``1/N^2`` away from kinks; :func:`expect` returns the value at ``N`` points
per axis with the difference from ``N / 2`` as its error bound.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, special

# --------------------------------------------------------------------------------------------------------------
# priors (the config's [prior] table as recorded in a sweep row's "settings")


def _quantile(marginal: dict):
    lo, hi = marginal.get("lo", 0.0), marginal.get("hi", 1.0)
    if marginal.get("kind", "uniform") == "beta":
        a, b = marginal["a"], marginal["b"]
        return lambda u: lo + (hi - lo) * special.betaincinv(a, b, u)
    return lambda u: lo + (hi - lo) * u


def _marginals(prior: dict, size: int) -> list[dict]:
    if prior.get("marginals"):
        return list(prior["marginals"])
    return [prior.get("marginal") or {"kind": "uniform"}] * size


def _rho(prior: dict) -> float:
    if prior.get("correlation") is not None:
        return float(prior["correlation"][0][1])
    return float(prior.get("rho") or 0.0)


def _signals(prior: dict, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Midpoint nodes ``(s_1, s_2)`` (each ``points x points``) of the two-signal prior, equal weights."""
    u = (np.arange(points) + 0.5) / points
    q1, q2 = (_quantile(m) for m in _marginals(prior, 2))
    s1 = np.broadcast_to(q1(u)[:, None], (points, points))
    r = _rho(prior)
    if r == 0.0:
        return s1, np.broadcast_to(q2(u)[None, :], (points, points))
    z = special.ndtri(u)
    return s1, q2(special.ndtr(r * z[:, None] + math.sqrt(1.0 - r * r) * z[None, :]))


def expect(prior: dict, h, points: int = 1000) -> tuple[float, float]:
    """``(E[h(s_1, s_2)], error bound)`` under a two-signal prior: the midpoint rule at ``points`` and at
    ``points / 2`` per axis (Rosenblatt coordinates); the bound is their difference."""
    fine = float(np.mean(h(*_signals(prior, points))))
    coarse = float(np.mean(h(*_signals(prior, points // 2))))
    return fine, abs(fine - coarse)


# --------------------------------------------------------------------------------------------------------------
# bilateral trade: the generalized VCG deficit of the efficient rule (CE eqs. (5)-(6)), pointwise closed forms


def trade_deficit(env: dict, s_b: np.ndarray, s_s: np.ndarray) -> np.ndarray:
    """``v_sigma(s_b, g_sigma(s_b)) - v_beta(g_beta(s_s), s_s)`` where the efficient rule (ties: no trade) trades,
    0 elsewhere, with the pivots in closed form (CE Sec. 4):

    - linear ``v_i = s_i + a s_-i`` (a < 1): pivots ``s_s`` / ``s_b``, deficit ``(1 + a)(s_b - s_s)^+``;
    - multiplicative (``v_b = s_b + a s_s + b s_b s_s``, ``v_s = gamma + s_s + a s_b``): the roots of
      ``Delta = (1 - a)(s_b - s_s) + b s_b s_s - gamma = 0``, ``x* = ((1 - a) s_s + gamma) / (1 - a + b s_s)``,
      ``y* = min(1, ((1 - a) s_b - gamma) / (1 - a - b s_b))``;
    - deadzone (``Delta = k deadzone_w(s_b - s_s)``): trade iff ``s_b > s_s + w``, which is also CE Thm 6's ``g_*``
      (the largest efficient trade set's complement), pivots ``s_s + w`` / ``s_b - w``: deficit ``2 (s_b - s_s - w)^+``.
    """
    kind, a = env["values"], env["a"]
    if kind == "linear":
        return np.where(s_b > s_s, (1.0 + a) * (s_b - s_s), 0.0)
    if kind == "multiplicative":
        b, g = env["b"], env["gamma"]
        trade = (1.0 - a) * (s_b - s_s) + b * s_b * s_s - g > 0.0
        gb = ((1.0 - a) * s_s + g) / ((1.0 - a) + b * s_s)
        gs = np.minimum(1.0, ((1.0 - a) * s_b - g) / ((1.0 - a) - b * s_b))
        d = (g + gs + a * s_b) - (gb + a * s_s + b * gb * s_s)
        return np.where(trade, d, 0.0)
    if kind == "deadzone":
        return 2.0 * np.maximum(0.0, s_b - s_s - env["w"])
    raise ValueError(f"no closed-form deficit for values = {kind!r}")


def trade_gain_slopes(env: dict, s_b: float, s_s: float) -> tuple[float, float, float]:
    """The gain from trade ``v_beta - v_sigma`` at ``(s_beta, s_sigma)`` and its partial derivatives in ``s_beta`` and
    ``s_sigma``, in closed form from the environment's value model (CE Def 7 for trade: at a tie the gain must rise
    in ``s_beta`` and fall in ``s_sigma``):

    - linear ``v_i = s_i + a s_-i``: ``(1 - a)(s_b - s_s)``, slopes ``(1 - a, -(1 - a))``;
    - multiplicative (``v_b = s_b + a s_s + b s_b s_s``, ``v_s = gamma + s_s + a s_b``):
      ``(1 - a)(s_b - s_s) + b s_b s_s - gamma``, slopes ``(1 - a + b s_s, -(1 - a) + b s_b)``;
    - convex (``v_b = s_b + a s_s^2``, ``v_s = s_s``): ``s_b - s_s + a s_s^2``, slopes ``(1, -1 + 2 a s_s)``.
    """
    kind, a = env["values"], env["a"]
    if kind == "linear":
        return (1.0 - a) * (s_b - s_s), 1.0 - a, -(1.0 - a)
    if kind == "multiplicative":
        b, g = env["b"], env["gamma"]
        return (1.0 - a) * (s_b - s_s) + b * s_b * s_s - g, 1.0 - a + b * s_s, -(1.0 - a) + b * s_b
    if kind == "convex":
        return s_b - s_s + a * s_s**2, 1.0, -1.0 + 2.0 * a * s_s
    raise ValueError(f"no closed-form gain slopes for values = {kind!r}")


# --------------------------------------------------------------------------------------------------------------
# public good, v_i = s_i + a sum_(j != i) s_j, cost c: the efficient rule's generalized VCG deficit (CE Thm 8)


def public_good_deficit(a: float, c: float, s: np.ndarray) -> np.ndarray:
    """``c - sum_i t_i`` where ``V(s) = (1 + a (n - 1)) sum s > c``, 0 elsewhere; ``s`` has shape ``(..., n)``.

    Agent i's pivot is ``clip(k - S_-i, 0, 1)`` with ``k = c / (1 + a (n - 1))`` and it pays its value there,
    ``t_i = pivot_i + a S_-i`` (CE Thm 9's proof: ``t_i = inf{v_i(x, s_-i) : f(x, s_-i) = 1}``)."""
    n = s.shape[-1]
    k = c / (1.0 + a * (n - 1))
    total = s.sum(-1, keepdims=True)
    others = total - s
    t = np.clip(k - others, 0.0, 1.0) + a * others
    return np.where(total[..., 0] > k, c - t.sum(-1), 0.0)


def thm8_sup_deficit(n: int, a: float, c: float) -> float:
    """The supremum of the efficient rule's VCG deficit under increasing differences (a < 1):
    ``(1 - a) k`` with ``k = c / (1 + a (n - 1))``, approached at ``s_i = k / (n - 1)`` for all i (where every pivot
    is interior and the deficit is ``(n - 1)(1 - a)(S - k)``); needs ``k <= n - 1``."""
    return (1.0 - a) * c / (1.0 + a * (n - 1))


def thm8_p_deficit_two(a: float, c: float) -> float:
    """``P(deficit > 0)`` for n = 2, independent U[0, 1] signals, 0 < a < 1, ``k = c / (1 + a) <= 1``.

    Provided states split by the pivots: both interior (deficit ``(1 - a)(S - k)``, area ``k^2 / 2``); one
    agent's pivot at 0, ``s_1 < k <= s_2`` (deficit ``a (k - s_2) + (1 - a) s_1``, positive above the line
    ``s_1 = a (s_2 - k) / (1 - a)``); both at 0 (deficit ``c - a S``, positive below ``S = c / a``)."""
    k = c / (1.0 + a)
    r = a / (1.0 - a)
    # {s_1 < k <= s_2, s_1 > r (s_2 - k)}: integrate k - min(k, r (s_2 - k)) over s_2 in [k, 1]
    x = min(1.0, k + k / r)  # where r (s_2 - k) reaches k
    one = k * (x - k) - r * (x - k) ** 2 / 2.0
    # {s_1, s_2 in [k, 1], S < c / a}: shifted by k, {x, y in [0, L], x + y < m} with L = 1 - k, m = c / a - 2 k
    big, m = 1.0 - k, c / a - 2.0 * k
    both = m * m / 2 if m <= big else big * big - (2 * big - m) ** 2 / 2 if m <= 2 * big else big * big
    return k * k / 2.0 + 2.0 * one + both


def grid_public_good(n: int, a: float, c: float, points: int) -> tuple[float, float]:
    """``(P(deficit > 0), max deficit)`` on the ``points^n`` midpoint grid of U[0, 1]^n: a brute-force check of the
    closed forms above (tests)."""
    u = (np.arange(points) + 0.5) / points
    s = np.stack(np.meshgrid(*([u] * n), indexing="ij"), -1)
    d = public_good_deficit(a, c, s)
    return float(np.mean(d > 0)), float(d.max())


def best_posted_public_good(a: float, c: float) -> tuple[float, float]:
    """The best posted-cutoff rule (provide iff ``s_1 >= p_1`` and ``s_2 >= p_2``) for two agents, ``v_i = s_i + a s_j``
    with ``-1 < a < 0`` (values falling in the other's signal), cost ``c``, independent U[0, 1] signals, ex post budget.

    The pivot payments are ``t_i = p_i + a s_j``, so the worst state is ``s = (1, 1)`` and the budget is
    ``p_1 + p_2 >= c - 2 a``; on that line the welfare ``int_{p_1}^1 int_{p_2}^1 ((1 + a)(s_1 + s_2) - c)`` is
    ``(1 - p_1)(1 - p_2) [(1 + a)(2 + c - 2 a) / 2 - c]`` (the bracket constant along the line), largest at the
    symmetric ``p = (c - 2 a) / 2``. Returns ``(p, welfare)``; needs ``0 <= p <= 1``."""
    p = (c - 2.0 * a) / 2.0
    if not (-1.0 < a < 0.0 and 0.0 <= p <= 1.0):
        raise ValueError(f"best_posted_public_good: needs -1 < a < 0 and 0 <= (c - 2a)/2 <= 1, got a={a}, c={c}")
    return p, (1.0 - p) ** 2 * ((1.0 + a) * (2.0 + c - 2.0 * a) / 2.0 - c)


# --------------------------------------------------------------------------------------------------------------
# CE Sec. 5.2: second best (threshold contribution rules on the budget line, CE Thm 9) vs first best


def threshold_welfare(a: float, c: float, vbar1: float, vbar2: float | None = None) -> float:
    """Expected welfare ``E[(V(s) - c) 1{v_1 >= vbar_1, v_2 >= vbar_2}]`` for ``v_i = s_i + a s_j``, independent
    U[0, 1] signals, ``vbar_2 = c - vbar_1`` (the budget line) unless given: the ``s_1`` integral of the linear
    integrand is exact, the ``s_2`` integral is adaptive Gauss-Kronrod split at every kink of the region's edges."""
    vbar2 = c - vbar1 if vbar2 is None else vbar2

    def edges(s2: float) -> tuple[float, float]:
        lo = max(vbar1 - a * s2, 0.0)
        if a > 0:
            lo = max(lo, (vbar2 - s2) / a)  # v_2 >= vbar_2  <=>  s_1 >= (vbar_2 - s_2) / a
        elif s2 < vbar2:
            return 1.0, 1.0
        return min(lo, 1.0), 1.0

    def inner(s2: float) -> float:  # integral over s_1 in [lo, 1] of (1 + a)(s_1 + s_2) - c
        lo, hi = edges(s2)
        return (1 + a) * ((hi * hi - lo * lo) / 2 + s2 * (hi - lo)) - c * (hi - lo)

    kinks = [vbar2, vbar2 - a]
    if a > 0:
        kinks += [vbar1 / a, (vbar1 - 1) / a]
    if a < 1:
        kinks.append((vbar2 - a * vbar1) / (1 - a * a))
    pts = sorted({0.0, 1.0, *(x for x in kinks if 0.0 < x < 1.0)})
    return sum(integrate.quad(inner, lo, hi, epsabs=1e-12, epsrel=1e-10)[0] for lo, hi in zip(pts[:-1], pts[1:], strict=True))


def threshold_deficit(a: float, c: float, vbar: tuple, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Generalized VCG deficit ``c - t_1 - t_2`` of the threshold rule "provide iff ``v_i >= vbar_i`` for both"
    (CE Def 12) for ``v_i = s_i + a s_j`` (0 where not provided). Agent 1's pivot at ``s_2`` is the least ``x >= 0``
    with ``x + a s_2 >= vbar_1`` and ``s_2 + a x >= vbar_2``: ``max(vbar_1 - a s_2, (vbar_2 - s_2) / a, 0)``, and
    ``t_1 = pivot + a s_2`` (CE Thm 9's proof); agent 2 likewise."""
    v1, v2 = s1 + a * s2, s2 + a * s1

    def price(own: float, other: float, s_other: np.ndarray) -> np.ndarray:
        x = np.maximum(own - a * s_other, 0.0)
        if a > 0:
            x = np.maximum(x, (other - s_other) / a)
        return x + a * s_other

    t = price(vbar[0], vbar[1], s2) + price(vbar[1], vbar[0], s1)
    return np.where((v1 >= vbar[0]) & (v2 >= vbar[1]), c - t, 0.0)


def golden(f, lo: float, hi: float, tol: float = 1e-9) -> float:
    """argmax of a unimodal ``f`` on ``[lo, hi]`` (golden section)."""
    r = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - r * (b - a), a + r * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - r * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + r * (b - a)
            fd = f(d)
    return 0.5 * (a + b)


def asymmetric_thm9_welfare(vbar1: float, a: float = 0.2, w2: float = 0.7, c: float = 1.0, cells: int = 20000,
                            vbar2: float | None = None) -> float:  # fmt: skip
    """Expected welfare of the threshold rule "provide iff ``v_i >= vbar_i`` for both" (CE Def 12) with
    ``v_1 = s_1 + a s_2``, ``v_2 = w2 s_2 + a s_1``, ``s_1 ~ Beta(2, 3)``, ``s_2 ~ Beta(3, 2)`` independent,
    ``vbar_2 = c - vbar_1`` (the budget line) unless given. For each ``s_1`` (midpoint rule, ``cells`` cells) provision
    holds for ``s_2 >= tau(s_1) = max((vbar_1 - s_1) / a, (vbar_2 - a s_1) / w2)``, and the inner integral of the
    welfare ``(1 + a) s_1 + (w2 + a) s_2 - c`` against the density ``12 y^2 (1 - y)`` is an exact polynomial."""
    v2 = c - vbar1 if vbar2 is None else vbar2
    s1 = (np.arange(cells) + 0.5) / cells
    f1 = 12 * s1 * (1 - s1) ** 2 / cells

    def cdf2(y):
        return 4 * y**3 - 3 * y**4

    def m2(y):  # int_0^y x 12 x^2 (1 - x) dx
        return 3 * y**4 - 12 * y**5 / 5

    tau = np.clip(np.maximum((vbar1 - s1) / a, (v2 - a * s1) / w2), 0.0, 1.0)
    inner = ((1 + a) * s1 - c) * (1 - cdf2(tau)) + (w2 + a) * (m2(1.0) - m2(tau))
    return float(np.sum(f1 * inner))


def asymmetric_thm9(a: float = 0.2, w2: float = 0.7, c: float = 1.0, cells: int = 20000) -> tuple[float, float]:
    """CE Thm 9 asymmetric: the best vbar_1 on the budget line (vbar_2 = c - vbar_1) and its welfare, independently
    (:func:`asymmetric_thm9_welfare`, golden section on vbar_1)."""
    v1 = golden(lambda v: asymmetric_thm9_welfare(v, a, w2, c, cells), 0.0, 1.0)
    return v1, asymmetric_thm9_welfare(v1, a, w2, c, cells)


def first_best_welfare(a: float, c: float) -> float:
    """``E[(V - c)^+]`` for ``V = (1 + a)(s_1 + s_2)``, independent U[0, 1] signals (``k = c / (1 + a) <= 1``:
    ``(1 + a) E[(S - k)^+]`` with ``E[(S - k)^+] = 1 - k + k^3 / 6``)."""
    k = c / (1.0 + a)
    if not 0.0 <= k <= 1.0:
        raise ValueError("first_best_welfare needs 0 <= c / (1 + a) <= 1")
    return (1.0 + a) * (1.0 - k + k**3 / 6.0)


def second_best(a: float, c: float, points: int = 201) -> tuple[float, float]:
    """``(welfare, vbar_1)`` of the best threshold contribution rule on the budget line ``vbar_1 + vbar_2 = c``
    through a boundary point (CE Thm 9): a grid over the line's parameter ``sbar_1`` (``v(sbar) = vbar`` with
    ``V(sbar) = c``), refined by golden section around the best grid point."""
    k = c / (1.0 + a)
    lo, hi = max(0.0, k - 1.0), min(1.0, k)

    def w(x: float) -> float:  # sbar = (x, k - x)
        return threshold_welfare(a, c, x + a * (k - x))

    xs = np.linspace(lo, hi, points)
    vals = [w(x) for x in xs]
    j = int(np.argmax(vals))
    left, right = xs[max(j - 1, 0)], xs[min(j + 1, points - 1)]
    g = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(40):
        x1, x2 = right - g * (right - left), left + g * (right - left)
        if w(x1) >= w(x2):
            right = x2
        else:
            left = x1
    x = 0.5 * (left + right)
    return max(w(x), vals[j]), x + a * (k - x)


def public_good_quantile(n: int, a: float, c: float, level: float, points: int) -> float:
    """The ``level`` quantile of the efficient rule's VCG deficit under independent U[0, 1] signals, on the
    ``points^n`` midpoint grid (the largest of ``N`` samples exceeds the ``1 - 13.8 / N`` quantile with
    probability ``1 - 1e-6``)."""
    u = (np.arange(points) + 0.5) / points
    d = public_good_deficit(a, c, np.stack(np.meshgrid(*([u] * n), indexing="ij"), -1)).ravel()
    return float(np.quantile(d, level))


# --------------------------------------------------------------------------------------------------------------
# CE fn. 6: the best revenue of an ex post IC and IR auction on a finite type grid (LP, scipy HiGHS)


def auction_max_revenue(types: list, pmf: np.ndarray, a: float = 0.5, efficient: bool = False) -> float:
    """The largest expected revenue of an ex post IC and ex post IR mechanism selling one object to two bidders
    with ``V_i = s_i + a s_j`` on the type grid ``types`` (``k`` each) and joint ``pmf`` (``k x k``).

    Variables: allocation probabilities ``x_i(s) >= 0`` with ``x_1 + x_2 <= 1`` and payments ``t_i(s)`` (free);
    ``efficient=True`` fixes ``x`` to the efficient allocation (ties to bidder 1). Constraints for every profile
    and bidder: IR ``x_i V_i - t_i >= 0`` and IC against every report ``x_i(s) V_i(s) - t_i(s) >= x_i(r, s_-i) V_i(s)
    - t_i(r, s_-i)``. Returns the optimum of ``max sum_s pmf(s) sum_i t_i(s)``."""
    from scipy import optimize

    k = len(types[0])
    v = np.empty((k, k, 2))
    for p in range(k):
        for q in range(k):
            s = (types[0][p], types[1][q])
            v[p, q] = (s[0] + a * s[1], s[1] + a * s[0])
    nx = 2 * k * k
    xi = lambda p, q, i: (p * k + q) * 2 + i  # noqa: E731  (x variables first, then t at nx + the same index)
    rows, rhs = [], []
    for p in range(k):
        for q in range(k):
            for i in range(2):
                r = np.zeros(2 * nx)  # IR: t_i - x_i V_i <= 0
                r[nx + xi(p, q, i)], r[xi(p, q, i)] = 1.0, -v[p, q, i]
                rows.append(r)
                rhs.append(0.0)
                for dev in range(k):
                    d = (dev, q) if i == 0 else (p, dev)
                    if d == (p, q):
                        continue
                    r = np.zeros(2 * nx)  # IC: x_i(d) V_i - t_i(d) - x_i(s) V_i + t_i(s) <= 0
                    r[xi(*d, i)] += v[p, q, i]
                    r[nx + xi(*d, i)] -= 1.0
                    r[xi(p, q, i)] -= v[p, q, i]
                    r[nx + xi(p, q, i)] += 1.0
                    rows.append(r)
                    rhs.append(0.0)
            r = np.zeros(2 * nx)  # feasibility: x_1 + x_2 <= 1
            r[xi(p, q, 0)] = r[xi(p, q, 1)] = 1.0
            rows.append(r)
            rhs.append(1.0)
    bounds = [(0.0, 1.0)] * nx + [(None, None)] * nx
    if efficient:
        for p in range(k):
            for q in range(k):
                w = 0 if v[p, q, 0] >= v[p, q, 1] else 1
                bounds[xi(p, q, w)], bounds[xi(p, q, 1 - w)] = (1.0, 1.0), (0.0, 0.0)
    pmf = np.asarray(pmf, float)
    cost = np.concatenate([np.zeros(nx), -np.repeat(pmf.ravel(), 2)])
    res = optimize.linprog(cost, A_ub=np.array(rows), b_ub=np.array(rhs), bounds=bounds, method="highs")
    if res.status != 0:
        raise RuntimeError(f"auction LP: {res.message}")
    return float(-res.fun)


def auction_surplus(types: list, pmf: np.ndarray, a: float = 0.5) -> float:
    """``E[max_i V_i]``: the full surplus, by enumeration."""
    t0, t1 = (np.asarray(t, float) for t in types)
    v0 = t0[:, None] + a * t1[None, :]
    v1 = t1[None, :] + a * t0[:, None]
    return float(np.sum(np.asarray(pmf) * np.maximum(v0, v1)))


# --------------------------------------------------------------------------------------------------------------
# B Sec. 3 (JMM): two-outcome rules in Example 1, V_i = p_i + c_i c_j


def jmm_shifted_gap(profile: np.ndarray, shift: float, points: int) -> float:
    """Least worst regret (best payments) at ``profile = (p_1, c_1, p_2, c_2)`` of the two-outcome rule "a_1 iff
    V_1 - V_2 = p_1 - p_2 > shift, else a_2", each buyer's own signals on the ``points x points`` grid of [0, 1]^2.

    At ``s_2``, buyer 1 wins on ``{p_1 > p_2 + shift}``; his value ``p_1 + c_1 c_2`` is lowest there at the smallest
    such grid ``p_1`` with ``c_1 = 0`` and highest off it at the largest grid ``p_1 <= p_2 + shift`` with ``c_1 = 1``:
    the gap is half their difference, ``(c_2 - grid step) / 2`` (0 if one side is empty). Buyer 2
    likewise wins on ``{p_2 >= p_1 - shift}``. The profile's regret is the larger gap (JMM: positive unless constant)."""
    g = np.linspace(0.0, 1.0, points)
    p1, c1, p2, c2 = (float(x) for x in profile)

    def gap(win: np.ndarray, other_c: float) -> float:
        if win.all() or not win.any():
            return 0.0
        return max(0.0, g[~win].max() + other_c - g[win].min()) / 2.0

    return max(gap(g - p2 > shift, c2), gap(g >= p1 - shift, c1))


def example1_null_outcomes(p: float, c: float) -> set[int]:
    """Outcomes of B Example 1's prices (``t_i = p_j + c_j^2``) that buyer i's type ``(p, c)`` gets for only a null
    set of the other's signals (0: a_0, 1: a_i, 2: a_j), in closed form:

    - a_i iff ``p - p_j > c_j^2 - c c_j``: the largest left side minus right side is ``p + c^2 / 4`` (``p_j = 0``,
      ``c_j = c / 2``), so a_i is null iff ``(p, c) = (0, 0)``;
    - a_j iff ``p_j > p + c (c - c_j)``: possible iff ``p + c^2 - c < 1`` (``c_j = 1``), null iff ``p = 1`` and
      ``c in {0, 1}``;
    - a_0 iff ``p_j`` lies in ``[p - c_j^2 + c c_j, p - c c_j + c^2]`` (length ``(c - c_j)^2``): inside [0, 1] with
      positive length unless ``(p, c)`` is ``(0, 0)`` or ``(1, 1)``.

    B's fn. 7 lists (0, 0) and (1, 1) as the exceptions; (1, 0) is one too (a_j null)."""
    null = set()
    if p == 0 and c == 0:
        null |= {0, 1}
    if p == 1 and c in (0.0, 1.0):
        null.add(2)
    if p == 1 and c == 1:
        null.add(0)
    return null


# --------------------------------------------------------------------------------------------------------------
# CE Cor. 1 / Prop 2: the interim-payment mechanism (linear trade, payments the uniform-prior interim expectations
# of the VCG ones) under other independent beta priors


def cor1_interim_regret(a: float, buyer: tuple, seller: tuple, types: int, misreports: int) -> tuple[float, float]:
    """Max over the type grid ``linspace(0, 1, types)`` of each agent's interim regret (reports on
    ``linspace(0, 1, misreports)``) in CE Cor. 1's mechanism for ``v_i = s_i + a s_-i``: trade iff ``m_b > m_s``, the
    buyer pays ``T_b(m) = (1 + a) m^2 / 2`` and the seller receives ``(1 + a)(1 - m^2) / 2`` whatever happens (the
    uniform-prior interim expectations of the VCG payments), when the other's signal is ``Beta(*buyer)`` /
    ``Beta(*seller)`` distributed. ``E[1{s < m}]`` and ``E[s 1{s < m}]`` are regularized incomplete beta functions
    (exact; ``(inf, inf)`` stands for a point mass at ``buyer[2]`` / ``seller[2]``, the ex post limit)."""
    c = 1.0 + a
    ts, ms = np.linspace(0.0, 1.0, types), np.linspace(0.0, 1.0, misreports)

    def moments(law, m):  # (P(s < m), E[s 1{s < m}], E[s])
        al, be, at = law
        if math.isinf(al):
            below = (m > at).astype(float)
            return below, at * below, at
        mean = al / (al + be)
        return special.betainc(al, be, m), mean * special.betainc(al + 1, be, m), mean

    out = []
    for agent in (0, 1):
        law = seller if agent == 0 else buyer  # the other's signal
        best = 0.0
        for t in ts:
            reps = np.append(ms, t)
            f, g, mean = moments(law, reps)
            if agent == 0:  # buyer of type t: 1{s_s < m} (t + a s_s) - c m^2 / 2
                u = t * f + a * g - c * reps**2 / 2
            else:  # seller of type t: -1{s_b > m} (t + a s_b) + c (1 - m^2) / 2
                u = -(t * (1 - f) + a * (mean - g)) + c * (1 - reps**2) / 2
            best = max(best, float(np.max(u[:-1]) - u[-1]))
        out.append(best)
    return out[0], out[1]


# --------------------------------------------------------------------------------------------------------------
# B Sec. 4: the construction's price from its definitions, with the exact maximizer of V_j on each class


def private_common_values_np(dims: list, weights: list | None, own: float | None):
    """B's private + common family restated: ``V_i = mean_k x_ik^2 + own c_i + w_i mean_k c_k``, buyer i's signal
    ``(x_i1, ..., c_i)``; ``own`` defaults to ``(max w - min w) / n + 0.25``. Returns ``values(profiles (N, D))``."""
    w, own = _private_common_weights(dims, weights, own)
    starts = np.cumsum((0, *dims[:-1]))

    def values(s):
        c = np.stack([s[:, a + d - 1] for a, d in zip(starts, dims, strict=True)], -1)
        priv = np.stack([np.mean(s[:, a : a + d - 1] ** 2, axis=-1) if d > 1 else np.zeros(len(s))
                         for a, d in zip(starts, dims, strict=True)], -1)  # fmt: skip
        return priv + own * c + w[None, :] * c.mean(-1, keepdims=True)

    return values


def _private_common_weights(dims: list, weights: list | None, own: float | None) -> tuple[np.ndarray, float]:
    w = np.ones(len(dims)) if weights is None else np.asarray(weights, float)
    return w, (float(w.max() - w.min()) / len(dims) + 0.25 if own is None else float(own))


def private_common_class_max(dims: list, weights: list | None, own: float | None):
    """The exact maximizer of every other buyer's value on buyer i's class ``S_i(lam, s_-i)`` (B Sec. 4) in the
    private + common family. With ``s_-i`` fixed, ``V_i = P_i(x_i) + k_i c_i + const`` with ``P_i = mean_k x_ik^2``
    and ``k_i = own + w_i / n``, and every ``V_j = ... + w_j c_i / n`` depends on ``s_i`` only through ``c_i``,
    non-decreasingly. On the class ``P_i + k_i c_i = lam^2 + k_i lam`` (``P_i(lam 1) = lam^2``), ``P_i >= 0``, so
    ``c_i <= c* = min(1, lam + lam^2 / k_i)`` with equality at ``x_i = 0`` (or, when ``c* = 1``, at
    ``x_ik^2 = lam^2 + k_i (lam - 1)`` in [0, lam^2]); a 1-d buyer (no ``x_i``) has the class ``{c_i = lam}``.
    Returns ``argmax(s (N, D), i, lam (N,)) -> (N, d_i)``, buyer i's point on his class."""
    w, own = _private_common_weights(dims, weights, own)

    def argmax(s, i, lam):
        d, k = dims[i], own + w[i] / len(dims)
        if d == 1:
            return lam[:, None]
        c = np.minimum(1.0, lam + lam**2 / k)
        x = np.sqrt(np.maximum(lam**2 + k * (lam - c), 0.0))  # 0 unless c = 1
        return np.concatenate([np.repeat(x[:, None], d - 1, axis=1), c[:, None]], axis=1)

    return argmax


def example1_values_np(n: int):
    """B Example 1 with ``n`` buyers restated: ``V_i = p_i + c_i mean_{k != i} c_k``, ``s = (p_1, c_1, ..., p_n, c_n)``
    (``n = 2``: ``V_i = p_i + c_1 c_2``). Returns ``values(profiles (N, 2n))``."""

    def values(s):
        p, c = s[:, 0::2], s[:, 1::2]
        return p + c * (c.sum(-1, keepdims=True) - c) / (n - 1)

    return values


def example1_class_max(n: int):
    """The exact maximizer of every other buyer's value on buyer i's class in Example 1 with ``n`` buyers. With
    ``m = mean_{k != i} c_k`` fixed, the class is ``p_i + m c_i = lam (1 + m)`` and every ``V_j = p_j + c_j (c_i +
    ...) / (n - 1)`` is non-decreasing in ``c_i`` alone; ``p_i >= 0`` gives ``c_i <= c* = min(1, lam (1 + m) / m)``
    (1 if ``m = 0``), attained at ``p_i = lam (1 + m) - c* m``. Returns ``argmax(s, i, lam) -> (N, 2)``."""

    def argmax(s, i, lam):
        c = s[:, 1::2]
        m = (c.sum(-1) - c[:, i]) / (n - 1)
        cs = np.where(m > 0, np.minimum(1.0, lam * (1 + m) / np.where(m > 0, m, 1.0)), 1.0)
        return np.stack([np.clip(lam * (1 + m) - cs * m, 0.0, 1.0), cs], -1)  # clip: rounding only

    return argmax


def b_family(env: dict):
    """``(values, argmax)`` of a ``pivotal`` run's environment (its recorded ``settings.environment``) when this
    module has its exact class maximizer: Example 1 with any ``n`` and the private + common family; else None."""
    if env.get("kind") == "example1":
        n = int(env.get("n") or 2)
        return example1_values_np(n), example1_class_max(n)
    if env.get("kind") == "private_common":
        args = (list(env["dims"]), env.get("weights"), env.get("own"))
        return private_common_values_np(*args), private_common_class_max(*args)
    return None


def _with_signal(s: np.ndarray, dims: list, i: int, x: np.ndarray) -> np.ndarray:
    out = np.array(s, np.float64, copy=True)
    start = sum(dims[:i])
    out[:, start : start + dims[i]] = x
    return out


def exact_class_price(values, argmax, s: np.ndarray, i: int, j: int, dims: list, iters: int = 60) -> np.ndarray:
    """``t*_ij(s_-i) = V^m_ij(lam*_ij)`` (B eq. (8) and the definition of ``lam*_ij`` before it) at profiles
    ``s (N, D)``, with ``V^m_ij(lam) = V_j(argmax(s, i, lam), s_-i)`` the exact class maximum. ``g_ij(lam) =
    V_i(lam 1, s_-i) - V^m_ij(lam)`` is non-decreasing (B Lemma 2), so ``lam* = max{lam : g_ij(lam) <= 0}`` is found by
    bisection (vectorized over profiles; ``iters`` halvings of [0, 1]: exact to rounding). End cases as in B:
    ``g(1) < 0``: ``lam* = 1``; ``g(0) > 0``: ``t* = V^m_ij(0)``."""
    s = np.atleast_2d(np.asarray(s, np.float64))
    d = dims[i]

    def vm(lam):
        return values(_with_signal(s, dims, i, argmax(s, i, lam)))[:, j]

    def g(lam):
        return values(_with_signal(s, dims, i, np.repeat(lam[:, None], d, axis=1)))[:, i] - vm(lam)

    lo, hi = np.zeros(len(s)), np.ones(len(s))
    top = g(hi) <= 0  # lam* = 1
    low = g(lo) > 0  # lam* = 0^-: V^m(0)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        left = g(mid) <= 0
        lo, hi = np.where(left, mid, lo), np.where(left, hi, mid)
    lam = np.where(top, 1.0, np.where(low, 0.0, lo))
    return vm(lam)


def exact_construction_prices(values, argmax, s: np.ndarray, dims: list) -> np.ndarray:
    """The construction's prices ``t*_i = max_{j != i} t*_ij`` (B Sec. 4.1) at profiles ``s (N, D)``: ``(N, n)``."""
    n = len(dims)
    return np.stack([np.max([exact_class_price(values, argmax, s, i, j, dims) for j in range(n) if j != i], 0)
                     for i in range(n)], -1)  # fmt: skip


def construction_revenue_welfare(values, argmax, dims: list, samples: int, seed: int) -> dict:
    """Expected revenue, welfare and first-best welfare ``E[max(max_i V_i, 0)]`` of B eq. (4) at the exact prices t*
    (buyer i wins iff ``V_i > t*_i``), plain Monte Carlo over ``samples`` i.i.d. U[0,1] profiles
    (``np.random.default_rng(seed)``): ``{name: (mean, se)}``, and ``sold_to_several``: profiles where more than one
    buyer clears his price (0 for admissible prices, B eq. (3))."""
    s = np.random.default_rng(seed).random((samples, sum(dims)))
    v, t = values(s), exact_construction_prices(values, argmax, s, dims)
    surplus, rows = v - t, np.arange(samples)
    k = surplus.argmax(-1)
    sold = surplus[rows, k] > 0
    ys = {"revenue": np.where(sold, t[rows, k], 0.0), "welfare": np.where(sold, v[rows, k], 0.0),
          "first_best_welfare": np.maximum(v.max(-1), 0.0)}  # fmt: skip
    out = {name: (float(y.mean()), float(y.std(ddof=1) / np.sqrt(samples))) for name, y in ys.items()}
    out["sold_to_several"] = int(((surplus > 0).sum(-1) > 1).sum())
    return out


def brute_force_price(values, s: np.ndarray, i: int, j: int, dims: list, grid: int | None = None,
                      levels: int = 800, return_band: bool = False):
    """``t*_ij`` at ``s_-i`` from B's definitions (buyer i's signal of any dimension d): the classes
    ``S_i(lam, s_-i)`` as bands of ``V_i`` on a ``grid^d`` grid of ``S_i`` (default 2001 / 301 / 47 points per axis
    for d = 1 / 2 / 3), ``V^m_ij(lam)`` the largest ``V_j`` on a class, ``g_ij = V_i(lam 1, s_-i) - V^m_ij``, ``lam*``
    its last non-positive level, ``t* = V^m_ij(lam*)``."""
    start, d = sum(dims[:i]), dims[i]
    grid = grid or {1: 2001, 2: 301}.get(d, 81)
    y = np.linspace(0.0, 1.0, grid)
    yy = np.stack(np.meshgrid(*([y] * d), indexing="ij"), axis=-1).reshape(-1, d)
    prof = np.repeat(np.asarray(s, np.float64)[None, :], len(yy), axis=0)
    prof[:, start : start + d] = yy
    v = values(prof)
    f, w = v[:, i], v[:, j]
    fg = f.reshape((grid,) * d)
    band = max(np.abs(np.diff(fg, axis=k)).max() for k in range(d))  # every class meets the band
    order = np.argsort(f)
    f, w = f[order], w[order]
    lam = np.linspace(0.0, 1.0, levels)
    diag = np.repeat(np.asarray(s, np.float64)[None, :], levels, axis=0)
    diag[:, start : start + d] = lam[:, None]
    level = values(diag)[:, i]
    lo = np.searchsorted(f, level - band, side="left")
    hi = np.searchsorted(f, level + band, side="right")
    vm = np.array([w[a:b].max() for a, b in zip(lo, hi, strict=True)])
    g = level - vm
    if g[-1] < 0:
        price = float(vm[-1])
    elif g[0] > 0:
        price = float(vm[0])
    else:
        price = float(vm[np.nonzero(g <= 0)[0].max()])
    return (price, float(band)) if return_band else price


# --------------------------------------------------------------------------------------------------------------
# CE Sec. 5.3: the contingent-contribution scheme for v_i = s_i + a s_j, strategies in closed form


def contribution_play(a: float, vbar: tuple, n_types: int, full_demand: str = "pivotal") -> dict:
    """CE Sec. 5.3's strategies on ``linspace(0, 1, n_types)`` for ``v_i = s_i + a s_j`` (a > 0) and the scheme's
    outcome on the grid of profiles, against the threshold rule "provide iff ``v_i >= vbar_i``".

    Agent i of type ``s``: ``F_i(s) = {x : s + a x > vbar_i, x + a s > vbar_-i}`` has infimum
    ``phi = max((vbar_i - s) / a, vbar_-i - a s)`` (clipped at 0; 1 when empty, i.e. ``s + a <= vbar_i`` or
    ``1 + a s <= vbar_-i``); the pledge is ``v_i(s, phi)``, the demand ``v_-i(s, phi)``, each set to its pivotal value
    where its own constraint binds at ``phi``; a full type (``phi = 0`` with both strict) pledges ``s`` and demands
    ``vbar_-i`` or, with ``full_demand="vcg"``, the other's VCG payment ``v_-i(s, 0) = a s``. Funded iff
    ``p_1 >= d_2`` and ``p_2 >= d_1``; i then pays ``d_-i``. Returns the mismatch count against the rule, its share,
    and per agent the largest exact best-reply gain ``max(0, v_i - d_-i) - u_i`` over the grid."""
    s = np.linspace(0.0, 1.0, n_types)
    strat = []
    for i in (0, 1):
        vo, vx = vbar[i], vbar[1 - i]
        x_own, x_oth = np.clip((vo - s) / a, 0.0, 1.0), np.clip(vx - a * s, 0.0, 1.0)
        own0, oth0 = s > vo, a * s > vx
        empty = ~((s + a > vo) & (1 + a * s > vx))
        full = own0 & oth0
        phi = np.where(empty, 1.0, np.maximum(x_own, x_oth))
        binds_own = ~empty & ~own0 & (x_own >= x_oth)
        binds_oth = ~empty & ~oth0 & (x_oth >= x_own)
        p = np.where(binds_own, vo, s + a * phi)
        d = np.where(full | binds_oth, vx, phi + a * s)
        if full_demand == "vcg":
            d = np.where(full, a * s, d)
        strat.append((p, d, int(full.sum())))
    (p1, d1, f1), (p2, d2, f2) = strat
    s1, s2 = np.meshgrid(s, s, indexing="ij")
    v1, v2 = s1 + a * s2, s2 + a * s1
    provide = (v1 >= vbar[0]) & (v2 >= vbar[1])
    funded = (p1[:, None] >= d2[None, :]) & (p2[None, :] >= d1[:, None])
    u1, u2 = np.where(funded, v1 - d2[None, :], 0.0), np.where(funded, v2 - d1[:, None], 0.0)
    g1 = np.max(np.maximum(0.0, v1 - d2[None, :]) - u1)
    g2 = np.max(np.maximum(0.0, v2 - d1[:, None]) - u2)
    n_mis = int(np.sum(funded != provide))
    return {"n_mismatch": n_mis, "share": 1.0 - n_mis / n_types**2, "gain": (float(g1), float(g2)), "n_full": (f1, f2)}


# --------------------------------------------------------------------------------------------------------------
# CE Thm 7 / Def 10, "only if": the least worst regret of ANY payments for a two-outcome provision rule


def provision_values(s: np.ndarray) -> np.ndarray:
    """``v_i = s_i + s_i m_i / 2 + m_i^2 / 4``, ``m_i`` the mean of the others' signals; ``s`` shape ``(..., n)``."""
    n = s.shape[-1]
    m = (s.sum(-1, keepdims=True) - s) / (n - 1)
    return s + 0.5 * s * m + 0.25 * m * m


def band_least_worst_regret(profile, i: int, points: int = 4001) -> float:
    """At ``s_-i`` of ``profile``: the smallest worst regret of agent ``i`` over ALL payment rules for the band rule
    "provide iff ``n/2 < V(s) < 0.8 n``" with :func:`provision_values`, on ``points`` own signals in [0, 1].

    At fixed ``s_-i`` any payment rule offers two prices (the cheapest report of each outcome); with ``D`` their
    difference a served type ``x`` regrets at least ``D - v_i(x)`` and a refused one ``v_i(x) - D``, so the worst
    regret is at least ``(max_refused v_i - min_served v_i) / 2``, attained at the midpoint ``D``; positive means no
    payments make the rule ex post IC at ``s_-i`` (the two-outcome positive cycle of CE Thm 1). A finite grid of own
    types gives a lower bound for the continuum."""
    s = np.repeat(np.asarray(profile, float)[None, :], points, axis=0)
    s[:, i] = np.linspace(0.0, 1.0, points)
    n = s.shape[1]
    v = provision_values(s)
    total = v.sum(-1)
    served = (total > 0.5 * n) & (total < 0.8 * n)
    if served.all() or not served.any():
        return 0.0
    return max(0.0, float(v[~served, i].max() - v[served, i].min()) / 2.0)


# --------------------------------------------------------------------------------------------------------------
# CE Lemma 5: a randomized efficient trading rule and its deterministic reduction, deadzone values


def lemma5_deficits(w: float, k: float, r: float, subsidy: float, s_b: np.ndarray, s_s: np.ndarray):
    """``(randomized, reduction)`` deficits per state for deadzone values ``v_i = s_b + s_s + k max(0, s_i - s_-i - w)``
    and the ramp ``f = clip((s_b - s_s + r) / (2 r), 0, 1)``, ``0 < r < w`` (efficient: the gain from trade is 0 on
    ``|s_b - s_s| <= w``).

    Payoff equivalence (CE Thm 3) with the lowest types at utility 0 (the buyer's at ``s_b = 0``, the seller's at
    ``s_s = 1``): ``U_b(x) = int_0^x f(y, s_s) dV_b`` and ``U_s(y) = int_y^1 f(s_b, z) dV_s``; where ``f > 0`` the
    bonus slopes ``k`` are beyond the band (``f = 1`` for the buyer, ``f = 0`` for the seller), so with the ramp's
    antiderivative ``U_b = H(s_b) - H(0) + k (s_b - s_s - w)^+`` and ``U_s = J(s_s) - J(1)`` in closed form. The
    deficit is ``U_b + U_s - f (v_b - v_s)`` plus the subsidies ``subsidy (s_s + s_b)``. The reduction trades iff
    ``f = 1`` (``s_b - s_s >= r``) with generalized VCG payments: ``2 (s_b - s_s - r)`` there, 0 elsewhere."""
    d = s_b - s_s
    a0 = s_s - r  # the buyer's ramp starts at a0, reaches 1 at a0 + 2r

    def h(x):
        return np.where(x <= a0, 0.0, np.where(x <= a0 + 2 * r, (x - a0) ** 2 / (4 * r), r + x - a0 - 2 * r))

    b1 = s_b + r  # the seller's f is 1 up to b1 - 2r, 0 from b1

    def j(y):
        return np.where(y >= b1, 0.0, np.where(y >= b1 - 2 * r, (b1 - y) ** 2 / (4 * r), r + b1 - 2 * r - y))

    f = np.clip((d + r) / (2 * r), 0.0, 1.0)
    gain = k * (np.maximum(0.0, d - w) - np.maximum(0.0, -d - w))  # v_b - v_s
    rand = h(s_b) - h(np.zeros_like(s_b)) + k * np.maximum(0.0, d - w) + j(s_s) - j(np.ones_like(s_s)) - f * gain
    return rand + subsidy * (s_b + s_s), np.where(d >= r, 2.0 * (d - r), 0.0)


# --------------------------------------------------------------------------------------------------------------
# CE Cor. 1: the least expected deficit of ANY Bayesian IC, interim IR mechanism for the efficient trade rule (LP)


def cor1_min_deficit(a: float, points: int) -> float:
    """Bilateral trade, ``v_i = s_i + a s_-i``, independent signals uniform on the midpoint grid of ``points`` types,
    the efficient rule (trade iff ``s_beta > s_sigma``). Variables: interim payments ``T_b(i)`` (buyer pays) and
    ``R_s(j)`` (seller receives). Bayesian IC: ``E_j[q(i, j) v_b(i, j)] - T_b(i) >= E_j[q(i', j) v_b(i, j)] - T_b(i')``
    for every type pair, likewise for the seller (who loses ``v_s`` when trading); interim IR: each interim utility
    ``>= 0``. Returns the LP's minimum of ``E[R_s] - E[T_b]`` (scipy HiGHS): by CE Cor. 1 it is positive."""
    from scipy import optimize

    g = points
    s = (np.arange(g) + 0.5) / g
    q = (s[:, None] > s[None, :]).astype(float)  # [buyer type, seller type]
    vb = s[:, None] + a * s[None, :]
    vs = s[None, :] + a * s[:, None]
    gain_b = (q * vb).mean(1)  # [i]: E_j q v_b at the truth;  cross: [i, i'] type i reporting i'
    cross_b = np.einsum("kj,ij->ik", q, vb) / g
    loss_s = (q * vs).mean(0)  # [j]
    cross_s = np.einsum("ik,ij->jk", q, vs) / g  # seller of type j reporting k
    rows, rhs = [], []
    for i in range(g):  # variables: T_b (g), R_s (g)
        r = np.zeros(2 * g)
        r[i] = 1.0  # IR: T_b(i) <= gain_b(i)
        rows.append(r)
        rhs.append(gain_b[i])
        r = np.zeros(2 * g)
        r[g + i] = -1.0  # IR: R_s(j) - loss_s(j) >= 0
        rows.append(r)
        rhs.append(-loss_s[i])
        for k in range(g):
            if k == i:
                continue
            r = np.zeros(2 * g)  # buyer i vs report k: cross_b[i, k] - T_b(k) - gain_b(i) + T_b(i) <= 0
            r[i], r[k] = 1.0, -1.0
            rows.append(r)
            rhs.append(gain_b[i] - cross_b[i, k])
            r = np.zeros(2 * g)  # seller j = i vs report k: R(k) - cross_s[i, k] - R(i) + loss_s(i) <= 0
            r[g + k], r[g + i] = 1.0, -1.0
            rows.append(r)
            rhs.append(cross_s[i, k] - loss_s[i])
    cost = np.concatenate([-np.ones(g), np.ones(g)]) / g
    res = optimize.linprog(cost, A_ub=np.array(rows), b_ub=np.array(rhs), bounds=[(None, None)] * (2 * g), method="highs")
    if res.status != 0:
        raise RuntimeError(f"Cor. 1 LP: {res.message}")
    return float(res.fun)


def project_choice_gaps(s_minus: np.ndarray, samples: np.ndarray, i: int = 0, a: float = 0.5) -> np.ndarray:
    """CE Thm 3 on samples, by brute force: ``w(q, q') = -(L(q, q') + L(q', q))`` for agent ``i`` of two-agent project
    choice (``v_j(q, s) = s_jq + a mean_l s_lq``, the efficient rule picks the first maximizer of the column sums).

    ``s_minus``: the other agent's ``(k,)`` signals; ``samples``: ``(S, k)`` own signals. Edge weights
    ``d(q, q') = max over samples choosing q of v_i(q', x) - v_i(q, x)``, longest paths by Floyd-Warshall in max-plus;
    ``nan`` where an outcome does not occur. Independent of the library (NumPy only)."""
    x = np.asarray(samples, np.float64)
    other = np.asarray(s_minus, np.float64)
    k = x.shape[1]
    v = x + a * (x + other[None, :]) / 2.0  # v_i(q, x), (S, k)
    chosen = np.argmax(x + other[None, :], axis=1)
    d = np.full((k, k), -np.inf)
    for q in range(k):
        rows = v[chosen == q]
        if len(rows):
            d[q] = np.max(rows - rows[:, [q]], axis=0)
    occ = np.array([np.any(chosen == q) for q in range(k)])
    L = np.where(np.eye(k, dtype=bool), 0.0, d)
    L[~occ, :] = -np.inf
    L[:, ~occ] = -np.inf
    for m in range(k):  # Floyd-Warshall (no positive cycles: the efficient rule is IC)
        L = np.maximum(L, L[:, [m]] + L[[m], :])
    w = -(L + L.T)
    both = occ[:, None] & occ[None, :]
    return np.where(both, w, np.nan)


def project_choice_band_gap(band: float, a: float = 0.5, n: int = 2) -> float:
    """The limit of ``w(0, 1)`` when agent i's type space is ``{x_2 = 0, |x_0 - x_1| >= band}`` and the other agent
    has ``s_j0 = s_j1``, ``s_j2 = 0``: the 0 | 1 boundary ``x_0 = x_1`` lies in the removed band, so the samples
    only bound ``t(1) - t(0)`` by the band's edges: ``d(0, 1) -> -(1 + a/n) band`` and ``d(1, 0) -> -(1 + a/n) band``,
    ``w -> 2 (1 + a/n) band > 0`` at any sample size (a disconnected type space: CE Thm 3 needs a connected one)."""
    return 2.0 * (1.0 + a / n) * band


def linear_trade_grid(a: float, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CE Sec. 4.4's values on the ``n``-point signal grid ``s_k = k / (n - 1)``: ``vb[i, j] = s_i + a s_j``,
    ``vs[i, j] = s_j + a s_i`` (buyer type i, seller type j), and the efficient rule ``trade[i, j]``: trade iff
    ``v_beta - v_sigma = (1 - a)(s_i - s_j) > 0``, decided on the integers (no trade on ties)."""
    k = np.arange(n)
    s = k / (n - 1)
    vb = s[:, None] + a * s[None, :]
    vs = s[None, :] + a * s[:, None]
    return vb, vs, (1.0 - a) * (k[:, None] - k[None, :]) > 0


def trade_deficit_interval(vb: np.ndarray, vs: np.ndarray, trade: np.ndarray) -> tuple[float, float]:
    """``(D_min, D_max)``: the mean deficit (uniform on grid profiles) over every payment rule that makes the fixed
    trading rule ``trade[i, j]`` ex post IC between grid types and ex post IR (CE Sec. 4: utilities ``f v_beta -
    t_beta`` and ``-f v_sigma - t_sigma``), with no transfer without trade for ``D_max`` (without it, subsidies to
    non-trading types make the supremum infinite; ``D_min`` is the same either way).

    Enumerated one opponent type at a time (the constraints couple only own types at a fixed opponent type): at
    seller type j the buyer's trading payment ``p`` must satisfy IC of each non-trading type (``0 >= vb - p``) and IR /
    IC of each trading type (``vb - p >= 0``); the seller's receipt ``r`` at buyer type i likewise (``r - vs >= 0``
    trading, ``0 >= r - vs`` not). The deficit at a trading profile is ``r(i) - p(j)``, so its extremes pair the
    extremes of the two intervals. ``(nan, nan)`` if an interval is empty, ``D_max = inf`` if it is unbounded."""
    vb, vs, trade = np.asarray(vb, np.float64), np.asarray(vs, np.float64), np.asarray(trade, bool)
    n_b, n_s = trade.shape
    pay = np.empty((n_s, 2))  # buyer's trading payment [lo, hi] by seller type
    for j in range(n_s):
        lo, hi = -math.inf, math.inf
        for i in range(n_b):
            if trade[i, j]:
                hi = min(hi, vb[i, j])
            else:
                lo = max(lo, vb[i, j])
        pay[j] = lo, hi
    rec = np.empty((n_b, 2))  # seller's trading receipt [lo, hi] by buyer type
    for i in range(n_b):
        lo, hi = -math.inf, math.inf
        for j in range(n_s):
            if trade[i, j]:
                lo = max(lo, vs[i, j])
            else:
                hi = min(hi, vs[i, j])
        rec[i] = lo, hi
    d_min = d_max = 0.0
    for i in range(n_b):
        for j in range(n_s):
            if trade[i, j]:
                if pay[j, 0] > pay[j, 1] or rec[i, 0] > rec[i, 1]:
                    return math.nan, math.nan
                d_min += rec[i, 0] - pay[j, 1]
                d_max += rec[i, 1] - pay[j, 0]
    return float(d_min / trade.size), float(d_max / trade.size)


# --------------------------------------------------------------------------------------------------------------
# CE Thm 2 beyond trade and provision (configs/ce_thm2_separable.toml, ce_thm4_auction.toml): the rules of
# experiments/_separable_models.py restated, the envelope payments by adaptive quadrature, and the least worst regret
# of ANY payments at one s_-i by linear programming

SEP_RESERVE = 0.3
SEP_SOFTMAX = (8.0, 0.5)  # B, R0: q_i = e^{B s_i} / (e^{B R0} + sum_j e^{B s_j})
SEP_BAND = (0.4, 0.7)  # the highest bidder is refused when its signal lies strictly inside
SEP_STEP = (0.6, 1.2)  # size = 1[T > 0.6] + 1[T > 1.2], T = sum of signals
SEP_NONMONOTONE = (0.4, 1.0, 1.4)  # size 0 | 2 | 1 | 2 on T < 0.4 | < 1.0 | < 1.4 | above


def sep_values(s, a: float) -> np.ndarray:
    """``V_i = s_i + a sum_{j != i} s_j``, ``s`` shape ``(..., n)``."""
    s = np.asarray(s, np.float64)
    return s + a * (s.sum(-1, keepdims=True) - s)


def sep_rule_name(mechanism: dict, environment: dict) -> str:
    """The rule of a ``thm2`` case: the function named in ``mechanism.decide`` (``size_efficient`` / ``efficient``
    when none is named: the environment's first-best rule)."""
    decide = mechanism.get("decide")
    if decide:
        return decide.rsplit(":", 1)[1]
    return "size_efficient" if environment["kind"] == "project_size" else "efficient"


def sep_outcome(rule: str, s, a: float = 0.5, cost: float = 1.0, levels: int = 3) -> np.ndarray:
    """The outcome of a deterministic rule at each profile (rows of ``s``, shape ``(..., n)``): an object's ``0``
    (kept) or ``1 + winner`` (the highest signal, lowest index on ties; ``efficient``: the highest value); a project's
    size ``q``."""
    s = np.asarray(s, np.float64)
    if rule.startswith("size"):
        t = s.sum(-1)
        if rule == "size_efficient":
            w = sep_values(s, a).sum(-1)[..., None]
            q = np.arange(levels)
            return np.argmax(q * w - 0.5 * cost * q * q, axis=-1)
        if rule == "size_step":
            return (t > SEP_STEP[0]).astype(int) + (t > SEP_STEP[1]).astype(int)
        if rule == "size_nonmonotone":
            lo, mid, hi = SEP_NONMONOTONE
            return np.where(t < lo, 0, np.where(t < mid, 2, np.where(t < hi, 1, 2)))
        raise ValueError(f"unknown size rule {rule!r}")
    v = sep_values(s, a)
    w = np.argmax(v if rule == "efficient" else s, axis=-1)
    top = np.take_along_axis(v if rule == "efficient" else s, w[..., None], -1)[..., 0]
    if rule == "efficient":
        sold = top > 0
    elif rule == "reserve":
        sold = top > SEP_RESERVE
    elif rule == "band":
        sold = ~((top > SEP_BAND[0]) & (top < SEP_BAND[1]))
    else:
        raise ValueError(f"unknown deterministic auction rule {rule!r}")
    return np.where(sold, 1 + w, 0)


def sep_weights(rule: str, s, a: float = 0.5, cost: float = 1.0, levels: int = 3) -> np.ndarray:
    """``h(q)`` at each profile (rows of ``s``, shape ``(..., n)``): an object's allocation probabilities
    (``softmax``: the shares), a project's size for every agent."""
    s = np.asarray(s, np.float64)
    n = s.shape[-1]
    if rule == "softmax":
        b, r0 = SEP_SOFTMAX
        z = np.concatenate([np.full(s.shape[:-1] + (1,), r0), s], -1)
        e = np.exp(b * (z - z.max(-1, keepdims=True)))
        return e[..., 1:] / e.sum(-1, keepdims=True)
    o = sep_outcome(rule, s, a, cost, levels)
    if rule.startswith("size"):
        return np.repeat(o[..., None].astype(np.float64), n, -1)
    return (o[..., None] == 1 + np.arange(n)).astype(np.float64)


def _jumps(h, lo: float, hi: float, scan: int = 2049, jump: float = 0.05) -> list[float]:
    """Where ``h`` jumps on ``[lo, hi]``: a scan on ``scan`` points flags each step of more than ``jump`` (a smooth
    ``h`` moves less per step), and bisection on ``h`` itself pins each one to double precision."""
    x = np.linspace(lo, hi, scan)
    hx = h(x)
    out = []
    for k in np.nonzero(np.abs(np.diff(hx)) > jump)[0]:
        a, b, ha = x[k], x[k + 1], hx[k]
        for _ in range(60):
            c = 0.5 * (a + b)
            if abs(h(c) - ha) <= jump:
                a = c
            else:
                b = c
        out.append(0.5 * (a + b))
    return out


def sep_envelope_payment(rule: str, s, i: int, a: float = 0.5, cost: float = 1.0, levels: int = 3) -> float:
    """CE Thm 2's envelope payment with the lowest type's IR binding: ``t_i = h_i(s) V_i(s) - int_0^{s_i} h_i(x, s_-i)
    dV_i/dx dx`` (``h_i >= 0`` and ``V_i`` increasing make ``U_i(0) = 0`` the least utility). ``dV_i/dx`` by a
    central difference; the integral by scipy's adaptive quadrature on the pieces between the jumps of the restated
    rule (:func:`_jumps`: a scan, then bisection on the rule)."""
    import warnings

    s = np.asarray(s, np.float64)

    def at(x):
        z = s.copy()
        z[i] = x
        return z

    def h(x):  # scalar or array of own signals
        x = np.asarray(x, np.float64)
        z = np.repeat(s[None, :], x.size, 0)
        z[:, i] = x.ravel()
        out = sep_weights(rule, z, a, cost, levels)[:, i]
        return out.reshape(x.shape) if x.ndim else float(out[0])

    def dv(x, e=1e-6):
        return (sep_values(at(x + e), a)[i] - sep_values(at(x - e), a)[i]) / (2 * e)

    if s[i] <= 0:
        return float(h(s[i]) * sep_values(s, a)[i])
    edges = [0.0, *_jumps(h, 0.0, float(s[i])), float(s[i])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        integral = sum(
            integrate.quad(lambda x: h(x) * dv(x), lo, hi, limit=200, epsabs=1e-10, epsrel=1e-10)[0]
            for lo, hi in zip(edges[:-1], edges[1:], strict=True) if hi > lo
        )  # fmt: skip
    return float(h(s[i]) * sep_values(s, a)[i] - integral)


def least_worst_regret(v: np.ndarray, outcome: np.ndarray) -> float:
    """The smallest worst-case regret of ANY payments for one agent at one ``s_-i``, over a finite set of own types.

    ``v`` ``(S, k)``: the agent's value of each outcome at each type; ``outcome`` ``(S,)``: the outcome the rule
    gives each type. A payment rule at ``s_-i`` is a price ``t(b)`` per outcome that some type gets (the menu); type
    ``x`` regrets ``max_b v(x, b) - t(b) - (v(x, a_x) - t(a_x))``. Linear program (scipy HiGHS): minimize ``r`` over
    ``(t, r)`` subject to ``t(a) - t(b) - r <= -(v(x, b) - v(x, a))`` for every type ``x`` with ``a_x = a`` and every
    offered ``b``. ``0`` iff some payments make the rule IC on these types (CE Thm 1); positive: no payments do."""
    from scipy import optimize

    v = np.asarray(v, np.float64)
    outcome = np.asarray(outcome, int)
    offered = np.unique(outcome)
    if len(offered) < 2:
        return 0.0
    col = {b: j for j, b in enumerate(offered)}
    k = len(offered)
    rows, rhs = [], []
    for a in offered:
        gain = v[outcome == a][:, offered] - v[outcome == a][:, [a]]  # (S_a, k)
        d = gain.max(axis=0)
        for b in offered:
            if b == a:
                continue
            r = np.zeros(k + 1)
            r[col[a]], r[col[b]], r[k] = 1.0, -1.0, -1.0
            rows.append(r)
            rhs.append(-d[col[b]])
    cost = np.zeros(k + 1)
    cost[k] = 1.0
    bounds = [(0.0, 0.0)] + [(None, None)] * (k - 1) + [(None, None)]
    res = optimize.linprog(cost, A_ub=np.array(rows), b_ub=np.array(rhs), bounds=bounds, method="highs")
    if res.status != 0:
        raise RuntimeError(f"least worst regret LP: {res.message}")
    return max(0.0, float(res.fun))


def sep_least_worst_regret(rule: str, profile, i: int, a: float = 0.5, cost: float = 1.0, levels: int = 3,
                           points: int = 2001) -> float:  # fmt: skip
    """:func:`least_worst_regret` for agent ``i`` of a deterministic rule at ``s_-i`` of ``profile``, on ``points``
    own signals in ``[0, 1]`` (a subset of the continuum: a lower bound for it). Values: an object is worth ``V_i`` to
    its winner and 0 otherwise (outcome ``1 + i`` is agent ``i``'s); a project of size ``q`` is worth ``q V_i``."""
    s = np.repeat(np.asarray(profile, np.float64)[None, :], points, axis=0)
    s[:, i] = np.linspace(0.0, 1.0, points)
    n = s.shape[1]
    vi = sep_values(s, a)[:, i]
    outcome = sep_outcome(rule, s, a, cost, levels)
    if rule.startswith("size"):
        v = vi[:, None] * np.arange(levels)[None, :]
    else:
        v = np.zeros((points, n + 1))
        v[:, 1 + i] = vi
    return least_worst_regret(v, outcome)


def auction_interim_utility(
    x: float, i: int = 0, a: float = 0.5, n: int = 2, inner: int = 20001, outer: int = 48
) -> float:
    """Interim utility ``U_i(x) = E[u_i | s_i = x]`` of ANY ex post IC (indeed Bayesian IC) mechanism implementing the
    efficient single-object rule with ``U_i(0) = 0``, independent uniform signals (CE Thm 3 / interim envelope):
    ``U_i(x) = int_0^x E[h_i(y, S_-i)] dV_i/dy dy``, ``V_i = s_i + a s_j`` (``dV_i/dy = 1``), ``n = 2``. The inner
    expectation is a midpoint rule over ``s_j`` on ``inner`` points of the restated rule (the highest value wins,
    lowest index on ties; error <= 1 / inner), the outer integral ``outer``-point Gauss-Legendre on ``[0, x]`` (its
    integrand is Lipschitz in ``y``)."""
    if n != 2:
        raise ValueError("auction_interim_utility: n = 2 only")
    sj = (np.arange(inner) + 0.5) / inner

    def win_share(y):
        s = np.stack([np.full(inner, y), sj], -1) if i == 0 else np.stack([sj, np.full(inner, y)], -1)
        v = sep_values(s, a)
        return float(np.mean((np.argmax(v, axis=-1) == i) & (v[:, i] > 0)))

    gx, gw = np.polynomial.legendre.leggauss(outer)
    y = 0.5 * x * (gx + 1.0)
    return float(0.5 * x * np.sum(gw * np.array([win_share(t) for t in y])))


def auction_vcg_revenue(a: float = 0.5) -> float:
    """``E[sum_i t_i]`` of the generalized VCG auction, two bidders, ``V_i = s_i + a s_j``, independent uniforms: the
    winner pays its value at its pivot (the other's signal), ``(1 + a) min(s_1, s_2)``; scipy ``dblquad``."""
    return float(integrate.dblquad(lambda s2, s1: (1 + a) * min(s1, s2), 0.0, 1.0, 0.0, 1.0, epsabs=1e-10)[0])


# --------------------------------------------------------------------------------------------------------------
# B Sec. 3, eq. (5), fns. 11-12: two objects A, B, unit demand; V_iX = s_iX + a mean_{j != i} s_jX


def unit_demand_assignments(n: int) -> list[tuple[int, ...]]:
    """Every assignment of objects A (1) and B (2) to ``n`` buyers (0: nothing), each object to at most one buyer."""
    out = []
    for alloc in np.ndindex(*(3,) * n):
        if sum(x == 1 for x in alloc) <= 1 and sum(x == 2 for x in alloc) <= 1:
            out.append(tuple(int(x) for x in alloc))
    return out


def assignment_label(alloc) -> str:
    """Buyer i's allocation at position i: ``-`` nothing, ``A``, ``B`` (e.g. ``"A-"``: buyer 1 gets A)."""
    return "".join("-AB"[x] for x in alloc)


def pairs_by_movers(n: int) -> dict[tuple[str, str], tuple[int, ...]]:
    """Unordered pairs of assignments (labels, in enumeration order) -> the buyers whose allocation differs."""
    a = unit_demand_assignments(n)
    return {(assignment_label(a[l_]), assignment_label(a[k_])): tuple(i for i in range(n) if a[l_][i] != a[k_][i])
            for l_ in range(len(a)) for k_ in range(l_ + 1, len(a))}  # fmt: skip


def two_object_values_np(s: np.ndarray, n: int, a: float) -> np.ndarray:
    """``V[i, X] = s_iX + a mean_{j != i} s_jX`` at one profile ``s = (s_1A, s_1B, ..., s_nA, s_nB)``."""
    x = np.asarray(s, np.float64).reshape(n, 2)
    return x + a * (x.sum(0, keepdims=True) - x) / (n - 1)


def assignment_value_np(s: np.ndarray, alloc, n: int, a: float) -> np.ndarray:
    """``v_i(alloc, s)``: buyer i's value of his object (0 for nothing), no consumption externality."""
    v = two_object_values_np(s, n, a)
    return np.array([0.0 if alloc[i] == 0 else v[i, alloc[i] - 1] for i in range(n)])


def _choice_probs(r: np.ndarray, left: tuple[bool, bool]) -> np.ndarray:
    """P(nothing), P(A), P(B) for one buyer with ``s_X ~ U[0, 1]`` who takes the available ``X`` maximizing
    ``s_X - r_X`` when positive (closed form)."""
    ra, rb = float(r[0]), float(r[1])
    if not left[0] and not left[1]:
        return np.array([1.0, 0.0, 0.0])
    if not left[1]:
        return np.array([ra, 1.0 - ra, 0.0])
    if not left[0]:
        return np.array([rb, 0.0, 1.0 - rb])

    def first(r1, r2):  # P(s_1 - r1 > max(0, s_2 - r2)) = int_0^{1 - r1} min(u + r2, 1) du
        length = 1.0 - r1
        if length <= 1.0 - r2:
            return length * r2 + length**2 / 2.0
        return (1.0 - r2**2) / 2.0 + r2 - r1

    pa, pb = first(ra, rb), first(rb, ra)
    return np.array([1.0 - pa - pb, pa, pb])


def serial_dictatorship_probs(reserves, n: int) -> dict[str, float]:
    """Each assignment's probability under the serial dictatorship with prices ``V_kX(r_kX, s_-k)`` (buyer k's
    surplus from X is ``s_kX - r_kX``), signals i.i.d. ``U[0, 1]``: buyers choose in turn, so the probability is
    the product of each buyer's choice probability given the objects the earlier buyers left (closed form)."""
    r = np.broadcast_to(np.asarray(reserves, np.float64).reshape(-1, 2), (n, 2))
    out = {}
    for alloc in unit_demand_assignments(n):
        p, left = 1.0, [True, True]
        for k in range(n):
            p *= _choice_probs(r[k], (left[0], left[1]))[alloc[k]]
            if alloc[k]:
                left[alloc[k] - 1] = False
        out[assignment_label(alloc)] = p
    return out


def private_vcg_gain(s: np.ndarray, m_i: np.ndarray, i: int, n: int, a: float) -> float:
    """Buyer i's gain from reporting ``m_i`` under the efficient assignment with Clarke payments computed from the
    reported values as if they were private (``t_i = max_q sum_{j != i} v_j(q, m) - sum_{j != i} v_j(f(m), m)``),
    others truthful; restated by enumeration."""
    allocs = unit_demand_assignments(n)

    def utility(m):
        v = np.array([assignment_value_np(m, al, n, a) for al in allocs])  # (K, n) at the reports
        q = int(np.argmax(v.sum(1)))
        others = v.sum(1) - v[:, i]
        return assignment_value_np(s, allocs[q], n, a)[i] - (others.max() - others[q])

    m = np.asarray(s, np.float64).copy()
    m[2 * i : 2 * i + 2] = m_i
    return utility(m) - utility(np.asarray(s, np.float64))


# --------------------------------------------------------------------------------------------------------------
# B Sec. 5: a consumption externality in Example 1 (V_i = p_i + c_i c_j; the Sec. 4 construction's prices p_j + c_j)


def example1_externality_utility(s: np.ndarray, m: np.ndarray, i: int, eps: float) -> float:
    """Buyer i's utility at true ``s = (p_1, c_1, p_2, c_2)`` and reports ``m`` under B eq. (4) with prices
    ``t_i = m_pj + m_cj`` (the construction on Example 1), when he loses ``eps e_i(s)``, ``e_i = (p_i + c_i) / 2``,
    if the other buyer gets the object."""
    s, m = np.asarray(s, np.float64), np.asarray(m, np.float64)
    v_rep = np.array([m[0] + m[1] * m[3], m[2] + m[3] * m[1]])
    t = np.array([m[2] + m[3], m[0] + m[1]])
    surplus = v_rep - t
    w = int(np.argmax(surplus))
    winner = w if surplus[w] > 0 else -1
    j = 1 - i
    v_true = np.array([s[0] + s[1] * s[3], s[2] + s[3] * s[1]])
    e_i = (s[2 * i] + s[2 * i + 1]) / 2.0
    return (v_true[i] - t[i] if winner == i else 0.0) - (eps * e_i if winner == j else 0.0)


def example1_externality_gain(s: np.ndarray, m_i: np.ndarray, i: int, eps: float) -> float:
    """Buyer i's gain from reporting ``m_i`` (others truthful) in :func:`example1_externality_utility`."""
    m = np.asarray(s, np.float64).copy()
    m[2 * i : 2 * i + 2] = m_i
    return example1_externality_utility(s, m, i, eps) - example1_externality_utility(s, s, i, eps)


def example1_externality_bound(s: np.ndarray, i: int, eps: float) -> float:
    """The most buyer i can gain by misreporting at ``s``: ``eps e_i(s)`` if the other buyer wins at the truth, else 0.

    With ``u^eps_i(m) = u^0_i(m) - eps e_i(s) 1{j wins at m}`` and ``u^0_i(m) <= u^0_i(s)`` (the mechanism is ex post
    IC without the externality), ``u^eps_i(m) - u^eps_i(s) <= eps e_i(s) (1{j wins at s} - 1{j wins at m})
    <= eps e_i(s) 1{j wins at s}``: at most ``eps max e_i = eps``, tighter than ``2 eps max e_i``."""
    s = np.asarray(s, np.float64)
    j = 1 - i
    v = np.array([s[0] + s[1] * s[3], s[2] + s[3] * s[1]])
    t = np.array([s[2] + s[3], s[0] + s[1]])
    j_wins = v[j] - t[j] > max(0.0, v[i] - t[i])
    return eps * (s[2 * i] + s[2 * i + 1]) / 2.0 if j_wins else 0.0


# --------------------------------------------------------------------------------------------------------------
# design under a correlated prior: the best posted price (private-values trade, Gaussian copula)


def copula_posted_gains(rho: float, p: float, nodes: int = 100) -> float:
    """``W(p) = E[(s_b - s_s) 1{s_b >= p >= s_s}]``, uniform marginals, Gaussian copula ``rho``: the buyer's signal
    ``b`` by Gauss-Legendre on ``[p, 1]``, the seller's given it, ``s = Phi(rho z_b + sqrt(1 - rho^2) t)`` with
    ``t ~ N(0, 1)``, by Gauss-Legendre over ``t`` up to where ``s = p`` (from -10). Both integrands are smooth, so
    ``nodes`` per level converge fast (100 vs 200: 3e-8 at rho = 0.5; the midpoint rule of :func:`expect` at 2000
    points agrees within its own error bound, 1e-6)."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    b = p + (1 - p) * (x + 1) / 2
    wb = (1 - p) * w / 2
    zb = special.ndtri(b)
    sig = math.sqrt(1 - rho * rho)
    top = np.maximum((special.ndtri(p) - rho * zb) / sig, -10.0)  # s <= p  <=>  t <= top
    t = -10.0 + (top[:, None] + 10.0) * (x[None, :] + 1) / 2
    wt = (top[:, None] + 10.0) * w[None, :] / 2
    inner = np.sum(
        wt * np.exp(-t * t / 2) / math.sqrt(2 * math.pi) * (b[:, None] - special.ndtr(rho * zb[:, None] + sig * t)), 1
    )
    return float(np.sum(wb * inner))


def copula_posted_price(rho: float, nodes: int = 100) -> tuple[float, float]:
    """``(p*, W(p*))``: the posted price maximizing :func:`copula_posted_gains` (private values: posted prices are the
    only ex post IC, IR and balanced trade rules, whatever the prior, Hagerty-Rogerson 1987), by golden section on
    ``[0.2, 0.8]`` (``W`` is smooth and unimodal there)."""
    lo, hi = 0.2, 0.8
    g = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        c, d = hi - g * (hi - lo), lo + g * (hi - lo)
        lo, hi = (lo, d) if copula_posted_gains(rho, c, nodes) > copula_posted_gains(rho, d, nodes) else (c, hi)
    p = 0.5 * (lo + hi)
    return p, copula_posted_gains(rho, p, nodes)


# --------------------------------------------------------------------------------------------------------------
# CE Props 1-2 / Sec. 2.1: the generalized VCG mechanism's interim utility U_i(s_i) = E[u_i(s) | s_i] under the
# prior's CONDITIONAL law of s_j given s_i (two agents, linear values v_i = s_i + a s_j)

COPULA_EPS = 1e-6  # the copula's normal score of s_i is that of F_i(s_i) clipped to [eps, 1 - eps] (finite at the ends)


def vcg_ex_post_utility(env: dict, i: int, s_i, s_j) -> np.ndarray:
    """``u_i(s)`` of the generalized VCG mechanism (CE Sec. 3.3: agent i pays its value at its pivot, the lowest own
    signal at which the efficient outcome is still chosen), so ``u_i = v_i(s_i, s_j) - v_i(pivot_i, s_j) =
    s_i - pivot_i`` where the good is traded / provided, 0 elsewhere:

    - bilateral trade (CE Sec. 4; agent 0 the buyer, 1 the seller; a < 1): trade iff ``s_b > s_s``, the buyer's pivot
      is ``s_s``, the seller's (its largest signal that still trades) ``s_b``: both get ``(s_b - s_s)^+``;
    - public good of cost c (CE Sec. 5): provide iff ``(1 + a)(s_1 + s_2) > c``, pivot ``(k - s_j)^+`` with
      ``k = c / (1 + a)``: ``u_i = (s_i - (k - s_j)^+)^+``."""
    if env.get("values", "linear") != "linear" or env.get("n", 2) != 2 or env.get("weights"):
        raise ValueError("vcg_ex_post_utility: two agents with linear values v_i = s_i + a s_j only")
    s_i, s_j = np.asarray(s_i, np.float64), np.asarray(s_j, np.float64)
    if env["kind"] == "bilateral_trade":
        return np.maximum(s_i - s_j if i == 0 else s_j - s_i, 0.0)
    if env["kind"] == "public_good":
        k = env["cost"] / (1.0 + env["a"])
        return np.maximum(s_i - np.maximum(k - s_j, 0.0), 0.0)
    raise ValueError(f"vcg_ex_post_utility: no closed form for environment kind {env['kind']!r}")


def conditional_nodes(prior: dict, i: int, s_i: float, points: int) -> np.ndarray:
    """``s_j`` at the midpoint nodes ``u = (k + 1/2) / points`` of its conditional quantile given ``s_i``: independent,
    ``Q_j(u)``; Gaussian copula ``rho``, ``Q_j(Phi(rho z_i + sqrt(1 - rho^2) Phi^{-1}(u)))`` with
    ``z_i = Phi^{-1}(F_i(s_i))`` (the conditional normal score, :data:`COPULA_EPS` at the ends)."""
    u = (np.arange(points) + 0.5) / points
    marg = _marginals(prior, 2)
    q_j = _quantile(marg[1 - i])
    r = _rho(prior)
    if r == 0.0:
        return q_j(u)
    m = marg[i]
    lo, hi = m.get("lo", 0.0), m.get("hi", 1.0)
    x = min(max((s_i - lo) / (hi - lo), 0.0), 1.0)
    f_i = special.betainc(m["a"], m["b"], x) if m.get("kind", "uniform") == "beta" else x
    z_i = special.ndtri(min(max(f_i, COPULA_EPS), 1.0 - COPULA_EPS))
    return q_j(special.ndtr(r * z_i + math.sqrt(1.0 - r * r) * special.ndtri(u)))


def vcg_interim_utility(settings: dict, i: int, types, points: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """``(U_i(t) for t in types, error bound)``: ``E[u_i(t, S_j) | s_i = t]`` of :func:`vcg_ex_post_utility` under the
    conditional law of :func:`conditional_nodes` (``settings``: the run's ``environment`` and ``prior`` tables), the
    midpoint rule in the conditional quantile's coordinate at ``points`` and ``points / 2`` nodes (the integrand is
    bounded and piecewise smooth in ``u``, kinked where ``s_j`` crosses a pivot); the bound is their difference."""
    env, prior = settings["environment"], settings["prior"]
    vals, errs = [], []
    for t in np.asarray(types, np.float64):
        fine, coarse = (float(np.mean(vcg_ex_post_utility(env, i, t, conditional_nodes(prior, i, t, n))))
                        for n in (points, points // 2))  # fmt: skip
        vals.append(fine)
        errs.append(abs(fine - coarse))
    return np.array(vals), np.array(errs)


def vcg_interim_gain(settings: dict, i: int, t: float, m: float, points: int = 4000) -> tuple[float, float]:
    """``(U_i(m; t) - U_i(t; t), error bound)``: agent i of type ``t`` reporting ``m`` in the generalized VCG mechanism
    of :func:`vcg_ex_post_utility`, ``E[. | s_i = t]`` as in :func:`vcg_interim_utility`. The report moves only
    the outcome (the pivot depends on ``s_j`` alone): ``u_i(m; s) = (s_i - pivot_i) 1{m beats pivot_i}``, i.e.
    ``(t - p) 1{m > p}`` for the buyer and the public good (pivot ``p = s_s`` or ``(k - s_j)^+``) and
    ``(s_b - t) 1{m < s_b}`` for the seller."""
    env, prior = settings["environment"], settings["prior"]
    out = []
    for n in (points, points // 2):
        s_j = conditional_nodes(prior, i, t, n)
        if env["kind"] == "bilateral_trade" and i == 1:
            dev = np.where(m < s_j, s_j - t, 0.0)
        elif env["kind"] == "bilateral_trade":
            dev = np.where(m > s_j, t - s_j, 0.0)
        else:
            p = np.maximum(env["cost"] / (1.0 + env["a"]) - s_j, 0.0)
            dev = np.where(m > p, t - p, 0.0)
        out.append(float(np.mean(dev - vcg_ex_post_utility(env, i, t, s_j))))
    return out[0], abs(out[0] - out[1])


def sec34_anchored_violation(a: float, c: float) -> tuple[float, float, float]:
    """CE Sec. 3.4 as written for the public good ``v_i = s_i + a s_j``, cost c, independent uniform signals: the
    generalized VCG payment with the lowest type's payment held at its mean, ``t_i(s) = t_i^VCG(s) -
    t_i^VCG(0, s_j) + tau``. At ``s_i = 0`` VCG charges ``a s_j`` when ``s_j > k = c / (1 + a)`` (pivot 0), else
    nothing, so ``tau = E[a S_j 1{S_j > k}] = a (1 - k^2) / 2`` and ``u_i(s) = u_i^VCG(s) + a s_j 1{s_j > k} - tau``.
    Returns ``(tau, sd, p)``: the largest ex post IR violation ``tau`` (on ``{s_j <= k, s_i + s_j <= k}``, where
    ``u_i^VCG = 0``), the SD of ``a S_j 1{S_j > k}`` (``tau``'s Monte Carlo estimates have SE ``sd / sqrt(n)``), and
    ``P(u_i < 0) = int_0^k min(1, k - s_j + tau) ds_j`` (for ``s_j > k``: ``u_i >= a k - tau > 0``). Needs ``0 < k <= 1``
    and ``a k > tau``."""
    k = c / (1.0 + a)
    if not (0.0 < k <= 1.0) or a * k <= a * (1.0 - k * k) / 2.0:
        raise ValueError(f"sec34_anchored_violation: needs 0 < k <= 1 and a k > tau, got a = {a}, c = {c}")
    tau = a * (1.0 - k * k) / 2.0
    sd = math.sqrt(a * a * (1.0 - k**3) / 3.0 - tau * tau)
    cut = max(0.0, k + tau - 1.0)  # below it k - s_j + tau > 1: the whole s_i range violates
    p = cut + (k - cut) * (k + tau) - (k * k - cut * cut) / 2.0
    return tau, sd, p
