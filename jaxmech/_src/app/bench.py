"""Benchmarks (issue 8): jaxmech through its public API against vectorized NumPy and PyTorch eager, one run.

Every workload prints, on the same machine and in the same run, the rate of
jaxmech (``jm.audit`` / ``jm.search`` / ``certify.certify``, compile excluded),
of a vectorized NumPy implementation of the same statistic, and of the same
code on PyTorch eager when ``torch`` is installed (``pip install jaxmech[bench]``;
never a runtime dependency), their ratios, the compile time, peak device
memory (where the backend reports it), the host's peak RSS, the device and the
versions. The baselines draw their own profiles (same distribution, other
draws); their statistics agree with jaxmech's within Monte Carlo error, which
the table shows.

Workloads (unit in brackets):

- W1 bilateral trade, ``v_i = s_i + a s_-i`` (a = 0.5), efficient rule + generalized VCG payments
  (CE Sec. 4.4, eqs. (5)-(6)), both agents, K = 256 grid misreports + 2 kink candidates [profile x
  agent x misreport evaluations / s].
- W2 public good, n = 8, ``v_i = s_i + a sum_{j != i} s_j`` (a = 0.2), c = 4, threshold contribution
  rule ``vbar_i = c / n`` with pivot payments (CE Def 12, Thm 9), K = 64 grid misreports + 2 kinks
  per agent [evaluations / s].
- W3 B Example 1 (``V_i = p_i + c_i c_j``, prices ``p_j + c_j^2``), 16 x 16 misreport grid + 6 kink
  candidates per buyer [evaluations / s].
- W4 one step of the CE Thm 9 second-best search (threshold family, n = 2, a = 0.3, augmented
  Lagrangian, Adam) on a fresh batch of 2^20 profiles (quick: 2^16) [steps / s].
- W5 CE Thm 1 certificates for ``project_choice`` with k = 16 outcomes, 256 own-signal samples per
  ``s_-i`` [certificates / s].

The CLI ``jaxmech bench [--workload W] [--quick] [--float64]`` and the scripts
``benchmarks/bench_w*.py`` call :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

import jaxmech as jm
from jaxmech import __version__
from jaxmech._src.app import config as cfg
from jaxmech._src.core import mechanisms
from jaxmech._src.models import certify

A_TRADE, A_PUBLIC, N_PUBLIC, COST_PUBLIC = 0.5, 0.2, 8, 4.0
A_SEARCH, K_OUTCOMES, A_OUTCOMES = 0.3, 16, 0.5
KINK_EPS = 1e-4


class Row(NamedTuple):
    """One path of a workload: its rate, the size it ran at, and the statistics it computed."""

    path: str
    size: int  # profiles (W1-W3), batch (W4), s_-i (W5)
    rate: float
    compile_s: float | None
    stats: dict[str, float]


class Sizes(NamedTuple):
    jax: int
    numpy: int
    torch: int
    generic: bool = True  # also the generic (bisection-pivot) jaxmech path
    block_size: int | None = None  # audit blocks / chunks (None: the workload's CPU defaults)
    chunk_size: int | None = None


# --------------------------------------------------------------------------
# array back ends for the baselines: one implementation, NumPy or PyTorch eager


class _NumpyXP:
    name = "numpy"

    def __init__(self, float64: bool, seed: int):
        self.f = np.float64 if float64 else np.float32
        self.rng = np.random.default_rng(seed)

    def uniform(self, *shape):
        return self.rng.random(shape, dtype=self.f)

    def linspace(self, lo, hi, k):
        return np.linspace(lo, hi, k, dtype=self.f)

    def asarray(self, x):
        return np.asarray(x, self.f)

    where = staticmethod(np.where)
    maximum = staticmethod(np.maximum)
    clip = staticmethod(np.clip)
    exp = staticmethod(np.exp)
    log = staticmethod(np.log)

    @staticmethod
    def relu(x):
        return np.maximum(x, 0)

    @staticmethod
    def amax(x, axis):
        return x.max(axis=axis)

    @staticmethod
    def all(x, axis):
        return x.all(axis=axis)

    @staticmethod
    def any(x, axis):
        return x.any(axis=axis)

    @staticmethod
    def stack(xs, axis):
        return np.stack(xs, axis=axis)

    @staticmethod
    def argmax(x, axis):
        return x.argmax(axis=axis)

    @staticmethod
    def take(x, idx, axis):
        return np.take_along_axis(x, idx, axis=axis)

    @staticmethod
    def eye(k):
        return np.eye(k, dtype=bool)


class _TorchXP:
    name = "torch"

    def __init__(self, float64: bool, seed: int):
        import torch

        self.torch = torch
        self.f = torch.float64 if float64 else torch.float32
        self.device = torch_device()
        self.gen = torch.Generator(device=self.device).manual_seed(seed)

    def uniform(self, *shape):
        return self.torch.rand(shape, generator=self.gen, dtype=self.f, device=self.device)

    def linspace(self, lo, hi, k):
        return self.torch.linspace(lo, hi, k, dtype=self.f, device=self.device)

    def asarray(self, x):
        return self.torch.as_tensor(np.array(x), dtype=self.f, device=self.device)

    def where(self, c, a, b):
        return self.torch.where(c, a, b)

    def maximum(self, a, b):
        return self.torch.maximum(a, b)

    def clip(self, x, lo, hi):
        return self.torch.clamp(x, lo, hi)

    def exp(self, x):
        return self.torch.exp(x)

    def log(self, x):
        return self.torch.log(x)

    def relu(self, x):
        return self.torch.clamp_min(x, 0)

    def amax(self, x, axis):
        return self.torch.amax(x, dim=axis)

    def all(self, x, axis):
        return self.torch.all(x, dim=axis)

    def any(self, x, axis):
        return self.torch.any(x, dim=axis)

    def stack(self, xs, axis):
        return self.torch.stack(xs, dim=axis)

    def argmax(self, x, axis):
        return self.torch.argmax(x, dim=axis)

    def take(self, x, idx, axis):
        return self.torch.take_along_dim(x, idx, dim=axis)

    def eye(self, k):
        return self.torch.eye(k, dtype=self.torch.bool, device=self.device)


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_device() -> str:
    """The PyTorch baseline runs where jaxmech runs: ``cuda`` when JAX's backend is a GPU and torch sees one."""
    import jax
    import torch

    return "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"


