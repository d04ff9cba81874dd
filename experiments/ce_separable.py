"""Chung & Ely (2006) Sec. 3 beyond the two shipped environments: CE Thm 2 (ex post IC iff monotone, separable
environments, Def 6) in a single-object auction and in a project with k = 3 ordered sizes, and CE Thm 4 (an efficient
Bayesian IC, interim IR mechanism has an interim-payoff-equivalent ex post IC and IR one) in the auction.

Every checked number is compared with ``experiments/_reference.py`` (NumPy / SciPy only): the envelope payments by
adaptive quadrature of the restated rules, the least worst regret of ANY payments by a linear program, interim
utilities by quadrature. Registered in ``EXPERIMENTS`` for ``jaxmech reproduce``; run only these with

    python experiments/ce_separable.py [--quick|--full] [--only PATTERN] [--out DIR]
"""

from __future__ import annotations

import re

import _reference as ref_
import numpy as np

from jaxmech._src.app.reproduce import Claim, Experiment, check, main_for, measure

PAY_TOL = 1e-4  # float32 payments of order 1 (a payment formula off by a term misses by > 1e-2)
CYCLE_TOL = 1e-4


def _model(r: dict) -> tuple[str, dict]:
    e, mech = r["settings"]["environment"], r["settings"]["mechanism"]
    rule = ref_.sep_rule_name(mech, e)
    return rule, {"a": e["a"], "cost": e["cost"], "levels": e["levels"]}


def _payment_rows(r: dict, rule: str, kw: dict) -> Claim:
    """The mechanism's payments at sampled profiles against the envelope integral by scipy quadrature."""
    p = r["payments"]
    prof, pay = np.asarray(p["profiles"]), np.asarray(p["payments"])
    ref = np.array([[ref_.sep_envelope_payment(rule, s, i, **kw) for i in range(len(s))] for s in prof])
    err = np.abs(pay - ref)
    k, i = np.unravel_index(int(np.argmax(err)), err.shape)
    return check("CE Thm 2", f"{r['case']}: the payments are the envelope formula t_i = h_i V_i - int_0^s_i h_i dV_i",
                 f"max |t - reference| = {err.max():.2g} over {len(prof)} profiles x {prof.shape[1]} agents "
                 f"(worst: agent {i + 1} at {[round(float(x), 3) for x in prof[k]]}, t = {pay[k, i]:.5f})",
                 f"scipy quad of the restated rule (reference {ref[k, i]:.5f}); <= {PAY_TOL:g}", err.max() <= PAY_TOL)  # fmt: skip


def _certificate_rows(r: dict, rule: str, kw: dict, monotone: bool) -> list[Claim]:
    """CE Thm 1 at the audit's worst s_-i per agent: the library's certificate against the LP least worst regret."""
    out = []
    lwr = [ref_.sep_least_worst_regret(rule, c["at_profile"], c["agent"], points=c["samples"], **kw)
           for c in r["certificate"]]  # fmt: skip
    if monotone:
        ok = all(c["feasible"] for c in r["certificate"]) and max(lwr) <= CYCLE_TOL
        out.append(check("CE Thm 1 / Thm 2", f"{r['case']}: IC payments exist at the audit's worst s_-i (every agent)",
                         "certificate: " + ", ".join("no positive cycle" if c["feasible"] else f"cycle {c['cycle']}"
                                                     for c in r["certificate"]),
                         f"LP least worst regret of any payments: {max(lwr):.2g} (<= {CYCLE_TOL:g}; "
                         f"{r['certificate'][0]['samples']} own signals)", ok))  # fmt: skip
        return out
    text, bound_ok = [], True
    for c, b in zip(r["certificate"], lwr, strict=True):
        per = c["slack"] / max(1, len(c["cycle"]) - 1)
        text.append(f"agent {c['agent'] + 1}: cycle {c['cycle']} slack {c['slack']:.4f} (/len {per:.4f}), LP {b:.4f}")
        bound_ok &= (not c["feasible"]) and b > 0.01 and per <= b + CYCLE_TOL
    w = r["witness"]
    out.append(check("CE Thm 2 / Thm 1", f"{r['case']}: NO payments make the non-monotone rule ex post IC",
                     "; ".join(text), "every agent's certificate has a positive cycle at the audit's worst s_-i, its "
                     "slack / length <= the least worst regret of ANY payments there (scipy LP on the same own-signal "
                     "grid, restated rule), which is > 0.01", bound_ok))  # fmt: skip
    out.append(check("CE Thm 2", f"{r['case']}: the envelope payments leave positive regret (witness replayed)",
                     "no witness" if w is None else
                     f"regret {w['gain']:.4f} for agent {w['agent'] + 1} at s = {[round(x, 4) for x in w['profile']]} "
                     f"reporting {[round(x, 4) for x in w['misreport']]}",
                     f"> tol {r['tol']:.2g}; the audit's witness re-evaluated from scratch equals its regret (1e-4)",
                     w is not None and w["gain"] > r["tol"] and abs(w["gain"] - w["audit_regret"]) <= 1e-4))  # fmt: skip
    return out


