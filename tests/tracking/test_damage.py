"""The tracking side's stores damaged or on a full disk: a SQLite file that cannot be read
named in one line, a spooled run that cannot be read named before anything is written, and
ENOSPC on the spool's and MLflow's writes losing nothing recorded before."""

from __future__ import annotations

import errno
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from bench import tracking
from bench.errors import DamagedStore, error_line, full_disk


def _tracker(tmp_path: Path) -> Any:
    return tracking.Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "damage", run_dir=tmp_path,
                            retry_s=1.0)


def _records(tracker: Any, parent: str, i: int) -> tracking.RunRecords:
    run_id = tracker.start_run(parent, f"trial-{i}", {"trial_number": str(i)})
    return tracking.RunRecords(run_id, {"lr": 0.1 * (i + 1)}, {"state": "complete"},
                               [("train/loss", float(s), s) for s in range(5)],
                               {tracking.STEPS_TABLE: f"step\n{i}\n"}, "FINISHED")


def _finished(tmp_path: Path) -> int:
    return sum(r.status == "FINISHED" and r.parent_id != ""
               for r in tracking.RunReader(f"sqlite:///{tmp_path / 'mlflow.db'}",
                                           "damage").runs())


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_sqlite_store_is_named_in_one_line(tmp_path: Path, damage: str) -> None:
    tracker = _tracker(tmp_path)
    parent = tracker.parent_run("c", {})
    for i in range(3):
        tracker.write(_records(tracker, parent, i))
    db = tmp_path / "mlflow.db"
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\xff" * len(data))
    for read in (lambda: tracking.RunReader(f"sqlite:///{db}", "damage").runs(),
                 lambda: _tracker(tmp_path).find_runs("")):
        with pytest.raises(DamagedStore) as raised:
            read()
        text = str(raised.value)
        assert text.startswith(f"the MLflow store {db} is damaged (") and "\n" not in text
        assert f"`sqlite3 {db} .recover`" in text and "move it aside" in text


def _dead_pid() -> int:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid


def test_an_unreadable_spooled_run_is_named(tmp_path: Path) -> None:
    """A dead process's spooled run that cannot be read stops the run before it writes
    anything; a live process's spool is not read."""
    tracking.check_spooled(tmp_path)  # no spool: nothing to say
    live = tmp_path / "spool" / str(__import__("os").getpid())
    live.mkdir(parents=True)
    (live / "00000001-x.json").write_text("{not json")
    tracking.check_spooled(tmp_path)
    dead = tmp_path / "spool" / str(_dead_pid())
    dead.mkdir()
    (dead / "00000001-y.json").write_bytes(b"\xff\xfe")
    with pytest.raises(DamagedStore) as raised:
        tracking.check_spooled(tmp_path)
    text = str(raised.value)
    assert text.startswith(f"the spooled run records {dead / '00000001-y.json'} is damaged")
    assert "move it aside" in text and "\n" not in text


def _no_space(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_under_the_spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC on the spool's write (``Path.write_text``): one line, the runs kept before
    intact and sent on resume, the one that failed kept once space is freed."""
    tracker = _tracker(tmp_path)
    parent = tracker.parent_run("c", {})
    spool = tracking.Spool(tmp_path)
    spool.folder = tmp_path / "spool" / str(_dead_pid())
    kept = [spool.keep(_records(tracker, parent, i)) for i in range(2)]
    failing = _records(tracker, parent, 2)
    monkeypatch.setattr(Path, "write_text", _no_space)
    with pytest.raises(OSError) as raised:
        spool.keep(failing)
    assert full_disk(raised.value) and "\n" not in error_line(raised.value, with_type=True)
    monkeypatch.undo()  # the space freed
    assert all(path.exists() for path in kept)
    spool.keep(failing)
    assert tracking.replay_spooled(tmp_path, tracker) == 3
    assert _finished(tmp_path) == 3


def test_a_full_disk_under_the_sqlite_store(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's "database or disk is full" on MLflow's batch write (raised where the store
    executes it): one line, not retried, the runs written before intact, and the run
    written once space is freed."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    tracker = _tracker(tmp_path)
    parent = tracker.parent_run("c", {})
    for i in range(2):
        tracker.write(_records(tracker, parent, i))
    late = _records(tracker, parent, 2)

    def full(*args: Any, **kwargs: Any) -> None:
        raise sqlalchemy.exc.OperationalError(
            "INSERT INTO metrics ...", {}, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(SqlAlchemyStore, "log_batch", full)
    with pytest.raises(Exception) as raised:
        _tracker(tmp_path).write(late)
    monkeypatch.undo()  # the space freed
    assert full_disk(raised.value), raised.value
    assert "database or disk is full" in error_line(raised.value, with_type=True)
    assert _finished(tmp_path) == 2
    _tracker(tmp_path).write(late)
    assert _finished(tmp_path) == 3
