"""XLA compile options every layer may use (constants, and one read-only check of the process's flags).

Not a layer: no JAX objects, no state. ``jaxmech reproduce --quick`` runs its experiments in worker
processes started with the :data:`QUICK_XLA_FLAGS`: a quick run is dominated by compiling hundreds of
programs that each run for milliseconds, and XLA's CPU backend compiles them ~1.5-2x faster without LLVM
optimization and ~1.5x faster again with its classic fusion emitters (``xla_cpu_use_fusion_emitters=false``:
the default MLIR emitters build and tear down an MLIR context and a pass pipeline per fusion, ~30% of a
quick run's CPU under ``perf``). The few programs whose *run* time matters (a search step, the interim
payment and interim IC loops) ask for :data:`FULL_OPTIMIZATION` explicitly, which is XLA's own default:
outside such a process it changes nothing.
"""

from __future__ import annotations

import os

# ``compiler_options`` for a program compiled fast: no LLVM backend optimization, classic CPU fusion emitters
# (ignored by other backends). Same numbers up to float rounding; on a CPU an audit kernel compiles ~2-3x
# faster and runs ~1.5-2x slower.
FAST_COMPILE = (("xla_backend_optimization_level", 0), ("xla_cpu_use_fusion_emitters", False))
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
# The ``XLA_FLAGS`` entries of ``jaxmech reproduce --quick``'s worker processes: :data:`FAST_COMPILE` as flags.
QUICK_XLA_FLAGS = tuple(f"--{k}={str(v).lower()}" for k, v in FAST_COMPILE)


def process_compiles_fast() -> bool:
    """Whether this process's ``XLA_FLAGS`` make fast compiles the default (timings then say so)."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    return all(f in flags for f in QUICK_XLA_FLAGS)
