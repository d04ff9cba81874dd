"""Checks of B's assumptions and of admissibility on sampled profiles, and statistics of a price mechanism.

On samples, each with a witness (B Sec. 4, 4.1):

- :func:`check_assumption1a`: values non-decreasing in every signal (B Assumption 1a);
- :func:`check_assumption2`: buyer ``i``'s value the most sensitive to ``i``'s own signal (B Assumption 2,
  footnote 14 form);
- :func:`check_assumption3`: each buyer strictly highest on a set of positive measure (B Assumption 3, Sec. 4.1);
- :func:`check_admissible`: at most one buyer clears his personalized price (B eq. (3));
- :func:`assumption_report`: the first three as one JSON-ready record;
- :func:`price_stats`: outcomes, revenue, welfare, weak efficiency and eq. (3) of the B eq. (4) rule.

The prices themselves (B eq. (8)) are computed in :mod:`pivotal`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.core import priors
from jaxmech._src.core.environments import Environment

Array = jax.Array
Params = Any


# --------------------------------------------------------------------------
# checks on samples: B Assumptions 1a, 2, 3 and admissibility (eq. (3)), each with a witness


class Violation(NamedTuple):
    """Worst violation of a sampled inequality and where it happens.

    Attributes:
      worst: the worst violation (``<= 0``: none found), shape ``(n, n)`` indexed ``[i, k]`` as documented
        by the check.
      profile: the witness profile ``s``, shape ``(n, n, D)``.
      moved: the second profile ``s'`` of the witness pair, shape ``(n, n, D)``.
    """

    worst: Array
    profile: Array
    moved: Array


def _up(env: Environment, s: Array, step: Array, k: int, hi: Array) -> Array:
    sl = priors.agent_slice(env.dims, k)
    return priors.replace_signal(s, env.dims, k, jnp.minimum(s[sl] + jnp.abs(step[sl]), hi[sl]))


def _worst(env: Environment, profiles: Array, steps: Array, gap: Callable[[Array, Array, int], Array]) -> Violation:
    """``max`` over samples of ``gap(s, s', k)[i]`` with ``s'`` = ``s`` with buyer ``k``'s signal raised by the step."""
    n = env.n_agents
    hi = jnp.asarray(env.hi, profiles.dtype)
    worst, prof, moved = [], [], []
    for k in range(n):

        def one(s, step, k=k):
            s2 = _up(env, s, step, k, hi)
            return gap(s, s2, k), s2

        g, s2 = jax.vmap(one)(profiles, steps)  # (N, n), (N, D)
        j = jnp.argmax(g, axis=0)  # (n,)
        worst.append(g[j, jnp.arange(n)])
        prof.append(profiles[j])
        moved.append(s2[j])
    # stacked over the moved buyer k: transpose to [i, k]
    return Violation(jnp.stack(worst, axis=1), jnp.stack(prof, axis=1), jnp.stack(moved, axis=1))


def check_assumption1a(env: Environment, profiles: Array, steps: Array) -> Violation:
    """B Assumption 1a on samples: ``worst[i, k] = max V_i(s) - V_i(s')`` over ``s' = s`` with ``s_k`` raised.

    ``profiles``, ``steps`` shape ``(N, D)`` (steps' absolute values are used, clipped to the
    domain). ``worst <= 0`` (up to rounding) means no decrease was found; otherwise
    ``profile[i, k]`` and ``moved[i, k]`` are a pair with ``s' >= s`` and ``V_i(s') < V_i(s)``.
    """
    return _worst(env, profiles, steps, lambda s, s2, k: env.values(s) - env.values(s2))


def check_assumption2(env: Environment, profiles: Array, steps: Array) -> Violation:
    """B Assumption 2 on samples (footnote 14 form): ``worst[i, j] = max (dV_j - dV_i)`` for ``s_i -> s_i'``.

    ``V_i(s'_i, s_-i) - V_i(s) >= V_j(s'_i, s_-i) - V_j(s)`` for ``s'_i > s_i``: buyer ``i``'s value
    is the more sensitive to ``i``'s own signal. ``worst[i, i] = 0``; a positive entry comes with
    its witness pair ``profile[i, j]``, ``moved[i, j]`` (entries near float rounding, ~1e-6 in float32, are noise).
    """

    def gap(s, s2, k):
        dv = env.values(s2) - env.values(s)
        return dv - dv[k]  # [j]: dV_j - dV_k for buyer k's signal raised

    v = _worst(env, profiles, steps, gap)  # [j, k]
    n = env.n_agents
    t = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731  -> [k = i, j]
    return Violation(t(v.worst).at[jnp.diag_indices(n)].set(0.0), t(v.profile), t(v.moved))


class Leadership(NamedTuple):
    """B Assumption 3 on samples: how often each buyer's value is strictly the highest.

    Attributes:
      share: ``P(V_i > max_{j != i} V_j)`` per buyer, shape ``(n,)``.
      se: its Monte Carlo standard error, shape ``(n,)``.
      margin: ``max_s (V_i - max_{j != i} V_j)`` over the samples, shape ``(n,)``.
      profile: where the margin is attained (a witness of leadership when ``margin > 0``, else the
        closest buyer ``i`` came), shape ``(n, D)``.
    """

    share: Array
    se: Array
    margin: Array
    profile: Array


def check_assumption3(env: Environment, profiles: Array) -> Leadership:
    """B Assumption 3 (Sec. 4.1 form): each buyer strictly highest on a set of positive measure.

    Holds on the samples when ``share - 1.96 se > 0`` for every buyer (and at least two buyers for
    n > 2, which is what Sec. 4.1 needs).
    """
    v = jax.vmap(env.values)(profiles)  # (N, n)
    n = env.n_agents
    lead = jnp.stack(
        [v[:, i] - jnp.max(jnp.delete(v, i, axis=1, assume_unique_indices=True), axis=1) for i in range(n)], 1
    )
    p = jnp.mean((lead > 0).astype(v.dtype), axis=0)
    j = jnp.argmax(lead, axis=0)
    return Leadership(p, jnp.sqrt(p * (1 - p) / v.shape[0]), lead[j, jnp.arange(n)], profiles[j])


class Admissibility(NamedTuple):
    """B eq. (3) on samples: at most one buyer's value exceeds his personalized price.

    Attributes:
      violations: number of sampled profiles where two or more buyers clear their prices, shape ``()``.
      share: ``violations / N``, shape ``()``.
      margin: the largest second-highest surplus ``V_i - t_i`` over the samples (``> 0``: a violation),
        shape ``()``.
      profile: the witness profile, shape ``(D,)``; ``values`` and ``prices`` there, shape ``(n,)`` each.
    """

    violations: Array
    share: Array
    margin: Array
    profile: Array
    values: Array
    prices: Array


def check_admissible(
    env: Environment, prices: Callable[[Params, Array], Array], profiles: Array, params: Params = ()
) -> Admissibility:
    """Check B eq. (3) for any price tuple ``prices(params, m) -> (n,)`` on sampled profiles ``(N, D)``."""
    v = jax.vmap(env.values)(profiles)
    t = jax.vmap(lambda m: prices(params, m))(profiles)
    surplus = v - t
    second = jnp.sort(surplus, axis=1)[:, -2]
    j = jnp.argmax(second)
    bad = jnp.sum((second > 0).astype(jnp.int32))
    return Admissibility(bad, bad / profiles.shape[0], second[j], profiles[j], v[j], t[j])


def assumption_report(env: Environment, profiles: Array, steps: Array, compiler_options=None) -> dict:
    """B Assumptions 1a, 2 and 3 on samples (JSON-ready), each with its witness (``compiler_options``: ``jax.jit``'s)."""
    tol = 1e-5 * max(1.0, float(jnp.max(jnp.abs(jax.vmap(env.values)(profiles)))))
    out = {"profiles": int(profiles.shape[0]), "tol": tol}
    for name, fn in (("assumption1a", check_assumption1a), ("assumption2", check_assumption2)):
        v = jax.jit(lambda p, st, fn=fn: fn(env, p, st), compiler_options=compiler_options)(profiles, steps)
        w = np.asarray(v.worst)
        i, k = np.unravel_index(int(np.argmax(w)), w.shape)
        out[name] = {
            "holds": bool(w.max() <= tol),
            "worst": w.tolist(),
            "witness": {"pair": [int(i), int(k)], "profile": np.asarray(v.profile[i, k]).tolist(),
                        "moved": np.asarray(v.moved[i, k]).tolist()},
        }  # fmt: skip
    a3 = jax.jit(lambda p: check_assumption3(env, p), compiler_options=compiler_options)(profiles)
    share, se = np.asarray(a3.share), np.asarray(a3.se)
    leaders = int(np.sum(share - 1.96 * se > 0))
    out["assumption3"] = {
        "holds": bool(leaders >= 2 and (env.n_agents > 2 or leaders == 2)),
        "share": share.tolist(),
        "se": se.tolist(),
        "margin": np.asarray(a3.margin).tolist(),
        "witness_profiles": np.asarray(a3.profile).tolist(),
    }
    return out


# --------------------------------------------------------------------------
# statistics of a price mechanism on sampled profiles (JSON-ready, every mean with its SE)


def mean_se(x: np.ndarray) -> dict:
    """``{"mean", "se", "ci95"}`` of a sample (float64; ``se = 0`` for one value), JSON-ready."""
    x = np.asarray(x, np.float64)
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0
    return {"mean": float(x.mean()), "se": se, "ci95": [float(x.mean() - 1.96 * se), float(x.mean() + 1.96 * se)]}


def price_stats(env: Environment, profiles: Array, values: Array, prices: Array) -> dict:
    """Outcomes, revenue, welfare, weak efficiency and eq. (3) of the B eq. (4) rule for sampled prices.

    ``profiles`` ``(N, D)``, ``values`` and ``prices`` ``(N, n)``. Buyer ``i`` wins iff ``V_i > t_i``
    (largest surplus if several clear). Weak efficiency (B Sec. 4, after the Theorem): a winner has the
    highest value; reported as the share of sales where he does, with the worst shortfall and its profile.
    """
    v = np.asarray(values, np.float64)
    t = np.asarray(prices, np.float64)
    s = np.asarray(profiles, np.float64)
    n = v.shape[1]
    surplus = v - t
    win = surplus.argmax(axis=1)
    sold = surplus[np.arange(len(v)), win] > 0
    outcome = np.where(sold, win + 1, 0)
    paid = np.where(sold, t[np.arange(len(v)), win], 0.0)
    welfare = np.where(sold, v[np.arange(len(v)), win], 0.0)
    best = np.maximum(v.max(axis=1), 0.0)
    short = np.where(sold, v.max(axis=1) - v[np.arange(len(v)), win], 0.0)
    clears = (surplus > 0).sum(axis=1)
    second = np.sort(surplus, axis=1)[:, -2]
    k = int(np.argmax(short))
    a = int(np.argmax(second))
    out = {
        "profiles": int(len(v)),
        "outcomes": {f"a{j}": mean_se(outcome == j) for j in range(n + 1)},
        "revenue": mean_se(paid),
        "welfare": mean_se(welfare),
        "first_best_welfare": mean_se(best),
        "welfare_minus_first_best": mean_se(welfare - best),
        "weak_efficiency": {
            "share_of_sales": mean_se((short[sold] <= 1e-6 * max(1.0, np.abs(v).max())).astype(float))
            if sold.any()
            else None,
            "worst_shortfall": float(short[k]),
            "worst_profile": s[k].tolist(),
        },
        "admissible": {
            "violations": int((clears > 1).sum()),
            "second_surplus_max": float(second[a]),
            "witness_profile": s[a].tolist(),
            "witness_values": v[a].tolist(),
            "witness_prices": t[a].tolist(),
        },
    }
    return out
