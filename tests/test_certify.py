"""Pseudo-efficiency certificates (CE Lemma 1 / Thm 1) and payments from them (CE Thm 3)."""

import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_config

import jaxmech as jm


def test_finite_environment_validates():
    with pytest.raises(ValueError, match="k must be"):
        jm.finite_environment("bad", (1,), 0, lambda s: jnp.zeros((1, 0)))
    with pytest.raises(ValueError, match="outcome_names"):
        jm.finite_environment("bad", (1,), 2, lambda s: jnp.zeros((1, 2)), ("only_one",))


@pytest.mark.parametrize(("a", "i"), [(0.0, 0), (0.5, 1)])
def test_efficient_projects_certify_everywhere(key, a, i):
    """Private values (a = 0): VCG exists, so CE Thm 1 holds at every s_-i; the symmetric common term keeps it so."""
    env = jm.project_choice(k=3, n=2, a=a)
    prof_key, sample_key = jax.random.split(key)
    profiles = jax.random.uniform(prof_key, (48, env.size))
    samples = jax.random.uniform(sample_key, (300, 3))
    rep = jm.certify(env, jm.efficient_rule(env), (), profiles, i, samples)
    assert rep.fraction == 1.0
    assert rep.max_walk.max() <= 1e-5
    assert rep.worst_cycle[0] == rep.worst_cycle[-1]


def test_characterize_all_agents_in_one_program_equals_one_agent_at_a_time(key):
    """characterize() traces the agent index (equal signal dimensions): the same rows as characterize_agent."""
    env = jm.bilateral_trade(jm.linear_trade_values(0.5))
    mech = jm.generalized_vcg(env)
    profiles = jax.random.uniform(key, (12, 2))
    grid = jnp.linspace(0.0, 1.0, 33)[:, None]
    trade = jnp.array([0.0, 1.0])  # the outcome rows (no trade, trade)
    together = jm.characterize(env, mech, mech.params, profiles, [grid, grid], outcomes=trade)
    row, rep, pe = together[1]  # the seller: a nonzero traced index
    row1, rep1, pe1 = jm.characterize_agent(env, mech, mech.params, profiles, 1, grid, outcomes=trade)
    row.pop("certificates_per_s"), row1.pop("certificates_per_s")
    assert row == row1 and row["agent"] == "seller"
    np.testing.assert_array_equal(rep.max_walk, rep1.max_walk)
    np.testing.assert_array_equal(pe.cert_payments, pe1.cert_payments)
    assert [r["certified_share"] for r, _, _ in together] == [1.0, 1.0]  # VCG is ex post IC (CE Thm 1)


def test_cyclic_allocation_has_positive_cycle_and_profitable_misreport(key):
    env = jm.cyclic_allocation()
    decide = jm.efficient_rule(env)
    grid = jnp.linspace(0.0, 1.0, 201)[:, None]
    profiles = jnp.stack([jnp.zeros(11), jnp.linspace(0.0, 1.0, 11)], axis=1)
    rep = jm.certify(env, decide, (), profiles, 0, grid)
    assert rep.fraction == 0.0  # CE Thm 1 fails at every s_-i
    slack, cyc, xs = rep.worst_slack, rep.worst_cycle, rep.worst_signals
    m = len(cyc) - 1
    assert slack > 0.5
    assert cyc[0] == cyc[-1] and len(set(cyc[:-1])) == m >= 2  # a simple cycle
    s_minus = jnp.asarray(rep.worst_profile)
    # the witnesses: x_j gets a_j and sum_j v(a_{j+1}, x_j) - v(a_j, x_j) is the slack
    total = 0.0
    for j in range(m):
        s = jm.replace_signal(s_minus, env.dims, 0, jnp.asarray(xs[j]))
        assert int(decide((), s)) == cyc[j]
        v = np.asarray(env.value(jnp.arange(3), s))
        total += float(v[0, cyc[j + 1]] - v[0, cyc[j]])
    np.testing.assert_allclose(total, slack, atol=1e-6)

    # brute force over (true x, report x') on the grid at the same s_-i, for several payment rules
    def at(x):
        s = jm.replace_signal(s_minus, env.dims, 0, x)
        a = decide((), s)
        return a, env.value(jnp.arange(3), s)  # (n, k)

    a_x, vals = jax.jit(jax.vmap(at))(grid)  # (G,), (G, n, k)
    a_x, v0 = np.asarray(a_x), np.asarray(vals[:, 0, :])
    G = len(a_x)

    def max_gain(t_report):  # t_report: (G,) payment when reporting grid point x'
        u_true = v0[np.arange(G), a_x] - t_report  # truthful
        u_lie = v0[:, a_x] - t_report[None, :]  # [x, x']
        return float(np.max(u_lie - u_true[:, None]))

    groves = -np.asarray(vals[:, 1, :])[np.arange(G), a_x]  # t_0(m) = -v_1(f(m), m) at the reports
    menus = [np.zeros(3), *np.asarray(jax.random.normal(key, (10, 3)))]
    gains = [max_gain(groves)] + [max_gain(t[a_x]) for t in menus]
    # any outcome menu leaves some witness a gain of at least slack / cycle length
    assert min(gains) >= slack / m - 1e-5
    assert max_gain(groves) > 0


