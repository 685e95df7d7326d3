"""The bodies of ``gradbench run | status | ui``; the CLI only parses and calls these."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import config
from bench.config import SuiteSpec


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = ("tasks", "models", "trials", "seeds", "steps", "device", "storage", "tracking_uri")
    out: dict[str, Any] = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    for key in ("tasks", "models"):
        if key in out:
            out[key] = [v.strip() for v in out[key].split(",") if v.strip()]
    if getattr(args, "set", None):
        out["set"] = list(args.set)
    return out


def load_suite_spec(args: argparse.Namespace, *, plugins: bool = True) -> SuiteSpec:
    """A config file, else the resolved config of a suite that ran, else a packaged one;
    ``--storage`` / ``--tracking-uri`` replace the recorded ones (which are masked).
    ``plugins=False``: the suite's plugins need not import here (see ``config.load``)."""
    from bench.suite import runs_root

    where = {k: getattr(args, k) for k in ("storage", "tracking_uri")
             if getattr(args, k, None) is not None}
    path = Path(args.suite)
    if path.suffix in (".yaml", ".yml") or path.exists():
        spec = config.load(path, where, plugins=plugins)
    elif (runs_root(args.runs_dir) / args.suite / "config.yaml").exists():
        spec = config.load(runs_root(args.runs_dir) / args.suite / "config.yaml", where,
                           plugins=plugins)
    else:
        spec = config.load(config.resolve_config(args.suite), where, plugins=plugins)
    for key in ("storage", "tracking_uri"):
        if "***" in (getattr(spec, key) or ""):
            flag = "--" + key.replace("_", "-")
            raise ValueError(f"suite {spec.name!r}: its recorded {key} URL has a masked "
                             f"password; pass {flag} with the full URL")
    return spec


def run(args: argparse.Namespace) -> int:
    """``gradbench run``: prepare, run the workers with progress bars, print the leaderboard."""
    from bench import pool
    from bench import suite as suites
    from bench.view import SuiteProgress, leaderboard_table, make_console

    if args.workers < 1:
        raise ValueError(f"--workers: must be >= 1, got {args.workers}")
    console = make_console()
    path = Path(args.suite) if Path(args.suite).exists() else config.resolve_config(args.suite)
    spec = config.load(path, _overrides(args))
    run_dir = suites.run_dir_for(spec, args.runs_dir)
    suites.check_writable(run_dir)
    start = time.perf_counter()
    with suites.run_lock(run_dir):
        workers = pool.WorkerPool(args.workers)  # their imports overlap with prepare
        try:
            suite = suites.prepare(spec, args.runs_dir)
        except BaseException:
            workers.cancel()
            raise
        suite.workers = args.workers
        for task, reason in suite.skipped.items():
            console.print(f"[yellow]skipped task {task}:[/] {reason}")
        done = suites.progress_snapshot(suite)
        per = suite.jobs_per_configuration()
        total = per * len(suite.configurations)
        console.print(f"suite [bold]{spec.name}[/]: {len(suite.configurations)} configurations x "
                      f"({spec.tuning.trials} trials + {spec.final.seeds} seeds), "
                      f"{args.workers} worker(s); runs in {suite.run_dir}")
        stats = pool.RunStats()
        with SuiteProgress(console, total, done, per, args.workers) as progress:
            errors = workers.run(suite, lambda kind, p: (stats(kind, p), progress(kind, p)))
        rows = suites.leaderboard(suite)
    for task in dict.fromkeys(r["task"] for r in rows):
        console.print(leaderboard_table(rows, task))
    console.print(stats.summary())
    console.print(f"wall time {time.perf_counter() - start:.0f} s; "
                  f"tracking: {config.mask_secrets(suite.tracking_uri)}")
    for error in errors:
        console.print(f"[red]error:[/] {error}")
    return 1 if errors else 0


def status(args: argparse.Namespace) -> int:
    """``gradbench status``: per configuration, trials by outcome and final seeds."""
    from bench import suite as suites
    from bench.view import make_console, status_table

    spec = load_suite_spec(args)
    run_dir = suites.run_dir_for(spec, args.runs_dir)
    rows = suites.status_rows(spec, run_dir)
    console = make_console()
    if not rows:
        console.print(f"suite {spec.name!r} has not started (no studies in {run_dir})")
        return 0
    console.print(status_table(rows, f"suite {spec.name}: {len(rows)} configurations"))
    return 0


