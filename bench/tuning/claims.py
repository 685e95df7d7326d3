"""Claiming work: a tuning trial while the budget allows (retries first), then, once tuning
is done, a final seed of the best parameters; with ``tuning.horizon`` a configuration waits
for its next shorter T. Each claim is checked here against races with other workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import Trial, TrialState

from bench.config import Configuration, SuiteSpec, search_space, shorter
from bench.outcomes import Outcome
from bench.tuning import storage as stored
from bench.tuning.accounting import (
    OVER_BUDGET,
    RUNNING,
    WAITING,
    TrialRecord,
    _of_params,
    _records,
    best_trial,
    current_finals,
    final_seeds,
    finals_done,
    missing_seeds,
    trial_records,
    tuning_done,
    used_budget,
)
from bench.tuning.storage import _heartbeats, _record_heartbeat, _trial_id
from bench.tuning.studies import (
    load_study,
    make_sampler,
    objective_direction,
    objective_key,
    suggest,
    trial_seed,
)


@dataclass(frozen=True)
class Claim:
    """One unit of work a worker has claimed: a tuning trial or a final seed.

    A worker reads the plain attributes and hands the claim back to this package
    (``started``, ``pruning_callback``, ``heartbeat``, ``tell``, ``fail``: ``trial``); the
    Optuna objects behind it are this package's own.
    """

    role: str  # "trial" (tuning) | "final" (a final seed)
    number: int  # the trial's number in its study
    study_name: str
    params: dict[str, Any]  # tuned parameters (the best trial's, for a final seed)
    seed: int  # training seed: ``trial_seed`` for tuning, the queued one for a final seed
    _study: optuna.Study = field(repr=False, compare=False)
    _trial: Trial = field(repr=False, compare=False)
    _storage: BaseStorage = field(repr=False, compare=False)
    _trial_id: int | None = field(default=None, repr=False, compare=False)  # RDB only
    objective: str = "loss"  # the validation metric reported to the pruner and told
    by_solve: bool = False  # training.stop_when_solved: a solved trial's value at its solving

    @property
    def final(self) -> bool:
        return self.role == "final"


@dataclass(frozen=True)
class Attempt:
    """What one try to claim work in a configuration found."""

    claim: Claim | None = None
    pending: bool = True  # the configuration still has work, here or on another worker
    queued: TrialRecord | None = None  # this try queued the final seeds: the best trial
    exhausted: bool = False  # every tuning trial diverged: no final seed will run
    beyond: bool = False  # tuning.horizon: no final seed solved a shorter T; nothing runs


OPEN, WAIT, BEYOND = "open", "wait", "beyond"  # horizon gates


def horizon_gate(storage: BaseStorage, spec: SuiteSpec, configuration: Configuration) -> str:
    """With ``tuning.horizon``, whether a configuration may start: ``open`` (its shortest T,
    or every shorter T of the same model and remedies was solved on validation by at least
    one current final seed), ``wait`` (the next shorter T that gates it has not finished its
    final seeds), or ``beyond`` (a shorter T was solved on validation by none of its final
    seeds, or all of its tuning trials diverged: this T is beyond the model's horizon and is
    left out). The design of the sweep reads validation only, never a test metric."""
    chain = []
    previous = shorter(spec, configuration)
    while previous is not None:
        chain.append(previous)
        previous = shorter(spec, previous)
    for previous in reversed(chain):  # from the shortest T up
        gate = _solved_gate(storage, spec, previous)
        if gate != OPEN:
            return gate
    return OPEN


def _solved_gate(storage: BaseStorage, spec: SuiteSpec, configuration: Configuration) -> str:
    direction = objective_direction(spec, configuration)
    trials = trial_records(storage, spec, configuration)
    if not tuning_done(trials, spec.tuning.trials):
        return WAIT
    if best_trial(trials, direction) is None:  # every trial diverged
        return BEYOND
    finals = current_finals(trials, trial_records(storage, spec, configuration, final=True),
                            direction)
    if not finals_done(finals, spec.final.seeds):
        return WAIT
    return OPEN if any(_val_solved(f) for f in finals) else BEYOND


def _val_solved(final: TrialRecord) -> bool:
    """A final seed's final validation metrics met the solved rule (``val_solved``); a seed
    recorded before that was kept: its validation metrics met it at an evaluation
    (``solved_at``). The test metrics (``test``, ``solved``) are never read here."""
    if "val_solved" in final.attrs:
        return bool(final.attrs["val_solved"])
    return final.attrs.get("solved_at") is not None


def claim(storage: BaseStorage, spec: SuiteSpec, configuration: Configuration) -> Attempt:
    """The next job of a configuration: a tuning trial while the budget allows (retries
    first), then, once tuning is done, its final seeds (queued by the first try that sees
    it done). Local callers serialise claims; remote ones rely on the checks made here.
    With ``tuning.horizon`` a configuration first waits for its next shorter T
    (``horizon_gate``). A trial ended by another process while it was being claimed (a
    claim held up by a database outage past the grace period, then recovered) is no claim:
    the configuration is tried again."""
    try:
        return _claim(storage, spec, configuration)
    except optuna.exceptions.UpdateFinishedTrialError:
        return Attempt(pending=True)


def _claim(storage: BaseStorage, spec: SuiteSpec, configuration: Configuration) -> Attempt:
    gate = horizon_gate(storage, spec, configuration)
    if gate != OPEN:
        return Attempt(pending=gate == WAIT, beyond=gate == BEYOND)
    study = load_study(storage, spec, configuration)
    found = _claim_tuning(storage, study, spec, configuration)
    if found is not None:
        return Attempt(found)
    trials = _records(study)
    if not tuning_done(trials, spec.tuning.trials):
        return Attempt(pending=True)  # the last trials run elsewhere
    direction = objective_direction(spec, configuration)
    best = best_trial(trials, direction)
    if best is None:  # every trial diverged: nothing to re-run
        return Attempt(pending=False, exhausted=True)
    final = load_study(storage, spec, configuration, final=True)
    missing = missing_seeds(current_finals(trials, _records(final), direction), final_seeds(spec))
    queued = None
    if missing:  # the first time, more seeds asked for, or better parameters found
        enqueue_finals(final, best.params, missing, best.number)
        queued = best
    found = _claim_final(storage, final, best.params)
    if found is not None:
        return Attempt(found, queued=queued)
    done = finals_done(current_finals(trials, _records(final), direction), spec.final.seeds)
    return Attempt(pending=not done, queued=queued)


def _claim_tuning(storage: BaseStorage, study: optuna.Study, spec: SuiteSpec,
                  configuration: Configuration) -> Claim | None:
    """Ask for a tuning trial if the budget allows (retries come first)."""
    budget = spec.tuning.trials
    trials = _records(study)
    waiting = any(t.outcome == WAITING for t in trials)
    if not waiting and used_budget(trials) >= budget:
        return None
    study.sampler = make_sampler(spec, configuration, salt=len(trials))
    trial = study.ask()
    trial_id = _beat(storage, study, trial)
    if _duplicate_retry(study, trial):
        return None
    if "retry_of" not in trial.user_attrs and "fixed" not in trial.user_attrs:
        before = [t for t in _records(study) if t.number < trial.number]
        if used_budget(before) >= budget:  # lost a race with another worker
            _drop(study, trial)
            return None
    params = suggest(trial, search_space(spec, configuration))
    seed = trial_seed(spec, configuration, int(trial.user_attrs.get("retry_of", trial.number)))
    stored.write(lambda: trial.set_user_attr("seed", seed),
                 landed=lambda: storage.get_trial(trial._trial_id).user_attrs.get("seed") == seed)
    return Claim("trial", trial.number, study.study_name, params, seed,
                 study, trial, storage, trial_id, objective=objective_key(spec, configuration),
                 by_solve=spec.training.stop_when_solved)


def enqueue_finals(final: optuna.Study, params: Mapping[str, Any], seeds: Sequence[int],
                   best_number: int) -> None:
    """One queued trial per seed (the caller passes the seeds the parameters lack; another
    machine queueing the same seed meanwhile is sorted out at the claim: ``_seed_taken``)."""
    for seed in seeds:
        final.enqueue_trial({"seed": seed}, user_attrs={"params": dict(params), "fixed": True,
                                                       "best_trial": best_number, "seed": seed})


def _claim_final(storage: BaseStorage, final: optuna.Study,
                 params: Mapping[str, Any]) -> Claim | None:
    """Pop a queued final seed of ``params``, if any. A seed queued for parameters that are
    no longer the best, or that some other trial already holds, is dropped."""
    waiting = {t.number for t in _records(final) if t.outcome == WAITING}
    for _ in range(len(waiting)):
        trial = final.ask()
        trial_id = _beat(storage, final, trial)
        if trial.number not in waiting:
            _drop(final, trial)  # the queue was emptied under us
            return None
        seed = trial.suggest_int("seed", 0, 2**31 - 1)
        if dict(trial.user_attrs.get("params") or {}) != dict(params) or \
                _seed_taken(final, trial.number, seed, params):
            _drop(final, trial)
            continue
        return Claim("final", trial.number, final.study_name, dict(trial.user_attrs["params"]),
                     seed, final, trial, storage, trial_id)
    return None


def _beat(storage: BaseStorage, study: optuna.Study, trial: Trial) -> int | None:
    """A first heartbeat at once (RDB storages): a trial whose worker is killed before its
    training starts would otherwise never look stale and stay RUNNING forever. Returns the
    trial's id for later heartbeats, None where the storage has none."""
    if not _heartbeats(storage):
        return None
    trial_id = stored.retrying(lambda: _trial_id(storage, study.study_name, trial.number))
    stored.write(lambda: _record_heartbeat(storage, trial_id))  # safe to repeat: an upsert
    return trial_id