def test_pseudo_efficient_rule_recovers_potentials(seed=0):
    """f(x) = argmax_a v_i(a, x) + w(a) (CE Def 4): the certificate's payments are -w up to a constant."""
    k = 4
    env = jm.project_choice(k=k, n=2, a=0.0)  # v_0(a, x) = x_a
    w_key, s_key, x_key, p_key = jax.random.split(jax.random.PRNGKey(seed), 4)
    w = jax.random.uniform(w_key, (k,), minval=-0.4, maxval=0.4)

    def decide(w, m):
        return jnp.argmax(m[:k] + w).astype(jnp.int32)

    s_minus = jax.random.uniform(s_key, (2 * k,))
    rand = jax.random.uniform(x_key, (1000, k))
    pairs = jax.random.uniform(p_key, (2, 600, k))
    edge = jm.boundary_samples(env, decide, w, s_minus, 0, pairs[0], pairs[1])
    samples = jnp.concatenate([rand, edge])
    g = jm.outcome_graph(env, decide, w, s_minus, 0, samples)
    cert = jm.solve_graph(g)
    assert bool(cert.feasible) and bool(jnp.all(cert.occurs))
    err = np.asarray(cert.payments + w)
    assert np.ptp(err) < 1e-5, err
    # z-bar: the lowest sampled utility is exactly 0
    u = jnp.take_along_axis(g.values, g.outcome[:, None], 1)[:, 0] - cert.payments[g.outcome]
    assert abs(float(jnp.min(u))) < 1e-6


def test_certificate_payments_match_pivot_in_bilateral_trade(key):
    env = jm.bilateral_trade(jm.linear_trade_values(0.5))
    steps = 200
    grid = jnp.linspace(0.0, 1.0, steps + 1)[:, None]
    mech = jm.certificate_payments(env, jm.efficient_rule(env), grid, outcomes=jnp.array([0.0, 1.0]))
    # closed-form pivots (CE Sec. 4.4); test_mechanisms checks them against bisection
    vcg = jm.generalized_vcg(env, pivot=jm.linear_trade_pivot(0.5))
    s = jax.random.uniform(key, (200, 2))
    t_cert = jax.jit(jax.vmap(lambda m: mech.pay((), m)))(s)
    t_vcg = jax.jit(jax.vmap(lambda m: vcg.pay((), m)))(s)
    # V_i moves by 1 per unit of own signal: tolerance = one sample step of value
    np.testing.assert_allclose(t_cert, t_vcg, atol=1.0 / steps + 1e-5)
    # the menu agrees with pay
    q, t0 = mech.menu((), s[0], 0)(s[0, :1])
    np.testing.assert_allclose(t0, t_cert[0, 0], atol=1e-6)


# ---------------------------------------------------------------- cycle detection vs brute force


