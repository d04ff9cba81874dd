"""Design from cold starts (issue 21): each showcase config against an independent reference.

References: the closed form 1/8 (private-values trade, posted price 1/2); the best posted price for a Beta(2, 2)
buyer and a uniform seller by a fine 1-D NumPy search on exact polynomial integrals; the best deterministic rule
(1-a)^3 (1+a) / 8 for v_i = s_i + a s_-i; CE Thm 9's optimal vbar (symmetry, or an independent NumPy search along
the budget line for the asymmetric case); the finite-type LP's 1/G limit (scipy HiGHS); Myerson's reserve 1/2 and
revenue 5/12 (a single object, two uniform private-value buyers); under a Gaussian copula the best posted price by
Gauss-Legendre in the copula's conditional coordinates (``_reference.copula_posted_price``); under an ex ante budget
the virtual-surplus rule's 9/64 at alpha = 1/3 (Myerson & Satterthwaite 1983; Chatterjee & Samuelson's linear
equilibrium trades iff s_beta - s_sigma >= 1/4). Run only these with

    python experiments/design.py [--quick] [--only PATTERN] [--out DIR]
"""

from __future__ import annotations

import _reference as ref_
import numpy as np

from jaxmech._src.app.reproduce import Claim, Experiment, check, main_for, measure

QUICK = ("audit.profiles=8192", "design.starts=2", "design.steps=150", "design.eval_profiles=32768",
         "design.repair_profiles=4096", "design.check_grid=17", "design.lp_grids=[17, 33]")  # fmt: skip
RANDOMIZED = ("audit.profiles=8192", "design.starts=1", "design.steps=60", "design.eval_profiles=1048576",
              "design.repair_profiles=4096", "design.check_grid=17", "design.lp_grids=[17, 33]")  # fmt: skip
AUCTION = ("audit.profiles=8192", "design.starts=2", "design.eval_profiles=32768", "design.check_grid=17",
           "design.lp_grids=[17, 33]")  # fmt: skip
CORRELATED = (*QUICK, "design.starts=1", "design.steps=100")  # one cold start: the posted price is unimodal
PUBLIC_RANDOMIZED = ("audit.profiles=8192", "design.starts=1", "design.steps=60", "design.eval_profiles=524288",
                     "design.repair_profiles=4096", "design.check_grid=17", "design.lp_grids=[17, 33]")  # fmt: skip
EX_ANTE = ("audit.profiles=8192", "design.check_grid=17", "design.lp_grids=[17, 33]")  # 262,144 fresh profiles
FULL = ("audit.profiles=1000000", "design.starts=8", "design.eval_profiles=4194304")


def beta_posted_price() -> tuple[float, float]:
    """Best posted price and its welfare: buyer Beta(2, 2) (density 6x(1-x)), seller uniform, private values.

    ``W(p) = int_p^1 6x(1-x) (p x - p^2 / 2) dx``, integrated exactly (polynomials), maximized by golden section."""

    def w(p):
        def prim(x):  # antiderivative of 6x(1-x)(p x - p^2/2)
            return 6 * (p * (x**3 / 3 - x**4 / 4) - p**2 / 2 * (x**2 / 2 - x**3 / 3))

        return prim(1.0) - prim(p)

    p = ref_.golden(w, 0.0, 1.0)
    return p, w(p)


def _d(m: dict) -> dict:
    return m["design"]


def _audit_ok(m: dict) -> Claim:
    d = _d(m)
    a, g = d["audit"]["sampled"], d["audit"]["grid"]
    if d.get("budget") == "ex_ante":  # the budget holds on average: the mean deficit, not the worst state
        worst = max(a["regret_max"], a["ir_violation_max"], g["regret_max"], g["ir_violation_max"])
        mean = a["deficit"]
        return check(
            "jaxmech (not in CE)",
            f"exact audit of the designed mechanism ({m['name']}, ex ante budget)",
            f"largest regret / IR violation {worst:.2g}; mean deficit {mean['mean']:.2g} ± {mean['se']:.1g}",
            f"<= tol = {a['tol']:.2g}; mean deficit <= tol + 4 SE",
            worst <= a["tol"] and mean["mean"] <= a["tol"] + 4 * mean["se"],
        )
    worst = max(a["regret_max"], a["ir_violation_max"], a["deficit_max"], g["regret_max"], g["ir_violation_max"],
                g["deficit_max"])  # fmt: skip
    return check(
        "jaxmech (not in CE)",
        f"exact audit of the designed mechanism ({m['name']})",
        f"largest regret / IR violation / deficit {worst:.2g} (samples and a {g['points']}-profile support grid)",
        f"<= tol = {a['tol']:.2g}",
        worst <= a["tol"],
    )


