"""CE Sec. 4.3's double auction: iterated ex post weak dominance on grids against hand work, brute force and CE's claims.

The elimination's steps (models/double_auction.py) are internals of jm.solve_double_auction, checked one at a time.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmech as jm
from jaxmech._src.models import double_auction as da

N_S, N_B = 21, 41


def linear(a):
    """CE Sec. 4.4: ``v_beta = s_beta + a s_sigma``, ``v_sigma = s_sigma + a s_beta``."""

    def values(s):
        return jnp.stack([s[0] + a * s[1], s[1] + a * s[0]])

    return values


def multiplicative(s):
    """``v_beta = s_b + 0.3 s_s + 0.4 s_b s_s``, ``v_sigma = 0.1 + s_s + 0.3 s_b``: strong single crossing, boundary ties."""
    return jnp.stack([s[0] + 0.3 * s[1] + 0.4 * s[0] * s[1], 0.1 + s[1] + 0.3 * s[0]])


FAMILIES = {"private": linear(0.0), "linear_a0.5": linear(0.5), "multiplicative": multiplicative}


@pytest.fixture(scope="module")
def solved():
    # module fixtures run outside conftest's per-test strict promotion: apply it here too (it is part of jit's cache key)
    with jax.numpy_rank_promotion("raise"), jax.numpy_dtype_promotion("strict"):
        return {name: jm.solve_double_auction(f, N_S, N_B) for name, f in FAMILIES.items()}


def _np(r):
    return jax.tree.map(np.asarray, r)


# --------------------------------------------------------------------------
# hand-checkable cases


def test_hand_private_values():
    """a = 0, signals {0, 1}, bids {-1, 0, 1, 2}: values are v_beta = s_beta, v_sigma = s_sigma.

    Round 1, payoff vectors against the demands y = (-1, 0, 1, 2) (any seller type):
      buyer v=0:  x=-1 (1,0,0,0)  x=0 (1,0,0,0)  x=1 (1,0,-1,0)  x=2 (1,0,-1,-2)  -> keeps {-1, 0}
      buyer v=1:  x=-1 (2,0,0,0)  x=0 (2,1,0,0)  x=1 (2,1,0,0)   x=2 (2,1,0,-1)   -> keeps {0, 1}
    and against the offers x = (-1, 0, 1, 2):
      seller c=0: y=-1 (-1,0,1,2) y=0 (0,0,1,2)  y=1 (0,0,1,2)   y=2 (0,0,0,2)    -> keeps {0, 1}
      seller c=1: y=-1 (-2,-1,0,1) y=0 (0,-1,0,1) y=1 (0,0,0,1)  y=2 (0,0,0,1)    -> keeps {1, 2}
    Round 2: each pair of survivors differs only where the payoff is v - y = 0 or x - c = 0: nothing goes.
    Selected profile: offers (0, 1), demands (0, 1); trade at (0,0), (1,0), (1,1) with deficits 0, 1, 0.
    VCG: trade only at (1, 0) (ties do not trade), g_beta(0) = 0, g_sigma(1) = 1, deficit v_sigma(1,1) - v_beta(0,0) = 1.
    """
    r = _np(jm.solve_double_auction(linear(0.0), 2, bids=np.array([-1.0, 0.0, 1.0, 2.0])))
    np.testing.assert_array_equal(r.alive[0], [[1, 1, 0, 0], [0, 1, 1, 0]])
    np.testing.assert_array_equal(r.alive[1], [[0, 1, 1, 0], [0, 0, 1, 1]])
    assert int(r.rounds) == 1 and int(r.guarded) == 0
    np.testing.assert_allclose(r.selected, [[0, 1], [0, 1]])
    np.testing.assert_array_equal(r.trade, [[1, 0], [1, 1]])
    np.testing.assert_allclose([r.mean_deficit, r.vcg_mean_deficit, r.min_deficit], [0.25, 0.25, 0.0], atol=1e-6)
    np.testing.assert_allclose(r.predicted, [[0, 1], [0, 1]], atol=1e-6)
    assert float(r.efficient_share) == 1.0
    np.testing.assert_allclose(r.equilibrium_gain_worst, 0.0, atol=1e-6)


def test_hand_interdependent_two_rounds():
    """a = 0.5, signals {0, 1}, bids {.25, .75, 1.25}.

    v_beta(s_b, s_s) = s_b + s_s / 2:  buyer 0 -> (0, .5), buyer 1 -> (1, 1.5) against seller 0, 1.
    v_sigma(s_b, s_s) = s_s + s_b / 2: seller 0 -> (0, .5), seller 1 -> (1, 1.5) against buyer 0, 1.

    Round 1 (against all opponent bids; a vector lists opponent type 0's bids, then type 1's):
      buyer 0:  x=.25 (-.25,0,0 | .25,0,0)  x=.75 (-.25,-.75,0 | .25,-.25,0)  x=1.25 (.., -1.25 | .., -.75)
                 .25 dominates .75 dominates 1.25                                     -> keeps {.25}
      buyer 1:  x=.25 (.75,0,0 | 1.25,0,0)  x=.75 (.75,.25,0 | 1.25,.75,0)  x=1.25 (.75,.25,-.25 | 1.25,.75,.25)
                 .75 dominates .25; .75 vs 1.25 cross at y=1.25 (-.25 vs +.25)         -> keeps {.75, 1.25}
      seller 0: y=.25 (.25,.75,1.25 | -.25,.25,.75)  y=.75 (0,.75,1.25 | 0,.25,.75)  y=1.25 (0,0,1.25 | 0,0,.75)
                 .75 dominates 1.25; .25 vs .75 cross at x=.25 (+.25 vs -.25)          -> keeps {.25, .75}
      seller 1: y=.25 (-.75,-.25,.25 | -1.25,-.75,-.25)  y=.75 (0,-.25,.25 | 0,-.75,-.25)  y=1.25 (0,0,.25 | 0,0,-.25)
                 1.25 dominates .75 dominates .25                                       -> keeps {1.25}
    Round 2: buyer 1's .75 and 1.25 differ only against y = 1.25, now demanded only by seller 1, where
      v_beta(1, 1) - 1.25 = .25 > 0: 1.25 dominates. Seller 0's .25 and .75 differ only against x = .25,
      now offered only by buyer 0, where .25 - v_sigma(0, 0) = .25 > 0: .25 dominates.
    Round 3: one bid per type, nothing to do. So 2 rounds, offers (.25, 1.25), demands (.25, 1.25).
    Outcome: trade at (0,0) (tie), (1,0) (gain .5), (1,1) (tie); no trade at (0,1) (loss .5): efficient.
    Deficits 0, 1, 0 -> mean .25. VCG (continuum pivots g_beta(0) = 0, g_sigma(1) = 1): only (1,0) trades
    strictly, deficit v_sigma(1, 1) - v_beta(0, 0) = 1.5 -> mean .375. phi = 1.5 s on both sides.
    """
    r = _np(jm.solve_double_auction(linear(0.5), 2, bids=np.array([0.25, 0.75, 1.25])))
    np.testing.assert_array_equal(r.alive[0], [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(r.alive[1], [[1, 0, 0], [0, 0, 1]])
    assert int(r.rounds) == 2 and int(r.guarded) == 0
    np.testing.assert_array_equal(r.trade, [[1, 0], [1, 1]])
    np.testing.assert_allclose([r.mean_deficit, r.vcg_mean_deficit], [0.25, 0.375], atol=1e-6)
    np.testing.assert_allclose(r.predicted, [[0, 1.5], [0, 1.5]], atol=1e-6)
    np.testing.assert_allclose(r.phi_gap, [0.25, 0.25], atol=1e-6)
    assert float(r.efficient_share) == 1.0


def test_round_one_by_hand():
    """After one round against all bids, the buyer keeps ~[v_beta(s_b, 0), v_beta(s_b, 1)].

    Offers differ only against demands y in (x, x'], where the higher offer gains v_beta(s) - y.
    So x' dominates x iff x' <= v_beta(s_b, 0) (the lowest value; strict as v_beta increases in
    s_sigma), and x dominates x' iff the next bid above x is >= v_beta(s_b, 1). Survivors: from the
    last bid <= v_beta(s_b, 0) to the last bid < v_beta(s_b, 1) (a bid equal to it is dominated by the
    one below: they differ only where the payoff is <= 0, and < 0 at some seller type).
    """

    @jax.jit
    def first_round(signals):
        v = da.grid_values(multiplicative, signals)
        bids = da.default_bids(v, 25)
        (t_b, w_b), _ = da.trade_factors(v, bids)
        full = jnp.ones((signals.shape[0], 25), bool)
        return v, bids, da.dominated(t_b, w_b, full, full, jnp.asarray(1e-6))

    v, b, drop = (np.asarray(a) for a in first_round(jnp.linspace(0.0, 1.0, 6)))
    for i in range(6):
        lo, hi = v[i, :, 0].min(), v[i, :, 0].max()
        kept = b[~drop[i]]
        assert kept.min() == b[b <= lo + 1e-6].max()
        assert kept.max() == b[b < hi - 1e-6].max()
        np.testing.assert_array_equal(~drop[i], (b >= kept.min()) & (b <= kept.max()))


# --------------------------------------------------------------------------
# against a brute-force reading of the definition


def reference_elimination(v, bids, tol):
    """Iterated elimination by loops over types and bid pairs, with payoffs built entry by entry."""
    n_s, n_b = v.shape[0], bids.size
    u = [np.zeros((n_s, n_b, n_s, n_b)), np.zeros((n_s, n_b, n_s, n_b))]
    for i in range(n_s):
        for j in range(n_s):
            for x in range(n_b):
                for y in range(n_b):
                    if bids[x] >= bids[y]:
                        u[0][i, x, j, y] = v[i, j, 0] - bids[y]  # buyer i offers x, seller j demands y
                        u[1][j, y, i, x] = bids[x] - v[i, j, 1]
    alive = [np.ones((n_s, n_b), bool), np.ones((n_s, n_b), bool)]
    rounds = 0
    while True:
        drops = []
        for agent in (0, 1):
            own, opp = alive[agent], alive[1 - agent]
            drop = np.zeros_like(own)
            for s in range(n_s):
                for x in np.flatnonzero(own[s]):
                    for x2 in np.flatnonzero(own[s]):
                        d = (u[agent][s, x2] - u[agent][s, x])[opp]
                        if d.min() >= -tol and d.max() > tol:
                            drop[s, x] = True
                            break
            assert not np.any(np.all(drop | ~own, axis=1)), "a type lost every bid"
            drops.append(drop)
        if not (drops[0].any() or drops[1].any()):
            return alive[0], alive[1], rounds
        alive = [alive[0] & ~drops[0], alive[1] & ~drops[1]]
        rounds += 1


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_elimination_matches_brute_force(seed, ties):
    """Random (not even monotone) value grids; with ``ties`` values and bids are halves, so payoffs tie exactly."""
    rng = np.random.default_rng(seed)
    n_s, n_b = 4, 7
    if ties:
        v = rng.integers(0, 5, (n_s, n_s, 2)) / 2.0
        bids = np.arange(-1, n_b - 1) / 2.0
    else:
        v = rng.uniform(0.0, 1.0, (n_s, n_s, 2))
        bids = np.sort(rng.uniform(-0.1, 1.1, n_b))
    tol = 1e-6
    ref_b, ref_s, ref_rounds = reference_elimination(v, bids, tol)
    alive_b, alive_s, rounds, guarded = da.eliminate(
        jnp.asarray(v, jnp.float32), jnp.asarray(bids, jnp.float32), jnp.asarray(tol, jnp.float32)
    )
    np.testing.assert_array_equal(alive_b, ref_b)
    np.testing.assert_array_equal(alive_s, ref_s)
    assert int(rounds) == ref_rounds and int(guarded) == 0


def test_no_retrace_across_value_models(solved):
    """The elimination and the checks compile once per grid shape, not per value model."""
    sizes = da.eliminate._cache_size(), da.assess._cache_size()
    r = jm.solve_double_auction(linear(0.25), N_S, N_B)
    assert (da.eliminate._cache_size(), da.assess._cache_size()) == sizes
    assert int(r.rounds) >= 1


# --------------------------------------------------------------------------
# CE Sec. 4.3's claims on the 21 x 41 grids


def _value_step(r):
    """Largest change of phi between adjacent signal grid points, per agent."""
    return np.max(np.abs(np.diff(np.asarray(r.predicted), axis=1)), axis=1)


@pytest.mark.parametrize("name", FAMILIES)
def test_elimination_terminates_keeping_a_bid(solved, name):
    r = _np(solved[name])
    assert r.alive.shape == (2, N_S, N_B)
    assert np.all(r.alive.any(axis=2)), "every type keeps a bid"
    assert int(r.guarded) == 0
    assert 1 <= int(r.rounds) <= 2 * N_S * N_B
    if name == "private":
        # dominant strategies: one round, the survivors are the bids bracketing the own value
        assert int(r.rounds) == 1


@pytest.mark.parametrize("name", FAMILIES)
def test_survivors_near_predicted_bids(solved, name):
    """The survivors reach phi within one bid step plus the spacing of the opponent's bids.

    With private values the survivors bracket v, so one bid step. With interdependent values
    an offer is pinned down only between two consecutive demands of the (discrete) seller
    types, ~ one signal step of value, however fine the bid grid: CE's continuum statement
    holds on the grid up to a bid step plus a value step, not one bid step.
    """
    r = solved[name]
    step = r.bid_step
    opp = _value_step(r)[::-1]
    gap = np.asarray(r.phi_gap)
    if name == "private":
        assert np.all(gap <= step + 1e-6)
    assert np.all(gap <= step + opp + 1e-6), (gap, step, opp)
    # types whose tie is interior: every surviving bid is that close to phi
    ties = np.asarray(r.ties)
    interior = (ties > 0) & (ties < 1)
    bids = np.asarray(r.bids)
    for agent in (0, 1):
        alive = np.asarray(r.alive[agent])[interior[agent]]
        phi = np.asarray(r.predicted[agent])[interior[agent]]
        dist = np.where(alive, np.abs(bids[None] - phi[:, None]), 0.0)
        assert dist.max() <= step + opp[agent] + 1e-6


@pytest.mark.parametrize("name", FAMILIES)
def test_outcome_is_efficient_up_to_grid(solved, name):
    r = _np(solved[name])
    assert r.efficient_share >= 1.0 - 1.0 / N_S
    assert r.efficient_share_all >= 1.0 - 1.0 / N_S
    # inefficient profiles lie next to the tie curve: within one signal step of value difference
    gap = r.value_grid[..., 0] - r.value_grid[..., 1]
    step = max(np.abs(np.diff(gap, axis=0)).max(), np.abs(np.diff(gap, axis=1)).max())
    assert r.inefficiency_gap <= step + 1e-6
    if name == "private":
        assert r.efficient_share == 1.0


@pytest.mark.parametrize("name", FAMILIES)
def test_survivors_are_an_ex_post_equilibrium(solved, name):
    r = solved[name]
    assert np.all(np.asarray(r.equilibrium_gain) <= r.bid_step)
    assert np.all(np.asarray(r.equilibrium_gain_worst) <= r.bid_step)
    # on these grids the gains are exactly zero (bids at most ~2 per signal step of value)
    np.testing.assert_allclose(r.equilibrium_gain_worst, 0.0, atol=float(r.tol))


@pytest.mark.parametrize("name", FAMILIES)
def test_budget_runs_a_deficit_close_to_vcg(solved, name):
    """Deficit x - y >= 0 in every trading profile (CE Lemma 4's sign), mean within 2 bid steps of the VCG deficit."""
    r = solved[name]
    assert float(r.min_deficit) >= -float(r.tol)
    assert float(r.mean_deficit) > 0
    assert abs(float(r.mean_deficit) - float(r.vcg_mean_deficit)) <= 2 * r.bid_step
    assert float(r.mean_deficit_low) <= float(r.mean_deficit) + 1e-6


@pytest.mark.parametrize("a", [0.0, 0.5])
def test_linear_payments_are_vcg(solved, a):
    """Linear family: in trading profiles, offer and demand are (1 + a) s within the survivor tolerance,
    so the deficit is CE's generalized VCG deficit (1 + a)(s_beta - s_sigma) up to the grid."""
    r = solved["private" if a == 0.0 else "linear_a0.5"]
    s = np.asarray(r.signals)
    x, y = np.asarray(r.selected)
    trade = np.asarray(r.trade)
    bound = r.bid_step + (1 + a) * (s[1] - s[0])
    assert np.all(np.abs(x - (1 + a) * s) <= bound)
    assert np.all(np.abs(y - (1 + a) * s) <= bound)
    deficit = (x[:, None] - y[None, :])[trade]
    vcg = ((1 + a) * (s[:, None] - s[None, :]))[trade]
    assert np.all(np.abs(deficit - vcg) <= 2 * bound)


def test_multiplicative_boundary_types_keep_many_offers(solved):
    """Buyers who trade with every seller (v_beta > v_sigma at s_sigma = 1, i.e. s_beta > 8/11) keep a range of
    payoff-equivalent offers above the top surviving demand (~phi_sigma(1) = 1.1 + 0.3 * 8/11) up to v_beta(s_beta, 1).
    The selected (highest) offer is phi_beta = v_beta(s_beta, 1), above the VCG price v_sigma(s_beta, 1):
    the continuum excess is int_{8/11}^1 (1.1 s - 0.8) ds = 0.041 in the mean deficit."""
    r = _np(solved["multiplicative"])
    s = r.signals
    top = s > 8 / 11 + 1e-6
    lo = np.where(r.alive[0], r.bids[None], np.inf).min(axis=1)
    hi = np.where(r.alive[0], r.bids[None], -np.inf).max(axis=1)
    step = r.bids[1] - r.bids[0]
    assert hi[-1] - lo[-1] > 2 * step
    assert np.all(np.diff(hi[top] - lo[top]) >= 0)
    top_demand = np.where(r.alive[1], r.bids[None], -np.inf).max()
    assert np.all(lo[top] >= top_demand - 1e-6), "every surviving offer trades with every seller type"
    np.testing.assert_allclose(hi[top], 1.4 * s[top] + 0.3, atol=step)
    assert r.mean_deficit > r.vcg_mean_deficit > r.mean_deficit_low - (r.bids[1] - r.bids[0])


# --------------------------------------------------------------------------
# API


def test_metrics_are_json_ready(solved):
    m = da.result_to_metrics(solved["multiplicative"])
    text = json.dumps(m)
    back = json.loads(text)
    assert back["n_signals"] == N_S and back["n_bids"] == N_B
    assert len(back["buyer"]["selected"]) == N_S and len(back["seller"]["predicted"]) == N_S
    for k in ("rounds", "efficient_share", "inefficiency_gap", "mean_deficit", "min_deficit", "vcg_mean_deficit"):
        assert k in back


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_signals": 1}, "n_signals"),
        ({"n_bids": 3}, "n_bids"),
        ({"bids": np.array([0.0, 0.0, 1.0])}, "bids"),
        ({"tol": -1.0}, "tol"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jm.solve_double_auction(linear(0.5), **kwargs)


def test_values_must_return_two():
    with pytest.raises(ValueError, match="shape"):
        jm.solve_double_auction(lambda s: s[:1], 3, 5)


def test_deficit_interval_closed_form_and_auction_inside(solved):
    """The efficient rule on the 21-point grid (v = s_i + a s_-i, a = 0.5; trade iff s_beta > s_sigma): D_max =
    (1 + a)(n + 1) / (6n) (each agent pays its value at the last non-trading grid type: the continuum-pivot VCG
    deficit), D_min = D_max - 1/n (first trading grid type); the auction's deficit inside both its own interval and
    this one."""
    r = _np(solved["linear_a0.5"])
    d_max = 1.5 * (N_S + 1) / (6 * N_S)
    np.testing.assert_allclose(r.deficit_interval, [d_max - 1 / N_S, d_max], atol=1e-6)
    np.testing.assert_allclose(r.vcg_mean_deficit, d_max, atol=1e-6)
    for lo, hi in (r.deficit_interval, r.auction_deficit_interval):
        assert lo - 1e-6 <= r.mean_deficit_low <= r.mean_deficit <= hi + 1e-6


def test_deficit_interval_by_hand():
    """Two signals, private values (v_beta = s_beta, v_sigma = s_sigma), trade only at (1, 0): the buyer pays in
    [v_beta(0, 0), v_beta(1, 0)] = [0, 1], the seller receives in [v_sigma(1, 0), v_sigma(1, 1)] = [0, 1], so the
    deficit at (1, 0) lies in [-1, 1] and its mean in [-1/4, 1/4]. Trading at every buyer type against seller 0
    leaves the buyer's payment unbounded below (D_max = inf); a non-monotone rule has no IC payments (NaN)."""
    v = da.grid_values(linear(0.0), jnp.array([0.0, 1.0]))
    trade = jnp.array([[False, False], [True, False]])
    np.testing.assert_allclose(da.deficit_interval(v, trade), [-0.25, 0.25])
    np.testing.assert_allclose(jax.jit(da.deficit_interval)(v, trade), [-0.25, 0.25])
    every = da.deficit_interval(v, jnp.array([[True, False], [True, False]]))
    assert np.isfinite(every[0]) and every[1] == np.inf
    assert np.all(np.isnan(da.deficit_interval(v, jnp.array([[True, False], [False, False]]))))
