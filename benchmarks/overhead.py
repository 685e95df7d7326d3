"""Cost of training with the default gradient diagnostics, against a bare PyTorch loop.

Quality bar (SPEC section 8): ``bench.train.train`` with the default diagnostics
(``GradientDiagnostics(task)``: probe at step 0, every 100 steps and after the last update, on
a probe batch of 32) costs at most 1.15x a bare training loop with the same model and data.

For each model, on adding (T = 100 by default, B = 64, Adam, norm clipping), three ways of
running the same training are timed, interleaved round by round so that drifts of the
machine hit all of them alike:

- ``bare``: the loop below, written out plainly (batch, forward, loss, backward, clip, step);
- ``train``: ``bench.train.train`` without observer (the loop's own bookkeeping);
- ``diag``: ``bench.train.train`` with the default diagnostics;
- ``tracked``: ``diag`` plus recording the run the way a suite worker does (params, every
  metric point and the diagnostics tables, through ``bench.tracking.Tracker``, batched, into
  an MLflow SQLite store in a temporary directory): the project's whole step.

Also printed: the achieved GFLOP/s of the bare loop (the recurrent and head matmuls, forward
and backward counted as 3x forward) against a 2048^3 float32 matmul on the same machine.

The fixed validation and test splits are kept tiny (64 examples) so that ``train``'s final
evaluation does not count as overhead. Printed: the median over rounds of the time per step
of each, the ratios to ``bare`` (of the medians; ``(min)``: of the fastest rounds, the
figure least disturbed by other load on the machine), the number of probes in one run and
the time of one probe.

With ``--remedies``, a second table: ``bench.train.train`` (no diagnostics) with each remedy
alone (``none``, every regularization and every clipping remedy of the registry, at fixed
values), timed interleaved with the same bare loop (norm clipping), as ms per step and the
ratio to ``bare``: what each remedy costs per step (weight clipping's spectral norms and
``orth-margin``'s SVDs included).

Usage:
    python benchmarks/overhead.py                       # 4 models, budget 10000 parameters
    python benchmarks/overhead.py --models lstm --hidden 128 --steps 200
    python benchmarks/overhead.py --remedies            # also: the cost of every remedy
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from bench.diagnostics import DEFAULT_SCHEDULE, GradientDiagnostics, probe
from bench.models import ModelSizes, RecurrentModel, build_model
from bench.train import TrainConfig, train
from tasks import Task, adding

_TRACKER = None  # created once per process, on first use

LR, CLIP, SEED = 1e-3, 1.0, 0


def bare_loop(task: Task, model: RecurrentModel, steps: int, batch_size: int) -> None:
    """The reference: a plain PyTorch training loop, same data, optimiser and clipping."""
    torch.manual_seed(SEED)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    generator = task.train_generator(SEED)
    for _ in range(steps):
        x, y = task.train_batch(batch_size, generator)
        loss = task.loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP, foreach=True)
        optimizer.step()


def bench_train(task: Task, model: RecurrentModel, steps: int, batch_size: int,
                diagnostics: bool, tracked: bool = False) -> None:
    """``bench.train.train``, with or without the default diagnostics (and tracking)."""
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=LR, clipping="norm",
                      hparams={"clip": CLIP}, eval_every=steps, seed=SEED)
    observer = GradientDiagnostics(task) if diagnostics else None
    result = train(cfg, task, model, observer=observer)
    if tracked:
        record(task, model, cfg, result)


REMEDY_VALUES = {"l2": 1e-4, "decay": 1e-2, "clip": CLIP, "clip_value": 0.01, "w_max": 1.0,
                 "margin": 0.01}


def remedy_run(task: Task, model: RecurrentModel, steps: int, batch_size: int, axis: str,
               name: str) -> None:
    """``bench.train.train`` with one remedy (``none``: no remedy at all), no diagnostics."""
    from bench.registry import remedy

    found = remedy(name, axis) if name != "none" else None
    hparams = {p: REMEDY_VALUES[p] for p in (found.search if found else ())}
    axes = {"regularization": "none", "clipping": "none"}
    if found is not None:
        axes[axis] = name
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=LR, hparams=hparams,
                      eval_every=steps, seed=SEED, **axes)
    train(cfg, task, model)


def remedy_costs(kind: str, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Median seconds per step of the bare loop and of train() with each remedy alone."""
    from bench.registry import remedy_names

    task, fresh = _setup(kind, args, device)
    runs: dict[str, Callable[[], object]] = {
        "bare": lambda: bare_loop(task, fresh(), args.steps, args.batch_size)}
    for axis in ("regularization", "clipping"):
        for name in remedy_names(axis):
            label = "none" if name == "none" else name
            runs[label] = (lambda a=axis, n=name: remedy_run(task, fresh(), args.steps,
                                                             args.batch_size, a, n))
    timed(runs["bare"], device)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.rounds):
        order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
        for name in order:
            times[name].append(timed(runs[name], device) / args.steps)
    return {name: statistics.median(values) for name, values in times.items()}


def _setup(kind: str, args: argparse.Namespace, device: torch.device):  # noqa: ANN202
    """The task and a function returning the model reset to its initial weights."""
    task = adding.build({"seq_len": args.seq_len, "val_size": 64, "test_size": 64},
                        seed=SEED, device=device)
    sizes = ModelSizes(task.input_size, task.output_size, task.per_step)
    size = {"hidden_size": args.hidden} if args.hidden else {"param_budget": args.budget}
    torch.manual_seed(SEED)
    initial = build_model(kind, sizes, **size).to(device)
    state = {k: v.clone() for k, v in initial.state_dict().items()}

    def fresh() -> RecurrentModel:
        initial.load_state_dict(state)
        return initial

    return task, fresh


