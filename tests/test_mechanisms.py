"""Mechanisms: pivot payments against CE eqs. (5)-(6), and Thm 2 as a property."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxmech as jm


def test_pivots_by_bisection_match_closed_form(key):
    a = 0.5
    env = jm.bilateral_trade(jm.linear_trade_values(a))
    by_bisection = jm.generalized_vcg(env)
    closed = jm.generalized_vcg(env, pivot=jm.linear_trade_pivot(a))
    s = jm.independent(env.dims).sample(key, 2000)
    t1 = jax.vmap(lambda m: by_bisection.pay((), m))(s)
    t2 = jax.vmap(lambda m: closed.pay((), m))(s)
    np.testing.assert_allclose(t1, t2, atol=2e-6)
    # CE eqs. (5)-(6) for v_i = s_i + a s_-i: t_beta = (1 + a) s_sigma, t_sigma = -(1 + a) s_beta in trading states
    trade = np.asarray(s[:, 0] > s[:, 1])
    expect = np.stack([(1 + a) * s[:, 1], -(1 + a) * s[:, 0]], axis=1) * trade[:, None]
    np.testing.assert_allclose(t2, expect, atol=1e-6)
    # kinks are the pivots g_beta(s_sigma) = s_sigma and g_sigma(s_beta) = s_beta
    k0 = jax.vmap(lambda m: by_bisection.kinks((), m, 0))(s)
    np.testing.assert_allclose(k0[:, 0, 0], s[:, 1], atol=1e-6)


def test_seller_lowest_type_is_one():
    """CE Sec. 4.1: a seller of type 1 and a buyer of type 0 get exactly zero utility."""
    env = jm.bilateral_trade(lambda s: jnp.stack([s[0] + 0.3 * s[1] ** 2, s[1] + 0.2 * s[0]]))
    mech = jm.generalized_vcg(env)
    for m in (jnp.array([0.7, 1.0]), jnp.array([0.0, 0.2]), jnp.array([0.9, 0.1])):
        u = jm.utility(env, mech, (), m, m, 1), jm.utility(env, mech, (), m, m, 0)
        if m[1] == 1.0:
            assert abs(float(u[0])) < 1e-6
        if m[0] == 0.0:
            assert abs(float(u[1])) < 1e-6
        assert min(float(u[0]), float(u[1])) >= -1e-6


class TestTransformations(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_regret_single_profile(self):
        env = jm.example1()
        mech = jm.personalized_prices(env, jm.example1_prices)
        s = jnp.array([0.6, 0.5, 0.4, 0.3])
        r = self.variant(lambda m: jm.regret(env, mech, (), s, m, 0))(jnp.array([0.1, 0.9]))
        chex.assert_shape(r, ())
        assert float(r) == 0.0

    def test_vmap_equals_loop(self):
        env = jm.bilateral_trade(jm.linear_trade_values(0.2))
        mech = jm.generalized_vcg(env)
        s = jm.independent(env.dims).sample(jax.random.PRNGKey(3), 16)
        batched = jax.vmap(lambda x: mech.pay((), x))(s)
        looped = jnp.stack([mech.pay((), x) for x in s])
        np.testing.assert_allclose(batched, looped, atol=1e-7)


# --- CE Thm 2 as a property: any monotone cutoff rule + its pivot payments has zero regret ---

N_PROFILES = 1024
MIS = jm.Misreports(grid=16, random=4, kinks=True)


def _cutoff_audit(coef, cut, profiles, key):
    """Max regret / IR violation of the cutoff rule trade iff s_b > clip(c0 + c1 s_s) with pivot payments.

    Values v_b = a0 s_b + a1 s_s + a2 s_b s_s + a3 s_b^3 and v_s = b0 s_s + b1 s_b + b2 s_b s_s
    (strictly increasing in own signal: CE Sec. 4's assumptions).
    """

    def values(s):
        sb, ss = s[0], s[1]
        vb = coef[0] * sb + coef[1] * ss + coef[2] * sb * ss + coef[3] * sb**3
        vs = coef[4] * ss + coef[5] * sb + coef[6] * sb * ss
        return jnp.stack([vb, vs])

    env = jm.bilateral_trade(values)

    def decide(params, m):
        return (m[0] > jnp.clip(params[0] + params[1] * m[1], 0.0, 1.0)).astype(m.dtype)

    mech = jm.pivot_payments(env, decide, params=cut)
    stats = jm.block_stats(env, mech, cut, MIS, profiles, jnp.int32(N_PROFILES), key, jnp.float32(1e-5))
    return stats["regret_max"].value, stats["ir_violation_max"].value


_cutoff_audit_jit = jax.jit(_cutoff_audit)
_PROFILES = jm.independent((1, 1)).sample(jax.random.PRNGKey(7), N_PROFILES)

pos = st.floats(0.2, 2.0)
nonneg = st.floats(0.0, 1.0)


@settings(max_examples=25, deadline=None)
@given(
    a=st.tuples(pos, nonneg, nonneg, nonneg),
    b=st.tuples(pos, nonneg, nonneg),
    c0=st.floats(-0.3, 0.8),
    c1=st.floats(0.0, 1.5),
)
def test_monotone_cutoff_rule_with_pivot_payments_has_zero_regret(a, b, c0, c1):
    coef = jnp.array(a + b, jnp.float32)
    cut = jnp.array([c0, c1], jnp.float32)
    scale = float(sum(a) + sum(b))
    reg, ir = _cutoff_audit_jit(coef, cut, _PROFILES, jax.random.PRNGKey(0))
    assert float(jnp.max(reg)) <= 2e-6 * scale
    assert float(jnp.max(ir)) <= 2e-6 * scale


def test_non_monotone_rule_has_positive_regret():
    """The negative control: trade iff s_b > 0.8 - 0.6 s_s is increasing in the seller's signal (CE Def 8 fails)."""
    coef = jnp.array([1.0, 0.5, 0.0, 0.0, 1.0, 0.5, 0.0], jnp.float32)
    reg, _ = _cutoff_audit_jit(coef, jnp.array([0.8, -0.6], jnp.float32), _PROFILES, jax.random.PRNGKey(0))
    assert float(reg[1]) > 0.05


def _kink_check(env, mech, price_of, s, i):
    """(respond.kinks(), mech.kinks, |V_i(kink) - t_i|) at every profile, in one jit."""
    sl = slice(sum(env.dims[:i]), sum(env.dims[: i + 1]))

    def one(m):
        via_menu = jm.menu_kinks(mech, mech.menu((), m, i), (), m, i)
        direct = mech.kinks((), m, i)
        gap = None
        if price_of is not None:
            v = jax.vmap(lambda x: env.values(m.at[sl].set(x))[i])(direct)
            gap = jnp.abs(v - price_of((), m, i))
        return via_menu, direct, gap

    return jax.jit(jax.vmap(one))(s)


def test_menu_kinks_equal_the_kinks_function(key):
    """A menu's respond.kinks() (what the audit uses) equals mech.kinks; B's kinks lie on V_i = t_i."""
    trade = jm.bilateral_trade(jm.multiplicative_trade_values(0.3))
    ex1 = jm.example1()
    pc = jm.single_object([2, 3], jm.private_common_values([2, 3], [1.0, 0.4]), name="private_common")
    cfg = jm.PivotalConfig(rays=9, refine=6)
    cases = [
        (trade, jm.generalized_vcg(trade), None),  # pivots by bisection
        (ex1, jm.personalized_prices(ex1, jm.example1_prices), lambda p, m, i: jm.example1_prices(p, m)[i]),
        (pc, jm.pivotal_mechanism(pc, config=cfg), jm.pivotal_price_of(pc, config=cfg)),  # B Sec. 4.1 rays
    ]
    for env, mech, price_of in cases:
        s = jm.independent(env.dims).sample(key, 64)
        for i in range(env.n_agents):
            via_menu, direct, gap = _kink_check(env, mech, price_of, s, i)
            chex.assert_trees_all_close(via_menu, direct, atol=1e-6)
            if gap is not None:  # on the boundary of the win set where the bisection found an interior crossing
                inside = np.asarray(jnp.all((direct > 1e-4) & (direct < 1 - 1e-4), axis=-1))
                assert inside.any()
                assert np.asarray(gap)[inside].max() < 1e-4
