"""XLA compile options every layer may use (constants, and one read-only check of the process's flags).

Not a layer: no JAX objects, no state. ``jaxmech reproduce --quick`` runs its experiments in worker
processes started with ``XLA_FLAGS=--xla_backend_optimization_level=0`` (:data:`QUICK_XLA_FLAG`): a quick
run is dominated by compiling hundreds of programs that each run for milliseconds, and XLA's CPU backend
compiles them ~1.5-2x faster without LLVM optimization. The few programs whose *run* time matters (a
search step, the interim payment and interim IC loops) ask for :data:`FULL_OPTIMIZATION` explicitly, which
is XLA's own default: outside such a process it changes nothing.
"""

from __future__ import annotations

import os

# ``compiler_options`` for a program compiled fast: no LLVM backend optimization. Same numbers up to float
# rounding; on a CPU an audit kernel compiles ~1.5x faster and runs ~1.5-2x slower.
FAST_COMPILE = (("xla_backend_optimization_level", 0),)
# ``compiler_options`` for a program that runs long: XLA's default level, asked for explicitly so that it
# holds in a process whose default is :data:`QUICK_XLA_FLAG`.
FULL_OPTIMIZATION = (("xla_backend_optimization_level", 3),)
# The ``XLA_FLAGS`` entry of ``jaxmech reproduce --quick``'s worker processes.
QUICK_XLA_FLAG = "--xla_backend_optimization_level=0"


def process_compiles_fast() -> bool:
    """Whether this process's ``XLA_FLAGS`` turn LLVM optimization off by default (timings then say so)."""
    return QUICK_XLA_FLAG in os.environ.get("XLA_FLAGS", "").split()
