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
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from bench.outcomes import Outcome
from bench.scores import cap, direction_of
from bench.tuning import storage as stored
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
    _set_attr(claim, "mlflow_run_id", mlflow_run_id)
    _set_attr(claim, "worker", f"{socket.gethostname()}:{os.getpid()}")


# ------------------------------------------------------------------ writes, once each

def _read(claim: Claim) -> FrozenTrial:
    """The claimed trial as the storage holds it now (not a cached copy)."""
    return claim._storage.get_trial(claim._trial._trial_id)


def _set_attr(claim: Claim, key: str, value: Any) -> None:
    """One user attribute of the claimed trial, written once however the database fails
    (``storage.write``: re-read before a repeat)."""
    stored.write(lambda: claim._trial.set_user_attr(key, value),
                 landed=lambda: key in (attrs := _read(claim).user_attrs) and attrs[key] == value)


def _end(claim: Claim, state: TrialState, value: float | None = None) -> None:
    """Tell the claimed trial's end (``state``, with ``value`` for a complete one) once:
    a tell whose commit landed though its answer was lost is not told again."""

    def landed() -> bool:
        now = _read(claim)
        return now.state == state and (value is None or now.value == value)

    def told() -> None:
        try:
            if value is None:
                claim._study.tell(claim._trial, state=state)
            else:
                claim._study.tell(claim._trial, value)
        except ValueError as err:  # "Cannot tell a FAIL trial": ended by another process
            if not str(err).startswith("Cannot tell a "):
                raise
            raise optuna.exceptions.UpdateFinishedTrialError(str(err)) from None

    stored.write(told, landed)


def pruning_callback(claim: Claim) -> Callable[[int, Mapping[str, float]], bool]:
    """``on_eval(step, val_metrics) -> stop?``: reports the objective (the validation loss,
    or metric) to the pruner and answers whether to prune. A final seed is never pruned,
    nor reported."""

    def should_stop(step: int, metrics: Mapping[str, float]) -> bool:
        value = metrics.get(claim.objective, math.nan)
        if claim.final or not math.isfinite(value):
            return False
        stored.write(lambda: claim._trial.report(float(value), step),
                     landed=lambda: step in _read(claim).intermediate_values)
        return bool(stored.retrying(claim._trial.should_prune))

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

    def beat() -> None:  # a beat that fails for a while is made again at the next one
        while not stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):
                stored.write(lambda: _record_heartbeat(storage, trial_id), retry_s=HEARTBEAT_S)

    stored.write(lambda: _record_heartbeat(storage, trial_id))  # safe to repeat: an upsert
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

    The value of a complete run is its objective (``objective``): capped at the trivial
    predictor's, and read at the evaluation that first met the solved rule where the suite
    stops solved trials (``Claim.by_solve``). The user attributes say what the leaderboard
    and the report need: the task's headline ``metric`` and its ``direction``, time and
    steps, the objective as measured (``value_uncapped``) and the trivial predictor's
    (``trivial``), whether the final validation metrics met the solved rule (``val_solved``)
    and the step at which they first did, and, for a final seed only (tuning trials never
    read the test split), the test metrics, capped (a diverged seed's are the trivial
    predictor's: ``test_from``), and as measured (``test_uncapped``); for a diverged run,
    where and why.

    Raises:
        TrialTaken: another process ended the trial meanwhile (its heartbeat went stale).
    """
    with _owned(claim):
        return _tell(claim, result, metric=metric, direction=direction)


def objective(claim: Claim, result: TrainResult, *, metric: str, direction: str
              ) -> tuple[float, float, float | None]:
    """(value told, as measured, the trivial predictor's) of a run's objective.

    The value is capped at the trivial predictor's (``bench.scores``). With ``by_solve``, a
    run that met the solved rule is read at the first evaluation that did, so that its value
    is the same whether it stopped there or ran on (its loss at the stop is not compared)."""
    row: Mapping[str, float] = result.val
    if claim.by_solve and result.solved_at is not None:
        row = next((r for r in result.evals if int(r["step"]) == result.solved_at), row)
    measured = float(row.get(claim.objective, math.nan))
    trivial = result.baseline_val.get(claim.objective)
    better = direction_of(claim.objective, metric, direction)
    if trivial is None or better is None:
        return measured, measured, trivial
    return cap(measured, float(trivial), better), measured, float(trivial)


def _tell(claim: Claim, result: TrainResult, *, metric: str, direction: str) -> Outcome:
    ended = Outcome.of(result)
    attrs: dict[str, Any] = {"metric": metric, "direction": direction,
                             "wall_time": result.wall_time, "steps_done": result.steps_done,
                             "val_solved": bool(result.val_solved)}
    value, measured, trivial = objective(claim, result, metric=metric, direction=direction)
    if math.isfinite(measured):
        attrs["value_uncapped"] = measured
    if trivial is not None:
        attrs["trivial"] = trivial
    if result.solved_at is not None:
        attrs["solved_at"] = result.solved_at
    if result.test:
        attrs["test"] = {k: float(v) for k, v in result.test.items()}
        attrs["solved"] = bool(result.solved)
        attrs["test_from"] = result.test_from
    if result.test_uncapped:
        attrs["test_uncapped"] = {k: float(v) for k, v in result.test_uncapped.items()}
    if ended == Outcome.DIVERGED:
        attrs.update(outcome=str(ended), diverged_at=result.diverged_at, reason=result.reason)
    for key, item in attrs.items():
        _set_attr(claim, key, item)
    if ended == Outcome.COMPLETE:
        _end(claim, _STATES[ended], value)
    else:
        _end(claim, _STATES[ended])
    return ended


def fail(claim: Claim, ended: Outcome) -> None:
    """End a claim that produced no result: ``interrupted`` (queued again at once, so that
    no new trial takes its place in the budget meanwhile) or ``failed``."""
    with _owned(claim):
        _set_attr(claim, "outcome", str(ended))
        _end(claim, _STATES[ended])
    if ended == Outcome.INTERRUPTED:  # re-reads what is queued: safe to repeat
        stored.write(lambda: requeue_interrupted(claim._study))
