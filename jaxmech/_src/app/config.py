"""Layer 7 — typed, validated, frozen settings read from TOML.

Every section is a frozen dataclass; :func:`parse` checks a plain mapping
against it and raises :class:`ConfigError` with a one-line message naming the
key path (``audit.misreports.grid``), the bad value, and — for unknown keys —
the closest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from jaxmech._src.core.priors import correlation_problem, rho_problem


class ConfigError(ValueError):
    """A config problem, reported as one line naming the key path."""


# The most profiles (or other per-profile work items) a count setting may ask for: 2^53, the largest count a float64
# holds exactly. Beyond it a request is a typo, not a workload: the message says how long it would take at
# PROFILES_PER_SECOND.
MAX_PROFILES = 2**53
PROFILES_PER_SECOND = 1e9
_SECONDS_PER_YEAR = 365.25 * 24 * 3600


def _power_of_two(n: int) -> str:
    """``2^53`` for a power of two, else the number."""
    k = n.bit_length() - 1
    return f"2^{k}" if n == 1 << k and k >= 10 else f"{n}"


def too_many(what: str, value, maximum: int = MAX_PROFILES, unit: str = "profiles") -> str:
    """``'<what> = 1e+30 is more than 2^53 (9.0e+15); at 1e9 profiles/s it would take 3.2e+13 years'``."""
    bound = _power_of_two(maximum)
    bound = f"{bound} ({maximum:.1e})" if bound != f"{maximum}" else bound
    seconds = float(value) / PROFILES_PER_SECOND
    scales = ((_SECONDS_PER_YEAR, "years"), (86400.0, "days"), (3600.0, "hours"), (1.0, "s"))
    size, name = next((sz, nm) for sz, nm in scales if seconds >= 2 * sz or nm == "s")
    n = seconds / size
    took = f"{n:.0f} {name}" if 10 <= n < 1e4 else f"{n:.2g} {name}"
    rate = f"{PROFILES_PER_SECOND:.0e}".replace("e+0", "e").replace("e+", "e")
    return f"{what} = {_show(value)} is more than {bound}; at {rate} {unit}/s it would take {took}"


def _show(value) -> str:
    """A value for a message: huge integers (from ``1e30``) in exponent notation."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**16:
        return f"{value:.3g}"
    return repr(value)


def _meta(default=dataclasses.MISSING, *, doc: str = "", min=None, max=None, choices=None, factory=None, unit=None):
    """A settings field. ``min`` / ``max``: inclusive bounds; ``unit``: the work item a count counts (its ``max``
    message then says how long that many would take, :func:`too_many`)."""
    if max is not None and unit is not None:
        doc = f"{doc} (at most {_power_of_two(max)})"
    md = {"doc": doc, "min": min, "max": max, "choices": choices, "unit": unit}
    if factory is not None:
        return field(default_factory=factory, metadata=md)
    return field(default=default, metadata=md)


# --------------------------------------------------------------------------
# sections


@dataclass(frozen=True, kw_only=True)
class MarginalSettings:
    kind: str = _meta("uniform", doc="uniform | beta", choices=("uniform", "beta"))
    lo: float = _meta(0.0, doc="lower end of the support")
    hi: float = _meta(1.0, doc="upper end of the support")
    a: float = _meta(1.0, doc="beta shape a (> 0)")
    b: float = _meta(1.0, doc="beta shape b (> 0)")


@dataclass(frozen=True, kw_only=True)
class PriorSettings:
    marginal: MarginalSettings = _meta(factory=MarginalSettings, doc="marginal of every coordinate")
    marginals: tuple[MarginalSettings, ...] | None = _meta(None, doc="one marginal per coordinate (overrides marginal)")
    correlation: tuple[tuple[float, ...], ...] | None = _meta(None, doc="Gaussian-copula correlation matrix (D x D)")
    rho: float | None = _meta(None, doc="Gaussian copula with equicorrelation rho (-1/(D-1) < rho < 1)")


