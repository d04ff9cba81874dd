"""Randomized provision rules for a public good (family "randomized", models/randomized_public.py): monotone for any
parameters, envelope payments equal to an independent quadrature of CE Thm 2's integral, zero regret in the audit,
the exact repair lands on the ex post budget constraint from either side, and the band LP beats the best posted rule.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.interpolate import RegularGridInterpolator

import jaxmech as jm
from jaxmech._src.models import design as design_lib
from jaxmech._src.models import randomized_public as rp


def _member(seed: int, n: int, knots: int) -> dict:
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return {"cut": jax.random.uniform(k1, (n,), minval=0.0, maxval=0.8),
            "q": jax.random.uniform(k2, (knots,) * n, minval=-0.3, maxval=1.3)}  # fmt: skip


def _curved(s):
    """V_i = s_i + 0.5 s_i^2 - 0.3 sum_{j != i} s_j: strictly increasing in the own signal, curved (so the envelope
    integral is not a polynomial of low degree in the own signal), falling in the others' signals."""
    return s + 0.5 * s**2 - 0.3 * (jnp.sum(s) - s)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 3), knots=st.integers(2, 6))
def test_every_member_is_monotone_in_every_own_signal(seed, n, knots):
    p = _member(seed, n, knots)
    qk = np.asarray(rp.knot_values(p["q"]))
    assert qk.min() >= 0.0 and qk.max() <= 1.0
    for axis in range(n):
        assert np.all(np.diff(qk, axis=axis) >= 0.0)
    # the projection: numpy's running maxima along each axis, and the identity on monotone knot values
    ref = np.clip(np.asarray(p["q"], np.float64), 0.0, 1.0)
    for axis in range(n):
        ref = np.maximum.accumulate(ref, axis=axis)
    np.testing.assert_allclose(qk, ref, atol=1e-7)
    np.testing.assert_allclose(np.asarray(rp.knot_values(jnp.asarray(qk))), qk, atol=0)
    # q(s) never falls when one agent's signal rises
    assert float(_least_rise(p, jax.random.uniform(jax.random.PRNGKey(seed % 1000 + 1), (256, n)))) >= -1e-6


@jax.jit
def _least_rise(p, s):
    """``min over profiles and agents i of q(s + 0.07 e_i) - q(s)`` (signals capped at 1)."""
    n = s.shape[1]
    lo, hi = jnp.zeros(n), jnp.ones(n)
    out = []
    for i in range(n):
        up = s.at[:, i].set(jnp.minimum(s[:, i] + 0.07, 1.0))
        out.append(
            jax.vmap(lambda a, b: rp.provision_probability(p, b, lo, hi) - rp.provision_probability(p, a, lo, hi))(
                s, up
            )
        )
    return jnp.min(jnp.stack(out))


def _band(p: dict, knots: int, n: int):
    """The band r by scipy's multilinear interpolation of the monotone knot values (numpy's running maxima), and the
    knot grid of one axis per agent."""
    qk = np.clip(np.asarray(p["q"], np.float64), 0.0, 1.0)
    for axis in range(n):
        qk = np.maximum.accumulate(qk, axis=axis)
    grid = [np.linspace(0.0, 1.0, knots)] * n
    return RegularGridInterpolator(grid, qk, method="linear"), grid


def _reference_payments(p: dict, s: np.ndarray, knots: int) -> np.ndarray:
    """t_i = q V_i - int_{x_i}^{s_i} r(z, s_-i) dV_i/dz dz (0 outside the box), with r from scipy's multilinear
    interpolation of the monotone knot values and the integral by adaptive quadrature (scipy.integrate.quad)."""
    n = len(s)
    r, grid = _band(p, knots, n)
    cut = np.asarray(p["cut"], np.float64)
    inside = bool(np.all(s >= cut))
    t = np.zeros(n)
    for i in range(n):
        others = all(s[j] >= cut[j] for j in range(n) if j != i)
        v = s[i] + 0.5 * s[i] ** 2 - 0.3 * (s.sum() - s[i])
        q = float(r(s)[0]) if inside else 0.0

        def integrand(z, i=i):
            x = s.copy()
            x[i] = z
            return float(r(x)[0]) * (1.0 + z)  # dV_i/dz = 1 + z

        rent = (
            integrate.quad(integrand, cut[i], s[i], points=grid[i], limit=200)[0] if others and s[i] > cut[i] else 0.0
        )
        t[i] = q * v - rent
    return t


