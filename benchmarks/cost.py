"""What a suite will cost: ``gradbench cost SUITE`` (``bench/cli/cost.py``), kept as a script.

Usage:
    python benchmarks/cost.py full                    # the full suite, on this machine
    python benchmarks/cost.py classic --workers 2
    python benchmarks/cost.py full --device cuda
    python benchmarks/cost.py full --set tasks.har.data_dir=/data/uci-har
"""

from __future__ import annotations

import sys

from bench.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["cost", *sys.argv[1:]]))