@dataclass(frozen=True, kw_only=True)
class EnvironmentSettings:
    kind: str = _meta(doc="environment kind (see `jaxmech list`)")
    values: str = _meta(
        "linear", doc="linear | multiplicative | deadzone | convex (bilateral trade) or 'module:function' / 'file.py:function'"
    )
    a: float = _meta(0.5, doc="interdependence a (linear: v_i = s_i + a s_-i; multiplicative; convex: a s_sigma^2)")
    b: float = _meta(0.4, doc="multiplicative: coefficient of s_beta s_sigma in v_beta")
    gamma: float = _meta(0.1, doc="multiplicative: the seller's premium")
    w: float = _meta(0.2, doc="deadzone: half-width of the band of ties |s_beta - s_sigma| <= w")
    k: float = _meta(0.5, doc="deadzone: slope of the gain from trade outside the band")
    dims: tuple[int, ...] | None = _meta(None, doc="signal dimension per agent (single_object)")
    n: int = _meta(2, doc="number of agents (public_good, example1, private_common, two_objects)", min=2)
    cost: float = _meta(1.0, doc="public_good: cost c of the project")
    weights: tuple[float, ...] | None = _meta(
        None, doc="public_good linear values: own-signal weights w_i (default 1); private_common: common weights w_i"
    )
    own: float | None = _meta(None, doc="private_common: weight of c_i in V_i (default (max w - min w) / n + 0.25)")
    projects: int = _meta(3, doc="project_choice: number of projects k (outcomes)", min=2)
    levels: int = _meta(3, doc="project_size: number of sizes k (q in {0, ..., k - 1})", min=3)


@dataclass(frozen=True, kw_only=True)
class MechanismSettings:
    kind: str = _meta(doc="mechanism kind (see `jaxmech list`)")
    pivot: str = _meta("bisection", doc="how pivots are found", choices=("bisection", "closed_form"))
    decide: str | None = _meta(None, doc="'module:function' decision rule decide(params, m) -> q")
    pay: str | None = _meta(None, doc="'module:function' payment rule pay(params, m) -> t")
    prices: str = _meta("example1", doc="personalized prices: example1 | own_signal | 'module:function'")
    cutoff: float = _meta(0.5, doc="threshold_with_rebate: trade cutoff")
    window: float = _meta(0.002, doc="threshold_with_rebate: width of the rebate window", min=0.0)
    rebate: float = _meta(0.01, doc="threshold_with_rebate: rebate size", min=0.0)
    tie_break: str = _meta("no_trade", doc="efficient_trade: no_trade | trade", choices=("no_trade", "trade"))
    shift: float = _meta(0.0, doc="shifted_cutoff: trade iff m_beta > m_sigma + shift")
    width: float = _meta(0.5, doc="band_trade / randomized_ramp / lemma5_reduction: band width", min=0.0)
    table_points: int = _meta(1025, doc="deficit_minimizing: grid points for g_*", min=3)
    cells: int = _meta(
        1024, doc="randomized_ramp: Riemann-Stieltjes cells of the envelope payments; envelope: quadrature cells", min=1
    )
    subsidy: float = _meta(
        0.0, doc="randomized_ramp: each agent also receives subsidy * m_-i (IC and IR, not revenue-maximal)", min=0.0
    )
    inner: int = _meta(
        65536, doc="interim: profiles for the interim expectation of payments", min=1, max=MAX_PROFILES, unit="profiles"
    )
    thresholds: tuple[float, ...] | None = _meta(
        None, doc="threshold_contribution: pivotal valuations vbar (one per agent)"
    )
    sbar: tuple[float, ...] | None = _meta(
        None, doc="threshold_contribution: boundary profile, vbar = v(sbar) (CE Thm 9)"
    )
    method: str = _meta(
        "rays", doc="pivotal: rays (one search per buyer) | nested (B's lam* bisection)", choices=("rays", "nested")
    )
    rays: int = _meta(9, doc="pivotal: coarse rays per angle (odd)", min=3)
    refine: int = _meta(24, doc="pivotal: golden-section steps on the ray angle (d_i = 2)", min=0)
    raise_by: float = _meta(0.0, doc="personalized_prices / pivotal: add eps_i >= 0 to each price (B Sec. 3)", min=0.0)
    raise_shape: str = _meta(
        "constant",
        doc="eps_i = raise_by (constant) | raise_by * mean of the others' signals (others_mean)",
        choices=("constant", "others_mean"),
    )
    reserves: tuple[float, ...] | None = _meta(
        None,
        doc="serial_dictatorship: reserve signals r_kX (2 numbers, per object, or 2n, buyer by buyer); buyer k pays "
        "V_kX(r_kX, m_-k) for object X (default 0.5)",
    )
    potentials: tuple[float, ...] | None = _meta(
        None, doc="affine_maximizer: w(a) per outcome, f = argmax_a sum_i v_i(a, m) + w(a) (default 0: efficient)"
    )


