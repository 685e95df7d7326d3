"""A worker never waits for ever: with work pending and nothing running or queued on any
machine, it stops with ``Stalled`` after ``STALL_CHECKS`` idle looks; while a trial runs
elsewhere it waits for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import config, tuning
from bench.run import worker as workers
from bench.run.phases import Stopwatch
from bench.run.suite import Suite


def _idle_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 pending: list[bool]) -> tuple[workers.Worker, Suite]:
    """A worker on a journal suite whose every claim finds nothing to run; the claims say
    the configuration still has work as long as ``pending`` holds True values (one per
    look; then False: done)."""
    spec = config.load("smoke")
    configurations = config.expand(spec)[1:2]
    suite = Suite(spec, tmp_path, configurations)
    storage = tuning.open_storage(None, tmp_path)
    tuning.create_studies(storage, spec, configurations)
    monkeypatch.setattr(workers, "IDLE_SLEEP_S", 0.0)
    monkeypatch.setattr(tuning, "claim", lambda *_: tuning.Attempt(
        pending=pending.pop(0) if pending else False))
    worker = workers.Worker.__new__(workers.Worker)  # no MLflow, no torch: the loop alone
    worker.suite, worker.spec, worker.index, worker.storage = suite, spec, 0, storage
    worker.embedded, worker._timed = True, Stopwatch()
    worker.times = worker._timed.times
    worker._order = workers._Order(storage, suite, 0)
    return worker, suite


def test_pending_work_with_nothing_running_anywhere_stops_the_worker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    worker, _ = _idle_worker(tmp_path, monkeypatch, [True] * 100)
    with pytest.raises(workers.Stalled, match="nothing to claim and no trial running") as err:
        worker._work()
    assert "gradbench status" in str(err.value) and "\n" not in str(err.value)


def test_a_trial_running_elsewhere_is_waited_for(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial RUNNING on another machine: the worker looks again and again (more than
    ``STALL_CHECKS`` times) without stopping, and returns once the work is done."""
    looks = 3 * workers.STALL_CHECKS
    worker, suite = _idle_worker(tmp_path, monkeypatch, [True] * looks)
    study = tuning.load_study(worker.storage, suite.spec, suite.configurations[0])
    study.ask()  # another machine's trial, running
    assert worker._work() == 0
