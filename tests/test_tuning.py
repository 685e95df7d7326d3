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


@pytest.mark.filterwarnings("ignore")
def test_start_up_trials_are_independent_draws() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    spec = config.load("default")
    configurations = config.expand(spec)[:40]
    pairs = [_first_draws(spec, c, 2) for c in configurations]
    first, second = [p[0] for p in pairs], [p[1] for p in pairs]
    # Seeds that differ by a constant per trial gave r = 0.99 here: near-copies.
    assert abs(statistics.correlation(first, second)) < 0.5
    assert min(abs(a - b) for a, b in pairs) < 0.2 < max(abs(a - b) for a, b in pairs)
    spread = _first_draws(spec, configurations[0], 12)
    assert max(spread) - min(spread) > 0.7  # of the 1.48 decades searched


def test_halving_rungs_start_near_a_ninth_on_evaluation_steps() -> None:
    spec = config.load("default", {"set": ["training.steps=300", "training.eval_every=50"]})
    assert tuning.halving_rungs(spec) == [50, 150]
    spec = config.load("default", {"set": ["training.steps=1500", "training.eval_every=100"]})
    assert tuning.halving_rungs(spec) == [200, 600]
    spec = config.load("default", {"set": ["training.steps=20", "training.eval_every=10"]})
    assert tuning.halving_rungs(spec) == [10]
