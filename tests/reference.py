"""Independent numerical reference for bilateral trade (Chung & Ely 2006, Section 4).

This module deliberately does **not** import ``jaxmech``: it is a second, independent
implementation (numpy + scipy only) used by the test-suite to check the Monte Carlo
engine (agreement within a few standard errors).  Nothing heavy happens at import time.

Notation (CE Sec. 4): buyer b (beta), seller s (sigma), signals ``s = (s_b, s_s)`` in
[0, 1]^2.  For a deterministic, monotone trading rule with trade set T the generalized
VCG payments are (CE eqs. (5)-(6)), in a trade state,

    buyer pays        t_b(s) =  v_b(g_b(s_s), s_s),  g_b(s_s) = inf{x : (x, s_s) in T},
    seller receives  -t_s(s) =  v_s(s_b, g_s(s_b)),  g_s(s_b) = sup{y : (s_b, y) in T},

and no payments without trade.  The *deficit* is ``-(t_b + t_s)`` = (what the seller
receives) - (what the buyer pays) in trade states, 0 otherwise.

Priors
------
A prior is a :class:`Prior` (frozen dataclass, hashable so results can be cached) built by
:func:`uniform`, :func:`beta`, :func:`gaussian_copula` or :func:`gaussian_copula_beta`.
Every ``*_expected_*`` function also accepts a plain density callable
``density(s_b, s_s)`` on [0, 1]^2 (integrated directly, no sampler).

Integration method
------------------
All expectations are iterated adaptive Gauss-Kronrod integrals (``scipy.integrate.quad``,
inner ``epsabs=1e-13, epsrel=1e-11``; outer ``epsabs=1e-11, epsrel=1e-10``).  The inner
integral (over ``s_b`` given ``s_s``) is split at every kink / discontinuity of the integrand
(trade boundary, pivot clipping, value kinks), and the outer integral (over ``s_s``) is split
wherever those inner break points cross each other or the edges of [0, 1], so that every
quad call sees an analytic integrand.  Independent priors are integrated in the signal
space with the product density; Gaussian-copula priors are integrated in the latent normal
space, ``s_b = Q_b(Phi(x))``, ``s_s = Q_s(Phi(y))``, outer ``y ~ N(0, 1)`` and inner
``x = rho y + sqrt(1 - rho^2) z`` with ``z ~ N(0, 1)`` (break points are mapped through
``Phi^{-1}(F(.))``).  This avoids the integrable corner singularities of the copula density
and gives ~1e-9 accuracy or better (checked against closed forms and 1e6-sample Monte
Carlo in the ``__main__`` self-check: ``python tests/reference.py``).

Paper typos found while deriving (CE 2006 as in /work/shared/papers):
  * Lemma 5 proof: "t_b(s) <= inf v_b(s~_b, s_s) = g_b(s_s)" should read
    "= v_b(g_b(s_s), s_s)"; likewise "-t_s(s) >= g_s(s_b)" should be
    "-t_s(s) >= v_s(s_b, g_s(s_b))" and the bound is
    t_b + t_s <= v_b(g_b(s_s), s_s) - v_s(s_b, g_s(s_b)); these are the *surpluses*
    (minus the deficits) of (f, t) and (f~, t~), not "the deficit" as the text says.
  * Lemma 4 proof, the strict-deficit chain: "v_s(tau_b, g_b(tau_b))" should be
    "v_s(tau_b, g_s(tau_b))" (the seller's pivot).
  * Sec. 4.2: the payment to the seller in (f, t) is v_s(s_b, g^{-1}(s_b)), not
    "v_s(s_b, g(s_b))" (the inverse cutoff is missing).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy import integrate, special

__all__ = [
    "Prior",
    "uniform",
    "beta",
    "gaussian_copula",
    "gaussian_copula_beta",
    "expect",
    "linear_deficit",
    "linear_expected_deficit",
    "linear_trade_prob",
    "linear_expected_welfare",
    "mult_values",
    "mult_pivots",
    "mult_deficit",
    "mult_expected_deficit",
    "mult_trade_prob",
    "mult_expected_welfare",
    "deadzone_values",
    "deadzone_deficit",
    "deadzone_expected_deficit",
    "deadzone_trade_prob",
    "deadzone_expected_welfare",
    "ramp_prob",
    "ramp_payments",
    "ramp_deficit",
    "ramp_expected_deficit",
    "ramp_trade_prob",
    "ramp_expected_welfare",
    "interim_payments",
    "interim_mechanism_deficit",
    "interim_mechanism_expected_deficit",
    "interim_mechanism_regret",
    "interim_mechanism_expected_regret",
    "interim_mechanism_max_regret",
]

_INNER = dict(epsabs=1e-13, epsrel=1e-11, limit=200)
_OUTER = dict(epsabs=1e-11, epsrel=1e-10, limit=200)
_SQRT2PI = math.sqrt(2.0 * math.pi)


# ----------------------------------------------------------------------------------------
# Priors
# ----------------------------------------------------------------------------------------
def _beta_pdf(x: float, a: float, b: float) -> float:
    if a == 1.0 and b == 1.0:
        return 1.0
    if x <= 0.0 or x >= 1.0:
        if (x <= 0.0 and a < 1.0) or (x >= 1.0 and b < 1.0):
            return math.inf
        if (x <= 0.0 and a > 1.0) or (x >= 1.0 and b > 1.0):
            return 0.0
    return math.exp((a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x) - special.betaln(a, b))


def _quad(f, lo: float, hi: float, tol: dict) -> float:
    """``quad`` on one smooth piece; slivers (width < 1e-11, from nearly coincident break
    points) are done by the midpoint rule, their contribution being far below tolerance."""
    if not hi > lo:
        return 0.0
    if hi - lo < 1e-11:
        return (hi - lo) * f(0.5 * (lo + hi))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", integrate.IntegrationWarning)
        val, err = integrate.quad(f, lo, hi, **tol)[:2]
    if caught and err > 1e-10:  # roundoff near the requested 1e-13 is harmless; anything else is not
        warnings.warn(
            f"quad on [{lo}, {hi}]: abserr {err:.1e}: {caught[0].message}", integrate.IntegrationWarning, stacklevel=2
        )
    return val


def _phi(z: float) -> float:
    return math.exp(-0.5 * z * z) / _SQRT2PI


@dataclass(frozen=True)
class Prior:
    """Joint law of ``(s_b, s_s)`` on [0, 1]^2.

    ``s_b ~ Beta(a1, b1)`` and ``s_s ~ Beta(a2, b2)`` marginally (Beta(1, 1) = uniform), joined
    by a Gaussian copula with correlation ``rho`` (``rho == 0``: independent).  Density::

        p(s_b, s_s) = c(F_b(s_b), F_s(s_s); rho) * beta_pdf(s_b; a1, b1) * beta_pdf(s_s; a2, b2),
        c(u, v; rho) = phi2(x, y; rho) / (phi(x) phi(y)),  x = Phi^{-1}(u), y = Phi^{-1}(v).
    """

    a1: float = 1.0
    b1: float = 1.0
    a2: float = 1.0
    b2: float = 1.0
    rho: float = 0.0
    name: str = "uniform"

    # -- marginals ------------------------------------------------------------------------
    @property
    def _unif_b(self) -> bool:
        return self.a1 == 1.0 and self.b1 == 1.0

    @property
    def _unif_s(self) -> bool:
        return self.a2 == 1.0 and self.b2 == 1.0

    def _q_b(self, u):
        return u if self._unif_b else special.betaincinv(self.a1, self.b1, u)

    def _q_s(self, u):
        return u if self._unif_s else special.betaincinv(self.a2, self.b2, u)

    def _f_b(self, x):
        return x if self._unif_b else special.betainc(self.a1, self.b1, x)

    def _f_s(self, x):
        return x if self._unif_s else special.betainc(self.a2, self.b2, x)

    # -- density / sampling ---------------------------------------------------------------
    def density(self, s_b, s_s):
        """Joint density at ``(s_b, s_s)`` (numpy-vectorised)."""
        s_b, s_s = np.broadcast_arrays(np.asarray(s_b, float), np.asarray(s_s, float))
        from scipy import stats

        p = stats.beta.pdf(s_b, self.a1, self.b1) * stats.beta.pdf(s_s, self.a2, self.b2)
        if self.rho == 0.0:
            return p
        r = self.rho
        x = special.ndtri(self._f_b(s_b))
        y = special.ndtri(self._f_s(s_s))
        logc = -0.5 * math.log1p(-r * r) - (r * r * (x * x + y * y) - 2.0 * r * x * y) / (2.0 * (1.0 - r * r))
        return p * np.exp(logc)

    def sample(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``n`` draws as an ``(n, 2)`` array of ``(s_b, s_s)``."""
        rng = np.random.default_rng(rng)
        if self.rho == 0.0:
            sb = rng.random(n) if self._unif_b else rng.beta(self.a1, self.b1, n)
            ss = rng.random(n) if self._unif_s else rng.beta(self.a2, self.b2, n)
            return np.stack([sb, ss], axis=1)
        z = rng.standard_normal((n, 2))
        x = z[:, 0]
        y = self.rho * z[:, 0] + math.sqrt(1.0 - self.rho**2) * z[:, 1]
        return np.stack([self._q_b(special.ndtr(x)), self._q_s(special.ndtr(y))], axis=1)

    # -- expectation ----------------------------------------------------------------------
    def expect(
        self,
        h: Callable[[float, float], float],
        inner_breaks: Callable[[float], Iterable[float]] = lambda _: (),
        outer_breaks: Iterable[float] = (),
    ) -> float:
        """``E[h(s_b, s_s)]`` by iterated ``quad``.

        ``h`` is a scalar function; ``inner_breaks(s_s)`` lists the ``s_b`` at which
        ``h(., s_s)`` has a kink/jump; ``outer_breaks`` lists the ``s_s`` at which the inner
        integral (as a function of ``s_s``) may be non-smooth.
        """
        if self.rho == 0.0:
            return _expect_independent(
                h,
                lambda x: _beta_pdf(x, self.a1, self.b1),
                lambda y: _beta_pdf(y, self.a2, self.b2),
                inner_breaks,
                outer_breaks,
            )
        return self._expect_copula(h, inner_breaks, outer_breaks)

    def _expect_copula(self, h, inner_breaks, outer_breaks) -> float:
        r = self.rho
        sig = math.sqrt(1.0 - r * r)

        def to_latent_b(p):
            return float(special.ndtri(self._f_b(p)))

        def inner(y: float) -> float:
            ss = float(self._q_s(special.ndtr(y)))
            pb = sorted({0.0, 1.0, *(float(p) for p in inner_breaks(ss) if 0.0 < p < 1.0)})
            total = 0.0
            for plo, phi_ in zip(pb[:-1], pb[1:], strict=True):
                lo = -math.inf if plo == 0.0 else (to_latent_b(plo) - r * y) / sig
                hi = math.inf if phi_ == 1.0 else (to_latent_b(phi_) - r * y) / sig
                if not hi > lo:
                    continue
                # clamp s_b strictly inside the piece [plo, phi_] so that the round trip
                # s -> latent -> s cannot put a node on the wrong side of a jump
                blo, bhi = math.nextafter(plo, 1.0), math.nextafter(phi_, 0.0)

                def f(z: float, blo=blo, bhi=bhi) -> float:
                    sb = min(max(float(self._q_b(special.ndtr(r * y + sig * z))), blo), bhi)
                    return _phi(z) * h(sb, ss)

                total += _quad(f, lo, hi, _INNER)
            return total

        yb = sorted({float(special.ndtri(self._f_s(q))) for q in outer_breaks if 0.0 < q < 1.0})
        edges = [-math.inf, *yb, math.inf]
        return sum(
            _quad(lambda y: _phi(y) * inner(y), lo, hi, _OUTER) for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        )


