"""Whether a process still runs: the one fact about processes that the worker pool (a
command to outlive), recovery (a trial's worker) and the spool (a dead worker's records)
all need. No imports beyond the standard library."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (ours counts; a zombie, dead but
    not yet reaped, as a killed worker whose parent died stays in a container, does not)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc here: it exists
    return state not in ("Z", "X")
