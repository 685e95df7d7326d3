"""``gradbench``: the command line. Parses, then calls; heavy imports stay inside commands."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import bench
from bench.errors import DamagedStore, full_disk, full_disk_line, mask_secrets
from bench.links import DASHBOARD_PORT, MLFLOW_PORT


class _Help(argparse.HelpFormatter):
    """Every option's help ends with its default: the value, or what the help text says."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or action.default is argparse.SUPPRESS or \
                not action.option_strings or action.default is None or action.default == []:
            return text
        if action.default is False and action.nargs == 0:  # a flag
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


def _add(sub: argparse._SubParsersAction, name: str, **kwargs: object) -> argparse.ArgumentParser:
    p = sub.add_parser(name, formatter_class=_Help, **kwargs)  # type: ignore[arg-type]
    p.add_argument("--verbose", action="store_true", help="show Optuna's and MLflow's "
                   "warnings, and full tracebacks of unexpected errors (default: off)")
    return p


def packaged_suites() -> list[str]:
    """The suite names shipped in the package (read from its folder: nothing is imported)."""
    return sorted(p.stem for p in (Path(bench.__file__).parent / "configs").glob("*.yaml"))


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = _add(
        sub, "train",
        help="train one model on one task and print its curve and gradient summary",
        description="Train one configuration once (no tuning, no tracking): a quick look.",
    )
    p.add_argument("--task", default="adding", help="a task of the registry (adding, copy, "
                   "har, ...) or a plugin package.module:attribute (default: adding)")
    p.add_argument("--seq-len", type=int, default=50, help="T of a task with a sequence length")
    p.add_argument("--model", default="lstm", help="a model of the registry (rnn, lstm, ...; "
                   "see the README) or a plugin package.module:attribute (default: lstm)")
    p.add_argument("--steps", type=int, default=600, help="training steps")
    p.add_argument("--batch-size", type=int, default=64, help="sequences per step")
    p.add_argument("--lr", type=float, default=3e-3, help="learning rate")
    p.add_argument("--optimizer", default="adam", choices=["adam", "sgd", "rmsprop"],
                   help="adam, sgd (momentum 0.9) or rmsprop (default: adam)")
    p.add_argument("--warmup-steps", type=int, default=0,
                   help="raise the learning rate linearly over this many steps (0: none)")
    p.add_argument("--stop-when-solved", action="store_true",
                   help="end once the validation metrics met the solved rule at two "
                        "evaluations in a row")
    p.add_argument("--l2", type=float, default=0.0, help="L2 penalty lambda (0: none)")
    p.add_argument("--clip", type=float, default=0.0, help="clip the global norm at tau (0: none)")
    p.add_argument("--regularization", default=None, help="a regularization remedy by name "
                   "or package.module:attribute (default: l2 with --l2, else none)")
    p.add_argument("--clipping", default=None, help="a clipping remedy by name or "
                   "package.module:attribute (default: norm with --clip, else none)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a remedy's parameter, e.g. --param clip=0.5 (repeatable; default: none)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--param-budget", type=int, default=None,
                      help="parameters of the model (default: the suites' 10,000)")
    size.add_argument("--hidden-size", type=int, default=None,
                      help="hidden units instead of a budget (default: from --param-budget)")
    p.add_argument("--eval-every", type=int, default=50, help="steps between evaluations")
    p.add_argument("--data-dir", default=None, help="a task's data (HAR: zip or extracted "
                   "directory; default: $GRADBENCH_DATA_DIR or ~/.cache/gradbench)")
    p.add_argument("--seed", type=int, default=0, help="the run's seed")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from bench.cli.train_one import run_one  # lazy, as every command's: --help stays fast

    return run_one(args)


def _suite_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("suite", nargs="?", default="default", metavar="SUITE",
                   help=f"{what}: a config file or a suite name (default: default)")
    p.add_argument("--runs-dir", default=None,
                   help="where suites live (default: $GRADBENCH_HOME or ./runs)")


def _grid_args(p: argparse.ArgumentParser) -> None:
    """The overrides of a suite's grid (``run`` and ``cost``)."""
    p.add_argument("--tasks", help="only these tasks, comma separated (e.g. adding,copy; "
                   "default: the config's)")
    p.add_argument("--models", help="only these models, comma separated (e.g. lstm,gru; "
                   "default: the config's)")
    p.add_argument("--trials", type=int, help="trials per configuration (default: the "
                   "config's tuning.trials)")
    p.add_argument("--seeds", type=int, help="final seeds per configuration (default: the "
                   "config's final.seeds)")
    p.add_argument("--steps", type=int, help="training steps of every run: sets "
                   "training.steps and replaces each task's own steps (tasks.NAME.steps); "
                   "without it a task's steps win over training.steps (default: the config's)")
    p.add_argument("--data-dir", help="where tasks that read data find them (HAR: the "
                   "archive or its folder; default: the config's tasks.har.data_dir)")
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override any config key, e.g. --set training.batch_size=32 "
                   "(repeatable; default: none)")