def _drop(study: optuna.Study, trial: Trial) -> None:
    trial.set_user_attr("outcome", OVER_BUDGET)
    study.tell(trial, state=TrialState.FAIL)


def _duplicate_retry(study: optuna.Study, trial: Trial) -> bool:
    """Two workers may queue the same interrupted trial again: run only the first copy."""
    retry_of = trial.user_attrs.get("retry_of")
    if retry_of is None:
        return False
    twins = [t for t in _records(study)
             if t.attrs.get("retry_of") == retry_of and t.number < trial.number
             and t.outcome != OVER_BUDGET]
    if twins:
        _drop(study, trial)
        return True
    return False


def _seed_taken(final: optuna.Study, number: int, seed: int,
                params: Mapping[str, Any]) -> bool:
    """Another trial has run this seed with these parameters, or runs it and claimed it
    first. A queued seed is read from what it was queued with: a worker that has just popped
    it has not suggested its seed yet, and another machine may pop a second copy meanwhile."""
    for t in _records(final):
        if t.number == number or t.attrs.get("seed", t.params.get("seed")) != seed \
                or not _of_params(t, params):
            continue
        if t.outcome in (Outcome.COMPLETE, Outcome.DIVERGED) or (
                t.outcome == RUNNING and t.number < number):
            return True
    return False
