"""Whether a configuration's best tuned value lies at the edge of its search range: the one
check behind ``gradbench status``, the terminal leaderboard and the report.

A log-scale range (``search.<name>: {low, high, log: true}``) is the guess of where a
parameter works. When the best of enough trials lands in the outer tenth of it at either
end (in log space), the optimum may lie beyond it: the configuration's result is the
range's as much as the model's, and the range should be widened. With fewer complete trials
the best is mostly the luck of the random start-up draws, so nothing is said.

Both stages read the same facts from different stores (the run stage from Optuna's trial
records, the report from MLflow's runs) and hand them to ``range_edge`` as plain values.

Example:
    >>> from types import SimpleNamespace as Range
    >>> lr = Range(low=1e-3, high=1e-1, log=True, choices=None)
    >>> range_edge({"lr": lr}, {"lr": 0.08}, complete=10)
    'lr at the edge (high): widen the range'
    >>> range_edge({"lr": lr}, {"lr": 0.01}, complete=10), range_edge({"lr": lr}, {}, 3)
    ('inside', 'too few trials to tell')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

EDGE_SHARE = 0.1  # the outer tenth of a log range, at each end
EDGE_MIN_TRIALS = 8  # complete trials before the best's place in its range says anything
TOO_FEW = "too few trials to tell"
INSIDE = "inside"


class Range(Protocol):
    """A search entry as ``bench.config.SearchParam`` holds it."""

    @property
    def low(self) -> float | int | None: ...

    @property
    def high(self) -> float | int | None: ...

    @property
    def log(self) -> bool: ...

    @property
    def choices(self) -> tuple[float | int, ...] | None: ...


def is_log_range(entry: Range) -> bool:
    """A log-scale range of some width (not choices, not a single value)."""
    return (entry.choices is None and entry.log and entry.low is not None
            and entry.high is not None and 0 < float(entry.low) < float(entry.high))


def log_position(entry: Range, value: float) -> float:
    """Where ``value`` lies in a log-scale range: 0 at ``low``, 1 at ``high``; NaN for a
    range that is not one (``is_log_range``) or a value that is not positive."""
    if not is_log_range(entry) or not value > 0:
        return math.nan
    low, high = math.log(float(entry.low)), math.log(float(entry.high))  # type: ignore[arg-type]
    return (math.log(value) - low) / (high - low)


def edges(space: Mapping[str, Range], best: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The best's log-scale parameters in the outer ``EDGE_SHARE`` of their ranges, as
    (name, ``low`` | ``high``), in the space's order."""
    found = []
    for name, entry in space.items():
        value = best.get(name)
        try:
            where = log_position(entry, float(value))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if where < EDGE_SHARE:
            found.append((name, "low"))
        elif where > 1 - EDGE_SHARE:
            found.append((name, "high"))
    return found


def range_edge(space: Mapping[str, Range], best: Mapping[str, Any] | None,
               complete: int) -> str:
    """The verdict on a configuration's search after tuning.

    Args:
        space: the configuration's tuned parameters and their ranges
            (``bench.config.search_space``).
        best: the parameters of its best trial (Optuna's best), or None.
        complete: its complete tuning trials.

    Returns:
        ``""`` where no log-scale range is tuned (nothing to check) or there is no best
        yet, ``TOO_FEW`` below ``EDGE_MIN_TRIALS`` complete trials, ``"<name> at the edge
        (low|high): widen the range"`` (each parameter at an edge, joined by "; "), else
        ``INSIDE``.
    """
    if not any(is_log_range(e) for e in space.values()):
        return ""
    if complete < EDGE_MIN_TRIALS:
        return TOO_FEW
    if not best:
        return ""
    found = edges(space, best)
    if not found:
        return INSIDE
    return "; ".join(f"{name} at the edge ({side})" for name, side in found) \
        + ": widen the range"
