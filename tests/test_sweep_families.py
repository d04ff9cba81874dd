"""Sweeps compile one audit kernel per family of runs that differ only in float environment / prior / mechanism
values (the float numbers become kernel arguments), and fall back to one kernel per run where a builder needs them.

The grouping (app/build.py) is internal to ``jaxmech run``'s sweeps, whose output hides shared kernels: tested directly.
"""

import dataclasses
from pathlib import Path

import jax.numpy as jnp
import pytest

import jaxmech as jm
from jaxmech._src.app import build
from jaxmech._src.app import config as cfg

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_sweep_families_share_one_kernel():
    # runs that differ only in float environment / prior / mechanism values form one family (one compiled kernel);
    # a None-vs-float difference (a copula switched on), an int (n) or an audit setting starts another
    base, _ = cfg.load(CONFIGS / "ce_thm8_budget_classes.toml")
    cases = [
        build.settings_with(base, o)
        for o in (
            ["environment.a=0.5"], ["environment.a=1.5", "environment.cost=1.2"], ["environment.a=0.5", "prior.rho=0.3"],
            ["environment.a=2.0", "environment.n=3"], ["environment.a=0.7", "audit.rtol=1e-3"], ["environment.a=1.0"],
        )
    ]  # fmt: skip
    fams = build.families(cases)
    assert fams == [([0, 1, 5], [("environment", "a"), ("environment", "cost")]), ([2], []), ([3], []), ([4], [])]


def test_sweep_family_falls_back_where_a_builder_needs_numbers():
    # multiplicative trade values check a < 1, 0 <= b < 1 - a in Python: not traceable in a, so such cases compile
    # one kernel each (build.execute); a Gaussian copula is traceable in rho. Probed abstractly: nothing compiles
    settings, _ = cfg.load(CONFIGS / "ce_thm5_deficit.toml")
    copula = build.settings_with(settings, ["prior.rho=0.5"])
    assert build.family_model(copula, [("prior", "rho")], None, jnp.float32) is not None
    mult = build.settings_with(settings, ["environment.values=multiplicative", "environment.a=0.2"])
    assert build.family_model(mult, [("environment", "a")], None, jnp.float32) is None
    assert build.family_model(mult, [("environment", "b")], None, jnp.float32) is None


def test_price_mechanisms_differing_in_eps_share_one_audit_kernel():
    # B Sec. 3's continuum p_j + c_j^2 + eps: raise_by is an argument of one kernel (build.execute_family); the raised
    # member's report is the one its own audit gives, and both members are ex post IC (eq. (3) holds for every eps)
    data = {"name": "fam", "environment": {"kind": "example1"},
            "mechanism": {"kind": "personalized_prices", "prices": "example1"},
            "audit": {"profiles": 2048, "block_size": 512, "chunk_size": 2048, "misreports": {"grid": 4, "random": 2}}}  # fmt: skip
    base = cfg.parse(jm.Settings, data)
    runs_ = [dataclasses.replace(base, mechanism=dataclasses.replace(base.mechanism, raise_by=e)) for e in (0.0, 0.1)]
    assert build.families(runs_) == [([0, 1], [("mechanism", "raise_by")])]
    builts = [build.build(s) for s in runs_]
    fam = build.execute_family(runs_, builts)
    assert fam[1].info.compile_s == 0.0  # the second member ran on the first one's kernel
    alone = build.execute(runs_[1], builts[1]).report
    for a, b in zip(fam[1].report["regret"], alone["regret"], strict=True):
        assert a["max"] == b["max"] <= fam[1].report["tol"]
    assert fam[1].report["deficit"]["mean"] == alone["deficit"]["mean"]
    assert builts[1].mechanism.name.endswith("+ 0.1")


def test_cases_differing_only_in_the_prior_share_one_audit_kernel():
    # CE Props 1-2's cases: uniform, Beta, copula priors of one environment and mechanism -> one kernel, the prior's
    # numbers (priors.PriorArrays) its argument; a member gives its own audit's numbers (priors.sample_arrays draws
    # Prior.sample's numbers: tests/test_priors.py)
    base, _ = cfg.load(
        CONFIGS / "ce_prop12_ex_post.toml",
        ("audit.profiles=1024", "audit.block_size=1024", "audit.chunk_size=1024", "audit.misreports.grid=4",
         "audit.misreports.random=1", "audit.fast_compile=true"),
    )  # fmt: skip
    overrides = ([], ["prior.marginal.kind=beta", "prior.marginal.a=2.0", "prior.marginal.b=5.0", "prior.rho=0.5"],
                 ["prior.marginal.kind=beta", "prior.marginal.a=0.5", "prior.marginal.b=0.5"])  # fmt: skip
    runs_ = [build.settings_with(base, o) for o in overrides]
    assert len(build.families(runs_)) == 3  # as float-only families: three kernels
    builts = [build.build(s) for s in runs_]
    keys = {build.prior_family_key(s, b) for s, b in zip(runs_, builts, strict=True)}
    assert len(keys) == 1 and None not in keys
    fam = build.execute_over_priors(runs_, builts)
    assert fam[0].info.compile_s > 0 and fam[1].info.compile_s == fam[2].info.compile_s == 0.0
    alone = build.execute(runs_[1], builts[1]).report  # the copula with Beta marginals through its own kernel
    for k in ("deficit", "welfare"):
        assert fam[1].report[k]["mean"] == pytest.approx(alone[k]["mean"], rel=1e-5, abs=1e-7)
    assert fam[1].report["deficit"]["max"] == pytest.approx(alone["deficit"]["max"], rel=1e-5, abs=1e-7)
    for r in fam:
        assert max(x["max"] for x in r.report["regret"]) <= r.report["tol"]
    # a mechanism built from the prior (interim payments) closes over its numbers: no shared key
    interim = build.settings_with(base, ["environment.kind=bilateral_trade", "mechanism.kind=interim"])
    assert build.prior_family_key(interim, build.build(interim)) is None
