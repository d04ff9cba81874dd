"""W4: one step of the second-best search (CE Thm 9), batch 2^20 (--quick: 2^16).

jaxmech through its public API, a vectorized NumPy baseline and (with torch installed) PyTorch eager,
in one run; see jaxmech/_src/app/bench.py for the workload, baselines.py (beside this script) for the
baselines and BENCHMARKS.md for the numbers.

    python benchmarks/bench_w4.py [--quick] [--float64] [--repeats N] [--no-torch] [--json FILE]
"""

import sys

from jaxmech._src.app import bench

if __name__ == "__main__":
    sys.exit(bench.main(["--workload", "W4", *sys.argv[1:]]))
