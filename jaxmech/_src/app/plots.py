"""Layer 7 — figures for results folders (matplotlib, optional: ``pip install 'jaxmech[plot]'``).

Every function takes plain NumPy data and a path, writes one PNG, and returns
the path. :func:`available` tells whether matplotlib can be imported; runs
skip plots (and say so in ``metrics.json``) when it cannot.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _plt()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _signal_square(
    ax, fig, grid: np.ndarray, z: np.ndarray, cmap: str, vmin: float, vmax: float, label: str, title: str
):
    """``z[i, j]`` at ``(s_beta, s_sigma) = (grid[i], grid[j])`` on the buyer/seller signal square, with a colour bar."""
    ext = (grid[0], grid[-1], grid[0], grid[-1])
    im = ax.imshow(z.T, origin="lower", extent=ext, cmap=cmap, vmin=vmin, vmax=vmax, aspect="equal")
    fig.colorbar(im, ax=ax, label=label)
    ax.set_xlabel(r"buyer signal $s_\beta$")
    ax.set_ylabel(r"seller signal $s_\sigma$")
    ax.set_title(title, fontsize=9)


def trade_region(
    path: Path,
    grid: np.ndarray,
    trade: np.ndarray,
    cutoff: np.ndarray | None,
    profile: Sequence[float] | None,
    pivots: Sequence[float] | None,
    title: str,
) -> Path:
    """Probability of trade over ``(s_beta, s_sigma)`` (``trade[i, j]`` at ``(grid[i], grid[j])``), the cutoff
    ``s_beta = g(s_sigma)``, and for one profile its pivots ``g_beta(s_sigma)``, ``g_sigma(s_beta)`` (CE eqs. (5)-(6))."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    _signal_square(ax, fig, grid, trade, "Blues", 0.0, 1.0, "P(trade)", title)
    if cutoff is not None:
        ax.plot(cutoff, grid, color="k", lw=1.5, label=r"cutoff $s_\beta = g(s_\sigma)$")
    if profile is not None and pivots is not None:
        sb, ss = profile
        gb, gs = pivots
        ax.plot([sb], [ss], "o", color="crimson", label=f"profile ({sb:.2f}, {ss:.2f})")
        ax.plot([gb, sb], [ss, ss], "--", color="crimson", lw=1)
        ax.plot([gb], [ss], ">", color="crimson", label=rf"$g_\beta(s_\sigma)$ = {gb:.3f}")
        ax.plot([sb, sb], [ss, gs], ":", color="darkorange", lw=1.2)
        ax.plot([sb], [gs], "^", color="darkorange", label=rf"$g_\sigma(s_\beta)$ = {gs:.3f}")
    ax.legend(loc="upper left", fontsize=7)
    return _save(fig, path)


def heatmap(path: Path, grid: np.ndarray, z: np.ndarray, label: str, title: str) -> Path:
    """``z[i, j]`` at ``(s_beta, s_sigma) = (grid[i], grid[j])`` as a colour map."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    lim = float(np.max(np.abs(z))) or 1.0
    _signal_square(ax, fig, grid, z, "RdBu_r", -lim, lim, label, title)
    return _save(fig, path)


def curve_with_band(
    path: Path,
    x: np.ndarray,
    mean: np.ndarray,
    se: np.ndarray,
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    reference: tuple[np.ndarray, np.ndarray, str] | None = None,
    marker: tuple[float, float, str] | None = None,
) -> Path:
    """A Monte Carlo curve with its 95% band (``mean ± 1.96 se``) and an optional closed-form reference."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.fill_between(x, mean - 1.96 * se, mean + 1.96 * se, alpha=0.3, color="C0", label="95% CI")
    ax.plot(x, mean, "o-", color="C0", ms=3, label="Monte Carlo")
    if reference is not None:
        rx, ry, rlabel = reference
        ax.plot(rx, ry, "--", color="k", lw=1, label=rlabel)
    if marker is not None:
        ax.plot([marker[0]], [marker[1]], "*", color="crimson", ms=12, label=marker[2])
    if np.min(mean - 1.96 * se) <= 0 <= np.max(mean + 1.96 * se):
        ax.axhline(0.0, color="grey", lw=0.6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, path)


