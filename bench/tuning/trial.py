"""A claimed trial in its worker: noted as started, kept alive by its heartbeat, reported to
the pruner, and told how it ended (``tell``: the commit point) or that it produced nothing.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from bench.outcomes import Outcome
from bench.processes import process_alive
from bench.tuning.claims import Claim
from bench.tuning.recovery import requeue_interrupted
from bench.tuning.storage import GRACE_S, HEARTBEAT_S, _record_heartbeat

if TYPE_CHECKING:  # for the annotations only: bench.train imports torch
    from bench.train import TrainResult


# The trial state each outcome is told with (and back: ``accounting._OF_STATE``).
_STATES = {Outcome.COMPLETE: TrialState.COMPLETE, Outcome.PRUNED: TrialState.PRUNED,
           Outcome.DIVERGED: TrialState.FAIL, Outcome.INTERRUPTED: TrialState.FAIL,
           Outcome.FAILED: TrialState.FAIL}


def started(claim: Claim, mlflow_run_id: str) -> None:
    """Note on the trial which MLflow run records it and which process runs it
    (``host:pid``)."""
    claim._trial.set_user_attr("mlflow_run_id", mlflow_run_id)
    claim._trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")


def worker_gone(worker: str | None) -> bool:
    """Whether the process ``started`` named (``host:pid``) is known to be gone: on this
    host, with no such process. Unknown (never noted): gone; on another host: not known."""
    if worker is None:
        return True
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not process_alive(int(pid))


def pruning_callback(claim: Claim) -> Callable[[int, Mapping[str, float]], bool]:
    """``on_eval(step, val_metrics) -> stop?``: reports the objective (the validation loss,
    or metric) to the pruner and answers whether to prune. A final seed is never pruned,
    nor reported."""

    def should_stop(step: int, metrics: Mapping[str, float]) -> bool:
        value = metrics.get(claim.objective, math.nan)
        if claim.final or not math.isfinite(value):
            return False
        claim._trial.report(float(value), step)
        return bool(claim._trial.should_prune())

    return should_stop


@contextlib.contextmanager
def heartbeat(claim: Claim) -> Iterator[None]:
    """While the claim runs, record its heartbeat every ``HEARTBEAT_S`` (RDB storages; a
    journal file has none: its suite runs under one process's run lock)."""
    storage, trial_id = claim._storage, claim._trial_id
    if trial_id is None:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):
                _record_heartbeat(storage, trial_id)

    _record_heartbeat(storage, trial_id)
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


class TrialTaken(RuntimeError):
    """The claimed trial was ended meanwhile by another process: its heartbeat went stale
    (a worker stalled for longer than ``GRACE_S``), so it was marked interrupted and queued
    again. Its result is not kept; the retry runs it."""


@contextlib.contextmanager
def _owned(claim: Claim) -> Iterator[None]:
    try:
        yield
    except optuna.exceptions.UpdateFinishedTrialError:
        raise TrialTaken(f"trial {claim.number} of {claim.study_name} was taken over (no "
                         f"heartbeat for {GRACE_S} s): its result is dropped, its retry "
                         f"runs it") from None


def tell(claim: Claim, result: TrainResult, *, metric: str, direction: str) -> Outcome:
    """Tell Optuna how the run ended: the commit point, from here the result is kept.

    The user attributes say what the leaderboard and the report need: the task's headline
    ``metric`` and its ``direction``, time and steps, the step at which the validation
    metrics first met the solved rule, and, for a final seed only (tuning trials never read
    the test split), the test metrics (a diverged seed's are the trivial predictor's:
    ``test_from``); for a diverged run, where and why.

    Raises:
        TrialTaken: another process ended the trial meanwhile (its heartbeat went stale).
    """
    with _owned(claim):
        return _tell(claim, result, metric=metric, direction=direction)


def _tell(claim: Claim, result: TrainResult, *, metric: str, direction: str) -> Outcome:
    ended, trial = Outcome.of(result), claim._trial
    trial.set_user_attr("metric", metric)
    trial.set_user_attr("direction", direction)
    trial.set_user_attr("wall_time", result.wall_time)
    trial.set_user_attr("steps_done", result.steps_done)
    if result.solved_at is not None:
        trial.set_user_attr("solved_at", result.solved_at)
    if result.test:
        trial.set_user_attr("test", {k: float(v) for k, v in result.test.items()})
        trial.set_user_attr("solved", bool(result.solved))
        trial.set_user_attr("test_from", result.test_from)
    if ended == Outcome.DIVERGED:
        trial.set_user_attr("outcome", str(ended))
        trial.set_user_attr("diverged_at", result.diverged_at)
        trial.set_user_attr("reason", result.reason)
        claim._study.tell(trial, state=_STATES[ended])
        return ended
    if ended == Outcome.COMPLETE:
        claim._study.tell(trial, float(result.val[claim.objective]))
    else:
        claim._study.tell(trial, state=_STATES[ended])
    return ended


def fail(claim: Claim, ended: Outcome) -> None:
    """End a claim that produced no result: ``interrupted`` (queued again at once, so that
    no new trial takes its place in the budget meanwhile) or ``failed``."""
    with _owned(claim):
        claim._trial.set_user_attr("outcome", str(ended))
        claim._study.tell(claim._trial, state=_STATES[ended])
    if ended == Outcome.INTERRUPTED:
        requeue_interrupted(claim._study)
