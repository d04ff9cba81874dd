"""B Secs. 3-4: Example 1 against quadrature, the eps-continuum, assumption / admissibility checks with witnesses,
the private + common value family against brute force, and the two-outcome (JMM) regret gap."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

import jaxmech as jm
from tests.conftest import run_cli, run_config, within

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bikhchandani  # noqa: E402
from test_pivotal import brute_force_price  # noqa: E402


def p_buyer1_scipy(construction=False):
    """P(a_1) = int int P(p_1 - p_2 > x(c)) dc_1 dc_2, p_1 - p_2 triangular on [-1, 1] (scipy dblquad)."""

    def tail(x):  # P(p_1 - p_2 > x)
        return (1 - x) ** 2 / 2 if x >= 0 else 1 - (1 + x) ** 2 / 2

    def f(c2, c1):
        return tail(c2 - c1 * c2 if construction else c2**2 - c1 * c2)

    return integrate.dblquad(f, 0, 1, 0, 1, epsabs=1e-10)[0]


def test_example1_outcomes_revenue_welfare_against_quadrature():
    env = jm.example1()
    s = jm.independent(env.dims).sample(jax.random.PRNGKey(0), 40_000)
    v = jax.vmap(env.values)(s)
    st = jm.price_stats(env, s, v, jax.vmap(lambda m: jm.example1_prices((), m))(s))
    p1 = p_buyer1_scipy()
    ref = bikhchandani.example1_reference()  # the claims' reference (midpoint rule) agrees with scipy
    assert ref["a1"] == pytest.approx(p1, abs=2e-4)
    for k, p in (("a0", 1 - 2 * p1), ("a1", p1), ("a2", p1)):
        o = st["outcomes"][k]
        assert o["ci95"][0] > 0 and within(o["mean"], p, o["se"]), (k, o, p)  # non-trivial, B Sec. 3
    for k in ("revenue", "welfare"):
        assert within(st[k]["mean"], ref[k], st[k]["se"]), (k, st[k], ref[k])
    assert within(st["first_best_welfare"]["mean"], 11 / 12, st["first_best_welfare"]["se"])  # E max(p) + E c1 c2
    assert st["admissible"]["violations"] == 0
    # the hand-made prices are NOT weakly efficient (B claims weak efficiency for the Theorem's prices only):
    # buyer i can win with c_i > c_j and p_i < p_j; the witness shows it
    share = st["weak_efficiency"]["share_of_sales"]["mean"]
    assert 0.8 < share < 0.95
    w = np.asarray(st["weak_efficiency"]["worst_profile"])
    vw = np.asarray(env.values(jnp.asarray(w)))
    tw = np.asarray(jm.example1_prices((), jnp.asarray(w)))
    winner = int(np.argmax(vw - tw))
    assert vw[winner] > tw[winner] and vw[winner] < vw.max() - 0.1
    # the construction's prices p_j + c_j: P(a_1) against quadrature too
    piv = jm.price_stats(env, s[:4096], v[:4096], jnp.stack([s[:4096, 2] + s[:4096, 3], s[:4096, 0] + s[:4096, 1]], 1))
    o = piv["outcomes"]["a1"]
    assert within(o["mean"], p_buyer1_scipy(True), o["se"])
    assert piv["weak_efficiency"]["share_of_sales"]["mean"] == 1.0


@pytest.mark.parametrize(
    "eps",
    [
        lambda m: jnp.full((2,), 0.05, m.dtype),
        lambda m: jnp.stack([0.3 * m[3], 0.3 * m[1]]),  # eps_i(p_j, c_j) = 0.3 c_j
        pytest.param(
            lambda m: jnp.stack([0.5 * m[2] ** 2 * (1 - m[3]), 0.5 * m[0] ** 2 * (1 - m[1])]), marks=pytest.mark.slow
        ),
    ],
)
def test_example1_continuum_is_admissible_and_ic(eps):
    """B Sec. 3: p_j + c_j^2 + eps_i(p_j, c_j), eps_i >= 0, is admissible and the eq. (4) rule is ex post IC."""
    env = jm.example1()
    prices = jm.raise_prices(jm.example1_prices, eps)
    s = jm.independent(env.dims).sample(jax.random.PRNGKey(1), 4000)
    assert int(jm.check_admissible(env, prices, s).violations) == 0
    mech = jm.personalized_prices(env, prices)
    g = jnp.linspace(0.0, 1.0, 9)
    grid = jnp.stack(jnp.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    worst = jax.jit(
        lambda s: jnp.max(jax.vmap(lambda m: jax.vmap(lambda c: jnp.maximum(jm.regret(env, mech, (), m, c, 0),
                                                                              jm.regret(env, mech, (), m, c, 1)))(grid))(s))
    )(s[:64])  # fmt: skip
    assert float(worst) <= 1e-6
    st = jm.price_stats(env, s, jax.vmap(env.values)(s), jax.vmap(lambda m: prices((), m))(s))
    assert all(o["ci95"][0] > 0 for o in st["outcomes"].values())  # small eps: still non-trivial


def test_checks_report_witnesses():
    key1, key2 = jax.random.split(jax.random.PRNGKey(2))
    # Assumption 1a fails: V_1 decreases in c_2
    bad = jm.single_object((2, 2), lambda s: jnp.stack([s[0] - 0.5 * s[3], s[2] + s[1]]))
    s = jm.independent(bad.dims).sample(key1, 1000)
    step = 0.3 * jax.random.uniform(key2, s.shape)
    a1 = jm.check_assumption1a(bad, s, step)
    assert float(a1.worst[0, 1]) > 0.05 and float(jnp.max(a1.worst[1])) <= 1e-6
    lo, hi = bad.values(a1.profile[0, 1]), bad.values(a1.moved[0, 1])
    assert np.all(np.asarray(a1.moved[0, 1] >= a1.profile[0, 1])) and float(lo[0] - hi[0]) == pytest.approx(
        float(a1.worst[0, 1]), abs=1e-6
    )
    # Assumption 3 fails: V_2 <= V_1 everywhere
    dom = jm.single_object((1, 1), lambda s: jnp.stack([1.0 + s[0], s[1]]))
    a3 = jm.check_assumption3(dom, jm.independent(dom.dims).sample(key1, 1000))
    assert float(a3.share[1]) == 0.0 and float(a3.margin[1]) < 0 and float(a3.share[0]) == 1.0
    # eq. (3) fails for t_i = p_j: the witness has two buyers clearing their prices
    ex1 = jm.example1()
    ad = jm.check_admissible(ex1, jm.own_signal_prices, jm.independent(ex1.dims).sample(key1, 1000))
    assert int(ad.violations) > 50 and float(ad.margin) > 0
    assert int(np.sum(np.asarray(ad.values) > np.asarray(ad.prices))) == 2
    np.testing.assert_allclose(ad.values, ex1.values(ad.profile), rtol=1e-6)


def test_private_common_family_construction():
    """Second family, d_i differ (2, 3): Assumptions hold; the construction is admissible, weakly efficient,
    non-trivial, and its price for buyer 1 matches the dense brute force of B's definitions."""
    dims, w = (2, 3), [1.0, 0.4]
    fn = jm.private_common_values(dims, w)
    env = jm.single_object(dims, fn)
    s = jm.independent(dims).sample(jax.random.PRNGKey(3), 64)
    rep = jm.assumption_report(env, s, 0.3 * jax.random.uniform(jax.random.PRNGKey(4), s.shape))
    assert rep["assumption1a"]["holds"] and rep["assumption2"]["holds"] and rep["assumption3"]["holds"]
    t = jm.batched_prices(jm.pivotal_prices(env), s)
    st = jm.price_stats(env, s, jax.vmap(env.values)(s), t)
    assert st["admissible"]["violations"] == 0 and st["weak_efficiency"]["share_of_sales"]["mean"] == 1.0
    assert all(o["ci95"][0] > 0 for o in st["outcomes"].values())
    values_np = lambda x: np.asarray(fn(jnp.asarray(x, jnp.float32)), np.float64)  # noqa: E731
    ref = np.array([brute_force_price(values_np, m, 0, 1, dims, grid=151, levels=300) for m in np.asarray(s[:3])])
    assert np.max(np.abs(np.asarray(t[:3, 0]) - ref)) < 2e-2
    with pytest.raises(ValueError, match="Assumption 2"):
        jm.private_common_values(dims, [1.0, 0.0], own=0.1)


