"""A database that drops its connection during a commit: every write a worker makes lands
exactly once, and no error escapes; a trial claimed just before the database died, before
its first heartbeat, is recovered once its worker is gone.

``Flaky`` is an RDB storage (SQLite here) whose next call of a chosen write raises Optuna's
StorageInternalError, as a dropped connection does: ``before`` the write (nothing landed)
or ``after`` it (the commit landed, its answer was lost).
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

from bench import config, tuning
from bench.outcomes import Outcome
from bench.train import TrainResult

LOST = "An exception is raised during the commit. This typically happens due to invalid data"


class Flaky(optuna.storages.RDBStorage):
    """Counts the writes that land, and fails the next ones named in ``faults``."""

    def __init__(self, url: str) -> None:
        super().__init__(url, heartbeat_interval=1, grace_period=2)
        self.faults: dict[str, list[str]] = {}  # write -> "before" | "after" | "down", in turn
        self.landed: Counter[tuple[Any, ...]] = Counter()

    def _write(self, name: str, key: tuple[Any, ...], call: Callable[[], Any]) -> Any:
        when = self.faults.get(name, [])
        fault = when.pop(0) if when else None
        if fault in ("before", "down"):
            if fault == "down":
                when.insert(0, "down")  # stays down until the test lifts it
            raise optuna.exceptions.StorageInternalError(LOST)
        out = call()
        self.landed[(name, *key)] += 1
        if fault == "after":
            raise optuna.exceptions.StorageInternalError(LOST)
        return out

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._write("attr", (trial_id, key),
                    lambda: super(Flaky, self).set_trial_user_attr(trial_id, key, value))

    def set_trial_state_values(self, trial_id: int, state: Any, values: Any = None) -> bool:
        if self.faults.get("state") == ["taken"]:  # lost, and another worker's recovery
            self.faults["state"] = []  # ended the trial meanwhile
            super().set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
            raise optuna.exceptions.StorageInternalError(LOST)
        return self._write("state", (trial_id, state), lambda: super(
            Flaky, self).set_trial_state_values(trial_id, state, values))

    def record_heartbeat(self, trial_id: int) -> None:
        self._write("heartbeat", (trial_id,),
                    lambda: super(Flaky, self).record_heartbeat(trial_id))

    def set_trial_intermediate_value(self, trial_id: int, step: int, value: float) -> None:
        self._write("report", (trial_id, step), lambda: super(
            Flaky, self).set_trial_intermediate_value(trial_id, step, value))


@pytest.fixture
def flaky(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Flaky:
    monkeypatch.setattr(tuning.storage, "STORAGE_RETRY_S", 5.0)
    return Flaky(f"sqlite:///{tmp_path / 'optuna.db'}")


def _suite(storage: Flaky) -> tuple[config.SuiteSpec, config.Configuration]:
    spec = config.load("smoke", {"set": ["tuning.trials=2"]})
    configuration = config.expand(spec)[1]
    tuning.create_studies(storage, spec, [configuration])
    return spec, configuration


def _claim(storage: Flaky, spec: config.SuiteSpec,
           configuration: config.Configuration) -> tuning.Claim:
    claim = tuning.claim(storage, spec, configuration).claim
    assert claim is not None
    return claim


def _result(loss: float = 0.25) -> TrainResult:
    return TrainResult("completed", steps_done=20, val={"loss": loss, "mse": loss},
                       test={}, solved=False)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_tell_whose_commits_fail_lands_once(flaky: Flaky, when: str) -> None:
    spec, configuration = _suite(flaky)
    claim = _claim(flaky, spec, configuration)
    flaky.faults = {"attr": [when, when], "state": [when]}  # the first attributes, the state
    told = tuning.tell(claim, _result(), metric="mse", direction="minimize")
    assert told == Outcome.COMPLETE
    [record] = tuning.trial_records(flaky, spec, configuration)
    assert (record.outcome, record.value, record.attrs["metric"]) == ("complete", 0.25, "mse")
    trial_id = claim._trial._trial_id
    assert flaky.landed[("state", trial_id, optuna.trial.TrialState.COMPLETE)] == 1
    assert flaky.landed[("attr", trial_id, "metric")] == 1
    assert flaky.landed[("attr", trial_id, "direction")] == 1


@pytest.mark.parametrize("when", ["before", "after"])
def test_started_heartbeats_and_reports_ride_out_a_lost_commit(flaky: Flaky,
                                                               when: str) -> None:
    spec, configuration = _suite(flaky)
    flaky.faults = {"heartbeat": [when]}  # the claim's first heartbeat
    claim = _claim(flaky, spec, configuration)
    trial_id = claim._trial._trial_id
    assert flaky.landed[("heartbeat", trial_id)] >= 1  # an upsert: repeating it is harmless
    flaky.faults = {"attr": [when, when], "heartbeat": [when], "report": [when]}
    tuning.started(claim, "run-1")
    with tuning.heartbeat(claim):
        assert tuning.pruning_callback(claim)(20, {"loss": 0.5}) is False
    [record] = tuning.trial_records(flaky, spec, configuration)
    assert record.attrs["mlflow_run_id"] == "run-1" and record.last_report == 0.5
    assert record.attrs["worker"] == f"{socket.gethostname()}:{os.getpid()}"
    assert flaky.landed[("attr", trial_id, "mlflow_run_id")] == 1
    assert flaky.landed[("attr", trial_id, "worker")] == 1
    assert flaky.landed[("report", trial_id, 20)] == 1


@pytest.mark.parametrize("when", ["before", "after"])
def test_an_interrupted_claim_is_ended_and_queued_again_once(flaky: Flaky, when: str) -> None:
    spec, configuration = _suite(flaky)
    claim = _claim(flaky, spec, configuration)
    flaky.faults = {"attr": [when], "state": [when]}
    tuning.fail(claim, Outcome.INTERRUPTED)
    outcomes = [t.outcome for t in tuning.trial_records(flaky, spec, configuration)]
    assert outcomes == ["interrupted", "waiting"]  # one retry queued, not two
    assert flaky.landed[("state", claim._trial._trial_id, optuna.trial.TrialState.FAIL)] == 1


def test_a_tell_taken_over_during_the_outage_is_trial_taken(flaky: Flaky) -> None:
    """The commit was lost and, meanwhile, another worker's recovery ended the trial: the
    result is dropped in one line (``TrialTaken``), not told over the other's end."""
    spec, configuration = _suite(flaky)
    claim = _claim(flaky, spec, configuration)
    flaky.faults = {"state": ["taken"]}
    with pytest.raises(tuning.TrialTaken):
        tuning.tell(claim, _result(), metric="mse", direction="minimize")
    assert [t.outcome for t in tuning.trial_records(flaky, spec, configuration)] == [
        "interrupted"]