class _Moments:
    """Float64 running sums / maxima of per-profile arrays (the baselines' reducer)."""

    def __init__(self):
        self.n = 0
        self.sums: dict[str, float] = {}
        self.sumsq: dict[str, float] = {}
        self.maxs: dict[str, float] = {}

    def add(self, name: str, x) -> None:
        x = np.asarray(x, np.float64)
        self.sums[name] = self.sums.get(name, 0.0) + float(x.sum())
        self.sumsq[name] = self.sumsq.get(name, 0.0) + float((x * x).sum())
        self.maxs[name] = max(self.maxs.get(name, -math.inf), float(x.max()))

    def stats(self) -> dict[str, float]:
        out = {}
        for k, s in self.sums.items():
            mean = s / self.n
            var = max(self.sumsq[k] / self.n - mean * mean, 0.0)
            out[f"{k}_mean"] = mean
            out[f"{k}_se"] = math.sqrt(var / max(self.n - 1, 1))
            out[f"{k}_max"] = self.maxs[k]
        return out


def _to_np(xp, x):
    return x.cpu().numpy() if hasattr(x, "cpu") else x


def _chunked(xp, n: int, chunk: int, one: Callable) -> dict[str, float]:
    mom = _Moments()
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        mom.n += m
        for name, x in one(xp, m).items():
            mom.add(name, _to_np(xp, x))
    return mom.stats()


# --------------------------------------------------------------------------
# baselines: the same statistics, written by hand


def w1_baseline(xp, n: int, k: int = 256, a: float = A_TRADE, chunk: int = 4096) -> dict[str, float]:
    """W1 by hand: closed-form pivots ``g_beta = s_sigma``, ``g_sigma = s_beta`` (CE Sec. 4.4), grid + kink misreports."""
    grid = xp.linspace(0.0, 1.0, k)

    def one(xp, m):
        sb, ss = xp.uniform(2, m)  # one draw (consecutive small torch.rand calls looked correlated)
        vb, vs = sb + a * ss, ss + a * sb
        trade = sb > ss
        gain_b = vb - (1 + a) * ss  # buyer's utility in trade (pays v_beta(g_beta, s_sigma) = (1 + a) s_sigma)
        gain_s = (1 + a) * sb - vs  # seller's (receives v_sigma(s_beta, g_sigma) = (1 + a) s_beta)
        ub, us = xp.where(trade, gain_b, 0.0), xp.where(trade, gain_s, 0.0)
        out = {}
        for name, piv, gain, u, trades_at in (
            ("buyer", ss, gain_b, ub, lambda x, p: x > p),  # the buyer trades iff his report x > s_sigma
            ("seller", sb, gain_s, us, lambda x, p: p > x),  # the seller iff s_beta > her report x
        ):
            kinks = xp.stack([xp.clip(piv - KINK_EPS, 0.0, 1.0), xp.clip(piv + KINK_EPS, 0.0, 1.0)], 1)
            on_grid = xp.amax(xp.where(trades_at(grid[None, :], piv[:, None]), gain[:, None], 0.0), 1)
            at_kinks = xp.amax(xp.where(trades_at(kinks, piv[:, None]), gain[:, None], 0.0), 1)
            out[f"regret_{name}"] = xp.relu(xp.maximum(on_grid, at_kinks) - u)
            out[f"ir_{name}"] = xp.relu(-u)
        out["deficit"] = xp.where(trade, (1 + a) * (sb - ss), 0.0)
        return out

    return _chunked(xp, n, chunk, one)