def bars(path: Path, labels: Sequence[str], mean: np.ndarray, se: np.ndarray, *, ylabel: str, title: str) -> Path:
    """Means with 95% error bars, one bar per label."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(labels)), 4))
    xs = np.arange(len(labels))
    ax.bar(xs, mean, yerr=1.96 * se, capsize=4, color="C0", alpha=0.8)
    ax.set_xticks(xs, labels, rotation=20, ha="right", fontsize=8)
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def strategies(
    path: Path,
    signals: np.ndarray,
    bids: np.ndarray,
    surviving: Sequence[np.ndarray],
    predicted: Sequence[np.ndarray],
    title: str,
) -> Path:
    """Surviving bids per signal (dots) and the predicted equilibrium bids (lines), one panel per agent."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for ax, name, mask, pred in zip(axes, ("buyer offer", "seller demand"), surviving, predicted, strict=True):
        ii, jj = np.nonzero(mask)
        ax.plot(signals[ii], bids[jj], "s", ms=3, color="C0", label="surviving bids")
        ax.plot(signals, pred, "-", color="crimson", lw=1, label="predicted")
        ax.set_xlabel("signal")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("bid")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def search_trajectory(path: Path, log: dict, title: str) -> Path:
    """Objective, constraint, multiplier / penalty, temperature and parameters over the search steps."""
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(9, 6))
    st = np.asarray(log["step"])
    axes[0, 0].plot(st, log["objective"], color="C0")
    axes[0, 0].set_title("relaxed objective", fontsize=9)
    axes[0, 1].plot(st, log["constraint"], color="C3", label="soft max violation")
    axes[0, 1].plot(st, log["violation_max"], color="C1", lw=0.8, label="batch max violation")
    axes[0, 1].axhline(0.0, color="grey", lw=0.6)
    axes[0, 1].set_title("constraint (<= 0 feasible)", fontsize=9)
    axes[0, 1].legend(fontsize=7)
    ax = axes[1, 0]
    ax.semilogy(st, np.maximum(np.asarray(log["multiplier"]), 1e-12), label="multiplier", color="C2")
    ax.semilogy(st, log["penalty"], label="penalty", color="C4")
    ax.semilogy(st, log["temperature"], label="temperature", color="C5")
    ax.legend(fontsize=7)
    ax.set_title("multiplier, penalty, temperature", fontsize=9)
    ax = axes[1, 1]
    first = log["params"][0]
    if "vbar" in first:
        vb = np.asarray([p["vbar"] for p in log["params"]])
        for i in range(vb.shape[1]):
            ax.plot(st, vb[:, i], label=f"vbar_{i + 1}")
        ax.plot(st, [p["sum_minus_cost"] for p in log["params"]], "--", color="k", lw=0.8, label="sum vbar - c")
        ax.set_title("parameters", fontsize=9)
    else:  # a boundary at knots: show it at a few steps (light = early)
        name = next(k for k in first if k != "knots")
        picks = np.unique(np.linspace(0, len(st) - 1, 6).astype(int))
        for j, k in enumerate(picks):
            ax.plot(first["knots"], log["params"][k][name], color=plt.cm.viridis(j / max(len(picks) - 1, 1)),
                    label=f"step {st[k]}")  # fmt: skip
        ax.set_ylim(-0.05, 1.5)
        ax.set_title(f"boundary {name}(x) during the search", fontsize=9)
    ax.legend(fontsize=7)
    for a in axes.flat:
        a.set_xlabel("step", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def regions(
    path: Path, grid: np.ndarray, rule: np.ndarray, first_best: np.ndarray, point, title: str, labels=("s_1", "s_2")
) -> Path:
    """A rule's region (filled) against the first-best region (contour) on the unit square, with a marked point."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4.6))
    ext = (grid[0], grid[-1], grid[0], grid[-1])
    ax.imshow(rule.T, origin="lower", extent=ext, cmap="Greens", vmin=0, vmax=1.6, aspect="equal")
    ax.contour(grid, grid, first_best.T, levels=[0.5], colors="k", linewidths=1.2)
    if point is not None:
        ax.plot([point[0]], [point[1]], "o", color="crimson", label=f"sbar = ({point[0]:.3f}, {point[1]:.3f})")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title + "\n(green: rule provides; black line: first-best boundary)", fontsize=8)
    return _save(fig, path)


def contribution_strategies(
    path: Path, signals: np.ndarray, d: np.ndarray, p: np.ndarray, phi: np.ndarray, title: str
) -> Path:
    """CE Sec. 5.3 strategies per type: pledge ``p_i``, demand ``d_i`` and the cutoff ``phi_-i``, one panel per agent."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for k, ax in enumerate(axes):
        ax.plot(signals, p[k], label=f"pledge p_{k + 1}")
        ax.plot(signals, d[k], label=f"demand d_{k + 1}")
        ax.plot(signals, phi[k], ":", color="grey", label=f"phi_-{k + 1}(s_{k + 1})")
        ax.set_xlabel(f"s_{k + 1}")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def outcome_menu(
    path: Path,
    x: np.ndarray,
    outcome: np.ndarray,
    values: np.ndarray,
    payments: np.ndarray,
    names: Sequence[str],
    witnesses: np.ndarray | None,
    title: str,
) -> Path:
    """One agent's menu at a fixed ``s_-i`` (CE Lemma 1): ``v_i(a, x) - t(a)`` per outcome along the agent's first
    signal coordinate, the rule's outcome regions underneath, cycle witnesses (if any) marked, and the payments.

    ``outcome[j]`` is the rule's outcome at ``x[j]``, ``values[j, a] = v_i(a, x[j])``, ``payments[a] = t(a)``.
    Ex post IC at this ``s_-i`` means the rule's outcome is on the upper envelope everywhere.
    """
    plt = _plt()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [2.2, 1]})
    k = values.shape[1]
    colors = plt.get_cmap("tab10")
    util = values - payments[None, :]
    for a in range(k):
        if np.all(np.isfinite(util[:, a])):
            ax.plot(x, util[:, a], color=colors(a % 10), lw=1, alpha=0.6, label=f"{names[a]}: v_i(a, x) - t(a)")
    chosen = util[np.arange(len(x)), outcome]
    ax.plot(x, chosen, color="k", lw=2, label="the rule's choice")
    lo = float(np.nanmin(util[np.isfinite(util)]))
    for a in range(k):
        ax.fill_between(x, lo - 0.05, lo, where=outcome == a, color=colors(a % 10), step="mid")
    if witnesses is not None:
        for w in witnesses:
            ax.axvline(float(w), color="crimson", ls=":", lw=1.2)
        ax.plot([], [], color="crimson", ls=":", label="cycle witnesses")
    ax.set_xlabel("own signal (first coordinate)")
    ax.set_ylabel("utility from each menu item")
    ax.legend(fontsize=7)
    bx.bar([str(n) for n in names], payments, color=[colors(a % 10) for a in range(k)])
    bx.set_ylabel("payment t(a) (certificate, z-bar normalized)")
    bx.tick_params(axis="x", labelsize=7, rotation=30)
    fig.suptitle(title, fontsize=8)
    return _save(fig, path)