def _expect_independent(h, p_b, p_s, inner_breaks, outer_breaks) -> float:
    def inner(ss: float) -> float:
        pts = sorted({0.0, 1.0, *(float(p) for p in inner_breaks(ss) if 0.0 < p < 1.0)})
        return sum(
            _quad(lambda sb: p_b(sb) * h(sb, ss), lo, hi, _INNER) for lo, hi in zip(pts[:-1], pts[1:], strict=True)
        )

    pts = sorted({0.0, 1.0, *(float(q) for q in outer_breaks if 0.0 < q < 1.0)})
    return sum(_quad(lambda ss: p_s(ss) * inner(ss), lo, hi, _OUTER) for lo, hi in zip(pts[:-1], pts[1:], strict=True))


def uniform() -> Prior:
    """Independent Uniform(0, 1) signals; density 1 on [0, 1]^2."""
    return Prior(name="uniform")


def beta(a1: float, b1: float, a2: float, b2: float) -> Prior:
    """Independent ``s_b ~ Beta(a1, b1)``, ``s_s ~ Beta(a2, b2)``."""
    return Prior(float(a1), float(b1), float(a2), float(b2), 0.0, f"beta({a1},{b1},{a2},{b2})")


def gaussian_copula(rho: float) -> Prior:
    """Uniform marginals joined by a Gaussian copula, density
    ``c(u, v) = phi2(x, y; rho) / (phi(x) phi(y))`` with ``x = Phi^{-1}(u)``, ``y = Phi^{-1}(v)``."""
    if not -1.0 < rho < 1.0:
        raise ValueError("need |rho| < 1")
    return Prior(rho=float(rho), name=f"copula({rho})")


def gaussian_copula_beta(rho: float, a1: float, b1: float, a2: float, b2: float) -> Prior:
    """Gaussian copula (correlation ``rho``) with Beta(a1, b1) / Beta(a2, b2) marginals."""
    if not -1.0 < rho < 1.0:
        raise ValueError("need |rho| < 1")
    return Prior(float(a1), float(b1), float(a2), float(b2), float(rho), f"copula_beta({rho},{a1},{b1},{a2},{b2})")


def expect(prior, h, inner_breaks=lambda _: (), outer_breaks=()) -> float:
    """``E[h(s_b, s_s)]`` under ``prior`` (a :class:`Prior` or a density callable ``p(s_b, s_s)``)."""
    if isinstance(prior, Prior):
        return prior.expect(h, inner_breaks, outer_breaks)
    if callable(prior):
        return _expect_independent(
            lambda sb, ss: float(prior(sb, ss)) * h(sb, ss), lambda _: 1.0, lambda _: 1.0, inner_breaks, outer_breaks
        )
    raise TypeError("prior must be a Prior or a density callable")


