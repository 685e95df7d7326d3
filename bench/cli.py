"""``gradbench``: the command line. Parses, then calls; heavy imports stay inside commands."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Sequence


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one model on one task and print its curve and gradient summary",
        description="Train one configuration once (no tuning, no tracking): a quick look.",
    )
    p.add_argument("--task", default="adding", help="a task of the registry (adding, copy, "
                   "har, ...) or a plugin package.module:attribute (default: adding)")
    p.add_argument("--seq-len", type=int, default=50, help="T for adding/copy (default: 50)")
    p.add_argument("--model", default="lstm", help="a model of the registry (rnn, lstm, ...; "
                   "see the README) or a plugin package.module:attribute (default: lstm)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
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
                   help="a remedy's parameter, e.g. --param clip=0.5 (repeatable)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--param-budget", type=int, default=None)
    size.add_argument("--hidden-size", type=int, default=None)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--data-dir", default=None, help="HAR: zip or extracted directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from bench.demo import run_one

    return run_one(args)


def _suite_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("suite", nargs="?", default="default", metavar="SUITE",
                   help=f"{what}: a config file or a suite name (default: default)")
    p.add_argument("--runs-dir", default=None,
                   help="where suites live (default: $GRADBENCH_HOME or ./runs)")


def _run_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run or resume a suite: tune, re-run with seeds, track",
                       description="Run (or resume) a suite: every configuration is tuned "
                       "with Optuna on the same budget, its best parameters re-trained with "
                       "fresh seeds; everything is recorded in MLflow.")
    _suite_arg(p, "the suite to run")
    p.add_argument("--tasks", help="only these tasks, comma separated (e.g. adding,copy)")
    p.add_argument("--models", help="only these models, comma separated (e.g. lstm,gru)")
    p.add_argument("--trials", type=int, help="trials per configuration (tuning.trials)")
    p.add_argument("--seeds", type=int, help="final seeds per configuration (final.seeds)")
    p.add_argument("--steps", type=int, help="training steps per run (training.steps)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--device", help="auto | cpu | cuda")
    p.add_argument("--storage", help="Optuna storage URL (default: a file under the run dir)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite in the run "
                   "dir; also MLFLOW_TRACKING_URI)")
    p.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override any config key, e.g. --set training.batch_size=32")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from bench.commands import run

    return run(args)


def _where_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", help="Optuna storage URL, if not the one recorded for the suite")
    p.add_argument("--tracking-uri", help="MLflow tracking URI, if not the one recorded")


def _status_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="per-configuration progress of a suite")
    _suite_arg(p, "the suite")
    _where_args(p)
    p.set_defaults(func=_cmd_status)


def _cmd_status(args: argparse.Namespace) -> int:
    from bench.commands import status

    return status(args)


def _ui_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="the MLflow UI on a suite's tracking store")
    _suite_arg(p, "the suite")
    _where_args(p)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000)
    p.set_defaults(func=_cmd_ui)


def _cmd_ui(args: argparse.Namespace) -> int:
    from bench.commands import ui

    return ui(args)


def _report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the comparative HTML report of a suite",
                       description="Read a suite's runs back from MLflow and write one "
                       "self-contained HTML page (reports/<name>/index.html): leaderboards, "
                       "gradient pictures, tuning, significance.")
    _suite_arg(p, "the suite to report on")
    p.add_argument("others", nargs="*", metavar="MORE",
                   help="more suites (config files or names) side by side on the same page")
    p.add_argument("--tracking-uri", help="read from this MLflow tracking URI instead of the "
                   "suite's recorded store (with --experiment)")
    p.add_argument("--experiment", help="the MLflow experiment (default: the suite name)")
    p.add_argument("--storage", help="Optuna storage URL, for hyperparameter importance "
                   "(default: the suite's)")
    p.add_argument("--out", help="the .html file or folder to write (default: "
                   "reports/<name>/index.html)")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from bench.commands import report

    return report(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradbench",
        description="rnn-gradbench: gradients of recurrent networks on long-range tasks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _run_parser, _status_parser, _report_parser, _ui_parser, _train_parser]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gradbench`` console script."""
    args = build_parser().parse_args(argv)
    try:
        _configure(args.command)
        return int(args.func(args))
    except KeyboardInterrupt:
        print("gradbench: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, PermissionError, RuntimeError) as err:
        from bench.config import mask_secrets

        print(f"gradbench: error: {mask_secrets(str(err))}", file=sys.stderr)
        return 2


def _configure(command: str) -> None:
    """Quiet the libraries a command uses (explicit set-up, nothing at import time)."""
    if command in ("run", "status", "report", "ui"):
        from bench import tracking, tuning

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
