"""jaxmech: GPU-accelerated Monte Carlo audits and search for ex post IC mechanisms.

Layers (design.md), bottom to top: priors, environments, mechanisms, audit,
engine, runs. The public API is re-exported here; implementation modules live
in ``jaxmech._src``.
"""

__version__ = "0.1.0"

from jaxmech._src.audit import Misreports, block_stats, grid_points, regret, utility
from jaxmech._src.config import ConfigError, Settings
from jaxmech._src.engine import AuditResult, StreamInfo, audit, stream
from jaxmech._src.environments import (
    Environment,
    bilateral_trade,
    example1,
    example1_values,
    linear_trade_values,
    separable,
    single_object,
)
from jaxmech._src.mechanisms import (
    Mechanism,
    bisect,
    efficient_rule,
    example1_prices,
    generalized_vcg,
    linear_trade_pivot,
    own_signal_prices,
    personalized_prices,
    pivot_payments,
    threshold_with_rebate,
)
from jaxmech._src.priors import (
    Beta,
    Prior,
    Uniform,
    agent_slice,
    beta,
    equicorrelation,
    gaussian_copula,
    independent,
    replace_signal,
    uniform,
)

__all__ = [
    "AuditResult",
    "Beta",
    "ConfigError",
    "Environment",
    "Mechanism",
    "Misreports",
    "Prior",
    "Settings",
    "StreamInfo",
    "Uniform",
    "agent_slice",
    "audit",
    "beta",
    "bilateral_trade",
    "bisect",
    "block_stats",
    "efficient_rule",
    "equicorrelation",
    "example1",
    "example1_prices",
    "example1_values",
    "gaussian_copula",
    "generalized_vcg",
    "grid_points",
    "independent",
    "linear_trade_pivot",
    "linear_trade_values",
    "own_signal_prices",
    "personalized_prices",
    "pivot_payments",
    "regret",
    "replace_signal",
    "separable",
    "single_object",
    "stream",
    "threshold_with_rebate",
    "uniform",
    "utility",
]