def _cache(fn):
    """lru_cache that silently skips unhashable (e.g. lambda-density) priors."""
    cached = cache(fn)

    def wrapper(*args, **kw):
        try:
            return cached(*args, **kw)
        except TypeError:
            return fn(*args, **kw)

    wrapper.__doc__ = fn.__doc__
    wrapper.__name__ = fn.__name__
    wrapper.__wrapped__ = fn
    return wrapper


def _line_breaks(offsets: Iterable[float], consts: Iterable[float] = (), extra_outer: Iterable[float] = ()):
    """Inner break points ``s_b = s_s + d`` (d in offsets) and ``s_b = p`` (p in consts); the
    outer break points are all crossings of these lines with each other and with s_b in {0, 1}."""
    offsets, consts = tuple(offsets), tuple(consts)
    outer = set(extra_outer)
    for d in offsets:
        for p in (*consts, 0.0, 1.0):
            outer.add(p - d)
    return (lambda ss: [ss + d for d in offsets] + list(consts)), sorted(q for q in outer if 0.0 < q < 1.0)


# ----------------------------------------------------------------------------------------
# 2. Linear family  v_b = s_b + a s_s,  v_s = s_s + a s_b   (CE Sec. 4.4)
# ----------------------------------------------------------------------------------------
def linear_deficit(a: float, s_b, s_s):
    """Pointwise VCG deficit ``(1 + a)(s_b - s_s) 1(s_b > s_s)``.

    Efficient rule: trade iff Delta = (1 - a)(s_b - s_s) > 0 (a < 1), pivots g_b(s_s) = s_s,
    g_s(s_b) = s_b; buyer pays v_b(s_s, s_s) = (1 + a) s_s, seller receives (1 + a) s_b."""
    s_b, s_s = np.asarray(s_b, float), np.asarray(s_s, float)
    return np.where(s_b > s_s, (1.0 + a) * (s_b - s_s), 0.0)


@_cache
def _e_pos_diff(prior) -> float:
    return expect(prior, lambda sb, ss: sb - ss if sb > ss else 0.0, lambda ss: [ss])


def linear_expected_deficit(a: float, prior) -> float:
    """``E[(1 + a)(s_b - s_s)^+] = (1 + a) E[(s_b - s_s)^+]`` (uniform: ``(1 + a)/6``).
    Iterated quad, inner integral split at ``s_b = s_s``."""
    return (1.0 + a) * _e_pos_diff(prior)


@_cache
def linear_trade_prob(prior) -> float:
    """``P(s_b > s_s)`` (uniform and any exchangeable prior: 1/2).  Iterated quad split at ``s_b = s_s``."""
    return expect(prior, lambda sb, ss: 1.0 if sb > ss else 0.0, lambda ss: [ss])


def linear_expected_welfare(a: float, prior) -> float:
    """``E[1(trade)(v_b - v_s)] = (1 - a) E[(s_b - s_s)^+]`` (uniform: ``(1 - a)/6``)."""
    return (1.0 - a) * _e_pos_diff(prior)


# ----------------------------------------------------------------------------------------
# 3. Multiplicative family  v_b = s_b + a s_s + b s_b s_s,  v_s = gamma + s_s + a s_b
# ----------------------------------------------------------------------------------------
def _check_mult(a, b, gamma):
    if not (a < 1.0 and 0.0 <= b < 1.0 - a and gamma >= 0.0):
        raise ValueError("need a < 1, 0 <= b < 1 - a, gamma >= 0")


def mult_values(s_b, s_s, a: float = 0.3, b: float = 0.4, gamma: float = 0.1):
    """``(v_b, v_s)`` for the multiplicative family."""
    s_b, s_s = np.asarray(s_b, float), np.asarray(s_s, float)
    return s_b + a * s_s + b * s_b * s_s, gamma + s_s + a * s_b


def mult_pivots(a: float, b: float, gamma: float, s_b, s_s):
    """Closed-form pivots of the efficient rule (trade iff Delta > 0) for the multiplicative family.

    Delta(s) = (1 - a)(s_b - s_s) + b s_b s_s - gamma has d/ds_b = (1 - a) + b s_s > 0 and
    d/ds_s = -(1 - a) + b s_b < 0 (as 0 <= b < 1 - a), so the trade set is {s_b > x*(s_s)} =
    {s_s < y*(s_b)} with the roots of Delta = 0::

        x*(s_s) = ((1 - a) s_s + gamma) / ((1 - a) + b s_s)    (>= 0 since gamma >= 0)
        y*(s_b) = ((1 - a) s_b - gamma) / ((1 - a) - b s_b)

    Returns ``(g_b(s_s), g_s(s_b))``: ``g_b = x*`` if ``x* < 1`` and NaN otherwise (no trade on
    that row); ``g_s = min(1, y*)`` if ``y* > 0`` and NaN otherwise (no trade on that column;
    ``g_s = 1`` iff Delta(s_b, 1) >= 0).  Verified against bisection in the self-check.
    """
    _check_mult(a, b, gamma)
    s_b, s_s = np.asarray(s_b, float), np.asarray(s_s, float)
    xs = ((1.0 - a) * s_s + gamma) / ((1.0 - a) + b * s_s)
    ys = ((1.0 - a) * s_b - gamma) / ((1.0 - a) - b * s_b)
    g_b = np.where(xs < 1.0, xs, np.nan)
    g_s = np.where(ys > 0.0, np.minimum(1.0, ys), np.nan)
    return g_b, g_s


def _mult_deficit_scalar(sb: float, ss: float, a: float, b: float, gamma: float) -> float:
    if (1.0 - a) * (sb - ss) + b * sb * ss - gamma <= 0.0:
        return 0.0
    gb = ((1.0 - a) * ss + gamma) / ((1.0 - a) + b * ss)
    gs = min(1.0, ((1.0 - a) * sb - gamma) / ((1.0 - a) - b * sb))
    return (gamma + gs + a * sb) - (gb + a * ss + b * gb * ss)


def mult_deficit(s_b, s_s, a: float = 0.3, b: float = 0.4, gamma: float = 0.1):
    """Pointwise generalized-VCG deficit ``v_s(s_b, g_s(s_b)) - v_b(g_b(s_s), s_s)`` on
    {Delta > 0}, 0 elsewhere, i.e. ``gamma + g_s + a s_b - g_b (1 + b s_s) - a s_s``."""
    _check_mult(a, b, gamma)
    s_b, s_s = np.broadcast_arrays(np.asarray(s_b, float), np.asarray(s_s, float))
    trade = (1.0 - a) * (s_b - s_s) + b * s_b * s_s - gamma > 0.0
    g_b, g_s = mult_pivots(a, b, gamma, s_b, s_s)
    d = (gamma + g_s + a * s_b) - (g_b + a * s_s + b * g_b * s_s)
    return np.where(trade, np.nan_to_num(d), 0.0)


def _mult_breaks(a, b, gamma):
    s1 = (1.0 - a + gamma) / (1.0 - a + b)  # y*(s1) = 1: g_s clips to 1 for s_b >= s1
    s0 = (1.0 - a - gamma) / (1.0 - a - b)  # x*(s0) = 1: no trade for s_s >= s0

    def inner(ss):
        return [((1.0 - a) * ss + gamma) / ((1.0 - a) + b * ss), s1]

    return inner, [s0]  # x*(s_s) = s1 only at s_s = 1


