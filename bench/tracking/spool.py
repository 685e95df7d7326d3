"""Run records between a worker and the store: kept on disk, sent from a thread.

A worker hands a finished run to two ``BackgroundWriter``s: the first builds its records
and keeps them in a ``Spool`` (on disk until the store has them all), the second sends them
to the store; opens of runs go first (``opening``, ``opens_first``). What a process that
died left in the spool is written on resume (``replay_spooled``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import DamagedStore, error_line
from bench.locks import locked
from bench.processes import process_alive
from bench.tracking.records import RunRecords
from bench.tracking.retries import TrackingUnavailable

if TYPE_CHECKING:  # an annotation only: the writer loads mlflow, the spool needs none
    from bench.tracking.writer import Tracker

SEND_BACKLOG = 8  # runs whose kept records may wait for the store, per worker
OPENS_LOCK = ".open.lock"  # in a run directory: held shared while a worker opens a run
OPEN_FIRST_S = 2.0  # how long one request of a run's records waits at most for opens


class Spool:
    """Run records on disk from the moment they are built until the store has them all.

    A process keeps its records in ``<run dir>/spool/<pid>/`` (one JSON file per run,
    written whole and then renamed), so that a ``kill -9`` loses none that were handed over:
    ``replay_spooled`` writes what dead processes left, before recovery ends their runs as
    incomplete. JSON, not pickle: reading a run directory runs no code.
    """

    def __init__(self, run_dir: Path) -> None:
        self.folder = run_dir / "spool" / str(os.getpid())
        self._count = 0

    def keep(self, records: RunRecords) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._count += 1
        path = self.folder / f"{self._count:08d}-{records.run_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(records.to_json())
        tmp.replace(path)
        return path

    @staticmethod
    def drop(path: Path) -> None:
        path.unlink(missing_ok=True)

    def close(self) -> None:
        """Remove this process's folder once everything in it was sent (and the spool
        folder, when no other process has one)."""
        for folder in (self.folder, self.folder.parent):
            with contextlib.suppress(OSError):  # not there, or not empty: kept
                folder.rmdir()


@contextlib.contextmanager
def opening(run_dir: Path) -> Iterator[None]:
    """Held while a worker opens a run: the senders of the workers of this machine (of this
    run directory) wait before their next request (``opens_first``). A worker waits for its
    run's open after training and nothing waits for records, so the store should answer
    opens first: over one server on the workers' two cores, opens behind the other workers'
    records took 150-190 ms on average, and a 60-step run trains for 0.2-0.5 s. A lock file
    held shared (opens do not wait for each other) and released by the kernel with a
    process that dies."""
    with locked(run_dir / OPENS_LOCK, shared=True):
        yield


def opens_first(run_dir: Path, limit_s: float = OPEN_FIRST_S) -> float:
    """Wait while a run is being opened on this machine (``opening``), at most ``limit_s``
    (opens that never pause hold up no record for long); returns the seconds waited."""
    started = time.monotonic()
    while True:
        try:
            with locked(run_dir / OPENS_LOCK, wait=False):
                break
        except BlockingIOError:
            if time.monotonic() - started >= limit_s:
                break
            time.sleep(0.005)
    return time.monotonic() - started


def replay_spooled(run_dir: Path, tracker: Tracker) -> int:
    """Write the records that processes which no longer exist left in the run directory's
    spool (in the order they were kept), and remove them; returns the runs written. A file
    that cannot be read or written (its run deleted from the store, say) is left where it
    is and named in a warning; its run is then ended as incomplete by recovery, as without
    a spool. A store that does not answer raises ``TrackingUnavailable``."""
    written = 0
    for folder in _left_behind(run_dir):
        for path in sorted(folder.glob("*.json")):
            try:
                records = RunRecords.from_json(path.read_text())
            except (OSError, ValueError, KeyError, TypeError) as err:
                logging.getLogger(__name__).warning("spooled records %s unreadable: %s",
                                                    path, err)
                continue
            try:
                written += tracker.replay(records)
            except TrackingUnavailable:
                raise
            except Exception as err:  # the run deleted from the store meanwhile, say
                logging.getLogger(__name__).warning(
                    "spooled records %s not written (kept): %s", path, error_line(err))
                continue
            path.unlink()
        for leftover in folder.glob("*.tmp"):  # never renamed: not handed over
            leftover.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()
    return written


def check_spooled(run_dir: Path) -> None:
    """Read every run's records that processes which no longer exist left in the run
    directory's spool, before a run writes anything: a file that cannot be read stops it as
    ``DamagedStore``, naming the file and the way out.

    Raises:
        DamagedStore: the first spooled file that cannot be read.
    """
    for folder in _left_behind(run_dir):
        for path in sorted(folder.glob("*.json")):
            try:
                RunRecords.from_json(path.read_text())
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise DamagedStore(
                    "the spooled run records", path, f"unreadable: {error_line(err)}",
                    "move it aside: its run is then ended as incomplete, as "
                    "if its worker had died before keeping it") from err


def _left_behind(run_dir: Path) -> list[Path]:
    """The spool folders of processes which no longer exist, in the order of their ids."""
    root = run_dir / "spool"
    return [folder for folder in sorted(root.glob("*")) if root.is_dir()
            and folder.name.isdigit() and not process_alive(int(folder.name))]


class BackgroundWriter:
    """Writes to the tracking store from a thread, in the order things were handed over.

    ``submit(write)`` hands over a callable that records one run and returns at once: the
    worker trains its next job meanwhile. It waits only while ``backlog`` runs handed over
    before are not yet written (1: the previous one). ``submit(write, follows=True)`` is a
    small write that goes with what was handed over last (a parent run's tags or end):
    queued after it, without waiting. ``call(fn)`` runs ``fn`` in turn and gives its result
    as a future (a worker opens its runs through ``call`` on a writer of its own, so that an
    open never queues behind records).

    A worker hands a run to two writers (``bench.run.records``): the first builds its records
    and keeps them in a ``Spool`` (backlog 1: at most one run's records exist only in
    memory, so a ``kill -9`` loses no more than that run's, whose trial, told to Optuna
    before, is repaired on resume as any run whose worker died: ``suite.end_orphan_runs``);
    the second sends them to the store, up to ``SEND_BACKLOG`` runs behind, since what a
    dead process left in the spool is written on resume (``replay_spooled``).

    ``flush`` waits for everything handed over; an error the thread met
    (``TrackingUnavailable`` after the tracker's own retries, or any other) is raised by the
    next ``submit`` that waits, ``flush`` or ``close`` in the caller's thread, never dropped;
    after it, only ``call`` still runs. ``waited_s`` sums the seconds callers spent waiting.

    ``synchronous=True`` (or ``GRADBENCH_TRACKING_SYNC=1`` in the environment) writes in
    the caller's thread instead, as before, for comparison.
    """

    def __init__(self, *, synchronous: bool | None = None, backlog: int = 1) -> None:
        if synchronous is None:
            synchronous = os.environ.get("GRADBENCH_TRACKING_SYNC", "") not in ("", "0")
        self.synchronous = synchronous
        self.waited_s = 0.0
        self._error: BaseException | None = None
        self._slots = threading.BoundedSemaphore(backlog)  # runs handed over, not yet written
        self._queue: queue.Queue[tuple[Callable[[], Any], bool] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        if not synchronous:
            self._thread = threading.Thread(target=self._work, name="gradbench-tracking",
                                            daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                write, holds_slot = item
                try:
                    if self._error is None or getattr(write, "answers", False):
                        write()  # after a failure no more records (it is raised); calls answer
                except BaseException as err:  # handed to the caller's thread
                    self._error = err
                finally:
                    if holds_slot:
                        self._slots.release()
            finally:
                self._queue.task_done()

    def submit(self, write: Callable[[], None], *, follows: bool = False) -> None:
        """Write one run's records in the background; waits while ``backlog`` earlier runs'
        are not yet written. ``follows``: a small write that goes with what was handed
        over last, queued without waiting."""
        started = time.perf_counter()
        try:
            if self._thread is None:
                write()
                return
            if not follows:
                self._slots.acquire()
                if self._error is not None:
                    self._slots.release()
                    self._raise()
            self._queue.put((write, not follows))
        finally:
            self.waited_s += time.perf_counter() - started

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """``fn()`` in the writer's thread, in turn; its result or error in the future."""
        future: Future[Any] = Future()

        def answer() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as err:  # raised by future.result() in the caller
                    future.set_exception(err)

        answer.answers = True  # type: ignore[attr-defined]
        if self._thread is None:
            answer()
        else:
            self._queue.put((answer, False))
        return future

    def flush(self) -> None:
        """Wait until everything handed over is written; raise what writing raised."""
        started = time.perf_counter()
        try:
            if self._thread is not None:
                self._queue.join()
            if self._error is not None:
                self._raise()
        finally:
            self.waited_s += time.perf_counter() - started

    def _raise(self) -> None:
        error, self._error = self._error, None
        assert error is not None
        raise error

    def close(self) -> None:
        """Flush, then stop the thread (also when the flush raises)."""
        try:
            self.flush()
        finally:
            if self._thread is not None and self._thread.is_alive():
                self._queue.put(None)
                self._thread.join(timeout=5)
            self._thread = None
