"""CE Sec. 5.3's voluntary contingent-contribution scheme: hand cases, CE's claims on grids, negative controls.

The scheme's own rules (models/contributions.py: play, utility, vcg_payments) are checked by hand, not exported.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.tree_util import Partial

import jaxmech as jm
from jaxmech._src.models import contributions as cc

N = 101  # type grid of the claims
TOL = 1e-5


TRACES = []  # one entry per trace of _linear


def _linear(a, w, s):
    """``v_i = w_i s_i + a s_{-i}``: :func:`linear_public_values` for two agents, with ``a, w`` as arrays."""
    TRACES.append(None)
    return w * s + a * s[::-1]


def linear(a, weights=(1.0, 1.0)):
    """A ``Partial``: every linear case shares one compilation of the grid check."""
    return Partial(_linear, jnp.asarray(a, jnp.float32), jnp.asarray(weights, jnp.float32))


# (a, weights, sbar): vbar = v(sbar) (CE Thm 9, condition 2) and c = vbar_1 + vbar_2 (condition 1)
CASES = {
    "private_sym": (0.0, (1.0, 1.0), (0.5, 0.5)),  # c = 1
    "private_asym": (0.0, (1.0, 1.0), (0.3, 0.6)),  # c = 0.9
    "private_c1_asym": (0.0, (1.0, 1.0), (0.3, 0.7)),  # c = 1
    "linear_sym": (0.3, (1.0, 1.0), (0.5, 0.5)),  # c = 1.3
    "linear_asym": (0.3, (1.0, 1.0), (0.3, 0.6)),  # c = 1.17
    "linear_c1": (0.3, (1.0, 1.0), (0.5 / 1.3, 0.5 / 1.3)),  # c = 1
    "linear_c1_asym": (0.3, (1.0, 1.0), (0.3 / 1.17, 0.6 / 1.17)),  # c = 1
    "weighted": (0.2, (1.0, 0.7), (0.5, 0.5)),  # c = 1.05
    "weighted_asym": (0.2, (1.0, 0.7), (0.3, 0.6)),  # c = 0.9
    "full_types": (0.3, (1.0, 1.0), (0.5, 0.1)),  # agent 1's types s_1 > 5/6 get the project with every s_2
}
C1 = {"private_sym", "private_c1_asym", "linear_c1", "linear_c1_asym"}


def setup(name):
    a, w, sbar = CASES[name]
    values = linear(a, w)
    return values, np.asarray(values(jnp.asarray(sbar, jnp.float32)))


@pytest.fixture(scope="module")
def results():
    # module fixtures run outside conftest's per-test strict promotion: apply it here too (it is part of jit's cache key)
    with jax.numpy_rank_promotion("raise"), jax.numpy_dtype_promotion("strict"):
        key = jax.random.PRNGKey(5)
        return {name: jm.check_equilibrium(*setup(name), n_types=N, key=key) for name in CASES}


def _np(r):
    return jax.tree.map(np.asarray, r)


# --------------------------------------------------------------------------
# hand-checkable cases


def test_play_and_utility_by_hand():
    """Produced iff p_1 >= d_2 and p_2 >= d_1; agent i pays d_{-i}."""
    d, p = jnp.array([0.3, 0.4]), jnp.array([0.5, 0.3])
    q, t = cc.play(d, p)  # 0.5 >= 0.4 and 0.3 >= 0.3 (a tie meets the contingency)
    assert float(q) == 1.0
    np.testing.assert_allclose(t, [0.4, 0.3])
    s = jnp.array([0.6, 0.2])  # private values v = s
    np.testing.assert_allclose([cc.utility(linear(0.0), s, d, p, i) for i in (0, 1)], [0.2, -0.1], atol=1e-7)
    q, t = cc.play(d, jnp.array([0.5, 0.29]))  # agent 2 pledges less than agent 1 demands
    assert float(q) == 0.0 and np.all(np.asarray(t) == 0.0)
    assert float(cc.utility(linear(0.0), s, d, jnp.array([0.5, 0.29]), 0)) == 0.0
    # vmap == loop
    ds = jax.random.uniform(jax.random.PRNGKey(0), (10, 2))
    ps = jax.random.uniform(jax.random.PRNGKey(1), (10, 2))
    qv, tv = jax.vmap(cc.play)(ds, ps)
    for k in range(10):
        qk, tk = cc.play(ds[k], ps[k])
        assert float(qv[k]) == float(qk) and np.array_equal(tv[k], tk)


def test_hand_private_values():
    """a = 0, vbar = (.5, .5) (sbar = (.5, .5), c = 1), types {0, .25, .5, .75, 1}.

    v_i = s_i, so F_1(s_1) = {s_2 : s_1 > .5, s_2 > .5}: (.5, 1] for s_1 > .5, else empty.
      s_1 > .5: phi_2 = .5, p_1 = v_1 = s_1, and agent 2's constraint binds: d_1 = v_2(s_1, .5) = .5 = vbar_2.
      s_1 <= .5: empty, phi_2 = 1, p_1 = v_1(s_1, 1) = s_1, d_1 = v_2(s_1, 1) = 1.
    So d = (1, 1, 1, .5, .5) and p = (0, .25, .5, .75, 1) for both agents.
    Produced iff s_1 >= d_2(s_2) and s_2 >= d_1(s_1): both in {.75, 1}, or (1, .5) and (.5, 1)
    (p = 1 meets the demand 1 of a type .5, whose pledge .5 meets the demand .5).
    f(s) = 1 iff both >= .5: the scheme misses the ties (.5, .5), (.5, .75), (.75, .5) (margin 0;
    F uses strict inequalities, f weak ones). Taxes: .5 + .5 = c inside; at (1, .5) agent 1 pays
    d_2(.5) = 1 = v_1 and agent 2 pays .5 = v_2 (both indifferent), surplus .5. No profitable
    deviation: the best reply is worth max(0, v_i - d_{-i}), which the strategies already get.
    """
    r = _np(jm.check_equilibrium(linear(0.0), (0.5, 0.5), n_types=5, n_grid=9, n_random=16, key=jax.random.PRNGKey(0)))
    np.testing.assert_allclose(r.signals, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(r.strategies.phi, [[1, 1, 1, 0.5, 0.5]] * 2, atol=1e-6)
    np.testing.assert_array_equal(r.strategies.d, [[1, 1, 1, 0.5, 0.5]] * 2)  # the binding demand is exactly vbar
    np.testing.assert_array_equal(r.strategies.p, [[0, 0.25, 0.5, 0.75, 1]] * 2)
    produced = np.zeros((5, 5), bool)
    produced[3:, 3:] = produced[4, 2] = produced[2, 4] = True
    np.testing.assert_array_equal(r.produced, produced)
    provide = np.zeros((5, 5), bool)
    provide[2:, 2:] = True
    np.testing.assert_array_equal(r.provide, provide)
    assert int(r.n_mismatch) == 3 and float(r.implementation_share) == pytest.approx(22 / 25)
    assert float(r.mismatch_margin) == 0.0 and float(r.strict_share) == 1.0
    np.testing.assert_array_equal(r.gain, [0, 0])
    np.testing.assert_array_equal(r.gain_exact, [0, 0])
    assert float(r.budget_margin) == 0.0
    np.testing.assert_array_equal(r.vcg_gap, [0, 0])
    assert not r.full.any() and np.array_equal(r.empty, [[1, 1, 1, 0, 0]] * 2)
    assert float(r.cost) == 1.0


def test_hand_interdependent_profile():
    """a = .3, sbar = (.5, .5): vbar = (.65, .65), c = 1.3. Profile s = (.9, .45): v = (1.035, .72), f = 1.

    Agent 1, s_1 = .9: v_1(.9, x) = .9 + .3x > .65 always; v_2(.9, x) = x + .27 > .65 iff x > .38.
      phi_2 = .38, agent 2's constraint binds: d_1 = vbar_2 = .65, p_1 = v_1(.9, .38) = 1.014.
    Agent 2, s_2 = .45: v_2(x, .45) = .45 + .3x > .65 iff x > 2/3; v_1(x, .45) = x + .135 > .65 iff x > .515.
      phi_1 = 2/3, its own constraint binds: p_2 = vbar_2 = .65, d_2 = v_1(2/3, .45) = .801667.
    Produced: p_1 = 1.014 >= d_2 = .801667 and p_2 = .65 >= d_1 = .65 -- an exact tie, met only because
    both sides equal vbar_2. Taxes (d_2, d_1) = (.801667, .65): the VCG payments
    t_1 = v_1(2/3, .45) (pivot where agent 2 reaches vbar_2) and t_2 = v_2(.9, .38) = vbar_2.
    Utilities 1.035 - .801667 = .233333 and .72 - .65 = .07.
    """
    values = linear(0.3)
    vbar = values(jnp.array([0.5, 0.5]))
    st = jm.contribution_strategies(values, vbar, jnp.array([0.45, 0.9]))  # [agent, type]
    np.testing.assert_allclose(st.phi[0, 1], 0.38, atol=1e-6)
    np.testing.assert_allclose(st.phi[1, 0], 2 / 3, atol=1e-6)
    assert float(st.d[0, 1]) == float(vbar[1]) and float(st.p[1, 0]) == float(vbar[1])
    np.testing.assert_allclose([st.p[0, 1], st.d[1, 0]], [1.014, 2 / 3 + 0.135], atol=1e-6)
    d, p = jnp.stack([st.d[0, 1], st.d[1, 0]]), jnp.stack([st.p[0, 1], st.p[1, 0]])
    q, taxes = cc.play(d, p)
    s = jnp.array([0.9, 0.45])
    assert float(q) == 1.0
    np.testing.assert_allclose(taxes, [2 / 3 + 0.135, 0.65], atol=1e-6)
    np.testing.assert_allclose(cc.vcg_payments(values, vbar, s), taxes, atol=1e-6)
    np.testing.assert_allclose([cc.utility(values, s, d, p, i) for i in (0, 1)], [0.7 / 3, 0.07], atol=1e-6)


def test_vcg_payments_agree_with_the_provision_module():
    """Two constructions of the threshold rule's generalized VCG payments (CE Thm 9's proof) agree.

    ``vcg_payments`` bisects on the rule itself; ``provision.threshold_payments`` takes the max of the
    per-constraint roots. Hand value at m = (.9, .45), vbar = (.65, .65), v_i = s_i + .3 s_-i:
    t_1 = v_1 at the pivot x = (.65 - .45) / .3 = 2/3 -> 2/3 + .135; t_2 = .65 (own constraint binds).
    """
    values = linear(0.3)
    env = jm.public_good(jm.linear_public_values(0.3), 1.3)
    vbar = jnp.array([0.65, 0.65])
    np.testing.assert_allclose(cc.vcg_payments(values, vbar, jnp.array([0.9, 0.45])), [2 / 3 + 0.135, 0.65], atol=1e-6)
    np.testing.assert_array_equal(cc.vcg_payments(values, vbar, jnp.array([0.9, 0.3])), [0.0, 0.0])
    s = jax.random.uniform(jax.random.PRNGKey(3), (512, 2))
    f = jax.vmap(lambda m: jm.threshold_rule(env)(vbar, m))(s)
    a = jax.vmap(lambda m: cc.vcg_payments(values, vbar, m))(s)
    b = jax.vmap(lambda m: jm.threshold_payments(env, vbar, m))(s) * f[:, None]
    np.testing.assert_allclose(a, b, atol=2e-6)


# --------------------------------------------------------------------------
# CE's claims on the 101 x 101 grid


@pytest.mark.parametrize("name", list(CASES))
def test_claims(results, name):
    """Implementation up to boundary ties, ex post equilibrium, budget balance (CE Thm 9), VCG taxes."""
    r = _np(results[name])
    scale = float(r.value_scale)
    # (a) every mismatch is a tie on the rule's boundary
    assert float(r.strict_share) == 1.0
    assert float(r.mismatch_margin) <= TOL * scale
    assert float(r.implementation_share) >= 0.99
    # (b) no profitable deviation; the deviation set reaches the exact best reply
    assert np.all(r.gain <= TOL * scale) and np.all(r.gain_exact <= TOL * scale)
    # (c) budget balance t_1 + t_2 >= c, and the taxes are the VCG payments (except where a full type demands)
    assert float(r.budget_margin) >= -TOL
    assert np.all(r.vcg_gap_regular <= TOL)
    if not r.full.any():
        assert np.all(r.vcg_gap <= TOL)
    if name in C1:
        assert float(r.cost) == pytest.approx(1.0, abs=1e-6)
    assert r.produced.any() and not r.produced.all()


def test_full_types_demand_below_vcg(results):
    """a = .3, sbar = (.5, .1): vbar = (.53, .25). F_1(s_1) = [0, 1] iff s_1 > .53 and .3 s_1 > .25, i.e. s_1 > 5/6.

    Such a type demands d_1 = vbar_2 = .25 (CE Sec. 5.3), while agent 2's VCG payment is
    inf{v_2(s_1, y) : f = 1} = v_2(s_1, 0) = .3 s_1: the gap .3 s_1 - .25 peaks at .05 (s_1 = 1).
    Agent 2 never has full types (v_1(0, s_2) = .3 s_2 < .53).
    """
    r = _np(results["full_types"])
    np.testing.assert_array_equal(r.full[0], r.signals > 5 / 6)
    assert int(r.full[0].sum()) == 17 and not r.full[1].any()
    np.testing.assert_array_equal(r.strategies.d[0][r.full[0]], np.float32(0.25))
    np.testing.assert_allclose(r.strategies.p[0][r.full[0]], r.signals[r.full[0]], atol=1e-6)  # v_1(s_1, 0)
    np.testing.assert_allclose(r.vcg_gap, [0.0, 0.05], atol=1e-6)
    assert float(r.vcg_gap_regular[1]) <= TOL


# --------------------------------------------------------------------------
# negative controls: the checker can fail


def test_shaded_pledge_is_caught(results):
    """Agent 1 pledges .1 less than CE's p_1: the project is missed where it should go, and agent 1 would gain."""
    values, vbar = setup("linear_sym")
    r0 = results["linear_sym"]
    st = r0.strategies._replace(p=r0.strategies.p.at[0].add(-0.1))
    r = _np(jm.check_equilibrium(values, vbar, n_types=N, key=jax.random.PRNGKey(5), strategies=st))
    assert float(r.strict_share) < 0.99 and float(r.mismatch_margin) > 0.05
    assert float(r.gain[0]) > 0.05
    np.testing.assert_allclose(r.gain, r.gain_exact, atol=1e-6)  # the grid finds the best reply
    s = r.gain_witness[0]
    k1, k2 = (int(np.argmin(np.abs(r.signals - x))) for x in s)
    assert r.provide[k1, k2] and not r.produced[k1, k2]  # the witness is a missed project
    d = np.array([r.gain_deviation[0, 0], r.strategies.d[1, k2]])
    p = np.array([r.gain_deviation[0, 1], r.strategies.p[1, k2]])
    assert float(cc.utility(values, jnp.asarray(s), d, p, 0)) == pytest.approx(float(r.gain[0]), abs=1e-6)