@_cache
def mult_expected_deficit(prior, a: float = 0.3, b: float = 0.4, gamma: float = 0.1) -> float:
    """``E[mult_deficit]``; iterated quad, inner split at ``x*(s_s)`` (trade boundary) and
    ``s1 = (1 - a + gamma)/(1 - a + b)`` (seller pivot clips at 1), outer split at
    ``s0 = (1 - a - gamma)/(1 - a - b)`` (row without trade beyond)."""
    _check_mult(a, b, gamma)
    ib, ob = _mult_breaks(a, b, gamma)
    return expect(prior, lambda sb, ss: _mult_deficit_scalar(sb, ss, a, b, gamma), ib, ob)


@_cache
def mult_trade_prob(prior, a: float = 0.3, b: float = 0.4, gamma: float = 0.1) -> float:
    """``P(Delta > 0)``; iterated quad split at the trade boundary."""
    _check_mult(a, b, gamma)
    ib, ob = _mult_breaks(a, b, gamma)
    return expect(prior, lambda sb, ss: 1.0 if (1 - a) * (sb - ss) + b * sb * ss - gamma > 0 else 0.0, ib, ob)


@_cache
def mult_expected_welfare(prior, a: float = 0.3, b: float = 0.4, gamma: float = 0.1) -> float:
    """``E[1(trade) Delta] = E[Delta^+]``; iterated quad split at the trade boundary."""
    _check_mult(a, b, gamma)
    ib, ob = _mult_breaks(a, b, gamma)
    return expect(prior, lambda sb, ss: max(0.0, (1 - a) * (sb - ss) + b * sb * ss - gamma), ib, ob)


# ----------------------------------------------------------------------------------------
# 4. Dead-zone family  v_b = s_b + s_s + k (s_b - s_s - w)^+,  v_s = s_b + s_s + k (s_s - s_b - w)^+
# ----------------------------------------------------------------------------------------
def deadzone_values(s_b, s_s, w: float = 0.2, k: float = 0.5):
    """``(v_b, v_s)``; Delta = v_b - v_s = k * deadzone_w(s_b - s_s) (0 on |s_b - s_s| <= w)."""
    s_b, s_s = np.asarray(s_b, float), np.asarray(s_s, float)
    return s_b + s_s + k * np.maximum(0.0, s_b - s_s - w), s_b + s_s + k * np.maximum(0.0, s_s - s_b - w)


def _dz_scalar(c, sb, ss, w, k):
    if not sb > ss + c:
        return 0.0
    gb = max(0.0, ss + c)
    gs = min(1.0, sb - c)
    pay_b = gb + ss + k * max(0.0, gb - ss - w)
    recv_s = sb + gs + k * max(0.0, gs - sb - w)
    return recv_s - pay_b


def deadzone_deficit(c: float, s_b, s_s, w: float = 0.2, k: float = 0.5):
    """Pointwise generalized-VCG deficit of the cutoff rule g_c: trade iff ``s_b > s_s + c``.

    Pivots (with clipping to [0, 1]): ``g_b(s_s) = max(0, s_s + c)``, ``g_s(s_b) = min(1, s_b - c)``
    (a trade state has s_s + c < s_b <= 1, so both rows/columns are non-empty).  Deficit in a
    trade state = ``v_s(s_b, g_s) - v_b(g_b, s_s)``.  For ``c <= w`` the value kinks are never hit
    at the pivots (g_b - s_s <= c <= w and g_s - s_b <= -c <= w), so this equals
    ``s_b - s_s + min(1, s_b - c) - max(0, s_s + c)`` -- independent of ``k`` -- and, for
    ``c = w`` (no clipping can bind), ``2 (s_b - s_s - w)^+``.  Valid for any real ``c`` (rules
    with ``c`` outside [-w, w] are monotone but not efficient).
    """
    s_b, s_s = np.broadcast_arrays(np.asarray(s_b, float), np.asarray(s_s, float))
    trade = s_b > s_s + c
    g_b = np.maximum(0.0, s_s + c)
    g_s = np.minimum(1.0, s_b - c)
    vb_piv, _ = deadzone_values(g_b, s_s, w, k)
    _, vs_piv = deadzone_values(s_b, g_s, w, k)
    return np.where(trade, vs_piv - vb_piv, 0.0)


def _dz_breaks(c, w):
    return _line_breaks((c, w, -w), (1.0 + c,), extra_outer=(-c,))


@_cache
def deadzone_expected_deficit(c: float, prior, w: float = 0.2, k: float = 0.5) -> float:
    """``E[deadzone_deficit]``; iterated quad split at s_b = s_s + c, s_s +- w, 1 + c and at all
    crossings (outer), incl. s_s = -c where g_b stops clipping."""
    ib, ob = _dz_breaks(c, w)
    return expect(prior, lambda sb, ss: _dz_scalar(c, sb, ss, w, k), ib, ob)


@_cache
def deadzone_trade_prob(c: float, prior, w: float = 0.2) -> float:
    """``P(s_b > s_s + c)``."""
    ib, ob = _dz_breaks(c, w)
    return expect(prior, lambda sb, ss: 1.0 if sb > ss + c else 0.0, ib, ob)


def _dz_delta(sb, ss, w, k):
    d = sb - ss
    return k * (max(0.0, d - w) - max(0.0, -d - w))


@_cache
def deadzone_expected_welfare(c: float, prior, w: float = 0.2, k: float = 0.5) -> float:
    """``E[1(s_b > s_s + c) Delta]``; equals ``k E[(s_b - s_s - w)^+]`` for every c in [-w, w]."""
    ib, ob = _dz_breaks(c, w)
    return expect(prior, lambda sb, ss: _dz_delta(sb, ss, w, k) if sb > ss + c else 0.0, ib, ob)


# -- randomized ramp rule ------------------------------------------------------------------
def ramp_prob(s_b, s_s, w: float = 0.2, r: float | None = None):
    """Trade probability ``f(s) = clip((s_b - s_s + r) / (2r), 0, 1)`` with ramp half-width
    ``r`` (default ``r = w``, the efficient ramp across the whole tie band; any ``r <= w`` is
    efficient, ``r > w`` is monotone but not efficient)."""
    r = w if r is None else r
    return np.clip((np.asarray(s_b, float) - np.asarray(s_s, float) + r) / (2.0 * r), 0.0, 1.0)


def _R(x, r):
    """Antiderivative ``R(x) = int_{-inf}^x clip((u + r)/(2r), 0, 1) du``:
    0 (x <= -r), (x + r)^2 / (4r) (|x| < r), x (x >= r)."""
    x = np.asarray(x, float)
    return np.where(x <= -r, 0.0, np.where(x >= r, x, (x + r) ** 2 / (4.0 * r)))


def _R_scalar(x, r):
    return 0.0 if x <= -r else (x if x >= r else (x + r) ** 2 / (4.0 * r))


