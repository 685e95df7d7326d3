"""What a suite will cost, before it runs: its grid, and its training time timed here.

``gradbench run --dry-run`` prints the grid (configurations, runs and training steps per
task variant) and this estimate; ``gradbench cost SUITE`` prints the estimate. For every
task variant and model of the suite, the model is built at the suite's size and a few
training steps (the suite's batch size and optimizer, norm clipping) are timed on this
machine; the cost of the suite is then

    sum over configurations of (trials + final seeds) x steps x (time per step)

as core-hours (one worker process, one thread) and as wall time for N workers. It is an
upper bound on training (a pruned trial stops early) and a lower bound on the rest:
evaluation, the gradient diagnostics and tracking are not in it. Regularization and clipping
do not change the time per step, so they are timed once per model.

Nothing is written (no run directory, no store; only a task's own data cache, e.g. HAR's
parsed arrays the first time a local copy is read) and a task's data are never downloaded
here: a task whose data are not on this machine is left out, with the reason.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import torch

import tasks
from bench import config
from bench.cli.workers import resolve_workers
from bench.config import Configuration, SuiteSpec
from bench.models import build_model, n_parameters, select_device
from bench.registry import TASKS
from bench.run.inputs import available_configurations
from bench.run.job import model_sizes
from bench.train import OPTIMIZERS, configure_torch


@dataclass(frozen=True)
class Timing:
    """One model on one task variant: its size and the median seconds of a training step."""

    variant: str
    model: str
    parameters: int
    step_s: float


def variant_of(configuration: Configuration) -> str:
    """The task variant of a configuration (``adding-T50``)."""
    return configuration.variant


def step_time(task: tasks.Task, model: torch.nn.Module, spec: SuiteSpec,
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


def time_models(spec: SuiteSpec, configurations: Iterable[Configuration],
                device: torch.device, steps: int) -> list[Timing]:
    """Time each (task variant, model) of the grid once."""
    timings: dict[tuple[str, str], Timing] = {}
    built: dict[str, tasks.Task] = {}
    for configuration in configurations:
        variant = variant_of(configuration)
        if (variant, configuration.model) in timings:
            continue
        if variant not in built:
            built[variant] = tasks.build(configuration.task, configuration.task_params,
                                         seed=0, device=device)
        task = built[variant]
        torch.manual_seed(0)
        model = build_model(configuration.model, model_sizes(task),
                            **spec.model.size({})).to(device)
        timings[(variant, configuration.model)] = Timing(
            variant, configuration.model, n_parameters(model),
            step_time(task, model, spec, device, steps))
    return list(timings.values())


def offline_spec(args: argparse.Namespace) -> SuiteSpec:
    """The suite as ``run`` would read it, with every task's download turned off."""
    spec = config.load_args(args)
    offline = [f"tasks.{name}.download=false" for name, _ in spec.tasks
               if "download" in TASKS.get(name).params]
    if not offline:
        return spec
    return config.load_args(argparse.Namespace(**{**vars(args), "set": [*args.set, *offline]}))


def budgets(spec: SuiteSpec, configurations: Iterable[Configuration]) -> str:
    """The training steps of a run per task variant (``Configuration.budget``: a task's own
    ``steps``, else ``training.steps``; ``--steps`` sets both), e.g. ``adding-T50 1,200``."""
    return ", ".join(sorted({f"{variant_of(c)} {c.budget(spec):,}" for c in configurations}))


def _grid(spec: SuiteSpec, configurations: list[Configuration]) -> None:
    """Per task variant: configurations, runs and training steps (at most: pruning saves;
    a task's own ``steps`` replaces ``training.steps``)."""
    runs_each = spec.tuning.trials + spec.final.seeds
    count: dict[str, int] = defaultdict(int)
    steps: dict[str, int] = defaultdict(int)
    for configuration in configurations:
        count[variant_of(configuration)] += 1
        steps[variant_of(configuration)] += runs_each * configuration.budget(spec)
    print(f"suite {spec.name}: {len(configurations)} configurations x ({spec.tuning.trials} "
          f"trials + {spec.final.seeds} seeds); steps per run: {budgets(spec, configurations)}; "
          f"batch {spec.training.batch_size}")
    print(f"{'task variant':16} {'configurations':>14} {'runs':>7} {'steps':>11}")
    for variant, n in count.items():
        print(f"{variant:16} {n:14d} {n * runs_each:7d} {steps[variant]:11,d}")
    print(f"{'total':16} {len(configurations):14d} {len(configurations) * runs_each:7d} "
          f"{sum(steps.values()):11,d}")


