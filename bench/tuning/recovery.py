"""Recovery: the trials of dead workers are marked interrupted and queued again with the same
parameters; ``trial_ends`` reads how every trial ended and which worker ran it.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from bench.config import Configuration, SuiteSpec
from bench.outcomes import Outcome
from bench.tuning.accounting import _records, outcome
from bench.tuning.storage import _heartbeats, _trial_id
from bench.tuning.studies import load_study, study_names


def recover(storage: BaseStorage, spec: SuiteSpec, configurations: Sequence[Configuration],
            *, all_running: bool) -> dict[str, int]:
    """Mark the trials of dead workers interrupted and queue them again, in every study.

    ``all_running``: every RUNNING trial is dead (a journal file at start-up, under the
    suite's run lock). Otherwise an RDB storage's heartbeats tell which are.
    """
    found = {"interrupted": 0, "requeued": 0}
    for configuration in configurations:
        for final in (False, True):
            study = load_study(storage, spec, configuration, final)
            found["interrupted"] += len(fail_stale(storage, study, all_running=all_running))
            found["requeued"] += len(requeue_interrupted(study))
    return found


def fail_stale(storage: BaseStorage, study: optuna.Study, *, all_running: bool) -> list[int]:
    """Mark trials whose worker is gone as interrupted; returns their numbers.

    ``storage`` is the one ``open_storage`` returned: with heartbeats, a RUNNING trial is
    stale when its last heartbeat is older than ``GRACE_S``. Without (a journal file) only
    ``all_running`` can tell: the caller holds the suite's run lock, so every RUNNING trial
    found at start-up belongs to a process that no longer exists.
    """
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if all_running:
        for t in running:
            trial_id = _trial_id(storage, study.study_name, t.number)
            storage.set_trial_user_attr(trial_id, "outcome", str(Outcome.INTERRUPTED))
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        return [t.number for t in running]
    if not _heartbeats(storage) or not running:
        return []
    optuna.storages.fail_stale_trials(study)  # FAIL without an outcome: interrupted
    numbers = {t.number for t in running}
    return [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if t.number in numbers and "outcome" not in t.user_attrs]


def requeue_interrupted(study: optuna.Study) -> list[int]:
    """Queue once more, with the same parameters, every interrupted trial not yet retried;
    returns their numbers."""
    trials = _records(study)
    retried = {t.attrs.get("retry_of") for t in trials}
    queued = []
    for t in trials:
        if t.outcome != Outcome.INTERRUPTED or t.number in retried or not t.params:
            continue
        attrs = {k: v for k, v in t.attrs.items() if k in ("params", "fixed", "best_trial", "seed")}
        study.enqueue_trial(dict(t.params), user_attrs={**attrs, "retry_of": t.number})
        queued.append(t.number)
    return queued


def trial_ends(storage: BaseStorage) -> tuple[dict[tuple[str, int], str],
                                              dict[tuple[str, int], str]]:
    """For every trial in the storage, keyed by (study name, trial number): its outcome,
    and the worker that ran it (``host:pid``, see ``started``; absent until noted)."""
    outcomes, workers = {}, {}
    for name in study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        for t in study.get_trials(deepcopy=False):
            outcomes[(name, t.number)] = outcome(t)
            if "worker" in t.user_attrs:
                workers[(name, t.number)] = str(t.user_attrs["worker"])
    return outcomes, workers