def _brute_max_cycle(d, occurs):
    nodes = [a for a in range(len(occurs)) if occurs[a]]
    best = -np.inf
    for r in range(2, len(nodes) + 1):
        for sub in itertools.combinations(nodes, r):
            for perm in itertools.permutations(sub[1:]):
                cyc = (sub[0], *perm, sub[0])
                best = max(best, sum(d[cyc[j], cyc[j + 1]] for j in range(r)))
    return best


def test_cycle_detection_matches_brute_force():
    rng = np.random.default_rng(7)
    cases = []
    for _ in range(240):
        k = int(rng.integers(2, 5))
        occurs = rng.random(k) < 0.85
        if rng.random() < 0.5:  # feasible by construction: d(a, a') <= p(a') - p(a)
            p = rng.normal(size=k)
            d = p[None, :] - p[:, None] - rng.exponential(0.3, (k, k))
        else:
            d = rng.normal(size=(k, k)) - 0.8
        np.fill_diagonal(d, 0.0)
        d[~occurs, :] = -np.inf
        cases.append((np.pad(d, ((0, 4 - k), (0, 4 - k)), constant_values=-np.inf), np.pad(occurs, (0, 4 - k)), k))

    def graph(d, occurs):
        d = jnp.asarray(d, jnp.float32)
        return jm.OutcomeGraph(d, jnp.zeros(d.shape, jnp.int32), jnp.asarray(occurs), jnp.zeros((1,), jnp.int32),
                              jnp.zeros((1, d.shape[0]), jnp.float32))  # fmt: skip

    batch = jax.tree.map(lambda *xs: jnp.stack(xs), *[graph(d, o) for d, o, _ in cases])
    certs = jax.tree.map(np.asarray, jax.jit(jax.vmap(jm.solve_graph))(batch))
    one = jm.solve_graph(graph(cases[3][0], cases[3][1]))
    np.testing.assert_allclose(one.max_walk, certs.max_walk[3])  # vmap == single
    for c, (d, occurs, _) in enumerate(cases):
        brute = _brute_max_cycle(d, occurs)
        slack, walk, m = float(certs.slack[c]), float(certs.max_walk[c]), int(certs.cycle_len[c])
        if brute == -np.inf:
            assert m == 0 and slack == -np.inf and bool(certs.feasible[c])
            continue
        cyc = [int(a) for a in certs.cycle[c, : m + 1]]
        assert cyc[0] == cyc[-1] and len(set(cyc[:-1])) == m >= 2  # simple
        np.testing.assert_allclose(slack, sum(d[cyc[j], cyc[j + 1]] for j in range(m)), atol=1e-5)
        assert bool(certs.feasible[c]) == (brute <= 1e-5)
        if brute <= 0:
            np.testing.assert_allclose([slack, walk], [brute, brute], atol=1e-5)
            t = np.asarray(certs.payments[c])
            for a, b in itertools.product(np.flatnonzero(occurs), repeat=2):
                assert t[b] - t[a] >= d[a, b] - 1e-5
        else:
            assert 0 < slack <= brute + 1e-5 and walk >= brute - 1e-5


# ---------------------------------------------------------------- payoff equivalence (CE Lemma 3 / Thm 3)


@pytest.fixture
def x64():
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", False)


def test_payoff_equivalence_recovers_potentials(x64):
    """f = argmax_a x_a + w(a), 4-d signals: eq. (4) payments and the certificate's agree, and both are -w + const."""
    k = 4
    env = jm.project_choice(k=k, n=2, a=0.0)
    w = jnp.asarray([0.1, -0.2, 0.3, 0.0])

    def decide(w, m):
        return jnp.argmax(m[:k] + w).astype(jnp.int32)

    x = jax.random.uniform(jax.random.PRNGKey(0), (400, k), jnp.float64)
    starts, ends = jm.segments(x, key=jax.random.PRNGKey(1), pairs=400)
    profiles = jax.random.uniform(jax.random.PRNGKey(2), (4, 2 * k), jnp.float64)
    pe = jm.payoff_equivalence(env, decide, w, profiles, 0, x, starts, ends)
    assert pe.certified_share == 1.0 and pe.connected_share == 1.0
    assert pe.max_deviation < 1e-6 and pe.max_residual < 1e-6
    for t in pe.boundary_payments:  # the closed form: t = -w up to a constant
        assert np.ptp(t + np.asarray(w)) < 1e-9


