"""The studies of a suite: their names, seeded samplers and pruners, their creation with the
settings behind their results (``config.meaning``), and the search space as suggestions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import Trial

from bench.config import (
    Configuration,
    SearchParam,
    SuiteSpec,
    meaning,
    search_space,
)
from bench.config import meaning_changes as config_meaning_changes
from bench.registry import TASKS

FINAL_SUFFIX = "/final"


METRIC_NAMES = "study:metric_names"  # where Optuna keeps them: a study system attribute


def study_name(spec: SuiteSpec, configuration: Configuration, final: bool = False) -> str:
    name = f"{spec.name}/{configuration.name}"
    return f"{name}{FINAL_SUFFIX}" if final else name


def make_sampler(
    spec: SuiteSpec, configuration: Configuration, salt: int = 0
) -> optuna.samplers.BaseSampler:
    """Seeded per configuration and per trial number (``salt``); the grid sampler per
    configuration only (``_Grid``).

    A study object is loaded afresh for every claim, possibly in another process, so the
    sampler cannot carry its random state from one trial to the next: seeding it with the
    number of trials already in the study makes each draw different and the sequence
    reproducible (claims are serialised).
    """
    if spec.tuning.sampler == "grid":
        space = search_space(spec, configuration)
        return _Grid({name: param.points() for name, param in space.items()},
                     seed=sampler_seed(spec, configuration, 0))
    seed = sampler_seed(spec, configuration, salt)
    if spec.tuning.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = min(10, max(2, spec.tuning.trials // 3))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


class _Grid(optuna.samplers.GridSampler):
    """Every point of the grid once: trial n < the grid's size takes point n of an order
    shuffled by the seed, which is therefore the same for every claim (not salted), and a
    retry keeps its trial's parameters (queued with them). The budget (``tuning.trials``,
    the grid's size) ends the study: not ``Study.stop``, which Optuna calls here once the
    grid is done and which raises outside ``Study.optimize``."""

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                    state: optuna.trial.TrialState, values: Sequence[float] | None) -> None:
        return None


def _paired(configuration: Configuration) -> str:
    """A configuration without its remedies: the key of the random numbers it shares with
    the configurations that differ from it only in their remedies (common random numbers:
    the same start-up learning rates and the same training seeds for the same trial, so a
    difference between remedies is the remedies', not the draws')."""
    return f"{configuration.variant}/{configuration.model}"


def sampler_seed(spec: SuiteSpec, configuration: Configuration, salt: int) -> int:
    """A hash of suite seed, configuration without its remedies (``_paired``) and trial
    number, in [0, 2**31).

    Not an arithmetic progression over trials: the Mersenne Twister behind Optuna's samplers
    is seeded badly by nearby integers (NumPy advises against it), and the first draws of
    such seeds were measurably correlated here (r = 0.08-0.17 between the learning rates of
    the first two start-up trials, against 0.00-0.13 with hashed seeds).
    """
    key = f"{spec.seed}/{_paired(configuration)}/{salt}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") % (2**31)


def trial_seed(spec: SuiteSpec, configuration: Configuration, number: int) -> int:
    """A tuning trial's training seed (initialisation and training stream): a hash of the
    suite seed, the configuration and the trial number, so that the best of N trials is not
    the luckiest draw of one seed. A retry keeps the seed of the trial it re-runs. Shared
    by the configurations that differ only in their remedies (``_paired``)."""
    key = f"{spec.seed}/{_paired(configuration)}/trial/{number}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "little") % (2**31)


def objective_key(spec: SuiteSpec, configuration: Configuration) -> str:
    """The validation metric tuning optimises: ``loss``, or the task's headline metric."""
    return "loss" if spec.tuning.objective == "val_loss" else TASKS.get(configuration.task).metric


def objective_direction(spec: SuiteSpec, configuration: Configuration) -> str:
    """``minimize`` for the loss; the task record's direction for its metric."""
    if spec.tuning.objective == "val_loss":
        return "minimize"
    return str(TASKS.get(configuration.task).direction)


def make_pruner(spec: SuiteSpec, steps: int | None = None) -> optuna.pruners.BasePruner:
    """The pruner on the objective, reported every ``eval_every`` steps of runs of
    ``steps`` (default ``training.steps``; a task's own ``steps`` where it has them).

    ``median``: stop a trial that is worse than the median of the earlier trials at the same
    step, after two start-up trials and two evaluations. ``halving``: asynchronous successive
    halving with rungs at ``halving_rungs(spec)`` (reduction factor 3): at each rung a trial
    goes on only if it is in the best third of the trials that reached it (the best so far
    while fewer than three have), so most trials stop at the first rung and the budget goes to
    more trials. ``hyperband`` runs several halving brackets; ``none`` never stops a trial.
    """
    if spec.tuning.pruner == "none":
        return optuna.pruners.NopPruner()
    if spec.tuning.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=spec.training.eval_every,
                                              max_resource=steps or spec.training.steps)
    if spec.tuning.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=halving_rungs(spec, steps)[0], reduction_factor=HALVING_FACTOR)
    return optuna.pruners.MedianPruner(n_startup_trials=2,
                                       n_warmup_steps=2 * spec.training.eval_every)