def signal_classes(
    path: Path, grid: np.ndarray, v_own: np.ndarray, v_other: np.ndarray, price: float, point, title: str
) -> Path:
    """B Figs. 1b / 2: buyer i's signal square at a fixed ``s_-i``: his classes (contours of ``V_i``), the other
    buyers' value on them (colour), the pivotal class ``V_i = t*_i`` (thick) and the win region ``V_i > t*_i`` (hatched).
    ``v_own[a, b]``, ``v_other[a, b]`` at ``(s_i1, s_i2) = (grid[a], grid[b])``; ``point`` the maximizer ``s^m_ij``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 4.8))
    lim = (float(v_other.min()), float(v_other.max()))
    _signal_square(ax, fig, grid, v_other, "viridis", lim[0], lim[1] if lim[1] > lim[0] else lim[0] + 1e-6,
                   r"max$_{j \ne i}$ $V_j$ on buyer i's classes", title)  # fmt: skip
    cs = ax.contour(grid, grid, v_own.T, levels=10, colors="white", linewidths=0.7)
    ax.clabel(cs, fontsize=6, fmt="%.2f")
    if np.isfinite(price) and v_own.min() < price < v_own.max():
        ax.contour(grid, grid, v_own.T, levels=[price], colors="crimson", linewidths=2.2)
        ax.contourf(grid, grid, (v_own > price).T.astype(float), levels=[0.5, 1.5], colors="none", hatches=["//"])
    if point is not None:
        ax.plot([point[0]], [point[1]], "*", color="crimson", ms=12, label=r"$s^m_{ij}$ (max of $V_j$ on the class)")
        ax.legend(fontsize=7, loc="lower left")
    ax.set_xlabel(r"$s_{i1}$")
    ax.set_ylabel(r"$s_{i2}$")
    ax.set_title(title + f"\nred: pivotal class V_i = t*_i = {price:.3f}; hatched: buyer i wins", fontsize=8)
    return _save(fig, path)


def grouped_bars(
    path: Path,
    groups: Sequence[str],
    labels: Sequence[str],
    mean: np.ndarray,
    se: np.ndarray,
    *,
    ylabel: str,
    title: str,
) -> Path:
    """Means with 95% error bars: one group per entry of ``groups``, one bar per label (``mean[g, k]``)."""
    plt = _plt()
    g, k = mean.shape
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * g * k / 2), 4))
    width = 0.8 / k
    xs = np.arange(g)
    for j in range(k):
        ax.bar(xs + (j - (k - 1) / 2) * width, mean[:, j], width, yerr=1.96 * se[:, j], capsize=3, label=labels[j])
    ax.set_xticks(xs, groups, rotation=15, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def frontier(
    path: Path, series: Sequence[tuple[np.ndarray, np.ndarray, str, str]], *, xlabel: str, ylabel: str, title: str
) -> Path:
    """Several ``(x, y, label, style)`` series on one axes (e.g. regret against non-triviality)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for x, y, label, style in series:
        ax.plot(x, y, style, label=label, ms=7)
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)