def test_vcg_demand_for_full_types_breaks_implementation(results):
    """Full types demanding agent 2's VCG payment v_2(s_1, 0) = .3 s_1 instead of vbar_2 = .25.

    At s = (.9, 0): f = 1 (v = (.9, .27) >= (.53, .25)); agent 2 of type 0 pledges p_2(0) =
    v_2(phi_1(0), 0) = vbar_2 = .25 < .27 = the new demand: the project is missed (margin .02).
    """
    values, vbar = setup("full_types")
    r0 = _np(results["full_types"])
    full = r0.full[0]
    d = r0.strategies.d.copy()
    d[0, full] = 0.3 * r0.signals[full]
    st = jm.Strategies(r0.strategies.phi, d, r0.strategies.p)
    r = _np(jm.check_equilibrium(values, vbar, n_types=N, key=jax.random.PRNGKey(5), strategies=st))
    assert float(r.strict_share) < 1.0 and float(r.mismatch_margin) >= 0.02 - 1e-6
    k = int(np.argmin(np.abs(r0.signals - 0.9)))
    assert r.provide[k, 0] and not r.produced[k, 0]
    assert float(r.gain[0]) > 0.0  # agent 1 of type .9 loses v_1 - d_2 = .9 - .53 by the missed project


def test_inexact_ties_break_implementation():
    """Without exact ties (``exact=False``) the pledges and demands carry bisection error, and the
    positive-measure tie set p_i = d_{-i} = vbar_i falls on either side: mismatches off the boundary."""
    values, vbar = setup("weighted_asym")  # 66 such mismatches in float32, 63 in float64
    r = _np(jm.check_equilibrium(values, vbar, n_types=N, key=jax.random.PRNGKey(5), exact=False))
    assert float(r.strict_share) < 1.0 and float(r.mismatch_margin) > 0.01
    assert float(np.max(r.gain)) > 0.01


