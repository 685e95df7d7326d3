"""``gradbench report``: a suite's runs read back from MLflow, written as one HTML page.

Its own module, apart from ``commands``: the report's modules import pandas and matplotlib,
which ``status``, ``ui`` and ``dashboard`` do without.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from bench import config, tuning
from bench.cli.commands import load_suite_spec
from bench.errors import DamagedStore, error_line, mask_secrets
from bench.report import build_report
from bench.report.build import leaderboard_path
from bench.report.results import ResultsSource
from bench.run.inputs import run_dir_for, runs_root
from bench.tracking import default_tracking_uri, log_report, relocate_artifacts, resolve_uri


def report(args: argparse.Namespace) -> int:
    """``gradbench report``: the suite's runs from MLflow -> ``reports/<name>/index.html``."""
    start = time.perf_counter()
    entries, names, run_dirs = [], [], []
    for i, suite in enumerate([args.suite, *getattr(args, "others", [])]):
        # --experiment and --storage name the first suite's; the others use their own
        one = {**vars(args), "suite": suite} if i == 0 else \
            {**vars(args), "suite": suite, "experiment": None, "storage": None}
        uri, experiment, run_dir, storage_url = _report_source(argparse.Namespace(**one))
        storage, note = _report_storage(storage_url, run_dir)
        entries.append((ResultsSource(uri, experiment), storage, note))
        names.append(experiment)
        run_dirs.append(run_dir)
    out = Path(args.out) if args.out else Path("reports") / "-vs-".join(names)
    if out.suffix.lower() not in (".html", ".htm"):
        out = out / "index.html"
    path = build_report(entries[0][0], out, storage=entries[0][1], storage_note=entries[0][2],
                        others=entries[1:], mlflow_url=args.mlflow_url)
    what = f"suite {names[0]!r}" if len(names) == 1 else f"suites {', '.join(names)}"
    print(f"report of {what}: {path} ({time.perf_counter() - start:.1f} s); "
          f"leaderboard table: {leaderboard_path(path)}")
    if len(names) == 1:  # a page of several suites belongs to none of their experiments
        _log_to_mlflow(entries[0][0], run_dirs[0], report_files(path, since=start))
    return 0


def _log_to_mlflow(source: ResultsSource, run_dir: Path | None, files: dict[str, Path]) -> None:
    """The report as the suite experiment's ``report`` run; a store that takes no writes
    (read-only, say) leaves the page written and says so in one line."""
    try:
        if run_dir is not None:  # a moved run directory: the report's files go in it
            relocate_artifacts(source.uri, source.experiment, run_dir)
        run_id = log_report(source.uri, source.experiment, files)
    except Exception as err:
        print(f"gradbench: the report was not logged to MLflow: {error_line(err)}",
              file=sys.stderr)
        return
    print(f"in MLflow: run 'report' ({run_id}) of experiment {source.experiment!r}, "
          f"artifact report/index.html (`gradbench ui` opens it)")


def report_files(page: Path, since: float) -> dict[str, Path]:
    """The files a report wrote, by their path in its folder: the page (as ``index.html``),
    its leaderboard table and the figures (PNG, CSV) written since ``since`` (a
    ``time.perf_counter`` mark; files of an earlier report in the same folder are left)."""
    written = time.time() - (time.perf_counter() - since)
    files = {"index.html": page, "leaderboard.csv": leaderboard_path(page)}
    figures = page.parent / "figures"
    if figures.is_dir():
        files.update((f"figures/{f.name}", f) for f in sorted(figures.iterdir())
                     if f.is_file() and f.stat().st_mtime >= written - 1)
    return files


def _report_source(args: argparse.Namespace) -> tuple[str, str, Path | None, str | None]:
    """(tracking URI, experiment, run directory if any, Optuna storage URL) of the report."""
    if args.tracking_uri:
        path = Path(args.suite)
        if path.suffix in (".yaml", ".yml") or path.is_file():  # the suite the config names
            spec = config.load(path, {"tracking_uri": args.tracking_uri}, plugins=False)
            name, storage = spec.name, args.storage or spec.storage
        else:
            name, storage = args.suite, args.storage
        experiment = args.experiment or name
        run_dir = runs_root(args.runs_dir) / name
        return args.tracking_uri, experiment, run_dir if run_dir.is_dir() else None, storage
    spec = load_suite_spec(args, plugins=False, needs=("tracking_uri",))  # not the plugins
    run_dir = run_dir_for(spec, args.runs_dir)
    uri = resolve_uri(spec.tracking_uri, run_dir)
    if uri == default_tracking_uri(run_dir) and not (run_dir / "mlflow.db").exists():
        raise FileNotFoundError(f"no tracking store for suite {spec.name!r} at {run_dir}; "
                                f"run it first: gradbench run {args.suite}")
    return uri, args.experiment or spec.name, run_dir, args.storage or spec.storage


def _report_storage(url: str | None, run_dir: Path | None) -> tuple[Any, str]:
    """The suite's Optuna storage (never created here), or None and the reason."""
    if url is None and (run_dir is None or not (run_dir / "optuna.journal").exists()):
        return None, "no Optuna storage found for this suite (pass --storage URL)"
    if url is not None and "***" in url:
        return None, ("the recorded Optuna storage URL hides its password; pass --storage URL "
                      "for hyperparameter importance")
    try:
        return tuning.open_storage(url, run_dir or Path(".")), ""
    except DamagedStore:  # not a note: a store that cannot be read stops the command
        raise
    except Exception as err:  # unreachable database, missing driver: the report goes on
        return None, f"the Optuna storage is unreachable ({mask_secrets(str(err))})"
