"""Parallel scaling: the same suite with ``--workers 1`` and ``--workers 2``, side by side.

Quality bar (issue: performance): trials per hour with 2 workers >= 1.8x those with 1 worker
on this 2-core machine (SPEC section 8: N workers on N cores scale at least 0.8 N). With
``--device cuda`` the same comparison measures k trials sharing one GPU (k worker processes
per device) against one at a time. Each run starts from an empty run directory and goes
through the real command (``gradbench run``: worker processes, Optuna journal storage, MLflow
SQLite store). Pruning is off so that both runs do exactly the same training work.

Each command's summary line shows the summed run time of its workers: when it grows with
the number of workers, the training processes slow each other down (shared caches, memory
bandwidth, or a busy host). "outside runs" is the wall time minus that sum over the number
of workers: start-up, claiming work, the last runs' imbalance and the exit.

Usage:
    python benchmarks/scaling.py                 # 8 configurations x (3 trials + 1 seed)
    python benchmarks/scaling.py --steps 600 --workers 1,2
    python benchmarks/scaling.py --repeat 3      # interleaved rounds, median speed-up
    python benchmarks/scaling.py --device cuda --workers 1,2,4,8   # k trials sharing a GPU
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def suite(steps: int, trials: int, device: str = "cpu") -> dict:
    return {
        "name": "scaling", "device": device,
        "tasks": {"adding": {"seq_len": [50], "val_size": 256, "test_size": 256},
                  "copy": {"seq_len": [20], "val_size": 256, "test_size": 256}},
        "models": ["rnn", "irnn", "lstm", "gru"], "regularization": ["none"],
        "clipping": ["norm"], "model": {"param_budget": 5000},
        "training": {"steps": steps, "batch_size": 64, "eval_every": 50},
        "search": {"lr": {"low": 1e-3, "high": 3e-2, "log": True},
                   "clip": {"low": 0.1, "high": 10.0, "log": True}},
        "tuning": {"trials": trials, "sampler": "tpe", "pruner": "none"},
        "final": {"seeds": 1}, "diagnostics": {"probe_every": 100},
    }


def run(config: Path, workers: int, root: Path) -> tuple[float, str]:
    runs_dir = root / f"workers{workers}"
    cmd = [sys.executable, "-m", "bench", "run", str(config), "--runs-dir", str(runs_dir),
           "--workers", str(workers)]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--device", default="cpu",
                        help="cuda: every worker on the GPU(s), several per device")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of all worker counts, interleaved (a noisy machine)")
    args = parser.parse_args()
    spec = suite(args.steps, args.trials, args.device)
    jobs = 8 * (args.trials + 1)
    counts = [int(w) for w in args.workers.split(",")]
    ratios: dict[int, list[float]] = {w: [] for w in counts}
    with tempfile.TemporaryDirectory(prefix="gradbench-scaling-") as tmp:
        root = Path(tmp)
        config = root / "scaling.yaml"
        config.write_text(yaml.safe_dump(spec))
        for round_ in range(args.repeat):
            rates = {}
            for workers in counts:
                wall, out = run(config, workers, root / f"round{round_}")
                rates[workers] = jobs / wall * 3600
                summary = next((line for line in out.splitlines() if "training steps" in line),
                               "")
                found = re.search(r"of (\d+) s of run time", summary)
                outside = f"; outside runs {wall - int(found[1]) / workers:.1f} s" if found else ""
                print(f"--workers {workers}: {jobs} runs in {wall:.1f} s = "
                      f"{rates[workers]:.0f} runs/hour{outside}; {summary.strip()}")
            base = rates[min(rates)]
            for workers, rate in sorted(rates.items()):
                ratios[workers].append(rate / base)
                print(f"speed-up with {workers} worker(s): {rate / base:.2f}x "
                      f"(bar for 2 workers: >= 1.8x)")
    if args.repeat > 1:
        for workers, values in sorted(ratios.items()):
            listed = ", ".join(f"{v:.2f}" for v in values)
            print(f"{workers} worker(s) over {args.repeat} rounds: median "
                  f"{statistics.median(values):.2f}x ({listed})")


if __name__ == "__main__":
    main()
