"""A real suite's stores damaged or on a full disk: a torn journal tail repaired on resume,
a damaged store named in one line by ``run``, ``status`` and ``report`` (exit 2, nothing
written), and a run on a small file system that fills up, resumed once space is freed."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.cli.main import main
from testkit.suites import SMALL, write_suite

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("damage")]


def _status(path: Path, runs: Path, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    capsys.readouterr()
    assert main(["status", str(path), "--runs-dir", str(runs), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["configurations"]


def _all_done(rows: list[dict]) -> bool:
    return len(rows) == 2 and all(r["complete"] + r["pruned"] + r["diverged"] == 2
                                  and r["running"] == 0 and r["finals"] == "2/2" for r in rows)


def test_a_torn_journal_tail_is_repaired_and_the_suite_finishes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    path, runs = write_suite(tmp_path, SMALL), tmp_path / "runs"
    assert main(["run", str(path), "--runs-dir", str(runs), "--quiet"]) == 0
    journal = runs / "small" / "optuna.journal"
    data = journal.read_bytes()
    lines = data.split(b"\n")
    cut = len(b"\n".join(lines[: len(lines) * 2 // 3])) + 40  # mid-record, a third lost
    journal.write_bytes(data[:cut])
    assert main(["run", str(path), "--runs-dir", str(runs), "--quiet"]) == 0
    [said] = [r.getMessage() for r in caplog.records if r.name == "bench.tuning.journal"]
    assert "optuna.journal ended in an unfinished line" in said and "lost: one unfinished" in said
    [backup] = (runs / "small").glob("optuna.journal.torn-*")
    assert backup.read_bytes() == data[:cut]
    assert _all_done(_status(path, runs, capsys))


def test_damaged_stores_are_named_by_run_status_and_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, runs = write_suite(tmp_path, SMALL), tmp_path / "runs"
    run_dir = runs / "small"
    assert main(["run", str(path), "--runs-dir", str(runs), "--quiet", "--trials", "1",
                 "--seeds", "1"]) == 0
    journal, db = run_dir / "optuna.journal", run_dir / "mlflow.db"
    good_journal, good_db = journal.read_bytes(), db.read_bytes()

    def refused(command: str, *flags: str) -> str:
        capsys.readouterr()
        assert main([command, str(path), "--runs-dir", str(runs), *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("gradbench: error: ") and "\n" not in err
        return err

    lines = good_journal.split(b"\n")
    journal.write_bytes(b"\n".join([*lines[:3], b"\xff" + lines[3][1:], *lines[4:]]))
    for command in ("run", "status", "report"):
        assert f"the Optuna journal {journal} is damaged (line 4: not UTF-8" in \
            refused(command)
    journal.write_bytes(good_journal)
    db.write_bytes(good_db[: len(good_db) // 2])
    for command in ("run", "report"):
        assert f"`sqlite3 {db} .recover`" in refused(command)
    db.write_bytes(good_db)
    spooled = run_dir / "spool" / "999999999" / "00000001-x.json"  # no such process
    spooled.parent.mkdir(parents=True)
    spooled.write_text("{cut")
    assert f"the spooled run records {spooled} is damaged" in refused("run")
    assert journal.read_bytes() == good_journal and db.read_bytes() == good_db  # nothing written


@contextlib.contextmanager
def _small_filesystem(folder: Path, size: str) -> Iterator[None]:
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(folder)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system needs root")
def test_a_full_disk_stops_the_run_and_a_resume_finishes(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The run directory on a 3 MB file system: the run stops with one line (exit 1; the
    workers' output included: no library traceback), what was recorded stays, and once space
    is freed a resume finishes with counts reconciled."""
    path, runs = write_suite(tmp_path, SMALL), tmp_path / "runs"
    with _small_filesystem(runs, "3m"):
        filler = runs / "filler"
        filler.write_bytes(b"\0" * 1_900_000)
        code = main(["run", str(path), "--runs-dir", str(runs), "--quiet", "--workers", "1"])
        out = capfd.readouterr()
        assert code == 1, out
        text = out.out + out.err
        flat = " ".join(text.split())  # the console may wrap the line
        assert "error: worker 0: the disk is full (" in flat, text
        assert "free some space" in flat, text
        assert "Traceback" not in text and "ERROR" not in text, text  # no library log
        filler.unlink()  # the space freed
        subprocess.run(["mount", "-o", "remount,size=64m", str(runs)], check=True)
        assert main(["run", str(path), "--runs-dir", str(runs), "--quiet"]) == 0
        assert _all_done(_status(path, runs, capfd))
