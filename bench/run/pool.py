"""The worker processes of ``gradbench run``: started early, handed the suite, watched.

``WorkerPool`` starts ``--workers`` processes (one torch thread each) while the parent
prepares the suite (``bench.run.suite.prepare``); each then runs ``bench.run.worker`` until every
configuration is done, and reports its progress as events (``RunStats`` sums them).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue as queue_module
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import error_line, full_disk, full_disk_line, mask_secrets
from bench.processes import process_alive

if TYPE_CHECKING:  # the suite's module imports MLflow and Optuna: not before the workers
    from bench.run.suite import Suite


def _worker_entry(index: int, inbox: Any, events: Any, command_pid: int,
                  spawned_at: float) -> None:
    """A worker process: waits for the suite and the parent's working directory and
    environment on ``inbox`` (None: stop), then works; progress goes to ``events``.

    ``spawned_at`` (``time.time()`` when the pool asked for the process) starts the worker's
    clock: the ``done`` event says where its seconds went (``worker_s`` in all).

    Kept in this light module (the worker's modules are imported here, in the child, while
    the parent prepares the suite), so that the parent need not import torch first.
    """
    # Lazy: the worker's modules (torch, MLflow, Optuna) load in the worker, never in the
    # parent that imports this module (the fork server has them loaded already).
    from bench.run.worker import Worker

    def emit(kind: str, payload: dict[str, Any]) -> None:
        events.put((kind, payload))

    die_with(command_pid)
    verbose = False
    try:
        message = inbox.get()
        if message is None:
            return
        handed = time.time()
        suite, context = message
        verbose = bool(context.get("verbose"))
        os.chdir(context["cwd"])
        os.environ.clear()
        os.environ.update(context["environ"])
        worker = Worker(suite, index, emit)
        ready = time.time()
        jobs = worker.run()
        times = {"start_s": handed - spawned_at, "setup_s": ready - handed, **worker.times,
                 "worker_s": time.time() - spawned_at}
        emit("done", {"worker": index, "jobs": jobs, "peak_rss_mb": peak_rss_mb(),
                      "times": times})
    except KeyboardInterrupt:
        emit("interrupted", {"worker": index})
    except Exception as err:  # reported by the parent in one line, which exits non-zero
        report_error(index, err, emit, verbose=verbose)
        sys.exit(1)


def report_error(index: int, err: BaseException,
                 emit: Callable[[str, dict[str, Any]], None], *, verbose: bool) -> None:
    """What worker ``index`` says of the error that ends it, every line masked: one line to
    the parent (``emit``), and with ``verbose`` the traceback on stderr (a storage error's
    traceback quotes its URL, password and all)."""
    line = full_disk_line(err) if full_disk(err) else error_line(err, with_type=True,
                                                                   limit=500)
    emit("error", {"worker": index, "error": line})
    if verbose:
        sys.stderr.write(mask_secrets("".join(traceback.format_exception(err))))
        sys.stderr.flush()


GRACE_AFTER_COMMAND_S = 5.0  # a worker whose command died: time to mark its trial


def die_with(command_pid: int) -> None:
    """End this worker when ``gradbench run`` (``command_pid``) ends, however it ends.

    Workers are forked by the fork server, not by the command, and each holds the pipe
    whose end tells that server its command is gone: so neither notices a ``kill -9`` of
    the command by itself, and such workers would go on claiming trials free of the run
    lock. A thread watches the command (a pidfd on Linux, else a poll each second); when
    it is gone the worker gets SIGTERM, which here stops it as Ctrl-C does (SIGINT may be
    ignored: a shell's background job): its trial is marked interrupted (retried at the
    next start) and it exits, or is ended ``GRACE_AFTER_COMMAND_S`` later if that hangs
    (a tracking server that does not answer). Call from the worker's main thread.
    """
    signal.signal(signal.SIGTERM, _stop)

    def watch() -> None:
        _wait_for_exit(command_pid)
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(GRACE_AFTER_COMMAND_S)
        os._exit(1)

    threading.Thread(target=watch, name="gradbench-watch", daemon=True).start()


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _wait_for_exit(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # gone already
    except (AttributeError, OSError):  # no pidfd here: poll
        while process_alive(pid):
            time.sleep(1.0)
        return
    select.select([fd], [], [])
    os.close(fd)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux: ru_maxrss is in KiB)."""
    import resource  # lazy: a Unix module (Windows workers are spawned, and have none)

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _start_context() -> Any:
    """A fork server with the worker's modules preloaded, else (no fork: Windows) spawn.

    Spawned workers each import torch, MLflow and Optuna: about 3 s of CPU apiece, and on a
    2-core machine N workers' imports compete with ``prepare`` and with each other. The fork
    server imports them once, alongside ``prepare``, and forks each worker with them loaded.
    It forks from a process that has run no torch op and opened no store, so nothing
    fork-unsafe (thread pools, CUDA, connections) is inherited.
    """
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    # no effect once this process's server runs
    ctx.set_forkserver_preload(["bench.run.forkserver"])
    return ctx


