"""The one training loop. It knows nothing of Optuna or MLflow.

``train`` runs a model on a task for a fixed number of steps and returns a ``TrainResult``:
the curves, the cheap per-step gradient quantities (global norm before clipping, whether a
clipping remedy acted: rescaled or clamped the gradients, or rescaled W_hh), the final
validation metrics, the test metrics when the run is allowed to read the test split
(``TrainConfig.test``: final seeds, not tuning trials), the first evaluation step at which
the validation metrics met the task's solved rule, and how the run ended (``completed``,
``diverged`` with the step, or ``stopped`` by the evaluation callback, which is how a tuner
prunes). Divergence is a result, never an exception (``bench.scores``): a non-finite loss or
gradient, or a final validation loss above ``diverge_factor`` times the trivial predictor's
(``tasks.trivial_metrics``). Every test score is capped at the trivial predictor's (the
uncapped metrics are kept in ``test_uncapped``), and a diverged run that reads the test split
is scored as the trivial predictor, so that a summary over seeds never drops it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from bench.models import RecurrentModel
from bench.registry import Remedy, remedy
from bench.scores import blew_up, capped
from tasks import Task, trivial_metrics

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "sgd": lambda params, lr, **kw: torch.optim.SGD(params, lr=lr, momentum=0.9, **kw),
    "rmsprop": torch.optim.RMSprop,
}
EVAL_CHUNK = 1024  # examples per forward pass when evaluating a split

OnEval = Callable[[int, Mapping[str, float]], bool]  # (step, val metrics) -> stop now?


class StepObserver(Protocol):
    """What the loop calls for gradient diagnostics (see ``bench.diagnostics``)."""

    def on_step(self, step: int, model: RecurrentModel) -> None:
        """After backward, before clipping: the step's raw gradients are in ``.grad``."""

    def on_end(self, step: int, model: RecurrentModel, result: TrainResult) -> Any:
        """Once when the run ends (diverged or not); returns ``result.diagnostics``.

        Called after the last update and before the final evaluation; ``result`` already
        holds the per-step records (``grad_norm``, ``clipped``, ``diverged_at``).
        """


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on, besides the task and the model.

    ``regularization`` and ``clipping`` name remedies of ``bench.remedies`` (or ``none``);
    ``hparams`` holds their tuned values by search-parameter name (``{"l2": 1e-4,
    "clip": 1.0}``).
    """

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | sgd | rmsprop
    regularization: str = "none"  # none | a regularization remedy (l2, ...)
    clipping: str = "none"  # none | a clipping remedy (norm, ...)
    hparams: Mapping[str, float] = field(default_factory=dict)
    eval_every: int = 50
    seed: int = 0
    check_every: int = 0  # steps between host syncs for divergence; 0: 1 on CPU, 25 on GPU
    test: bool = True  # evaluate the test split at the end (final seeds; never tuning trials)
    warmup_steps: int = 0  # the learning rate rises linearly from lr / warmup_steps to lr
    stop_when_solved: bool = False  # end once the validation metrics stayed solved 2 evals
    diverge_factor: float = 10.0  # diverged: final val loss above this x the trivial's

    def __post_init__(self) -> None:
        checks = {
            "steps": self.steps >= 1, "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0, "eval_every": self.eval_every >= 1,
            "check_every": self.check_every >= 0, "optimizer": self.optimizer in OPTIMIZERS,
            "warmup_steps": self.warmup_steps >= 0, "diverge_factor": self.diverge_factor >= 1,
            **{name: math.isfinite(v) and v >= 0 for name, v in self.hparams.items()},
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={self.hparams.get(name, getattr(self, name, None))!r}"
                               for name in bad)
            raise ValueError(f"invalid training settings: {values}")
        for found in self.remedies():
            missing = [name for name in found.search if name not in self.hparams]
            if missing:
                raise ValueError(f"invalid training settings: {found.axis} {found.name!r} "
                                 f"needs {', '.join(missing)}")

    def remedies(self) -> list[Remedy]:
        """The records of the run's remedies (``none`` left out)."""
        found = (remedy(self.regularization, "regularization"), remedy(self.clipping, "clipping"))
        return [r for r in found if r is not None]


