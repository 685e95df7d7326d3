"""Facts about tasks, models and remedies as the report shows them, from ``bench.registry``:
display order, labels, a task's metric range and solved rule, where its loss reads the hidden
states.

A name the registry does not know here (a plugin that does not import where the report runs,
a run of an older version) still renders: under its own name, after the known ones.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from bench import registry
from bench.registry import MODELS, NONE, REMEDIES, TASKS, ModelInfo, Remedy, TaskInfo


def _lookup(kind: registry.Registry[Any], name: str) -> Any:
    """The record of ``name``, or None where the registry cannot give one here."""
    if not name or name == NONE:
        return None
    return kind.find(name)  # unknown, or a plugin that does not import here: None


@functools.cache
def model_info(name: str) -> ModelInfo | None:
    return _lookup(MODELS, name)  # type: ignore[no-any-return]


@functools.cache
def task_info(name: str) -> TaskInfo | None:
    return _lookup(TASKS, name)  # type: ignore[no-any-return]


@functools.cache
def remedy_info(name: str) -> Remedy | None:
    return _lookup(REMEDIES, name)  # type: ignore[no-any-return]


def model_order(models: Iterable[str]) -> list[str]:
    """Distinct models in display order: the registry's rank, unknown ones last by name."""
    def key(name: str) -> tuple[int, int, str]:
        info = model_info(name)
        return (0, info.rank, name) if info is not None else (1, 0, name)

    return sorted(dict.fromkeys(models), key=key)


def task_order(tasks: Iterable[str]) -> list[str]:
    """Distinct tasks in display order: the registry's rank, unknown ones last by name."""
    def key(name: str) -> tuple[int, int, str]:
        info = task_info(name)
        return (0, info.rank, name) if info is not None else (1, 0, name)

    return sorted(dict.fromkeys(tasks), key=key)


def _known(name: str) -> str:
    """The name for ``bench.registry``'s pair helpers: none where the registry lacks it."""
    return name if name in ("", NONE) or remedy_info(name) is not None else NONE


def unknown_remedies(regularization: str, clipping: str) -> list[str]:
    """The remedies of a pair that the registry does not know here."""
    return [n for n in (regularization, clipping) if _known(n) != n]


@functools.cache
def remedy_label(regularization: str, clipping: str) -> str:
    """The label of a (regularization, clipping) pair (``none``, ``L2``, ``clip``, ``L2 +
    clip``, ...); a remedy the registry does not know shows under its own name."""
    label = registry.remedy_label(_known(regularization), _known(clipping))
    parts = ([] if label == NONE else [label]) + unknown_remedies(regularization, clipping)
    return " + ".join(parts) or NONE


def remedy_rank(regularization: str, clipping: str) -> tuple[Any, ...]:
    """Sort key of a pair: the registry's, pairs with an unknown remedy last."""
    return (bool(unknown_remedies(regularization, clipping)),
            *registry.remedy_rank(_known(regularization), _known(clipping)),
            remedy_label(regularization, clipping))


def remedy_order(frame: pd.DataFrame) -> list[str]:
    """The remedy labels of a frame's (regularization, clipping) pairs, in display order."""
    pairs = dict.fromkeys(zip(frame["regularization"].astype(str),
                              frame["clipping"].astype(str), strict=True))
    return list(dict.fromkeys(remedy_label(*p) for p in sorted(pairs,
                                                               key=lambda p: remedy_rank(*p))))


def solved_rule(task: str) -> str:
    """The task's solved rule in words (from the registry)."""
    info = task_info(task)
    return info.solved if info is not None and info.solved else "see the task"


def metric_range(task: str, metric: str) -> tuple[float, float]:
    """The range of the task's headline metric (from the registry); unbounded otherwise."""
    info = task_info(task)
    if info is not None and info.metric == metric:
        return info.metric_range
    return -math.inf, math.inf


def read_at(task: str) -> str:
    """Where the task's loss reads the hidden states (its record's ``read_at``)."""
    info = task_info(task)
    return info.read_at if info is not None else ""