@pytest.mark.parametrize("n", [2, 3])
def test_envelope_payments_match_an_independent_quadrature(n):
    knots = 5
    env = jm.public_good(_curved, 0.8, n)
    p = _member(7 + n, n, knots)
    profiles = np.asarray(jax.random.uniform(jax.random.PRNGKey(n), (6, n), minval=0.3, maxval=1.0), np.float64)
    profiles = np.concatenate([profiles, np.ones((1, n)), np.asarray(p["cut"], np.float64)[None] + 0.01])
    for s in profiles:
        got = np.asarray(rp.envelope_payments(env, p, jnp.asarray(s, jnp.float32)), np.float64)
        np.testing.assert_allclose(got, _reference_payments(p, s, knots), atol=2e-6)


def test_audit_finds_no_regret_and_no_ir_violation():
    """CE Thm 2: a monotone randomized rule with envelope payments is ex post IC and IR (any member, curved values)."""
    env = jm.public_good(_curved, 0.8, 2)
    mech = rp.randomized_public_mechanism(env, _member(3, 2, 7))
    rep = jm.audit(env, mech, jm.independent(env.dims), key=jax.random.PRNGKey(0), n_profiles=2048,
                   misreports=jm.Misreports(grid=16, random=2)).report  # fmt: skip
    assert max(r["max"] for r in rep["regret"]) <= rep["tol"]
    assert max(r["max"] for r in rep["ir_violation"]) <= 1e-6
    g = design_lib.grid_check(env, mech, jm.independent(env.dims), 9, jnp.float32)
    assert g["regret_max"] <= 1e-5 and g["ir_violation_max"] <= 1e-6


def test_repair_lands_on_the_budget_constraint_from_either_side():
    env = jm.public_good(jm.linear_public_values(-0.3, 2), 0.8, 2)
    prior = jm.independent(env.dims)
    spec = design_lib.make_spec(env, prior, "randomized", key=jax.random.PRNGKey(0), knots=5, dtype=jnp.float32)
    stat = design_lib.budget_statistic(spec, prior, jax.random.PRNGKey(1), budget="ex_post", profiles=256,
                                       grid_points=9, dtype=jnp.float32)  # fmt: skip
    band = jnp.full((5, 5), 0.9)
    for cut, direction in (([0.5, 0.55], -1), ([0.85, 0.8], +1)):  # deficit > 0 (box too large) / slack
        p = {"cut": jnp.asarray(cut, jnp.float32), "q": band}
        delta, ok = design_lib.bisect_shift(lambda d, p=p: stat(spec.shift(p, d)), spec.span)
        assert bool(ok) and np.sign(float(delta)) == direction
        q = spec.shift(p, delta)
        assert -1e-5 <= float(stat(q)) <= 1e-7  # on the boundary
        # a flat band is a posted rule: the worst state (1, 1) binds at x_1 + x_2 = c - 2a = 1.4
        assert abs(float(jnp.sum(q["cut"])) - 1.4) < 1e-4
        assert float(jnp.max(q["cut"] - p["cut"]) - jnp.min(q["cut"] - p["cut"])) < 1e-6  # one scalar shift


def test_band_program_beats_the_best_posted_rule():
    """At the posted optimum's box (cutoffs 0.67) the best band (an LP in the knot values), repaired onto the budget
    boundary, has more welfare than the best posted rule (0.0351, closed form) and stays below the LP's limit."""
    env = jm.public_good(jm.linear_public_values(-0.3, 2), 0.8, 2)
    prior = jm.independent(env.dims)
    solve = rp.band_program(env, prior, 9, ppfs=[m.ppf for m in prior.marginals], cdfs=[lambda x: x] * 2)
    value, qk = solve(np.array([0.67, 0.67]))
    assert qk is not None and np.any((qk > 0.01) & (qk < 0.99))  # randomized
    for axis in range(2):
        assert np.all(np.diff(qk, axis=axis) >= -1e-9)
    p = {"cut": jnp.asarray([0.67, 0.67], jnp.float32), "q": jnp.asarray(qk, jnp.float32)}
    worst = float(rp.box_deficit(env, p, 65))
    assert worst <= 1e-3  # the LP holds the budget on its own 33 x 33 grid; close on a finer one
    assert 0.0351 + 3e-4 < value < 0.0358


# --------------------------------------------------------------------------
# the value box: where every value rises in every signal (CE Sec. 5)


def _rising(s):
    """V_i = s_i + 0.5 s_i^2 + 0.3 sum_{j != i} s_j: rising in every signal, curved in the own one."""
    return s + 0.5 * s**2 + 0.3 * (jnp.sum(s) - s)


