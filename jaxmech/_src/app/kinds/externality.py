"""The ``externality`` kind (B Sec. 5): a price mechanism built for selfish buyers of one object (B eq. (4); the
Sec. 4 construction for ``kind = "pivotal"``), audited when each buyer also loses ``eps e_i(s)`` if another buyer
gets the object, for each ``eps`` of ``experiment.externalities``: regret, the eq. (5) indifference, outcomes."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxmech._src.app import build, streams
from jaxmech._src.app import config as cfg
from jaxmech._src.app.kinds.common import Kind, regret_summary
from jaxmech._src.core import engine, priors
from jaxmech._src.core import environments as envs
from jaxmech._src.core import mechanisms as mechs


def externality_mechanism(env: envs.Environment, m: cfg.MechanismSettings, base_dir=None) -> mechs.Mechanism:
    """``[mechanism]``'s prices in B eq. (4) with a menu that answers the whole allocation: under an externality who
    else wins matters (:func:`pivotal.pivotal_mechanism`'s menu answers buyer ``i``'s own allocation only). Buyer
    ``i``'s price ``t_i(m_-i)`` is computed once per menu, the others' prices (which move with ``m_i``) per
    misreport. Keeps the prices' ``with_nested_loops`` mark (B's ray search)."""
    fn, price_of, label = build.prices_from_settings(env, m, base_dir)
    nested = getattr(price_of, "nested_loops", False) or getattr(fn, "nested_loops", False)
    price_of = price_of or mechs.buyer_price_of(fn)
    if nested:
        fn = mechs.with_nested_loops(fn)
    base = mechs.personalized_prices(env, fn, name=label)
    n = env.n_agents

    def menu(p, mm, i):
        t_i = fn(p, mm)[i]  # the computation decide_and_pay makes at the truthful reports

        def respond(m_i):
            r = priors.replace_signal(mm, env.dims, i, m_i)
            t = jnp.stack([t_i if j == i else price_of(p, r, j) for j in range(n)])
            surplus = env.values(r) - t
            win = jnp.argmax(surplus)
            q = jax.nn.one_hot(win, n, dtype=mm.dtype) * (surplus[win] > 0).astype(mm.dtype)
            return q, q[i] * t_i

        respond.kinks = lambda: mechs.price_kinks(env, mm, i, t_i)
        return respond

    return base._replace(menu=mechs.with_nested_loops(menu) if nested else menu)


def run_externality(settings, base_dir, progress, out_dir):
    """Experiment ``externality`` (B Sec. 5): the selfish-model mechanism audited at each size of the externality."""
    ex, e = settings.experiment, settings.environment
    built = build.build(settings, base_dir)
    env = built.env
    if not env.outcome_names or env.outcome_names[0] != "a0" or not env.is_separable:
        raise cfg.ConfigError(
            "environment.kind: the externality experiment needs a single-object environment (B Sec. 2)"
        )
    if settings.mechanism.kind not in ("pivotal", "personalized_prices"):
        raise cfg.ConfigError(
            f"mechanism.kind: the externality experiment audits price mechanisms, got {settings.mechanism.kind!r}"
        )
    eps = [float(x) for x in ex.externalities]
    if not eps or any(not np.isfinite(x) or x < 0 for x in eps):
        raise cfg.ConfigError(f"experiment.externalities: need finite sizes eps >= 0, got {list(ex.externalities)}")
    mech = externality_mechanism(env, settings.mechanism, base_dir)

    def model(theta):
        return envs.consumption_externality(env, theta[0]), mech, built.prior

    a = settings.audit
    results = engine.audit_family(
        model, [(x,) for x in eps], key=jax.random.PRNGKey(settings.seed), n_profiles=a.profiles,
        misreports=built.misreports, dtype=built.dtype, rtol=a.rtol,
        options=build.stream_options(settings, progress=progress), built=[model((x,)) for x in eps],
    )  # fmt: skip
    s = built.prior.sample(streams.key_for(jax.random.PRNGKey(settings.seed), streams.CONDITION5), ex.stats_profiles,
                           built.dtype)  # fmt: skip
    n = env.n_agents
    rows = []
    for x, r in zip(eps, results, strict=True):
        pert = envs.consumption_externality(env, x)
        # eq. (5) for (a_0, a_j): the largest |v_i(a_j, s) - v_i(a_0, s)| of a buyer i != j over the sample
        gaps = []
        for j in range(n):
            one = jnp.zeros((n,), built.dtype).at[j].set(1.0)
            d = jax.vmap(lambda z, one=one, pert=pert: pert.value(one, z) - pert.value(jnp.zeros_like(one), z))(s)
            gaps.append(float(np.max(np.abs(np.delete(np.asarray(d, np.float64), j, axis=1)))))
        rep = r.report
        rows.append({"eps": x, "regret": regret_summary(rep), "profiles": rep["profiles"],
                     "regret_mean": [{"mean": g["mean"], "se": g["se"]} for g in rep["regret"]],
                     "indifference_gap": max(gaps),
                     "outcomes": {k: {"p": v["p"], "se": v["se"]} for k, v in rep["outcomes"].items()}})  # fmt: skip
    out = {"environment": env.name, "settings": {"environment": dataclasses.asdict(e)}, "mechanism": mech.name,
           "nested_loops": mechs.has_nested_loops(mech), "envy": "e_i(s) = mean of buyer i's own signal coordinates",
           "dims": list(env.dims), "rows": rows}  # fmt: skip
    return out, build.total_info(results), []


def _externality_summary(metrics: dict) -> str:
    lines = [
        f"{metrics['name']}: {metrics['mechanism']} in {metrics['environment']} under a consumption externality "
        f"({metrics['envy']})",
        "",
        f"{'eps':>8} {'regret max':>11} {'regret / eps':>13} {'(5) gap':>9}",
    ]
    for r in metrics["rows"]:
        top = max(r["regret"]["max"])
        ratio = f"{top / r['eps']:.4f}" if r["eps"] > 0 else "-"
        lines.append(f"{r['eps']:>8.4g} {top:>11.4g} {ratio:>13} {r['indifference_gap']:>9.4g}")
    return "\n".join(lines)


KIND = Kind(
    name="externality",
    doc=(
        "B Sec. 5: [mechanism] (prices built for selfish buyers of one object) audited when buyer i loses eps e_i(s) "
        "if another buyer wins, for each eps of experiment.externalities: regret (O(eps)), eq. (5) indifference, outcomes"
    ),
    options=("externalities", "stats_profiles"),
    run=run_externality,
    summary=_externality_summary,
)