@pytest.mark.slow
def test_boundary_payments_break_on_the_cyclic_rule():
    """Not IC: the certificate fails, and its payments disagree with eq. (4)'s (no IC menu exists to agree on)."""
    env = jm.cyclic_allocation()
    grid = jnp.linspace(0.0, 1.0, 101)[:, None]
    pe = jm.payoff_equivalence(env, jm.efficient_rule(env), (), jnp.zeros((2, 2)), 0, grid, *jm.segments(grid))
    assert pe.certified_share == 0.0 and pe.max_deviation > 0.01


def _single_object_linear(s):
    return jnp.stack([s[0] + 0.5 * s[1], s[1] + 0.5 * s[0]])


@pytest.mark.parametrize(
    ("case", "agents"),
    [("single_object", (0,)), pytest.param("single_object", (1,), marks=pytest.mark.slow),
     pytest.param("trade", (0, 1), marks=pytest.mark.slow), pytest.param("public_good", (0, 1), marks=pytest.mark.slow)],
)  # fmt: skip
def test_eq4_and_certificate_payments_are_generalized_vcg(x64, case, agents):
    """On separable environments both CE Thm 3 constructions, z-bar normalized, are the pivot payments (CE Sec. 3.3)."""
    if case == "trade":
        env = jm.bilateral_trade(jm.linear_trade_values(0.5))
        outcomes = jnp.asarray([0.0, 1.0])
    elif case == "public_good":
        env = jm.public_good(jm.linear_public_values(0.5, 2), 1.2, 2)
        outcomes = jnp.asarray([0.0, 1.0])
    else:
        env = jm.single_object((1, 1), _single_object_linear)
        outcomes = jnp.concatenate([jnp.zeros((1, 2)), jnp.eye(2)])
    vcg = jm.generalized_vcg(env)
    grid = jnp.linspace(0.0, 1.0, 33, dtype=jnp.float64)[:, None]
    starts, ends = jm.segments(grid)
    s = jax.random.uniform(jax.random.PRNGKey(3), (12, 2), jnp.float64)
    t_vcg = np.asarray(jax.vmap(lambda m: vcg.pay((), m))(s))
    decide = jm.efficient_rule(env)  # its outcome's row in `outcomes`: the nearest one (exact here)
    q = np.asarray(jax.vmap(lambda m: decide((), m))(s)).reshape(len(s), -1)
    a = np.argmin(((np.asarray(outcomes).reshape(len(outcomes), -1)[None] - q[:, None]) ** 2).sum(-1), axis=1)
    for i in agents:
        pe = jm.payoff_equivalence(env, vcg, (), s, i, grid, starts, ends, outcomes=outcomes)
        assert pe.certified_share == 1.0 and pe.max_deviation < 1e-6
        rows = np.arange(len(s))
        np.testing.assert_allclose(pe.boundary_payments[rows, a], t_vcg[:, i], atol=1e-6)
        np.testing.assert_allclose(pe.cert_payments[rows, a], t_vcg[:, i], atol=1e-6)


# ---------------------------------------------------------------- k = 32 outcomes


def _bellman_ford_positive_cycle(d):
    """Independent reference: longest-path relaxation from a virtual source; a change in round k means a positive cycle."""
    k = len(d)
    dist = np.zeros(k)
    for _ in range(k):
        cand = np.max(dist[:, None] + d, axis=0)
        new = np.maximum(dist, cand)
        if np.all(new <= dist + 1e-9):
            return False, dist
        dist = new
    return True, dist