def ramp_payments(s_b, s_s, w: float = 0.2, k: float = 0.5, r: float | None = None):
    """Revenue-maximal ex post IC + IR payments ``(t_b, t_s)`` of the ramp rule (envelope formula,
    CE Thm 3 payoff equivalence; the lowest types s_b = 0 / s_s = 1 get zero utility).

    With d = s_b - s_s, F(u) = clip((u + r)/(2r), 0, 1) and R its antiderivative (``_R``),
    dv_b/ds_b = 1 + k 1(s_b - s_s > w), dv_s/ds_s = 1 + k 1(s_s - s_b > w)::

        U_b = int_0^{s_b} f(x, s_s) dv_b/ds_b dx = R(d) - R(-s_s) + k (R(d) - R(w)) 1(d > w)
        U_s = int_{s_s}^1 f(s_b, y) dv_s/ds_s dy = R(d) - R(s_b - 1) + k (R(min(d, -w)) - R(s_b - 1))^+
        t_b = f v_b - U_b,    t_s = -f v_s - U_s.

    For r <= w the k-terms reduce to k (d - w)^+ and 0 (f = 1 beyond +w, f = 0 beyond -w).
    """
    r = w if r is None else r
    s_b, s_s = np.broadcast_arrays(np.asarray(s_b, float), np.asarray(s_s, float))
    d = s_b - s_s
    f = ramp_prob(s_b, s_s, w, r)
    v_b, v_s = deadzone_values(s_b, s_s, w, k)
    u_b = _R(d, r) - _R(-s_s, r) + k * np.where(d > w, _R(d, r) - _R(w, r), 0.0)
    u_s = _R(d, r) - _R(s_b - 1.0, r) + k * np.maximum(0.0, _R(np.minimum(d, -w), r) - _R(s_b - 1.0, r))
    return f * v_b - u_b, -f * v_s - u_s


def ramp_deficit(s_b, s_s, w: float = 0.2, k: float = 0.5, r: float | None = None):
    """Deficit ``-(t_b + t_s) = U_b + U_s - f Delta``.

    For r <= w (in particular the default r = w) f Delta = k (d - w)^+ cancels the k-term of
    U_b, so the deficit is ``2 R(s_b - s_s) - R(-s_s) - R(s_b - 1)``, independent of k.
    Cross-checked against direct quad of the envelope integrals in the self-check."""
    t_b, t_s = ramp_payments(s_b, s_s, w, k, r)
    return -(t_b + t_s)


def _ramp_def_scalar(sb, ss, w, k, r):
    d = sb - ss
    f = min(1.0, max(0.0, (d + r) / (2.0 * r)))
    ub = _R_scalar(d, r) - _R_scalar(-ss, r) + (k * (_R_scalar(d, r) - _R_scalar(w, r)) if d > w else 0.0)
    us = _R_scalar(d, r) - _R_scalar(sb - 1.0, r) + k * max(0.0, _R_scalar(min(d, -w), r) - _R_scalar(sb - 1.0, r))
    return ub + us - f * _dz_delta(sb, ss, w, k)


def _ramp_breaks(w, r):
    return _line_breaks((w, -w, r, -r), (1.0 - w, 1.0 - r), extra_outer=(w, r))


@_cache
def ramp_expected_deficit(prior, w: float = 0.2, k: float = 0.5, r: float | None = None) -> float:
    """``E[ramp_deficit]``; quad split at s_b = s_s +- w, s_s +- r, 1 - w, 1 - r (inner) and
    s_s = w, r plus all crossings (outer).  For r <= w independent of k."""
    r = w if r is None else r
    ib, ob = _ramp_breaks(w, r)
    return expect(prior, lambda sb, ss: _ramp_def_scalar(sb, ss, w, k, r), ib, ob)


@_cache
def ramp_trade_prob(prior, w: float = 0.2, r: float | None = None) -> float:
    """``E[f(s)]``."""
    r = w if r is None else r
    ib, ob = _ramp_breaks(w, r)
    return expect(prior, lambda sb, ss: min(1.0, max(0.0, (sb - ss + r) / (2.0 * r))), ib, ob)


@_cache
def ramp_expected_welfare(prior, w: float = 0.2, k: float = 0.5, r: float | None = None) -> float:
    """``E[f Delta]``; for r <= w equal to ``k E[(s_b - s_s - w)^+]`` (as for every efficient rule)."""
    r = w if r is None else r
    ib, ob = _ramp_breaks(w, r)
    return expect(prior, lambda sb, ss: min(1.0, max(0.0, (sb - ss + r) / (2.0 * r))) * _dz_delta(sb, ss, w, k), ib, ob)


# ----------------------------------------------------------------------------------------
# 5. Corollary 1: interim-expected-payment mechanism, linear family, independent uniform
# ----------------------------------------------------------------------------------------
def interim_payments(a: float, m_b, m_s):
    """``(T_b(m_b), T_s(m_s))`` = interim expectations of the VCG payments under uniform priors::

        T_b(m) = E_{s_s}[1(m > s_s)(1 + a) s_s] = (1 + a) m^2 / 2
        T_s(m) = E_{s_b}[-1(s_b > m)(1 + a) s_b] = -(1 + a)(1 - m^2) / 2

    The buyer pays T_b(m_b) and the seller pays T_s(m_s) (receives -T_s) whatever happens;
    trade iff m_b > m_s."""
    m_b, m_s = np.asarray(m_b, float), np.asarray(m_s, float)
    return (1.0 + a) * m_b**2 / 2.0, -(1.0 + a) * (1.0 - m_s**2) / 2.0


def interim_mechanism_deficit(a: float, s_b, s_s):
    """Pointwise deficit ``-(T_b(s_b) + T_s(s_s))`` under truthful reports (mean (1 + a)/6)."""
    t_b, t_s = interim_payments(a, s_b, s_s)
    return -(t_b + t_s)


def interim_mechanism_expected_deficit(a: float) -> float:
    """``E[-(T_b + T_s)]`` under uniform by iterated quad; equals the VCG value ``(1 + a)/6``."""
    return uniform().expect(lambda sb, ss: float(interim_mechanism_deficit(a, sb, ss)))


def _regret_scalar(a, sb, ss):
    """(regret_b, regret_s) at s, other agent truthful; sup over reports m in [0, 1].

    Buyer: reports m <= s_s give no trade and payoff -T_b(m); reports m > s_s give trade and
    v_b(s) - T_b(m).  T_b is monotone in m, so the sups sit at interval end points:
        best_b = max(max(-T_b(0), -T_b(s_s)), v_b - min(T_b(s_s), T_b(1)))
    Seller: m >= s_b -> no trade, payoff -T_s(m); m < s_b -> trade, payoff -v_s - T_s(m):
        best_s = max(max(-T_s(s_b), -T_s(1)), -v_s - min(T_s(0), T_s(s_b)))
    regret = best - truthful payoff (>= 0; the sup need not be attained because trade needs a
    strict inequality, e.g. the buyer's best report is m -> s_s^+ when 1 + a > 0).
    """
    c = 1.0 + a
    tb = lambda m: c * m * m / 2.0  # noqa: E731
    ts = lambda m: -c * (1.0 - m * m) / 2.0  # noqa: E731
    vb, vs = sb + a * ss, ss + a * sb
    trade = sb > ss
    best_b = max(-tb(0.0), -tb(ss), vb - min(tb(ss), tb(1.0)))
    truth_b = (vb if trade else 0.0) - tb(sb)
    best_s = max(-ts(sb), -ts(1.0), -vs - min(ts(0.0), ts(sb)))
    truth_s = (-vs if trade else 0.0) - ts(ss)
    return best_b - truth_b, best_s - truth_s