def w2_baseline(
    xp, n: int, k: int = 64, agents: int = N_PUBLIC, a: float = A_PUBLIC, cost: float = COST_PUBLIC, chunk: int = 2048
) -> dict[str, float]:
    """W2 by hand: threshold rule ``v_i >= vbar_i`` for all ``i``; pivot ``x_i^* = max_j`` of the linear roots (CE Thm 9)."""
    grid = xp.linspace(0.0, 1.0, k)
    vbar = cost / agents

    def one(xp, m):
        s = xp.uniform(m, agents)
        v = (1 - a) * s + a * s.sum(1)[:, None]  # v_i = s_i + a sum_{j != i} s_j
        prov = xp.all(v >= vbar, 1)
        out, pay = {}, 0.0
        for i in range(agents):
            slope = xp.asarray([1.0 if j == i else a for j in range(agents)])  # d v_j / d s_i
            xstar = xp.clip(xp.amax(s[:, i : i + 1] + (vbar - v) / slope, 1), 0.0, 1.0)  # (m,)
            t_if = v[:, i] + (xstar - s[:, i])  # v_i(x*, s_-i): the payment if provided
            u = xp.where(prov, v[:, i] - t_if, 0.0)
            cands = [grid[None, :] + 0.0 * s[:, i : i + 1]]
            cands.append(xp.stack([xp.clip(xstar - KINK_EPS, 0.0, 1.0), xp.clip(xstar + KINK_EPS, 0.0, 1.0)], 1))
            best = None
            for x in cands:  # (m, C): provide at (x, s_-i) iff all v_j + slope_j (x - s_i) >= vbar
                vx = v[:, None, :] + slope[None, None, :] * (x - s[:, i : i + 1])[:, :, None]
                ux = xp.amax(xp.where(xp.all(vx >= vbar, 2), (v[:, i] - t_if)[:, None], 0.0), 1)
                best = ux if best is None else xp.maximum(best, ux)
            out[f"regret_{i}"] = xp.relu(best - u)
            pay = pay + xp.where(prov, t_if, 0.0)
        out["deficit"] = xp.where(prov, cost, 0.0) - pay
        out["provided"] = xp.where(prov, 1.0, 0.0)
        return out

    return _chunked(xp, n, chunk, one)


def _w3_kinks(xp, p, c, price, cj):
    """B eq. (4) boundary ``p + c c_j = price`` on the diagonal and the two coordinate lines through ``(p, c)``."""
    diag = xp.clip(price / (1 + cj), 0.0, 1.0)
    along_p = xp.clip(price - c * cj, 0.0, 1.0)
    along_c = xp.clip((price - p) / xp.maximum(cj, xp.asarray(1e-30)), 0.0, 1.0)
    pts = [(diag, diag), (along_p, c), (p, along_c)]
    ps = xp.stack([q for q, _ in pts for _ in (0, 1)], 1)
    cs = xp.stack([r for _, r in pts for _ in (0, 1)], 1)
    sign = xp.asarray([-1.0, 1.0] * 3)[None, :]
    return xp.clip(ps + sign * KINK_EPS, 0.0, 1.0), xp.clip(cs + sign * KINK_EPS, 0.0, 1.0)


def w3_baseline(xp, n: int, k: int = 16, chunk: int = 4096) -> dict[str, float]:
    """W3 by hand: B Example 1, the B eq. (4) allocation at admissible prices ``p_j + c_j^2``, grid + kink misreports."""
    g = xp.linspace(0.0, 1.0, k)
    gp = (g[:, None] + 0.0 * g[None, :]).reshape(-1)
    gc = (0.0 * g[:, None] + g[None, :]).reshape(-1)

    def one(xp, m):
        p1, c1, p2, c2 = xp.uniform(4, m)
        t1, t2 = p2 + c2 * c2, p1 + c1 * c1
        sur1, sur2 = p1 + c1 * c2 - t1, p2 + c2 * c1 - t2
        w1 = (sur1 >= sur2) & (sur1 > 0)  # the first maximizer wins ties
        w2 = (sur2 > sur1) & (sur2 > 0)
        out = {}
        for name, (p, c, pj, cj, price, sur, wins, first) in {
            "buyer1": (p1, c1, p2, c2, t1, sur1, w1, True),
            "buyer2": (p2, c2, p1, c1, t2, sur2, w2, False),
        }.items():
            u = xp.where(wins, sur, 0.0)
            best = None
            kp, kc = _w3_kinks(xp, p, c, price, cj)
            for xp_, xc_ in ((gp[None, :] + 0.0 * p[:, None], gc[None, :] + 0.0 * p[:, None]), (kp, kc)):
                mine = xp_ + xc_ * cj[:, None] - price[:, None]  # V_i(x, s_j) - t_i(s_j)
                theirs = pj[:, None] + cj[:, None] * xc_ - (xp_ + xc_ * xc_)  # V_j - t_j(x)
                win = ((mine >= theirs) if first else (mine > theirs)) & (mine > 0)
                ux = xp.amax(xp.where(win, sur[:, None], 0.0), 1)
                best = ux if best is None else xp.maximum(best, ux)
            out[f"regret_{name}"] = xp.relu(best - u)
        out["deficit"] = -(xp.where(w1, t1, 0.0) + xp.where(w2, t2, 0.0))
        return out

    return _chunked(xp, n, chunk, one)