def test_two_outcome_gap_closed_form():
    """Efficient two-outcome rule in Example 1 (a_1 iff p_1 > p_2): buyer 1's least worst regret at s_2 is
    (max_{p_1 <= p_2} V_1 - min_{p_1 > p_2} V_1) / 2 = c_2 / 2 (up to the grid); a constant rule has gap 0."""
    env = jm.example1()
    grid = jm.signal_grids(env, 33)[0]
    s = jm.independent(env.dims).sample(jax.random.PRNGKey(5), 16)
    gap = jax.vmap(lambda m: jm.two_outcome_gap(env, lambda x: x[0] - x[2], m, 0, grid))(s)
    np.testing.assert_allclose(gap, s[:, 3] / 2, atol=1 / 32)
    const = jax.vmap(lambda m: jm.two_outcome_gap(env, lambda x: -1.0 + 0 * x[0], m, 0, grid))(s)
    assert float(jnp.max(const)) == 0.0


def test_config_errors_are_one_line(tmp_path, capsys):
    env = '[environment]\nkind = "private_common"\ndims = [2, 2]\nweights = [1.0, 0.0]\nown = 0.1\n'
    rest = '[mechanism]\nkind = "pivotal"\n[experiment]\nkind = "pivotal"\n'
    (tmp_path / "a2.toml").write_text('name = "x"\n' + env + rest)
    assert run_cli(["run", tmp_path / "a2.toml", "--out", tmp_path / "a2"]) == 2
    err = capsys.readouterr().err
    assert "config error" in err and "Assumption 2" in err and len(err.strip().splitlines()) == 1
    env = '[environment]\nkind = "bilateral_trade"\n'
    rest = '[mechanism]\nkind = "generalized_vcg"\n[experiment]\nkind = "pivotal"\n'
    (tmp_path / "trade.toml").write_text('name = "x"\n' + env + rest)
    assert run_cli(["run", tmp_path / "trade.toml", "--out", "/tmp/never-written"]) == 2
    err = capsys.readouterr().err
    assert "config error" in err and "single-object" in err and len(err.strip().splitlines()) == 1
    assert not Path("/tmp/never-written").exists()


