"""Recovery: the trials of dead workers are marked interrupted and queued again with the same
parameters; ``trial_ends`` reads how every trial ended and which worker ran it.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState

from bench.config import Configuration, SuiteSpec
from bench.outcomes import Outcome
from bench.processes import process_alive
from bench.tuning import storage as stored
from bench.tuning.accounting import TrialRecord, _records, outcome
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
    _fail_unbeaten(storage, running)
    numbers = {t.number for t in running}
    return [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if t.number in numbers and "outcome" not in t.user_attrs]


def _fail_unbeaten(storage: BaseStorage, running: Sequence[FrozenTrial]) -> None:
    """Fail (interrupted) the RUNNING trials that never had a heartbeat, were asked for more
    than ``GRACE_S`` ago and whose worker is gone (``worker_gone``; never noted: gone).

    A claim writes a first heartbeat right after asking for the trial; a trial whose
    worker died, or whose database went away, between the two would otherwise stay
    RUNNING for ever, since Optuna's stale check only sees trials with a heartbeat. (A
    live worker that waited out an outage that long finds its trial taken over, as after
    a stall: ``TrialTaken``.) The trial's start is the asking machine's clock: the grace
    period covers a small skew between machines.
    """
    rdb = getattr(storage, "_backend", storage)  # the caching wrapper a study holds
    cutoff = datetime.now() - timedelta(seconds=stored.GRACE_S)
    old = [t for t in running if t.datetime_start is not None and t.datetime_start < cutoff
           and worker_gone(t.user_attrs.get("worker"))]
    if not old or not isinstance(rdb, RDBStorage):
        return
    ids = [t._trial_id for t in old]
    with _create_scoped_session(rdb.scoped_session) as session:  # no public read
        beaten = {row[0] for row in session.query(models.TrialHeartbeatModel.trial_id)
                  .filter(models.TrialHeartbeatModel.trial_id.in_(ids))}
    for trial_id in set(ids) - beaten:
        try:  # FAIL without an outcome: interrupted, as Optuna's stale check leaves them
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker's recovery, or the trial's own end, came first


def worker_gone(worker: str | None) -> bool:
    """Whether the process ``started`` named (``host:pid``) is known to be gone: on this
    host, with no such process. Unknown (never noted): gone; on another host: not known."""
    if worker is None:
        return True
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not process_alive(int(pid))


def requeue_interrupted(study: optuna.Study) -> list[int]:
    """Queue once more, with the same parameters, every interrupted trial not yet retried;
    returns their numbers."""
    trials = _records(study)
    retried = {t.attrs.get("retry_of") for t in trials}
    queued = []
    for t in trials:
        params = _retry_params(t)
        if t.outcome != Outcome.INTERRUPTED or t.number in retried or not params:
            continue
        attrs = {k: v for k, v in t.attrs.items() if k in ("params", "fixed", "best_trial", "seed")}
        study.enqueue_trial(params, user_attrs={**attrs, "retry_of": t.number})
        queued.append(t.number)
    return queued


def _retry_params(trial: TrialRecord) -> dict[str, Any]:
    """The parameters to run an interrupted trial again with: its own; for a final seed
    interrupted before it read its seed (a claim cut short), the seed it was queued with."""
    if trial.params or not trial.attrs.get("fixed") or "seed" not in trial.attrs:
        return dict(trial.params)
    return {"seed": trial.attrs["seed"]}


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
