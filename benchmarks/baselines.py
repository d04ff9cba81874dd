"""Hand-written baselines for ``jaxmech bench``: the W1-W5 statistics in vectorized NumPy and PyTorch eager.

These ship with the repository, not the wheel: ``jaxmech bench`` (``jaxmech/_src/app/bench.py``) loads this
file by path from the checkout's ``benchmarks/`` folder when it runs, and prints the JAX rows alone, with one
line saying so, where the file is absent (an install from a wheel). Each baseline is one implementation over
an array back end (:class:`NumpyXP` or :class:`TorchXP`), draws its own profiles (same distribution, other
draws) and reduces them in float64 on the host (:class:`Moments`); ``tests/test_bench.py`` checks each one
against jaxmech and the closed forms. The workloads and their constants (``A_TRADE`` ...) are defined once, in
``jaxmech._src.app.bench``:

- W1 bilateral trade, efficient rule + generalized VCG payments (CE Sec. 4.4, eqs. (5)-(6));
- W2 public good, threshold contribution rule with pivot payments (CE Def 12, Thm 9);
- W3 B Example 1 at the admissible prices ``p_j + c_j^2`` (B eq. (4), B Lemma 1);
- W4 one step of the CE Thm 9 second-best search (augmented Lagrangian, Adam);
- W5 CE Thm 1 / Lemma 1 certificates for ``project_choice``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxmech._src.app.bench import A_OUTCOMES, A_PUBLIC, A_SEARCH, A_TRADE, COST_PUBLIC, KINK_EPS, N_PUBLIC

# --------------------------------------------------------------------------
# array back ends for the baselines: one implementation, NumPy or PyTorch eager


class NumpyXP:
    """The NumPy back end: ``float32`` / ``float64`` arrays, draws from ``np.random.default_rng(seed)``."""

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


class TorchXP:
    """The PyTorch eager back end, on :func:`torch_device`, draws from a seeded ``torch.Generator``."""

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
    """Whether ``torch`` can be imported (``pip install 'jaxmech[bench]'``; never a runtime dependency)."""
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


class Moments:
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


def to_np(xp, x):
    """A back end's array as a host NumPy array (a torch tensor is moved to the CPU first)."""
    return x.cpu().numpy() if hasattr(x, "cpu") else x


def chunked(xp, n: int, chunk: int, one: Callable) -> dict[str, float]:
    """``n`` profiles in chunks of ``chunk``: ``one(xp, m)`` returns per-profile arrays, reduced by :class:`Moments`."""
    mom = Moments()
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        mom.n += m
        for name, x in one(xp, m).items():
            mom.add(name, to_np(xp, x))
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

    return chunked(xp, n, chunk, one)


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

    return chunked(xp, n, chunk, one)


def w3_kinks(xp, p, c, price, cj):
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
            kp, kc = w3_kinks(xp, p, c, price, cj)
            for xp_, xc_ in ((gp[None, :] + 0.0 * p[:, None], gc[None, :] + 0.0 * p[:, None]), (kp, kc)):
                mine = xp_ + xc_ * cj[:, None] - price[:, None]  # V_i(x, s_j) - t_i(s_j)
                theirs = pj[:, None] + cj[:, None] * xc_ - (xp_ + xc_ * xc_)  # V_j - t_j(x)
                win = ((mine >= theirs) if first else (mine > theirs)) & (mine > 0)
                ux = xp.amax(xp.where(win, sur[:, None], 0.0), 1)
                best = ux if best is None else xp.maximum(best, ux)
            out[f"regret_{name}"] = xp.relu(best - u)
        out["deficit"] = -(xp.where(w1, t1, 0.0) + xp.where(w2, t2, 0.0))
        return out

    return chunked(xp, n, chunk, one)


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
    return {"feasible": to_np(xp, top <= tol), "max_walk": to_np(xp, top), "payments": to_np(xp, t)}


def w4_problem(xp, batch, grid_points: int = 33):
    """W4's data: a fresh batch ``(batch, 2)`` of uniform profiles and the support grid ``(grid_points^2, 2)``."""
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


def adam_numpy(params, grad, state, lr, b1=0.9, b2=0.999, eps=1e-8):
    """One Adam step (Kingma & Ba) by hand; ``state = (m, v, t)``, returns ``(params, state)``."""
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
# timed loops the benchmark calls (W4 steps, W5 certificates in batches of s_-i)


def w4_numpy_steps(n, steps, float64, temperature, lam, rho, tau):
    """``steps`` W4 steps on NumPy (loss and gradient by hand, :func:`adam_numpy`) from ``vbar = (0.5, 0.5)``.

    Returns ``(fastest step in seconds, last loss)``."""
    f = np.float64 if float64 else np.float32
    xp = NumpyXP(float64, 1)
    params, state = np.full(2, 0.5, f), (np.zeros(2), np.zeros(2), 0)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        s, grid = w4_problem(xp, n)
        loss, g = w4_loss_and_grad_numpy(s, grid, params, temperature, lam, rho, tau)
        params, state = adam_numpy(params, g, state, 0.01)
        times.append(time.perf_counter() - t0)
    return float(np.min(times)), loss


def w4_torch_steps(n, steps, float64, temperature, lam, rho, tau):
    """The same ``steps`` on PyTorch eager (:func:`w4_step_torch`, ``torch.optim.Adam``); ``(fastest s, last loss)``."""
    import torch

    xp = TorchXP(float64, 1)
    vbar = torch.full((2,), 0.5, dtype=xp.f, device=xp.device, requires_grad=True)
    opt = torch.optim.Adam([vbar], lr=0.01)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        s, grid = w4_problem(xp, n)
        loss = w4_step_torch(xp, s, grid, vbar, opt, temperature, lam, rho, tau)
        times.append(time.perf_counter() - t0)
    return float(np.min(times)), loss


def w5_certificates(xp, p, x, k, batch: int = 64):
    """:func:`w5_baseline` for ``p`` fresh ``s_-i`` in batches of ``batch``; ``(feasible (p,), max_walk (p,))``."""
    feas, walk = [], []
    for start in range(0, p, batch):
        with np.errstate(invalid="ignore"):  # -inf - -inf where an outcome does not occur (discarded)
            out = w5_baseline(xp, xp.uniform(min(batch, p - start), k), x)
        feas.append(to_np(xp, out["feasible"]))
        walk.append(to_np(xp, out["max_walk"]))
    return np.concatenate(feas), np.concatenate(walk)


# --------------------------------------------------------------------------
# a finite-type LP tool as the baseline of `benchmarks/bench_design_vs_lp.py`: MechAudit (NumPy + HiGHS + pandas)


def mechaudit_available() -> bool:
    """Whether ``mechaudit`` can be imported (``pip install 'jaxmech[bench]'``; never a runtime dependency)."""
    try:
        import mechaudit  # noqa: F401
    except ImportError:
        return False
    return True


def mechaudit_trade(
    G: int, a: float, types=None, *, stages: dict | None = None, method: str = "simplex"
) -> tuple[float, float]:
    """The best ex post IC, ex post IR, ex post budget-balanced randomized mechanism for bilateral trade on a
    ``G``-point type grid per agent, stated and solved with MechAudit (``mechaudit`` 0.1.0); ``(value, seconds)``.

    The model is the one ``jm.lp_reference(jm.bilateral_trade(jm.linear_trade_values(a)), jm.independent(...))``
    solves, written in MechAudit's own vocabulary:

    - agents ``buyer`` and ``seller``, each with the types ``types[i]`` (default: ``(j + 1/2) / G``, the uniform
      marginal's quantile grid of ``jm.lp_reference``), independent uniform prior (probability ``1/G`` each,
      ``JointPrior.from_independent``);
    - outcomes ``bilateral_trade_outcomes()`` (no trade, trade); a randomized allocation is a lottery over them
      (MechAudit only designs randomized mechanisms), i.e. a trade probability ``q(s)``;
    - ``InterdependentValues``: the buyer values trade at ``s_b + a s_s``, the seller at ``-(s_s + a s_b)``
      (she gives up the good), no trade at 0 for both; payments are agent -> designer (``u = v - p``), so the
      seller's utility from trade is ``-v_seller - p_seller`` with ``-p_seller`` the price she receives;
    - ``ExPostIC()`` (every type against every other grid type, the others reporting truthfully: CE Def 2 on
      the grid), ``ExPostIR()`` (outside option 0 in every profile), ``WeakBudgetBalance(timing="ex_post")``
      (``p_b + p_s >= 0`` in every profile);
    - objective ``ExpectedSocialWelfare()``: ``E[q (v_b - v_s)]``, the gains from trade (jaxmech's welfare).

    Timed: building the environment (MechAudit tabulates the values eagerly), compiling the LP and
    ``problem.solve()`` with its default options (HiGHS simplex, one thread; ``method="ipm"``: HiGHS's interior
    point, ``SolveOptions(method="ipm")``, everything else default) -- which includes MechAudit's independent
    feasibility check and economic audit of the optimum, part of what the tool does on every solve. ``stages``
    (a dict), when given, receives the seconds of each stage (``build``, ``compile``, ``solve``) and the LP's
    ``rows`` / ``cols``.
    """
    import mechaudit as ma

    if types is None:
        types = [(np.arange(G) + 0.5) / G] * 2
    tb, ts = (tuple(float(x) for x in t) for t in types)
    vb, vs = dict(enumerate(tb)), dict(enumerate(ts))  # type labels are grid indices, values looked up

    def value(agent, profile, outcome):
        if not outcome["trade"]:
            return 0.0
        sb, ss = vb[profile["buyer"]], vs[profile["seller"]]
        return sb + a * ss if agent == "buyer" else -(ss + a * sb)

    t0 = time.perf_counter()
    prior = ma.JointPrior.from_independent(
        {"buyer": {j: 1.0 / len(tb) for j in range(len(tb))}, "seller": {j: 1.0 / len(ts) for j in range(len(ts))}}
    )
    env = ma.FiniteEnvironment(
        agents={"buyer": list(range(len(tb))), "seller": list(range(len(ts)))},
        outcomes=ma.bilateral_trade_outcomes(),
        prior=prior,
        values=ma.InterdependentValues(value),
    )
    problem = env.design(
        objective=ma.ExpectedSocialWelfare(),
        requirements=(ma.ExPostIC(), ma.ExPostIR(), ma.WeakBudgetBalance(timing="ex_post")),
    )
    t1 = time.perf_counter()
    compiled = problem.compile()
    t2 = time.perf_counter()
    solution = problem.solve() if method == "simplex" else problem.solve(options=ma.SolveOptions(method=method))
    t3 = time.perf_counter()
    if stages is not None:
        stages.update(build=t1 - t0, compile=t2 - t1, solve=t3 - t2, rows=compiled.model.matrix.shape[0],
                      cols=compiled.model.matrix.shape[1])  # fmt: skip
    return float(solution.objective_value), t3 - t0
