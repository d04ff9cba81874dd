"""Two private goods with unit demand (B Sec. 3, eq. (5), fns. 11-12) and the consumption externality of B Sec. 5."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmech as jm
from jaxmech._src.app import config as cfg
from jaxmech._src.app.kinds.externality import externality_mechanism


def test_assignments_are_every_unit_demand_assignment():
    for n, k in ((2, 7), (3, 13)):
        t = jm.assignments(n)
        assert t.shape == (k, n) and len({tuple(r) for r in t}) == k
        assert all((r == 1).sum() <= 1 and (r == 2).sum() <= 1 for r in t)
        assert tuple(t[0]) == (0,) * n
    assert jm.assignment_names(jm.assignments(2)) == ("--", "-A", "-B", "A-", "AB", "B-", "BA")
    with pytest.raises(ValueError, match="n must be"):
        jm.assignments(1)


def test_values_are_the_buyers_own_objects_values(key):
    env = jm.two_objects(2, 0.5)
    s = jax.random.uniform(key, (4,))
    v = np.asarray(jax.vmap(lambda q: env.value(q, s))(jnp.arange(7, dtype=jnp.int32)))  # (K, n)
    x = np.asarray(s, np.float64).reshape(2, 2)
    big_v = x + 0.5 * x[::-1]  # V_iX = s_iX + a s_jX
    for q, row in enumerate(jm.assignments(2)):
        want = [0.0 if row[i] == 0 else big_v[i, row[i] - 1] for i in range(2)]
        np.testing.assert_allclose(v[q], want, rtol=1e-6)


@pytest.mark.parametrize("n", [2, 3])
def test_condition5_holds_exactly_when_one_buyer_moves(key, n):
    env = jm.two_objects(n, 0.5)
    s = jm.independent(env.dims).sample(key, 256, jnp.float32)
    c5 = jm.condition5(env, s)
    moved = jm.agents_moved(jm.assignments(n))
    np.testing.assert_array_equal(np.asarray(c5.holds), moved <= 1)
    gap = np.asarray(c5.gap)
    t = jm.assignments(n)
    for l_, k_ in zip(*np.nonzero(moved == 1), strict=True):
        still = t[l_] == t[k_]
        assert np.all(gap[l_, k_, still] == 0.0)  # exactly indifferent, not up to rounding
    assert np.all(np.asarray(c5.second)[moved >= 2] > 1e-3)


def _audit(env, mech, key, n=512):
    return jm.audit(env, mech, jm.independent(env.dims), key=key, n_profiles=n,
                    misreports=jm.Misreports(grid=6, random=8)).report  # fmt: skip


@pytest.mark.parametrize("n", [2, 3])
def test_serial_dictatorship_is_ex_post_ic_with_full_range(key, n):
    env = jm.two_objects(n, 0.5)
    rep = _audit(env, jm.serial_dictatorship(n, 0.5, [0.4, 0.6]), key, 1024)
    assert max(r["max"] for r in rep["regret"]) <= rep["tol"]
    assert all(o["p"] > 0 for o in rep["outcomes"].values()), rep["outcomes"]
    assert len(rep["outcomes"]) == len(jm.assignments(n))


def test_serial_dictatorship_prices_ignore_the_payers_report_and_jit_matches(key):
    mech = jm.serial_dictatorship(2, 0.5, [[0.4, 0.6], [0.3, 0.7]])
    s = jax.random.uniform(key, (64, 4))
    q, t = jax.vmap(lambda m: mech.decide_and_pay(mech.params, m))(s)
    qj, tj = jax.jit(jax.vmap(lambda m: mech.decide_and_pay(mech.params, m)))(s)
    np.testing.assert_array_equal(np.asarray(q), np.asarray(qj))
    np.testing.assert_allclose(np.asarray(t), np.asarray(tj), rtol=1e-6)
    # buyer 1 pays V_1X(r_1X, s_2) = r_1X + a s_2X for the object he takes
    x = np.asarray(s, np.float64)
    alloc = jm.assignments(2)[np.asarray(q)][:, 0]
    want = np.where(alloc == 1, 0.4 + 0.5 * x[:, 2], np.where(alloc == 2, 0.6 + 0.5 * x[:, 3], 0.0))
    np.testing.assert_allclose(np.asarray(t)[:, 0], want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="reserves"):
        jm.serial_dictatorship(2, 0.5, [0.1, 0.2, 0.3])


def test_private_vcg_is_not_ex_post_ic(key):
    env = jm.two_objects(2, 0.5)
    rep = _audit(env, jm.private_vcg(env), key)
    assert max(r["max"] for r in rep["regret"]) > 0.05


def test_consumption_externality(key):
    base = jm.example1()
    s = jax.random.uniform(key, (4,))
    e = np.array([(s[0] + s[1]) / 2, (s[2] + s[3]) / 2])
    zero = jm.consumption_externality(base, 0.0)
    eps = jm.consumption_externality(base, 0.1)
    assert not eps.is_separable and eps.name == "example1 + externality 0.1"
    for q in (jnp.zeros(2), jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])):
        np.testing.assert_allclose(np.asarray(zero.value(q, s)), np.asarray(base.value(q, s)), rtol=1e-6)
    a1 = np.asarray(eps.value(jnp.array([1.0, 0.0]), s))
    v = np.asarray(base.values(s))
    np.testing.assert_allclose(a1, [v[0], -0.1 * e[1]], rtol=1e-5)  # buyer 2 is no longer indifferent (eq. (5))
    with pytest.raises(ValueError, match="single-object"):
        jm.consumption_externality(jm.two_objects(), 0.1)


def test_externality_mechanism_keeps_the_nested_loops_mark_and_its_menu_the_allocation(key):
    env = jm.example1()
    piv = externality_mechanism(env, cfg.MechanismSettings(kind="pivotal"))
    assert jm.has_nested_loops(piv) and getattr(piv.menu, "nested_loops", False)
    hand = externality_mechanism(env, cfg.MechanismSettings(kind="personalized_prices", prices="example1"))
    assert not jm.has_nested_loops(hand)
    s = jnp.array([0.2, 0.3, 0.9, 0.8])  # buyer 2 wins at p_1 + c_1^2 = 0.29
    q, t1 = hand.menu(hand.params, s, 0)(s[:2])
    np.testing.assert_array_equal(np.asarray(q), [0.0, 1.0])  # the whole allocation, not buyer 1's alone
    assert float(t1) == 0.0


def test_condition5_does_not_depend_on_the_chunk(key):
    env = jm.two_objects(2, 0.5)
    s = jm.independent(env.dims).sample(key, 300, jnp.float32)
    a, b = jm.condition5(env, s, chunk=64), jm.condition5(env, s, chunk=300)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert int(np.max(np.asarray(a.witness))) < 300