def _reference(m: dict, within: float) -> list[Claim]:
    r = _d(m)["reference"]
    if r is None or "error" in r:
        why = "not asked for (design.reference = false)" if r is None else r["error"]
        return [check("LP", f"LP reference ({m['name']})", "unavailable", why, False)]
    per = ", ".join(f"G={g}: {v:.5f}" for g, v in zip(r["grids"], r["values"], strict=True))
    return [
        check(
            "LP",
            f"cold-start design reaches the LP reference within {100 * within:g}% ({m['name']})",
            f"design {r['design']:.6f}, gap {100 * r['gap_relative']:+.2f}%",
            f"finite-type LP {per}; 1/G limit {r['limit']:.6f}"
            + (
                f" (with a 1/G^2 term: {r['limit_second_order']:.6f}, gap {100 * r['gap_relative_second_order']:+.2f}%)"
                if r.get("limit_second_order") is not None
                else ""
            ),
            r["gap_relative"] <= within,
        )
    ]


def private(m: dict) -> list[Claim]:
    d = _d(m)
    return [
        check(
            "jaxmech (not in CE)",
            "private-values trade from cold starts reaches >= 99% of the best posted price (Hagerty-Rogerson 1987)",
            f"{d['value']:.6f} (MC {d['objective']['mean']:.5f} ± {d['objective']['se']:.1g}); cutoffs "
            f"{', '.join(f'{x:.4f}' for x in d['description']['cutoffs'])}",
            "1/8 (closed form: posted price 1/2)",
            d["value"] >= 0.99 * 0.125,
        ),
        _audit_ok(m),
        *_reference(m, 0.01),
    ]


def beta_trade(m: dict) -> list[Claim]:
    d = _d(m)
    p, w = beta_posted_price()
    x, y = d["description"]["cutoffs"]
    return [
        check(
            "jaxmech (not in CE)",
            "best posted price, Beta(2, 2) buyer and uniform seller, to 1e-3",
            f"cutoffs ({x:.5f}, {y:.5f}), welfare {d['value']:.6f}",
            f"fine 1-D search on exact integrals: p = {p:.5f}, welfare {w:.6f}",
            max(abs(x - p), abs(y - p)) <= 1e-3 and abs(d["value"] - w) <= 1e-5,
        ),
        _audit_ok(m),
        *_reference(m, 0.01),
    ]


def best_deterministic_trade(a: float) -> float:
    """Gains from trade of the best deterministic ex post IC, IR, balanced rule for v_i = s_i + a s_-i, uniform
    signals: the two-price rule with cutoffs ((1+a)/2, (1-a)/2), (1-a)^3 (1+a) / 8 (1/8 at a = 0)."""
    return (1 - a) ** 3 * (1 + a) / 8


def _interdependent(a: float):
    def claims(m: dict) -> list[Claim]:
        d = _d(m)
        ref = best_deterministic_trade(a)
        out = [
            check(
                "jaxmech (not in CE)",
                f"best deterministic ex post IC, IR, balanced trade rule from cold starts, a = {a}",
                f"{d['value']:.6f}",
                f"closed form of the best two-price rule, cutoffs ((1+a)/2, (1-a)/2): (1-a)^3 (1+a) / 8 = {ref:.6f} "
                "(within 1e-5)",
                abs(d["value"] - ref) <= 1e-5,
            ),
            _audit_ok(m),
        ]
        r = d["reference"]
        if r is not None and "error" not in r:
            out.append(
                measure(
                    "LP",
                    f"randomization vs the best deterministic rule, a = {a}",
                    f"LP 1/G limit {r['limit']:.6f} vs deterministic {ref:.6f}: {100 * (r['limit'] / ref - 1):+.2f}%",
                    "the LP allows randomized allocations; its limit above the deterministic optimum bounds what "
                    "randomization can add (the randomized family's share: configs design_trade_randomized_a0*)",
                )
            )
        return out

    return claims