def thm2_separable(m: dict) -> list[Claim]:
    """CE Thm 2 per case: monotone rules with envelope payments are ex post IC and IR and their payments are the
    envelope integral; a non-monotone rule admits no IC payments (positive cycle, LP least worst regret > 0)."""
    out = []
    for r in m["thm2"]["rows"]:
        rule, kw = _model(r)
        monotone = "NOT" not in r["case"]
        if monotone:
            out.append(check("CE Thm 2", f"{r['case']}: monotone rule + envelope payments is ex post IC and IR",
                             f"regret max {r['regret_max']:.2g}, IR violation max {r['ir_violation_max']:.2g}",
                             f"0 (<= tol {r['tol']:.2g}); the audit's sampled profiles x misreports",
                             r["regret_max"] <= r["tol"] and r["ir_violation_max"] <= r["tol"]))  # fmt: skip
            out.append(_payment_rows(r, rule, kw))
        if r["certificate"] is not None:
            out += _certificate_rows(r, rule, kw, monotone)
        elif not monotone:
            out.append(check("CE Thm 2", f"{r['case']}: certificate", "none (randomized rule)", "a finite outcome table",
                             False))  # fmt: skip
    return out


def _z_curve(c: dict, fee_se: float, ref: np.ndarray, key: str, extra_se) -> tuple[float, int]:
    """Largest |curve - reference| / (4 SE + 1e-3) over the type grid and where."""
    se = np.sqrt(np.asarray(c["utility_se"]) ** 2 + fee_se**2 + np.asarray(extra_se) ** 2)
    dev = np.abs(np.asarray(c[key]) - ref) / (4 * se + 1e-3)
    k = int(np.argmax(dev))
    return float(dev[k]), k


def thm4_auction(m: dict) -> list[Claim]:
    """CE Thm 4 in the two-bidder auction: t'' is ex post IC and IR, interim-payoff-equivalent to the fee mechanism,
    both equal the interim envelope utility by quadrature; the fee mechanism is not ex post IC; same budget."""
    t, b = m["thm4"], m["budget"]
    a = float(re.search(r"a=([-+0-9.eE]+)", m["environment"]).group(1))  # "single_object(linear, n=2, a=0.5)"
    out = []
    e = m["ex_post_audit"]
    out.append(check("CE Thm 4", "auction: t'' is ex post IC and ex post IR",
                     f"regret max {max(e['regret_max']):.2g}, IR violation max {max(e['ir_violation_max']):.2g}",
                     f"0 (<= tol {e['tol']:.2g}); the audit's sampled profiles x misreports",
                     max(e["regret_max"]) <= e["tol"] and max(e["ir_violation_max"]) <= e["tol"]))  # fmt: skip
    for i, ag in enumerate(t["agents"]):
        c = ag["curve"]
        ref = np.array([ref_.auction_interim_utility(x, i, a) for x in c["types"]])
        out.append(check("CE Thm 4", f"auction, {ag['agent']}: interim payoffs of t'' = those of dAGV + fees, every type",
                         f"max |diff| / SE = {ag['max_abs_z']:.2f} (type {ag['worst_type']:.3g}: "
                         f"{ag['diff_at_worst']:+.4f} ± {ag['se_at_worst']:.1g})",
                         f"<= 4 (paired nested MC over {len(c['types'])} types)", ag["max_abs_z"] <= 4))  # fmt: skip
        zf, kf = _z_curve(c, ag["fee_se"], ref, "utility_fee", 0.0)
        zt, kt = _z_curve(c, ag["fee_se"], ref, "utility_ex_post", c["diff_se"])
        out.append(check("CE Thm 4 / Thm 3", f"auction, {ag['agent']}: both interim utility curves equal the envelope "
                         "utility U(x) = int_0^x P(win | y) dy (U(0) = 0: interim IR binds at the lowest type)",
                         f"dAGV + fees at x = {c['types'][kf]:.3g}: {c['utility_fee'][kf]:.4f} (worst of {len(ref)}); "
                         f"t'' at x = {c['types'][kt]:.3g}: {c['utility_ex_post'][kt]:.4f}",
                         f"quadrature {ref[kf]:.4f} / {ref[kt]:.4f} (restated rule, midpoint x Gauss-Legendre); "
                         "within 4 SE + 1e-3 at every type", max(zf, zt) <= 1.0))  # fmt: skip
    w, f = m["fees_witness"], m["fees_audit"]
    out.append(check("CE Thm 4", "auction: dAGV + fees (efficient, Bayesian IC, interim IR) is NOT ex post IC",
                     "no witness" if w is None else
                     f"regret {w['gain']:.4f} for agent {w['agent'] + 1} at s = {[round(x, 4) for x in w['profile']]} "
                     f"reporting {[round(x, 4) for x in w['misreport']]}",
                     f"> tol {f['tol']:.2g}; the audit's witness re-evaluated from scratch equals its regret (1e-4)",
                     w is not None and w["gain"] > f["tol"] and abs(w["gain"] - w["audit_regret"]) <= 1e-4))  # fmt: skip
    d, ed = b["ex_post_minus_fees"], b["ex_post_deficit"]
    rev = ref_.auction_vcg_revenue(a)
    out.append(check("CE Thm 4", "auction: same expected budget, E[deficit(t'')] = E[deficit(dAGV + fees)] = -E[VCG "
                     "revenue] (t'' is the generalized VCG auction: the fees bind at s_i = 0)",
                     f"t'' {ed['mean']:.4f} ± {ed['se']:.1g}; paired t'' - fees {d['mean']:+.4f} ± {d['se']:.1g}",
                     f"-E[(1 + a) min(s_1, s_2)] = {-rev:.4f} (scipy dblquad); 4 SE",
                     abs(d["mean"]) <= 4 * d["se"] + 1e-4 and abs(ed["mean"] + rev) <= 4 * ed["se"] + 1e-4))  # fmt: skip
    out.append(measure("CE Thm 4", "auction: participation fees that make dAGV interim IR (binding at s_i = 0)",
                       ", ".join(f"{ag['agent']} {ag['fee']:+.4f} ± {ag['fee_se']:.1g}" for ag in t["agents"])
                       + f"; dAGV deficit max |.| {b['bic_deficit_abs_max']:.2g} (balanced)"))  # fmt: skip
    return out