@dataclass(frozen=True, kw_only=True)
class MisreportSettings:
    grid: int = _meta(16, doc="grid points per signal dimension (0: off)", min=0)
    max_grid: int = _meta(4096, doc="cap on grid size per agent", min=1)
    random: int = _meta(8, doc="random misreports per profile and agent (0: off)", min=0)
    kinks: bool = _meta(True, doc="misreports just below/above the mechanism's kinks")
    kink_eps: float = _meta(1e-4, doc="kink offset relative to the signal range", min=0.0)
    gradient_steps: int = _meta(0, doc="Adam steps of gradient ascent on the misreport (0: off)", min=0)
    gradient_restarts: int = _meta(2, doc="ascent starts (best point so far + random)", min=1)
    gradient_lr: float = _meta(0.02, doc="Adam learning rate (relative to the signal range)", min=0.0)
    grid_chunk: int = _meta(0, doc="misreports per scan step (0: 16 on a CPU, the whole grid on a GPU)", min=0)


@dataclass(frozen=True, kw_only=True)
class AuditSettings:
    profiles: int = _meta(
        100_000, doc="number of sampled profiles (a standard error needs two)", min=2, max=MAX_PROFILES, unit="profiles"
    )
    block_size: int = _meta(4096, doc="profiles per block (fixes the sample)", min=1, max=MAX_PROFILES, unit="profiles")
    chunk_size: int = _meta(65536, doc="profiles per compiled call", min=1, max=MAX_PROFILES, unit="profiles")
    segment_blocks: int = _meta(
        1024,
        doc="blocks per reduction segment (processes split on segments; totals equal for any process count)",
        min=1,
    )
    rtol: float | None = _meta(None, doc="tolerance relative to the value scale (default 1e-5 f32, 1e-10 f64)", min=0.0)
    misreports: MisreportSettings = _meta(factory=MisreportSettings, doc="misreport strategies")
    fast_compile: bool | str = _meta(
        "auto",
        doc="compile the audit kernel without LLVM optimization and with XLA's classic CPU fusion emitters: same "
        'numbers up to float rounding, ~3x faster compile, 4-12x slower run; "auto": for at most 65,536 '
        "profiles, below the measured break-even of ~1e5 (benchmarks/fast_compile_breakeven.py); reproduce --quick "
        "sets true",
        choices=("auto",),
    )