@dataclass
class TrainResult:
    """How a run went. Curves are lists of plain floats, ready for a tracker."""

    status: str  # completed | diverged | stopped
    steps_done: int
    diverged_at: int | None = None
    reason: str | None = None
    train_loss: list[float] = field(default_factory=list)  # task loss, every step
    grad_norm: list[float] = field(default_factory=list)  # global norm before clipping
    clipped: list[bool] = field(default_factory=list)  # a clipping remedy acted this step
    evals: list[dict[str, float]] = field(default_factory=list)  # {"step", "loss", metric...}
    val: dict[str, float] = field(default_factory=dict)  # final validation metrics
    test: dict[str, float] = field(default_factory=dict)  # final test metrics, capped
    test_uncapped: dict[str, float] = field(default_factory=dict)  # as measured (finite runs)
    solved: bool = False  # the test metrics meet the solved rule (False without a test)
    val_solved: bool = False  # the final validation metrics meet the solved rule
    solved_at: int | None = None  # first evaluation step whose validation metrics did
    test_from: str = "model"  # "trivial": diverged, scored as the trivial predictor
    baseline_val: dict[str, float] = field(default_factory=dict)  # the trivial predictor's
    baseline_test: dict[str, float] = field(default_factory=dict)  # (when test is read)
    wall_time: float = 0.0
    # Of wall_time: seconds evaluating (validation every eval_every steps, the final
    # evaluation), probing (the gradient diagnostics observer), and in ``on_eval`` (a
    # tuner's report and pruning decision); the rest is the training steps and set-up.
    eval_s: float = 0.0
    probe_s: float = 0.0
    report_s: float = 0.0
    diagnostics: Any = None  # filled by the diagnostics observer, if any

    @property
    def clip_rate(self) -> float:
        return sum(self.clipped) / len(self.clipped) if self.clipped else 0.0

    @property
    def best_val_loss(self) -> float:
        losses = [row["loss"] for row in self.evals if math.isfinite(row["loss"])]
        return min(losses) if losses else math.nan

    def describe(self) -> str:
        if self.status == "diverged":
            return f"diverged at step {self.diverged_at} ({self.reason})"
        return f"{self.status} after {self.steps_done} steps"


def global_grad_norm(params: Iterable[nn.Parameter]) -> torch.Tensor:
    """The L2 norm of all gradients together, on the device, without a host sync (the
    loop's every step; ``bench.diagnostics.group_grad_norms`` splits it by group)."""
    grads = [p.grad for p in params if p.grad is not None]
    norm: torch.Tensor = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    return norm


