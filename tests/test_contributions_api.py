"""CE Sec. 5.3's contingent-contribution scheme through the public API (jm.check_equilibrium)."""

import jax

import jaxmech as jm


def test_contribution_scheme_is_public_and_implements_the_threshold_rule():
    values = jm.linear_public_values(0.3, 2)
    res = jm.check_equilibrium(values, (0.5, 0.5), n_types=21, n_grid=11, n_random=16, key=jax.random.PRNGKey(0))
    assert isinstance(res, jm.ContributionResult) and isinstance(res.strategies, jm.Strategies)
    assert float(res.strict_share) == 1.0  # off the rule's boundary the scheme produces exactly f(s)
    assert max(float(g) for g in res.gain) <= float(res.tol)  # an ex post equilibrium on the deviation set
    assert float(res.budget_margin) >= -float(res.tol)  # d_1 + d_2 >= c wherever produced (CE Thm 9)
    s = jm.contribution_strategies(values, (0.5, 0.5), res.signals)
    assert s.d.shape == (2, 21)