@dataclass(frozen=True, kw_only=True)
class SearchSettings:
    family: str = _meta(
        "threshold",
        doc="threshold (CE Def 12 pivotal valuations) | monotone_boundary (public good, n = 2) | monotone_cutoff "
        "(bilateral trade)",
        choices=("threshold", "monotone_boundary", "monotone_cutoff"),
    )
    init: tuple[float, ...] | None = _meta(
        None, doc="initial parameters (threshold: vbar; boundary families: knot values)"
    )
    knots: int = _meta(17, doc="boundary families: knots of the piecewise-linear boundary", min=2)
    warm_start: bool = _meta(False, doc="monotone_cutoff: start from the best budget-balanced two-price rule")
    constraint_grid: int = _meta(33, doc="support grid points per coordinate added to every constraint batch", min=0)
    steps: int = _meta(400, doc="optimizer steps", min=1)
    batch: int = _meta(4096, doc="fresh profiles per step", min=16, max=MAX_PROFILES, unit="profiles")
    optimizer: str = _meta("adam", doc="optax optimizer", choices=("adam", "sgd", "adamw", "rmsprop"))
    learning_rate: float = _meta(0.01, doc="peak learning rate", min=0.0)
    schedule: str = _meta("cosine", doc="learning-rate schedule", choices=("constant", "cosine", "exponential"))
    temperature_start: float = _meta(0.1, doc="relaxation temperature at the start", min=1e-9)
    temperature_end: float = _meta(0.002, doc="relaxation temperature at the end", min=1e-9)
    penalty_start: float = _meta(10.0, doc="augmented-Lagrangian penalty rho at the start", min=0.0)
    penalty_growth: float = _meta(1.01, doc="rho grows by this factor per step", min=1.0)
    penalty_max: float = _meta(
        100.0, doc="cap on rho (large rho + a noisy batch max biases to the feasible side)", min=0.0
    )
    average_tail: float = _meta(
        0.3, doc="Polyak-average the iterates over this last fraction of steps", min=0.0, max=1.0
    )
    dual_every: int = _meta(10, doc="steps between multiplier updates", min=1)
    softmax_temperature: float = _meta(0.005, doc="smooth max over the batch of the constraint violations", min=1e-9)
    objective: str = _meta("welfare", doc="welfare | revenue", choices=("welfare", "revenue"))
    grid_points: int = _meta(201, doc="grid search along the budget line: points per free coordinate", min=2)
    grid_profiles: int = _meta(
        131072, doc="common profiles for the grid search and the comparison", min=16, max=MAX_PROFILES, unit="profiles"
    )


@dataclass(frozen=True, kw_only=True)
class DesignSettings:
    family: str = _meta(
        "auto",
        doc="auto | two_price | randomized | cutoff (bilateral trade) | threshold | posted | boundary | randomized (public good) | virtual (either, budget ex_ante: the virtual-surplus rule, the default there) | reserve (single object)",
        choices=("auto", "two_price", "randomized", "cutoff", "threshold", "posted", "boundary", "virtual", "reserve"),
    )
    objective: str = _meta(
        "welfare", doc="welfare (+ revenue_weight x revenue) | revenue", choices=("welfare", "revenue")
    )
    revenue_weight: float = _meta(0.0, doc="weight of revenue (= -deficit) added to welfare", min=0.0)
    budget: str = _meta(
        "ex_post",
        doc="ex_post (deficit <= 0 in every state) | ex_ante (E[deficit] <= 0)",
        choices=("ex_post", "ex_ante"),
    )
    starts: int = _meta(4, doc="cold starts, drawn from the run's key and searched at once", min=1)
    steps: int = _meta(300, doc="annealed search steps", min=1)
    batch: int = _meta(4096, doc="fresh profiles per step", min=16, max=MAX_PROFILES, unit="profiles")
    learning_rate: float = _meta(0.02, doc="peak Adam learning rate", min=0.0)
    temperature_start: float = _meta(0.05, doc="relaxation temperature at the start", min=1e-9)
    temperature_end: float = _meta(0.002, doc="relaxation temperature at the end", min=1e-9)
    constraint_grid: int = _meta(33, doc="support grid points per coordinate added to every constraint batch", min=0)
    knots: int = _meta(9, doc="randomized / cutoff / boundary: knots per signal", min=2)
    polish: bool = _meta(True, doc="two_price / posted / threshold: refine along the budget boundary by quadrature")
    repair_profiles: int = _meta(
        16384, doc="fresh profiles of the exact repair's budget check", min=16, max=MAX_PROFILES, unit="profiles"
    )
    eval_profiles: int = _meta(
        262144, doc="fresh profiles for the objective's mean and SE", min=16, max=MAX_PROFILES, unit="profiles"
    )
    check_grid: int = _meta(33, doc="support grid points per coordinate of the final grid check", min=2)
    reference: bool = _meta(True, doc="solve the finite-type LP reference (needs scipy: pip install 'jaxmech[lp]')")
    lp_grids: tuple[int, ...] = _meta((17, 33, 65), doc="LP grid sizes G (types per agent), extrapolated in 1/G")


