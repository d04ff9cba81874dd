"""Chung & Ely (2007) Sections 4 (bilateral trade) and 5 (public goods): one claims function per config.

Registered in ``EXPERIMENTS`` for ``jaxmech reproduce`` (which runs configs/<name>.toml and turns its
metrics into report rows). Run only this paper's sections with

    python experiments/chung_ely.py [--quick] [--only PATTERN] [--out DIR]
"""

from __future__ import annotations

from jaxmech._src.app.reproduce import Claim, Experiment, check, info, main_for, pm

# --quick: CI sizes (the whole paper in a few minutes on 2 cores); SEs grow, every check still applies.
QUICK = ("audit.profiles=10000", "audit.misreports.grid=16")
QUICK_SEARCH = QUICK + ("search.grid_profiles=16384", "search.grid_points=21")
FULL = ("audit.profiles=100000000",)


def _regret_max(audit: dict) -> float:
    return max(r["max"] for r in audit["regret"])


def efficient_trade(m: dict) -> list[Claim]:
    """The main job, configs/bilateral_trade.toml: v_i = s_i + a s_-i, a = 0.5, uniform signals (CE Sec 4, eqs. (5)-(6))."""
    a = m["audit"]
    p, d, w = a["outcomes"]["trade"], a["deficit"], a["welfare"]
    within = lambda x, ref, se: abs(x - ref) <= 4 * se + 1e-6  # noqa: E731
    return [
        check(
            "CE Sec 4",
            "efficient trade with generalized VCG payments is ex post IC and IR",
            f"regret max {_regret_max(a):.2g}, IR violation max {max(r['max'] for r in a['ir_violation']):.2g}",
            f"0 (<= tol = {a['tol']:.2g}); grid + random + kink misreports",
            _regret_max(a) <= a["tol"] and max(r["max"] for r in a["ir_violation"]) <= a["tol"],
        ),
        check(
            "CE Sec 4",
            "P(trade)",
            f"{p['p']:.4f} ± {p['se']:.4f}",
            "1/2 (closed form; 4 SE)",
            within(p["p"], 0.5, p["se"]),
        ),
        check(
            "CE Sec 4.4",
            "expected deficit",
            pm(d),
            "(1+a)/6 = 0.25 (closed form; 4 SE)",
            within(d["mean"], 0.25, d["se"]),
        ),
        check(
            "CE Sec 4",
            "expected gains from trade",
            pm(w),
            "(1-a)/6 = 0.0833 (closed form: E[(1-a)(s_b - s_s)^+]; 4 SE)",
            within(w["mean"], 0.5 / 6, w["se"]),
        ),
    ]


def thm2(m: dict) -> list[Claim]:
    out = []
    for r in m["sweep"]["rows"]:
        mono = not r["case"].startswith("NOT")
        claim = "monotone rule + envelope payments is ex post IC" if mono else "non-monotone rule is not ex post IC"
        out.append(
            check(
                "CE Thm 2",
                f"{claim} ({r['case']})",
                f"regret max {r['regret_max']:.3g}",
                "0 (<= 1e-4) for monotone rules, > 1e-4 otherwise; regret from grid + random + kink misreports",
                (r["regret_max"] <= 1e-4) == mono,
            )
        )
    return out


def thm5(m: dict) -> list[Claim]:
    return [
        check(
            "CE Thm 5 / Lemma 4",
            f"efficient ex post IC + IR trade runs a deficit ({r['case']})",
            f"deficit {pm(r['deficit'])}, min {r['deficit']['min']:.2g}",
            "deficit >= 0 in every state and 95% CI of the mean above 0",
            r["deficit"]["min"] >= -1e-5 and r["deficit"]["ci95"][0] > 0,
        )
        for r in m["sweep"]["rows"]
    ]


def sec44(m: dict) -> list[Claim]:
    return [
        check(
            "CE Sec 4.4",
            f"expected deficit of the efficient mechanism, a = {r['value']:g}",
            pm(r["deficit"]),
            f"(1+a)/6 = {r['deficit_closed_form']:.4f} (closed form, uniform signals; within 4 SE)",
            abs(r["deficit"]["mean"] - r["deficit_closed_form"]) <= 4 * r["deficit"]["se"] + 1e-6,
        )
        for r in m["sweep"]["rows"]
    ]


