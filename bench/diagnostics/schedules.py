"""When to probe: schedules are plain callables ``step -> bool``.

Example:
    >>> [s for s in range(12) if every(5)(s)]
    [0, 5, 10]
    >>> [s for s in range(120) if log_spaced(4)(s)]
    [0, 1, 2, 3, 6, 10, 18, 32, 56, 100]
"""

from __future__ import annotations

import math
from collections.abc import Callable

Schedule = Callable[[int], bool]


def every(k: int) -> Schedule:
    """Step 0 (initialisation), then every ``k`` steps."""
    if k < 1:
        raise ValueError(f"every(k): k must be >= 1, got {k}")

    def schedule(step: int) -> bool:
        return step % k == 0

    return schedule


def log_spaced(per_decade: int = 4) -> Schedule:
    """Step 0, then ``round(10 ** (i / per_decade))`` for i = 0, 1, 2, ...

    Dense early, where the gradients change fastest, sparse later: 1, 2, 3, 6, 10, 18, 32,
    56, 100, ... with 4 per decade.
    """
    if per_decade < 1:
        raise ValueError(f"log_spaced: per_decade must be >= 1, got {per_decade}")

    def schedule(step: int) -> bool:
        if step <= 0:
            return step == 0
        position = per_decade * math.log10(step)
        candidates = {math.floor(position), math.ceil(position)}
        return any(round(10 ** (i / per_decade)) == step for i in candidates)

    return schedule


def never(step: int) -> bool:
    """No scheduled probe (the observer still probes at the end of a run)."""
    return False


DEFAULT_PROBE_EVERY = 100
DEFAULT_SCHEDULE: Schedule = every(DEFAULT_PROBE_EVERY)