@dataclass(frozen=True, kw_only=True)
class CaseSettings:
    name: str = _meta(doc="case label")
    set: tuple[str, ...] = _meta((), doc="overrides 'path.to.key=value' applied to this config")


@dataclass(frozen=True, kw_only=True)
class ExperimentSettings:
    kind: str = _meta(
        "audit", doc="experiment kind (see `jaxmech list`; checked against the registered kinds when the run starts)"
    )
    parameter: str | None = _meta(None, doc="sweep: key path to vary, e.g. environment.a")
    values: tuple[float, ...] = _meta((), doc="sweep: values of the parameter")
    cases: tuple[CaseSettings, ...] = _meta((), doc="sweep: named cases, each a list of overrides")
    against: tuple[MechanismSettings, ...] = _meta(
        (), doc="compare_deficits / pivotal: mechanisms compared to [mechanism]"
    )
    targets: tuple[float, ...] = _meta(
        (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5), doc="two_outcome: non-triviality targets min(P(a_1), P(a_2)) = target"
    )
    profile: tuple[float, ...] | None = _meta(None, doc="pivotal: the profile whose s_-1 the signal-square plot fixes")
    stats_profiles: int = _meta(
        16384,
        doc="pivotal: profiles for price statistics; two_outcome: evaluation profiles",
        min=16,
        max=MAX_PROFILES,
        unit="profiles",
    )
    types: int = _meta(33, doc="interim: type grid points per agent", min=2)
    misreports: int = _meta(129, doc="interim: misreport grid points", min=2)
    inner: int = _meta(16384, doc="interim: profiles for the interim check", min=1, max=MAX_PROFILES, unit="profiles")
    signals: int = _meta(21, doc="double_auction / contributions: signal grid points per agent", min=2)
    bids: int = _meta(41, doc="double_auction: bid grid points; contributions: deviation grid per (d, p) axis", min=2)
    profiles: int = _meta(
        64,
        doc="certify: sampled s_-i per agent (CE Thm 1 certificates); thm2: profiles whose payments are recorded",
        min=1,
        max=MAX_PROFILES,
        unit="profiles",
    )
    points: int = _meta(
        33, doc="certify / thm2: own-signal grid points per dimension (capped at 4096 per agent)", min=2
    )
    refine: tuple[int, ...] = _meta(
        (), doc="certify: uniform own-signal sample sizes for agent 1's payment-difference widths without boundary points"
    )
    band: float = _meta(
        0.0, doc="certify (with refine, project_choice): remove |x_0 - x_1| < band and x_2 from agent 1's types", min=0.0
    )
    externalities: tuple[float, ...] = _meta(
        (0.0, 0.01, 0.02, 0.04),
        doc="externality: sizes eps of the consumption externality (buyer i loses eps e_i(s) when another buyer wins)",
    )
    plots: bool = _meta(True, doc="write PNG plots into the results folder (needs matplotlib)")


@dataclass(frozen=True, kw_only=True)
class Settings:
    name: str = _meta("run", doc="run name (results folder prefix)")
    seed: int = _meta(0, doc="root PRNG seed (jax.random.PRNGKey keeps 32 bits)", min=0, max=2**32 - 1)
    precision: str = _meta("float32", doc="float32 | float64", choices=("float32", "float64"))
    environment: EnvironmentSettings = _meta(doc="value model")
    prior: PriorSettings = _meta(factory=PriorSettings, doc="distribution of signals")
    mechanism: MechanismSettings = _meta(doc="decision and payment rule")
    audit: AuditSettings = _meta(factory=AuditSettings, doc="audit sizes and misreports")
    experiment: ExperimentSettings = _meta(factory=ExperimentSettings, doc="what the run does with the model")
    search: SearchSettings = _meta(factory=SearchSettings, doc="gradient search (experiment.kind = search)")
    design: DesignSettings = _meta(factory=DesignSettings, doc="mechanism design (experiment.kind = design)")