def _randomized(a: float):
    def claims(m: dict) -> list[Claim]:
        d = _d(m)
        det = best_deterministic_trade(a)
        mc = d["objective"]
        margin = (mc["mean"] - det) / mc["se"]
        out = [
            check(
                "LP",
                f"randomized beats the best deterministic rule, a = {a} (cold starts)",
                f"{d['value']:.6f} by quadrature; MC {mc['mean']:.6f} ± {mc['se']:.1g} ({margin:.1f} SE above); box "
                f"({', '.join(f'{x:.4f}' for x in d['description']['cut'])})",
                f"deterministic (1-a)^3 (1+a) / 8 = {det:.6f}; margin > 4 SE",
                margin > 4 and d["value"] > det,
            ),
            _audit_ok(m),
        ]
        r = d["reference"]
        if r is not None and "error" not in r:
            out.append(
                measure(
                    "LP",
                    f"randomized design vs the LP limit, a = {a}",
                    f"design {d['value']:.6f}, LP 1/G limit {r['limit']:.6f} (gap {100 * r['gap_relative']:+.2f}%)",
                    f"deterministic {det:.6f}: the design closes {100 * (d['value'] - det) / (r['limit'] - det):.0f}% "
                    "of the gap",
                )
            )
        return out

    return claims


def _vbar_error(vbar: list, ref: list[float]) -> float:
    """Largest coordinate error; a non-finite coordinate (null in metrics.json) counts as inf."""
    return max(abs(x - r) if x is not None and np.isfinite(x) else np.inf for x, r in zip(vbar, ref, strict=True))


def _thm9(closed: list[float] | None):
    def claims(m: dict) -> list[Claim]:
        d = _d(m)
        vbar = d["description"]["vbar"]
        if closed is None:
            v1, _ = ref_.asymmetric_thm9()
            ref, how = [v1, 1.0 - v1], "independent NumPy search along the budget line (exact inner integrals)"
        else:
            ref, how = closed, "symmetry"
        err = max(abs(x - r) for x, r in zip(vbar, ref, strict=True))
        # every start, not only the best: a start that diverged or stalled elsewhere fails the row
        errs = [_vbar_error(s["final"]["vbar"], ref) if s["feasible"] else np.inf for s in d["starts"]]
        gap = d["precision"]["sum_minus_cost"]
        return [
            check(
                "CE Thm 9",
                f"optimal vbar from cold starts to 1e-3 ({m['name']})",
                "(" + ", ".join(f"{x:.5f}" for x in vbar) + f"), |error| {err:.1e}",
                "(" + ", ".join(f"{x:.5f}" for x in ref) + f") by {how}",
                err <= 1e-3,
            ),
            check(
                "CE Thm 9",
                f"every cold start reaches the optimal vbar to 1e-3 ({m['name']})",
                f"{len(errs)} starts: |error| " + ", ".join(f"{e:.1e}" for e in errs),
                "the same reference; a diverged or infeasible start counts as inf",
                max(errs) <= 1e-3,
            ),
            check(
                "CE Thm 9",
                f"exactly on the budget line ({m['name']})",
                f"sum vbar - c = {gap:+.1e}",
                "|.| <= 1e-6 (float32 rounding of the parameters)",
                abs(gap) <= 1e-6,
            ),
            _audit_ok(m),
            *_reference(m, 0.02),
        ]

    return claims


def falling(m: dict) -> list[Claim]:
    d = _d(m)
    return [
        measure(
            "jaxmech (not in CE)",
            "public good with values falling in others' signals: posted cutoffs from cold starts",
            f"cutoffs ({', '.join(f'{x:.4f}' for x in d['description']['cutoffs'])}), welfare {d['value']:.6f}",
        ),
        _audit_ok(m),
        *_reference(m, 0.02),
    ]


def public_randomized(a: float, c: float):
    """Randomized provision (box x monotone band, envelope payments) vs the best posted-cutoff rule (closed form,
    ``_reference.best_posted_public_good``) vs the LP's 1/G limit (randomized allocations allowed)."""

    def claims(m: dict) -> list[Claim]:
        d = _d(m)
        p, det = ref_.best_posted_public_good(a, c)
        mc, ex = d["objective"], d["exact"]
        out = [
            check(
                "jaxmech (not in CE)",
                f"randomized provision beats the best posted-cutoff rule, a = {a}, c = {c} (cold starts)",
                f"{d['value']:.6f} by quadrature (± {ex['error']:.1g}); box "
                f"({', '.join(f'{x:.4f}' for x in d['description']['cut'])})",
                f"posted cutoffs {p:g} (closed form): {det:.6f}; margin > 100 x the quadrature's error + 1e-6",
                d["value"] - det > 100 * ex["error"] + 1e-6,
            ),
            check(
                "jaxmech (not in CE)",
                "the designed rule's own Monte Carlo welfare agrees with its quadrature",
                f"MC {mc['mean']:.6f} ± {mc['se']:.1g} ({mc['profiles']:,} profiles; {(mc['mean'] - det) / mc['se']:.1f} "
                "SE above the posted rule)",
                f"quadrature {d['value']:.6f}, within 4 SE",
                abs(mc["mean"] - d["value"]) <= 4 * mc["se"],
            ),
            _audit_ok(m),
            *_reference(m, 0.02),
        ]
        r = d["reference"]
        if r is not None and "error" not in r:
            out.append(
                measure(
                    "LP",
                    f"does randomization help? public good, values falling in the other's signal (a = {a})",
                    f"posted {det:.6f} -> randomized {d['value']:.6f} ({100 * (d['value'] / det - 1):+.2f}%) -> LP 1/G "
                    f"limit {r['limit']:.6f} ({100 * (r['limit'] / det - 1):+.2f}%)",
                    f"the randomized design closes {100 * (d['value'] - det) / (r['limit'] - det):.0f}% of the gap "
                    "between the best posted rule and the LP limit",
                )
            )
        return out

    return claims


