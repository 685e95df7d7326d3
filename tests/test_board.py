"""The one leaderboard row (bench/board.py), against values worked out by hand: three uneven
seeds, a diverged one counted at the trivial predictor's score, non-finite and missing
scores left out of the mean only, steps to solve over the seeds that solved."""

from __future__ import annotations

import math

import pytest

from bench.board import Seed, mean_std, seed_stats


def test_mean_std_of_uneven_values_by_hand() -> None:
    # mean 0.6; squared deviations 0.09, 0.01, 0.16 sum to 0.26; sample variance 0.13
    mean, std = mean_std([0.9, 0.7, 0.2])
    assert mean == pytest.approx(0.6) and std == pytest.approx(math.sqrt(0.13))
    mean, std = mean_std([0.9, None, 0.7, math.nan, 0.2, math.inf])
    assert mean == pytest.approx(0.6) and std == pytest.approx(math.sqrt(0.13))
    mean, std = mean_std([0.4])
    assert mean == 0.4 and math.isnan(std)
    assert all(math.isnan(v) for v in mean_std([])) and all(math.isnan(v) for v in
                                                            mean_std([None, math.nan]))


def test_seed_stats_of_four_uneven_seeds() -> None:
    seeds = [Seed(0.9, solved=True, solved_at=100), Seed(0.7, solved=True, solved_at=400),
             Seed(0.2, diverged=True), Seed(0.5, solved=True, solved_at=300),
             Seed(None, solved=True, solved_at=50)]
    stats = seed_stats(seeds)
    assert stats.seeds == 5 and stats.n_values == 4
    # (0.9 + 0.7 + 0.2 + 0.5) / 4 = 0.575; deviations .325 .125 -.375 -.075
    assert stats.mean == pytest.approx(0.575)
    assert stats.std == pytest.approx(math.sqrt((0.325**2 + 0.125**2 + 0.375**2 + 0.075**2) / 3))
    assert stats.solved_rate == pytest.approx(4 / 5)
    assert stats.diverged_rate == pytest.approx(1 / 5)
    assert stats.steps_to_solve == 200.0  # the median of 50, 100, 300, 400
    assert type(stats.steps_to_solve) is float


def test_seed_stats_counts_no_solve_without_a_step_and_no_step_without_a_solve() -> None:
    stats = seed_stats([Seed(0.1, solved=False, solved_at=100), Seed(0.2, solved=True),
                        Seed(0.3, solved=True, solved_at=700)])
    assert stats.solved_rate == pytest.approx(2 / 3)
    assert stats.steps_to_solve == 700.0
    stats = seed_stats([Seed(0.1), Seed(math.nan, diverged=True)])
    assert stats.n_values == 1 and stats.mean == 0.1 and math.isnan(stats.std)
    assert stats.solved_rate == 0.0 and stats.diverged_rate == 0.5
    assert math.isnan(stats.steps_to_solve)
    empty = seed_stats([])
    assert empty.seeds == 0 and empty.n_values == 0
    assert all(math.isnan(v) for v in (empty.mean, empty.std, empty.solved_rate,
                                       empty.diverged_rate, empty.steps_to_solve))