def ui(args: argparse.Namespace) -> int:
    """``gradbench ui``: the MLflow UI on the suite's store, stopped cleanly on Ctrl-C."""
    from bench import suite as suites
    from bench.tracking import resolve_uri

    spec = load_suite_spec(args, plugins=False)  # results, not the plugins' code
    run_dir = suites.run_dir_for(spec, args.runs_dir)
    uri = resolve_uri(spec.tracking_uri, run_dir)
    if uri.startswith("http"):
        print(f"suite {spec.name!r} is tracked on a server: open {uri}")
        return 0
    if uri.startswith("sqlite") and not (run_dir / "mlflow.db").exists():
        raise FileNotFoundError(f"no tracking store for suite {spec.name!r} at {run_dir}; "
                                f"run it first: gradbench run {args.suite}")
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
           "--host", args.host, "--port", str(args.port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    print(f"MLflow UI for suite {spec.name!r}: {_ui_link(uri, spec.name, args)}  "
          f"(Ctrl-C stops it)")
    for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, _interrupt)  # also a `kill`, a closed terminal, a background job
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        _stop_group(proc)


def _interrupt(signum: int, frame: Any) -> None:
    """Any stop signal ends ``ui`` as Ctrl-C does, so that its server is stopped with it."""
    raise KeyboardInterrupt


def _ui_link(uri: str, experiment: str, args: argparse.Namespace) -> str:
    """The UI's page of the suite's runs (MLflow 3 opens on its GenAI view otherwise)."""
    from bench.tracking import find_experiment_id

    base = f"http://{args.host}:{args.port}"
    found = find_experiment_id(uri, experiment)
    if found is None:
        return base
    return f"{base}/#/experiments/{found}/runs?workflowType=machine_learning"


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop the server and every process it started (its own process group)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def report(args: argparse.Namespace) -> int:
    """``gradbench report``: the suite's runs from MLflow -> ``reports/<name>/index.html``."""
    from bench.report import build_report
    from bench.report.build import leaderboard_path
    from bench.results import ResultsSource

    start = time.perf_counter()
    entries, names = [], []
    for i, suite in enumerate([args.suite, *getattr(args, "others", [])]):
        # --experiment and --storage name the first suite's; the others use their own
        one = {**vars(args), "suite": suite} if i == 0 else \
            {**vars(args), "suite": suite, "experiment": None, "storage": None}
        uri, experiment, run_dir, storage_url = _report_source(argparse.Namespace(**one))
        storage, note = _report_storage(storage_url, run_dir)
        entries.append((ResultsSource(uri, experiment), storage, note))
        names.append(experiment)
    out = Path(args.out) if args.out else Path("reports") / "-vs-".join(names)
    if out.suffix.lower() not in (".html", ".htm"):
        out = out / "index.html"
    path = build_report(entries[0][0], out, storage=entries[0][1], storage_note=entries[0][2],
                        others=entries[1:])
    what = f"suite {names[0]!r}" if len(names) == 1 else f"suites {', '.join(names)}"
    print(f"report of {what}: {path} ({time.perf_counter() - start:.1f} s); "
          f"leaderboard table: {leaderboard_path(path)}")
    return 0


def _report_source(args: argparse.Namespace) -> tuple[str, str, Path | None, str | None]:
    """(tracking URI, experiment, run directory if any, Optuna storage URL) of the report."""
    from bench import suite as suites
    from bench.tracking import default_tracking_uri, resolve_uri

    if args.tracking_uri:
        experiment = args.experiment or args.suite
        run_dir = suites.runs_root(args.runs_dir) / experiment
        return args.tracking_uri, experiment, run_dir if run_dir.is_dir() else None, \
            args.storage
    spec = load_suite_spec(args, plugins=False)  # results, not the plugins' code
    run_dir = suites.run_dir_for(spec, args.runs_dir)
    uri = resolve_uri(spec.tracking_uri, run_dir)
    if uri == default_tracking_uri(run_dir) and not (run_dir / "mlflow.db").exists():
        raise FileNotFoundError(f"no tracking store for suite {spec.name!r} at {run_dir}; "
                                f"run it first: gradbench run {args.suite}")
    return uri, args.experiment or spec.name, run_dir, args.storage or spec.storage


def _report_storage(url: str | None, run_dir: Path | None) -> tuple[Any, str]:
    """The suite's Optuna storage (never created here), or None and the reason."""
    from bench import tuning

    if url is None and (run_dir is None or not (run_dir / "optuna.journal").exists()):
        return None, "no Optuna storage found for this suite (pass --storage URL)"
    try:
        return tuning.open_storage(url, run_dir or Path(".")), ""
    except Exception as err:  # unreachable database, missing driver: the report goes on
        return None, f"the Optuna storage is unreachable ({config.mask_secrets(str(err))})"