# --------------------------------------------------------------------------
# transformations and plumbing


def test_strategies_per_type_and_closure():
    """Each type's strategy depends on its own signal only (a permuted grid permutes them); the
    Partial form == linear_public_values' closure."""
    values, vbar = setup("weighted_asym")
    signals = jnp.linspace(0.0, 1.0, 7)
    st = jm.contribution_strategies(values, vbar, signals)
    perm = np.array([3, 0, 6, 1, 5, 2, 4])
    shuffled = jm.contribution_strategies(values, vbar, signals[perm])
    for a, b in zip(st, shuffled, strict=True):
        np.testing.assert_array_equal(a[:, perm], b)
    closure = jm.contribution_strategies(jm.linear_public_values(0.2, weights=(1.0, 0.7)), vbar, signals)
    for a, b in zip(st, closure, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_no_recompile_across_linear_cases(results):
    """A Partial's bound arrays are traced: a new (a, weights, vbar) and exact=False reuse the fixture's compilation."""
    n = len(TRACES)
    values = linear(0.25, (0.9, 1.0))
    r = jm.check_equilibrium(values, (0.45, 0.55), n_types=N, key=jax.random.PRNGKey(1))
    assert len(TRACES) == n + 1  # check_equilibrium's shape check (eval_shape) only
    assert float(r.strict_share) == 1.0 and float(np.max(r.gain)) <= TOL
    jm.check_equilibrium(values, (0.45, 0.55), n_types=N, key=jax.random.PRNGKey(1), exact=False)
    assert len(TRACES) == n + 1  # eval_shape caches on the same Partial


def test_vcg_payments_match_grid_taxes(results):
    """The single-profile vcg_payments (bisection on f) == the taxes at produced profiles off the boundary."""
    values, vbar = setup("linear_asym")
    r = _np(results["linear_asym"])
    margin = np.abs(np.min(r.value_grid - r.vbar, axis=-1))
    k1, k2 = np.nonzero(r.produced & r.provide & (margin > 1e-3))
    pick = np.random.default_rng(0).choice(k1.size, 40, replace=False)
    s = jnp.stack([r.signals[k1[pick]], r.signals[k2[pick]]], axis=1)
    t = jax.jit(jax.vmap(lambda x: cc.vcg_payments(values, jnp.asarray(vbar), x)))(s)
    taxes = np.stack([r.strategies.d[1, k2[pick]], r.strategies.d[0, k1[pick]]], axis=1)
    np.testing.assert_allclose(t, taxes, atol=1e-5)


def test_metrics_json(results):
    m = cc.result_to_metrics(results["full_types"])
    json.dumps(m, allow_nan=False)
    assert m["n_types"] == N and m["n_deviations"] == 41 * 41 + 256
    assert m["agent1"]["n_full"] == 17 and m["agent2"]["n_full"] == 0
    assert len(m["agent1"]["d"]) == N and m["budget_margin"] is not None


def test_validation():
    values = linear(0.3)
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="vbar"):
        jm.check_equilibrium(values, (0.5, 0.5, 0.5), key=key)
    with pytest.raises(ValueError, match="vbar"):
        jm.contribution_strategies(values, (0.5, np.nan), jnp.linspace(0, 1, 3))
    with pytest.raises(ValueError, match="shape"):
        jm.check_equilibrium(lambda s: s[:1], (0.5, 0.5), key=key)
    with pytest.raises(ValueError, match="n_types"):
        jm.check_equilibrium(values, (0.5, 0.5), n_types=1, key=key)
    with pytest.raises(ValueError, match="strategies"):
        st = jm.Strategies(*(jnp.zeros((2, 5)),) * 3)
        jm.check_equilibrium(values, (0.5, 0.5), n_types=7, key=key, strategies=st)