def w5_baseline(xp, s_minus, samples, a: float = A_OUTCOMES, tol: float = 1e-5) -> dict[str, Any]:
    """W5 by hand: CE Lemma 1 graphs ``d(a, a')`` and max-plus walks (<= k edges), payments, for each ``s_-i``.

    ``s_minus`` ``(P, k)`` is the other agent's signal, ``samples`` ``(S, k)`` the own signals (agent 0 of
    ``project_choice(k, 2, a)``: ``v_0(q) = x_q + a (x_q + c_q) / 2``, efficient rule ``argmax x_q + c_q``).
    """
    k = samples.shape[1]
    vals = (1 + a / 2) * samples[None, :, :] + (a / 2) * s_minus[:, None, :]  # (P, S, k)
    out = xp.argmax(samples[None, :, :] + s_minus[:, None, :], 2)  # (P, S)
    own = xp.take(vals, out[:, :, None], 2)
    gain = vals - own
    neg = -math.inf
    d = xp.stack([xp.amax(xp.where((out == j)[:, :, None], gain, neg), 1) for j in range(k)], 1)  # (P, k, k)
    occurs = xp.stack([xp.any(out == j, 1) for j in range(k)], 1)  # (P, k)
    eye = xp.eye(k)
    both = occurs[:, :, None] & occurs[:, None, :]
    D = xp.where(both & ~eye[None], d, neg)
    W, top, longest = D, None, D
    for m in range(1, k + 1):
        if m > 1:
            W = xp.amax(W[:, :, :, None] + D[:, None, :, :], 2)  # walks of m edges
            if m < k:
                longest = xp.maximum(longest, W)
        diag = xp.amax(xp.amax(xp.where(eye[None], W, neg), 2), 1)  # best closed walk of m edges
        top = diag if top is None else xp.maximum(top, diag)
    zero_diag = xp.where(eye, xp.asarray(0.0), xp.asarray(neg))
    L = xp.where(both, xp.maximum(longest, zero_diag[None]), neg)  # longest paths, <= k - 1 edges
    r = xp.argmax(1 * occurs, 1)  # reference outcome: the first that occurs
    Lr = xp.take(L, r[:, None, None], 1)[:, 0, :]  # L[r, :]
    Lc = xp.take(L, r[:, None, None], 2)[:, :, 0]  # L[:, r]
    t = xp.where(occurs, 0.5 * (Lr - Lc), xp.asarray(0.0))
    u = own[:, :, 0] - xp.take(t, out, 1)
    umin = xp.amax(-u, 1)
    t = t - umin[:, None]  # z-bar: min_x v(a_x, x) - t(a_x) = 0
    return {"feasible": _to_np(xp, top <= tol), "max_walk": _to_np(xp, top), "payments": _to_np(xp, t)}


def _w4_problem(xp, batch, grid_points: int = 33):
    s = xp.uniform(batch, 2)
    g = xp.linspace(0.0, 1.0, grid_points)
    grid = xp.stack([(g[:, None] + 0.0 * g[None, :]).reshape(-1), (0.0 * g[:, None] + g[None, :]).reshape(-1)], 1)
    return s, grid


def w4_loss_and_grad_numpy(s, grid, vbar, temperature, lam, rho, tau, a=A_SEARCH, cost=1.0):
    """The augmented Lagrangian of the threshold-family search (CE Thm 9) and its gradient, by hand (NumPy).

    Objective ``mean(q_T(s) (v_1 + v_2 - c))``, ``q_T = prod_i sigmoid((v_i - vbar_i) / T)``;
    constraint: the soft max over the batch and the support grid of ``c - sum_i t_i(s)`` in provided
    states, ``t_i = v_i(x_i^*, s_-i)`` with ``x_i^* = clip(max_j x_ij)``, ``x_ij = s_i + (vbar_j - v_j) / slope_ij``.
    """
    n = s.shape[1]

    def values(x):
        return (1 - a) * x + a * x.sum(1, keepdims=True)

    v = values(s)
    sig = 1.0 / (1.0 + np.exp(-(v - vbar) / temperature))
    q = sig.prod(1)
    welfare = v.sum(1) - cost
    obj = np.mean(q * welfare)
    dobj = np.mean((q * welfare)[:, None] * (1.0 - sig), 0) * (-1.0 / temperature)
    sc = np.concatenate([s, grid])
    vc = values(sc)
    viol = np.full(len(sc), cost)
    dviol = np.zeros((len(sc), n))
    for i in range(n):
        slope = np.where(np.arange(n) == i, 1.0, a)
        x = sc[:, i : i + 1] + (vbar - vc) / slope
        j = x.argmax(1)
        xs = x[np.arange(len(sc)), j]
        interior = (xs > 0) & (xs < 1)
        viol -= vc[:, i] + (np.clip(xs, 0.0, 1.0) - sc[:, i])
        dviol[np.arange(len(sc)), j] -= np.where(interior, 1.0 / slope[j], 0.0)
    w = np.all(vc >= vbar, 1).astype(sc.dtype)
    mx = np.max(np.where(w > 0, viol, -np.inf))
    e = w * np.exp((viol - mx) / tau)
    con = mx + tau * np.log(e.sum() / w.sum())
    dcon = (e / e.sum()) @ dviol
    slack = max(0.0, con + lam / rho)
    loss = -obj + 0.5 * rho * (slack**2 - (lam / rho) ** 2)
    return loss, -dobj + rho * slack * dcon


def _adam_numpy(params, grad, state, lr, b1=0.9, b2=0.999, eps=1e-8):
    m, v, t = state
    t += 1
    m = b1 * m + (1 - b1) * grad
    v = b2 * v + (1 - b2) * grad * grad
    upd = -lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return params + upd, (m, v, t)


def w4_step_torch(xp, s, grid, vbar, opt, temperature, lam, rho, tau, a=A_SEARCH, cost=1.0):
    """The same loss on PyTorch, gradient by autograd, ``torch.optim.Adam`` step."""
    torch = xp.torch
    n = s.shape[1]

    def values(x):
        return (1 - a) * x + a * x.sum(1, keepdim=True)

    opt.zero_grad()
    v = values(s)
    q = torch.sigmoid((v - vbar) / temperature).prod(1)
    obj = torch.mean(q * (v.sum(1) - cost))
    sc = torch.cat([s, grid])
    vc = values(sc)
    viol = cost - sum(
        vc[:, i] + torch.clamp((sc[:, i : i + 1] + (vbar - vc) / torch.where(torch.arange(n, device=s.device) == i, 1.0, a)).amax(1), 0.0, 1.0)
        - sc[:, i]
        for i in range(n)
    )  # fmt: skip
    w = torch.all(vc >= vbar.detach(), 1).to(sc.dtype)
    mx = torch.max(torch.where(w > 0, viol, -math.inf)).detach()
    con = mx + tau * torch.log((w * torch.exp((viol - mx) / tau)).sum() / w.sum())
    loss = -obj + 0.5 * rho * (torch.clamp_min(con + lam / rho, 0.0) ** 2 - (lam / rho) ** 2)
    loss.backward()
    opt.step()
    return float(loss.detach())


