"""UCI HAR: human activity recognition from raw smartphone inertial signals.

The data set (Anguita, Ghio, Oneto, Parra & Reyes-Ortiz, ESANN 2013) holds windows of
128 samples (2.56 s at 50 Hz, consecutive windows overlap by 50%) of 9 channels, in this
order: body_acc x/y/z, body_gyro x/y/z, total_acc x/y/z. Each window carries one of 6
activity labels and the id of the subject who performed it; the official split puts 21
subjects (7352 windows) in train and 9 others (2947 windows) in test.

The task reads the whole window and predicts the activity from the last step. Because
windows overlap, validation holds out whole *training subjects* (a random window split
would leak). Channels are z-scored with the statistics of the remaining training windows.
Baseline: cross-entropy of always predicting the training class prior (about ln 6).
Solved: test accuracy >= 0.90 (LSTMs reach about 0.90-0.92 on these raw signals).
Metrics: cross-entropy, accuracy and macro F1, plus a confusion matrix and per-class F1.

Finding, verifying, caching and downloading the data is ``tasks.har_data``'s job; this
module turns a ``HarData`` into device tensors, and ``build`` does both from the config.

Example:
    >>> import torch
    >>> task = build({"data_dir": "~/data"}, seed=0, device=torch.device("cpu"))  # doctest: +SKIP
    >>> x, y = task.train_batch(32, task.train_generator(seed=1))  # doctest: +SKIP
    >>> tuple(x.shape), tuple(y.shape)  # doctest: +SKIP
    ((32, 128, 9), (32,))
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from bench.registry import TaskInfo, TaskParam, boolean
from tasks import har_data, make_generator, pinned, stream_seed
from tasks.har_data import (
    CLASS_NAMES,
    SIGNALS,
    WINDOW,
    FloatArray,
    HarData,
    HarDataError,
    IntArray,
    find_har,
    load_har,
)

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_VAL_SUBJECTS",
    "SIGNALS",
    "SOLVED_ACC",
    "HarData",
    "HarDataError",
    "HarTask",
    "build",
    "choose_val_subjects",
    "clear_memo",
    "confusion",
    "f1_from_confusion",
    "find_har",
    "load_har",
]

DEFAULT_VAL_SUBJECTS = 4
SOLVED_ACC = 0.90


# --------------------------------------------------------------------------------------
# The task
# --------------------------------------------------------------------------------------


def choose_val_subjects(
    train_subjects: npt.ArrayLike, val_subjects: int | Sequence[int], seed: int
) -> tuple[int, ...]:
    """Training subjects held out for validation, sorted.

    Args:
        train_subjects: subject id of every training window.
        val_subjects: a count (drawn deterministically from ``seed``) or explicit ids.
        seed: the task seed.

    Raises:
        ValueError: a count out of range, or ids that are not training subjects.
    """
    available = sorted(int(s) for s in np.unique(np.asarray(train_subjects)))
    if isinstance(val_subjects, bool) or not isinstance(val_subjects, int | Sequence):
        raise ValueError(f"tasks.har.val_subjects: expected a count or a list of subject ids, "
                         f"got {val_subjects!r}")
    if isinstance(val_subjects, int):
        if not 1 <= val_subjects < len(available):
            raise ValueError(f"tasks.har.val_subjects: {val_subjects} is out of range; "
                             f"hold out 1..{len(available) - 1} of {len(available)} subjects")
        rng = np.random.default_rng(stream_seed(seed, "val"))
        return tuple(sorted(int(s) for s in rng.choice(available, val_subjects, replace=False)))
    ids = sorted(set(val_subjects))
    unknown = [s for s in ids if s not in available]
    if unknown or not ids or len(ids) == len(available) or len(ids) != len(val_subjects):
        raise ValueError(f"tasks.har.val_subjects: {list(val_subjects)} must be distinct "
                         f"training subjects, leaving some for training; have {available}")
    return tuple(ids)


@dataclass(frozen=True)
class _Prepared:
    """Device tensors of one (data, validation subjects, device): built once, shared."""

    x_train: torch.Tensor  # (N, T, C), z-scored
    y_train: torch.Tensor  # (N,)
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: tuple[float, ...]  # per channel, of the training windows left after validation
    std: tuple[float, ...]
    prior_entropy: float  # cross-entropy of the training class prior on the training labels


def _zscore(x: FloatArray, mean: FloatArray, std: FloatArray, device: torch.device
            ) -> torch.Tensor:
    out = x - mean  # a new array: never modify the shared HarData
    out /= std
    return torch.from_numpy(out).to(device)


def _entropy(labels: IntArray) -> float:
    p = np.bincount(labels, minlength=len(CLASS_NAMES)) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@lru_cache(maxsize=4)
def _prepare(data: HarData, val_ids: tuple[int, ...], device: torch.device) -> _Prepared:
    is_val = np.isin(data.subject_train, val_ids)
    x_fit = data.x_train[~is_val]  # (N_fit, T, C) copy
    mean = x_fit.mean(axis=(0, 1), dtype=np.float64)
    std = np.maximum(x_fit.std(axis=(0, 1), dtype=np.float64), 1e-8)
    mean32, std32 = mean.astype(np.float32), std.astype(np.float32)
    x_fit -= mean32  # x_fit is our own copy: normalise in place
    x_fit /= std32
    return _Prepared(
        x_train=torch.from_numpy(x_fit).to(device),
        y_train=torch.from_numpy(data.y_train[~is_val]).to(device),
        x_val=_zscore(data.x_train[is_val], mean32, std32, device),
        y_val=torch.from_numpy(data.y_train[is_val]).to(device),
        x_test=_zscore(data.x_test, mean32, std32, device),
        y_test=torch.from_numpy(data.y_test.copy()).to(device),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        prior_entropy=_entropy(data.y_train[~is_val]),
    )


def clear_memo() -> None:
    """Forget the data sets and prepared tensors memoised in this process."""
    har_data.clear_memo()
    _prepare.cache_clear()


def confusion(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(6, 6) int64 counts on the output's device; rows: true class, columns: predicted."""
    k = len(CLASS_NAMES)
    pred = output.detach().argmax(dim=-1)
    return torch.bincount(target * k + pred, minlength=k * k).reshape(k, k)


