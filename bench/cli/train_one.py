"""``gradbench train``: one configuration, trained once, printed as it goes."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

import tasks
from bench.cli.view import make_console
from bench.models import n_parameters, select_device
from bench.registry import TASKS
from bench.run.job import Job, build, run_job
from bench.train import TrainConfig, configure_torch


def _task_params(args: argparse.Namespace) -> dict[str, Any]:
    """``--seq-len`` for a task with a T, ``--data-dir`` for one that reads data."""
    info = TASKS.get(args.task)
    params: dict[str, Any] = {"seq_len": args.seq_len} if info.swept else {}
    if "data_dir" in info.params and args.data_dir is not None:
        params["data_dir"] = args.data_dir
    return params


def _remedy_params(args: argparse.Namespace) -> dict[str, float]:
    """``--l2`` and ``--clip``, then every ``--param NAME=VALUE``."""
    params = {"l2": args.l2, "clip": args.clip or 1.0}
    for item in args.param:
        name, sep, value = item.partition("=")
        try:
            params[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--param {item}: expected NAME=NUMBER") from None
        if not sep or not name.strip():
            raise ValueError(f"--param {item}: expected NAME=NUMBER")
    return params


def run_one(args: argparse.Namespace) -> int:
    """Train ``args.model`` on ``args.task`` and print the curve and the outcome."""
    configure_torch(1)
    console = make_console()
    device = select_device(args.device)
    task = tasks.build(args.task, _task_params(args), seed=args.seed, device=device)
    size = {"hidden_size": args.hidden_size} if args.hidden_size is not None else \
        {"param_budget": args.param_budget or 10_000}
    cfg = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, eval_every=args.eval_every,
        optimizer=args.optimizer, warmup_steps=args.warmup_steps,
        stop_when_solved=args.stop_when_solved,
        regularization=args.regularization or ("l2" if args.l2 > 0 else "none"),
        clipping=args.clipping or ("norm" if args.clip > 0 else "none"),
        hparams=_remedy_params(args), seed=args.seed,
    )
    job = Job(args.model, size, cfg)
    model = build(job, task, device)
    console.print(
        f"[bold]{task.name}[/] T={task.seq_len}  model={args.model} H={model.hidden_size} "
        f"({n_parameters(model)} parameters)  device={device}  baseline {task.metric}: "
        f"loss {task.baseline:.4f}"
    )
    start = time.perf_counter()

    def show(step: int, metrics: Mapping[str, float]) -> bool:
        elapsed = time.perf_counter() - start
        values = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        console.print(f"step {step:>6}  val {values}  ({elapsed:.1f} s)")
        return False

    result = run_job(job, task, model, on_eval=show)
    _print_result(console, task, result)
    return 0


def _print_result(console: Console, task: Any, result: Any) -> None:
    table = Table(title=f"{task.name} T={task.seq_len}: {result.describe()}")
    table.add_column("split")
    keys = sorted(result.test) if result.test else []
    for key in keys:
        table.add_column(key, justify="right")
    for split, metrics in (("val", result.val), ("test", result.test)):
        if metrics:
            table.add_row(split, *(f"{metrics[k]:.4f}" for k in keys))
    console.print(table)
    verdict = "solved" if result.solved else "not solved"
    if result.solved_at is not None:
        verdict += f" (validation first met the rule at step {result.solved_at})"
    console.print(
        f"{verdict}; {result.steps_done} steps in {result.wall_time:.1f} s; "
        f"clip rate {result.clip_rate:.2f}; baseline loss {task.baseline:.4f}"
    )
