"""The one scoring rule: a score is worth at most the trivial predictor's, and a run that
ends far above the trivial predictor's loss has diverged.

A run worse than predicting the mean (the task's trivial predictor, ``tasks.trivial_metrics``,
measured on the same split) is worth the mean, finite or not: so no finite blow-up scores
worse than a run that reached NaN, and a mean over seeds is not carried by one seed's
garbage. Each metric is capped in its own direction: the loss (and a lower-is-better metric)
from above, a higher-is-better metric (accuracy) from below. The uncapped values are kept
beside (``TrainResult.test_uncapped``, the trial's ``value_uncapped``).

Example:
    >>> capped({"loss": 4.0, "acc": 0.05}, {"loss": 1.8, "acc": 0.19}, "acc", "maximize")
    {'loss': 1.8, 'acc': 0.19}
    >>> blew_up(2.0, trivial_loss=0.17, factor=10.0), blew_up(1.0, trivial_loss=0.17, factor=10.0)
    (True, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def direction_of(key: str, metric: str, direction: str) -> str | None:
    """Which way ``key`` is better: the loss lower, the task's ``metric`` in its
    ``direction``; None for a key of unknown direction (left as it is)."""
    if key == "loss":
        return "minimize"
    return direction if key == metric else None


def cap(value: float, trivial: float, direction: str) -> float:
    """``value`` no worse than ``trivial`` (a non-finite value is worth ``trivial``)."""
    if not math.isfinite(value):
        return trivial
    return max(value, trivial) if direction == "maximize" else min(value, trivial)


def capped(metrics: Mapping[str, float], trivial: Mapping[str, float], metric: str,
           direction: str) -> dict[str, float]:
    """``metrics`` with each one of known direction capped at the trivial predictor's
    (``trivial``: its metrics on the same split; a key it lacks is left as it is)."""
    out = {}
    for key, value in metrics.items():
        better = direction_of(key, metric, direction)
        out[key] = float(value) if better is None or key not in trivial else cap(
            float(value), float(trivial[key]), better)
    return out


def blew_up(loss: float, trivial_loss: float | None, factor: float) -> bool:
    """The divergence rule: a non-finite loss, or one above ``factor`` times the trivial
    predictor's (``trivial_loss``; None: unknown, only the non-finite rule applies)."""
    if not math.isfinite(loss):
        return True
    return trivial_loss is not None and math.isfinite(trivial_loss) and \
        loss > factor * trivial_loss