def configure_torch(threads: int = 1) -> None:
    """One intra-op thread per process: parallel worker processes scale, threads do not."""
    torch.set_num_threads(threads)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` in eval mode, in chunks of ``EVAL_CHUNK`` examples to bound memory."""
    was_training = model.training
    model.eval()
    outputs = [model(x[i : i + EVAL_CHUNK]) for i in range(0, len(x), EVAL_CHUNK)]
    model.train(was_training)
    return torch.cat(outputs)


def evaluate(model: nn.Module, task: Task, split: str) -> dict[str, float]:
    """Metrics of ``model`` on a whole fixed split."""
    x, y = task.split(split)
    return task.evaluate(predict(model, x), y)


class _Loop:
    """State of one run; ``train`` drives it. Split out to keep each piece short."""

    def __init__(self, cfg: TrainConfig, task: Task, model: RecurrentModel) -> None:
        self.cfg, self.task, self.model = cfg, task, model
        self.params = [p for p in model.parameters() if p.requires_grad]
        remedies = cfg.remedies()
        self.hp = dict(cfg.hparams)
        options: dict[str, Any] = {}
        for r in remedies:
            options.update(r.optimizer_args(self.hp) if r.optimizer_args else {})
        self.optimizer = OPTIMIZERS[cfg.optimizer](self.params, lr=cfg.lr, **options)
        self.warmup = None
        if cfg.warmup_steps > 0:
            self.warmup = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda i: min(1.0, (i + 1) / cfg.warmup_steps))
        self.penalties = [r.penalty for r in remedies if r.penalty is not None]
        self.on_grads = [r.after_backward for r in remedies if r.after_backward is not None]
        self.on_weights = [r.after_step for r in remedies if r.after_step is not None]
        self.generator = task.train_generator(cfg.seed)
        device = next(model.parameters()).device
        self.check_every = cfg.check_every or (1 if device.type == "cpu" else 25)
        # Per-step scalars stay on the device and are fetched every `check_every` steps.
        self.losses = torch.zeros(cfg.steps, device=device)
        self.norms = torch.zeros(cfg.steps, device=device)
        self.clipped = torch.zeros(cfg.steps, dtype=torch.bool, device=device)

    def step(self, step: int, observer: StepObserver | None) -> None:
        x, y = self.task.train_batch(self.cfg.batch_size, self.generator)
        loss = self.task.loss(self.model(x), y)
        objective = loss
        for penalty in self.penalties:
            objective = objective + penalty(self.model, self.hp)
        self.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        if observer is not None:
            observer.on_step(step, self.model)
        norm = global_grad_norm(self.params)  # before any remedy acts on the gradients
        for act in self.on_grads:
            changed = act(self.params, norm, self.hp)
            if changed is not None:
                self.clipped[step] |= changed
        self.losses[step] = loss.detach()
        self.norms[step] = norm.detach()
        self.optimizer.step()
        if self.on_weights:
            lr = self.optimizer.param_groups[0]["lr"]
            with torch.no_grad():
                for act in self.on_weights:
                    changed = act(self.model, self.hp, lr)
                    if changed is not None:
                        self.clipped[step] |= changed
        if self.warmup is not None:  # after the remedies: they act with this step's lr
            self.warmup.step()

    def first_nonfinite(self, start: int, stop: int) -> int | None:
        """Index of the first step in [start, stop) with a non-finite loss or gradient."""
        window = torch.stack([self.losses[start:stop], self.norms[start:stop]])
        bad = ~torch.isfinite(window).all(dim=0)
        if not bool(bad.any()):  # the one host sync per window
            return None
        return start + int(bad.nonzero()[0, 0])

    def reason(self, step: int) -> str:
        loss = float(self.losses[step])
        return "non-finite loss" if not math.isfinite(loss) else "non-finite gradient"

    def result(self, status: str, steps_done: int) -> TrainResult:
        losses = self.losses[:steps_done].tolist()
        norms = self.norms[:steps_done].tolist()
        clipped = self.clipped[:steps_done].tolist()
        return TrainResult(status=status, steps_done=steps_done, train_loss=losses,
                           grad_norm=norms, clipped=clipped)


def train(
    cfg: TrainConfig,
    task: Task,
    model: RecurrentModel,
    *,
    on_eval: OnEval | None = None,
    observer: StepObserver | None = None,
) -> TrainResult:
    """Train ``model`` on ``task``; see the module docstring for what comes back.

    Args:
        cfg: steps, optimizer, learning rate, the two remedies and their parameters.
        task: supplies batches, the loss, the fixed splits and the metrics.
        model: already built (and seeded) on the task's device; trained in place.
        on_eval: called with (step, validation metrics) every ``cfg.eval_every`` steps;
            returning True stops the run (status ``stopped``), e.g. when a tuner prunes.
        observer: gradient diagnostics hook, see ``StepObserver``.
    """
    start_time = time.perf_counter()
    torch.manual_seed(cfg.seed)
    loop = _Loop(cfg, task, model)
    model.train()
    status, done, evals, reason, checked, clock = "completed", cfg.steps, [], None, 0, _Clock()
    timed = observer if observer is None else _TimedObserver(observer, clock)
    for step in range(cfg.steps):
        loop.step(step, timed)
        if (step + 1) % loop.check_every == 0 or step + 1 == cfg.steps:
            bad_step = loop.first_nonfinite(checked, step + 1)
            checked = step + 1
            if bad_step is not None:
                status, done, reason = "diverged", bad_step + 1, loop.reason(bad_step)
                break
        if (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
            with clock("eval_s"):
                metrics = evaluate(model, task, "val")
            evals.append({"step": float(step + 1), **metrics})
            if not math.isfinite(metrics["loss"]):
                status, done, reason = "diverged", step + 1, "non-finite validation loss"
                break
            with clock("report_s"):
                stop = on_eval is not None and on_eval(step + 1, metrics)
            if stop:
                status, done = "stopped", step + 1
                break
            if cfg.stop_when_solved and _stayed_solved(task, evals):
                done = step + 1  # completed early: the final evaluation is still full
                break
    result = loop.result(status, done)
    result.evals = evals
    if status == "diverged":
        result.diverged_at, result.reason = done, reason
    if timed is not None:
        result.diagnostics = timed.on_end(done, model, result)
    with clock("eval_s"):
        _finish(result, loop)
    clock.fill(result)
    result.wall_time = time.perf_counter() - start_time
    return result


class _Clock:
    """Seconds spent per kind of work inside the loop: ``with clock("eval_s"): ...``."""

    def __init__(self) -> None:
        self.seconds = {"eval_s": 0.0, "probe_s": 0.0, "report_s": 0.0}
        self._kind, self._start = "", 0.0

    def fill(self, result: TrainResult) -> None:
        result.eval_s, result.probe_s, result.report_s = (
            self.seconds["eval_s"], self.seconds["probe_s"], self.seconds["report_s"])

    def __call__(self, kind: str) -> _Clock:
        self._kind = kind
        return self

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds[self._kind] += time.perf_counter() - self._start


class _TimedObserver:
    """The diagnostics observer, its time counted as probing (``TrainResult.probe_s``)."""

    def __init__(self, observer: StepObserver, clock: _Clock) -> None:
        self.observer, self.clock = observer, clock

    def on_step(self, step: int, model: RecurrentModel) -> None:
        with self.clock("probe_s"):
            self.observer.on_step(step, model)

    def on_end(self, step: int, model: RecurrentModel, result: TrainResult) -> Any:
        with self.clock("probe_s"):
            return self.observer.on_end(step, model, result)


def _stayed_solved(task: Task, evals: list[dict[str, float]]) -> bool:
    """The last two evaluations both met the task's solved rule."""
    return len(evals) >= 2 and all(task.solved(row) for row in evals[-2:])


def _finish(result: TrainResult, loop: _Loop) -> None:
    """Final evaluation: validation always (unless the loss went non-finite), the test split
    only where the run may read it. A run whose final validation loss ends above
    ``diverge_factor`` times the trivial predictor's has diverged too (``bench.scores``);
    a diverged run that may read the test split is scored as the trivial predictor, every
    other test score is capped at it (the measured values kept in ``test_uncapped``)."""
    task, cfg = loop.task, loop.cfg
    result.baseline_val = trivial_metrics(task, "val")
    if cfg.test:
        result.baseline_test = trivial_metrics(task, "test")
    if result.status != "diverged":
        result.val = evaluate(loop.model, task, "val")
        last = result.evals[-1]["step"] if result.evals else None
        if result.status == "completed" and last != result.steps_done:
            result.evals.append({"step": float(result.steps_done), **result.val})
        result.val_solved = task.solved(result.val)
        _diverged_above(result, cfg.diverge_factor)
        if cfg.test:
            result.test_uncapped = evaluate(loop.model, task, "test")
    result.solved_at = _first_solved(task, result.evals)
    if not cfg.test:
        return
    if result.status == "diverged":
        if result.baseline_test:
            result.test, result.test_from = dict(result.baseline_test), "trivial"
        return
    result.test = capped(result.test_uncapped, result.baseline_test, task.metric,
                         task.direction)
    result.solved = task.solved(result.test)


def _diverged_above(result: TrainResult, factor: float) -> None:
    """A finite run whose final validation loss ends above ``factor`` times the trivial
    predictor's is a diverged run (ended where it stopped), as a non-finite one is."""
    loss, trivial = result.val.get("loss", math.nan), result.baseline_val.get("loss")
    if not blew_up(loss, trivial, factor):
        return
    result.status, result.diverged_at = "diverged", result.steps_done
    result.reason = f"validation loss {loss:.4g} above {factor:g} x the trivial predictor's"
    result.val_solved = False


def _first_solved(task: Task, evals: list[dict[str, float]]) -> int | None:
    """Steps to solve: the first evaluation step whose validation metrics meet the rule."""
    return next((int(row["step"]) for row in evals if task.solved(row)), None)