def test_user_prices_of_the_wrong_shape_fail_in_one_line(tmp_path, capsys):
    # the model check traces the model once (jax.eval_shape) without compiling it: a shape error is one line
    (tmp_path / "bad.py").write_text("import jax.numpy as jnp\ndef prices(params, m):\n    return jnp.zeros(3)\n")
    config = 'name = "x"\n[environment]\nkind = "example1"\n[mechanism]\nkind = "personalized_prices"\n'
    (tmp_path / "x.toml").write_text(config + 'prices = "bad.py:prices"\n')  # bad.py: beside the config
    assert run_cli(["run", tmp_path / "x.toml", "--out", tmp_path / "x"]) == 2
    err = capsys.readouterr().err
    assert "config error" in err and "model check failed on one profile" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", list(bikhchandani.EXPERIMENTS))
def test_config_runs_end_to_end_and_every_claim_passes(tmp_path, name):
    ex = bikhchandani.EXPERIMENTS[name]
    metrics = run_config(Path(__file__).resolve().parents[1] / "configs" / f"{name}.toml", tmp_path / name, *ex.quick)
    for f in metrics["plots"]:
        assert (tmp_path / name / f).stat().st_size > 1000
    rows = ex.claims(metrics)
    assert rows and not [r for r in rows if r.status == "FAIL"], [r for r in rows if r.status == "FAIL"]
