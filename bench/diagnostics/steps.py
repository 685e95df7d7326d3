"""Summary of the cheap quantities the training loop records every step.

The loop records the global gradient norm before clipping (fused ``_foreach_norm``, or the
value ``clip_grad_norm_`` returns; kept on the device, no host sync per parameter) and
whether the step was clipped (a clipping remedy acted: the gradients rescaled or clamped, or
a block of W_hh rescaled). This module turns those per-step lists into a few numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StepSummary:
    """Per-step gradient quantities of a run, summarised.

    Attributes:
        steps: steps recorded.
        clip_rate: fraction of steps at which the clipping remedy acted (0 without one).
        n_clipped: number of clipped steps.
        n_nonfinite: steps whose global gradient norm was NaN or inf.
        first_nonfinite: the first such step (0-based), or None.
        max_grad_norm: largest finite global norm (NaN if none).
        median_grad_norm: median of the finite global norms (NaN if none).
    """

    steps: int
    clip_rate: float
    n_clipped: int
    n_nonfinite: int
    first_nonfinite: int | None
    max_grad_norm: float
    median_grad_norm: float


def summarize_steps(grad_norm: Sequence[float], clipped: Sequence[bool]) -> StepSummary:
    """Summarise per-step global gradient norms and clip flags (``TrainResult`` fields)."""
    finite = [v for v in grad_norm if math.isfinite(v)]
    bad = [i for i, v in enumerate(grad_norm) if not math.isfinite(v)]
    n_clipped = sum(bool(c) for c in clipped)
    return StepSummary(
        steps=len(grad_norm),
        clip_rate=n_clipped / len(clipped) if clipped else 0.0,
        n_clipped=n_clipped,
        n_nonfinite=len(bad),
        first_nonfinite=bad[0] if bad else None,
        max_grad_norm=max(finite) if finite else math.nan,
        median_grad_norm=statistics.median(finite) if finite else math.nan,
    )