def _run_parser(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "run", help="run or resume a suite: tune, re-run with seeds, track",
             description="Run (or resume) a suite: every configuration is tuned "
             "with Optuna on the same budget, its best parameters re-trained with "
             "fresh seeds; everything is recorded in MLflow.",
             epilog=f"packaged suites: {', '.join(packaged_suites())}")
    _suite_arg(p, "the suite to run")
    _grid_args(p)
    p.add_argument("--workers", type=int, default=None, help="local worker processes, one "
                   "torch thread each (default: one per core, no more than free memory holds "
                   "at about 1 GiB a worker, and on a GPU machine one per CUDA device)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default: the config's, auto)")
    p.add_argument("--storage", help="Optuna storage URL (default: a file under the run dir)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite in the run "
                   "dir; also MLFLOW_TRACKING_URI)")
    p.add_argument("--dry-run", action="store_true", help="print the grid (configurations, "
                   "runs, steps) and its cost estimate, write nothing (default: off)")
    p.add_argument("--quiet", action="store_true", help="no progress and no run statistics: "
                   "only the leaderboards and errors (default: off)")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    if args.dry_run:
        from bench.cli.cost import dry_run  # lazy: --help stays fast (torch)

        return dry_run(args)
    from bench.cli.run_suite import run  # lazy: --help stays fast

    return run(args)


def _cost_parser(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "cost", help="estimate what a suite will cost, timing its models here",
             description="Time a few training steps of each model of a suite on this machine "
             "and multiply by the suite's budget: core-hours of training, and wall time for "
             "N workers. Writes nothing.",
             epilog=f"packaged suites: {', '.join(packaged_suites())}")
    _suite_arg(p, "the suite to estimate")
    _grid_args(p)
    p.add_argument("--workers", type=int, default=None, help="workers the wall time is for "
                   "(default: what gradbench run would start here: one per core, capped by "
                   "free memory and CUDA devices)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N: where to time")
    p.add_argument("--timed-steps", type=int, default=10, help="timed steps per model")
    p.set_defaults(func=_cmd_cost)


def _cmd_cost(args: argparse.Namespace) -> int:
    from bench.cli.cost import cost  # lazy: --help stays fast (torch)

    return cost(args)


def _where_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", help="Optuna storage URL (default: the one recorded for the "
                   "suite)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: the one recorded)")


def _status_parser(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "status", help="per-configuration progress of a suite")
    _suite_arg(p, "the suite")
    _where_args(p)
    p.add_argument("--format", choices=("table", "json", "csv"), default="table",
                   help="a table for people, or JSON / CSV for scripts")
    p.add_argument("--json", dest="format", action="store_const", const="json",
                   help="the same as --format json (default: off)")
    p.set_defaults(func=_cmd_status)


def _cmd_status(args: argparse.Namespace) -> int:
    from bench.cli.commands import status  # lazy: --help stays fast (MLflow, Optuna)

    return status(args)


def _ranges_parser(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "ranges", help="where each model learns on a grid of rates (a suite run "
             "with the grid sampler, e.g. lr-range)")
    _suite_arg(p, "the suite")
    _where_args(p)
    p.add_argument("--param", default="lr", help="the searched parameter whose grid is read")
    p.set_defaults(func=_cmd_ranges)


def _cmd_ranges(args: argparse.Namespace) -> int:
    from bench.cli.ranges import ranges  # lazy: --help stays fast (torch, Optuna)

    return ranges(args)


def _ui_parser(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "ui", help="the MLflow UI and optuna-dashboard on a suite, side by side",
             description="Serve the MLflow UI on the suite's tracking store and "
             "optuna-dashboard on its Optuna storage; Ctrl-C stops both. A port in use "
             "is replaced by the next free one.")
    _suite_arg(p, "the suite")
    _where_args(p)
    p.add_argument("--host", default="127.0.0.1", help="bind address")
    p.add_argument("--port", type=int, default=MLFLOW_PORT, help="the MLflow UI's port")
    p.add_argument("--dashboard-port", type=int, default=DASHBOARD_PORT,
                   help="optuna-dashboard's port")
    p.set_defaults(func=_cmd_ui)


def _cmd_ui(args: argparse.Namespace) -> int:
    from bench.cli.commands import ui  # lazy: --help stays fast (MLflow, Optuna)

    return ui(args)


