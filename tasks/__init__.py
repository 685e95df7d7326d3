"""The tasks: the synthetic long-range problems and UCI HAR, one module each.

A task module declares its record (``TASK``, a ``bench.registry.TaskInfo``: parameters and
defaults, minimum T, metric and direction, the solved rule, the baseline) and builds the
task object, which pins its own definition (sequence length, data, loss, metric, baseline
and the "solved" rule) and hands the training loop whole batches as tensors that already
live on the target device. ``bench.registry.TASKS`` finds the modules of this package.

Example:
    >>> import torch
    >>> from tasks import build
    >>> task = build("adding", {"seq_len": 50}, seed=0, device=torch.device("cpu"))
    >>> x, y = task.train_batch(4, task.train_generator(seed=1))
    >>> tuple(x.shape), tuple(y.shape)
    ((4, 50, 2), (4, 1))
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any, Protocol

import torch

from bench.registry import TASKS


class Task(Protocol):
    """What the training loop, the diagnostics and the tracker need from a task."""

    name: str
    seq_len: int  # length of the input sequences the model reads
    input_size: int
    output_size: int
    per_step: bool  # True: a prediction at every step (copy); False: last step only
    baseline: float  # loss of the trivial predictor, the bar a model must beat
    metric: str  # the headline test metric ("mse", "recall_acc", "acc")
    direction: str  # "minimize" or "maximize" for `metric`

    def train_generator(self, seed: int) -> torch.Generator:
        """A generator for the training stream of one run, on the task's device."""
        ...

    def train_batch(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One training batch ``(x, y)``; x is (B, T, input_size)."""
        ...

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed ``"val"`` or ``"test"`` set as ``(x, y)``."""
        ...

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar training loss of the model output against the target."""
        ...

    def evaluate(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        """Metrics of a whole split: always ``loss`` and ``metric``, maybe more."""
        ...

    def solved(self, metrics: Mapping[str, float]) -> bool:
        """Whether test metrics meet the task's "solved" rule."""
        ...

    def describe(self) -> dict[str, Any]:
        """The pinned definition, recorded with every run."""
        ...

    def trivial_output(self, n: int) -> torch.Tensor:
        """What the trivial predictor (the baseline) outputs for ``n`` examples: the same
        for every input (adding: 1; copy: blanks, then the data symbols equally likely;
        HAR: the training class prior), shaped like a model's output."""
        ...


def build(
    name: str, params: Mapping[str, Any], *, seed: int, device: torch.device
) -> Task:
    """Build task ``name`` with its config ``params`` (e.g. ``{"seq_len": 100}``).

    Args:
        name: a task of the registry (``bench.registry.TASKS``): a built-in name, a plugin
            reference ``package.module:attribute`` or an entry point's name.
        params: the task's parameters from the config, one ``seq_len`` at most; checked by
            the task's record.
        seed: fixes the validation and test sets.
        device: where every tensor of the task lives.

    Raises:
        ValueError: unknown task name or bad parameters.
    """
    return TASKS.get(name).build(dict(params), seed=seed, device=device)  # type: ignore[no-any-return]


class Pinned(Protocol):
    """What ``pinned`` reads: a ``Task``, or a base class that leaves the loss and metrics to
    its subclasses (``tasks.synthetic.SyntheticTask``)."""

    @property
    def name(self) -> str: ...

    @property
    def seq_len(self) -> int: ...

    @property
    def input_size(self) -> int: ...

    @property
    def output_size(self) -> int: ...

    @property
    def per_step(self) -> bool: ...

    @property
    def metric(self) -> str: ...

    @property
    def baseline(self) -> float: ...


def pinned(task: Pinned) -> dict[str, Any]:
    """The head of every task's ``describe()``: its name, sizes, metric and baseline."""
    return {"task": task.name, "seq_len": task.seq_len, "input_size": task.input_size,
            "output_size": task.output_size, "per_step": task.per_step,
            "metric": task.metric, "baseline": task.baseline}


def trivial_metrics(task: Task, split: str) -> dict[str, float]:
    """The trivial predictor's metrics on a fixed split (the empirical baseline): its loss
    and the task's metrics, measured on the very examples a model is scored on. Empty for a
    task that has no ``trivial_output``.

    A task's fixed splits never change, so each (task, split) is measured once per process
    (every run of a worker reads them: 7-9 ms a split on the copy task, T=20)."""
    make = getattr(task, "trivial_output", None)
    if make is None:
        return {}
    try:
        known = _TRIVIAL.setdefault(task, {})
    except TypeError:  # a task that cannot be weakly referenced or hashed: no cache
        known = {}
    if split not in known:
        _, y = task.split(split)
        known[split] = task.evaluate(make(len(y)), y)
    return dict(known[split])


_TRIVIAL: weakref.WeakKeyDictionary[Any, dict[str, dict[str, float]]] = (
    weakref.WeakKeyDictionary())  # task -> split -> the trivial predictor's metrics


def stream_seed(seed: int, stream: str) -> int:
    """Deterministic, well separated seed for one named data stream of a base seed."""
    offsets = {"train": 0, "val": 1, "test": 2, "probe": 3}
    return (seed * 1_000_003 + 7919 * offsets[stream] + 17) % (2**62)


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen
