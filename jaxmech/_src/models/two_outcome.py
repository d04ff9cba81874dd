"""The JMM contrast (B Sec. 3): two buyers, two outcomes (the object must be sold), and the least regret.

With two outcomes and losers paying nothing, buyer ``i`` faces one price for his win set, and the least
worst-case regret at ``s_-i`` is half the gap between the best losing and the worst winning value
(:func:`two_outcome_gap`; ex post IC with some payments iff the gap is 0 at every ``s_-i``, B eq. (2)).
:func:`search_two_outcome` / :func:`two_outcome_searcher` trace the frontier between non-triviality
``min(P(a_1), P(a_2))`` and that regret over a rich family of rules (:func:`score_family`), the contrast to
B Sec. 4's non-trivial ex post IC mechanism with a third outcome (no sale, :mod:`pivotal`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.core import priors
from jaxmech._src.core.audit import grid_points
from jaxmech._src.core.environments import Environment
from jaxmech._src.core.search import soft_max

Array = jax.Array
Params = Any


def two_outcome_gap(env: Environment, score: Callable[[Array], Array], s: Array, i: int, grid: Array) -> Array:
    """Buyer ``i``'s least worst-case regret at ``s_-i`` for the two-outcome rule ``a_1`` iff ``score(m) > 0``, else ``a_2``.

    With losers paying nothing (B Sec. 2) buyer ``i`` faces a price ``t_i(s_-i)`` for his win set ``W``;
    the worst regret over ``s_i`` is ``max(max_{x not in W} V_i - t, t - min_{x in W} V_i, 0)``, least at the
    midpoint: ``max(0, max_{x not in W} V_i(x) - min_{x in W} V_i(x)) / 2`` (0 when ``W`` or its complement is
    empty). Ex post IC with some payments <=> gap 0 at every ``s_-i`` (B eq. (2)). ``grid`` ``(G, d_i)`` stands
    for ``S_i``; ``s`` is one profile (``s_i`` ignored). Shape ``()``.
    """
    prof = jax.vmap(lambda x: priors.replace_signal(s, env.dims, i, x))(grid)
    sc = jax.vmap(score)(prof)
    win = sc > 0 if i == 0 else sc <= 0
    v = jax.vmap(env.values)(prof)[:, i]
    top_lose = jnp.max(jnp.where(win, -jnp.inf, v))
    low_win = jnp.min(jnp.where(win, v, jnp.inf))
    both = jnp.any(win) & jnp.any(~win)
    return jnp.where(both, jnp.maximum(top_lose - low_win, 0.0) / 2, 0.0)


class ScoreFamily(NamedTuple):
    """Two-outcome rules ``a_1`` iff ``score(params, s) > 0``: ``V_1 - V_2 - shift + MLP(s)`` (a rich family)."""

    init: Params
    score: Callable[[Params, Array], Array]


def score_family(
    env: Environment, *, key: Array, hidden: int = 16, layers: int = 2, scale: float = 0.01
) -> ScoreFamily:
    """The efficient two-outcome rule shifted by ``shift``, plus a tanh MLP of the profile (``layers`` x ``hidden``).

    ``shift`` and the MLP together reach any continuous boundary; the MLP starts small (weights ``~ scale``)
    so the search starts from (a shift of) the efficient rule ``V_1 > V_2``.
    """
    sizes = [env.size] + [hidden] * layers + [1]
    keys = jax.random.split(key, len(sizes) - 1)
    weights = [
        scale * jax.random.normal(k, (a, b)) / math.sqrt(a) for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]
    init = {"shift": jnp.zeros(()), "w": weights, "b": [jnp.zeros((b,)) for b in sizes[1:]]}

    def score(params, s):
        v = env.values(s)
        h = s
        for k, (w, b) in enumerate(zip(params["w"], params["b"], strict=True)):
            h = h @ w.astype(s.dtype) + b.astype(s.dtype)
            if k < len(params["w"]) - 1:
                h = jnp.tanh(h)
        return v[0] - v[1] - params["shift"].astype(s.dtype) + h[0]

    return ScoreFamily(init, score)


class TwoOutcomeFit(NamedTuple):
    """A searched two-outcome rule and its exact evaluation.

    Attributes:
      target: the non-triviality asked for, ``min(P(a_1), P(a_2)) = target``.
      params: the rule's parameters.
      p_a1: ``P(a_1)`` with its SE, ``(mean, se)``; ``p_a2`` likewise.
      regret_max: ``max_i max_{s_-i} gap_i(s_-i)`` on the evaluation sample (:func:`two_outcome_gap`).
      regret_mean: ``(mean, se)`` of ``max_i gap_i`` over the sampled ``s_-i``.
      loss: the search loss per logged step.
    """

    target: float
    params: Params
    p_a1: tuple[float, float]
    p_a2: tuple[float, float]
    regret_max: float
    regret_mean: tuple[float, float]
    loss: list


def signal_grids(env: Environment, points: int, dtype=jnp.float32, max_points: int = 1 << 14) -> list[Array]:
    """A full grid over each buyer's ``S_i`` (``points`` per dimension, at most ``max_points`` rows)."""
    out = []
    for i in range(env.n_agents):
        sl = priors.agent_slice(env.dims, i)
        out.append(jnp.asarray(grid_points(env.lo[sl], env.hi[sl], points, max_points), dtype))
    return out


def evaluate_two_outcome(
    env: Environment, score: Callable[[Array], Array], profiles: Array, grids: list[Array]
) -> tuple[tuple[float, float], tuple[float, float], float, tuple[float, float], np.ndarray]:
    """``P(a_1)``, ``P(a_2)`` (mean, se), the regret (max, and mean, se) of a hard two-outcome rule on ``profiles``,
    and each profile's regret (the larger buyer's gap), shape ``(n,)``.

    ``grids[i]`` stands for ``S_i`` in :func:`two_outcome_gap`.
    """
    a1 = np.asarray(jax.vmap(score)(profiles) > 0, np.float64)
    gaps = jnp.stack(
        [jax.vmap(lambda s, i=i: two_outcome_gap(env, score, s, i, grids[i]))(profiles) for i in range(2)], 1
    )
    g = np.asarray(jnp.max(gaps, axis=1), np.float64)
    n = len(a1)
    p = float(a1.mean())
    se = math.sqrt(max(p * (1 - p), 0.0) / n)
    return (p, se), (1 - p, se), float(g.max()), (float(g.mean()), float(g.std(ddof=1) / math.sqrt(n))), g


def search_two_outcome(
    env: Environment,
    prior: priors.Prior,
    family: ScoreFamily,
    target: float,
    *,
    key: Array,
    steps: int = 300,
    batch: int = 64,
    grid_points: int = 16,
    learning_rate: float = 0.01,
    temperature: float = 0.02,
    penalty: float = 50.0,
    eval_profiles: int = 512,
    eval_grid: int = 33,
    shift: float | None = None,
    dtype=jnp.float32,
) -> TwoOutcomeFit:
    """Least worst regret over the family at non-triviality ``min(P(a_1), P(a_2)) = target`` (the JMM frontier, B Sec. 3).

    Loss: a soft maximum over a batch of ``s_-i`` (:func:`search.soft_max`) of the relaxed gap of both buyers
    (win sets ``sigmoid(score / T)``, max / min over ``S_i`` by weighted log-sum-exp) plus
    ``penalty * (min(P_T(a_1), P_T(a_2)) - target)^2``; optax Adam (clipped, non-finite steps skipped).
    The hard rule is then evaluated exactly (:func:`evaluate_two_outcome`) on fresh profiles with a finer grid;
    the starting rule is evaluated too and the better of the two is returned (worst regret plus the distance of
    ``min(P(a_1), P(a_2))`` from the target). For several targets use :func:`two_outcome_searcher` (one compile).
    """
    search = two_outcome_searcher(
        env, prior, family, batch=batch, grid_points=grid_points, learning_rate=learning_rate,
        temperature=temperature, penalty=penalty, dtype=dtype,
    )  # fmt: skip
    return search(target, key=key, steps=steps, shift=shift, eval_profiles=eval_profiles, eval_grid=eval_grid)


def two_outcome_searcher(
    env: Environment,
    prior: priors.Prior,
    family: ScoreFamily,
    *,
    batch: int = 64,
    grid_points: int = 16,
    learning_rate: float = 0.01,
    temperature: float = 0.02,
    penalty: float = 50.0,
    dtype=jnp.float32,
) -> Callable[..., TwoOutcomeFit]:
    """:func:`search_two_outcome` for many targets: ``search(target, *, key, steps=300, shift=None,
    eval_profiles=512, eval_grid=33) -> TwoOutcomeFit``, the optimizer step compiled once for every target
    (the target is an argument of the step, not a constant in it)."""
    import optax

    if env.n_agents != 2:
        raise ValueError(f"two-outcome search: needs 2 buyers, got {env.n_agents}")

    grids = signal_grids(env, grid_points, dtype)
    tau_v = 0.02

    def soft_gap(params, s, i):
        prof = jax.vmap(lambda x: priors.replace_signal(s, env.dims, i, x))(grids[i])
        sc = jax.vmap(lambda m: family.score(params, m))(prof)
        w = jax.nn.sigmoid((sc if i == 0 else -sc) / temperature)
        v = jax.vmap(env.values)(prof)[:, i]

        def smax(x, wt):  # tau log(sum_x wt exp(x / tau) / sum wt), finite where wt = 0
            wt = wt + 1e-6
            m = jax.lax.stop_gradient(jnp.max(x))
            z = jnp.sum(wt * jnp.exp((x - m) / tau_v))
            return m + tau_v * (jnp.log(jnp.maximum(z, 1e-30)) - jnp.log(jnp.sum(wt)))

        gap = jax.nn.relu(smax(v, 1.0 - w) - -smax(-v, w)) / 2
        return jnp.where((jnp.sum(w) > 1e-3) & (jnp.sum(1.0 - w) > 1e-3), gap, 0.0)

    def loss(params, s, target):
        gaps = jnp.concatenate([jax.vmap(lambda x, i=i: soft_gap(params, x, i))(s) for i in range(2)])
        worst = soft_max(gaps, jnp.ones_like(gaps), 0.02)  # ex post: the worst s_-i counts, not the mean
        p1 = jnp.mean(jax.nn.sigmoid(jax.vmap(lambda m: family.score(params, m))(s) / temperature))
        off = jnp.minimum(p1, 1.0 - p1) - target  # pinned at the target: one point of the frontier per target
        return worst + penalty * off**2

    opt = optax.apply_if_finite(optax.chain(optax.clip_by_global_norm(1.0), optax.adam(learning_rate)), 20)

    @jax.jit
    def step(params, state, k, target):
        s = prior.sample(k, batch, dtype)
        value, g = jax.value_and_grad(loss)(params, s, target)
        upd, state = opt.update(g, state, params)
        return optax.apply_updates(params, upd), state, value

    def search(
        target: float, *, key: Array, steps: int = 300, shift: float | None = None, eval_profiles: int = 512,
        eval_grid: int = 33,
    ) -> TwoOutcomeFit:  # fmt: skip
        params = family.init if shift is None else {**family.init, "shift": jnp.asarray(shift, jnp.float32)}
        start = params
        state = opt.init(params)
        tgt = jnp.asarray(target, dtype)
        log = []
        with jax.numpy_dtype_promotion("standard"):
            for k in range(steps):
                params, state, value = step(params, state, jax.random.fold_in(key, k), tgt)
                if k % 10 == 0 or k == steps - 1:
                    log.append(float(value))
        prof = prior.sample(jax.random.fold_in(key, steps + 1), eval_profiles, dtype)
        eval_grids = signal_grids(env, eval_grid, dtype)
        fits = []
        for cand in (params, start):  # the search result, and its start if that is better on the exact measure
            p1, p2, rmax, rmean, _ = evaluate_two_outcome(env, lambda m, c=cand: family.score(c, m), prof, eval_grids)
            fits.append(TwoOutcomeFit(float(target), cand, p1, p2, rmax, rmean, log))
        return min(fits, key=lambda f: f.regret_max + abs(min(f.p_a1[0], f.p_a2[0]) - target))  # regret, on target

    return search