# --------------------------------------------------------------------------
# jaxmech paths (public API)


def _timed_best(fn, repeats):
    best, out = math.inf, None
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _audit_rows(label_mechs, env, misreports, n, evals_per_profile, dtype, repeats, block_size, chunk_size, stats_of):
    import jax

    prior = jm.independent(env.dims)
    rows = []
    for label, mech in label_mechs:
        runs = [
            jm.audit(
                env,
                mech,
                prior,
                key=jax.random.PRNGKey(0),
                n_profiles=n,
                misreports=misreports,
                dtype=dtype,
                options=jm.StreamOptions(block_size=block_size, chunk_size=chunk_size),
            )  # fmt: skip
            for _ in range(max(repeats, 1))
        ]
        res = min(runs, key=lambda r: r.info.run_s)
        rows.append(Row(label, n, n * evals_per_profile / res.info.run_s, res.info.compile_s, stats_of(res.report)))
    return rows


def _audit_stats(rep: dict) -> dict[str, float]:
    return {
        "regret_max": max(r["max"] for r in rep["regret"]),
        "deficit_mean": rep["deficit"]["mean"],
        "deficit_se": rep["deficit"]["se"],
    }


def _baseline_stats(st: dict[str, float]) -> dict[str, float]:
    return {
        "regret_max": max(v for k, v in st.items() if k.startswith("regret_") and k.endswith("_max")),
        "deficit_mean": st["deficit_mean"],
        "deficit_se": st["deficit_se"],
    }


def _baseline_rows(fn, n_np, n_torch, evals_per_profile, float64, repeats, with_torch):
    rows = []
    backends = [("numpy (vectorized)", _NumpyXP, n_np)]
    if with_torch:
        backends.append(("pytorch eager", _TorchXP, n_torch))
    for label, cls, n in backends:
        xp = cls(float64, 1)
        fn(xp, min(n, 256))  # warm up (imports, thread pools, allocator)
        t, st = _timed_best(lambda xp=xp, n=n: fn(xp, n), repeats)
        rows.append(Row(label, n, n * evals_per_profile / t, None, _baseline_stats(st)))
    return rows


def _bench_w1(size: Sizes, dtype, float64, repeats, with_torch):
    k = 256
    env = jm.bilateral_trade(jm.linear_trade_values(A_TRADE))
    mis = jm.Misreports(grid=k, random=0, kinks=True)
    epp = 2 * (k + 2)
    rows = _audit_rows(
        [
            ("jaxmech audit (closed-form pivots)", jm.generalized_vcg(env, pivot=jm.linear_trade_pivot(A_TRADE))),
            ("jaxmech audit (bisection pivots)", jm.generalized_vcg(env)),
        ],
        env, mis, size.jax, epp, dtype, repeats, size.block_size or 8192, size.chunk_size or 1 << 17, _audit_stats,
    )  # fmt: skip
    rows += _baseline_rows(
        lambda xp, n: w1_baseline(xp, n, k), size.numpy, size.torch, epp, float64, repeats, with_torch
    )
    return (
        rows,
        "profile x agent x misreport evaluations / s",
        f"closed form E[deficit] = (1 + a)/6 = {(1 + A_TRADE) / 6:.4f}",
    )


def w2_pivot(vbar, m, i, a: float = A_PUBLIC):
    """Closed-form pivot of the threshold rule for linear values: ``clip(max_j s_i + (vbar_j - v_j) / slope_ij)``."""
    import jax.numpy as jnp

    n = m.shape[0]
    v = (1 - a) * m + a * jnp.sum(m)
    slope = jnp.where(jnp.arange(n) == i, 1.0, a).astype(m.dtype)
    return jnp.clip(jnp.max(m[i] + (vbar - v) / slope), 0.0, 1.0)


def _bench_w2(size: Sizes, dtype, float64, repeats, with_torch):
    import jax.numpy as jnp

    k, n = 64, N_PUBLIC
    env = jm.public_good(jm.linear_public_values(A_PUBLIC, n), COST_PUBLIC, n)
    vbar = jnp.full((n,), COST_PUBLIC / n, dtype)
    closed = jm.pivot_payments(env, jm.threshold_rule(env), params=vbar, pivot=w2_pivot, name="threshold (closed form)")
    mis = jm.Misreports(grid=k, random=0, kinks=True)
    epp = n * (k + 2)
    mechs = [("jaxmech audit (closed-form pivots)", closed)]
    if size.generic:  # its compile is long (8 agents x 8 bisected roots, per menu and in the payments)
        mechs.append(("jaxmech audit (bisection pivots)", jm.threshold_contribution(env, vbar)))
    rows = _audit_rows(
        mechs,
        env, mis, size.jax, epp, dtype, repeats, size.block_size or 4096, size.chunk_size or 1 << 15, _audit_stats,
    )  # fmt: skip
    rows += _baseline_rows(
        lambda xp, m: w2_baseline(xp, m, k), size.numpy, size.torch, epp, float64, repeats, with_torch
    )
    return rows, "profile x agent x misreport evaluations / s", "regret 0 (CE Thm 9: the rule is monotone)"


