"""The bodies of ``gradbench run | status | ui``; the CLI only parses and calls these."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from bench import config
from bench.config import SuiteSpec


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = ("tasks", "models", "trials", "seeds", "steps", "device", "storage", "tracking_uri",
             "data_dir")
    out: dict[str, Any] = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    for key in ("tasks", "models"):
        if key in out:
            out[key] = [v.strip() for v in out[key].split(",") if v.strip()]
    if getattr(args, "set", None):
        out["set"] = list(args.set)
    return out


def load_suite_spec(args: argparse.Namespace, *, plugins: bool = True,
                    needs: tuple[str, ...] = ("storage", "tracking_uri")) -> SuiteSpec:
    """A config file, else the resolved config of a suite that ran, else a packaged one;
    ``--storage`` / ``--tracking-uri`` replace the recorded ones (which are masked).
    ``plugins=False``: the suite's plugins need not import here (see ``config.load``).
    ``needs``: the URLs the command uses, whose masked password it cannot do without."""
    from bench.run.suite import runs_root

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
    for key in needs:
        recorded = getattr(spec, key) or ""
        if "***" in recorded:
            env = os.environ.get("MLFLOW_TRACKING_URI") if key == "tracking_uri" else None
            if env and config.mask_secrets(env) == recorded:  # the environment it ran with
                spec = dataclasses.replace(spec, tracking_uri=env)
                continue
            flag = "--" + key.replace("_", "-")
            raise ValueError(f"suite {spec.name!r}: its recorded {key} URL has a masked "
                             f"password; pass {flag} with the full URL")
    return spec


NARROWING = ("tasks", "models")  # flags that run a subset; the whole suite is recorded


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
    from bench.cli.view import leaderboard_table, make_console
    from bench.run import pool
    from bench.run import suite as suites

    if args.workers < 1:
        raise ValueError(f"--workers: must be >= 1, got {args.workers}")
    start = time.perf_counter()
    console = make_console()
    spec = load_run_spec(args)  # a config error: one line, no worker started
    whole = _whole_suite(_config_path(args), _overrides(args), spec)
    suites.check_local_inputs(spec)  # the device, the data: likewise
    # The workers start once the config reads well, before this process imports MLflow,
    # checks the storage and the tracking server, and prepares the suite. Bad input found
    # meanwhile stops them before they get anything.
    workers = pool.WorkerPool(args.workers)
    with contextlib.ExitStack() as held:
        try:
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
                          f"{spec.final.seeds} seeds), {args.workers} worker(s); runs in "
                          f"{suite.run_dir}")
        stats = pool.RunStats()
        with _progress(console, suite, args) as progress:
            errors = workers.run(suite, lambda kind, p: (stats(kind, p), progress(kind, p)),
                                 verbose=bool(getattr(args, "verbose", False)))
        stats.save(suite.run_dir / pool.TIMINGS_FILE, wall_s=time.perf_counter() - start)
        rows = suites.leaderboard(suite)
    for task in dict.fromkeys(r["task"] for r in rows):
        console.print(leaderboard_table(rows, task))
    if not args.quiet:
        console.print(stats.summary())
    for note in stats.notes:
        console.print(f"[yellow]note:[/] {note}")
    if not args.quiet:
        console.print(f"wall time {time.perf_counter() - start:.0f} s; "
                      f"tracking: {config.mask_secrets(suite.tracking_uri)}")
    for error in errors:
        console.print(f"[red]error:[/] {error}")
    return 1 if errors else 0


def _checked_run_dir(spec: SuiteSpec, runs_dir: str | None) -> Path:
    """The suite's run directory, once the input checks pass (bad input: one line, nothing
    written). MLflow's and Optuna's logging is set up here: ``cli`` leaves that to ``run``,
    which starts its workers before importing them."""
    from bench import tracking, tuning
    from bench.run import suite as suites

    tracking.configure()
    tuning.configure()
    suites.check_remote_inputs(spec, runs_dir)
    run_dir = suites.run_dir_for(spec, runs_dir)
    suites.check_writable(run_dir)
    return run_dir


def load_run_spec(args: argparse.Namespace) -> SuiteSpec:
    """The suite ``run`` (and ``cost``) read: a config file or a packaged name, overridden."""
    return config.load(_config_path(args), _overrides(args))


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.suite) if Path(args.suite).exists() else config.resolve_config(args.suite)


def _progress(console: Any, suite: Any, args: argparse.Namespace) -> Any:
    """Bars on a terminal, plain lines in a log, nothing with ``--quiet``. Both count the
    whole suite's work: the runs done before, and other machines' on a shared storage."""
    from bench.cli.view import PlainProgress, SuiteProgress
    from bench.run import suite as suites

    if args.quiet:
        return contextlib.nullcontext(lambda kind, payload: None)
    done = suites.progress_snapshot(suite)
    per = suite.jobs_per_configuration()
    total = per * len(suite.configurations)
    refresh = None
    if not suite.embedded:  # other machines work on it too: read their runs now and then
        from bench import tuning

        storage = tuning.open_storage(suite.storage_url, suite.run_dir)
        refresh = lambda: suites.progress_snapshot(suite, storage)  # noqa: E731
    if console.is_terminal:
        return SuiteProgress(console, total, done, per, args.workers, refresh=refresh)
    return PlainProgress(console, total, done, refresh=refresh)


def status(args: argparse.Namespace) -> int:
    """``gradbench status``: per configuration, trials by outcome and final seeds."""
    from bench.cli.view import make_console, status_csv, status_json, status_table
    from bench.run import suite as suites

    spec = load_suite_spec(args, needs=("storage",))
    run_dir = suites.run_dir_for(spec, args.runs_dir)
    rows = suites.status_rows(spec, run_dir)
    if args.format == "json":
        print(status_json(spec.name, rows))
        return 0
    if args.format == "csv":
        print(status_csv(rows), end="")
        return 0
    console = make_console()
    if not rows:
        console.print(f"suite {spec.name!r} has not started (no studies in {run_dir})")
        return 0
    objective = "val metric" if spec.tuning.objective == "val_metric" else "val loss"
    console.print(status_table(rows, f"suite {spec.name}: {len(rows)} configurations",
                               objective))
    return 0


def ui(args: argparse.Namespace) -> int:
    """``gradbench ui``: the MLflow UI and optuna-dashboard on the suite, until Ctrl-C."""
    from bench.cli import serve
    from bench.run import suite as suites
    from bench.tracking import find_experiment_id, relocate_artifacts, resolve_uri

    spec = load_suite_spec(args, plugins=False, needs=())  # results, not the plugins' code
    run_dir = suites.run_dir_for(spec, args.runs_dir)
    uri = resolve_uri(spec.tracking_uri, run_dir)
    servers = []
    if uri.startswith("http"):
        print(f"suite {spec.name!r} is tracked on a server: open {config.mask_secrets(uri)}")
    elif uri.startswith("sqlite") and not (run_dir / "mlflow.db").exists():
        raise FileNotFoundError(f"no tracking store for suite {spec.name!r} at {run_dir}; "
                                f"run it first: gradbench run {args.suite}")
    else:
        relocate_artifacts(uri, spec.name, run_dir)  # a moved run directory's own files
        found = find_experiment_id(uri, spec.name)  # MLflow 3 opens on its GenAI view
        link = "/" if found is None else \
            f"/#/experiments/{found}/runs?workflowType=machine_learning"
        servers.append(serve.mlflow_server(uri, args.host, args.port, link))
    dashboard = _dashboard(spec, run_dir, args, port=args.dashboard_port)
    if dashboard is None:
        print(f"suite {spec.name!r} has no Optuna storage at {run_dir} yet: no dashboard")
    else:
        servers.append(dashboard)
    return serve.run_servers(servers) if servers else 0


def dashboard(args: argparse.Namespace) -> int:
    """``gradbench dashboard``: optuna-dashboard on the suite's Optuna storage."""
    from bench.run import suite as suites

    spec = load_suite_spec(args, plugins=False)
    run_dir = suites.run_dir_for(spec, args.runs_dir)
    server = _dashboard(spec, run_dir, args, port=args.port)
    if server is None:
        raise FileNotFoundError(f"no Optuna storage for suite {spec.name!r} at {run_dir}; "
                                f"run it first: gradbench run {args.suite}")
    from bench.cli import serve

    return serve.run_servers([server])