def _estimate(spec: SuiteSpec, configurations: list[Configuration], device: torch.device,
              steps: int, workers: int) -> None:
    """Time the models and print the cost per task variant and in total."""
    runs_each = spec.tuning.trials + spec.final.seeds
    timings = {(t.variant, t.model): t for t in time_models(spec, configurations, device, steps)}
    print(f"{'task variant':16} {'model':10} {'params':>7} {'ms/step':>8}   (timed on {device})")
    for t in timings.values():
        print(f"{t.variant:16} {t.model:10} {t.parameters:7d} {t.step_s * 1e3:8.2f}")
    per_variant: dict[str, float] = defaultdict(float)
    for configuration in configurations:
        timing = timings[(variant_of(configuration), configuration.model)]
        per_variant[timing.variant] += runs_each * configuration.budget(spec) * timing.step_s
    for variant, seconds in per_variant.items():
        print(f"{variant:16} {_core_time(seconds):>16} of training")
    total = sum(per_variant.values())
    saves = ["pruning" if spec.tuning.pruner != "none" else "",
             "stopping solved runs" if spec.training.stop_when_solved else "",
             "the T left out beyond a horizon" if spec.tuning.horizon else ""]
    saved = f"; - what {' and '.join(filter(None, saves))} save" if any(saves) else ""
    print(f"total: {_core_time(total)} of training; with {workers} worker(s) "
          f"about {_wall(total / workers)} of wall time (+ evaluation, diagnostics and "
          f"tracking{saved})")


def _core_time(seconds: float) -> str:
    """Core time in the largest unit that shows it: core-hours, else core-minutes, else
    core-seconds (a smoke suite's 0.004 core-hours are not '0.00')."""
    if seconds >= 360:  # 0.1 core-hours
        return f"{seconds / 3600:.2f} core-hours"
    return f"{seconds / 60:.1f} core-minutes" if seconds >= 60 else f"{seconds:.1f} core-seconds"


def _wall(seconds: float) -> str:
    """Wall time in hours, minutes or seconds (never 'about 0.0 min')."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _available(spec: SuiteSpec) -> list[Configuration]:
    configurations, skipped = available_configurations(spec)
    for task, reason in skipped.items():
        print(f"skipped task {task} (nothing is downloaded here): {reason}")
    if not configurations:
        raise ValueError(f"suite {spec.name!r}: nothing to run (skipped: "
                         f"{', '.join(skipped) or 'none'})")
    return configurations


def _setup(args: argparse.Namespace) -> tuple[SuiteSpec, torch.device]:
    configure_torch(threads=1)
    spec = offline_spec(args)
    resolve_workers(args, spec.device)  # not given: what ``gradbench run`` would start here
    return spec, select_device(args.device or spec.device)


def dry_run(args: argparse.Namespace) -> int:
    """``gradbench run --dry-run``: the grid and its cost; nothing is written or started."""
    spec, device = _setup(args)
    configurations = _available(spec)
    _grid(spec, configurations)
    _estimate(spec, configurations, device, steps=10, workers=args.workers)
    print("dry run: nothing was written")
    return 0


def cost(args: argparse.Namespace) -> int:
    """``gradbench cost SUITE``: the suite's training time, timed on this machine."""
    if args.timed_steps < 1:
        raise ValueError(f"--timed-steps: must be >= 1, got {args.timed_steps}")
    spec, device = _setup(args)
    configurations = _available(spec)
    print(f"suite {spec.name}: {spec.tuning.trials} trials + {spec.final.seeds} seeds per "
          f"configuration; steps per run: {budgets(spec, configurations)}; batch "
          f"{spec.training.batch_size}")
    _estimate(spec, configurations, device, steps=args.timed_steps, workers=args.workers)
    return 0