def _dominance(source: str):
    def claims(m: dict) -> list[Claim]:
        c = m["comparison"]
        return [
            check(
                source,
                f"{c['baseline']} has a deficit <= {r['mechanism']} in every state",
                f"paired diff {pm(r['minus_baseline'])}, min {r['minus_baseline']['min']:.2g}",
                f"min over sampled states >= -{c['tol']:g} (same profiles, paired)",
                r["minus_baseline"]["min"] >= -c["tol"],
            )
            for r in c["mechanisms"][1:]
        ]

    return claims


def cor1(m: dict) -> list[Claim]:
    ex = max(r["p_above_tol"]["p"] for r in m["interim_audit"]["regret"])
    bi = max(r["max_interim_regret"] for r in m["interim_bayesian"]["agents"])
    mb = m["comparison"]["mechanisms"][1]["minus_baseline"]
    d = m["comparison"]["mechanisms"][0]["deficit"]
    return [
        check(
            "CE Cor 1", "interim-payment mechanism is not ex post IC", f"P(regret > tol) = {ex:.3f}", "> 0.5", ex > 0.5
        ),
        check(
            "CE Cor 1",
            "interim-payment mechanism is Bayesian IC",
            f"max interim regret {bi:.2g}",
            "<= 1e-3 (nested quadrature over s_-i)",
            bi <= 1e-3,
        ),
        check(
            "CE Cor 1",
            "same expected deficit as the ex post mechanism",
            f"paired diff {pm(mb)}",
            "0 within 4 SE",
            abs(mb["mean"]) <= 4 * mb["se"],
        ),
        check("CE Cor 1", "expected deficit > 0", pm(d), "95% CI above 0", d["ci95"][0] > 0),
    ]


def thm8(m: dict) -> list[Claim]:
    out = []
    for r in m["sweep"]["rows"]:
        d, cls = r["deficit"], r["conditions"]["difference_class"]
        if "equal shares" in r["case"] and cls != "common":
            out.append(
                check(
                    "CE Thm 8",
                    f"equal shares are IC only with common values ({r['case']})",
                    f"regret max {r['regret_max']:.3g}",
                    "> 1e-3",
                    r["regret_max"] > 1e-3,
                )
            )
        elif cls == "increasing":
            out.append(
                check(
                    "CE Thm 8(1)",
                    f"increasing differences: a deficit in some state ({r['case']})",
                    f"deficit max {d['max']:.4f}, P(> tol) {r['p_deficit_above_tol']['p']:.3f}",
                    "max > 1e-3",
                    d["max"] > 1e-3,
                )
            )
        elif cls == "decreasing":
            out.append(
                check(
                    "CE Thm 8(2)",
                    f"decreasing differences: budget balanced ({r['case']})",
                    f"deficit max {d['max']:.2g}, mean {pm(d)}",
                    "max <= 1e-5",
                    d["max"] <= 1e-5,
                )
            )
        elif "equal shares" in r["case"]:
            out.append(
                check(
                    "CE Thm 8(3)",
                    f"common values: exactly balanced ({r['case']})",
                    f"deficit in [{d['min']:.2g}, {d['max']:.2g}], regret max {r['regret_max']:.2g}",
                    "|deficit| <= 1e-5 and regret <= 1e-5",
                    abs(d["max"]) <= 1e-5 and abs(d["min"]) <= 1e-5 and r["regret_max"] <= 1e-5,
                )
            )
        else:  # common values with generalized VCG payments: balanced, but not exactly
            ok = d["max"] <= 1e-5 and d["min"] < -1e-3
            out.append(
                info(
                    "CE Thm 8(3)",
                    f"text: common values give exact balance; generalized VCG payments do not ({r['case']})",
                    f"deficit in [{d['min']:.3f}, {d['max']:.2g}] ({'as found' if ok else 'NOT as found before'})",
                    "exact balance needs equal cost shares c/n (row above), not VCG payments",
                )
            )
    return out