def _bench_w3(size: Sizes, dtype, float64, repeats, with_torch):
    env = jm.example1()
    mis = jm.Misreports(grid=16, random=0, kinks=True)
    epp = 2 * (16 * 16 + 6)
    rows = _audit_rows(
        [("jaxmech audit (B eq. (4), bisection kinks)", jm.personalized_prices(env, jm.example1_prices))],
        env, mis, size.jax, epp, dtype, repeats, size.block_size or 8192, size.chunk_size or 1 << 16, _audit_stats,
    )  # fmt: skip
    rows += _baseline_rows(lambda xp, m: w3_baseline(xp, m), size.numpy, size.torch, epp, float64, repeats, with_torch)
    return rows, "profile x agent x misreport evaluations / s", "regret 0 (B Lemma 1: admissible prices)"


def _bench_w4(size: Sizes, dtype, float64, repeats, with_torch):
    import jax

    env = jm.public_good(jm.linear_public_values(A_SEARCH, 2), 1.0, 2)
    family = jm.threshold_family(env)
    prior = jm.independent(env.dims)
    extra = 16  # timed steps; the fastest counts (other load on the host only slows steps down)

    def run(family):
        # search() reports after every step (the step has finished: it reads the constraint back);
        # the first report comes after compile + step 0, the next `extra` time the steps themselves
        stamps = [time.perf_counter()]
        cfg = jm.SearchConfig(steps=1 + extra, batch=size.jax, log_every=1 + extra)
        out = jm.search(
            env, family, prior, jax.random.PRNGKey(0), cfg, dtype=dtype, progress=lambda k, n: stamps.append(time.perf_counter())
        )  # fmt: skip
        per_step = float(np.min(np.diff(stamps[1:])))
        return per_step, stamps[1] - stamps[0] - per_step, out

    rows = []
    for label, fam in (
        ("jaxmech search step (closed-form payments)", closed_form_family(family)),
        ("jaxmech search step (bisection payments)", family),
    ):
        per_step, compile_s, res = min((run(fam) for _ in range(max(repeats, 1))), key=lambda r: r[0])
        rows.append(Row(label, size.jax, 1.0 / per_step, compile_s, _search_stats(res.log)))
    f = np.float64 if float64 else np.float32
    temperature, lam, rho, tau = 0.1, 0.0, 10.0, 0.005

    def numpy_steps(n):
        xp = _NumpyXP(float64, 1)
        params, state = np.full(2, 0.5, f), (np.zeros(2), np.zeros(2), 0)
        times = []
        for _ in range(extra):
            t0 = time.perf_counter()
            s, grid = _w4_problem(xp, n)
            loss, g = w4_loss_and_grad_numpy(s, grid, params, temperature, lam, rho, tau)
            params, state = _adam_numpy(params, g, state, 0.01)
            times.append(time.perf_counter() - t0)
        return float(np.min(times)), loss

    t, loss = min((numpy_steps(size.numpy) for _ in range(max(repeats, 1))), key=lambda r: r[0])
    rows.append(Row("numpy (vectorized, gradient by hand)", size.numpy, 1.0 / t, None, {"loss": float(loss)}))
    if with_torch:
        import torch

        def torch_steps(n):
            xp = _TorchXP(float64, 1)
            vbar = torch.full((2,), 0.5, dtype=xp.f, device=xp.device, requires_grad=True)
            opt = torch.optim.Adam([vbar], lr=0.01)
            times = []
            for _ in range(extra):
                t0 = time.perf_counter()
                s, grid = _w4_problem(xp, n)
                loss = w4_step_torch(xp, s, grid, vbar, opt, temperature, lam, rho, tau)
                times.append(time.perf_counter() - t0)
            return float(np.min(times)), loss

        t, loss = min((torch_steps(size.torch) for _ in range(max(repeats, 1))), key=lambda r: r[0])
        rows.append(Row("pytorch eager (autograd)", size.torch, 1.0 / t, None, {"loss": float(loss)}))
    return rows, "steps / s (batch = size)", "same loss at the same start (vbar = (0.5, 0.5), T = 0.1)"


def closed_form_family(family, a: float = A_SEARCH, cost: float = 1.0):
    """The threshold family with the generalized VCG payments in closed form (linear values): ``t_i = v_i(x_i^*, s_-i)``.

    Same parameters, relaxation, constraint and weights as ``jm.threshold_family``; only the payments
    skip the bisection (:func:`w2_pivot` gives ``x_i^*``).
    """
    import jax.numpy as jnp

    def violation(vbar, s):
        v = (1 - a) * s + a * jnp.sum(s)
        return cost - sum(v[i] + w2_pivot(vbar, s, i, a) - s[i] for i in range(s.shape[0]))

    return family._replace(name=family.name + " (closed-form payments)", violation=violation)


def _search_stats(log: dict) -> dict[str, float]:
    return {"objective": float(log["objective"][-1]), "constraint": float(log["constraint"][-1])}


