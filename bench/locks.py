"""File locks between the processes of one machine: the one lock helper of the project.

A lock is ``flock`` on a file in the run directory: the kernel releases it with a process
that dies, so a killed worker or command never leaves a suite locked.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


@contextlib.contextmanager
def locked(path: Path, *, shared: bool = False, wait: bool = True) -> Iterator[TextIO]:
    """Hold a lock on ``path`` (created if missing) and yield the open file (``a+``, so the
    holder may read or write it). ``shared`` locks do not exclude each other; with
    ``wait=False`` a lock held elsewhere raises ``BlockingIOError`` at once."""
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    with open(path, "a+") as handle:
        fcntl.flock(handle, mode if wait else mode | fcntl.LOCK_NB)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
