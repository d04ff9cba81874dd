"""``fast_compile = "auto"``: the audit kernel compiles fast up to the measured break-even profile count.

The rule's constant comes from benchmarks/fast_compile_breakeven.py (no timing is asserted here): these tests
check that the rule is applied where a run starts, recorded, and configurable.
"""

import jax
import jax.numpy as jnp
import pytest

import jaxmech as jm
from jaxmech._src.app import config as cfg
from jaxmech._src.core import compile_options


def _counting_block(key, b, n_valid):
    return {"n": jm.Moments(n_valid.astype(jnp.float32))}


@pytest.mark.parametrize(
    "setting, n, fast",
    [(True, 10**9, True), (False, 16, False), ("auto", 1 << 16, True), ("auto", (1 << 16) + 1, False)],
)
def test_the_rule(setting, n, fast):
    assert compile_options.fast_compile_for(setting, n) is fast


def test_the_rule_refuses_other_values():
    with pytest.raises(ValueError, match="true, false or 'auto'"):
        compile_options.fast_compile_for("fast", 10)


@pytest.mark.parametrize("n, fast", [(4096, True), (70_000, False)])
def test_stream_resolves_auto_by_the_requested_size_and_records_it(n, fast):
    acc, info = jm.stream(_counting_block, key=jax.random.PRNGKey(0), n_profiles=n,
                          options=jm.StreamOptions(block_size=4096, chunk_size=1 << 17, fast_compile="auto"))  # fmt: skip
    assert acc.totals["n"].sum == n
    assert info.fast_compile is fast


def test_config_default_is_auto_and_accepts_booleans():
    assert cfg.AuditSettings().fast_compile == "auto"
    for raw, want in (("true", True), ("false", False), ("auto", "auto")):
        s, _ = cfg.load("configs/bilateral_trade.toml", (f"audit.fast_compile={raw}",))
        assert s.audit.fast_compile == want


@pytest.mark.parametrize(
    "raw, message",
    [
        ("fast", "audit.fast_compile: must be one of true, false, auto; got 'fast'"),
        ("3", "audit.fast_compile: expected true or false or a string, got 3"),
    ],
)
def test_config_errors_name_the_choices(raw, message):
    with pytest.raises(cfg.ConfigError, match=message):
        cfg.load("configs/bilateral_trade.toml", (f"audit.fast_compile={raw}",))