class WorkerPool:
    """Worker processes (one torch thread each), started before the suite is ready.

    A worker costs seconds of imports (torch, MLflow, Optuna); starting them first lets
    that overlap with ``prepare`` in the parent. Each worker then waits for the prepared
    suite (``run``), or for ``cancel``. With the suite it gets the parent's working
    directory and environment as they are then: a forked worker would otherwise have the
    fork server's, which can be older (a server lives as long as the process that started
    it, and serves every pool of that process).
    """

    def __init__(self, workers: int) -> None:
        ctx = _start_context()
        self.events: Any = ctx.Queue()
        self.inbox: Any = ctx.Queue()
        self.procs = [ctx.Process(target=_worker_entry,
                                  args=(i, self.inbox, self.events, os.getpid(),
                                        time.time()),
                                  name=f"gradbench-w{i}") for i in range(workers)]
        self._start_error: BaseException | None = None
        # A fork server answers once its imports are done: start the workers from a thread,
        # so that this process prepares the suite meanwhile.
        self._starter = threading.Thread(target=self._start, name="gradbench-start",
                                         daemon=True)
        self._starter.start()

    def _start(self) -> None:
        try:
            for proc in self.procs:
                proc.start()
        except BaseException as err:  # raised in the caller's thread by _started
            self._start_error = err

    def _started(self) -> None:
        self._starter.join()
        if self._start_error is not None:
            raise RuntimeError(f"could not start the worker processes: "
                               f"{self._start_error}") from self._start_error

    def cancel(self) -> None:
        """Stop the workers before they got a suite (bad input found meanwhile); the error
        being reported is the caller's, not a failed start."""
        self._starter.join()
        for proc in self.procs:
            if proc.pid is not None:
                self.inbox.put(None)
        self._join()

    def run(self, suite: Suite, on_event: Callable[[str, dict[str, Any]], None], *,
            verbose: bool = False) -> list[str]:
        """Hand the suite out and run to the end; returns the workers' errors, one line per
        cause (``verbose``: each worker also prints its traceback).

        ``on_event(kind, payload)`` receives the workers' progress in this process. Ctrl-C
        reaches the workers too (same process group): each marks its trial interrupted.
        """
        self._started()
        context = {"cwd": os.getcwd(), "environ": dict(os.environ), "verbose": verbose}
        for _ in self.procs:
            self.inbox.put((suite, context))
        causes: dict[str, list[int]] = {}  # error line -> the workers it ended
        try:
            while any(p.is_alive() for p in self.procs) or not self.events.empty():
                try:
                    kind, payload = self.events.get(timeout=0.2)
                except queue_module.Empty:
                    continue
                if kind == "error":
                    causes.setdefault(payload["error"], []).append(payload["worker"])
                on_event(kind, payload)
        except KeyboardInterrupt:
            for proc in self.procs:
                proc.join(timeout=30)
            raise
        finally:
            self._join()
        reported = {i for workers in causes.values() for i in workers}
        errors = [f"worker{'s' if len(w) > 1 else ''} {', '.join(map(str, sorted(w)))}: {cause}"
                  for cause, w in causes.items()]
        errors += [f"worker {i} exited with code {p.exitcode}"
                   for i, p in enumerate(self.procs) if p.exitcode not in (0, None)
                   and i not in reported]
        return errors

    def _join(self) -> None:
        for proc in self.procs:
            if proc.pid is None:  # never started
                continue
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)


