"""W2: public good, n = 8, threshold contribution rule (CE Thm 9), K = 64 misreports + kinks per agent.

jaxmech through its public API, a vectorized NumPy baseline and (with torch installed) PyTorch eager,
in one run; see jaxmech/_src/app/bench.py for the workload, baselines.py (beside this script) for the
baselines and BENCHMARKS.md for the numbers.

    python benchmarks/bench_w2.py [--quick] [--float64] [--repeats N] [--no-torch] [--json FILE]
"""

import sys

from jaxmech._src.app import bench

if __name__ == "__main__":
    sys.exit(bench.main(["--workload", "W2", *sys.argv[1:]]))