HALVING_FACTOR = 3


def halving_rungs(spec: SuiteSpec, steps: int | None = None) -> list[int]:
    """Steps at which successive halving compares trials: the first near 1/9 of the run.

    The first rung is rounded up to a whole number of evaluations (the pruner sees the loss
    only when it is reported), and later rungs are 3x apart, below the last step.
    """
    every, steps = spec.training.eval_every, steps or spec.training.steps
    first = max(every, -(-steps // HALVING_FACTOR**2 // every) * every)
    rungs = [first]
    while rungs[-1] * HALVING_FACTOR < steps:
        rungs.append(rungs[-1] * HALVING_FACTOR)
    return rungs


def load_study(
    storage: BaseStorage, spec: SuiteSpec, configuration: Configuration, final: bool = False
) -> optuna.Study:
    return optuna.load_study(study_name=study_name(spec, configuration, final), storage=storage,
                             sampler=make_sampler(spec, configuration),
                             pruner=make_pruner(spec, configuration.budget(spec)))


def create_studies(
    storage: BaseStorage, spec: SuiteSpec, configurations: Sequence[Configuration]
) -> None:
    """Create every study once, before any worker starts (creation races otherwise).

    A tuning study records the settings behind its results (``config.meaning``) and the
    suite's config hash; a study from before they were recorded gets them now."""
    existing = {s.study_name: s for s in storage.get_all_studies()}
    for configuration in configurations:
        for final in (False, True):
            name = study_name(spec, configuration, final)
            if name in existing:
                if not final and "meaning" not in existing[name].user_attrs:
                    _record_meaning(optuna.load_study(study_name=name, storage=storage),
                                    spec, configuration)
                if METRIC_NAMES not in existing[name].system_attrs:  # made before they were
                    optuna.load_study(study_name=name, storage=storage).set_metric_names(
                        [metric_name(spec, configuration, final)])
                continue
            try:
                direction = "minimize" if final else objective_direction(spec, configuration)
                study = optuna.create_study(storage=storage, study_name=name,
                                            direction=StudyDirection[direction.upper()])
            except optuna.exceptions.DuplicatedStudyError:
                continue  # another process made it meanwhile
            study.set_user_attr("configuration", configuration.name)
            study.set_user_attr("role", "final" if final else "tuning")
            study.set_metric_names([metric_name(spec, configuration, final)])
            if not final:
                _record_meaning(study, spec, configuration)


def metric_name(spec: SuiteSpec, configuration: Configuration, final: bool = False) -> str:
    """The name of a study's value (``Study.set_metric_names``: optuna-dashboard's axis and
    column, ``trials_dataframe``'s): the validation metric tuning optimises, e.g. ``val acc``
    (capped at the trivial predictor's); a final seed's value is the same, measured on it."""
    name = f"val {objective_key(spec, configuration)}"
    return f"{name} (final seed)" if final else name


def _record_meaning(study: optuna.Study, spec: SuiteSpec, configuration: Configuration) -> None:
    study.set_user_attr("meaning", meaning(spec, configuration))
    study.set_user_attr("config_hash", spec.config_hash())


def meaning_changes(storage: BaseStorage, spec: SuiteSpec,
                    configurations: Sequence[Configuration]) -> list[tuple[str, Any, Any]]:
    """How the settings behind results already in the storage differ from ``spec``'s, for
    the configurations to run (``config.meaning_changes``; each key once); reads only."""
    recorded = {s.study_name: s.user_attrs.get("meaning") for s in storage.get_all_studies()}
    found: dict[str, tuple[str, Any, Any]] = {}
    for configuration in configurations:
        before = recorded.get(study_name(spec, configuration))
        if before:
            for change in config_meaning_changes(before, meaning(spec, configuration)):
                found.setdefault(change[0], change)
    return list(found.values())


def study_names(storage: BaseStorage) -> set[str]:
    """The names of the studies in the storage (no trial is loaded)."""
    return {s.study_name for s in storage.get_all_studies()}


def suggest(trial: Trial, space: Mapping[str, SearchParam]) -> dict[str, Any]:
    """The search space from the config, turned into ``trial.suggest_*`` here and only here."""
    params: dict[str, Any] = {}
    for name, p in space.items():
        if p.choices is not None:
            params[name] = trial.suggest_categorical(name, list(p.choices))
            continue
        assert p.low is not None and p.high is not None  # a range: the config checks both
        if p.kind == "int":
            params[name] = trial.suggest_int(name, int(p.low), int(p.high), log=p.log)
        else:
            params[name] = trial.suggest_float(name, float(p.low), float(p.high), log=p.log)
    return params
