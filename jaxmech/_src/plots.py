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
    im = ax.imshow(
        trade.T, origin="lower", extent=(grid[0], grid[-1], grid[0], grid[-1]), cmap="Blues", vmin=0, vmax=1, aspect="equal"
    )
    fig.colorbar(im, ax=ax, label="P(trade)")
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
    ax.set_xlabel(r"buyer signal $s_\beta$")
    ax.set_ylabel(r"seller signal $s_\sigma$")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def heatmap(path: Path, grid: np.ndarray, z: np.ndarray, label: str, title: str) -> Path:
    """``z[i, j]`` at ``(s_beta, s_sigma) = (grid[i], grid[j])`` as a colour map."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    lim = float(np.max(np.abs(z))) or 1.0
    im = ax.imshow(
        z.T, origin="lower", extent=(grid[0], grid[-1], grid[0], grid[-1]), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="equal"
    )
    fig.colorbar(im, ax=ax, label=label)
    ax.set_xlabel(r"buyer signal $s_\beta$")
    ax.set_ylabel(r"seller signal $s_\sigma$")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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
) -> Path:
    """A Monte Carlo curve with its 95% band (``mean ± 1.96 se``) and an optional closed-form reference."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.fill_between(x, mean - 1.96 * se, mean + 1.96 * se, alpha=0.3, color="C0", label="95% CI")
    ax.plot(x, mean, "o-", color="C0", ms=3, label="Monte Carlo")
    if reference is not None:
        rx, ry, rlabel = reference
        ax.plot(rx, ry, "--", color="k", lw=1, label=rlabel)
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