# Where a worker's seconds go, by kind, in the order the breakdown lists them: the jobs'
# phases (``bench.run.phases.job_phases``), then the worker's own (``bench.run.worker.Worker.times``
# and ``_worker_entry``): process start-up and waiting for the suite to be prepared, opening
# the storage and tracker, claims, picking up dead workers' trials, waiting for work, reading
# a configuration's results for its summary after its last seed, and
# writing the last run's records at exit.
TIMINGS_FILE = "timings.json"  # RunStats.breakdown of a suite's last `gradbench run`
JOB_KINDS = ("steps_s", "eval_s", "probe_s", "build_s", "optuna_s", "open_s", "record_s",
             "other_s")
WORKER_KINDS = ("start_s", "setup_s", "claim_s", "recovery_s", "idle_s", "summary_s", "flush_s")


class RunStats:
    """What the workers report as they go: steps trained, time in tracking, memory, and
    where the workers' time went (``breakdown``, saved by ``save``)."""

    def __init__(self) -> None:
        self.jobs = 0
        self.steps = 0
        self.job_s = 0.0
        self.tracking_s = 0.0
        self.peak_rss_mb: dict[int, float] = {}
        self.notes: list[str] = []  # one line each, shown after the run
        self.phases: dict[str, float] = dict.fromkeys(JOB_KINDS + WORKER_KINDS, 0.0)
        self.worker_s: dict[int, float] = {}
        self.steps_by: dict[tuple[str, str], int] = {}  # (task variant, model) -> steps

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "end":
            self.jobs += 1
            self.steps += int(payload.get("steps", 0))
            self.job_s += float(payload.get("job_s", 0.0))
            self.tracking_s += float(payload.get("tracking_s", 0.0))
            for phase, seconds in payload.get("phases", {}).items():
                self.phases[phase] = self.phases.get(phase, 0.0) + float(seconds)
            key = (str(payload.get("variant", "")), str(payload.get("model", "")))
            self.steps_by[key] = self.steps_by.get(key, 0) + int(payload.get("steps", 0))
        elif kind == "done":
            self.peak_rss_mb[payload["worker"]] = float(payload.get("peak_rss_mb", 0.0))
            times = dict(payload.get("times", {}))
            self.worker_s[payload["worker"]] = float(times.pop("worker_s", 0.0))
            for phase, seconds in times.items():
                self.phases[phase] = self.phases.get(phase, 0.0) + float(seconds)
        elif kind == "note":
            self.notes.append(f"worker {payload['worker']}: {mask_secrets(payload['message'])}")

    def summary(self) -> str:
        if not self.jobs:
            return "no runs this time"
        share = self.tracking_s / self.job_s if self.job_s else 0.0
        memory = ", ".join(f"{v:.0f}" for _, v in sorted(self.peak_rss_mb.items())) or "-"
        worker_s = sum(self.worker_s.values())
        training = (f"training steps took {self.phases['steps_s'] / worker_s:.0%} of the "
                    f"workers' {worker_s:.0f} s; " if worker_s else "")
        return (f"{self.jobs} runs, {self.steps} training steps; {training}tracking took "
                f"{self.tracking_s:.1f} s of {self.job_s:.0f} s of run time ({share:.1%}); "
                f"peak memory per worker: {memory} MiB")

    def breakdown(self) -> dict[str, Any]:
        """The workers' time by kind (seconds summed over workers; ``worker_s`` in all,
        from each process's start to its end; ``unaccounted_s`` the rest), and the
        training steps run per (task variant, model)."""
        worker_s = sum(self.worker_s.values())
        kinds = {k: round(v, 4) for k, v in self.phases.items()}
        return {"workers": len(self.worker_s), "jobs": self.jobs, "steps": self.steps,
                "job_s": round(self.job_s, 4), "worker_s": round(worker_s, 4),
                "kinds": kinds,
                "unaccounted_s": round(max(0.0, worker_s - sum(self.phases.values())), 4),
                "steps_by": [{"variant": v, "model": m, "steps": n}
                             for (v, m), n in sorted(self.steps_by.items())]}

    def save(self, path: Any, wall_s: float | None = None) -> None:
        """``breakdown`` as JSON (``timings.json`` in the suite's run directory), with the
        command's wall time so far (``wall_s``) when given."""
        data = self.breakdown()
        if wall_s is not None:
            data["wall_s"] = round(wall_s, 2)
        Path(path).write_text(json.dumps(data, indent=1) + "\n")