def test_a_claim_cut_off_before_its_first_heartbeat_is_recovered(
        flaky: Flaky, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database goes away right after the trial was asked for: the claim gives up in one
    line and the trial is RUNNING with no heartbeat, which Optuna's stale check never sees.
    Once the database is back and the grace period has passed, recovery marks it
    interrupted; a trial whose worker still runs here is left alone."""
    monkeypatch.setattr(tuning.storage, "STORAGE_RETRY_S", 0.2)  # gives up at once
    monkeypatch.setattr(tuning.storage, "GRACE_S", 3)
    spec, configuration = _suite(flaky)
    flaky.faults = {"heartbeat": ["down"]}
    with pytest.raises(tuning.StorageUnavailable, match="did not answer"):
        tuning.claim(flaky, spec, configuration)
    with pytest.raises(tuning.StorageUnavailable):  # a second one, whose worker lives on
        tuning.claim(flaky, spec, configuration)
    flaky.faults = {}  # the database is back
    study = tuning.load_study(flaky, spec, configuration)
    alive = study.get_trials(deepcopy=False)[1]
    flaky.set_trial_user_attr(alive._trial_id, "worker", f"{socket.gethostname()}:{os.getpid()}")
    assert [t.outcome for t in tuning.trial_records(flaky, spec, configuration)] == [
        "running", "running"]
    assert tuning.recover(flaky, spec, [configuration], all_running=False)["interrupted"] == 0
    time.sleep(3.5)  # the grace period, from the trial's start
    found = tuning.recover(flaky, spec, [configuration], all_running=False)
    assert found["interrupted"] == 1
    outcomes = [t.outcome for t in tuning.trial_records(flaky, spec, configuration)]
    assert outcomes == ["interrupted", "running"]  # no parameters yet: nothing to re-run
    assert tuning.used_budget(tuning.trial_records(flaky, spec, configuration)) == 1


def test_a_final_seed_cut_off_before_it_read_its_seed_is_queued_again(tmp_path: Path) -> None:
    """A queued final seed claimed and interrupted before it read its seed keeps no
    parameters; it is queued again with the seed it was queued with."""
    spec, configuration = config.load("smoke"), config.expand(config.load("smoke"))[1]
    storage = tuning.open_storage(None, tmp_path)
    tuning.create_studies(storage, spec, [configuration])
    final = tuning.load_study(storage, spec, configuration, final=True)
    tuning.enqueue_finals(final, {"lr": 0.01}, [1234], best_number=0)
    trial = final.ask()  # claimed, then cut off
    trial.set_user_attr("outcome", str(Outcome.INTERRUPTED))
    final.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert tuning.requeue_interrupted(final) == [trial.number]
    [retry] = [t for t in final.get_trials() if t.state == optuna.trial.TrialState.WAITING]
    assert retry.user_attrs["retry_of"] == trial.number and retry.user_attrs["seed"] == 1234