# --quick: each case costs one audit compile (~2 s on 2 cores) plus a payments and a certificate compile (~1.5 s),
# and the budget of both experiments is 15 s, so quick runs two of the config's seven cases, one per environment and
# per direction of CE Thm 2: the randomized auction (monotone; envelope payments with the lowest type's share,
# against quadrature) and the non-monotone project size (k = 3 ordered outcomes: positive cycle vs the LP, witness).
# The default and --full sizes run all seven (the non-monotone auction's n + 1 outcome cycle among them).
_M = "../experiments/_separable_models.py"
_THM2_QUICK_CASES = (
    f'experiment.cases=[{{name="auction: randomized softmax shares", set=["mechanism.decide={_M}:softmax"]}}, '
    f'{{name="size: NOT monotone, 2 -> 1 at T = 1", set=["environment.kind=project_size", "environment.n=2", '
    f'"mechanism.decide={_M}:size_nonmonotone"]}}]'
)
_THM2_QUICK = (
    "audit.profiles=2048", "audit.block_size=2048", "audit.chunk_size=2048", "audit.misreports.grid=16",
    "audit.misreports.random=0", "experiment.profiles=8", "experiment.points=1001",
    _THM2_QUICK_CASES,
)  # fmt: skip
_THM4_QUICK = ("audit.profiles=4096", "audit.block_size=4096", "audit.chunk_size=4096", "audit.misreports.grid=8",
               "audit.misreports.random=0", "experiment.types=5", "experiment.misreports=9", "experiment.inner=1024",
               "mechanism.inner=2048", "experiment.plots=false")  # fmt: skip
_THM4_FULL = ("audit.profiles=10000000", "audit.block_size=65536", "audit.chunk_size=1048576",
              "audit.misreports.grid=128", "experiment.types=65", "experiment.misreports=257",
              "experiment.inner=131072", "mechanism.inner=1048576")  # fmt: skip

EXPERIMENTS = {
    "ce_thm2_separable": Experiment(
        thm2_separable, _THM2_QUICK, ("audit.profiles=10000000", "audit.block_size=65536", "audit.chunk_size=1048576")
    ),
    "ce_thm4_auction": Experiment(thm4_auction, _THM4_QUICK, _THM4_FULL),
}


def main(argv=None) -> int:
    return main_for(__file__, argv)


if __name__ == "__main__":
    raise SystemExit(main())
