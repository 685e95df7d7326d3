"""Memory of a worker: no growth across trials, and the peak per worker process.

Quality bar (issue: performance): peak resident memory per worker <= 1 GB on the default
suite, and a worker that runs 100 small trials in a row ends within 10% of its resident
memory after the first 10 (no leaked graphs, figures, clients or caches).

This runs one real ``bench.run.worker.Worker`` in this process (Optuna journal storage, MLflow
SQLite store, gradient diagnostics on, one torch thread) on a suite of one configuration
with a budget of ``--trials`` tuning trials, and reads the resident set size (VmRSS) after
every trial. For the HAR task (the largest arrays) pass ``--har DIR``. The peak per worker
on a whole suite is printed by ``gradbench run`` itself at the end of every run.

Usage:
    python benchmarks/memory.py                       # adding T=50, 100 trials
    python benchmarks/memory.py --har ../shared/data/uci-har --trials 30
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench import config
from bench.run.pool import peak_rss_mb
from bench.run.suite import prepare
from bench.run.worker import Worker


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--har", default=None, help="HAR data dir: run the har task instead")
    args = parser.parse_args()
    task = ["har"] if args.har else ["adding"]
    sets = [f"tuning.trials={args.trials}", f"training.steps={args.steps}",
            "training.eval_every=25", "final.seeds=1", "tuning.pruner=none",
            "diagnostics.probe_every=25", "models=[lstm]", "regularization=[none]",
            "clipping=[norm]", "device=cpu", "search.lr={low: 1.0e-3, high: 3.0e-2, log: true}"]
    if args.har:
        sets.append(f"tasks.har.data_dir={args.har}")
    spec = config.load("default", {"tasks": task, "set": sets})
    samples: list[float] = []

    def on_event(kind: str, payload: dict) -> None:
        if kind == "end":
            samples.append(rss_mb())

    with tempfile.TemporaryDirectory(prefix="gradbench-memory-") as tmp:
        suite = prepare(spec, tmp)
        Worker(suite, 0, on_event).run()
    first = samples[min(9, len(samples) - 1)]
    last = samples[-1]
    print(f"{len(samples)} runs ({args.trials} trials + 1 final seed) of {task[0]}/lstm, "
          f"{args.steps} steps each")
    print(f"resident memory after run 1: {samples[0]:.0f} MiB, after run 10: {first:.0f} MiB, "
          f"after run {len(samples)}: {last:.0f} MiB; growth 10 -> {len(samples)}: "
          f"{last / first - 1:+.1%} (bar: <= +10%)")
    print(f"peak resident memory of this worker: {peak_rss_mb():.0f} MiB (bar: <= 1024 MiB)")


if __name__ == "__main__":
    main()
