"""A configuration's leaderboard statistics over its final seeds: the one computation behind
the terminal's table and the report's.

Two stages read the same seeds from different stores: the run stage from Optuna's trial
records (``bench.run.suite.board_row``: the terminal, ``gradbench status`` and the parent
run's ``final/*`` metrics), the report from MLflow's runs (``bench.report.leaderboard``: the
page and ``leaderboard.csv``). Each turns what it read into ``Seed`` values; ``seed_stats``
computes the row's numbers from them, so both say the same.

Every final seed done counts: a diverged seed (a non-finite loss, or a final validation loss
above ``training.diverge_factor`` times the trivial predictor's) with the trivial predictor's
test score, which it records; none is dropped, and ``diverged_rate`` says how many those are.
Every score is capped at the trivial predictor's (``bench.scores``), so no seed counts for
worse than predicting the mean. A final seed trains its whole budget (``stop_when_solved``
ends tuning trials only), so its score does not depend on when it stopped.

Example:
    >>> stats = seed_stats([Seed(0.9, solved=True, solved_at=100), Seed(0.7),
    ...                     Seed(0.2, diverged=True)])
    >>> round(stats.mean, 4), round(stats.std, 4), stats.seeds, stats.steps_to_solve
    (0.6, 0.3606, 3, 100.0)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Seed:
    """One final seed done (complete or diverged), as its store recorded it."""

    score: float | None  # the test metric, capped; a diverged seed's: the trivial predictor's
    solved: bool = False  # met the task's solved rule
    solved_at: float | None = None  # the first evaluation step that met it
    diverged: bool = False


@dataclass(frozen=True)
class SeedStats:
    """The leaderboard's numbers of one configuration; NaN where there is nothing to count."""

    seeds: int  # final seeds done
    n_values: int  # of those, the ones with a finite test score (mean and std are over them)
    mean: float
    std: float  # sample standard deviation; NaN below two values
    solved_rate: float
    diverged_rate: float
    # median, over the seeds that solved (the test set's verdict), of the first evaluation
    # step whose validation metrics met the rule; a seed that met it on validation only and
    # missed it on the test set does not count (the table would say "solved 0, steps 600")
    steps_to_solve: float


def mean_std(values: Sequence[float | None]) -> tuple[float, float]:
    """(mean, sample std) of the finite ``values``; NaN where undefined (std needs two)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else math.nan


def seed_stats(seeds: Sequence[Seed]) -> SeedStats:
    """The statistics of one configuration's final seeds done (``Seed``)."""
    scores = [s.score for s in seeds if s.score is not None and math.isfinite(s.score)]
    mean, std = mean_std(scores)
    solved_at = [s.solved_at for s in seeds if s.solved and s.solved_at is not None]
    return SeedStats(
        seeds=len(seeds), n_values=len(scores), mean=mean, std=std,
        solved_rate=_rate(seeds, [s.solved for s in seeds]),
        diverged_rate=_rate(seeds, [s.diverged for s in seeds]),
        steps_to_solve=float(statistics.median(solved_at)) if solved_at else math.nan)


def _rate(seeds: Sequence[Seed], hits: Sequence[bool]) -> float:
    return sum(hits) / len(seeds) if seeds else math.nan
