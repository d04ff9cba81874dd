"""What several experiment kinds share: the :class:`Kind` record, figures, condition checks, summary pieces."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.app import plots
from jaxmech._src.app.build import Built, is_public, is_trade
from jaxmech._src.core import engine
from jaxmech._src.models import conditions
from jaxmech._src.models.bayesian import replay


class Kind(NamedTuple):
    """One experiment kind (``[experiment] kind = name``), registered once in :data:`jaxmech._src.app.kinds.KINDS`.

    ``run(settings, base_dir, progress, out_dir) -> (body, info, figs)`` computes the metrics body, the audit's
    :class:`~jaxmech._src.core.engine.StreamInfo` (or ``None``) and the plot file names written into ``out_dir``;
    a kind with ``checkpoints`` also takes ``checkpoint=`` (a :class:`~jaxmech._src.core.reduction.Checkpoint`,
    or ``None``) and so supports ``jaxmech run --resume``. ``summary(metrics) -> str`` is its readable table.
    ``doc`` and ``options`` (the ``[experiment]`` keys it reads) are what ``jaxmech list`` prints.
    """

    name: str
    doc: str
    options: tuple[str, ...]
    run: Callable[..., tuple[dict, engine.StreamInfo | None, list[str]]]
    summary: Callable[[dict], str]
    checkpoints: bool = False


def trade_figures(built: Built, out_dir: Path, title: str) -> list[str]:
    """Trade region with the cutoff and one profile's pivots, and the deficit over the square (CE Sec. 4)."""
    env, mech = built.env, built.mechanism
    dtype = built.dtype
    grid = np.linspace(0.0, 1.0, 201)
    sb, ss = np.meshgrid(grid, grid, indexing="ij")
    prof = jnp.asarray(np.stack([sb, ss], -1).reshape(-1, 2), dtype)
    p = mech.params
    trade = np.asarray(jax.jit(jax.vmap(lambda m: mech.decide(p, m)))(prof)).reshape(sb.shape)
    deficit = np.asarray(
        jax.jit(jax.vmap(lambda m: env.cost(mech.decide(p, m)) - jnp.sum(mech.pay(p, m))))(prof)
    ).reshape(sb.shape)
    cutoff = pivots = None
    profile = (0.7, 0.3)
    if mech.kinks is not None:
        col = jnp.asarray(np.stack([np.full_like(grid, 0.5), grid], -1), dtype)
        cutoff = np.asarray(jax.jit(jax.vmap(lambda m: mech.kinks(p, m, 0)[0, 0]))(col))
        m0 = jnp.asarray(profile, dtype)
        pivots = (float(mech.kinks(p, m0, 0)[0, 0]), float(mech.kinks(p, m0, 1)[0, 0]))
    files = [
        plots.trade_region(out_dir / "trade_region.png", grid, trade, cutoff, profile, pivots, title),
        plots.heatmap(out_dir / "deficit.png", grid, deficit, "deficit  -(t_beta + t_sigma)", f"deficit — {title}"),
    ]
    return [f.name for f in files]


def condition_checks(built: Built) -> dict | None:
    if is_trade(built.env) and built.env.values is not None:
        return conditions.check_bilateral(built.env.values)
    if is_public(built.env):
        mono = conditions.value_monotonicity(built.env.values) if built.env.n_agents == 2 else None
        out = {"difference_class": conditions.difference_class(built.env.values, built.env.n_agents).as_dict()}
        if mono is not None:
            out.update({k: v.as_dict() for k, v in mono.items()})
        return out
    return None


def mean_se_text(x: dict, digits: int = 4) -> str:
    return f"{x['mean']:.{digits}g} ± {x['se']:.2g}"


def ex_post_summary(rep: dict) -> dict:
    """The ex post side, next to the interim one: max regret / IR violation per agent with witnesses."""
    return {
        "regret_max": [r["max"] for r in rep["regret"]],
        "regret_p_above_tol": [r["p_above_tol"] for r in rep["regret"]],
        "ir_violation_max": [r["max"] for r in rep["ir_violation"]],
        "ir_p_above_tol": [r["p_above_tol"] for r in rep["ir_violation"]],
        "tol": rep["tol"],
    }


def worst_witness(built, rep: dict) -> dict | None:
    """The largest ex post regret over agents, replayed from scratch (None when there is none above tol)."""
    i = int(np.argmax([r["max"] for r in rep["regret"]]))
    r = rep["regret"][i]
    if r["max"] <= rep["tol"]:
        return None
    dtype = built.dtype
    w = replay(
        built.env, built.mechanism, jnp.asarray(r["worst_profile"], dtype), i, jnp.asarray(r["worst_misreport"], dtype)
    )
    w["audit_regret"] = r["max"]
    return w


def regret_summary(rep: dict) -> dict:
    return {
        "tol": rep["tol"],
        "max": [r["max"] for r in rep["regret"]],
        "p_above_tol": [r["p_above_tol"]["p"] for r in rep["regret"]],
        "worst_profile": [r["worst_profile"] for r in rep["regret"]],
        "worst_misreport": [r["worst_misreport"] for r in rep["regret"]],
        "misreports_per_profile": rep.get("misreports"),
    }


def clock() -> float:
    import time

    return time.perf_counter()
