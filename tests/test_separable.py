"""CE Thm 2 beyond trade and provision: the project_size environment (k >= 3 ordered sizes), the envelope mechanism
kind for any separable rule, and the thm2 experiment kind (audit, payments, CE Thm 1 certificate, replayed witness)."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmech as jm
from jaxmech._src.app import build, runs
from jaxmech._src.app import config as cfg
from jaxmech._src.core import environments as envs

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_project_size_environment():
    env = jm.project_size(jm.linear_public_values(0.5, 2), 1.0, 3, 2)
    # V = 1.5 (s_1 + s_2); sizes step up where V crosses c (q + 1/2) = 0.5, 1.5
    for s, q in (((0.1, 0.2), 0.0), ((0.2, 0.2), 1.0), ((0.6, 0.5), 2.0), ((1.0, 1.0), 2.0)):
        assert float(env.efficient(jnp.asarray(s))) == q
    assert env.outcome_names == ("size0", "size1", "size2") and env.is_separable
    np.testing.assert_allclose(env.weights(jnp.asarray(2.0)), [2.0, 2.0])
    assert float(env.cost(jnp.asarray(2.0))) == 2.0  # c q^2 / 2
    np.testing.assert_allclose(env.outcome_probs(jnp.asarray(1.25)), [0.0, 0.75, 0.25])  # a lottery's mean size
    np.testing.assert_array_equal(np.asarray(build.outcome_table(env)), [0.0, 1.0, 2.0])
    for bad in ({"levels": 2}, {"cost": 0.0}, {"cost": float("inf")}):
        with pytest.raises(ValueError, match="project_size"):
            envs.project_size(envs.linear_public_values(0.5, 2), **{"cost": 1.0, "levels": 3, "n": 2, **bad})


def _settings(**env) -> cfg.Settings:
    return cfg.parse(jm.Settings, {"name": "t", "environment": {"kind": "project_size", "n": 2, **env},
                                   "mechanism": {"kind": "envelope", "cells": 16}})  # fmt: skip


def test_envelope_kind_pays_the_envelope_formula():
    """Efficient size, envelope payments: t_i = q V_i - sum of ramps past the pivots (closed form); the audit of
    the same mechanism (zero regret) is in the thm2 kind's test below."""
    b = build.build(_settings())
    a, rng = 0.5, np.random.default_rng(0)
    s = rng.uniform(size=(64, 2))
    t = np.asarray(jax.jit(jax.vmap(lambda m: b.mechanism.pay(b.mechanism.params, m)))(jnp.asarray(s, jnp.float32)))
    for i in range(2):
        y = np.array([0.5, 1.5])[None, :] / (1 + a) - s[:, [1 - i]]
        q = np.sum(s[:, [i]] > y, axis=1)
        want = q * (s[:, i] + a * s[:, 1 - i]) - np.sum(np.maximum(0.0, s[:, [i]] - np.maximum(y, 0.0)), axis=1)
        np.testing.assert_allclose(t[:, i], want, atol=2e-6)


def test_thm2_kind_certifies_monotone_and_refutes_non_monotone(tmp_path):
    """The thm2 kind on two size rules: the efficient one has zero regret (and IR) and IC payments at the worst s_-i; the
    non-monotone one (2 -> 1 as the total rises) has a positive 1 -> 2 -> 1 cycle for every agent, and its witness
    replays to the audit's regret."""
    s = cfg.parse(jm.Settings, {
        "name": "t", "environment": {"kind": "project_size", "n": 2}, "mechanism": {"kind": "envelope", "cells": 16},
        "audit": {"profiles": 512, "block_size": 512, "chunk_size": 512, "fast_compile": True,
                  "misreports": {"grid": 16, "random": 0}},
        "experiment": {"kind": "thm2", "profiles": 4, "points": 201, "cases": [
            {"name": "efficient", "set": []},
            {"name": "NOT monotone", "set": ["mechanism.decide=../experiments/_separable_models.py:size_nonmonotone"]},
        ]},
    })  # fmt: skip
    rows = runs.run(s, tmp_path / "res", base_dir=CONFIGS)["thm2"]["rows"]
    eff, bad = rows
    assert eff["regret_max"] <= eff["tol"] and eff["ir_violation_max"] <= eff["tol"] and eff["witness"] is None
    assert all(c["feasible"] for c in eff["certificate"]) and len(eff["payments"]["payments"]) == 4
    assert bad["regret_max"] > 0.1
    assert all(
        not c["feasible"] and c["cycle"] in ([1, 2, 1], [2, 1, 2]) and c["slack"] > 0 for c in bad["certificate"]
    )
    assert bad["witness"]["gain"] == pytest.approx(bad["witness"]["audit_regret"], abs=1e-5)
