"""Pruning: training steps spent and best validation value, with and without the pruner.

Quality bar (issue: performance): on the default suite, pruning saves >= 40% of the tuning
trials' training steps at an equal best validation value (within seed noise). The same
suite runs twice through the real command, once with ``tuning.pruner=none`` and once with
the suite's pruner; both use the same seeded sampler. Printed: steps spent in tuning trials,
the saving, and per configuration the best validation loss of both runs, with the median
ratio (pruned / unpruned) and how many configurations got worse by more than 10%.

Usage:
    python benchmarks/pruning.py                          # the default suite, 2 workers
    python benchmarks/pruning.py --tasks adding,copy --workers 2
    python benchmarks/pruning.py --set tuning.trials=8    # any override of the suite
    python benchmarks/pruning.py --pruner halving         # another pruner than the suite's
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import config, tuning


def run(suite: str, runs_dir: Path, pruner: str, args: argparse.Namespace) -> float:
    cmd = [sys.executable, "-m", "bench", "run", suite, "--runs-dir", str(runs_dir),
           "--workers", str(args.workers), "--set", f"tuning.pruner={pruner}"]
    for item in args.set:
        cmd += ["--set", item]
    if args.tasks:
        cmd += ["--tasks", args.tasks]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def spent(runs_dir: Path, suite: str, pruner: str, args: argparse.Namespace) -> dict:
    """Per configuration: tuning steps spent and the best validation loss."""
    overrides = {"set": [f"tuning.pruner={pruner}", *args.set]}
    if args.tasks:
        overrides["tasks"] = args.tasks.split(",")
    spec = config.load(config.resolve_config(suite), overrides)
    storage = tuning.open_storage(None, runs_dir / spec.name)
    out = {}
    for configuration in config.expand(spec):
        try:
            trials = tuning.trial_records(storage, spec, configuration)
        except KeyError:
            continue  # HAR skipped (no data)
        steps = sum(int(t.attrs.get("steps_done", 0)) for t in trials)
        best = tuning.best_trial(trials)
        value = best.value if best is not None and best.value is not None else float("nan")
        out[configuration.name] = (steps, value, tuning.counts(trials)["pruned"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", default="default")
    parser.add_argument("--tasks", default=None, help="only these tasks, e.g. adding,copy")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="config override")
    parser.add_argument("--pruner", default=None, help="default: the suite's own pruner")
    args = parser.parse_args()
    pruner = args.pruner or config.load(config.resolve_config(args.suite)).tuning.pruner
    with tempfile.TemporaryDirectory(prefix="gradbench-pruning-") as tmp:
        results, walls = {}, {}
        for name in ("none", pruner):
            runs_dir = Path(tmp) / name
            walls[name] = run(args.suite, runs_dir, name, args)
            results[name] = spent(runs_dir, args.suite, name, args)
    base, pruned = results["none"], results[pruner]
    print(f"{'configuration':32} {'steps none':>10} {'steps ' + pruner:>12} {'pruned':>6} "
          f"{'best none':>10} {'best ' + pruner:>12}")
    ratios = []
    for name in base:
        (s0, v0, _), (s1, v1, n1) = base[name], pruned[name]
        ratios.append(v1 / v0 if v0 else float("nan"))
        print(f"{name:32} {s0:10d} {s1:12d} {n1:6d} {v0:10.4f} {v1:12.4f}")
    steps0 = sum(v[0] for v in base.values())
    steps1 = sum(v[0] for v in pruned.values())
    worse = sum(1 for r in ratios if r > 1.10)
    print(f"tuning steps: {steps0} without pruning, {steps1} with {pruner}: "
          f"{1 - steps1 / steps0:.1%} saved (bar: >= 40%)")
    print(f"best validation loss, {pruner} / none: median ratio "
          f"{statistics.median(ratios):.3f}; {worse} of {len(ratios)} configurations worse by "
          f"more than 10%")
    print(f"wall time: {walls['none']:.0f} s without pruning, {walls[pruner]:.0f} s with")


if __name__ == "__main__":
    main()