# --------------------------------------------------------------------------
# parsing


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _check(value, tp, path: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _check(value, inner[0], path)
        for tp_k in inner:  # e.g. bool | str: true / false, else a string (its choices are checked after)
            try:
                return _check(value, tp_k, path)
            except ConfigError:
                pass
        said = {bool: "true or false", str: "a string", int: "an integer", float: "a number"}
        raise ConfigError(f"{path}: expected {' or '.join(said.get(t, _type_name(t)) for t in inner)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a table, got {value!r}")
        return parse(tp, value, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        elem = args[0]
        return tuple(_check(v, elem, f"{path}[{k}]") for k, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        # An integral float is an integer (TOML `profiles = 1e6`, `--set audit.profiles=1e6`); 1.5, inf, nan and
        # booleans are not.
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported type {_type_name(tp)}")  # pragma: no cover


def not_one_of(path: str, value, choices) -> str:
    """``'<path>: must be one of a, b, c; got 'x' (did you mean 'a'?)'``: a value outside a field's choices (also
    used for names checked outside the schema, e.g. ``experiment.kind`` against the registered kinds)."""
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{path}: must be one of {', '.join(choices)}; got {value!r}{hint}"


def parse(cls, data: dict, path: str = ""):
    """Validate ``data`` against the dataclass ``cls``; return a frozen instance."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{path}." if path else ""
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.5)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else f" (valid keys: {', '.join(fields)})"
            raise ConfigError(f"{prefix}{key}: unknown key{hint}")
    kwargs = {}
    for name, f in fields.items():
        kp = f"{prefix}{name}"
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{kp}: required key is missing")
            continue
        value = _check(data[name], hints[name], kp)
        md = f.metadata
        if md.get("choices") and isinstance(value, str) and value not in md["choices"]:
            either = ("true", "false") if bool in typing.get_args(hints[name]) else ()  # a bool | str field
            raise ConfigError(not_one_of(kp, value, (*either, *md["choices"])))
        if value is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            bounded = md.get("min") is not None or md.get("max") is not None
            if bounded and value != value:  # nan passes every comparison
                raise ConfigError(f"{kp}: expected a number, got {value!r}")
            if md.get("min") is not None and value < md["min"]:
                raise ConfigError(f"{kp}: must be >= {md['min']}, got {_show(value)}")
            if md.get("max") is not None and value > md["max"]:
                if md.get("unit"):
                    raise ConfigError(too_many(kp, value, md["max"], md["unit"]))
                raise ConfigError(f"{kp}: must be <= {md['max']}, got {_show(value)}")
        kwargs[name] = value
    check = _SECTION_CHECKS.get(cls)
    if check is not None:
        check(kwargs, prefix)
    return cls(**kwargs)


def _check_prior(values: dict, prefix: str) -> None:
    """A Gaussian copula must have a positive definite correlation: rho = 1 (or a singular matrix) makes signals
    exact functions of each other, whose ties the audit's probabilities would silently miscount."""
    rho = values.get("rho")
    if rho is not None:
        problem = rho_problem(rho)
        if problem is not None:
            raise ConfigError(f"{prefix}{problem}")
    corr = values.get("correlation")
    if corr is not None:
        problem = correlation_problem(corr)
        if problem is not None:
            raise ConfigError(f"{prefix}correlation: {problem}")


# Checks across the fields of one section, after each field passed its own (``check(values, prefix)``).
_SECTION_CHECKS = {PriorSettings: _check_prior}


def set_path(data: dict, dotted: str, raw: str) -> None:
    """Apply one ``--set a.b.c=value`` override (value parsed as TOML, else taken as a string)."""
    keys = dotted.split(".")
    if not all(keys):
        raise ConfigError(f"--set {dotted}={raw}: bad key path")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    node = data
    for k in keys[:-1]:
        nxt = node.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {dotted}: '{k}' is not a table")
        node = nxt
    node[keys[-1]] = value


def load(path: str | Path, overrides: tuple[str, ...] = ()) -> tuple[Settings, dict]:
    """Read, override and validate a TOML config; returns ``(settings, raw mapping)``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"{path}: config is UTF-16 text (byte-order mark {raw[:2].hex()}); TOML must be UTF-8")
    try:
        text = raw.decode("utf-8-sig")  # TOML is UTF-8; a leading UTF-8 byte-order mark is dropped
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: config is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); TOML must be UTF-8"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML ({e})") from None
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected path.to.key=value")
        k, v = item.split("=", 1)
        set_path(data, k.strip(), v.strip())
    return parse(Settings, data), data


def to_dict(settings) -> dict:
    """Settings as plain data (``None`` dropped), for the resolved config copy."""

    def conv(x):
        if dataclasses.is_dataclass(x):
            return {f.name: conv(getattr(x, f.name)) for f in dataclasses.fields(x) if getattr(x, f.name) is not None}
        if isinstance(x, tuple):
            return [conv(v) for v in x]
        return x

    return conv(settings)


def dump_toml(data: dict) -> str:
    """A small TOML writer for settings (tables, scalars, lists, lists of tables)."""
    lines: list[str] = []

    def scalar(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {scalar(x)}" for k, x in v.items()) + " }"
        raise TypeError(v)

    def table(d: dict, name: str):
        plain = {k: v for k, v in d.items() if not isinstance(v, dict)}
        subs = {k: v for k, v in d.items() if isinstance(v, dict)}
        if name and plain:
            lines.append(f"\n[{name}]")
        for k, v in plain.items():
            lines.append(f"{k} = {scalar(v)}")
        for k, v in subs.items():
            table(v, f"{name}.{k}" if name else k)

    table(data, "")
    return "\n".join(lines).lstrip() + "\n"


def reference_markdown(cls=None, prefix: str = "") -> str:
    """The config reference as Markdown tables, one per section, generated from the settings schema.

    ``docs/configs.md`` embeds it between ``<!-- config reference -->`` markers; ``tests/test_docs.py`` fails
    when the file is stale (``tests/test_docs.py`` rewrites it with ``JAXMECH_WRITE_DOCS=1``).
    """
    cls = Settings if cls is None else cls
    hints = typing.get_type_hints(cls)
    rows, subs = [], []
    for f in dataclasses.fields(cls):
        tp, md = hints[f.name], f.metadata
        if dataclasses.is_dataclass(tp):
            subs.append(reference_markdown(tp, f"{prefix}{f.name}."))
            continue
        default = "(required)" if f.default is dataclasses.MISSING else _toml_value(f.default)
        allowed = []
        if md.get("choices"):
            either = ("true", "false") if bool in typing.get_args(tp) else ()  # a bool | str field
            allowed.append(" \\| ".join((*either, *md["choices"])))
        if md.get("min") is not None:
            allowed.append(f">= {md['min']}")
        if md.get("max") is not None:
            mx = md["max"]
            allowed.append(f"<= {_power_of_two(mx) if isinstance(mx, int) else mx}")
        doc = md.get("doc", "").replace("|", "\\|")
        tname = _type_name(tp).replace("|", "\\|")
        rows.append(f"| `{prefix}{f.name}` | {tname} | `{default}` | {', '.join(allowed)} | {doc} |")
    title = f"### [{prefix.rstrip('.')}]" if prefix else "### top level"
    table = [title, "", "| key | type | default | allowed | meaning |", "| --- | --- | --- | --- | --- |", *rows]
    return "\n".join(table if rows else [title]) + "\n" + "".join("\n" + s for s in subs)


def _toml_value(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return repr(v)


def describe(cls, indent: str = "") -> list[str]:
    """Human-readable reference of a settings dataclass (for README / `jaxmech list`)."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.append(f"{indent}[{f.name}]  {f.metadata.get('doc', '')}")
            out.extend(describe(tp, indent + "  "))
            continue
        default = f.default if f.default is not dataclasses.MISSING else "(required)"
        out.append(f"{indent}{f.name} = {default!r}  # {f.metadata.get('doc', '')}")
    return out