def _reserve_rows(m: dict, *, r0: float, tol: str, best: float, mc: dict, reserve_claim: str, reserve_ref: str,
                  value_claim: str, value_ref: str, lp_claim: str, lp_ref: str) -> list[Claim]:  # fmt: skip
    """The rows of a reserve-auction showcase: the reserves against ``r0`` (to ``tol``, as written in the row), the
    quadrature value against ``best`` (to 1e-5) and the Monte Carlo ``mc`` within 4 SE, the audit, the LP's 1/G limit
    against ``best`` (to 1e-3) and the design against the LP within 1%."""
    d = _d(m)
    r = d["description"]["reserves"]
    err = max(abs(x - r0) for x in r)
    lp_ok = _has_lp(m)
    return [
        check("jaxmech (not in CE)", reserve_claim, f"reserves ({', '.join(f'{x:.5f}' for x in r)}), |error| {err:.1e}",
              f"{reserve_ref}; |error| <= {tol}", err <= float(tol)),
        check("jaxmech (not in CE)", value_claim, f"{d['value']:.7f} by quadrature; MC {mc['mean']:.5f} ± "
              f"{mc['se']:.1g}", f"{value_ref}; quadrature within 1e-5, MC within 4 SE",
              abs(d["value"] - best) <= 1e-5 and abs(mc["mean"] - best) <= 4 * mc["se"]),
        _audit_ok(m),
        check("LP", lp_claim, f"{d['reference']['limit']:.6f}" if lp_ok else "no LP reference",
              f"{lp_ref}; within 1e-3",
              lp_ok and abs(d["reference"]["limit"] - best) <= 1e-3),
        *_reference(m, 0.01),
    ]  # fmt: skip


def auction_revenue(m: dict) -> list[Claim]:
    return _reserve_rows(
        m, r0=0.5, tol="1e-2", best=5 / 12, mc=_d(m)["revenue"],
        reserve_claim="revenue-optimal auction from cold starts: Myerson's reserve 1/2 (two uniform private-value buyers)",
        reserve_ref="second price with reserve 1/2 (Myerson 1981)",
        value_claim="its revenue: 5/12 by quadrature and by the mechanism's own Monte Carlo payments",
        value_ref=f"5/12 = {5 / 12:.7f}",
        lp_claim="the single-object LP's 1/G limit is Myerson's revenue (two uniform private-value buyers)",
        lp_ref=f"5/12 = {5 / 12:.6f}",
    )  # fmt: skip


def auction_weighted(m: dict) -> list[Claim]:
    """Welfare + w x revenue (w = 0.5), two uniform private-value buyers: per unit of allocation buyer i adds
    ``s_i + w (2 s_i - 1)``, positive above ``r = w / (1 + 2w) = 1/4``; the optimum over all ex post IC and IR rules
    is the reserve auction with reserve 1/4, worth ``(1 + 2w) 2/3 (1 - r^3) - w (1 - r^2) = 0.84375``."""
    w = 0.5
    r0 = w / (1 + 2 * w)
    best = (1 + 2 * w) * 2 / 3 * (1 - r0**3) - w * (1 - r0**2)
    return _reserve_rows(
        m, r0=r0, tol="2e-3", best=best, mc=_d(m)["objective"],
        reserve_claim="weighted objective (welfare + 0.5 revenue) from cold starts: reserve 1/4 (two uniform "
                      "private-value buyers)",
        reserve_ref=f"w / (1 + 2w) = {r0:g} (closed form)",
        value_claim="its weighted objective by quadrature and by the mechanism's own Monte Carlo welfare and payments",
        value_ref=f"(1 + 2w) 2/3 (1 - r^3) - w (1 - r^2) = {best:.7f}",
        lp_claim="the single-object LP for the same weighted objective: its 1/G limit is the closed form",
        lp_ref=f"{best:.6f}",
    )  # fmt: skip


