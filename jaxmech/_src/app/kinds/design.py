"""The ``design`` kind: the best ex post IC and IR mechanism of a family for the configured model, from cold starts,
with its exact audit and the finite-type LP reference (:func:`jaxmech._src.models.design.design`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.app import config as cfg
from jaxmech._src.app import streams
from jaxmech._src.app.build import build_environment, build_prior, stream_options
from jaxmech._src.app.kinds.common import Kind
from jaxmech._src.core import audit as audit_lib
from jaxmech._src.core.search import SearchConfig
from jaxmech._src.models import design as design_lib


def _run_design(settings, base_dir, progress, out_dir):
    del out_dir
    d = settings.design
    env = build_environment(settings.environment, base_dir)
    prior = build_prior(settings.prior, env.dims)
    dtype = jnp.float64 if settings.precision == "float64" else jnp.float32
    search = SearchConfig(
        steps=d.steps, batch=d.batch, learning_rate=d.learning_rate, temperature_start=d.temperature_start,
        temperature_end=d.temperature_end, constraint_grid=d.constraint_grid,
    )  # fmt: skip
    key = streams.key_for(jax.random.PRNGKey(settings.seed), streams.DESIGN)
    try:
        res = design_lib.design(
            env, prior, key=key, family=None if d.family == "auto" else d.family, objective=d.objective,
            revenue_weight=d.revenue_weight, budget=d.budget, starts=d.starts, search=search, knots=d.knots,
            repair_profiles=d.repair_profiles, polish=d.polish, eval_profiles=d.eval_profiles,
            audit_profiles=settings.audit.profiles,
            misreports=audit_lib.Misreports(**cfg.to_dict(settings.audit.misreports)),
            audit_options=stream_options(settings, progress=progress), check_grid=d.check_grid, reference=d.reference,
            grids=d.lp_grids, dtype=dtype,
        )  # fmt: skip
    except ValueError as e:
        msg = str(e)
        raise cfg.ConfigError(msg if msg.startswith("design:") else f"design: {msg}") from None
    body = {"environment": env.name, "design": res.to_json()}
    return body, None, []


def _fmt(x, digits: int = 6) -> str:
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def _describe(desc: dict) -> str:
    parts = []
    for k, v in desc.items():
        if isinstance(v, list) and v and isinstance(v[0], list):  # a band of knot values: its shape and range
            a = np.asarray(v, np.float64)
            parts.append(f"{k} = {'x'.join(map(str, a.shape))} knots in [{a.min():.4f}, {a.max():.4f}]")
        elif isinstance(v, list):
            parts.append(f"{k} = (" + ", ".join(f"{x:.5f}" for x in v[:8]) + (", ..." if len(v) > 8 else "") + ")")
        else:
            parts.append(f"{k} = {_fmt(v)}")
    return ", ".join(parts)


def _lost_starts(starts) -> str:
    """What became of the starts without a final mechanism (a diverged search, or no budget-feasible shift)."""
    diverged = sum(1 for r in starts if r.get("diverged"))
    infeasible = sum(1 for r in starts if not r["feasible"]) - diverged
    parts = [f"{diverged} diverged (non-finite parameters)"] * bool(diverged)
    parts += [f"{infeasible} not budget feasible after the repair"] * bool(infeasible)
    return f"   ** {', '.join(parts)}" if parts else ""


def _failed(audit: dict, budget: str, tol: float) -> str:
    """A marker naming what the audit found above ``tol`` (an ex ante budget's worst state may run a deficit)."""
    keys = ["regret_max", "ir_violation_max"] + (["deficit_max"] if budget == "ex_post" else [])
    bad = [k.removesuffix("_max").replace("_", " ") for k in keys if audit[k] > tol]
    return f"   ** FAILS: {', '.join(bad)} above tol" if bad else ""


def _design_summary(metrics: dict) -> str:
    d = metrics["design"]
    a, g = d["audit"]["sampled"], d["audit"]["grid"]
    lines = [
        f"{metrics['name']}: design ({d['family']}, {d['objective_name']}, budget {d['budget']}) in "
        f"{metrics['environment']}",
        "",
        f"mechanism       {_describe(d['description'])}",
        f"objective       {d['objective']['mean']:.6f} ± {d['objective']['se']:.2g} ({d['objective']['profiles']:,} "
        "fresh profiles)"
        + (f"   quadrature {d['exact']['value']:.7f} (± {d['exact']['error']:.1g})" if d["exact"] else ""),
        f"welfare         {d['welfare']['mean']:.6f} ± {d['welfare']['se']:.2g}   revenue (-deficit) "
        f"{d['revenue']['mean']:.6f} ± {d['revenue']['se']:.2g}",
        f"starts          {len(d['starts'])}: objective "
        + ", ".join(f"{v:.6f}" for v in d["spread"]["values"])
        + f"   (spread {d['spread']['max'] - d['spread']['min']:.2g})"
        + _lost_starts(d["starts"]),
        "precision       " + ", ".join(f"{k} {_fmt(v, 3)}" for k, v in d["precision"].items()),
        f"exact audit     {a['profiles']:,} profiles: regret max {a['regret_max']:.3g}   IR violation max "
        f"{a['ir_violation_max']:.3g}   deficit max {a['deficit_max']:.3g} (tol {a['tol']:.1g})"
        + _failed(a, d["budget"], a["tol"]),
        f"support grid    {g['points']:,} profiles: regret max {g['regret_max']:.3g}   IR violation max "
        f"{g['ir_violation_max']:.3g}   deficit max {g['deficit_max']:.3g}" + _failed(g, d["budget"], a["tol"]),
    ]
    r = d["reference"]
    if r is None:
        lines.append("LP reference    not asked for (design.reference = false)")
    elif "error" in r:
        lines.append(f"LP reference    unavailable: {r['error']}")
    else:
        per = ", ".join(f"G={gr}: {v:.6f}" for gr, v in zip(r["grids"], r["values"], strict=True))
        second = r.get("limit_second_order")
        lines.append(f"LP reference    {per}   1/G limit {r['limit']:.6f}"
                     + (f"   (second order, + c/G^2: {second:.6f})" if second is not None else ""))  # fmt: skip
        lines.append(
            f"gap             limit - design = {r['gap']:+.2e} ({100 * r['gap_relative']:+.2f}%)"
            + (
                f"   ** {r['message']}"
                if r.get("below_reference") or r.get("above_reference")
                else "   (within 1% of the reference)"
            )  # fmt: skip
        )
    return "\n".join(lines)


KIND = Kind(
    name="design",
    doc=(
        "the best ex post IC and IR mechanism of a family for the model (cold starts, annealed search, exact repair "
        "onto the budget boundary, exact audit) beside the finite-type LP reference and the gap"
    ),
    options=("[design]",),
    run=_run_design,
    summary=_design_summary,
)
