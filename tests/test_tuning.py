"""Tuning helpers: sampler seeding and the halving rungs."""

from __future__ import annotations

import math
import statistics

import optuna
import pytest

from bench import config, tuning


def _first_draws(spec: config.SuiteSpec, configuration: config.Configuration,
                 trials: int) -> list[float]:
    """log10 lr of the first random draw of each trial number's sampler (as a worker asks)."""
    draws = []
    for salt in range(trials):
        study = optuna.create_study(sampler=tuning.make_sampler(spec, configuration, salt))
        trial = study.ask()
        draws.append(math.log10(trial.suggest_float("lr", 1e-3, 3e-2, log=True)))
    return draws


def test_sampler_seeds_are_hashed_not_a_progression() -> None:
    spec = config.load("default")
    configurations = config.expand(spec)
    seeds = [[tuning.sampler_seed(spec, c, salt) for salt in range(20)] for c in configurations]
    flat = [s for row in seeds for s in row]
    assert len(set(flat)) == len(flat) and all(0 <= s < 2**31 for s in flat)
    for row in seeds:  # no constant step from one trial to the next
        assert len({b - a for a, b in zip(row, row[1:], strict=False)}) == len(row) - 1
    assert statistics.pstdev(flat) > 0.25 * 2**31  # spread over the range (uniform: 0.29)
    other = config.load("default", {"set": ["seed=1"]})
    assert tuning.sampler_seed(other, configurations[0], 0) != seeds[0][0]


@pytest.mark.filterwarnings("ignore")
def test_start_up_trials_spread_over_the_search_range() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    spec = config.load("default")
    draws = _first_draws(spec, config.expand(spec)[0], 12)
    assert max(draws) - min(draws) > 0.7  # of the 1.48 decades searched


def test_halving_rungs_start_near_a_ninth_on_evaluation_steps() -> None:
    spec = config.load("default", {"set": ["training.steps=300", "training.eval_every=50"]})
    assert tuning.halving_rungs(spec) == [50, 150]
    spec = config.load("default", {"set": ["training.steps=1500", "training.eval_every=100"]})
    assert tuning.halving_rungs(spec) == [200, 600]
    spec = config.load("default", {"set": ["training.steps=20", "training.eval_every=10"]})
    assert tuning.halving_rungs(spec) == [10]