def thm9(m: dict) -> list[Claim]:
    s, g, a, name = m["search"], m["grid"], m["audit"], m["name"]
    return [
        check(
            "CE Thm 9",
            f"search lands on the budget line sum vbar = c ({name})",
            f"gap {s['sum_minus_cost_found']:+.1e}",
            "|gap| < 0.01",
            abs(s["sum_minus_cost_found"]) < 0.01,
        ),
        check(
            "CE Thm 9",
            f"searched threshold rule reaches the best budget-line welfare ({name})",
            pm(s["welfare"]),
            f"grid over the budget line: {pm(g['best_welfare'])} (within 2 SE)",
            s["welfare"]["mean"] >= g["best_welfare"]["mean"] - 2 * g["best_welfare"]["se"],
        ),
        check(
            "CE Thm 9",
            f"exact audit: budget balanced and ex post IC ({name})",
            f"deficit max {a['deficit']['max']:.2g}, regret max {_regret_max(a):.2g}",
            f"both <= tol = {a['tol']:g}",
            a["deficit"]["max"] <= a["tol"] and _regret_max(a) <= a["tol"],
        ),
    ]


def richer(m: dict) -> list[Claim]:
    d = m["threshold_rules"]["search_minus_best"]
    return [
        check(
            "CE Thm 9",
            "a richer monotone family does not beat threshold rules",
            f"paired diff {pm(d)}",
            "<= 2 SE above 0",
            d["mean"] <= 2 * d["se"],
        )
    ]


def second_best(m: dict) -> list[Claim]:
    tp, sr, a, name = m["two_price_rules"], m["search"], m["audit"], m["name"]
    out = [
        check(
            "CE Sec 5 / Thm 7",
            f"searched trade rule is budget balanced, IC, IR ({name})",
            f"deficit max {a['deficit']['max']:.2g}, regret max {_regret_max(a):.2g}",
            f"both <= tol = {a['tol']:g}",
            a["deficit"]["max"] <= a["tol"] and _regret_max(a) <= a["tol"],
        )
    ]
    b = tp["best"]
    if "interdependent" not in name:
        out += [
            check(
                "CE Sec 5 / Thm 7",
                "private values: best balanced rule is the posted price p = 1/2",
                f"p = {b['buyer_price']:.3f}, gains {pm(b['welfare'])}",
                "gains 1/8 (closed form)",
                abs(b["welfare"]["mean"] - 0.125) <= 4 * b["welfare"]["se"] + 0.002,
            ),
            check(
                "CE Sec 5 / Thm 7",
                "gradient search reaches the posted-price optimum",
                f"{pm(sr['welfare'])} ({sr['welfare']['mean'] / 0.125:.0%} of 1/8)",
                ">= 90% of 1/8",
                sr["welfare"]["mean"] >= 0.9 * 0.125,
            ),
        ]
    else:
        fb = m["first_best_welfare"]["mean"]
        d = tp["search_minus_best"]
        out += [
            check(
                "CE Sec 5 / Thm 7",
                "interdependent values (a = 0.3): a balanced two-price rule trades",
                f"(p_b, p_s) = ({b['buyer_price']:.2f}, {b['seller_price']:.2f}), {pm(b['welfare'])}",
                f"welfare > 0 ({b['welfare']['mean'] / fb:.0%} of first best {fb:.4f})",
                b["welfare"]["mean"] > 0,
            ),
            check(
                "CE Sec 5 / Thm 7",
                "search from the best two-price rule stays within 3% of it",
                f"search - best {pm(d)}",
                ">= -3% of the two-price welfare",
                d["mean"] >= -0.03 * b["welfare"]["mean"],
            ),
        ]
    return out


def contributions(m: dict) -> list[Claim]:
    c = m["contributions"]
    g = max(c["agent1"]["gain"], c["agent2"]["gain"])
    return [
        check(
            "CE Sec 5.3",
            "the contribution scheme implements the threshold rule",
            f"share {c['implementation_share']:.4f} (off the boundary {c['strict_share']:.4f})",
            "1 off the provision boundary (grid of profiles)",
            c["strict_share"] == 1.0,
        ),
        check(
            "CE Sec 5.3",
            "the strategies are an ex post equilibrium",
            f"max gain {g:.2g} over {c['n_deviations']} deviations",
            f"<= tol = {c['tol']:g}",
            g <= c["tol"],
        ),
        check(
            "CE Sec 5.3",
            "budget balanced when funded",
            f"min(taxes - c) = {c['budget_margin']:.2g}",
            f">= -{c['tol']:g}",
            c["budget_margin"] >= -c["tol"],
        ),
        info(
            "CE Sec 5.3",
            "text: pledges/demands as described; implementation needs exact ties p_i = d_-i = vbar_i",
            f"share implemented incl. the boundary {c['implementation_share']:.4f}, off it {c['strict_share']:.4f}",
            "demands must be the pivotal values vbar_-i (demanding the VCG amount v_-i(s_i, 0) breaks implementation)",
        ),
    ]


