"""The bodies of ``gradbench status | ui | dashboard``; the CLI only parses and calls these.

``gradbench run`` is ``run_suite``'s, ``gradbench report`` ``report_page``'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import re
import urllib.parse
from pathlib import Path
from typing import Any

from bench import config, tuning
from bench.cli import serve
from bench.cli.view import make_console, status_csv, status_json, status_table
from bench.config import SuiteSpec
from bench.errors import mask_secrets
from bench.links import mlflow_runs_path
from bench.names import RUNS_VIEW_TAG
from bench.run.inputs import run_dir_for, runs_root
from bench.run.suite import status_rows
from bench.tracking import find_experiment, relocate_artifacts, resolve_uri


def load_suite_spec(args: argparse.Namespace, *, plugins: bool = True,
                    needs: tuple[str, ...] = ("storage", "tracking_uri")) -> SuiteSpec:
    """A config file, else the resolved config of a suite that ran, else a packaged one;
    ``--storage`` / ``--tracking-uri`` replace the recorded ones (which are masked).
    ``plugins=False``: the suite's plugins need not import here (see ``config.load``).
    ``needs``: the URLs the command uses, whose masked password it cannot do without."""
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
            if env and mask_secrets(env) == recorded:  # the environment it ran with
                spec = dataclasses.replace(spec, tracking_uri=env)
                continue
            if key == "storage" and _password_at_hand(recorded):  # PGPASSWORD, ~/.pgpass
                spec = dataclasses.replace(spec, storage=recorded.replace(":***@", "@", 1))
                continue
            raise ValueError(_masked(spec.name, key, recorded))
    return spec


def _masked(name: str, key: str, recorded: str) -> str:
    """What to pass for a recorded URL whose password is masked, in one line."""
    flag = "--" + key.replace("_", "-")
    line = f"suite {name!r}: its recorded {key} URL has a masked password; pass {flag} " \
           f"with the full URL"
    parts = urllib.parse.urlsplit(recorded)
    if key != "storage" or not parts.scheme.startswith("postgresql"):
        return line
    user, db = parts.username or "", parts.path.lstrip("/")
    return (f"{line}, or the password of {user!r} in PGPASSWORD or a ~/.pgpass line "
            f"{parts.hostname or 'localhost'}:{parts.port or 5432}:{db}:{user}:PASSWORD")


def _password_at_hand(url: str) -> bool:
    """Whether libpq finds the password of a PostgreSQL ``url`` without it: in
    ``PGPASSWORD``, or on a matching line of the password file (``PGPASSFILE``, else
    ``~/.pgpass``; ``*`` matches anything, ``\\:`` is a colon)."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme.startswith("postgresql"):
        return False
    if os.environ.get("PGPASSWORD"):
        return True
    path = Path(os.environ.get("PGPASSFILE") or Path.home() / ".pgpass")
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return False
    wanted = [parts.hostname or "localhost", str(parts.port or 5432), parts.path.lstrip("/"),
              parts.username or ""]
    for line in lines:
        fields = [f.replace("\\:", ":") for f in re.split(r"(?<!\\):", line.strip())]
        if len(fields) == 5 and not line.startswith("#") and all(
                f in ("*", w) for f, w in zip(fields[:4], wanted, strict=True)):
            return True
    return False


def status(args: argparse.Namespace) -> int:
    """``gradbench status``: per configuration, trials by outcome and final seeds."""
    spec = load_suite_spec(args, needs=("storage",))
    run_dir = run_dir_for(spec, args.runs_dir)
    rows = status_rows(spec, run_dir)
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
    spec = load_suite_spec(args, plugins=False, needs=())  # results, not the plugins' code
    run_dir = run_dir_for(spec, args.runs_dir)
    uri = resolve_uri(spec.tracking_uri, run_dir)
    servers = []
    if uri.startswith("http"):
        print(f"suite {spec.name!r} is tracked on a server: open {mask_secrets(uri)}")
    elif uri.startswith("sqlite") and not (run_dir / "mlflow.db").exists():
        raise FileNotFoundError(f"no tracking store for suite {spec.name!r} at {run_dir}; "
                                f"run it first: gradbench run {args.suite}")
    else:
        relocate_artifacts(uri, spec.name, run_dir)  # a moved run directory's own files
        found = find_experiment(uri, spec.name)  # MLflow 3 opens on its GenAI view
        link = "/" if found is None else \
            mlflow_runs_path(found[0], view=RUNS_VIEW_TAG in found[1])
        servers.append(serve.mlflow_server(uri, args.host, args.port, link))
    dashboard = _dashboard(spec, run_dir, args, port=args.dashboard_port)
    if dashboard is None:
        print(f"suite {spec.name!r} has no Optuna storage at {run_dir} yet: no dashboard")
    else:
        servers.append(dashboard)
    follow = None  # the runs' links to optuna-dashboard take the port it gets
    if dashboard is not None and not uri.startswith("http"):
        follow = functools.partial(serve.link_dashboard, spec, run_dir, uri, dashboard)
    return serve.run_servers(servers, on_ports=follow) if servers else 0


def dashboard(args: argparse.Namespace) -> int:
    """``gradbench dashboard``: optuna-dashboard on the suite's Optuna storage."""
    spec = load_suite_spec(args, plugins=False)
    run_dir = run_dir_for(spec, args.runs_dir)
    server = _dashboard(spec, run_dir, args, port=args.port)
    if server is None:
        raise FileNotFoundError(f"no Optuna storage for suite {spec.name!r} at {run_dir}; "
                                f"run it first: gradbench run {args.suite}")
    return serve.run_servers([server])


def _dashboard(spec: SuiteSpec, run_dir: Path, args: argparse.Namespace, *, port: int) -> Any:
    """optuna-dashboard's server for the suite, or None when its storage does not exist."""
    if not tuning.storage_exists(spec.storage, run_dir):
        return None
    return serve.dashboard_server(spec.storage, run_dir, args.host, port)
