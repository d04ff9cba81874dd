"""Layer 3 — mechanisms: a decision rule and a payment rule as pure functions.

A :class:`Mechanism` is a NamedTuple of pure functions of ``(params, reports)``
for ONE report profile (flat, shape ``(D,)``); ``params`` is a pytree that search
may change. The audit vmaps them over profiles and misreports.

Mechanisms may also expose a *menu*: for agent ``i`` and the others' reports
``m_-i``, the function ``m_i -> (q, t_i)`` with everything that depends on
``m_-i`` alone (pivots, personalized prices) computed once. This is the
taxation-principle view of a mechanism from one agent's seat; the audit
evaluates many misreports ``m_i`` against one menu, so the ``m_-i`` work is
not repeated per misreport. :func:`agent_menu` falls back to evaluating the
whole mechanism when a mechanism has no menu.

Mechanisms may also expose *kinks*: for agent ``i`` at a report profile, the
points of ``S_i`` where agent ``i``'s allocation changes (pivots, thresholds,
the boundary of a pivotal class). The audit tries misreports just below and
above them: a coarse misreport grid alone misses deviations that sit at a
threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxmech._src.core import priors
from jaxmech._src.core.environments import Environment

Array = jax.Array
Params = Any


class Mechanism(NamedTuple):
    """A direct mechanism ``(f, t)``.

    Attributes:
      name: short identifier.
      decide: ``decide(params, m) -> q``, the decision rule ``f``.
      pay: ``pay(params, m) -> t``, payments ``t_i`` from agent ``i`` to the
        designer, shape ``(n_agents,)``.
      params: default parameters (a pytree; ``()`` when there are none).
      kinks: optional ``kinks(params, m, i) -> (K, d_i)``: points of agent
        ``i``'s signal space where its allocation changes, given ``m_-i``
        (``i`` is a static Python int).
      menu: optional ``menu(params, m, i) -> respond`` with
        ``respond(m_i) -> (q, t_i)``: the outcome and agent ``i``'s payment
        when ``i`` reports ``m_i`` and the others ``m_-i`` (``m_i`` in ``m``
        is ignored). Must agree with ``decide`` / ``pay``; it only moves the
        ``m_-i``-only work out of the per-misreport path.
      decide_and_pay: optional ``decide_and_pay(params, m) -> (q, t)``, equal to
        ``(decide(params, m), pay(params, m))`` with the work they share (e.g.
        personalized prices) done once; :func:`decide_and_pay` falls back to the two
        calls.

    A menu's ``respond`` may also carry ``respond.kinks() -> (K, d_i)``, equal to
    ``kinks(params, m, i)`` (see :func:`menu_kinks`), and ``respond.payment_error() -> ()``:
    a bound on how far agent ``i``'s payment at the truthful report can be from the exact
    payment of the construction because of the mechanism's own numerical method (e.g. a
    pivot found by bisection, :func:`pivot_payments`); the audit reports it next to the
    deficit's standard error, so rounding can be told from a real deficit.

    ``menu`` and ``decide_and_pay`` are *views* derived from ``decide`` / ``pay``
    (and a menu's kinks from ``kinks``): ``mech._replace(pay=new_pay)`` drops the
    views that the replaced fields invalidate (``decide`` or ``pay``: ``menu`` and
    ``decide_and_pay``; ``kinks``: the kinks a menu carries), unless the same call
    passes new ones. The audit also checks, on every profile it samples, that the
    menu at the truthful report gives the utility ``decide`` / ``pay`` give, and
    fails naming the profile where they disagree.
    """

    name: str
    decide: Callable[[Params, Array], Array]
    pay: Callable[[Params, Array], Array]
    params: Params = ()
    kinks: Callable[[Params, Array, int], Array] | None = None
    menu: Callable[[Params, Array, int], Callable[[Array], tuple[Array, Array]]] | None = None
    decide_and_pay: Callable[[Params, Array], tuple[Array, Array]] | None = None


_namedtuple_replace = Mechanism._replace


def _replace_keeping_views_true(self: Mechanism, **changes) -> Mechanism:
    """``Mechanism._replace`` that drops the derived views a change invalidates (see :class:`Mechanism`)."""
    if {"decide", "pay"} & changes.keys():
        changes.setdefault("menu", None)
        changes.setdefault("decide_and_pay", None)
    if "kinks" in changes and "menu" not in changes and self.menu is not None:
        changes["menu"] = _without_menu_kinks(self.menu)
    return _namedtuple_replace(self, **changes)


def _without_menu_kinks(menu):
    def stripped(params, m, i):
        respond = menu(params, m, i)
        return lambda m_i: respond(m_i)  # no ``kinks`` attribute: menu_kinks asks Mechanism.kinks

    return stripped


Mechanism._replace = _replace_keeping_views_true  # NamedTuple forbids defining _replace in the class body


def with_nested_loops(fn: Callable) -> Callable:
    """Mark a rule (``decide``, ``pay``, ``decide_and_pay`` or ``menu``) as running a loop inside a loop whose float
    comparisons steer it (e.g. B's ray search, :mod:`pivotal`): audits then compile it with the options XLA's CPU
    backend compiles such programs right with (:func:`compile_options.compile_options_for`). Returns ``fn``."""
    fn.nested_loops = True
    return fn


def has_nested_loops(mech: Mechanism) -> bool:
    """Whether any rule of ``mech`` is marked by :func:`with_nested_loops`."""
    rules = (mech.decide, mech.pay, mech.decide_and_pay, mech.menu)
    return any(getattr(f, "nested_loops", False) for f in rules if f is not None)


def decide_and_pay(mech: Mechanism, params: Params, m: Array) -> tuple[Array, Array]:
    """``(q, t)`` at reports ``m``: :attr:`Mechanism.decide_and_pay` where the mechanism has one."""
    if mech.decide_and_pay is not None:
        return mech.decide_and_pay(params, m)
    return mech.decide(params, m), mech.pay(params, m)


def agent_menu(mech: Mechanism, dims: tuple[int, ...], params: Params, m: Array, i: int):
    """Agent ``i``'s menu at ``m_-i``: ``respond(m_i) -> (q, t_i)`` (see :class:`Mechanism`)."""
    if mech.menu is not None:
        return mech.menu(params, m, i)

    def respond(m_i):
        q, t = decide_and_pay(mech, params, priors.replace_signal(m, dims, i, m_i))
        return q, t[i]

    return respond


def menu_kinks(mech: Mechanism, respond, params: Params, m: Array, i: int) -> Array | None:
    """Agent ``i``'s kinks at ``m_-i``: from ``respond.kinks()`` when the menu carries them (its ``m_-i`` work
    reused), else ``mech.kinks(params, m, i)``; ``None`` when the mechanism has no kinks."""
    if mech.kinks is None:
        return None
    from_menu = getattr(respond, "kinks", None)
    return from_menu() if from_menu is not None else mech.kinks(params, m, i)


def bisect(pred: Callable[[Array], Array], lo: Array, hi: Array, iters: int) -> Array:
    """``inf{x in [lo, hi] : pred(x)}`` for a monotone predicate (False ... False True ... True).

    Returns ``hi`` when ``pred`` is nowhere true and ``lo`` when it holds at ``lo``: the upper end of
    :func:`bisect_bracket`.
    """
    return bisect_bracket(pred, lo, hi, iters)[1]


def bisect_bracket(pred: Callable[[Array], Array], lo: Array, hi: Array, iters: int) -> tuple[Array, Array]:
    """``(a, b)`` with ``inf{x : pred(x)}`` in ``[a, b]`` after ``iters`` halvings (``pred(a)`` false, ``pred(b)``
    true, or ``b = hi`` when ``pred`` is nowhere true); ``(lo, lo)`` when ``pred(lo)``. In float32 the bracket
    stops shrinking at one ulp of the root: ``b - a`` is the search's own error bound."""
    lo = jnp.asarray(lo)
    hi = jnp.asarray(hi, lo.dtype)
    at_lo = pred(lo)

    def body(_, bounds):
        a, b = bounds
        mid = 0.5 * (a + b)
        ok = pred(mid)
        return jnp.where(ok, a, mid), jnp.where(ok, mid, b)

    a, b = jax.lax.fori_loop(0, iters, body, (lo, hi))
    return jnp.where(at_lo, lo, a), jnp.where(at_lo, lo, b)


def bisection_steps(dtype) -> int:
    return 64 if jnp.dtype(dtype) == jnp.float64 else 32


def pivot_payments(
    env: Environment,
    decide: Callable[[Params, Array], Array],
    *,
    params: Params = (),
    pivot: Callable[[Params, Array, int], Array] | None = None,
    name: str = "pivot",
) -> Mechanism:
    """Generalized VCG (pivot) payments for a monotone deterministic rule (CE Sec. 3.3, eqs. (5)-(6)).

    For a separable environment with one-dimensional signals, fix ``m_-i`` and
    let ``h(x) = h_i(f(x, m_-i))`` take the two values ``h_lo = h(lo_i)`` and
    ``h_hi = h(hi_i)`` with pivot ``g = inf{x : h(x) = h_hi}`` (found by bisection
    on the rule, or from ``pivot(params, m, i)`` when a closed form is known).
    Ex post IC pins utility down up to a constant (CE Thm 3):
    ``U(x) = U(lo) + D(x)``, ``D(x) = h_lo (V(min(x, g)) - V(lo)) + h_hi (V(max(x, g)) - V(g))``
    with ``V = V_i(., m_-i)``. Revenue is maximal subject to ex post IR when
    ``min_x U(x) = 0``, attained at ``x in {lo, g, hi}`` (the "lowest type",
    CE Sec. 3.4). The payment ``t_i = h_i(f(m)) V_i(m) - U(m_i)`` is::

        t_i = h_lo V(lo) + 1[h = h_hi] (h_hi - h_lo) V(g) + min(D(lo), D(g), D(hi)).

    For bilateral trade this is CE eqs. (5)-(6): ``t_beta = v_beta(g_beta(s_sigma), s_sigma)``
    and ``t_sigma = -v_sigma(s_beta, g_sigma(s_beta))`` in trading states, 0 otherwise.
    The rule must be monotone (CE Thm 2) for the result to be ex post IC; the
    audit tells you if it is not.
    """
    if not env.is_separable:
        raise ValueError(f"pivot_payments: environment {env.name!r} is not separable (CE Def 6)")
    if any(d != 1 for d in env.dims):
        raise ValueError(f"pivot_payments: needs one-dimensional signals, got dims={list(env.dims)}")
    n = env.n_agents

    def h_of(p, m, i, x):
        return env.weights(decide(p, priors.replace_signal(m, env.dims, i, x[None])))[i]

    def find_pivot(p, m, i):
        """``(a, g)``: the pivot ``g`` and the low end ``a`` of the bracket it was found in (``a = g``: exact)."""
        if pivot is not None:
            g = jnp.asarray(pivot(p, m, i), m.dtype)
            return g, g
        lo = jnp.asarray(env.lo[i], m.dtype)
        hi = jnp.asarray(env.hi[i], m.dtype)
        h_lo, h_hi = h_of(p, m, i, lo), h_of(p, m, i, hi)
        mid = 0.5 * (h_lo + h_hi)
        # h is non-decreasing for a monotone rule; where it never switches, g = hi (exactly: a = g).
        switches = h_hi > h_lo
        a, g = bisect_bracket(lambda x: (h_of(p, m, i, x) > mid) & switches, lo, hi, bisection_steps(m.dtype))
        return jnp.where(switches, a, g), g

    def menu(p, m, i):
        # everything that depends on m_-i only: pivot, h at the ends, D at lo / g / hi
        lo = jnp.asarray(env.lo[i], m.dtype)
        hi = jnp.asarray(env.hi[i], m.dtype)
        a, g = find_pivot(p, m, i)

        def V(x):
            return env.values(priors.replace_signal(m, env.dims, i, x[None]))[i]

        h_lo, h_hi = h_of(p, m, i, lo), h_of(p, m, i, hi)
        v_lo, v_g, v_hi = V(lo), V(g), V(hi)
        d_g = h_lo * (v_g - v_lo)
        d_hi = d_g + h_hi * (v_hi - v_g)
        base = h_lo * v_lo + jnp.minimum(0.0, jnp.minimum(d_g, d_hi))
        step = jnp.where(h_hi > h_lo, (h_hi - h_lo) * v_g, 0.0)
        mid = 0.5 * (h_lo + h_hi)

        def respond(m_i):
            q = decide(p, priors.replace_signal(m, env.dims, i, m_i))
            h = env.weights(q)[i]
            return q, base + jnp.where(h > mid, step, 0.0)

        respond.kinks = lambda: g.reshape(1, 1)  # = kinks(p, m, i), from the pivot found above
        if pivot is None:  # the bisection's own error: the true pivot lies in [a, g], V moves by |V(g) - V(a)|
            # on it, and the payment by at most (max(|h_lo|, |h_hi - h_lo|) + |h_hi - h_lo|) times that
            jump = jnp.abs(h_hi - h_lo)
            respond.payment_error = lambda: (jnp.maximum(jnp.abs(h_lo), jump) + jump) * jnp.abs(v_g - V(a))
        return respond

    def pay(p, m):
        return jnp.stack([menu(p, m, i)(m[i : i + 1])[1] for i in range(n)])

    def kinks(p, m, i):
        return find_pivot(p, m, i)[1].reshape(1, 1)

    return Mechanism(name, decide, pay, params, kinks, menu)


TIE_BREAKS = ("status_quo", "allocate")


def efficient_rule(env: Environment, *, tie_break: str = "status_quo") -> Callable[[Params, Array], Array]:
    """The first-best decision rule of ``env`` as a decision rule of reports, with a documented tie-break.

    ``tie_break="status_quo"`` (the default, ``env.efficient``): where the welfare of changing the status quo
    ties with keeping it, keep it — no trade when ``v_beta = v_sigma``, no provision when ``sum_i v_i = c``, no
    sale when the highest value is 0. ``"allocate"``: trade, provide, sell on such ties. Ties between buyers of a
    single object go to the lowest index either way. Ties have positive probability in some models (CE Sec. 4's
    dead-zone values, common values), and both rules are efficient; which one a mechanism uses moves its
    outcomes and budget (CE Thm 6), never its welfare.
    """
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break: one of {', '.join(TIE_BREAKS)}, got {tie_break!r}")
    if tie_break == "status_quo":

        def decide(params, m):
            del params
            return env.efficient(m)

        return decide

    def allocate(params, m):
        del params
        q = env.efficient(m)
        if q.ndim == 0:  # two outcomes (trade, provision): allocate iff the welfare of q = 1 is at least q = 0's
            one, zero = jnp.ones_like(q), jnp.zeros_like(q)
            return (env.welfare(one, m) >= env.welfare(zero, m)).astype(q.dtype)
        if env.values is None or not env.outcome_names[0].startswith("a"):
            raise ValueError(f"tie_break='allocate': needs a two-outcome or single-object environment, got {env.name}")
        v = env.values(m)  # one object: the highest value (lowest index on ties) buys when it is >= 0
        win = jnp.argmax(v)
        return jax.nn.one_hot(win, v.shape[0], dtype=q.dtype) * (v[win] >= 0).astype(q.dtype)

    return allocate


def generalized_vcg(env: Environment, *, pivot=None, tie_break: str = "status_quo") -> Mechanism:
    """The efficient rule with its generalized VCG payments (CE Sec. 3.3; bilateral trade CE eqs. (5)-(6)).

    ``tie_break``: see :func:`efficient_rule` (the payments are the pivots of the rule actually used).
    """
    name = "generalized_vcg" if tie_break == "status_quo" else f"generalized_vcg({tie_break})"
    return pivot_payments(env, efficient_rule(env, tie_break=tie_break), pivot=pivot, name=name)


def linear_trade_pivot(a: float):
    """Closed-form pivots of the efficient trading rule for ``v_i = s_i + a s_-i``, ``a < 1`` (CE Sec. 4.4).

    Trade iff ``s_beta > s_sigma``, so ``g_beta(s_sigma) = s_sigma`` and ``g_sigma(s_beta) = s_beta``.
    """
    if not a < 1:
        raise ValueError(f"linear_trade_pivot: needs a < 1 (trade iff s_beta > s_sigma), got a={a}")

    def pivot(params, m, i):
        del params
        return m[1 - i]

    return pivot


# --------------------------------------------------------------------------
# personalized prices (Bikhchandani 2005)


def personalized_prices(
    env: Environment,
    prices: Callable[[Params, Array], Array],
    *,
    price_of: Callable[[Params, Array, int], Array] | None = None,
    params: Params = (),
    name: str = "personalized_prices",
) -> Mechanism:
    """The allocation rule implementing personalized prices (B eq. (4)); winners pay their price.

    ``prices(params, m) -> (n,)`` gives buyer ``i``'s price ``t_i(m_-i)``; it must
    not depend on ``m_i`` (B Sec. 2). Buyer ``i`` gets the object iff
    ``V_i(m) > t_i(m_-i)``. If the prices are admissible (B eq. (3)) at most one
    buyer clears his price and the mechanism is ex post IC (B Lemma 1). For
    non-admissible prices several may clear; the object then goes to the largest
    ``V_i - t_i`` (lowest index on ties), and the audit shows the regret.

    ``price_of(params, m, i) -> t_i(m_-i)`` (optional) is buyer ``i``'s price alone, equal to
    ``prices(params, m)[i]``: the kinks (and :func:`pivotal.pivotal_mechanism`'s menu) need one buyer's
    price, and an expensive price rule (B Sec. 4.1's ray search) should not compute all ``n`` for it.

    Kinks for buyer ``i``: points of the boundary ``{x : V_i(x, m_-i) = t_i}`` on
    the diagonal of ``S_i`` and on each coordinate line through ``m_i``.
    """
    if not env.is_separable:
        raise ValueError(f"personalized_prices: environment {env.name!r} is not separable")
    n = env.n_agents
    price_of = price_of or buyer_price_of(prices)

    def decide_and_pay(p, m):
        t = prices(p, m)
        surplus = env.values(m) - t
        win = jnp.argmax(surplus)
        q = jax.nn.one_hot(win, n, dtype=m.dtype) * (surplus[win] > 0).astype(m.dtype)
        return q, q * t

    def decide(p, m):
        return decide_and_pay(p, m)[0]

    def pay(p, m):
        return decide_and_pay(p, m)[1]

    def menu(p, m, i):
        price = price_of(p, m, i)  # t_i(m_-i): does not move with m_i

        def respond(m_i):
            q = decide(p, priors.replace_signal(m, env.dims, i, m_i))
            return q, q[i] * price

        respond.kinks = lambda: price_kinks(env, m, i, price)
        return respond

    def kinks(p, m, i):
        return price_kinks(env, m, i, price_of(p, m, i))

    if getattr(prices, "nested_loops", False) or getattr(price_of, "nested_loops", False):
        decide, pay, menu, decide_and_pay = map(with_nested_loops, (decide, pay, menu, decide_and_pay))
    return Mechanism(name, decide, pay, params, kinks, menu, decide_and_pay)


def price_kinks(env: Environment, m: Array, i: int, price: Array) -> Array:
    """Buyer ``i``'s kinks under a personalized price ``price`` at ``m_-i`` (B eq. (4)), shape ``(d_i + 1, d_i)``.

    Points of the boundary ``{x : V_i(x, m_-i) = price}`` on the diagonal of ``S_i`` and on each coordinate
    line through ``m_i``, found by bisection on "buyer ``i`` clears the price" (all lines in one vmap).
    """
    sl = priors.agent_slice(env.dims, i)
    d = env.dims[i]
    lo = jnp.asarray(env.lo[sl], m.dtype)
    hi = jnp.asarray(env.hi[sl], m.dtype)
    eye = jnp.eye(d, dtype=m.dtype)
    starts = jnp.concatenate([lo[None, :], m[sl][None, :] * (1.0 - eye) + lo[None, :] * eye])  # (d + 1, d)
    directions = jnp.concatenate([(hi - lo)[None, :], eye * (hi - lo)[None, :]])
    iters = bisection_steps(m.dtype)

    def on_line(start, direction):  # boundary point on the segment start + r * direction, r in [0, 1]
        def wins(r):
            return env.values(priors.replace_signal(m, env.dims, i, start + r * direction))[i] > price

        return start + bisect(wins, jnp.zeros((), m.dtype), jnp.ones((), m.dtype), iters) * direction

    return jax.vmap(on_line)(starts, directions)


def buyer_price_of(prices: Callable[[Params, Array], Array]) -> Callable[[Params, Array, int], Array]:
    """``price_of(params, m, i) = prices(params, m)[i]``: one buyer's price from a rule with no cheaper way to it."""

    def price_of(params, m, i):
        return prices(params, m)[i]

    return with_nested_loops(price_of) if getattr(prices, "nested_loops", False) else price_of


def example1_prices(params, m):
    """B Example 1 prices: ``t_i(p_j, c_j) = p_j + c_j^2`` (admissible, B Sec. 3)."""
    del params
    p1, c1, p2, c2 = m[0], m[1], m[2], m[3]
    return jnp.stack([p2 + c2**2, p1 + c1**2])


def own_signal_prices(params, m):
    """``t_i = p_j``: NOT admissible (both buyers can clear their price; B eq. (3) fails)."""
    del params
    return jnp.stack([m[2], m[0]])


# --------------------------------------------------------------------------
# a deliberately non-IC threshold rule, for testing misreport strategies


def threshold_with_rebate(env: Environment, *, cutoff: float, window: float, rebate: float) -> Mechanism:
    """Bilateral trade at a fixed cutoff with a rebate just above it — NOT ex post IC.

    Trade iff ``m_beta > cutoff``; the buyer pays ``v_beta(cutoff, m_sigma)`` less
    ``rebate`` when ``m_beta`` lies in ``(cutoff, cutoff + window)``; the seller's
    payment is 0. Buyers with signals
    just below the cutoff gain by reporting inside the narrow window: the
    profitable deviations sit at the threshold, where a coarse grid misses them
    and kink candidates find them.
    """

    def decide(params, m):
        del params
        return (m[0] > cutoff).astype(m.dtype)

    def pay(params, m):
        q = decide(params, m)
        base = env.values(m.at[0].set(cutoff))[0]
        in_window = (m[0] > cutoff) & (m[0] < cutoff + window)
        return jnp.stack([q * (base - rebate * in_window.astype(m.dtype)), jnp.zeros((), m.dtype)])

    def kinks(params, m, i):
        del params
        return jnp.full((1, 1), cutoff if i == 0 else 0.5, m.dtype)

    return Mechanism("threshold_with_rebate", decide, pay, (), kinks)
