"""XLA compile options every layer may use: constants, a read-only check of the process's flags, and a probe of
which options this jaxlib's XLA knows.

Not a layer: no JAX objects at import, no state. ``jaxmech reproduce --quick`` runs its experiments in worker
processes started with the :data:`QUICK_XLA_FLAGS`: a quick run is dominated by compiling hundreds of
programs that each run for milliseconds, and XLA's CPU backend compiles them ~1.5-2x faster without LLVM
optimization and ~1.5x faster again with its classic fusion emitters (``xla_cpu_use_fusion_emitters=false``:
the default MLIR emitters build and tear down an MLIR context and a pass pipeline per fusion, ~30% of a
quick run's CPU under ``perf``). The few programs whose *run* time matters (a search step, the interim
payment and interim IC loops) ask for :data:`FULL_OPTIMIZATION` explicitly: XLA's default level and
emitters, without YNNPACK reduction fusions on a CPU.

XLA renames and retires its options between releases, and an unknown one is an error (``No such compile
option``; in ``XLA_FLAGS`` it aborts the process). So every use goes through :func:`supported`, which keeps
the options this jaxlib knows: with a newer jaxlib the programs compile with XLA's defaults instead of failing.
"""

from __future__ import annotations

import os

# ``compiler_options`` for a program compiled fast: no LLVM backend optimization, classic CPU fusion emitters
# (ignored by other backends). Same numbers up to float rounding; on a CPU an audit kernel compiles ~2-3x
# faster and runs ~1.5-2x slower.
FAST_COMPILE = (("xla_backend_optimization_level", 0), ("xla_cpu_use_fusion_emitters", False))
# Programs that run a loop inside a loop where a float comparison steers the outer loop (B's ray search: a root
# finder inside a golden-section search) are miscompiled by XLA's CPU backend (jaxlib 0.10.2) when BOTH options
# above hold: B Example 1's price t*_2 = p_1 + c_1 = 0.019172 came out 0.014387 at one profile of a 1,024-profile
# batch, and b_private_common's prices moved by up to 6e-5 (1e-3 for variants of the root finder), while either
# option alone, and XLA's defaults, give the same prices to 1e-6 (tests/test_pivotal_edges.py). Such programs
# compile with :data:`NESTED_LOOPS_FAST` (no LLVM optimization, XLA's default emitters: still ~2x faster to compile
# than the full optimization) or, when not compiled fast, :data:`NESTED_LOOPS_FULL`, which also undoes the classic
# emitters that ``jaxmech reproduce --quick`` sets for the whole worker process (:data:`QUICK_XLA_FLAGS`).
NESTED_LOOPS_FAST = (("xla_backend_optimization_level", 0), ("xla_cpu_use_fusion_emitters", True))
NESTED_LOOPS_FULL = (("xla_cpu_use_fusion_emitters", True),)


def compile_options_for(fast: bool, nested_loops: bool = False) -> dict[str, object] | None:
    """``compiler_options`` for a program compiled ``fast`` or not, with or without nested loops (see above);
    ``None`` (the process's defaults) for a full compile of a program without them."""
    if nested_loops:
        return supported(NESTED_LOOPS_FAST if fast else NESTED_LOOPS_FULL)
    return supported(FAST_COMPILE) if fast else None


# ``fast_compile="auto"`` compiles an audit kernel fast for at most this many profiles. Measured break-even
# (compile time saved = run time lost; ``benchmarks/fast_compile_breakeven.py``, 2-core x86-64, jax 0.10.2,
# default misreports): closed-form trade pivots 7.1e5 profiles, bisection pivots (trade 2.5e5, public good n = 3
# 2.5e5), B's pivotal prices 1.0e5: a fast-compiled kernel runs 4-12x slower, so beyond ~1e5 profiles the full
# compile wins. 2^16 stays below the smallest break-even: where the rule errs, it errs towards the full compile,
# whose extra cost is bounded by a few seconds of compiling.
AUTO_FAST_MAX_PROFILES = 1 << 16


def fast_compile_for(setting: bool | str, n_profiles: int) -> bool:
    """Whether an audit of ``n_profiles`` compiles fast: ``setting`` itself when a bool; for ``"auto"``, when
    ``n_profiles <= AUTO_FAST_MAX_PROFILES`` (the measured break-even above)."""
    if isinstance(setting, bool):
        return setting
    if setting == "auto":
        return int(n_profiles) <= AUTO_FAST_MAX_PROFILES
    raise ValueError(f"fast_compile: expected true, false or 'auto', got {setting!r}")


# ``compiler_options`` for a program that runs long (a search step, the interim loops): XLA's default level and
# emitters, asked for explicitly so that they hold in a process started with :data:`QUICK_XLA_FLAGS`, and no
# YNNPACK fusions on a CPU (``xla_cpu_experimental_ynn_fusion_type`` empty): XLA hands reductions to YNNPACK by
# default, which is slow on the skinny ``(batch, n)`` arrays of a vmapped search (the W4 step: 74 -> 211
# steps/s at batch 2^16 on 2 cores, the same loss).
FULL_OPTIMIZATION = (
    ("xla_backend_optimization_level", 3),
    ("xla_cpu_use_fusion_emitters", True),
    ("xla_cpu_experimental_ynn_fusion_type", ""),
)


def as_flags(options: dict[str, object]) -> tuple[str, ...]:
    """Compile options as ``XLA_FLAGS`` entries: ``--name=value``."""
    return tuple(f"--{k}={str(v).lower()}" for k, v in options.items())


# The ``XLA_FLAGS`` entries of ``jaxmech reproduce --quick``'s worker processes: :data:`FAST_COMPILE` as flags.
QUICK_XLA_FLAGS = as_flags(dict(FAST_COMPILE))


def process_compiles_fast() -> bool:
    """Whether this process's ``XLA_FLAGS`` turn LLVM optimization off by default (timings then say so)."""
    return QUICK_XLA_FLAGS[0] in os.environ.get("XLA_FLAGS", "").split()


def _identity(x):
    return x


def supported(options: tuple[tuple[str, object], ...]) -> dict[str, object]:
    """``options`` as a ``compiler_options`` dict, without the entries this jaxlib's XLA does not know.

    Each option is tried on a one-op program (jax caches its compile, so a repeat costs microseconds). The
    options are debug options shared by every backend: a CPU-only one is accepted and ignored on a GPU.
    """
    import jax

    known = {}
    for name, value in options:
        try:
            jax.jit(_identity, compiler_options={name: value}).lower(0.0).compile()
        except Exception as e:  # only an unknown option is dropped
            if "No such compile option" not in str(e) and "not a valid" not in str(e):
                raise
            continue
        known[name] = value
    return known
