"""``gradbench run``: check the input, start the workers, prepare the suite, show progress.

The workers start as soon as the config reads well and this machine's input checks pass
(``bench.run.inputs``); this process imports MLflow and Optuna (``bench.run.suite``) only
then, while the workers' fork server imports them too: those few imports stay inside the
functions that run after the workers start.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import config
from bench.cli.view import PlainProgress, SuiteProgress, leaderboard_table, make_console
from bench.cli.workers import resolve_workers
from bench.config import SuiteSpec
from bench.errors import mask_secrets
from bench.run import pool
from bench.run.inputs import check_local_inputs, check_writable, run_dir_for

NARROWING = ("tasks", "models")  # flags that run a subset; the whole suite is recorded
OnEvent = Callable[[str, dict[str, Any]], None]  # (kind, payload) of a worker's progress


def _whole_suite(path: Path, overrides: dict[str, Any], spec: SuiteSpec) -> SuiteSpec | None:
    """The suite without ``--tasks`` / ``--models`` (None: they are not given), plus any
    task or model they name that the file lacks."""
    if not any(key in overrides for key in NARROWING):
        return None
    whole = config.load(path, {k: v for k, v in overrides.items() if k not in NARROWING})
    known = {name for name, _ in whole.tasks}
    return dataclasses.replace(
        whole, tasks=whole.tasks + tuple(t for t in spec.tasks if t[0] not in known),
        models=tuple(dict.fromkeys((*whole.models, *spec.models))))


def run(args: argparse.Namespace) -> int:
    """``gradbench run``: prepare, run the workers with progress bars, print the leaderboard."""
    start = time.perf_counter()
    console = make_console()
    spec = config.load_args(args)  # a config error: one line, no worker started
    why = resolve_workers(args, spec.device)
    whole = _whole_suite(config.suite_path(args.suite), config.cli_overrides(args), spec)
    check_local_inputs(spec)  # the device, the data: likewise
    # The workers start once the config reads well, before this process imports MLflow,
    # checks the storage and the tracking server, and prepares the suite. Bad input found
    # meanwhile stops them before they get anything.
    workers = pool.WorkerPool(args.workers)
    with contextlib.ExitStack() as held:
        try:
            from bench.run import suite as suites  # lazy: MLflow, Optuna once workers start

            run_dir = _checked_run_dir(spec, args.runs_dir)
            held.enter_context(suites.run_lock(run_dir))
            suite = suites.prepare(spec, args.runs_dir, whole)
        except BaseException:
            workers.cancel()
            raise
        suite.workers = args.workers
        for task, reason in suite.skipped.items():
            console.print(f"[yellow]skipped task {task}:[/] {reason}")
        if not args.quiet:
            console.print(f"suite [bold]{spec.name}[/]: {len(suite.configurations)} "
                          f"configurations x ({spec.tuning.trials} trials + "
                          f"{spec.final.seeds} seeds), {args.workers} worker(s){why}; runs in "
                          f"{suite.run_dir}")
        stats = pool.RunStats()
        with _progress(console, suite, args) as progress:
            errors = workers.run(suite, _each(stats, progress),
                                 verbose=bool(getattr(args, "verbose", False)))
        stats.save(suite.run_dir / pool.TIMINGS_FILE, wall_s=time.perf_counter() - start)
        rows = suites.leaderboard(suite)
    for task in dict.fromkeys(r["task"] for r in rows):
        console.print(leaderboard_table(rows, task))
    if not args.quiet:
        console.print(stats.summary())
    for note in stats.notes:
        console.print(f"[yellow]note:[/] {note}")
    for error in errors:
        console.print(f"[red]error:[/] {error}")
    if not args.quiet:
        console.print(f"wall time {time.perf_counter() - start:.0f} s; "
                      f"tracking: {mask_secrets(suite.tracking_uri)}")
        console.print(next_steps(args, spec.name), highlight=False, markup=False, soft_wrap=True)
    return 1 if errors else 0


def next_steps(args: argparse.Namespace, name: str) -> str:
    """What to do with the results: the report and the UI on this suite, with the same
    suite, run directory and stores as this command (passwords masked). A suite renamed
    with ``--set name=...`` is named by its new name: its run directory holds the config
    it ran with, overrides included."""
    renamed = any(item.split("=", 1)[0].strip() == "name" for item in args.set or [])
    where = [name] if renamed else [args.suite] if args.suite else []
    for flag, value in (("--runs-dir", args.runs_dir), ("--tracking-uri", args.tracking_uri),
                        ("--storage", args.storage)):
        if value:
            where += [flag, mask_secrets(str(value))]
    tail = "".join(f" {shlex.quote(str(w))}" for w in where)
    return (f"next: the HTML report, and the MLflow UI with optuna-dashboard:\n"
            f"  gradbench report{tail}\n  gradbench ui{tail}")


def _each(*handlers: OnEvent) -> OnEvent:
    """One handler of the workers' events that hands each to every one of ``handlers``."""

    def handle(kind: str, payload: dict[str, Any]) -> None:
        for handler in handlers:
            handler(kind, payload)

    return handle


def _checked_run_dir(spec: SuiteSpec, runs_dir: str | None) -> Path:
    """The suite's run directory, once the input checks pass (bad input: one line, nothing
    written). MLflow's and Optuna's logging is set up here: ``cli`` leaves that to ``run``,
    which starts its workers before importing them."""
    # lazy: MLflow and Optuna, imported once the workers start (see ``run``)
    from bench import tracking, tuning
    from bench.run import suite as suites

    tracking.configure()
    tuning.configure()
    suites.check_remote_inputs(spec, runs_dir)
    run_dir = run_dir_for(spec, runs_dir)
    check_writable(run_dir)
    return run_dir


def _progress(console: Any, suite: Any, args: argparse.Namespace) -> Any:
    """Bars on a terminal, plain lines in a log, nothing with ``--quiet``. Both count the
    whole suite's work: the runs done before, and other machines' on a shared storage."""
    # lazy: MLflow and Optuna, imported once the workers start (see ``run``)
    from bench import tuning
    from bench.run import suite as suites

    if args.quiet:
        return contextlib.nullcontext(lambda kind, payload: None)
    done = suites.progress_snapshot(suite)
    per = suite.jobs_per_configuration()
    total = per * len(suite.configurations)
    refresh = None
    if not suite.embedded:  # other machines work on it too: read their runs now and then
        storage = tuning.open_storage(suite.storage_url, suite.run_dir, wait=True)

        def refresh() -> dict[str, int]:  # a database restarting: the counts wait
            try:
                return suites.progress_snapshot(suite, storage)
            except Exception:  # noqa: BLE001 - the bars only; the workers say what fails
                return {}
    if console.is_terminal:
        return SuiteProgress(console, total, done, per, args.workers, refresh=refresh)
    return PlainProgress(console, total, done, refresh=refresh)
