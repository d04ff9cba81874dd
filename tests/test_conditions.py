"""Single crossing and strong single crossing (CE Def 7, Def 9) for any separable environment with finitely many
outcomes; the general checks agree with the bilateral-trade ones, and every witness is a real violation."""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxmech as jm

TRADE = jnp.asarray([0.0, 1.0])


def _quadratic_values(s):
    return jnp.stack([s[0] + 2.0 * (s[1] - 0.5) ** 2, s[1]])


@pytest.mark.parametrize(
    "values",
    [jm.deadzone_trade_values(), pytest.param(_quadratic_values, marks=pytest.mark.slow)],
    ids=["deadzone", "quadratic"],
)
def test_general_checks_agree_with_bilateral_ones(values):
    env = jm.bilateral_trade(values, check=False)
    general = jm.check_separable(env, TRADE, profiles=8, points=65)
    trade = jm.check_bilateral(values, points=65)
    for name in ("single_crossing", "strong_single_crossing"):
        assert general[name]["holds"] == trade[name]["holds"], name
        assert (general[name]["witness"] is None) == general[name]["holds"]
    # the existing API dispatches to the general check when given an environment
    assert (
        jm.strong_single_crossing(env, outcomes=TRADE, profiles=8, points=65).holds
        == trade["strong_single_crossing"]["holds"]
    )


def _object_values(s):
    """Buyer 2's value rises twice as fast in buyer 1's signal as buyer 1's own: raising s_1 hands the object away."""
    return jnp.stack([s[0], s[1] + 2.0 * s[0] - 0.8])


def test_single_object_violation_has_real_witnesses():
    env = jm.single_object((1, 1), _object_values)
    outcomes = jnp.concatenate([jnp.zeros((1, 2)), jnp.eye(2)])
    sc = jm.separable_single_crossing(env, outcomes, profiles=8, points=65)
    ssc = jm.separable_strong_single_crossing(env, outcomes, profiles=8, points=65)
    assert not sc.holds and not ssc.holds
    w = sc.witness
    i = w["agent"]
    s, s2 = np.asarray(w["s"]), np.asarray(w["s_prime"])
    assert s2[i] > s[i] and np.allclose(np.delete(s, i), np.delete(s2, i))  # a raise of s_i only

    def eff_h(x):  # h_i of the efficient outcomes, recomputed in NumPy
        v = np.asarray(_object_values(jnp.asarray(x)), np.float64)
        welfare = np.array([0.0, v[0], v[1]])  # nobody, buyer 1, buyer 2
        return np.array([0.0, 1.0, 0.0] if i == 0 else [0.0, 0.0, 1.0])[welfare >= welfare.max() - 1e-6]

    assert eff_h(s).min() > eff_h(s2).max()  # forced lower h_i: no efficient rule is monotone (CE Thm 2)
    # strong single crossing witness: the welfare gap of the tie moves the wrong way, by finite differences
    v = ssc.witness
    x = np.asarray(v["tie_profile"], np.float64)
    names = list(env.outcome_names)
    a, b = (names.index(o) for o in v["outcomes"])
    H = np.asarray(outcomes, np.float64)

    def gap(y):
        vals = np.asarray(_object_values(jnp.asarray(y, jnp.float32)), np.float64)
        return float((H[a] - H[b]) @ vals)

    e = np.zeros(2)
    e[v["agent"]] = 1e-3
    assert H[a, v["agent"]] > H[b, v["agent"]]
    np.testing.assert_allclose((gap(x + e) - gap(x - e)) / 2e-3, v["d_welfare_gap_d_s_i"], atol=1e-3)
    assert v["d_welfare_gap_d_s_i"] <= 0


@pytest.mark.slow
def test_public_good_with_three_agents_satisfies_both():
    env = jm.public_good(jm.linear_public_values(0.5, 3), 1.5, 3)
    got = jm.check_separable(env, TRADE, profiles=8, points=33)
    assert got["single_crossing"]["holds"] and got["strong_single_crossing"]["holds"]
