"""``gradbench ranges``: where each configuration learns on a grid of rates, and the
packaged suite that measures it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import config, tuning
from bench.cli.main import main
from bench.cli.ranges import LEARNS_ELSE, Point, describe_range, grid_points, usable_range
from bench.outcomes import Outcome
from bench.train import TrainResult
from bench.tuning import TrialRecord


def _trial(number: int, lr: float, outcome: str, value: float | None = None) -> TrialRecord:
    return TrialRecord(number, outcome, value, {"lr": lr, "clip": 1.0})


def test_the_usable_range_is_the_longest_run_of_rates_that_learn() -> None:
    trivial = 0.2
    trials = [_trial(0, 1e-4, Outcome.COMPLETE, 0.19),   # on the plateau
              _trial(1, 3e-4, Outcome.COMPLETE, 0.09),   # learns: 0.45 of the trivial loss
              _trial(2, 1e-3, Outcome.COMPLETE, 0.01),
              _trial(3, 1e-3, Outcome.COMPLETE, 0.02),   # a second run at the same rate
              _trial(4, 3e-3, Outcome.DIVERGED),
              _trial(5, 1e-2, Outcome.COMPLETE, 0.05),   # learns again, alone
              _trial(6, 3e-2, Outcome.PRUNED),
              _trial(7, 1e-1, "running"),                # not done: not read
              TrialRecord(8, Outcome.COMPLETE, 0.01, {"clip": 1.0})]  # no lr: not read
    points = grid_points(trials, "lr", trivial)
    assert [p.value for p in points] == [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
    assert points[2].ratios == pytest.approx((0.05, 0.1))
    assert [p.learns for p in points] == [False, True, True, False, True, False]
    assert points[3].shown() == "diverged" and math.isnan(points[5].ratios[0])
    assert usable_range(points) == (3e-4, 1e-3)
    assert describe_range(points) == "0.0003 to 0.001"
    at_the_edge = [Point(1e-4, (0.1,)), Point(3e-4, (0.4,)), Point(1e-3, (LEARNS_ELSE,))]
    assert describe_range(at_the_edge) == "0.0001 to 0.0003 (the grid's lowest point: may " \
                                          "reach beyond)"
    assert usable_range([Point(1e-3, (0.1,)), Point(3e-3, (0.3, None))]) == (1e-3, 1e-3)
    assert describe_range([Point(1e-3, (0.8,))]) == "none learns"
    assert grid_points(trials[:2], "lr", trivial, below=0.96)[0].learns  # the task's fraction


def test_the_command_reads_a_suite_run_with_the_grid_sampler(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = config.load("lr-range")
    lstm = next(c for c in config.expand(spec) if c.name == "adding-T50/lstm/none/norm")
    storage = tuning.open_storage(None, tmp_path / "lr-range")
    tuning.create_studies(storage, spec, [lstm])
    # the trivial predictor's validation MSE on adding is about 1/6
    losses = {3e-4: 0.16, 6.88e-4: 0.15, 1.58e-3: 0.05, 3.62e-3: 0.004, 8.29e-3: 0.002,
              1.9e-2: 0.03, 4.36e-2: 0.17, 0.1: math.nan}
    for _ in losses:
        claim = tuning.claim(storage, spec, lstm).claim
        assert claim is not None
        loss = losses[claim.params["lr"]]
        result = TrainResult("diverged" if math.isnan(loss) else "completed", steps_done=1200,
                             val={"loss": loss, "mse": loss}, solved=False)
        tuning.tell(claim, result, metric="mse", direction="minimize")
    assert main(["ranges", "lr-range", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "adding-T50/lstm/none/norm" in out, out
    assert "0.00158 to 0.019" in out, out
    assert "diverged" in out and "adding-T50/gru" not in out  # not started: not shown
    assert main(["ranges", "lr-range", "--runs-dir", str(tmp_path / "none")]) == 2
    assert "no Optuna storage for suite 'lr-range'" in capsys.readouterr().err


def test_the_lr_range_suite_runs_each_model_at_every_grid_point(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "lr-range", "--dry-run", "--models", "lstm,irnn"]) == 0
    out = capsys.readouterr().out
    assert "suite lr-range: 4 configurations x (8 trials + 1 seeds)" in out
    assert "dry run: nothing was written" in out