def f1_from_confusion(matrix: torch.Tensor) -> torch.Tensor:
    """Per-class F1 = 2 TP / (2 TP + FP + FN); 0 for a class neither present nor predicted."""
    m = matrix.double()
    tp = m.diagonal()
    denom = m.sum(dim=0) + m.sum(dim=1)  # (TP + FP) + (TP + FN)
    return torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))


class HarTask:
    """UCI HAR activity classification over a 128-step window of 9 channels.

    Validation holds out whole training subjects; ``split("test")`` is the official test
    split. All tensors live on ``device`` and are shared by the tasks of one process that
    use the same data, validation subjects and device: never modify them in place.
    """

    name = "har"
    seq_len = WINDOW
    input_size = len(SIGNALS)
    output_size = len(CLASS_NAMES)
    per_step = False
    metric = "acc"
    direction = "maximize"

    def __init__(
        self, data: HarData, *, seed: int, device: torch.device,
        val_subjects: int | Sequence[int] = DEFAULT_VAL_SUBJECTS,
    ) -> None:
        self.data = data
        self.seed = seed
        self.device = torch.device(device)
        self.val_subjects = choose_val_subjects(data.subject_train, val_subjects, seed)
        self._t = _prepare(data, self.val_subjects, self.device)
        # Cross-entropy of always predicting the training class prior, i.e. the entropy of
        # the training labels (ln 6 = 1.79 for balanced classes; 1.78 on the real data).
        self.baseline: float = self._t.prior_entropy

    @property
    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel (mean, std) used for the z-scoring."""
        return self._t.mean, self._t.std

    def train_generator(self, seed: int) -> torch.Generator:
        return make_generator(stream_seed(seed, "train"), self.device)

    def train_batch(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows drawn with replacement: x (B, 128, 9) float32, y (B,) int64."""
        n = self._t.y_train.shape[0]
        idx = torch.randint(0, n, (batch_size,), generator=generator, device=self.device)
        return self._t.x_train[idx], self._t.y_train[idx]

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``"val"``, ``"test"``, or ``"train"`` (all z-scored training windows)."""
        if name == "train":
            return self._t.x_train, self._t.y_train
        if name == "val":
            return self._t.x_val, self._t.y_val
        if name == "test":
            return self._t.x_test, self._t.y_test
        raise ValueError(f"unknown split {name!r}; valid: val, test, train")

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output, target)

    def trivial_output(self, n: int) -> torch.Tensor:
        """The log of the training class prior for every window (its accuracy: the share
        of the most frequent training class)."""
        counts = torch.bincount(self._t.y_train, minlength=len(CLASS_NAMES)).float()
        return (counts / counts.sum()).clamp_min(1e-12).log().expand(n, -1)

    def evaluate(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        """``loss`` (cross-entropy), ``acc`` and ``macro_f1`` of logits (N, 6)."""
        logits = output.detach().float()
        matrix = confusion(logits, target)
        return {
            "loss": float(F.cross_entropy(logits, target)),
            "acc": float(matrix.diagonal().sum()) / max(int(target.numel()), 1),
            "macro_f1": float(f1_from_confusion(matrix).mean()),
        }

    def confusion_matrix(self, output: torch.Tensor, target: torch.Tensor) -> list[list[int]]:
        """Counts, rows: true class, columns: predicted class, in ``CLASS_NAMES`` order."""
        return [[int(v) for v in row] for row in confusion(output, target).cpu().tolist()]

    def per_class_f1(self, output: torch.Tensor, target: torch.Tensor) -> list[float]:
        """F1 of each class in ``CLASS_NAMES`` order."""
        return [float(v) for v in f1_from_confusion(confusion(output, target)).cpu().tolist()]

    def solved(self, metrics: Mapping[str, float]) -> bool:
        return metrics["acc"] >= SOLVED_ACC

    def describe(self) -> dict[str, Any]:
        subjects = self.data.subject_train
        return {
            **pinned(self),
            "solved_acc": SOLVED_ACC,
            "data_seed": self.seed,
            "source": self.data.source,
            "channels": list(SIGNALS),
            "class_names": list(CLASS_NAMES),
            "val_subjects": list(self.val_subjects),
            "train_subjects": sorted(set(int(s) for s in subjects) - set(self.val_subjects)),
            "test_subjects": sorted(set(int(s) for s in self.data.subject_test)),
            "train_size": int(self._t.y_train.shape[0]),
            "val_size": int(self._t.y_val.shape[0]),
            "test_size": int(self._t.y_test.shape[0]),
            "normalization": "per-channel z-score, statistics of the training subjects",
        }


# --------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------

HAR_SUBJECTS = 30


def _path(value: Any) -> str | os.PathLike[str] | None:
    """A parameter check: a path (a string) or null."""
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise ValueError(f"expected a path or null, got {value!r}")
    return value


def _val_subjects(value: Any) -> int | list[int]:
    """A parameter check: how many training subjects validate (a count), or which (ids)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"must be >= 1, got {value}")
        return value
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"expected a count or a non-empty list of subject ids, got {value!r}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= HAR_SUBJECTS:
            raise ValueError(f"subject ids run from 1 to {HAR_SUBJECTS}, got {item!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"duplicate subject id in {list(value)!r}")
    return list(value)


def _optional(value: Any) -> Path | None:
    return None if value is None else Path(value).expanduser()


def build(params: Mapping[str, Any], *, seed: int, device: torch.device) -> HarTask:
    """The HAR task from its config parameters (see ``TASK.params``).

    Raises:
        ValueError: bad parameters; ``HarDataError`` (a ValueError) when the data are
            missing or broken.
    """
    opts = TASK.resolve(params)
    source = find_har(_optional(opts["data_dir"]), download=opts["download"])
    data = load_har(source, cache_dir=_optional(opts["cache_dir"]))
    subjects = opts["val_subjects"]
    return HarTask(data, seed=seed, device=device,
                   val_subjects=subjects if isinstance(subjects, int) else tuple(subjects))


def unavailable(params: Mapping[str, Any]) -> str | None:
    """Why a suite must run without HAR here (no copy at the default location, offline),
    or None. Given data that are missing or broken raise ``HarDataError``: bad input."""
    opts = TASK.resolve(params)
    if opts["data_dir"] is None:
        try:
            find_har(None, download=opts["download"])
        except HarDataError as err:
            return str(err)
    build(params, seed=0, device=torch.device("cpu"))  # reads and checks the data now
    return None


TASK = TaskInfo(
    name="har", unavailable=unavailable, rank=2, build=build, fixed_seq_len=WINDOW,
    params={
        "data_dir": TaskParam(None, _path, "the archive or extracted folder; null: the "
                              "cache, else a download", shown=True),
        "val_subjects": TaskParam(DEFAULT_VAL_SUBJECTS, _val_subjects,
                                  "held-out training subjects: a count or a list of ids"),
        "download": TaskParam(True, boolean, "download the archive when no copy is found"),
        "cache_dir": TaskParam(None, _path, "where the parsed arrays are cached"),
    },
    metric="acc", direction="maximize", metric_range=(0.0, 1.0), classes=CLASS_NAMES,
    solved=f"test accuracy >= {SOLVED_ACC:.2f}", baseline="the training class prior",
    read_at="The class is predicted at the last step, so the gradient flows from right to "
            "left.",
    description="UCI HAR: 6 activities from 9 raw inertial channels, 128 steps",
)
