"""Reproduce every result of Chung & Ely (2006) Section 4 (bilateral trade) from configs/ce_*.toml.

    python experiments/ce_section4.py [--out results/ce_section4] [--quick]

Runs each config with ``jaxmech run`` semantics (results folder per config: config.toml,
metrics.json, manifest.json, plots) and prints one line per result: the paper's claim and
what the run measured. ``--quick`` shrinks the sample sizes (a smoke run, ~3 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from jaxmech._src import config as cfg
from jaxmech._src import runs

ROOT = Path(__file__).resolve().parents[1]
QUICK = ("audit.profiles=20000",)


def _pm(x):
    return f"{x['mean']:.4f} ± {x['se']:.4f}"


def claims(name: str, m: dict) -> list[tuple[str, str, bool]]:
    """(claim, measured, holds) rows for one config's metrics."""
    out = []
    if name == "ce_thm2_monotonicity":
        for r in m["sweep"]["rows"]:
            mono = not r["case"].startswith("NOT")
            out.append((f"Thm 2: {r['case']}", f"regret max {r['regret_max']:.3g}", (r["regret_max"] <= 1e-4) == mono))
    elif name == "ce_thm5_deficit":
        for r in m["sweep"]["rows"]:
            d = r["deficit"]
            ok = d["min"] >= -1e-5 and d["ci95"][0] > 0
            out.append((f"Thm 5 / Lemma 4: {r['case']}", f"deficit {_pm(d)}, min {d['min']:.2g}", ok))
    elif name == "ce_sec44_deficit_curve":
        for r in m["sweep"]["rows"]:
            d, cf = r["deficit"], r["deficit_closed_form"]
            out.append(
                (
                    f"Sec 4.4: a = {r['value']:g}",
                    f"deficit {_pm(d)} vs (1+a)/6 = {cf:.4f}",
                    abs(d["mean"] - cf) <= 4 * d["se"] + 1e-6,
                )
            )
    elif name in ("ce_thm6_deficit_minimizing", "ce_lemma5_randomized"):
        c = m["comparison"]
        label = "Thm 6" if "thm6" in name else "Lemma 5"
        for r in c["mechanisms"][1:]:
            mb = r["minus_baseline"]
            out.append(
                (f"{label}: {c['baseline']} <= {r['mechanism']} in every state",
                 f"diff mean {_pm(mb)}, min {mb['min']:.2g}", mb["min"] >= -c["tol"])
            )  # fmt: skip
    elif name == "ce_cor1_bayesian":
        ex = max(r["p_above_tol"]["p"] for r in m["interim_audit"]["regret"])
        bi = max(r["max_interim_regret"] for r in m["interim_bayesian"]["agents"])
        mb = m["comparison"]["mechanisms"][1]["minus_baseline"]
        d = m["comparison"]["mechanisms"][0]["deficit"]
        out.append(("Cor 1: interim mechanism not ex post IC", f"P(regret > tol) = {ex:.3f}", ex > 0.5))
        out.append(("Cor 1: interim mechanism Bayesian IC", f"max interim regret {bi:.2g}", bi <= 1e-3))
        out.append(
            ("Cor 1: same expected deficit as ex post", f"paired diff {_pm(mb)}", abs(mb["mean"]) <= 4 * mb["se"])
        )
        out.append(("Cor 1: expected deficit > 0", f"{_pm(d)}", d["ci95"][0] > 0))
    elif name == "ce_sec43_double_auction":
        d = m["double_auction"]
        out.append(
            (
                "Sec 4.3: survivors implement the efficient rule",
                f"efficient share {d['efficient_share']:.3f} (grid)",
                d["efficient_share"] > 0.95,
            )
        )
        g = max(d["equilibrium_gain"].values())
        out.append(
            (
                "Sec 4.3: survivors are an ex post equilibrium",
                f"max gain {g:.2g} (bid step {d['bid_step']:.3g})",
                g <= d["bid_step"],
            )
        )
        out.append(
            (
                "Sec 4.3: budget",
                f"mean deficit {d['mean_deficit']:.4f}, min {d['min_deficit']:.2g}, VCG {d['vcg_mean_deficit']:.4f}",
                d["min_deficit"] >= 0,
            )
        )
    return out


NAMES = (
    "ce_thm2_monotonicity", "ce_thm5_deficit", "ce_sec44_deficit_curve", "ce_thm6_deficit_minimizing",
    "ce_lemma5_randomized", "ce_cor1_bayesian", "ce_sec43_double_auction",
)  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/ce_section4")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    rows, failed = [], 0
    for name in NAMES:
        t0 = time.perf_counter()
        settings, _ = cfg.load(ROOT / "configs" / f"{name}.toml", QUICK if args.quick else ())
        metrics = runs.run(settings, out / name)
        for claim, measured, ok in claims(name, metrics):
            rows.append({"config": name, "claim": claim, "measured": measured, "holds": ok})
            failed += not ok
            print(f"[{'ok' if ok else 'FAIL'}] {claim:<62} {measured}")
        print(f"       ({name}: {time.perf_counter() - t0:.0f} s, results in {out / name})", flush=True)
    (out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\n{len(rows) - failed}/{len(rows)} claims hold; summary in {out / 'summary.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