def record(task: Task, model: RecurrentModel, cfg: TrainConfig, result) -> None:  # noqa: ANN001
    """What a suite worker records after a trial: one nested MLflow run, all in batches."""
    import tempfile
    from pathlib import Path

    from bench.tracking import Tracker, default_tracking_uri, result_metrics

    global _TRACKER
    if _TRACKER is None:
        run_dir = Path(tempfile.mkdtemp(prefix="gradbench-overhead-"))
        _TRACKER = Tracker(default_tracking_uri(run_dir), "overhead", run_dir=run_dir)
    tracker = _TRACKER
    parent = tracker.parent_run("adding/overhead", {"task": "adding"})
    run_id = tracker.start_run(parent, "trial", {"role": "trial"})
    tracker.log_params(run_id, {"lr": cfg.lr, "clip": cfg.hparams["clip"], "model": model.kind,
                                "hidden_size": model.hidden_size, "steps": cfg.steps})
    tracker.log_metrics(run_id, result_metrics(result, task))
    for table, rows in result.diagnostics.tables().items():
        tracker.log_table(run_id, rows, f"diagnostics/{table}.csv")
    tracker.end_run(run_id)


def step_flops(model: RecurrentModel, seq_len: int, batch_size: int) -> float:
    """Multiply-adds x 2 of one training step: recurrent and head matmuls, fwd + bwd (3x)."""
    gates, hidden = len(model.info.blocks), model.hidden_size
    sizes = model.sizes
    recurrent = 2 * gates * hidden * (sizes.input_size + hidden) * seq_len
    head = 2 * hidden * sizes.output_size * (seq_len if sizes.per_step else 1)
    return 3.0 * batch_size * (recurrent + head)


def matmul_gflops(device: torch.device, n: int = 2048) -> float:
    """Best of 3 of an n^3 float32 matmul, in GFLOP/s."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = min(timed(lambda: a @ b, device) for _ in range(3))
    return 2.0 * n**3 / best / 1e9


def timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def measure(kind: str, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Median seconds per step of bare / train / diag, and the probe figures."""
    task, fresh = _setup(kind, args, device)
    initial = fresh()

    runs: dict[str, Callable[[], object]] = {
        "bare": lambda: bare_loop(task, fresh(), args.steps, args.batch_size),
        "train": lambda: bench_train(task, fresh(), args.steps, args.batch_size, False),
        "diag": lambda: bench_train(task, fresh(), args.steps, args.batch_size, True),
        "tracked": lambda: bench_train(task, fresh(), args.steps, args.batch_size, True, True),
    }
    timed(runs["bare"], device)  # warm-up (allocator, kernels)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.rounds):
        order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
        for name in order:
            times[name].append(timed(runs[name], device) / args.steps)
    x, y = task.train_batch(32, task.train_generator(SEED + 1))
    probe_time = min(timed(lambda: probe(fresh(), task.loss, x, y), device) for _ in range(3))
    out = {name: statistics.median(values) for name, values in times.items()}
    out.update({f"{name}_min": min(values) for name, values in times.items()})
    out["hidden"] = float(initial.hidden_size)
    out["gflops"] = step_flops(initial, args.seq_len, args.batch_size) / out["bare_min"] / 1e9
    out["probe"] = probe_time
    out["probes"] = float(sum(DEFAULT_SCHEDULE(s) for s in range(args.steps)) + 1)  # + end
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="rnn,irnn,lstm,gru")
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300, help="steps per timed run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--budget", type=int, default=10_000, help="parameter budget")
    parser.add_argument("--hidden", type=int, default=0, help="fixed hidden size (overrides)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--remedies", action="store_true",
                        help="also time train() with every remedy alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    peak = matmul_gflops(device)
    print(f"adding T={args.seq_len} B={args.batch_size}, {args.steps} steps x {args.rounds} "
          f"rounds, {args.threads} thread(s), {device}; default diagnostics "
          f"(every 100 steps + end, probe batch 32); 2048^3 matmul: {peak:.1f} GFLOP/s")
    print(f"{'model':6} {'H':>4} {'bare ms':>8} {'train ms':>9} {'diag ms':>8} {'track ms':>8} "
          f"{'train/bare':>10} {'diag/bare':>9} {'track/bare':>10} {'(min)':>6} {'probes':>6} "
          f"{'probe ms':>8} {'GFLOP/s':>8} {'of peak':>7}")
    for kind in args.models.split(","):
        r = measure(kind, args, device)
        print(f"{kind:6} {int(r['hidden']):4d} {1e3 * r['bare']:8.2f} {1e3 * r['train']:9.2f} "
              f"{1e3 * r['diag']:8.2f} {1e3 * r['tracked']:8.2f} {r['train'] / r['bare']:10.3f} "
              f"{r['diag'] / r['bare']:9.3f} {r['tracked'] / r['bare']:10.3f} "
              f"{r['tracked_min'] / r['bare_min']:6.3f} {int(r['probes']):6d} "
              f"{1e3 * r['probe']:8.1f} {r['gflops']:8.2f} {r['gflops'] / peak:7.1%}")
    if args.remedies:
        print_remedy_costs(args, device)


def print_remedy_costs(args: argparse.Namespace, device: torch.device) -> None:
    print(f"\nper remedy: train() without diagnostics, ms per step (ratio to bare); values "
          f"{REMEDY_VALUES}")
    for kind in args.models.split(","):
        r = remedy_costs(kind, args, device)
        cells = "  ".join(f"{name} {1e3 * v:.2f} ({v / r['bare']:.3f}x)" for name, v in r.items()
                          if name != "bare")
        print(f"{kind:6} bare {1e3 * r['bare']:.2f}  {cells}", flush=True)


if __name__ == "__main__":
    main()
