"""Processes the tests start and stop: a command's output read line by line, its process
group frozen at a chosen moment and signalled, its ports and its group checked gone."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test stops with SIGINT, as Ctrl-C in a terminal would.

    A shell starts background jobs with SIGINT ignored, and a child inherits that; Python then
    installs no KeyboardInterrupt handler, and the SIGINT the test sends would do nothing.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def freeze_when(pgid: int, ready: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Stop process group ``pgid`` (SIGSTOP) at a moment ``ready()`` holds, and leave it
    stopped: checked while the group is frozen, so what it saw (a trial running, say) is
    still so when the test then signals it (``signal_frozen``). Checked while running, a
    short job could end between the look and the signal."""
    deadline = time.monotonic() + timeout
    while True:
        os.killpg(pgid, signal.SIGSTOP)
        if ready():
            return
        os.killpg(pgid, signal.SIGCONT)
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened within {timeout:.0f} s: {what}")
        time.sleep(0.2)


def signal_frozen(pgid: int, sig: int, *, leader_only: bool = False) -> None:
    """Send ``sig`` to a group ``freeze_when`` stopped (``leader_only``: to its first
    process alone), then let the group run to handle it."""
    if leader_only:
        os.kill(pgid, sig)
    else:
        os.killpg(pgid, sig)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGCONT)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on ``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def read_lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """``proc``'s output, line by line, read by a thread into a queue."""
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return out


def wait_for_line(lines: queue.Queue[str], prefix: str, seen: list[str], timeout: float) -> str:
    """The rest of the first line that starts with ``prefix`` (after its ``": "``); every line
    read goes to ``seen``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        seen.append(line)
        if line.startswith(prefix):
            return line.split(": ", 1)[-1].strip()
    raise AssertionError(f"no {prefix!r} line in {seen}")


def stop_command(proc: subprocess.Popen[str]) -> None:
    """After a failure: stop the command as a user would, so that it stops its server (a
    SIGKILL would leave the server, in its own process group, running)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
