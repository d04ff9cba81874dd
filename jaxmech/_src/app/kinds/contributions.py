"""The ``contributions`` kind (CE Sec. 5.3): the contingent-contribution scheme."""

from __future__ import annotations

import time

import jax
import numpy as np

from jaxmech._src.app import config as cfg
from jaxmech._src.app import plots, streams
from jaxmech._src.app.build import build, is_public
from jaxmech._src.app.kinds.common import Kind, condition_checks, mean_se_text
from jaxmech._src.models import contributions


def _run_contributions(settings, base_dir, progress, out_dir):
    built = build(settings, base_dir)
    env = built.env
    if not is_public(env) or env.n_agents != 2:
        raise cfg.ConfigError("environment: the contribution scheme (CE Sec. 5.3) needs public_good with n = 2")
    if settings.mechanism.kind != "threshold_contribution":
        raise cfg.ConfigError("mechanism.kind: the contribution scheme implements a threshold_contribution rule")
    vbar = np.asarray(built.mechanism.params, np.float64)
    ex = settings.experiment
    t0 = time.perf_counter()
    res = contributions.check_equilibrium(
        env.values, vbar, n_types=ex.signals, n_grid=ex.bids, key=jax.random.PRNGKey(settings.seed)
    )
    # the end of CE Sec. 5.3: full types demanding the other's VCG payment v_-i(s_i, 0) instead of vbar_-i
    vcg_st = contributions.contribution_strategies(env.values, vbar, np.asarray(res.signals), full_demand="vcg")
    vcg_res = contributions.check_equilibrium(
        env.values, vbar, n_types=ex.signals, n_grid=ex.bids, key=jax.random.PRNGKey(settings.seed), strategies=vcg_st
    )
    vm = contributions.result_to_metrics(vcg_res)
    vcg_demands = {k: vm[k] for k in ("implementation_share", "strict_share", "n_mismatch", "mismatch_margin",
                                      "mismatch_witness", "produced_share")}  # fmt: skip
    vcg_demands |= {a: {k: vm[a][k] for k in ("gain", "gain_exact", "gain_witness", "d")} for a in ("agent1", "agent2")}
    expected = contributions.contribution_surplus(
        env.values, vbar, built.prior, key=streams.key_for(jax.random.PRNGKey(settings.seed), streams.CONTRIBUTION_SURPLUS),
        n_profiles=settings.audit.profiles,
    )  # fmt: skip
    body = {
        "environment": env.name,
        "mechanism": built.mechanism.name,
        "contributions": contributions.result_to_metrics(res),
        "vcg_demands": vcg_demands,  # the same checks with full types demanding v_-i(s_i, 0)
        "expected": expected._asdict(),  # under the prior, from the agents' own sampled types: mean, se
        "solve_s": time.perf_counter() - t0,
        "conditions": condition_checks(built),
    }
    figs = []
    if ex.plots and plots.available():
        st = res.strategies
        sig = np.asarray(res.signals)
        figs.append(
            plots.contribution_strategies(
                out_dir / "contribution_strategies.png", sig, np.asarray(st.d), np.asarray(st.p), np.asarray(st.phi),
                f"CE Sec. 5.3 in {env.name}, vbar = ({vbar[0]:.3f}, {vbar[1]:.3f})",
            ).name
        )  # fmt: skip
    return body, None, figs


def _contributions_summary(metrics: dict) -> str:
    c = metrics["contributions"]
    lines = [
        f"{metrics['name']}: CE Sec. 5.3 contingent contributions for {metrics['mechanism']} in {metrics['environment']}",
        f"  implementation share   {c['implementation_share']:.4f} ({c['n_mismatch']} grid profiles differ, all within "
        f"{c['mismatch_margin']:.2g} of the rule's boundary; off the boundary {c['strict_share']:.4f})",
        f"  budget                 min(taxes - c) over produced profiles = {c['budget_margin']}",
    ]
    if "expected" in metrics:
        e = metrics["expected"]
        lines.append(
            f"  expected (prior, {e['n_profiles']:,} profiles)  surplus {mean_se_text(e['surplus'])}, welfare "
            f"{mean_se_text(e['welfare'])}, funded {mean_se_text(e['produced'])}"
        )
    for a in ("agent1", "agent2"):
        x = c[a]
        lines.append(
            f"  {a}: max deviation gain {x['gain']:.3g} over {c['n_deviations']} deviations (d, p); "
            f"|taxes - VCG| {x['vcg_gap']:.2g} ({x['n_full']} types that are always funded)"
        )
    return "\n".join(lines)


KIND = Kind(
    name="contributions",
    doc=(
        "CE Sec. 5.3: the contingent-contribution scheme (d_i, p_i) with the paper's strategies for the "
        "[mechanism] threshold rule: implementation, ex post equilibrium (grid + random deviations), budget"
    ),
    options=("signals", "bids"),
    run=_run_contributions,
    summary=_contributions_summary,
)
