"""The Optuna journal file: opened with its damage named, and a torn tail repaired.

Optuna appends one JSON record a line. A write cut short (a power loss, a full disk, a
file system that extended the file but never wrote its data: NUL bytes) leaves an
unfinished last line, which Optuna skips when it reads; but its next append goes right
after it, gluing two records into one malformed line in the middle of the file, and from
then on no command can read the suite. ``repair_torn_tail`` cuts such a tail back to the
last complete record (the original kept beside it) before anything is appended; the run
calls it under its run lock, when no live worker can be appending (``bench.run.suite``).
A line that cannot be read in the middle of the file is not repaired: ``open_journal``
names the file and the line (``DamagedStore``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from bench.errors import DamagedStore, shown_path

WAY_OUT = "restore it from a backup, or move it aside to start the suite afresh"
_CHUNK = 1 << 16  # bytes read at a time, backwards from the end, to find the last line
# Optuna's journal operations (optuna.storages.journal._storage.JournalOperation)
_OPERATIONS = {0: "a study created", 1: "a study deleted", 2: "a study's attribute",
               3: "a study's attribute", 4: "a trial created", 5: "a trial's parameter",
               6: "a trial's state", 7: "a trial's intermediate value",
               8: "a trial's attribute", 9: "a trial's attribute"}


def open_journal(path: str | Path) -> JournalStorage:
    """Optuna's storage on the journal file ``path``; a line it cannot read is a
    ``DamagedStore`` naming the file and the line (Optuna's own error names neither)."""
    try:
        return JournalStorage(JournalFileBackend(str(path)))
    except ValueError as err:  # json.JSONDecodeError, UnicodeDecodeError, "Invalid log format"
        line, problem = first_damage(Path(path)) or (0, str(err))
        where = f"line {line}: " if line else ""
        raise DamagedStore("the Optuna journal", path, f"{where}{problem}", WAY_OUT) from err


def first_damage(path: Path) -> tuple[int, str] | None:
    """The first line of the journal that cannot be read (its number from 1, and why), an
    unfinished last line aside (Optuna skips it); None when every line reads."""
    with path.open("rb") as file:
        lines = list(file)
    for number, line in enumerate(lines[:-1], start=1):  # Optuna skips a bad last line
        problem = _unreadable(line)
        if problem is not None:
            return number, problem
    return None


def _unreadable(line: bytes) -> str | None:
    """Why a journal line cannot be read ("" for an unfinished one), or None."""
    if not line.endswith(b"\n"):
        return ""
    try:
        json.loads(line)
    except UnicodeDecodeError as err:
        return f"not UTF-8: byte 0x{line[err.start]:02x} at column {err.start + 1}"
    except json.JSONDecodeError as err:
        return f"not JSON: {err.msg} at column {err.colno}"
    return None


def repair_torn_tail(path: str | Path) -> str | None:
    """Cut ``path`` back to its last complete record when its last line is unfinished (no
    newline at the end, not valid JSON, or NUL bytes), keeping the original beside it as
    ``<name>.torn-<UTC time>``; returns the warning that says so and what was lost (at most
    that one record), or None when the file was left as it is (complete, absent, or
    damaged before its last line: that is ``open_journal``'s to name).

    Call it only where no process can be appending to the file (under the run lock).
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return None
    cut, tail = _torn_tail(path)
    if cut is None:
        return None
    backup = path.with_name(f"{path.name}.torn-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
    shutil.copy2(path, backup)
    with path.open("r+b") as file:
        file.truncate(cut)
        file.flush()
        os.fsync(file.fileno())
    message = (f"{shown_path(path)} ended in an unfinished line (a write cut short): cut "
               f"back to its last complete record, the original kept as {shown_path(backup)}; "
               f"lost: {_lost(tail)}")
    logging.getLogger(__name__).warning(message)
    return message


def _torn_tail(path: Path) -> tuple[int | None, bytes]:
    """(where the file should end, the bytes beyond) for a torn last line, every line
    before it read well; (None, b"") when there is nothing to cut, or more than the tail
    is wrong (the whole file is read then: only when its tail is torn)."""
    with path.open("rb") as file:
        start = _line_start(file, path.stat().st_size - 1)  # the last line begins here
        file.seek(start)
        tail = file.read()
    if _unreadable(tail) is None or first_damage(path) is not None:
        return None, b""
    return start, tail


def _line_start(file: BinaryIO, end: int) -> int:
    """The offset where the line holding byte ``end`` begins: just past the last newline
    before that byte, or 0. Read backwards in chunks: a journal may be large."""
    stop = end
    while stop > 0:
        position = max(0, stop - _CHUNK)
        file.seek(position)
        found = file.read(stop - position).rfind(b"\n")
        if found >= 0:
            return position + found + 1
        stop = position
    return 0


def _lost(tail: bytes) -> str:
    """What the cut tail held, in words: NUL bytes only, or the record it began."""
    text = tail.rstrip(b"\n")
    if not text.strip(b"\0"):
        return f"nothing but {len(tail)} NUL byte{'s' if len(tail) != 1 else ''}"
    op = re.search(rb'"op_code":\s*(\d+)', text)
    trial = re.search(rb'"trial_id":\s*(\d+)', text)
    what = [_OPERATIONS.get(int(op.group(1)), "")] if op else []
    if trial and what and what[0].startswith("a trial"):
        what.append(f"trial id {int(trial.group(1))}")
    return f"one unfinished record ({', '.join([*filter(None, what), f'{len(tail)} bytes'])})"


def journal_file(url: str | None, run_dir: Path) -> Path | None:
    """The journal file of a storage URL (None: the run directory's), or None for a
    database."""
    if url is None:
        return run_dir / "optuna.journal"
    if url.startswith("journal:"):
        return Path(url.removeprefix("journal:"))
    return None
