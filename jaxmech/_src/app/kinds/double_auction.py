"""The ``double_auction`` kind (CE Sec. 4.3): iterated elimination of dominated bids."""

from __future__ import annotations

import time

import numpy as np

from jaxmech._src.app import config as cfg
from jaxmech._src.app import plots
from jaxmech._src.app.build import build_environment, is_trade
from jaxmech._src.app.kinds.common import Kind
from jaxmech._src.models import conditions, double_auction


def _run_double_auction(settings, base_dir, progress, out_dir):
    env = build_environment(settings.environment, base_dir)
    if not is_trade(env):
        raise cfg.ConfigError("environment.kind: the double auction needs bilateral_trade")
    ex = settings.experiment
    t0 = time.perf_counter()
    res = double_auction.solve_double_auction(env.values, n_signals=ex.signals, n_bids=ex.bids)
    metrics = {
        "environment": env.name,
        "double_auction": double_auction.result_to_metrics(res),
        "conditions": conditions.check_bilateral(env.values),
        "solve_s": time.perf_counter() - t0,
    }
    if ex.parameter is not None:  # grid refinement: the same solve with more signals (and 2 n - 1 bids) per value
        if ex.parameter != "experiment.signals":
            raise cfg.ConfigError(f"experiment.parameter: the double auction refines only experiment.signals, got {ex.parameter!r}")
        metrics["refinement"] = [_refined(env, ex.signals, ex.bids, res)]
        for v in ex.values:
            n = int(v)
            if n != v or n < 2:
                raise cfg.ConfigError(f"experiment.values: signal grid sizes must be integers >= 2, got {v}")
            r = double_auction.solve_double_auction(env.values, n_signals=n, n_bids=2 * n - 1)
            metrics["refinement"].append(_refined(env, n, 2 * n - 1, r))
    figs = []
    if ex.plots and plots.available():
        f = plots.strategies(
            out_dir / "double_auction.png", np.asarray(res.signals), np.asarray(res.bids),
            [np.asarray(res.alive[0]), np.asarray(res.alive[1])],
            [np.asarray(res.predicted[0]), np.asarray(res.predicted[1])],
            f"CE Sec. 4.3 double auction in {env.name}: surviving bids after {int(res.rounds)} rounds",
        )  # fmt: skip
        figs.append(f.name)
    return metrics, None, figs


def _refined(env, signals: int, bids: int, res) -> dict:
    m = double_auction.result_to_metrics(res)
    keep = (
        "signal_step",
        "bid_step",
        "efficient_share",
        "mean_deficit",
        "mean_deficit_low",
        "vcg_mean_deficit",
        "deficit_interval",
        "auction_deficit_interval",
        "spread",
    )
    return {"signals": signals, "bids": bids, **{k: m[k] for k in keep}}


def _double_auction_summary(metrics: dict) -> str:
    d = metrics["double_auction"]

    def fmt(v):
        if isinstance(v, dict):
            return ", ".join(f"{k} {fmt(x)}" for k, x in v.items())
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    def short(v):
        return not isinstance(v, (list, dict)) or (
            isinstance(v, dict) and all(isinstance(x, float) for x in v.values())
        )

    lines = [f"{metrics['name']}: CE Sec. 4.3 double auction in {metrics['environment']}"]
    lines += [f"  {k:<24} {fmt(v)}" for k, v in d.items() if short(v)]
    return "\n".join(lines)


KIND = Kind(
    name="double_auction",
    doc="CE Sec. 4.3: iterated elimination of ex post weakly dominated bids on a grid (parameter = "
    "'experiment.signals' with values: the same on finer grids, 2 n - 1 bids)",
    options=("signals", "bids", "parameter", "values"),
    run=_run_double_auction,
    summary=_double_auction_summary,
)
