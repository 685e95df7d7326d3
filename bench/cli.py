"""``gradbench``: the command line. Parses, then calls; heavy imports stay inside commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

MODELS = ("rnn", "irnn", "lstm", "gru")


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one model on one task and print its curve and gradient summary",
        description="Train one configuration once (no tuning, no tracking): a quick look.",
    )
    p.add_argument("--task", default="adding", help="adding | copy | har (default: adding)")
    p.add_argument("--seq-len", type=int, default=50, help="T for adding/copy (default: 50)")
    p.add_argument("--model", default="lstm", choices=MODELS)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--l2", type=float, default=0.0, help="L2 penalty lambda (0: none)")
    p.add_argument("--clip", type=float, default=0.0, help="clip the global norm at tau (0: none)")
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


_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_train_parser]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gradbench`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("gradbench: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, PermissionError) as err:
        print(f"gradbench: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