def interim_mechanism_regret(a: float, s_b, s_s):
    """Pointwise ex post regret ``(regret_b, regret_s)`` in the interim-payment mechanism, the
    other agent reporting truthfully (numpy-vectorised version of ``_regret_scalar``, whose
    docstring gives the analytic inner sup over reports).  For 1 + a > 0::

        regret_b = (1 + a)(s_b^2 - s_s^2)/2                                    if s_b > s_s
                 = (1 + a) s_b^2/2 + max(0, s_b + a s_s - (1 + a) s_s^2/2)     if s_b <= s_s
    """
    s_b, s_s = np.broadcast_arrays(np.asarray(s_b, float), np.asarray(s_s, float))
    c = 1.0 + a
    zero, one = np.zeros_like(s_b), np.ones_like(s_b)
    tb = lambda m: c * m * m / 2.0  # noqa: E731
    ts = lambda m: -c * (1.0 - m * m) / 2.0  # noqa: E731
    vb, vs = s_b + a * s_s, s_s + a * s_b
    trade = (s_b > s_s).astype(float)
    best_b = np.maximum.reduce([-tb(zero), -tb(s_s), vb - np.minimum(tb(s_s), tb(one))])
    best_s = np.maximum.reduce([-ts(s_b), -ts(one), -vs - np.minimum(ts(zero), ts(s_b))])
    return best_b - (trade * vb - tb(s_b)), best_s - (-trade * vs - ts(s_s))


def interim_mechanism_max_regret(a: float = 0.5, n: int = 1001) -> tuple[float, float]:
    """``(max regret_b, max regret_s)`` over the ``n x n`` type grid ``linspace(0, 1, n)^2``.

    Analytically (1 + a > 0) the buyer's sup is ``1 + a``, attained at s_b = s_s = 1 (ties mean
    no trade, yet the truthful buyer pays T_b(1) = (1 + a)/2; reporting m -> 1^+ would instead buy
    a good worth 1 + a at price -> (1 + a)/2, reporting 0 would save the (1 + a)/2).  The seller's
    sup is also ``1 + a`` but is only approached, as s_s -> 1^- with s_b = 1 (truthful trade at
    a cost near 1 + a for receipts -> 0, versus keeping the good and receiving (1 + a)(1 - s_b^2)/2):
    regret_s(1, 1 - h) = (1 + a) - (2 + a) h + (1 + a) h^2/2, so the grid max is
    (1 + a) - (2 + a)/(n - 1) + O(n^-2) (1.4975 for a = 0.5, n = 1001).
    """
    g = np.linspace(0.0, 1.0, n)
    rb, rs = interim_mechanism_regret(a, *np.meshgrid(g, g, indexing="ij"))
    return float(rb.max()), float(rs.max())


def _tie_coeffs(a):
    """Tie curves between the best trade and best no-trade deviation (see ``_regret_scalar``).

    Both are parabolas ``q(x) = al x^2 + be x + ga``, with c = 1 + a:
    c >= 0: (al, be, ga) = (c/2, -a, 0);  c < 0: (-c/2, -a, c/2).
    Buyer: tie at s_b = q(s_s).   Seller: tie at s_s = q(s_b)."""
    c = 1.0 + a
    return (c / 2.0, -a, 0.0) if c >= 0.0 else (-c / 2.0, -a, c / 2.0)


def _roots01(coeffs):
    """Real roots in [0, 1] of a polynomial (highest degree first; leading zeros allowed)."""
    coeffs = np.trim_zeros(np.asarray(coeffs, float), "f")
    if coeffs.size < 2:
        return []
    r = np.roots(coeffs)
    r = r[np.abs(r.imag) < 1e-12].real
    return [float(x) for x in r if 0.0 <= x <= 1.0]


def _regret_breaks(a, ss, who):
    """s_b-break points of regret(., s_s): s_b = s_s (trade switch) and the tie point(s)."""
    al, be, ga = _tie_coeffs(a)
    if who == "b":
        return [ss, al * ss * ss + be * ss + ga]
    return [ss, *_roots01([al, be, ga - ss])]


def _regret_outer(a):
    """s_s at which the inner break points cross each other or the edges (or appear/disappear)."""
    al, be, ga = _tie_coeffs(a)
    out = []
    # buyer: s_b = q(s_s) meets s_b = s_s, 0, 1
    out += _roots01([al, be - 1.0, ga]) + _roots01([al, be, ga]) + _roots01([al, be, ga - 1.0])
    # seller: s_s = q(s_b) at s_b in {0, 1, vertex} and where s_b = s_s = q(s_b)
    cand = [0.0, 1.0] + ([-be / (2.0 * al)] if al != 0.0 else []) + _roots01([al, be - 1.0, ga])
    out += [al * x * x + be * x + ga for x in cand if 0.0 <= x <= 1.0]
    return sorted({q for q in out if 0.0 < q < 1.0})


@cache
def interim_mechanism_expected_regret(a: float = 0.5) -> tuple[float, float]:
    """``(E[regret_b], E[regret_s])`` under independent uniform signals.

    The inner sup over reports is analytic (``_regret_scalar``: T_b, T_s are monotone, so the
    sup over the trade / no-trade report intervals sits at their end points).  The expectation is
    an iterated quad whose inner integral is split at s_b = s_s (trade switch) and at the tie
    between the best trade and best no-trade deviation (a parabola, ``_tie_coeffs``), the outer
    one where these curves cross each other or the edges (``_regret_outer``).  Closed form for
    a = 0.5 (hand-derived): E[regret_b] = (1+a)/12 + (1+a)/24 + 241/1620 = 0.336265432...;
    the seller's value coincides (buyer/seller mirror symmetry s -> (1 - s_s, 1 - s_b)).
    """

    def e(who, idx):
        return _expect_independent(
            lambda sb, ss: _regret_scalar(a, sb, ss)[idx],
            lambda _: 1.0,
            lambda _: 1.0,
            lambda ss: _regret_breaks(a, ss, who),
            _regret_outer(a),
        )

    return e("b", 0), e("s", 1)


# ----------------------------------------------------------------------------------------
# self-check
# ----------------------------------------------------------------------------------------
_MC_SEED = [0]


def _mc(prior, fn, n=1_000_000, seed=None):
    """Crude Monte Carlo ``(mean, standard error)`` of ``fn(s_b, s_s)`` with ``n`` prior draws
    (a fresh seed per call unless given, so the self-check's z-scores are independent)."""
    if seed is None:
        _MC_SEED[0] += 1
        seed = _MC_SEED[0]
    s = prior.sample(n, seed)
    x = np.asarray(fn(s[:, 0], s[:, 1]), float)
    return x.mean(), x.std(ddof=1) / math.sqrt(n)


