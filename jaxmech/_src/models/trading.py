"""Layer 3 — trading rules for bilateral trade (CE Sec. 4) and their payments.

A trading rule maps reports ``m = (m_beta, m_sigma)`` to the probability of
trade ``f(m) in [0, 1]`` (CE Sec. 4). Deterministic monotone rules are cutoff
rules, trade iff ``m_beta > g(m_sigma)`` for a non-decreasing ``g`` (CE Sec. 4.2);
their generalized VCG payments (CE eqs. (5)-(6)) come from
:func:`jaxmech._src.core.mechanisms.pivot_payments` with the pivots
``g_beta(s_sigma) = g(s_sigma)`` and ``g_sigma(s_beta) = g^{-1}(s_beta) =
sup{y : s_beta > g(y)}``. Randomized rules get their payments from the
envelope formula (:func:`envelope_payments`, CE Thm 3).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.core import priors
from jaxmech._src.core.compile_options import FULL_OPTIMIZATION, supported
from jaxmech._src.core.environments import Environment
from jaxmech._src.core.mechanisms import Mechanism, Params, bisect, bisection_steps, pivot_payments

Array = jax.Array


def check_trade(env: Environment, who: str) -> None:
    if env.dims != (1, 1) or not env.is_separable:
        raise ValueError(f"{who}: needs bilateral trade (two agents with one-dimensional signals), got {env.name!r}")


def cutoff_inverse(g: Callable[[Array], Array], s_beta: Array) -> Array:
    """``g^{-1}(s_beta) = sup{y in [0, 1] : s_beta > g(y)}`` for a non-decreasing cutoff ``g`` (CE Sec. 4.2).

    Returns 0 when no ``y`` trades (the seller's pivot is then ``inf{y : no trade} = 0``).
    """
    zero = jnp.zeros_like(s_beta)
    return bisect(lambda y: s_beta <= g(y), zero, jnp.ones_like(s_beta), bisection_steps(s_beta.dtype))


def cutoff_mechanism(
    env: Environment,
    g: Callable[[Array], Array],
    *,
    g_inverse: Callable[[Array], Array] | None = None,
    name: str = "cutoff",
) -> Mechanism:
    """Trade iff ``m_beta > g(m_sigma)`` with generalized VCG payments (CE Sec. 4.2, eqs. (5)-(6)).

    ``g`` must be non-decreasing (then the rule is monotone, CE Def 8, hence ex
    post IC by CE Thm 2). The buyer's pivot is ``g(m_sigma)`` and the seller's
    ``g^{-1}(m_beta)`` (``g_inverse`` if given, else by bisection on ``g``); the
    mechanism exposes both to the audit as kinks.
    """
    check_trade(env, "cutoff_mechanism")
    inverse = g_inverse if g_inverse is not None else (lambda sb: cutoff_inverse(g, sb))

    def decide(params, m):
        del params
        return (m[0] > g(m[1])).astype(m.dtype)

    def pivot(params, m, i):
        del params
        return jnp.clip(g(m[1]), 0.0, 1.0) if i == 0 else jnp.clip(inverse(m[0]), 0.0, 1.0)

    return pivot_payments(env, decide, pivot=pivot, name=name)


def shifted_cutoff(env: Environment, shift: float, *, name: str | None = None) -> Mechanism:
    """``g(s_sigma) = s_sigma + shift``: trade iff ``m_beta > m_sigma + shift`` (closed-form pivots).

    For :func:`~jaxmech._src.core.environments.deadzone_trade_values` with band
    ``w``, every ``shift in [-w, w]`` is efficient and ``shift = w`` is the
    deficit-minimizing ``g_*`` of CE Thm 6.
    """
    return cutoff_mechanism(
        env,
        lambda y: y + shift,
        g_inverse=lambda sb: sb - shift,
        name=name or f"cutoff(s_sigma + {shift:g})",
    )


def deficit_minimizing_cutoff(values: Callable[[Array], Array], *, points: int = 1025) -> tuple[np.ndarray, np.ndarray]:
    """The pointwise supremum ``g_*`` of the monotone efficient cutoffs (CE Sec. 4.2, Thm 6), tabulated.

    Efficiency pins a cutoff ``g`` between ``L(x) = sup{s_beta : v_beta < v_sigma at (s_beta, x)}``
    and ``U(x) = inf{s_beta : v_beta > v_sigma at (s_beta, x)}``; the largest
    non-decreasing function below ``U`` is ``g_*(x) = inf_{y >= x} U(y)``, and it
    is efficient iff ``g_* >= L`` (single crossing, CE Def 9). ``U`` is found on
    a ``points``-point grid of ``s_sigma`` by a scan over a ``points``-point grid
    of ``s_beta`` refined by bisection, so ``g_*`` is exact up to the grid in
    ``s_sigma`` (linear interpolation between grid points keeps it monotone,
    so the rule built from it is exactly ex post IC).

    Returns ``(x, g_star)`` arrays of shape ``(points,)``. Raises ``ValueError``
    if no monotone efficient cutoff exists on the grid (single crossing fails).
    """
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    x = np.linspace(0.0, 1.0, points)
    xs = jnp.asarray(x, dtype)

    def gain(sb, ss):
        v = values(jnp.stack([sb, ss]))
        return v[0] - v[1]

    gains = jax.vmap(lambda ss: jax.vmap(lambda sb: gain(sb, ss))(xs))(xs)  # (s_sigma, s_beta)
    scale = jnp.maximum(1.0, jnp.max(jnp.abs(gains)))
    tol = 1e-6 * scale

    def bounds(row, ss):
        pos = row > tol
        neg = row < -tol
        k = jnp.argmax(pos)
        any_pos = jnp.any(pos)
        # refine U between grid points k-1 and k by bisection on "gain > tol"
        a = xs[jnp.maximum(k - 1, 0)]
        u = bisect(lambda sb: gain(sb, ss) > tol, a, xs[k], bisection_steps(dtype))
        u = jnp.where(k == 0, xs[0], u)
        upper = jnp.where(any_pos, u, 1.0)
        j = points - 1 - jnp.argmax(neg[::-1])
        lower = jnp.where(jnp.any(neg), xs[j], 0.0)
        return upper, lower

    upper, lower = jax.jit(jax.vmap(bounds))(gains, xs)
    upper, lower = np.asarray(upper, np.float64), np.asarray(lower, np.float64)
    g_star = np.minimum.accumulate(upper[::-1])[::-1]
    step = 1.0 / (points - 1)
    bad = g_star < lower - step
    if bad.any():
        j = int(np.argmax(bad))
        raise ValueError(
            "deficit_minimizing_cutoff: no monotone efficient cutoff (single crossing, CE Def 9, fails): at "
            f"s_sigma = {x[j]:.4g} the largest monotone cutoff {g_star[j]:.4g} is below the no-trade bound {lower[j]:.4g}"
        )
    return x, g_star


def tabulated_cutoff(
    env: Environment, x: np.ndarray, table: np.ndarray, *, name: str = "tabulated_cutoff"
) -> Mechanism:
    """Cutoff rule from a tabulated non-decreasing ``g`` (linear interpolation), generalized VCG payments."""
    if np.any(np.diff(table) < 0):
        raise ValueError("tabulated_cutoff: the table must be non-decreasing (a monotone rule, CE Def 8)")
    x = np.asarray(x, np.float64)
    table = np.asarray(table, np.float64)

    def g(y):
        return jnp.interp(y, jnp.asarray(x, y.dtype), jnp.asarray(table, y.dtype))

    return cutoff_mechanism(env, g, name=name)


def deficit_minimizing(env: Environment, *, points: int = 1025) -> Mechanism:
    """CE Thm 6: the deficit-minimizing efficient, ex post IC and IR trading mechanism ``(f^*, t^*)``.

    ``g_*`` is built by :func:`deficit_minimizing_cutoff`. When ``U`` (the
    lowest trading buyer signal) is non-decreasing on the grid, ``g_* = U`` and
    the rule evaluates ``U(m_sigma)`` exactly by bisection on the gain from
    trade at each report (no grid error); otherwise ``g_*`` is the tabulated
    suffix minimum, interpolated (monotone, exact up to the grid).
    """
    check_trade(env, "deficit_minimizing")
    x, table = deficit_minimizing_cutoff(env.values, points=points)
    upper = _upper_table(env.values, x)
    if np.all(np.diff(upper) >= 0) and np.allclose(upper, table, atol=1e-5):
        return cutoff_mechanism(env, lambda y: lowest_trading_signal(env.values, y), name="deficit_minimizing")
    return tabulated_cutoff(env, x, table, name="deficit_minimizing")


def lowest_trading_signal(values: Callable[[Array], Array], s_sigma: Array) -> Array:
    """``U(s_sigma) = inf{s_beta : v_beta > v_sigma}`` by bisection (1 if the buyer never gains from trade).

    Exact when ``{s_beta : v_beta > v_sigma}`` is an interval ``(U, 1]`` (strong
    single crossing, or ties only below ``U``).
    """

    def gain_positive(sb):
        v = values(jnp.stack([sb, s_sigma]))
        return v[0] - v[1] > 1e-6 * jnp.maximum(1.0, jnp.abs(v[0]))

    zero, one = jnp.zeros_like(s_sigma), jnp.ones_like(s_sigma)
    return jnp.where(gain_positive(one), bisect(gain_positive, zero, one, bisection_steps(s_sigma.dtype)), one)


def _upper_table(values, x: np.ndarray) -> np.ndarray:
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    return np.asarray(jax.jit(jax.vmap(lambda y: lowest_trading_signal(values, y)))(jnp.asarray(x, dtype)), np.float64)


def efficient_trade(env: Environment, *, tie_break: str = "no_trade") -> Mechanism:
    """The efficient trading rule with a tie-break, and its generalized VCG payments (pivots by bisection).

    ``tie_break = "no_trade"`` trades iff ``v_beta > v_sigma``; ``"trade"`` iff
    ``v_beta >= v_sigma``. Under strong single crossing (CE Def 7) both are
    monotone; with ties on a set of positive measure a monotone tie-break is
    the ``g_*`` rule (:func:`deficit_minimizing`).
    """
    check_trade(env, "efficient_trade")
    if tie_break not in ("no_trade", "trade"):
        raise ValueError(f"tie_break: must be 'no_trade' or 'trade', got {tie_break!r}")

    def decide(params, m):
        del params
        v = env.values(m)
        return ((v[0] >= v[1]) if tie_break == "trade" else (v[0] > v[1])).astype(m.dtype)

    return pivot_payments(env, decide, name=f"efficient_trade({tie_break})")


def band_trade(env: Environment, width: float = 0.5) -> Mechanism:
    """NOT monotone: trade iff ``0 < m_beta - m_sigma < width`` (a buyer with a high signal loses the trade).

    Paired with pivot-formula payments (bisection); CE Thm 2 says no payments
    make it ex post IC, and the audit finds the buyer's profitable downward
    misreports.
    """
    check_trade(env, "band_trade")

    def decide(params, m):
        del params
        d = m[0] - m[1]
        return ((d > 0) & (d < width)).astype(m.dtype)

    return pivot_payments(env, decide, name=f"band_trade({width:g})")


def linear_uniform_deficit(a: float) -> float:
    """Expected deficit of the efficient ex post IC, IR mechanism for ``v_i = s_i + a s_-i``, ``a < 1``, U[0,1]^2.

    CE Sec. 4.4: trade iff ``s_beta > s_sigma``; the buyer pays ``(1 + a) s_sigma``
    and the seller receives ``(1 + a) s_beta``, so the deficit is
    ``(1 + a)(s_beta - s_sigma)`` on trade and
    ``E[deficit] = (1 + a) E[(s_beta - s_sigma)^+] = (1 + a) / 6``: zero at
    ``a = -1`` (balance in every state), a surplus for ``a < -1``.
    """
    if not a < 1:
        raise ValueError(f"linear_uniform_deficit: needs a < 1, got {a}")
    return (1.0 + a) / 6.0


# --------------------------------------------------------------------------
# randomized rules (CE Lemma 5)


def ramp_rule(width: float) -> Callable[[Params, Array], Array]:
    """Randomized trading rule ``f(m) = clip((m_beta - m_sigma + w) / (2 w), 0, 1)``.

    Monotone (CE Def 8). For :func:`deadzone_trade_values` with the same band
    ``w`` it is efficient: 1 where ``s_beta - s_sigma >= w``, 0 where
    ``s_sigma - s_beta >= w``, randomizing only on the band of ties.
    """
    if not width > 0:
        raise ValueError(f"ramp_rule: width must be > 0, got {width}")

    def decide(params, m):
        del params
        return jnp.clip((m[0] - m[1] + width) / (2 * width), 0.0, 1.0)

    return decide


def deterministic_reduction(decide: Callable[[Params, Array], Array]) -> Callable[[Params, Array], Array]:
    """CE Lemma 5: the deterministic rule with trade set ``T = f^{-1}(1)``."""

    def reduced(params, m):
        return (decide(params, m) >= 1).astype(m.dtype)

    return reduced


ENVELOPE_METHODS = ("stieltjes", "quadrature")


def envelope_payments(
    env: Environment,
    decide: Callable[[Params, Array], Array],
    *,
    params: Params = (),
    cells: int = 1024,
    method: str = "stieltjes",
    nodes: int = 4,
    name: str = "envelope",
) -> Mechanism:
    """Revenue-maximal ex post IC and IR payments of any monotone rule by the envelope formula (CE Thm 2, Thm 3).

    Separable environment (CE Def 6), one-dimensional signals, deterministic or randomized rules
    (``h_i(f) in [0, 1]``, or ``[-1, 0]`` for a seller). For agent ``i`` at ``m_-i``, with
    ``h(x) = h_i(f(x, m_-i))`` and ``V(x) = V_i(x, m_-i)``, ex post IC pins utility to
    ``U(x) = U(lo) + I(x)``, ``I(x) = int_lo^x h(y) V'(y) dy`` (payoff equivalence, CE Thm 3), and the
    most revenue under ex post IR sets ``min_z U(z) = 0`` (CE Sec. 3.3's z-bar)::

        t_i(x) = h(x) V(x) - I(x) + min_z I(z).

    ``method`` chooses how ``I`` is computed on ``cells`` equal cells of ``S_i`` (one concept, two
    numerical forms; the cell table is built once per menu):

    - ``"stieltjes"``: by parts, ``I(x) = h(x) V(x) - h(lo) V(lo) - int_lo^x V dh``, a Riemann-Stieltjes
      sum (``h`` exact at cell ends and the report, ``V`` at cell midpoints). No derivative of ``V``;
      error ``O(width(cell) * V' * (jump of h over a cell))``.
    - ``"quadrature"``: ``V' = dV_i/ds_i`` by ``jax.grad`` and ``int h V'`` by ``nodes``-point
      Gauss-Legendre, vmapped over cells. Each cell is split where ``h`` crosses the midpoint of its
      values at the cell ends (bisection), so a jump of ``h`` inside a cell (a cutoff rule's pivot) is
      integrated exactly; smooth parts converge like Gauss-Legendre. Needs ``V`` differentiable a.e.

    For a cutoff rule both are :func:`pivot_payments` (``int V dh = (h_hi - h_lo) V(g)``); for
    randomized rules (CE Lemma 5) the envelope formula is the only way to get payments. A
    non-monotone ``h`` gets payments too, but no payments make it ex post IC (CE Thm 2): the audit
    finds the regret.
    """
    if not env.is_separable or any(d != 1 for d in env.dims):
        raise ValueError(f"envelope_payments: needs a separable environment with 1-d signals, got {env.name!r}")
    if method not in ENVELOPE_METHODS:
        raise ValueError(f"envelope_payments: method must be one of {', '.join(ENVELOPE_METHODS)}, got {method!r}")
    if cells < 1 or nodes < 1:
        raise ValueError(f"envelope_payments: cells and nodes must be >= 1, got cells={cells}, nodes={nodes}")
    n = env.n_agents
    gl_x, gl_w = np.polynomial.legendre.leggauss(nodes)

    def menu(p, m, i):
        dtype = m.dtype
        lo = jnp.asarray(env.lo[i], dtype)
        hi = jnp.asarray(env.hi[i], dtype)
        width = (hi - lo) / cells

        def at(x):
            return priors.replace_signal(m, env.dims, i, x[None])

        def h_of(x):
            return env.weights(decide(p, at(x)))[i]

        def v_of(x):
            return env.values(at(x))[i]

        ends = lo + width * jnp.arange(cells + 1, dtype=dtype)
        h_ends = jax.vmap(h_of)(ends)

        if method == "stieltjes":
            v_mid = jax.vmap(v_of)(ends[:-1] + 0.5 * width)
            table = jnp.concatenate([jnp.zeros((1,), dtype), jnp.cumsum(v_mid * jnp.diff(h_ends))])
            hv_lo = h_ends[0] * v_of(lo)
            integral_at_ends = h_ends * jax.vmap(v_of)(ends) - hv_lo - table  # I at the cell ends

            def integral(x, k, h):
                return h * v_of(x) - hv_lo - table[k] - v_of(0.5 * (ends[k] + x)) * (h - h_ends[k])
        else:
            dv = jax.grad(v_of)
            gx, gw = jnp.asarray(gl_x, dtype), jnp.asarray(gl_w, dtype)

            def gauss2(a, c, b):  # int_a^c h V' + int_c^b h V', Gauss-Legendre, one evaluation of h V'
                left, right = jnp.stack([a, c]), jnp.stack([c, b])
                half = 0.5 * (right - left)[:, None]
                y = 0.5 * (left + right)[:, None] + half * gx[None, :]  # (2, nodes)
                f = jax.vmap(lambda z: h_of(z) * dv(z))(y.reshape(-1)).reshape(y.shape)
                return jnp.sum(half * gw[None, :] * f)

            iters = max(8, bisection_steps(dtype) - int(np.ceil(np.log2(cells))))

            def split(a, b, ha, hb):  # where h crosses the midpoint of (h(a), h(b)) inside the cell
                mid = 0.5 * (ha + hb)
                sign = jnp.where(hb > ha, 1.0, -1.0).astype(dtype)
                c = bisect(lambda z: sign * h_of(z) > sign * mid, a, b, iters)
                return jnp.where(ha == hb, 0.5 * (a + b), c)

            cuts = jax.vmap(split)(ends[:-1], ends[1:], h_ends[:-1], h_ends[1:])
            per_cell = jax.vmap(gauss2)(ends[:-1], cuts, ends[1:])
            integral_at_ends = jnp.concatenate([jnp.zeros((1,), dtype), jnp.cumsum(per_cell)])

            def integral(x, k, h):
                del h
                return integral_at_ends[k] + gauss2(ends[k], jnp.minimum(cuts[k], x), x)

        min_integral = jnp.min(integral_at_ends)

        def respond(m_i):
            x = jnp.clip(m_i[0], lo, hi)
            k = jnp.clip(jnp.floor((x - lo) / width).astype(jnp.int32), 0, cells - 1)
            q = decide(p, at(x))
            h = env.weights(q)[i]
            return q, h * v_of(x) - integral(x, k, h) + min_integral

        return respond

    def pay(p, m):
        return jnp.stack([menu(p, m, i)(m[i : i + 1])[1] for i in range(n)])

    return Mechanism(name, decide, pay, params, None, menu)


def randomized_ramp(env: Environment, width: float, *, subsidy: float = 0.0, **kw) -> Mechanism:
    """:func:`ramp_rule` with :func:`envelope_payments` (CE Lemma 5's randomized efficient mechanism).

    ``subsidy > 0`` also pays each agent ``subsidy * m_-i`` whatever it reports: still ex post IC (the transfer does not
    depend on the own report) and IR (utilities rise), but not the revenue-maximal payments, so the deficit is larger.
    """
    check_trade(env, "randomized_ramp")
    if not subsidy >= 0:
        raise ValueError(f"randomized_ramp: subsidy must be >= 0, got {subsidy!r}")
    label = f"randomized_ramp({width:g}" + (f", subsidy {subsidy:g} m_-i)" if subsidy else ")")
    mech = envelope_payments(env, ramp_rule(width), name=label, **kw)
    if not subsidy:
        return mech

    def menu(p, m, i):
        respond, other = mech.menu(p, m, i), jnp.sum(m) - m[i]

        def subsidized(m_i):
            q, t = respond(m_i)
            return q, t - subsidy * other

        return subsidized

    def pay(p, m):
        return mech.pay(p, m) - subsidy * (jnp.sum(m) - m)

    return mech._replace(pay=pay, menu=menu)


def lemma5_reduction(env: Environment, width: float) -> Mechanism:
    """CE Lemma 5 applied to :func:`ramp_rule`: trade iff ``f = 1``, with generalized VCG payments."""
    check_trade(env, "lemma5_reduction")
    return pivot_payments(env, deterministic_reduction(ramp_rule(width)), name=f"lemma5_reduction({width:g})")


# --------------------------------------------------------------------------
# Bayesian: interim-expected payments (CE Sec. 3.4, Corollary 1)


def interim_payments(
    env: Environment,
    mech: Mechanism,
    prior: priors.Prior,
    key: Array,
    *,
    inner: int = 65536,
    table: int = 1025,
    name: str | None = None,
) -> Mechanism:
    """Replace each payment by its interim expectation: ``T_i(m_i) = E_{s_-i}[t_i(m_i, s_-i)]`` (CE Sec. 3.4).

    With independent signals the result is Bayesian IC and interim IR whenever
    ``mech`` is ex post IC and IR (interim utilities are unchanged), has the same
    expected deficit, and is in general NOT ex post IC: the payment ignores
    ``s_-i``. CE Corollary 1 turns this around: any such Bayesian mechanism has
    the expected deficit of its interim-payoff-equivalent ex post mechanism,
    which is positive by CE Lemma 4.

    ``T_i`` is tabulated on ``table`` points of ``S_i`` from ``inner`` profiles
    of a Latin hypercube of the prior (the same for every grid point; midpoint
    quantiles, so the error is ``O(1/inner)``), and interpolated linearly.
    One-dimensional signals, independent prior.
    """
    if any(d != 1 for d in env.dims):
        raise ValueError("interim_payments: needs one-dimensional signals")
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    sample = prior.latin_hypercube(key, inner, dtype)  # (inner, n); the own coordinate is replaced
    tables = []
    for i in range(env.n_agents):
        grid = jnp.linspace(env.lo[i], env.hi[i], table, dtype=dtype)

        def mean_pay(x, i=i):
            prof = sample.at[:, i].set(x)
            return jnp.mean(jax.vmap(lambda s: mech.pay(mech.params, s)[i])(prof))

        tables.append(
            (
                np.asarray(grid, np.float64),
                np.asarray(
                    jax.jit(lambda g, f=mean_pay: jax.lax.map(f, g), compiler_options=supported(FULL_OPTIMIZATION))(
                        grid
                    ),
                    np.float64,
                ),
            )
        )

    def pay(params, m):
        del params
        return jnp.stack(
            [jnp.interp(m[i], jnp.asarray(x, m.dtype), jnp.asarray(t, m.dtype)) for i, (x, t) in enumerate(tables)]
        )

    return Mechanism(name or f"interim({mech.name})", mech.decide, pay, mech.params, mech.kinks)