def test_solve_graph_with_32_outcomes_matches_bellman_ford():
    k, rng = 32, np.random.default_rng(11)
    graphs, kinds = [], []
    for c in range(24):
        p = rng.normal(size=k)
        d = p[None, :] - p[:, None] - rng.exponential(0.5, (k, k))  # feasible: t = p
        if c % 2:  # plant a positive cycle through a random subset
            cyc = rng.permutation(k)[: int(rng.integers(2, 8))]
            for a, b in zip(cyc, np.roll(cyc, -1), strict=True):
                d[a, b] = p[b] - p[a] + 0.05
        np.fill_diagonal(d, 0.0)
        graphs.append(d)
        kinds.append(c % 2 == 1)
    batch = jm.OutcomeGraph(
        jnp.asarray(np.stack(graphs), jnp.float32), jnp.zeros((24, k, k), jnp.int32), jnp.ones((24, k), bool),
        jnp.zeros((24, 1), jnp.int32), jnp.zeros((24, 1, k), jnp.float32),
    )  # fmt: skip
    certs = jax.tree.map(np.asarray, jax.jit(jax.vmap(jm.solve_graph))(batch))
    for c, d in enumerate(graphs):
        np.fill_diagonal(d, -np.inf)
        positive, _ = _bellman_ford_positive_cycle(d)
        assert positive == kinds[c] == (not certs.feasible[c])
        m = int(certs.cycle_len[c])
        if positive:
            cyc = certs.cycle[c, : m + 1]
            assert cyc[0] == cyc[-1] and len(set(cyc[:-1].tolist())) == m
            np.testing.assert_allclose(certs.slack[c], sum(d[cyc[j], cyc[j + 1]] for j in range(m)), atol=1e-4)
            assert certs.slack[c] > 0
        else:
            t = certs.payments[c]
            off = ~np.eye(k, dtype=bool)
            assert np.all((t[None, :] - t[:, None] - d)[off] >= -1e-4)


# ---------------------------------------------------------------- the certify experiment, end to end


def _run_config(tmp_path, name, *overrides):
    metrics = run_config(Path(__file__).resolve().parents[1] / "configs" / f"{name}.toml", tmp_path / name, *overrides)
    assert metrics["experiment"] == "certify"
    for f in metrics["plots"]:
        assert (tmp_path / name / f).stat().st_size > 1000
    return metrics


@pytest.mark.slow
def test_certify_experiment_cyclic(tmp_path):
    """configs/ce_thm1_cyclic.toml: the cycle zero -> two -> zero with slack 2 at s_1 = 0 (closed form:
    v_0(two, 1) - v_0(zero, 1) = 2, v_0(zero, 0) - v_0(two, 0) = 0), and a witness gains >= slack / 2."""
    import importlib.util
    from pathlib import Path

    m = _run_config(tmp_path, "ce_thm1_cyclic", "experiment.profiles=4", "experiment.points=51")
    a0, a1 = m["agents"]
    assert a0["certified_share"] == 0.0 and a1["certified_share"] == 1.0
    assert a0["worst_cycle"] in (["zero", "two", "zero"], ["two", "zero", "two"])
    np.testing.assert_allclose(a0["worst_slack"], 2.0, atol=1e-5)
    assert a0["witness_regret"]["max_gain"] >= a0["witness_regret"]["lower_bound"] - 1e-5 > 0
    path = Path(__file__).resolve().parents[1] / "experiments" / "ce_characterization.py"
    spec = importlib.util.spec_from_file_location("ce_characterization", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.EXPERIMENTS["ce_thm1_cyclic"].claims(m)
    assert rows and all(r.status == "PASS" for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["ce_thm1_projects", "ce_thm1_affine", "ce_thm3_payoff_equivalence", "ce_thm2_envelope"]
)
def test_certify_experiments_pass_their_claims(tmp_path, name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "ce_characterization.py"
    spec = importlib.util.spec_from_file_location("ce_characterization", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    exp = mod.EXPERIMENTS[name]
    m = _run_config(tmp_path, name, *exp.quick)
    assert all(r.status in ("PASS", "INFO", "MEASURE") for r in exp.claims(m))