def _main():  # pragma: no cover - run as a script
    import time

    t0 = time.time()
    priors = [uniform(), gaussian_copula(0.5), gaussian_copula(-0.5), beta(2, 3, 3, 2)]
    worst = [0.0]
    fails = []

    def row(label, val, mc=None, exact=None):
        z = ""
        if mc is not None:
            zz = (val - mc[0]) / mc[1] if mc[1] > 0 else (0.0 if abs(val - mc[0]) < 1e-12 else math.inf)
            worst[0] = max(worst[0], abs(zz))
            if abs(zz) > 4:
                fails.append(label)
            z = f"  MC {mc[0]: .6f} +- {mc[1]:.1e}  z={zz:+.2f}"
        e = ""
        if exact is not None:
            e = f"  exact {exact: .10f}  err={val - exact:+.1e}"
            if abs(val - exact) > 1e-9:
                fails.append(label + " (exact)")
        print(f"{label:<58s} {val: .10f}{z}{e}")

    print("== 2. linear family v_b = s_b + a s_s, v_s = s_s + a s_b ==")
    for p in priors:
        tp = linear_trade_prob(p)
        row(f"P(trade)            {p.name}", tp, _mc(p, lambda x, y: x > y), 0.5 if p.b1 == p.a2 == 1 else None)
        for a in (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 0.9):
            ex = (1 + a) / 6 if p.name == "uniform" else None
            row(
                f"deficit a={a:+.1f}      {p.name}",
                linear_expected_deficit(a, p),
                _mc(p, lambda x, y, a=a: linear_deficit(a, x, y)),
                ex,
            )
            exw = (1 - a) / 6 if p.name == "uniform" else None
            row(
                f"welfare a={a:+.1f}      {p.name}",
                linear_expected_welfare(a, p),
                _mc(p, lambda x, y, a=a: (x > y) * (1 - a) * (x - y)),
                exw,
            )

    print("\n== 3. multiplicative family (a, b, gamma) = (0.3, 0.4, 0.1) ==")
    # pivots vs bisection
    from scipy.optimize import brentq

    a, b, g = 0.3, 0.4, 0.1
    rng = np.random.default_rng(1)
    err = 0.0
    delta = lambda x, y: (1 - a) * (x - y) + b * x * y - g  # noqa: E731
    for sb, ss in rng.random((2000, 2)):
        gb, gs = mult_pivots(a, b, g, sb, ss)
        if delta(1.0, ss) > 0:
            err = max(err, abs(gb - brentq(lambda x, ss=ss: delta(x, ss), -10, 1.0, xtol=1e-15)))
        else:
            assert np.isnan(gb)
        if delta(sb, 1.0) >= 0:
            assert gs == 1.0
        elif delta(sb, 0.0) > 0:
            err = max(err, abs(gs - brentq(lambda y, sb=sb: delta(sb, y), 0.0, 1.0, xtol=1e-15)))
        else:
            assert np.isnan(gs)
    print(f"pivots vs bisection: max |err| = {err:.1e}")
    assert err < 1e-12
    # scalar vs vectorised deficit, and ex post IR / nonnegative deficit (Lemma 4)
    s = rng.random((20000, 2))
    d_vec = mult_deficit(s[:, 0], s[:, 1])
    d_sc = np.array([_mult_deficit_scalar(x, y, a, b, g) for x, y in s])
    assert np.allclose(d_vec, d_sc, atol=1e-14) and d_vec.min() >= -1e-14
    for p in priors:
        row(f"mult deficit        {p.name}", mult_expected_deficit(p), _mc(p, mult_deficit))
        row(f"mult P(trade)       {p.name}", mult_trade_prob(p), _mc(p, lambda x, y: delta(x, y) > 0))
        row(f"mult welfare        {p.name}", mult_expected_welfare(p), _mc(p, lambda x, y: np.maximum(delta(x, y), 0)))

    print("\n== 4. dead-zone family w = 0.2, k = 0.5, uniform prior ==")
    w, k = 0.2, 0.5
    u = uniform()
    grid = np.linspace(0.0, 1.0, 401)
    SB, SS = np.meshgrid(grid, grid, indexing="ij")
    d_star = deadzone_deficit(w, SB, SS, w, k)
    assert np.allclose(d_star, 2 * np.maximum(SB - SS - w, 0), atol=1e-14)
    for c in np.linspace(-w, w, 9):
        dc = deadzone_deficit(c, SB, SS, w, k)
        assert (d_star <= dc + 1e-14).all(), c  # CE Thm 6, state by state
        assert dc.min() >= -1e-14  # CE Lemma 4
        assert np.allclose(dc, deadzone_deficit(c, SB, SS, w, 1.0))  # k-independent
    print("Thm 6: deficit_{c=w}(s) <= deficit_c(s) on a 401^2 grid for 9 values of c in [-w, w]: OK")
    rd = ramp_deficit(SB, SS, w, k)
    assert (d_star <= rd + 1e-14).all()
    print(
        f"Lemma 5: deficit_{{c=w}}(s) <= ramp deficit(s) on the grid: OK "
        f"(min gap {np.min(rd - d_star) + 0.0:.3g}, at non-trade states min ramp deficit "
        f"{np.min(rd[SB <= SS + w]) + 0.0:.3g})"
    )
    # ramp deficit vs direct quad of the envelope integrals, and ex post IC / IR of the ramp payments,
    # for the default ramp (r = w) and for narrower / wider ramps
    for r in (w, 0.1, 0.3):
        e = 0.0
        for sb, ss in rng.random((40, 2)):

            def fb(x, ss=ss, r=r):
                return float(ramp_prob(x, ss, w, r)) * (1 + k * (x - ss > w))

            def fs(y, sb=sb, r=r):
                return float(ramp_prob(sb, y, w, r)) * (1 + k * (y - sb > w))

            pts = [ss - w, ss + w, ss - r, ss + r]
            ub = integrate.quad(fb, 0, sb, points=pts, epsabs=1e-13, limit=200)[0]
            pts = [sb - w, sb + w, sb - r, sb + r]
            us = integrate.quad(fs, ss, 1, points=pts, epsabs=1e-13, limit=200)[0]
            vb, vs = deadzone_values(sb, ss, w, k)
            f = float(ramp_prob(sb, ss, w, r))
            want = ub + us - f * (vb - vs)
            e = max(e, abs(want - float(ramp_deficit(sb, ss, w, k, r))), abs(want - _ramp_def_scalar(sb, ss, w, k, r)))
        print(f"r={r}: ramp deficit closed form vs quad of envelope integrals: max |err| = {e:.1e}")
        assert e < 1e-10
        m = np.linspace(0, 1, 801)
        worst_ic = 0.0
        for sb, ss in rng.random((200, 2)):
            vb, vs = deadzone_values(sb, ss, w, k)
            tb_m, _ = ramp_payments(m, ss, w, k, r)
            _, ts_m = ramp_payments(sb, m, w, k, r)
            tb0, ts0 = ramp_payments(sb, ss, w, k, r)
            ub_true = float(ramp_prob(sb, ss, w, r)) * vb - tb0
            us_true = -float(ramp_prob(sb, ss, w, r)) * vs - ts0
            worst_ic = max(
                worst_ic,
                np.max(ramp_prob(m, ss, w, r) * vb - tb_m) - ub_true,
                np.max(-ramp_prob(sb, m, w, r) * vs - ts_m) - us_true,
            )
            assert ub_true >= -1e-12 and us_true >= -1e-12  # ex post IR
        print(f"r={r}: ramp payments ex post IC on an 801-point report grid: max gain {worst_ic:.1e}; IR: OK")
        assert worst_ic < 1e-12
    for c in (-0.2, 0.0, 0.2):
        row(
            f"deadzone deficit c={c:+.1f}",
            deadzone_expected_deficit(c, u, w, k),
            _mc(u, lambda x, y, c=c: deadzone_deficit(c, x, y, w, k)),
        )
        row(
            f"deadzone P(trade)  c={c:+.1f}",
            deadzone_trade_prob(c, u, w),
            _mc(u, lambda x, y, c=c: x > y + c),
            (1 - c) ** 2 / 2 if c >= 0 else 1 - (1 + c) ** 2 / 2,
        )
        row(
            f"deadzone welfare   c={c:+.1f}",
            deadzone_expected_welfare(c, u, w, k),
            _mc(u, lambda x, y, c=c: (x > y + c) * k * np.maximum(x - y - w, 0)),
            k * (1 - w) ** 3 / 6,
        )
    row(
        "deadzone deficit c=+0.2 (closed form 2(1-w)^3/6)",
        deadzone_expected_deficit(w, u, w, k),
        exact=(1 - w) ** 3 / 3,
    )
    row("ramp deficit", ramp_expected_deficit(u, w, k), _mc(u, lambda x, y: ramp_deficit(x, y, w, k)))
    row("ramp E[f]", ramp_trade_prob(u, w), _mc(u, lambda x, y: ramp_prob(x, y, w)), 0.5)
    row(
        "ramp welfare",
        ramp_expected_welfare(u, w, k),
        _mc(u, lambda x, y: ramp_prob(x, y, w) * k * np.maximum(x - y - w, 0)),
        k * (1 - w) ** 3 / 6,
    )
    for r in (0.1, 0.3):
        row(
            f"ramp deficit r={r}",
            ramp_expected_deficit(u, w, k, r),
            _mc(u, lambda x, y, r=r: ramp_deficit(x, y, w, k, r)),
        )
        row(
            f"ramp welfare r={r}",
            ramp_expected_welfare(u, w, k, r),
            _mc(u, lambda x, y, r=r: ramp_prob(x, y, w, r) * k * (np.maximum(x - y - w, 0) - np.maximum(y - x - w, 0))),
        )
    for p in priors[1:]:
        row(
            f"deadzone deficit c=+0.0 {p.name}",
            deadzone_expected_deficit(0.0, p, w, k),
            _mc(p, lambda x, y: deadzone_deficit(0.0, x, y, w, k)),
        )
        row(f"ramp deficit {p.name}", ramp_expected_deficit(p, w, k), _mc(p, lambda x, y: ramp_deficit(x, y, w, k)))

    print("\n== 5. Corollary 1: interim-payment mechanism, linear family, uniform ==")
    for a in (-1.5, 0.5):
        mm = np.linspace(0, 1, 11)
        tb_q = [integrate.quad(lambda y, a=a: (1 + a) * y, 0, x)[0] for x in mm]
        ts_q = [-integrate.quad(lambda y, a=a: (1 + a) * y, x, 1)[0] for x in mm]
        tb_c, ts_c = interim_payments(a, mm, mm)
        assert np.allclose(tb_q, tb_c, atol=1e-14) and np.allclose(ts_q, ts_c, atol=1e-14)
        print(f"a={a:+.1f}: T_b(m) = (1+a) m^2/2 and T_s(m) = -(1+a)(1-m^2)/2 match quad of VCG payments: OK")
        row(
            f"interim expected deficit a={a:+.1f}",
            interim_mechanism_expected_deficit(a),
            _mc(u, lambda x, y, a=a: interim_mechanism_deficit(a, x, y)),
            (1 + a) / 6,
        )
        # analytic regret vs brute-force grid over reports
        mg = np.linspace(0, 1, 20001)
        e = 0.0
        for sb, ss in rng.random((300, 2)):
            vb, vs = sb + a * ss, ss + a * sb
            tbm, tsm = interim_payments(a, mg, mg)
            best_b = np.max((mg > ss) * vb - tbm)
            best_s = np.max(-(sb > mg).astype(float) * vs - tsm)
            tb0, ts0 = interim_payments(a, sb, ss)
            rb, rs = _regret_scalar(a, sb, ss)
            e = max(e, abs(best_b - ((sb > ss) * vb - tb0) - rb), abs(best_s - (-float(sb > ss) * vs - ts0) - rs))
        print(f"a={a:+.1f}: analytic regret vs 20001-point report grid: max |diff| = {e:.1e} (grid step 5e-5)")
        assert e < 1e-3
        eb, es = interim_mechanism_expected_regret(a)
        s = u.sample(1_000_000, 7)
        rb_mc, rs_mc = interim_mechanism_regret(a, s[:, 0], s[:, 1])
        n = len(s)
        exb = 1.5 / 12 + 1.5 / 24 + 241 / 1620 if a == 0.5 else None
        row(f"interim E[regret_b] a={a:+.1f}", eb, (rb_mc.mean(), rb_mc.std() / math.sqrt(n)), exb)
        row(f"interim E[regret_s] a={a:+.1f}", es, (rs_mc.mean(), rs_mc.std() / math.sqrt(n)))
        mb, ms = interim_mechanism_max_regret(a)
        row(f"interim max regret_b on 1001^2 type grid a={a:+.1f}", mb, exact=(1 + a) if a > -1 else None)
        h = 1e-3
        row(
            f"interim max regret_s on 1001^2 type grid a={a:+.1f}",
            ms,
            exact=(1 + a) - (2 + a) * h + (1 + a) * h * h / 2 if a > -1 else None,
        )
        assert np.allclose(
            interim_mechanism_regret(a, s[:500, 0], s[:500, 1]),
            np.array([_regret_scalar(a, x, y) for x, y in s[:500]]).T,
            atol=1e-14,
        )

    print("\n== extra: copula with beta marginals ==")
    p = gaussian_copula_beta(0.5, 2, 3, 3, 2)
    row(
        f"linear deficit a=+0.5 {p.name}",
        linear_expected_deficit(0.5, p),
        _mc(p, lambda x, y: linear_deficit(0.5, x, y)),
    )
    row(f"mult deficit {p.name}", mult_expected_deficit(p), _mc(p, mult_deficit))
    # density integrates to one and matches the sampler
    for p in [*priors, gaussian_copula_beta(0.5, 2, 3, 3, 2)]:
        tot = integrate.dblquad(
            lambda y, x, p=p: float(p.density(x, y)), 1e-12, 1 - 1e-12, 1e-12, 1 - 1e-12, epsabs=1e-7
        )[0]
        assert abs(tot - 1) < 1e-4, (p.name, tot)
    print("densities integrate to 1: OK")
    for rho in (0.5, -0.5, 0.9):  # E[(U - V)^2] = (1 - rho_S)/6, rho_S = (6/pi) asin(rho/2) (Spearman)
        rs = 6.0 / math.pi * math.asin(rho / 2.0)
        row(
            f"copula({rho}) E[(s_b - s_s)^2] vs Spearman closed form",
            gaussian_copula(rho).expect(lambda x, y: (x - y) ** 2),
            exact=(1.0 - rs) / 6.0,
        )
    # density callable path
    dens = lambda x, y: 1.0 + 0.5 * (2 * x - 1) * (2 * y - 1)  # noqa: E731  (FGM copula)
    row("linear deficit a=0 under an FGM density callable", linear_expected_deficit(0.0, dens), exact=1 / 6 - 0.5 / 30)
    print(f"\nworst |z| = {worst[0]:.2f}; failures: {fails or 'none'}; {time.time() - t0:.0f}s")
    if fails:
        raise SystemExit(1)


if __name__ == "__main__":
    _main()
