"""The remedies side by side on one task, over seeds: which one keeps a model learning, which
factor of the decay it moves.

Two questions of the lecture, answered with real training runs (no tuning: each remedy at
the same fixed settings, several seeds):

- ``regularization``: the LSTM on adding, Adam, ``l2`` (the penalty in the loss, rescaled by
  Adam) against ``decay`` (decoupled, AdamW form) at the same lambdas, and no remedy;
- ``clipping``: the tanh RNN on adding, SGD with momentum, ``norm`` against ``weight``
  clipping (and ``value``) and none, at several learning rates: how many seeds diverge.

For each row: seeds solved (test MSE below the task's solved rule), diverged, the mean test
loss over the trivial predictor's (a diverged seed counts as 1, the trivial score), the clip
rate, and the exact split at the end of training (the W_hh and f' factors of a plain cell,
in decades per step, ``bench.diagnostics.factors``; NaN for a gated cell) beside the slope of
``log10 ||dL/dh_t||``.

Usage:
    python benchmarks/remedies.py regularization --seq-len 100 --steps 1500 --seeds 3
    python benchmarks/remedies.py clipping --seq-len 100 --steps 500 --seeds 5
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

import tasks
from bench.diagnostics import GradientDiagnostics, never
from bench.registry import remedy
from bench.run.job import Job, build
from bench.train import TrainConfig, train


@dataclass(frozen=True)
class Case:
    """One row: a model, an optimizer and learning rate, the two remedies and their values."""

    model: str
    optimizer: str
    lr: float
    regularization: str = "none"
    clipping: str = "none"
    value: float = 0.0  # lambda or tau of the row's remedy

    def hparams(self) -> dict[str, float]:
        """The row's value for every search parameter of its remedies (from their records)."""
        found = [remedy(self.regularization, "regularization"), remedy(self.clipping, "clipping")]
        return {param: self.value for r in found if r is not None for param in r.search}

    def label(self) -> str:
        used = [r for r in (self.regularization, self.clipping) if r != "none"]
        return " + ".join(f"{r} {self.value:g}" for r in used) or "none"


def regularization_cases(args: argparse.Namespace) -> Iterator[Case]:
    if "none" in args.names:
        yield Case("lstm", "adam", args.lr)
    for lam in args.values:
        for name in (n for n in args.names if n != "none"):
            yield Case("lstm", "adam", args.lr, regularization=name, value=lam)


def clipping_cases(args: argparse.Namespace) -> Iterator[Case]:
    for lr in args.lrs:
        yield Case("rnn", "sgd", lr)
        for name, value in (("norm", 1.0), ("value", 0.01), ("weight", 1.0)):
            yield Case("rnn", "sgd", lr, clipping=name, value=value)


def run(case: Case, seed: int, args: argparse.Namespace) -> dict[str, float]:
    task = tasks.build("adding", {"seq_len": args.seq_len}, seed=0, device=torch.device("cpu"))
    cfg = TrainConfig(steps=args.steps, lr=case.lr, optimizer=case.optimizer,
                      regularization=case.regularization, clipping=case.clipping,
                      hparams=case.hparams(), eval_every=args.steps, seed=seed)
    job = Job(case.model, {"param_budget": args.budget}, cfg)
    model = build(job, task, torch.device("cpu"))
    observer = GradientDiagnostics(task, never, seed=0)  # the final probe only
    result = train(cfg, task, model, observer=observer)
    factors = result.diagnostics.factors[-1]
    diverged = result.status == "diverged"
    return {
        "solved": float(result.solved), "diverged": float(diverged),
        "score": 1.0 if diverged else result.test["loss"] / task.baseline,
        "clip_rate": result.clip_rate, "w": factors.w_hh_log10, "act": factors.fprime_log10,
        "measured": factors.slope,
    }


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.mean(finite) if finite else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("question", choices=["regularization", "clipping"])
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=5000, help="parameter budget")
    parser.add_argument("--lr", type=float, default=1e-2, help="regularization: Adam's lr")
    parser.add_argument("--values", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2],
                        help="regularization: the lambdas")
    parser.add_argument("--names", nargs="+", default=["none", "l2", "decay"],
                        help="regularization: the remedies (none, l2, l2-all, decay)")
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.1, 0.5],
                        help="clipping: SGD's learning rates")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cases = regularization_cases(args) if args.question == "regularization" else \
        clipping_cases(args)
    print(f"adding T={args.seq_len}, {args.steps} steps, ~{args.budget} parameters, "
          f"{args.seeds} seeds; score = test loss / trivial loss (diverged seed = 1)")
    print(f"{'model':5} {'opt':4} {'lr':>6} {'remedy':18} {'solved':>6} {'diverged':>8} "
          f"{'score':>6} {'clip rate':>9} {'W_hh':>8} {'f`':>8} {'slope':>8} "
          f"{'s/run':>6}")
    for case in cases:
        start = time.perf_counter()
        rows = [run(case, seed, args) for seed in range(args.seeds)]
        took = (time.perf_counter() - start) / args.seeds
        print(f"{case.model:5} {case.optimizer:4} {case.lr:6g} {case.label():18} "
              f"{int(sum(r['solved'] for r in rows)):>3}/{args.seeds:<2} "
              f"{int(sum(r['diverged'] for r in rows)):>5}/{args.seeds:<2} "
              f"{_mean([r['score'] for r in rows]):6.3f} "
              f"{_mean([r['clip_rate'] for r in rows]):9.2f} {_mean([r['w'] for r in rows]):8.3f} "
              f"{_mean([r['act'] for r in rows]):8.3f} {_mean([r['measured'] for r in rows]):8.3f} "
              f"{took:6.1f}", flush=True)


if __name__ == "__main__":
    main()