def _dashboard(spec: SuiteSpec, run_dir: Path, args: argparse.Namespace, *, port: int) -> Any:
    """optuna-dashboard's server for the suite, or None when its storage does not exist."""
    from bench import tuning
    from bench.cli import serve

    if not tuning.storage_exists(spec.storage, run_dir):
        return None
    return serve.dashboard_server(spec.storage, run_dir, args.host, port)


def report(args: argparse.Namespace) -> int:
    """``gradbench report``: the suite's runs from MLflow -> ``reports/<name>/index.html``."""
    from bench.report import build_report
    from bench.report.build import leaderboard_path
    from bench.report.results import ResultsSource

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
                        others=entries[1:], mlflow_url=args.mlflow_url)
    what = f"suite {names[0]!r}" if len(names) == 1 else f"suites {', '.join(names)}"
    print(f"report of {what}: {path} ({time.perf_counter() - start:.1f} s); "
          f"leaderboard table: {leaderboard_path(path)}")
    return 0


def _report_source(args: argparse.Namespace) -> tuple[str, str, Path | None, str | None]:
    """(tracking URI, experiment, run directory if any, Optuna storage URL) of the report."""
    from bench.run import suite as suites
    from bench.tracking import default_tracking_uri, resolve_uri

    if args.tracking_uri:
        path = Path(args.suite)
        if path.suffix in (".yaml", ".yml") or path.is_file():  # the suite the config names
            spec = config.load(path, {"tracking_uri": args.tracking_uri}, plugins=False)
            name, storage = spec.name, args.storage or spec.storage
        else:
            name, storage = args.suite, args.storage
        experiment = args.experiment or name
        run_dir = suites.runs_root(args.runs_dir) / name
        return args.tracking_uri, experiment, run_dir if run_dir.is_dir() else None, storage
    spec = load_suite_spec(args, plugins=False, needs=("tracking_uri",))  # not the plugins
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
    if url is not None and "***" in url:
        return None, ("the recorded Optuna storage URL hides its password; pass --storage URL "
                      "for hyperparameter importance")
    try:
        return tuning.open_storage(url, run_dir or Path(".")), ""
    except Exception as err:  # unreachable database, missing driver: the report goes on
        return None, f"the Optuna storage is unreachable ({config.mask_secrets(str(err))})"
