"""Errors as one line (bench/errors.py), checked to the character: the first line, the type,
the limit, the full disk said once, passwords masked, paths as a user reads them."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from bench.errors import DamagedStore, error_line, full_disk, full_disk_line, shown_path

URL = "postgresql://u:secret@db:5432/x"


def raised_from(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as err:
            raise outer from err
    except BaseException as err:
        return err


def test_error_line_is_the_first_non_blank_line() -> None:
    assert error_line(ValueError("\n  \n first \nsecond")) == "first"
    assert error_line(ValueError("")) == "ValueError"
    assert error_line(ValueError("  \n ")) == "ValueError"
    assert error_line(KeyError("k"), with_type=True) == "KeyError: 'k'"
    assert error_line(ValueError(""), with_type=True) == "ValueError"
    assert error_line(ValueError("first\nsecond"), with_type=True) == "ValueError: first"


def test_error_line_limit_and_masking() -> None:
    assert error_line(ValueError("x" * 400)) == "x" * 300
    assert error_line(ValueError("x" * 400), limit=10) == "x" * 10
    assert error_line(ValueError(f"cannot reach {URL} or {URL}")) == \
        "cannot reach postgresql://u:***@db:5432/x or postgresql://u:***@db:5432/x"
    assert error_line(RuntimeError(f"{URL}\nmore"), with_type=True) == \
        "RuntimeError: postgresql://u:***@db:5432/x"


def test_a_full_disk_is_said_once() -> None:
    enospc = OSError(errno.ENOSPC, "No space left on device")
    assert full_disk(enospc)
    assert not full_disk(OSError(errno.EIO, "I/O error"))
    assert not full_disk(ValueError("fine"))
    assert full_disk(ValueError("(sqlite3.OperationalError) database or disk is full"))
    hidden = raised_from(RuntimeError("(flush) the commit failed"), enospc)
    assert full_disk(hidden)
    assert error_line(hidden) == "(flush) the commit failed: the disk is full"
    assert error_line(hidden, with_type=True) == \
        "RuntimeError: (flush) the commit failed: the disk is full"
    # a line that says so already is not told twice
    assert error_line(enospc) == "[Errno 28] No space left on device"
    said = ValueError("database or disk is full")
    assert error_line(said) == "database or disk is full"
    assert error_line(raised_from(RuntimeError("the disk is full here"), enospc)) == \
        "the disk is full here"


def test_full_disk_line_quotes_the_line_that_says_so() -> None:
    tail = "; free some space and run the command again: a suite resumes where it stopped"
    inner = ValueError(f"header {URL}\n  (sqlite3.OperationalError) database or disk is full  ")
    err = raised_from(RuntimeError("flush failed"), inner)
    assert full_disk_line(err) == \
        f"the disk is full ((sqlite3.OperationalError) database or disk is full){tail}"
    enospc = OSError(errno.ENOSPC, f"No space left on device: {URL}")
    assert full_disk_line(enospc) == \
        f"the disk is full ([Errno 28] No space left on device: postgresql://u:***@db:5432/x){tail}"
    # nothing in the chain says so in words: the error's own line, with its type
    quiet = raised_from(RuntimeError("commit failed"), OSError(errno.ENOSPC, "write"))
    assert full_disk_line(quiet) == \
        f"the disk is full (RuntimeError: commit failed: the disk is full){tail}"
    long = OSError(errno.ENOSPC, "No space left on device" + "y" * 400)
    quoted = ("[Errno 28] No space left on device" + "y" * 400)[:300]
    assert full_disk_line(long) == f"the disk is full ({quoted}){tail}"


def test_shown_path_relative_below_the_working_directory(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "here" / "runs").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "here")
    assert shown_path(tmp_path / "here" / "runs" / "mlflow.db") == \
        os.path.join("runs", "mlflow.db")
    assert shown_path("runs/mlflow.db") == os.path.join("runs", "mlflow.db")
    assert shown_path(tmp_path / "elsewhere.db") == str(tmp_path / "elsewhere.db")
    # a sibling whose name starts like the working directory is not below it
    assert shown_path(tmp_path / "here-too" / "x.db") == str(tmp_path / "here-too" / "x.db")
    err = DamagedStore("the journal", tmp_path / "here" / "runs" / "j.log", "line 3 is cut",
                       "move it away")
    assert err.path == os.path.join("runs", "j.log")
    assert str(err) == f"the journal {os.path.join('runs', 'j.log')} is damaged (line 3 is cut); " \
        "move it away"


def test_error_line_keeps_a_message_that_ends_in_letters_stripped_nowhere() -> None:
    # the trailing ": " of an empty message is stripped, not the letters of a message
    assert error_line(ValueError("BOX"), with_type=True) == "ValueError: BOX"


def test_full_disk_line_follows_an_implicit_chain() -> None:
    tail = "; free some space and run the command again: a suite resumes where it stopped"
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("commit failed")  # noqa: B904 - the implicit chain is the point
    except RuntimeError as err:
        assert err.__cause__ is None and err.__context__ is not None
        assert full_disk_line(err) == \
            f"the disk is full ([Errno 28] No space left on device){tail}"
