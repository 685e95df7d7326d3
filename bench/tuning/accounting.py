"""Trials as plain data (``TrialRecord``) and what is read from them: outcomes and counts,
the budget used, the best trial, the final seeds that are current, and counts across the
storage that load no trial.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from bench.config import Configuration, SuiteSpec
from bench.outcomes import Outcome
from bench.tuning.studies import FINAL_SUFFIX, load_study, study_name

# Internal bookkeeping states besides the outcomes: a trial claimed and not yet told, one
# queued (a final seed, a retry), one dropped because the budget was used up meanwhile.
RUNNING, WAITING, OVER_BUDGET = "running", "waiting", "over_budget"
COUNTED = (Outcome.COMPLETE, Outcome.PRUNED, Outcome.DIVERGED, RUNNING, WAITING)
# The outcome a trial state reads as; FAIL reads the ``outcome`` attribute (``trial._STATES``).
_OF_STATE = {TrialState.COMPLETE: str(Outcome.COMPLETE), TrialState.PRUNED: str(Outcome.PRUNED),
             TrialState.RUNNING: RUNNING, TrialState.WAITING: WAITING}


@dataclass(frozen=True)
class TrialRecord:
    """A trial as plain data: what claims, status, progress and leaderboards read.

    ``outcome``: an ``Outcome`` value, or ``running`` | ``waiting`` | ``over_budget``.
    ``last_report``: the last validation loss reported to the pruner, if any.
    """

    number: int
    outcome: str
    value: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict)
    last_report: float | None = None


def outcome(trial: FrozenTrial) -> str:
    """An ``Outcome`` value, or ``running`` | ``waiting`` | ``over_budget``."""
    if trial.state in _OF_STATE:
        return _OF_STATE[trial.state]
    return str(trial.user_attrs.get("outcome", Outcome.INTERRUPTED))


def _record(trial: FrozenTrial) -> TrialRecord:
    reports = trial.intermediate_values
    return TrialRecord(trial.number, outcome(trial), trial.value, trial.params, trial.user_attrs,
                       reports[max(reports)] if reports else None)


def _records(study: optuna.Study) -> list[TrialRecord]:
    return [_record(t) for t in study.get_trials(deepcopy=False)]


def trial_records(storage: BaseStorage, spec: SuiteSpec, configuration: Configuration,
                  final: bool = False) -> list[TrialRecord]:
    """Every trial of a configuration's tuning (or ``final``) study.

    Raises:
        KeyError: no such study in the storage.
    """
    return _records(load_study(storage, spec, configuration, final))


def counts(trials: Sequence[TrialRecord]) -> dict[str, int]:
    """How many trials ended each way."""
    out = dict.fromkeys((*Outcome, OVER_BUDGET, RUNNING, WAITING), 0)
    for t in trials:
        out[t.outcome] = out.get(t.outcome, 0) + 1
    return {str(k): v for k, v in out.items()}


def used_budget(trials: Sequence[TrialRecord]) -> int:
    """Trials that count against the budget: finished for real, running or queued."""
    return sum(1 for t in trials if t.outcome in COUNTED)


def tuning_done(trials: Sequence[TrialRecord], budget: int) -> bool:
    """The budget is spent and nothing is still running or queued."""
    c = counts(trials)
    return c["complete"] + c["pruned"] + c["diverged"] >= budget and not (
        c["running"] or c["waiting"])


def finals_done(trials: Sequence[TrialRecord], n_seeds: int) -> bool:
    """Enough final seeds ended, nothing queued or running (pass ``current_finals``)."""
    c = counts(trials)
    return c["complete"] + c["diverged"] >= n_seeds and not (c["running"] or c["waiting"])


def current_finals(trials: Sequence[TrialRecord], finals: Sequence[TrialRecord],
                   direction: str = "minimize") -> list[TrialRecord]:
    """The final seeds that re-ran the current best parameters of ``trials``.

    When more tuning trials found better parameters (a suite resumed with more trials),
    the seeds that re-ran the earlier best are superseded: they are kept in the storage
    but are no longer the configuration's result, and its finals run again.
    """
    best = best_trial(trials, direction)
    if best is None:
        return []
    return [f for f in finals if _of_params(f, best.params)]


def _of_params(final: TrialRecord, params: Mapping[str, Any]) -> bool:
    return dict(final.attrs.get("params") or {}) == dict(params)


def missing_seeds(current: Sequence[TrialRecord], seeds: Sequence[int]) -> list[int]:
    """Seeds of ``seeds`` that no current final has run, runs, waits for or will retry."""
    present = {t.attrs.get("seed", t.params.get("seed")) for t in current
               if t.outcome not in (OVER_BUDGET, Outcome.FAILED)}
    return [s for s in seeds if s not in present]


def best_trial(trials: Sequence[TrialRecord], direction: str = "minimize"
               ) -> TrialRecord | None:
    """Best objective (lowest, or highest with ``maximize``) among complete trials; else
    the best pruned one by its last report."""
    sign = -1.0 if direction == "maximize" else 1.0
    complete = [t for t in trials if t.outcome == Outcome.COMPLETE and _finite(t.value)]
    if complete:
        return min(complete, key=lambda t: sign * float(t.value))  # type: ignore[arg-type]
    pruned = [t for t in trials if t.outcome == Outcome.PRUNED and t.last_report is not None]
    if pruned:
        return min(pruned, key=lambda t: sign * float(t.last_report))  # type: ignore[arg-type]
    return None


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def final_seeds(spec: SuiteSpec) -> list[int]:
    """Fresh training seeds for the re-runs, disjoint from the tuning seed."""
    return [spec.seed + 1000 + i for i in range(spec.final.seeds)]


def trials_begun(storage: BaseStorage) -> dict[str, int]:
    """Trials asked for so far, per tuning study's name: a count per study, no trial loaded.

    (``optuna.get_all_study_summaries`` would load every trial of every study: on a shared
    database, at every claim, that grows with the suite. Optuna offers no public study id,
    hence the one private read of this module.)
    """
    return {s.study_name: storage.get_n_trials(s._study_id)
            for s in storage.get_all_studies() if not s.study_name.endswith(FINAL_SUFFIX)}


def retries_queued(storage: BaseStorage) -> set[str]:
    """The tuning studies with a trial queued again (an interrupted one): counts only."""
    return {s.study_name for s in storage.get_all_studies()
            if not s.study_name.endswith(FINAL_SUFFIX)
            and storage.get_n_trials(s._study_id, state=TrialState.WAITING)}


def active_trials(storage: BaseStorage, spec: SuiteSpec,
                  configurations: Sequence[Configuration]) -> int:
    """Trials running or queued in the configurations' studies, on any machine."""
    states = (TrialState.RUNNING, TrialState.WAITING)
    names = {study_name(spec, c, final) for c in configurations for final in (False, True)}
    return sum(len(storage.get_all_trials(s._study_id, deepcopy=False, states=states))
               for s in storage.get_all_studies() if s.study_name in names)
