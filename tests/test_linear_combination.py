"""Report fields a user needs (issue 23 item 3): revenue, total utility and paired statistics of any linear
combination of per-profile quantities, checked against closed forms (CE Sec. 4.4, uniform signals)."""

from __future__ import annotations

import math

import jax
import pytest

import jaxmech as jm

A = 0.5
N = 50_000


@pytest.fixture(scope="module")
def report():
    env = jm.bilateral_trade(jm.linear_trade_values(A))
    return jm.audit(env, jm.generalized_vcg(env), jm.independent(env.dims), key=jax.random.PRNGKey(3), n_profiles=N).report


def test_revenue_is_minus_the_deficit(report):
    d, r = report["deficit"], report["revenue"]
    assert r["mean"] == -d["mean"] and r["se"] == d["se"]
    assert r["min"] == -d["max"] and r["max"] == -d["min"]
    assert abs(r["mean"] + (1 + A) / 6) <= 4 * r["se"]  # E[deficit] = (1 + a) / 6


def test_total_utility_has_the_exact_paired_standard_error(report):
    """u_beta = u_sigma = X = (s_beta - s_sigma)^+ profile by profile (generalized VCG, linear values), so
    total utility is 2X: mean 1/3, per-profile variance 4 Var X = 4 (1/12 - 1/36) = 2/9."""
    tot = report["total_utility"]
    assert abs(tot["mean"] - 1 / 3) <= 4 * tot["se"]
    assert tot["se"] == pytest.approx(math.sqrt(2 / 9 / N), rel=0.02)
    parts = report["utility"][0]["se"] + report["utility"][1]["se"]
    # perfectly correlated parts: the paired SE equals the sum here, up to the rounding of two separately reduced
    # sums (a relative 3e-8 was seen on a fresh 2-core CI install)
    assert tot["se"] <= parts * (1 + 1e-6)


def test_paired_differences_and_identities(report):
    diff = jm.linear_combination(report, {"utility.buyer": 1.0, "utility.seller": -1.0})
    assert abs(diff["mean"]) < 1e-6 and diff["se"] < 1e-6  # equal utilities profile by profile: SE 0, not sum of SEs
    # welfare + deficit = sum of utilities in every state (u_i = v_i - t_i): zero with zero paired error
    ident = jm.linear_combination(
        report, {"welfare": 1.0, "deficit": 1.0, "utility.buyer": -1.0, "utility.seller": -1.0}
    )
    assert abs(ident["mean"]) < 1e-6 and ident["se"] < 1e-6
    w = jm.linear_combination(report, {"welfare": 1.0})
    assert w["mean"] == pytest.approx(report["welfare"]["mean"], abs=1e-9)
    assert w["se"] == pytest.approx(report["welfare"]["se"], rel=1e-6)


def test_unknown_quantity_is_named(report):
    with pytest.raises(ValueError, match=r"unknown quantities \['utility.auctioneer'\]"):
        jm.linear_combination(report, {"utility.auctioneer": 1.0})
