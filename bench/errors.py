"""Errors as one line a user can read: the first line of a message, passwords masked.

Every place that prints or records an error (the command, the workers, the stores' retries)
goes through ``error_line``, so a password in a storage or tracking URL never reaches a
terminal, a log or a run's tags.
"""

from __future__ import annotations

import errno
import os
import re

# The user may be empty (libpq takes ``postgresql://:secret@h``).
_SECRET_RE = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@")


def mask_secrets(text: str) -> str:
    """Hide the password of every URL in ``text``, however many a line holds:
    ``postgresql://u:secret@h`` -> ``u:***@h``."""
    return _SECRET_RE.sub(lambda m: f"{m.group('head')}***@", text)


def error_line(err: BaseException, *, with_type: bool = False, limit: int = 300) -> str:
    """``err`` as one line, passwords masked, at most ``limit`` characters: the first
    non-blank line of its message (the type's name where it has none); ``with_type`` puts
    ``Type: `` in front."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if with_type:
        text = f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    else:
        text = lines[0] if lines else type(err).__name__
    if full_disk(err) and "full" not in text and "No space" not in text:
        text = f"{text}: the disk is full"  # said on a later line (SQLAlchemy's autoflush)
    return mask_secrets(text)[:limit]


class DamagedStore(RuntimeError):
    """A store on disk that cannot be read (a SQLite database, the Optuna journal, a spooled
    run's records): one line naming the file, what is wrong with it and the way out. The
    stage that reads the file raises it; the command prints it and exits 2 (``--verbose``:
    the traceback, with the library's error it was raised from)."""

    def __init__(self, what: str, path: str | os.PathLike[str], problem: str,
                 way_out: str) -> None:
        self.path = shown_path(path)
        super().__init__(f"{what} {self.path} is damaged ({problem}); {way_out}")


def full_disk(err: BaseException) -> bool:
    """Whether ``err``, or an error it was raised from, says the disk is full: ENOSPC, or
    SQLite's "database or disk is full"."""
    seen: BaseException | None = err
    while seen is not None:
        if (isinstance(seen, OSError) and seen.errno == errno.ENOSPC) or \
                "database or disk is full" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


_DISK_FULL = ("database or disk is full", "No space left on device")


def full_disk_line(err: BaseException) -> str:
    """What to say of a full disk, in one line: the line of the error (or of the error it was
    raised from) that says so, and that a suite resumes once space is freed."""
    seen: BaseException | None = err
    said = error_line(err, with_type=True)
    while seen is not None:
        lines = [ln.strip() for ln in str(seen).splitlines() if any(m in ln for m in _DISK_FULL)]
        if lines:
            said = mask_secrets(lines[0])[:300]
            break
        seen = seen.__cause__ or seen.__context__
    return (f"the disk is full ({said}); free some space and run the command again: a suite "
            f"resumes where it stopped")


def shown_path(path: str | os.PathLike[str]) -> str:
    """``path`` as a user reads it: relative to the working directory where it lies below
    it (``runs/smoke/mlflow.db``), else absolute."""
    full = os.path.abspath(path)
    here = os.getcwd()
    return os.path.relpath(full, here) if full.startswith(here + os.sep) else full