def _dashboard_parser(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "dashboard", help="optuna-dashboard on a suite's Optuna storage",
             description="Serve optuna-dashboard on the suite's Optuna storage (its journal "
             "file, or --storage); Ctrl-C stops it. A port in use is replaced by the next "
             "free one.")
    _suite_arg(p, "the suite")
    p.add_argument("--storage", help="Optuna storage URL (default: the one recorded for the "
                   "suite)")
    p.add_argument("--host", default="127.0.0.1", help="bind address")
    p.add_argument("--port", type=int, default=DASHBOARD_PORT, help="the dashboard's port")
    p.set_defaults(func=_cmd_dashboard)


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from bench.cli.commands import dashboard  # lazy: --help stays fast (MLflow, Optuna)

    return dashboard(args)


def _report_parser(sub: argparse._SubParsersAction) -> None:
    p = _add(sub, "report", help="write the comparative HTML report of a suite",
             description="Read a suite's runs back from MLflow and write one "
             "self-contained HTML page (reports/<name>/index.html): leaderboards, "
             "gradient pictures, tuning, significance.")
    _suite_arg(p, "the suite to report on")
    p.add_argument("others", nargs="*", metavar="MORE",
                   help="more suites (config files or names) side by side on the same page "
                   "(default: none)")
    p.add_argument("--tracking-uri", help="read from this MLflow tracking URI (default: the "
                   "suite's recorded store)")
    p.add_argument("--experiment", help="the MLflow experiment (default: the suite name)")
    p.add_argument("--storage", help="Optuna storage URL, for hyperparameter importance "
                   "(default: the suite's)")
    p.add_argument("--out", help="the .html file or folder to write (default: "
                   "reports/<name>/index.html)")
    p.add_argument("--mlflow-url", help="the MLflow UI serving the suite's store (e.g. "
                   "http://127.0.0.1:5000, what `gradbench ui` prints): leaderboard rows and "
                   "figures link to their runs there (default: no links)")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from bench.cli.report_page import report  # lazy: --help stays fast (pandas, MLflow)

    return report(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradbench", formatter_class=_Help,
        description="rnn-gradbench: gradients of recurrent networks on long-range tasks.",
    )
    parser.add_argument("--version", action="version",
                        version=f"gradbench {bench.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _run_parser, _status_parser, _report_parser, _ui_parser, _dashboard_parser, _cost_parser,
    _ranges_parser, _train_parser]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gradbench`` console script."""
    args = build_parser().parse_args(argv)
    before = os.environ.get("GRADBENCH_VERBOSE")
    if args.verbose:
        os.environ["GRADBENCH_VERBOSE"] = "1"  # the worker processes inherit it
    try:
        _configure(args.command)
        return int(args.func(args))
    except KeyboardInterrupt:
        print("gradbench: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.verbose:
            sys.stderr.write(mask_secrets(traceback.format_exc()))  # no password
        line, code = _explained(err, verbose=args.verbose)
        print(f"gradbench: {line}", file=sys.stderr)
        return code
    finally:  # a caller in the same process (a test, a notebook) keeps its environment
        if before is None:
            os.environ.pop("GRADBENCH_VERBOSE", None)
        else:
            os.environ["GRADBENCH_VERBOSE"] = before


# Errors a user can act on, said in one line with exit status 2: bad input (ValueError,
# ConfigError), a missing or unwritable place, a store that is unreachable
# (StorageUnavailable, TrackingUnavailable: RuntimeErrors) or damaged (DamagedStore: the
# file, what is wrong and the way out, raised by the stage that reads it).
KNOWN_ERRORS = (ValueError, FileNotFoundError, PermissionError, RuntimeError, DamagedStore)


def _explained(err: Exception, *, verbose: bool) -> tuple[str, int]:
    """The line that reports ``err`` (after ``gradbench: ``) and the exit status: a full
    disk (1, as a run that stopped on it: the suite resumes once space is freed), a known
    error (2), else an unexpected one (1: a bug, not bad input)."""
    if full_disk(err):
        return f"error: {full_disk_line(err)}", 1
    if isinstance(err, KNOWN_ERRORS):
        return f"error: {mask_secrets(str(err))}", 2
    return (f"unexpected error: {type(err).__name__}: {mask_secrets(str(err))}"
            + ("" if verbose else " (--verbose shows the traceback)"), 1)


def _configure(command: str) -> None:
    """Quiet the libraries a command uses (explicit set-up, nothing at import time); ``run``
    does it itself, after starting its workers (``run_suite.run``)."""
    if command in ("status", "report", "ui", "dashboard", "ranges"):
        from bench import tracking, tuning  # lazy: --help stays fast (MLflow, Optuna)

        tracking.configure()
        tuning.configure()


def script() -> None:
    """The ``gradbench`` command: ``main``, then a quick exit.

    Tearing the interpreter down walks every object that torch, MLflow and SQLAlchemy
    made: about a second per process. Everything is written and closed by now, so the
    objects are frozen (left out of that last collection) and the process just ends.
    """
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    script()