def double_auction(m: dict) -> list[Claim]:
    d = m["double_auction"]
    g = max(d["equilibrium_gain"].values())
    return [
        check(
            "CE Sec 4.3",
            "IEWDS survivors implement the efficient rule",
            f"efficient share {d['efficient_share']:.3f}",
            "> 0.95 on the bid grid (misses only within a bid step of the boundary)",
            d["efficient_share"] > 0.95,
        ),
        check(
            "CE Sec 4.3",
            "the survivors are an ex post equilibrium",
            f"max gain {g:.2g}",
            f"<= bid step {d['bid_step']:.3g}",
            g <= d["bid_step"],
        ),
        check(
            "CE Sec 4.3",
            "the double auction runs no surplus below zero (deficit >= 0), like VCG",
            f"mean deficit {d['mean_deficit']:.4f}, min {d['min_deficit']:.2g}; VCG {d['vcg_mean_deficit']:.4f}",
            "min >= 0",
            d["min_deficit"] >= 0,
        ),
        info(
            "CE Sec 4.3",
            "text: the double auction's budget equals the VCG deficit; on a bid grid it only brackets it",
            f"mean deficit {d['mean_deficit']:.4f} vs generalized VCG {d['vcg_mean_deficit']:.4f}",
            "surviving bids pin the offer down to one signal step; types that always trade keep a range of bids",
        ),
    ]


_SEARCH = dict(quick=QUICK_SEARCH, full=("search.grid_profiles=4194304", "audit.profiles=10000000"))
EXPERIMENTS = {
    "bilateral_trade": Experiment(efficient_trade, ("audit.profiles=100000", "audit.misreports.grid=16"), FULL),
    # quick: the randomized ramp's envelope payments on 256 Riemann-Stieltjes cells (regret stays ~1e-7)
    "ce_thm2_monotonicity": Experiment(thm2, QUICK + ("mechanism.cells=256",), FULL),
    "ce_thm5_deficit": Experiment(thm5, QUICK, FULL),
    "ce_sec44_deficit_curve": Experiment(sec44, QUICK + ("experiment.values=[-2.0, -1.0, -0.5, 0.0, 0.5, 0.9]",), FULL),
    "ce_thm6_deficit_minimizing": Experiment(_dominance("CE Thm 6"), QUICK, FULL),
    "ce_lemma5_randomized": Experiment(_dominance("CE Lemma 5"), QUICK, FULL),
    # quick: the interim check on 4096 Latin-hypercube s_-i x 65 misreports (its error is O(1/inner), far below 1e-3)
    "ce_cor1_bayesian": Experiment(
        cor1,
        QUICK + ("experiment.inner=4096", "experiment.misreports=65", "mechanism.inner=16384"),
        ("audit.profiles=10000000",),
    ),
    "ce_sec43_double_auction": Experiment(double_auction),
    "ce_thm8_budget_classes": Experiment(thm8, QUICK, FULL),
    "ce_thm9_search": Experiment(thm9, **_SEARCH),
    "ce_thm9_search_asymmetric": Experiment(thm9, **_SEARCH),
    # n = 3: the constraint grid is 33^3 states per step by default; 17^3 is enough for the quick claims
    "ce_thm9_search_n3": Experiment(thm9, QUICK_SEARCH + ("search.constraint_grid=17",), _SEARCH["full"]),
    "ce_thm9_richer_family": Experiment(richer, **_SEARCH),
    "ce_sec53_contributions": Experiment(contributions),
    "ce_bilateral_second_best": Experiment(second_best, **_SEARCH),
    "ce_bilateral_second_best_interdependent": Experiment(second_best, **_SEARCH),
}

if __name__ == "__main__":
    raise SystemExit(main_for(__file__))