def test_which_box_follows_the_sign_of_the_interdependence():
    rising = jm.public_good(jm.linear_public_values(0.3, 2), 1.0, 2)
    falling = jm.public_good(jm.linear_public_values(-0.3, 2), 0.8, 2)
    assert design_lib.falling_value(rising) is None
    assert design_lib.falling_value(falling) == (
        "V_1 falls in s_0: V_1([0.0, 0.0]) = 0 > V_1([0.015625, 0.0]) = -0.0046875"
    )
    wiggle = jm.public_good(lambda s: s + 0.3 * s[::-1] + 0.03 * jnp.sin(32 * jnp.pi * s[::-1]), 1.0, 2)
    assert design_lib.falling_value(wiggle).startswith("V_1 falls in s_0")  # period 1/16: a 17-point grid missed it
    for env, value_box in ((rising, True), (falling, False)):
        spec = design_lib.make_spec(env, jm.independent(env.dims), "randomized", key=jax.random.PRNGKey(0), knots=3,
                                    dtype=jnp.float32)  # fmt: skip
        assert (spec.check_points is not None) is value_box and (spec.box is None) is value_box


@pytest.mark.parametrize("n", [2, 3])
def test_a_value_box_with_a_flat_band_is_thm9s_threshold_rule(n):
    """q = 1{V(s) >= vbar} with r = 1 is CE Def 12's threshold rule: the same decisions and the same payments as
    the threshold family's mechanism (its pivots by bisection, CE Thm 9), on 4,096 profiles."""
    c = 0.5 * n
    env = jm.public_good(jm.linear_public_values(0.3, n), c, n)
    prior = jm.independent(env.dims)
    thr = design_lib.make_spec(env, prior, "threshold", key=jax.random.PRNGKey(0), knots=3, dtype=jnp.float32)
    vbar = jnp.asarray([0.45, 0.55, 0.5][:n], jnp.float32)
    a = thr.family.mechanism(vbar)
    b = rp.randomized_public_mechanism(env, {"cut": vbar, "q": jnp.ones((4,) * n)}, value_box=True)
    s = prior.sample(jax.random.PRNGKey(1), 4096, jnp.float32)
    np.testing.assert_allclose(jax.vmap(lambda x: b.decide(b.params, x))(s),
                               jax.vmap(lambda x: a.decide(a.params, x))(s), atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(jax.vmap(lambda x: b.pay(b.params, x))(s),
                               jax.vmap(lambda x: a.pay(a.params, x))(s), atol=1e-6)  # fmt: skip


def _reference_value_box_payments(p: dict, s: np.ndarray, knots: int) -> np.ndarray:
    """t_i = q V_i - int_{z*}^{s_i} r(z, s_-i) dV_i/dz dz for q = 1{V(s) >= x} r(s), values :func:`_rising`: the entry
    point z* = min{z: min_j V_j(z, s_-i) - x_j >= 0} by scipy's brentq, r by scipy's multilinear interpolation of the
    monotone knot values, the integral by adaptive quadrature."""
    from scipy.optimize import brentq

    n = len(s)
    r, grid = _band(p, knots, n)
    cut = np.asarray(p["cut"], np.float64)

    def values(x):
        return x + 0.5 * x**2 + 0.3 * (x.sum() - x)

    t = np.zeros(n)
    for i in range(n):

        def at(z, i=i):
            x = s.copy()
            x[i] = z
            return x

        def g(z, i=i):
            return np.min(values(at(z)) - cut)

        inside = g(s[i]) >= 0
        q = float(r(s)[0]) if inside else 0.0
        if not inside:
            continue  # the path along s_i below s_i never enters the box: no rent, no payment
        entry = 0.0 if g(0.0) >= 0 else brentq(g, 0.0, s[i], xtol=1e-13)
        rent = integrate.quad(lambda z: float(r(at(z))[0]) * (1.0 + z), entry, s[i], points=grid[i], limit=200)[0]
        t[i] = q * values(s)[i] - rent
    return t


@pytest.mark.parametrize("n", [2, 3])
def test_value_box_payments_match_an_independent_quadrature(n):
    knots = 5
    env = jm.public_good(_rising, 0.8, n)
    p = _member(11 + n, n, knots)
    p = dict(p, cut=env.values(p["cut"]))  # thresholds: the values at a profile of the upper support
    profiles = np.asarray(jax.random.uniform(jax.random.PRNGKey(n), (8, n), minval=0.2, maxval=1.0), np.float64)
    profiles = np.concatenate([profiles, np.ones((1, n))])
    inside = 0
    for s in profiles:
        ref = _reference_value_box_payments(p, s, knots)
        inside += bool(np.any(ref != 0))
        got = np.asarray(rp.envelope_payments(env, p, jnp.asarray(s, jnp.float32), True), np.float64)
        np.testing.assert_allclose(got, ref, atol=3e-6)
    assert inside >= 3  # the profiles exercise the box, not only its outside


def test_value_box_audit_and_repair():
    """A random member: no regret, no IR violation (CE Thm 2). The repair, compiled as the design compiles it, lands
    on the budget line sum vbar = c from either side for the flat band (Thm 9: the worst deficit is c - sum vbar);
    a nested bisection there was once miscompiled (shift -0.799 instead of -0.00066)."""
    env = jm.public_good(_rising, 0.8, 2)
    prior = jm.independent(env.dims)
    p = _member(5, 2, 6)
    mech = rp.randomized_public_mechanism(env, dict(p, cut=env.values(p["cut"])), value_box=True)
    rep = jm.audit(env, mech, prior, key=jax.random.PRNGKey(0), n_profiles=2048,
                   misreports=jm.Misreports(grid=16, random=2)).report  # fmt: skip
    assert max(r["max"] for r in rep["regret"]) <= rep["tol"]
    assert max(r["max"] for r in rep["ir_violation"]) <= 1e-6

    env = jm.public_good(jm.linear_public_values(0.3, 2), 1.0, 2)
    spec = design_lib.make_spec(env, prior, "randomized", key=jax.random.PRNGKey(0), knots=5, dtype=jnp.float32)
    stat = design_lib.budget_statistic(spec, prior, jax.random.PRNGKey(1), budget="ex_post", profiles=1024,
                                       grid_points=9, dtype=jnp.float32)  # fmt: skip
    repair = design_lib._compiled()(lambda q: design_lib.bisect_shift(lambda d: stat(spec.shift(q, d)), spec.span))
    for cut, direction in (([0.4986, 0.5001], -1), ([0.55, 0.6], +1)):
        q = {"cut": jnp.asarray(cut, jnp.float32), "q": jnp.ones((5, 5))}
        delta, ok = repair(q)
        assert bool(ok) and np.sign(float(delta)) == direction
        assert abs(float(jnp.sum(spec.shift(q, delta)["cut"])) - 1.0) < 1e-5


def test_randomized_design_where_values_rise_reaches_thm9():
    """CE Thm 9's public good (v_i = s_i + 0.3 s_-i, c = 1): from cold starts the randomized family (value box) finds
    the threshold rule vbar = (1/2, 1/2) with a flat band, welfare 0.35446 (the threshold design's quadrature value),
    within 0.2% of the LP limit (the signal box reached 0.303)."""
    env = jm.public_good(jm.linear_public_values(0.3, 2), 1.0, 2)
    small = dict(starts=1, search=jm.SearchConfig(steps=120, learning_rate=0.02, temperature_start=0.05),
                 repair_profiles=2048, eval_profiles=8192, audit_profiles=2048, misreports=jm.Misreports(grid=8, random=2),
                 check_grid=9)  # fmt: skip
    r = jm.design(env, jm.independent(env.dims), key=jax.random.PRNGKey(0), family="randomized", knots=5, **small)
    assert r.description["box"] == "value"
    assert r.value > 0.3540 and np.allclose(r.description["cut"], 0.5, atol=2e-3)
    assert abs(sum(r.description["cut"]) - 1.0) < 1e-5
    cold = r.starts[0]["cold"]["cut"]
    assert max(abs(c - 0.5) for c in cold) > 0.05  # a cold start, not the answer
    au = r.audit
    assert max(au["sampled"]["regret_max"], au["grid"]["regret_max"], au["sampled"]["ir_violation_max"],
               au["grid"]["ir_violation_max"]) <= 1e-5  # fmt: skip
    assert au["sampled"]["deficit_max"] <= 1e-6 and au["grid"]["deficit_max"] <= 1e-6


def test_randomized_revenue_design_where_values_rise_beats_the_threshold_rules():
    """Revenue in the same public good: the band LP polish over the value box (Nelder-Mead on the thresholds, the
    best band by an LP for each) reaches at least the best threshold rule's revenue (the threshold family, its own
    closed-form payments; 0.12324), where the search alone collapsed to providing nothing (revenue 0)."""
    env = jm.public_good(jm.linear_public_values(0.3, 2), 1.0, 2)
    small = dict(starts=1, search=jm.SearchConfig(steps=120, learning_rate=0.02, temperature_start=0.05),
                 repair_profiles=2048, eval_profiles=1 << 14, audit_profiles=2048,
                 misreports=jm.Misreports(grid=8, random=2), check_grid=9)  # fmt: skip
    prior = jm.independent(env.dims)
    thr = jm.design(env, prior, key=jax.random.PRNGKey(0), family="threshold", objective="revenue", **small)
    r = jm.design(env, prior, key=jax.random.PRNGKey(0), family="randomized", knots=5, objective="revenue", **small)
    assert thr.value > 0.12 and r.value >= thr.value - 1e-4, (r.value, thr.value)
    assert abs(r.objective["mean"] - r.value) <= 4 * r.objective["se"]
    au = r.audit
    assert max(au["sampled"]["regret_max"], au["grid"]["regret_max"], au["sampled"]["ir_violation_max"],
               au["grid"]["ir_violation_max"]) <= 1e-5  # fmt: skip
    assert au["sampled"]["deficit_max"] <= 1e-6 and au["grid"]["deficit_max"] <= 1e-6


def test_value_entry_and_its_implicit_derivatives():
    """v_i = s_i + 0.3 s_-i: agent 0 enters the box at z* = max(x_0 - 0.3 s_1, (x_1 - s_1) / 0.3). Where its own
    threshold binds dz*/dx_0 = 1, dz*/ds_1 = -0.3; where the other's binds dz*/dx_1 = 1/0.3, dz*/ds_1 = -1/0.3; where
    it is inside from its lowest signal (or never enters), z* is lo (hi) with no derivative."""
    env = jm.public_good(jm.linear_public_values(0.3, 2), 1.0, 2)

    def entry(cut, s1):
        return rp.value_entry(env, cut, jnp.asarray([0.7, 0.0]).at[1].set(s1), 0)

    grad = jax.jit(jax.grad(entry, argnums=(0, 1)))
    cases = (  # cut, s_1, z*, dz/dx, dz/ds_1
        ([0.5, 0.5], 0.8, 0.26, [1.0, 0.0], -0.3),  # own: 0.5 - 0.24; the other's (0.5 - 0.8) / 0.3 < 0
        ([0.3, 0.6], 0.5, 1 / 3, [0.0, 1 / 0.3], -1 / 0.3),  # the other's: 0.1 / 0.3 > own 0.3 - 0.15
        ([0.1, 0.2], 0.5, 0.0, [0.0, 0.0], 0.0),  # inside from z = 0
        ([1.5, 0.5], 0.5, 1.0, [0.0, 0.0], 0.0),  # never inside: V_0(1, 0.5) = 1.15 < 1.5
    )
    for cut, s1, z, dz, ds in cases:
        cut = jnp.asarray(cut, jnp.float32)
        assert abs(float(entry(cut, jnp.float32(s1))) - z) < 1e-6, (cut, s1)
        g_cut, g_s = grad(cut, jnp.float32(s1))
        np.testing.assert_allclose(np.asarray(g_cut), dz, atol=1e-4)
        assert abs(float(g_s) - ds) < 1e-4


@pytest.mark.parametrize("n", [2, 3])
def test_nested_quadrature_of_a_vector_integrand_stacks_the_scalar_ones(n):
    """monotone_expectation with a vector integrand (the band LP's objective row) equals the scalar quadratures of
    its components, over a value box of CE Thm 9's public good."""
    env = jm.public_good(jm.linear_public_values(0.3, n), 0.5 * n, n)
    prior = jm.independent(env.dims)
    signs, cut = np.ones(n), jnp.full((n,), 0.5, jnp.float32)

    def inside(s):
        return rp.in_box({"cut": cut}, s, env.values)

    def vec(s):
        return jnp.stack([jnp.sum(env.values(s)), s[0] ** 2, jnp.prod(s)])

    panels = (6,) * n
    got = jax.jit(lambda: design_lib.monotone_expectation(prior, signs, inside, vec, panels, jnp.float32))()
    for k in range(3):
        one = design_lib.monotone_expectation(prior, signs, inside, lambda s, k=k: vec(s)[k], panels, jnp.float32)
        assert abs(float(got[k]) - float(one)) <= 1e-6 * max(1.0, abs(float(one)))
    # and the region's mass against a Monte Carlo estimate (the sum of values: sanity of the integral itself)
    s = prior.sample(jax.random.PRNGKey(0), 1 << 18, jnp.float32)
    mc = jax.vmap(lambda x: inside(x) * vec(x))(s)
    assert np.all(np.abs(np.asarray(got) - np.asarray(mc.mean(0))) <= 5 * np.asarray(mc.std(0)) / np.sqrt(1 << 18))
