"""``gradbench ranges SUITE``: where each configuration learns, read from a grid of rates.

A suite run with the grid sampler (``bench/configs/lr-range.yaml``) trains each
configuration once (or more) at every point of a grid of one parameter, the learning rate by
default. A point *learns* where every run at it ended with a validation loss below a
fraction (``LEARNS``, by task) of the trivial predictor's on the same validation examples
(``tasks.trivial_metrics``) without diverging: it has left the plateau at the trivial
predictor's loss. The usable range of a configuration is its longest run of neighbouring
grid points that learn; one that reaches an end of the grid may go on beyond it. The
packaged suites' ``search.lr`` are set from these ranges (docs/results/lr-ranges.md).
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from rich import box
from rich.table import Table

import tasks
from bench import tuning
from bench.cli.commands import load_suite_spec
from bench.cli.view import make_console
from bench.config import Configuration, SuiteSpec, expand
from bench.outcomes import Outcome
from bench.registry import TASKS
from bench.run.inputs import run_dir_for
from bench.run.suite import records

# The fraction of the trivial predictor's validation loss below which a run has left the
# plateau at that loss, by task. Adding: half its loss explained; the plateau sits at the
# trivial loss (1/6) until a model finds the two marked numbers, and a model that found them
# goes on far below (the LSTM and the GRU of the default suite end at 0.01). Copy: the loss
# averages over every output, the recalled symbols carry all of the memoryless loss, and in
# 2,000 steps at T=10 the gated models of the default suite get to 0.76-0.90 of it in 8 of 10
# seeds while the tanh RNN stays at 1.00 in every seed: 0.9 is below what a model on the
# plateau reaches.
# Other tasks (HAR, plugins): half.
LEARNS = {"adding": 0.5, "copy": 0.9}
LEARNS_ELSE = 0.5


@dataclass(frozen=True)
class Point:
    """One grid value and its runs: each run's validation loss over the trivial
    predictor's, None where the run diverged, NaN where it ended without a loss (pruned)."""

    value: float
    ratios: tuple[float | None, ...]
    below: float = LEARNS_ELSE  # the task's fraction: ``LEARNS``

    @property
    def learns(self) -> bool:
        return bool(self.ratios) and all(r is not None and r < self.below for r in self.ratios)

    def shown(self) -> str:
        """The runs' ratios, ``diverged`` for a diverged one."""
        return ", ".join("diverged" if r is None else f"{r:.2f}" for r in self.ratios)


def grid_points(trials: Sequence[tuning.TrialRecord], param: str, trivial_loss: float,
                below: float = LEARNS_ELSE) -> list[Point]:
    """The finished tuning trials (complete, pruned, diverged) grouped by their value of
    ``param``, in increasing order; a trial's value is its validation loss. A point learns
    below ``below`` times ``trivial_loss``."""
    found: dict[float, list[float | None]] = defaultdict(list)
    for t in trials:
        if param not in t.params:
            continue
        if t.outcome == Outcome.DIVERGED:
            found[float(t.params[param])].append(None)
        elif t.outcome in (Outcome.COMPLETE, Outcome.PRUNED):
            loss = t.value if t.outcome == Outcome.COMPLETE and t.value is not None else math.nan
            found[float(t.params[param])].append(loss / trivial_loss)
    return [Point(value, tuple(found[value]), below) for value in sorted(found)]


def usable_range(points: Sequence[Point]) -> tuple[float, float] | None:
    """The ends of the longest run of neighbouring points that learn (of two as long, the
    lower), or None where no point learns."""
    best: tuple[int, int] | None = None
    start = None
    for i, point in enumerate([*points, Point(math.inf, ())]):  # a last one that does not
        if point.learns and start is None:
            start = i
        elif not point.learns and start is not None:
            if best is None or i - start > best[1] - best[0] + 1:
                best = (start, i - 1)
            start = None
    return None if best is None else (points[best[0]].value, points[best[1]].value)


def describe_range(points: Sequence[Point]) -> str:
    """The usable range in words, saying where it reaches an end of the grid."""
    found = usable_range(points)
    if found is None:
        return "none learns"
    low, high = found
    ends = [end for end, at in (("lowest", low == points[0].value),
                                ("highest", high == points[-1].value)) if at]
    edge = f" (the grid's {' and '.join(ends)} point: may reach beyond)" if ends else ""
    return f"{low:.3g} to {high:.3g}{edge}"


def trivial_loss(spec: SuiteSpec, configuration: Configuration) -> float:
    """The trivial predictor's validation loss on the configuration's task, built as its
    runs build it (the validation split does not depend on the run's seed)."""
    task = TASKS.get(configuration.task).build(configuration.task_params, seed=spec.seed,
                                               device=torch.device("cpu"))
    measured = tasks.trivial_metrics(task, "val")
    return float(measured["loss"]) if "loss" in measured else float(task.baseline)


def ranges(args: argparse.Namespace) -> int:
    """``gradbench ranges SUITE``: per configuration, the validation loss over the trivial
    predictor's at each grid value of ``--param``, and the usable range."""
    spec = load_suite_spec(args, needs=("storage",))
    if spec.tuning.objective != "val_loss":
        raise ValueError(f"suite {spec.name!r} tunes tuning.objective={spec.tuning.objective}; "
                         f"the ranges read the validation loss (val_loss)")
    run_dir = run_dir_for(spec, args.runs_dir)
    if not tuning.storage_exists(spec.storage, run_dir):
        raise FileNotFoundError(f"no Optuna storage for suite {spec.name!r} at {run_dir}; "
                                f"run it first: gradbench run {args.suite}")
    storage = tuning.open_storage(spec.storage, run_dir)
    existing = tuning.study_names(storage)
    shown = ", ".join(f"{task} {below}" for task, below in LEARNS.items())
    title = (f"suite {spec.name}: validation loss / the trivial predictor's at each "
             f"{args.param}; learns below {shown} (else {LEARNS_ELSE}) without diverging")
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)  # fits 80 columns
    for column in ("configuration", args.param, "loss/trivial", "learns"):  # kept whole
        table.add_column(column, justify="right" if column == args.param else "left",
                         no_wrap=True)
    table.add_column("usable range", min_width=16)  # wraps at words at 80 columns
    for configuration in expand(spec):
        if tuning.study_name(spec, configuration) not in existing:
            continue  # not started, or its task was left out
        trials, _ = records(storage, spec, configuration)
        points = grid_points(trials, args.param, trivial_loss(spec, configuration),
                             LEARNS.get(configuration.task, LEARNS_ELSE))
        summary = describe_range(points)
        for i, point in enumerate(points):
            table.add_row(configuration.name if i == 0 else "", f"{point.value:.3g}",
                          point.shown(), "yes" if point.learns else "",
                          summary if i == 0 else "", end_section=i == len(points) - 1)
    console = make_console()
    console.print(title)  # wraps at words, as a table's title does not
    console.print(table)
    return 0