def _bench_w5(size: Sizes, dtype, float64, repeats, with_torch):
    import jax

    k, n_samples = K_OUTCOMES, 256
    env = certify.project_choice(k, 2, A_OUTCOMES)
    decide = mechanisms.efficient_rule(env)
    key_s, key_x = jax.random.split(jax.random.PRNGKey(0))
    samples = jax.random.uniform(key_x, (n_samples, k), dtype)

    profiles = jax.random.uniform(key_s, (size.jax, 2 * k), dtype)

    # certify() compiles on every call; time the same computation (pseudo_efficiency per s_-i, lax.map in
    # batches of 256 as certify does) compiled once, then run
    def one(s):
        return certify.pseudo_efficiency(env, decide, (), s, 0, samples)

    fn = jax.jit(lambda ps: jax.lax.map(one, ps, batch_size=256))
    t0 = time.perf_counter()
    compiled = fn.lower(profiles).compile()
    compile_s = time.perf_counter() - t0
    t, certs = _timed_best(lambda: jax.block_until_ready(compiled(profiles)), repeats)
    rep = certify.certify(env, decide, (), profiles[:256], 0, samples)  # the API's report agrees
    assert np.array_equal(rep.feasible, np.asarray(certs.feasible)[:256])
    rows = [Row("jaxmech certify", size.jax, size.jax / t, compile_s, _cert_stats(certs.feasible, certs.max_walk))]
    x_np = np.asarray(samples, np.float64 if float64 else np.float32)
    backends = [("numpy (vectorized)", _NumpyXP, size.numpy)]
    if with_torch:
        backends.append(("pytorch eager", _TorchXP, size.torch))
    for label, cls, p in backends:
        xp = cls(float64, 1)
        x = xp.asarray(x_np)

        def go(xp=xp, x=x, p=p):
            feas, walk = [], []
            for start in range(0, p, 64):
                with np.errstate(invalid="ignore"):  # -inf - -inf where an outcome does not occur (discarded)
                    out = w5_baseline(xp, xp.uniform(min(64, p - start), k), x)
                feas.append(_to_np(xp, out["feasible"]))
                walk.append(_to_np(xp, out["max_walk"]))
            return np.concatenate(feas), np.concatenate(walk)

        t, (feas, walk) = _timed_best(go, repeats)
        rows.append(Row(label, p, p / t, None, _cert_stats(feas, walk)))
    return (
        rows,
        "certificates / s (one s_-i each)",
        "every s_-i certified (CE Thm 1: the efficient rule is pseudo-efficient)",
    )


def _cert_stats(feasible, max_walk) -> dict[str, float]:
    return {"certified": float(np.mean(np.asarray(feasible))), "max_walk_max": float(np.max(np.asarray(max_walk)))}


WORKLOADS: dict[str, tuple[str, Callable, Sizes, Sizes]] = {
    # name: (title, runner, quick sizes, full sizes)
    "W1": ("bilateral trade audit, K = 256 + kinks (CE Sec. 4.4)", _bench_w1, Sizes(1 << 17, 1 << 14, 1 << 15),
           Sizes(1 << 22, 1 << 17, 1 << 19)),
    "W2": ("public good n = 8, threshold rule, K = 64 + kinks (CE Thm 9)", _bench_w2, Sizes(1 << 14, 1 << 11, 1 << 12, False),
           Sizes(1 << 19, 1 << 14, 1 << 16)),
    "W3": ("B Example 1, 16 x 16 grid + kinks", _bench_w3, Sizes(1 << 15, 1 << 12, 1 << 13),
           Sizes(1 << 21, 1 << 16, 1 << 18)),
    "W4": ("one second-best search step (CE Thm 9)", _bench_w4, Sizes(1 << 16, 1 << 16, 1 << 16),
           Sizes(1 << 20, 1 << 20, 1 << 20)),
    "W5": ("CE Thm 1 certificates, k = 16 outcomes, 256 signals", _bench_w5, Sizes(512, 256, 256),
           Sizes(1 << 14, 2048, 4096)),
}  # fmt: skip


# --------------------------------------------------------------------------
# environment, memory, report


def host_peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MiB)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 2**20


def device_peak_mb() -> float | None:
    """Peak device memory in use (MiB) where the backend reports it (GPU / TPU); ``None`` on CPU."""
    import jax

    stats = jax.devices()[0].memory_stats()
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return stats["peak_bytes_in_use"] / 2**20


def environment_lines(float64: bool) -> list[str]:
    import jax
    import jaxlib

    devs = jax.devices()
    lines = [
        f"device: {devs[0].device_kind} ({jax.default_backend()}, {len(devs)} device(s)), host cpus={os.cpu_count()}, "
        f"{platform.processor() or platform.machine()}",
        f"versions: jaxmech {_version()}, jax {jax.__version__}, jaxlib {jaxlib.__version__}, numpy {np.__version__}, "
        f"python {platform.python_version()}",
        f"dtype: {'float64' if float64 else 'float32'}; host load average {os.getloadavg()[0]:.2f} (1 min)",
    ]
    if torch_available():
        import torch

        lines.append(f"torch {torch.__version__} ({torch_device()}, {torch.get_num_threads()} CPU threads)")
    else:
        lines.append("torch: not installed (pip install 'jaxmech[bench]' for the PyTorch eager baseline)")
    return lines


def _version() -> str:
    return __version__


def format_rows(rows: list[Row]) -> list[str]:
    out = []
    for r in rows:
        comp = f"compile {r.compile_s:5.2f}s" if r.compile_s is not None else " " * 13
        stats = "  ".join(f"{k} {v:.4g}" for k, v in r.stats.items())
        out.append(f"  {r.path:<44} n={r.size:>9,}  {r.rate:10.3e}/s  {comp}  {stats}")
    return out


