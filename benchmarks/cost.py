"""What a suite will cost: training time per step of each of its models, times its budget.

For every task variant and model of a suite, the model is built at the suite's size and a
few training steps (the suite's batch size and optimizer, norm clipping) are timed on this
machine; the cost of the suite is then

    sum over configurations of (trials + final seeds) x steps x (time per step)

printed per task variant and in total, as core-hours (one worker process, one thread) and as
wall time for N workers. It is an upper bound on training (a pruned trial stops early) and a
lower bound on the rest: evaluation, the gradient diagnostics (<= 15% of training, see
overhead.py) and tracking (<= 5%) are not in it. Regularization and clipping do not change
the time per step, so they are timed once per model.

Usage:
    python benchmarks/cost.py full                    # the full suite, on this machine
    python benchmarks/cost.py classic --workers 2
    python benchmarks/cost.py full --device cuda
    python benchmarks/cost.py full --set tasks.har.data_dir=/data/uci-har
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch

import tasks
from bench import config
from bench.models import ModelSizes, build_model, select_device
from bench.train import OPTIMIZERS, configure_torch
from tasks.har import HarDataError


def step_time(task: tasks.Task, model: torch.nn.Module, spec: config.SuiteSpec,
              device: torch.device, steps: int) -> float:
    """Median seconds of one training step (after two warm-up steps)."""
    optimizer = OPTIMIZERS[spec.training.optimizer](list(model.parameters()), lr=1e-3)
    generator = task.train_generator(0)
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        x, y = task.train_batch(spec.training.batch_size, generator)
        loss = task.loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("suite", help="a config file or a packaged config's name")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model")
    parser.add_argument("--set", action="append", default=[], help="config override")
    args = parser.parse_args()
    configure_torch(threads=1)
    spec = config.load(config.resolve_config(args.suite), {"set": args.set})
    device = select_device(args.device)
    runs = spec.tuning.trials + spec.final.seeds
    per_variant: dict[str, float] = defaultdict(float)
    timed: dict[tuple[str, str], float] = {}
    missing: set[str] = set()
    print(f"suite {spec.name}: {spec.tuning.trials} trials + {spec.final.seeds} seeds per "
          f"configuration, {spec.training.steps} steps, batch {spec.training.batch_size}, "
          f"on {device}")
    print(f"{'task variant':14} {'model':6} {'params':>7} {'ms/step':>8}")
    for configuration in config.expand(spec):
        variant = configuration.name.split("/")[0]
        key = (variant, configuration.model)
        if key not in timed and variant not in missing:
            try:
                task = tasks.build(configuration.task, configuration.task_params, seed=0,
                                   device=device)
            except HarDataError as err:
                print(f"{variant:14} skipped: {err}")
                missing.add(variant)
                continue
            sizes = ModelSizes(task.input_size, task.output_size, task.per_step)
            model = build_model(configuration.model, sizes, **spec.model.size({})).to(device)
            timed[key] = step_time(task, model, spec, device, args.steps)
            n = sum(p.numel() for p in model.parameters())
            print(f"{variant:14} {configuration.model:6} {n:7d} {timed[key] * 1e3:8.1f}")
        if key in timed:
            per_variant[variant] += runs * configuration.budget(spec) * timed[key]
    total = sum(per_variant.values())
    for variant, seconds in per_variant.items():
        print(f"{variant:14} {seconds / 3600:8.1f} core-hours of training")
    print(f"total: {total / 3600:.1f} core-hours of training; with {args.workers} workers "
          f"about {total / 3600 / args.workers:.1f} h of wall time (+ evaluation, diagnostics "
          f"and tracking; - what pruning saves)")


if __name__ == "__main__":
    main()
