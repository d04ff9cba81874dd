"""The ``condition5`` kind (B Sec. 3, eq. (5), fns. 11-12): which pairs of outcomes satisfy eq. (5) on sampled
profiles, and audits of [mechanism] and each [[experiment.against]] with every outcome's frequency."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from jaxmech._src.app import build, streams
from jaxmech._src.app import config as cfg
from jaxmech._src.app.kinds.common import Kind, regret_summary
from jaxmech._src.models import assignment


def run_condition5(settings, base_dir, progress, out_dir):
    """Experiment ``condition5``: eq. (5) per pair of assignments, then the audits (B Sec. 3)."""
    ex = settings.experiment
    if settings.environment.kind != "two_objects":
        raise cfg.ConfigError("environment.kind: the condition5 experiment needs 'two_objects' (B Sec. 3)")
    built = build.build(settings, base_dir)
    env = built.env
    table = assignment.assignments(env.n_agents)
    key = jax.random.PRNGKey(settings.seed)
    s = built.prior.sample(streams.key_for(key, streams.CONDITION5), ex.stats_profiles, built.dtype)
    c5 = assignment.condition5(env, s)
    moved = assignment.agents_moved(table)
    x = np.asarray(s, np.float64)
    pairs = []
    for l_, k_ in zip(*np.triu_indices(len(table), 1), strict=True):
        w = int(c5.witness[l_, k_])
        pairs.append({
            "pair": [env.outcome_names[l_], env.outcome_names[k_]], "moved": int(moved[l_, k_]),
            "gap": np.asarray(c5.gap[l_, k_], np.float64).tolist(), "holds": bool(c5.holds[l_, k_]),
            "second": float(c5.second[l_, k_]), "witness": x[w].tolist() if not c5.holds[l_, k_] else None,
        })  # fmt: skip
    specs = [settings.mechanism, *ex.against]
    mechanisms = [built.mechanism] + [
        build.build_mechanism(m, env, settings.environment, base_dir, built.prior, settings.seed) for m in ex.against
    ]
    rows = []
    for m, mech in zip(specs, mechanisms, strict=True):
        rep = build.execute(dataclasses.replace(settings, mechanism=m), built._replace(mechanism=mech),
                            progress=progress).report  # fmt: skip
        rows.append({"mechanism": mech.name, "kind": m.kind, "reserves": None if m.reserves is None else list(m.reserves),
                     "audit": regret_summary(rep), "profiles": rep["profiles"],
                     "outcomes": {k: {"p": v["p"], "se": v["se"], "ci95": v["ci95"]} for k, v in rep["outcomes"].items()},
                     "revenue": rep["revenue"], "welfare": rep["welfare"]})  # fmt: skip
    out = {"environment": env.name, "settings": {"environment": dataclasses.asdict(settings.environment)},
           "outcome_names": list(env.outcome_names), "assignments": table.tolist(), "profiles": int(s.shape[0]),
           "pairs": pairs, "mechanisms": rows}  # fmt: skip
    return out, None, []


def _condition5_summary(metrics: dict) -> str:
    pairs = metrics["pairs"]
    one = [p for p in pairs if p["moved"] == 1]
    two = [p for p in pairs if p["moved"] >= 2]
    lines = [
        f"{metrics['name']}: B eq. (5) in {metrics['environment']} on {metrics['profiles']:,} profiles",
        f"pairs moving one buyer:  {sum(p['holds'] for p in one)} of {len(one)} satisfy (5)",
        f"pairs moving two buyers: {sum(p['holds'] for p in two)} of {len(two)} satisfy (5)",
        "",
        f"{'mechanism':<24} {'regret max':>10}  outcomes",
    ]
    for r in metrics["mechanisms"]:
        oc = " ".join(f"{k} {v['p']:.3f}±{v['se']:.3f}" for k, v in r["outcomes"].items())
        lines.append(f"{r['mechanism'][:24]:<24} {max(r['audit']['max']):>10.3g}  {oc}")
    return "\n".join(lines)


KIND = Kind(
    name="condition5",
    doc=(
        "B Sec. 3, eq. (5): for every pair of assignments, which buyers are indifferent at every sampled profile; "
        "audits of [mechanism] and each [[experiment.against]] with outcome frequencies (two_objects)"
    ),
    options=("against", "stats_profiles"),
    run=run_condition5,
    summary=_condition5_summary,
)