def ratio_lines(rows: list[Row]) -> list[str]:
    base = {r.path.split()[0]: r for r in rows if not r.path.startswith("jaxmech")}
    out = []
    for r in rows:
        if r.path.startswith("jaxmech"):
            parts = [f"{r.rate / b.rate:.2f}x {name}" for name, b in base.items()]
            out.append(f"  ratio {r.path}: " + ", ".join(parts))
    return out


def run_workloads(
    names,
    *,
    quick: bool,
    float64: bool,
    repeats: int,
    torch: bool | None = None,
    say=print,
    overrides: dict | None = None,
) -> dict:
    """Run the named workloads and print their tables; returns a JSON-ready record."""
    import jax
    import jax.numpy as jnp

    if float64:
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.float64 if float64 else jnp.float32
    with_torch = torch_available() if torch is None else torch
    record: dict[str, Any] = {"environment": environment_lines(float64), "quick": quick, "workloads": {}}
    for line in record["environment"]:
        say(line)
    for name in names:
        title, runner, quick_sizes, full_sizes = WORKLOADS[name]
        t0 = time.perf_counter()
        size = (quick_sizes if quick else full_sizes)._replace(**(overrides or {}))
        rows, unit, check = runner(size, dtype, float64, repeats, with_torch)
        say(f"\n{name} {title}  [{unit}]; check: {check}")
        for line in format_rows(rows) + ratio_lines(rows):
            say(line)
        dev = device_peak_mb()
        mem = (
            f"peak device memory {dev:.1f} MiB"
            if dev is not None
            else "peak device memory: not reported by the backend"
        )
        say(f"  {mem}; host peak RSS {host_peak_rss_mb():.0f} MiB; wall {time.perf_counter() - t0:.1f}s")
        record["workloads"][name] = {
            "title": title,
            "unit": unit,
            "rows": [r._asdict() for r in rows],
            "device_peak_mb": dev,
            "host_peak_rss_mb": host_peak_rss_mb(),
        }
    return record


# (Sizes field, flag, argparse attribute) of the size overrides
_SIZE_FLAGS = (("jax", "--profiles", "profiles"), ("block_size", "--block-size", "block_size"),
               ("chunk_size", "--chunk-size", "chunk_size"))  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="jaxmech bench", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run_from_args(p.parse_args(argv))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workload", action="append", choices=sorted(WORKLOADS), help="W1 .. W5 (repeatable; default all)")
    p.add_argument("--quick", action="store_true", help="small sizes (all five in under 3 minutes on 2 CPU cores)")
    p.add_argument("--float64", action="store_true", help="double precision (jax_enable_x64)")
    # the counts are read as text and checked by run_from_args (one-line usage errors, integral floats like 1e6)
    p.add_argument("--repeats", default=None, help="timed runs per path, best counts (default 1 quick, 3 full)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline even if torch is installed")
    p.add_argument(
        "--profiles", help="jaxmech size (profiles / batch / s_-i), e.g. 1e6, or 2147483648 (2^31) for W1 on a GPU"
    )
    p.add_argument("--block-size", help="audit block size (W1-W3; GPU: 262144 or more)")
    p.add_argument("--chunk-size", help="audit chunk size (W1-W3; GPU: 8388608 or more)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")


def _count(flag: str, raw) -> int | None:
    """A positive count from the command line: an integer or an integral float (``1e6``); ``ValueError`` (one line)
    otherwise, or above :data:`config.MAX_PROFILES`."""
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            value = int(raw)
        except ValueError:
            try:
                f = float(raw)
            except ValueError:
                raise ValueError(f"{flag} must be an integer, got {raw!r}") from None
            if not f.is_integer():
                raise ValueError(f"{flag} must be an integer, got {raw!r}") from None
            value = int(f)
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        raise ValueError(f"{flag} must be an integer, got {raw!r}")
    if value < 1:
        raise ValueError(f"{flag} must be >= 1, got {value}")
    if value > cfg.MAX_PROFILES:
        raise ValueError(cfg.too_many(flag, value))
    return value


def _check_json_path(raw: str) -> None:
    """``--json FILE`` must be writable before the benchmark runs (not after it)."""
    path = Path(raw)
    if path.is_dir():
        raise ValueError(f"--json {raw}: is a folder, not a file")
    parent = path.parent
    if not parent.exists():
        raise ValueError(f"--json {raw}: folder {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise ValueError(f"--json {raw}: {str(parent)!r} is not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"--json {raw}: file is not writable")
    if not path.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--json {raw}: folder {str(parent)!r} is not writable")


def run_from_args(args) -> int:
    """Validate the arguments (``jaxmech: usage error: ...`` and 2 before anything runs), then run."""
    try:
        repeats = _count("--repeats", args.repeats)
        sizes = {k: _count(flag, getattr(args, attr)) for k, flag, attr in _SIZE_FLAGS}
        if args.json:
            _check_json_path(args.json)
    except ValueError as e:
        print(f"jaxmech: usage error: {e}", file=sys.stderr)
        return 2
    if repeats is None:
        repeats = 1 if args.quick else 3
    names = args.workload or sorted(WORKLOADS)
    over = {k: v for k, v in sizes.items() if v is not None}
    rec = run_workloads(
        names,
        quick=args.quick,
        float64=args.float64,
        repeats=repeats,
        torch=False if args.no_torch else None,
        overrides=over,
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rec, f, indent=2)
    return 0