def _has_lp(m: dict) -> bool:
    r = _d(m)["reference"]
    return r is not None and "error" not in r


def trade_correlated(m: dict) -> list[Claim]:
    d = _d(m)
    rho = 0.5
    p, w = ref_.copula_posted_price(rho)
    x, y = d["description"]["cutoffs"]
    mc = d["objective"]
    return [
        check(
            "jaxmech (not in CE)",
            f"private-values trade under a Gaussian copula (rho = {rho}) from cold starts: the best posted price",
            f"cutoffs ({x:.5f}, {y:.5f}), welfare {d['value']:.6f} by copula-weighted quadrature; MC {mc['mean']:.5f} "
            f"± {mc['se']:.1g}",
            f"Gauss-Legendre in the copula's conditional coordinates: p = {p:.5f}, {w:.6f}; within 1e-4 (MC 4 SE)",
            max(abs(x - p), abs(y - p)) <= 5e-3 and abs(d["value"] - w) <= 1e-4 and abs(mc["mean"] - w) <= 4 * mc["se"],
        ),
        _audit_ok(m),
        *_reference(m, 0.02),
    ]


def trade_ex_ante(m: dict) -> list[Claim]:
    """Private trade, uniform signals, ex ante budget: J = 2 (s_beta - s_sigma) - 1, so the virtual-surplus rule
    ``(1 - alpha) w + alpha J > 0`` is ``s_beta - s_sigma > alpha / (1 + alpha)``; the budget binds at alpha = 1/3
    (the cutoff 1/4), welfare ``int_{1/4}^1 d (1 - d) dd = 9/64``."""
    d = _d(m)
    desc, mc, rev = d["description"], d["objective"], d["revenue"]
    return [
        check(
            "Myerson & Satterthwaite (1983)",
            "ex ante budget, private-values trade: the virtual-surplus rule trades iff s_beta - s_sigma > 1/4 "
            "(alpha = 1/3) and reaches 9/64, above an ex post budget's 1/8",
            f"alpha {desc['alpha']:.7f}, welfare {d['value']:.7f} by quadrature (MC {mc['mean']:.5f} ± "
            f"{mc['se']:.1g}); E[deficit] {desc['mean_deficit']:.1g} (its own payments by MC: "
            f"{-rev['mean']:.1g} ± {rev['se']:.1g})",
            "alpha = 1/3, 9/64 = 0.140625 (Chatterjee-Samuelson's linear equilibrium); to 1e-6, MC within 4 SE",
            abs(desc["alpha"] - 1 / 3) <= 1e-6
            and abs(d["value"] - 9 / 64) <= 1e-6
            and abs(mc["mean"] - 9 / 64) <= 4 * mc["se"]
            and abs(rev["mean"]) <= 4 * rev["se"],
        ),
        _audit_ok(m),
        *_reference(m, 0.01),
    ]


EXPERIMENTS = {
    "design_trade_private": Experiment(private, QUICK, FULL),
    "design_trade_beta": Experiment(beta_trade, QUICK, FULL, cost=15),
    "design_trade_interdependent_a03": Experiment(_interdependent(0.3), QUICK, FULL),
    "design_trade_interdependent_a05": Experiment(_interdependent(0.5), QUICK, FULL),
    "design_trade_randomized_a03": Experiment(_randomized(0.3), RANDOMIZED, FULL, cost=30),
    "design_trade_randomized_a05": Experiment(_randomized(0.5), RANDOMIZED, FULL, cost=30),
    "design_thm9": Experiment(_thm9([0.5, 0.5]), QUICK, FULL),
    "design_thm9_asymmetric": Experiment(_thm9(None), QUICK, FULL, cost=16),
    "design_thm9_n3": Experiment(_thm9([0.5, 0.5, 0.5]), QUICK + ("design.lp_grids=[9, 13, 17]",), FULL, cost=25),
    "design_public_good_falling": Experiment(falling, QUICK, FULL),
    "design_public_good_randomized": Experiment(public_randomized(-0.3, 0.8), PUBLIC_RANDOMIZED, FULL, cost=20),
    "design_auction_revenue": Experiment(auction_revenue, AUCTION, FULL),
    "design_auction_weighted": Experiment(auction_weighted, AUCTION, FULL),
    "design_trade_correlated": Experiment(trade_correlated, CORRELATED, FULL),
    "design_trade_ex_ante": Experiment(trade_ex_ante, EX_ANTE, FULL),
}

if __name__ == "__main__":
    raise SystemExit(main_for(__file__))
