"""Summaries of a gradient profile: how fast ``||dL/dh_t||`` falls with the lag ``T - t``.

Given ``norms[0..T-1]`` = ``||dL/dh_1||, ..., ||dL/dh_T||`` (lag = T - t, so ``norms[-1]``
has lag 0):

- ``log10_ratio`` = log10(||dL/dh_1|| / ||dL/dh_T||): about -T * 0.3 when each step halves
  the gradient, 0 when nothing is lost, positive when it grows.
- ``decay_rate``: least-squares slope of log10(norm) against lag, in decades per step;
  negative means vanishing, positive exploding.
- ``horizon``: the largest lag whose norm is still above ``HORIZON_TOL`` (1e-3) of the
  profile's maximum: how far back the gradient still carries signal.

Zeros and non-finite values never raise; the summary says what happened in ``flag``:

- ``ok``: all norms finite and positive.
- ``empty``: no norms at all; every number is NaN.
- ``nonfinite``: some norm is NaN or inf (a diverged model); every number is NaN.
- ``all_zero``: every norm is 0 (e.g. a dead network); every number is NaN.
- ``has_zeros``: some norms are 0 (usually underflow of a vanished gradient). The zeros are
  left out of the slope fit (log of 0 is undefined; NaN when fewer than 2 points remain),
  ``log10_ratio`` is NaN if either end is 0, ``horizon`` is computed as usual.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

HORIZON_TOL = 1e-3


@dataclass(frozen=True)
class ProfileSummary:
    """The three numbers of a profile and a flag telling whether they are trustworthy."""

    log10_ratio: float
    decay_rate: float
    horizon: float  # a lag in steps (an integer), or NaN
    flag: str  # ok | empty | nonfinite | all_zero | has_zeros


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys against xs; NaN with fewer than two distinct xs."""
    n = len(xs)
    if n < 2:
        return math.nan
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    return sxy / sxx if sxx > 0 else math.nan


def _horizon(norms: Sequence[float], tol: float) -> float:
    top = max(norms)
    steps = len(norms)
    lags = [steps - 1 - i for i, v in enumerate(norms) if v > tol * top]
    return float(max(lags))


def summarize_profile(norms: Sequence[float], *, tol: float = HORIZON_TOL) -> ProfileSummary:
    """Summarise a profile ordered t = 1..T (see the module docstring for the definitions).

    Args:
        norms: ``||dL/dh_t||`` for t = 1..T.
        tol: the horizon's threshold, relative to the profile's maximum.
    """
    values = [float(v) for v in norms]
    nan = math.nan
    if not values:
        return ProfileSummary(nan, nan, nan, "empty")
    if not all(math.isfinite(v) for v in values):
        return ProfileSummary(nan, nan, nan, "nonfinite")
    if max(values) <= 0.0:
        return ProfileSummary(nan, nan, nan, "all_zero")
    steps = len(values)
    points = [(steps - 1 - i, math.log10(v)) for i, v in enumerate(values) if v > 0.0]
    rate = _slope([p[0] for p in points], [p[1] for p in points])
    first, last = values[0], values[-1]
    ratio = math.log10(first) - math.log10(last) if first > 0.0 and last > 0.0 else nan
    flag = "ok" if len(points) == steps else "has_zeros"
    return ProfileSummary(ratio, rate, _horizon(values, tol), flag)
