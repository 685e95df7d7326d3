"""``weight``: weight clipping, the lecture's remedy for the ``W_r^t`` factor.

After every optimizer step each gate block of W_hh (one for a plain RNN, four for the LSTM,
three for the GRU) whose spectral norm ``sigma = ||W||_2`` exceeds ``tau`` (``w_max``) is
rescaled by ``tau / sigma``: its largest singular value becomes ``tau`` and every direction
is kept, as norm clipping keeps the gradient's. The powers ``W^t`` then grow at most like
``tau^t``; ``tau`` is tuned around 1. The step counts as clipped when some block was
rescaled.

``sigma`` is exact: the square root of the largest eigenvalue of ``W W^T``, from one batched
symmetric eigensolver call over the blocks in float64 (``eigvalsh``, about 1.5x faster than
an SVD at these sizes, and equal to ``torch.linalg.matrix_norm(ord=2)`` to ~1e-7). Power
iteration would be cheaper still, but warm-started for a few iterations per step it lags a
fast-moving W_hh (measured: 33% above tau while training with Adam at lr 3e-2), so it cannot
promise the bound. ``benchmarks/overhead.py`` prices the projection per step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from bench.registry import Remedy, SearchDefault

if TYPE_CHECKING:
    from bench.models import RecurrentModel


def spectral_norms(blocks: torch.Tensor) -> torch.Tensor:
    """The largest singular value of each (H, H) block of ``blocks`` (k, H, H), in the
    blocks' dtype. Non-finite entries count as 0 (the training loop reports the divergence),
    so the eigensolver never sees them."""
    safe = torch.nan_to_num(blocks.double(), nan=0.0, posinf=0.0, neginf=0.0)
    gram = safe @ safe.transpose(1, 2)
    return torch.linalg.eigvalsh(gram)[:, -1].clamp_min(0.0).sqrt().to(blocks.dtype)


def project(model: RecurrentModel, hp: Mapping[str, float], lr: float) -> torch.Tensor:
    """Rescale every gate block of W_hh to spectral norm ``hp["w_max"]`` when above it;
    True if one was rescaled."""
    tau = hp["w_max"]
    weight = model.recurrent_weight()
    count = len(model.info.blocks)
    blocks = weight.view(count, weight.shape[1], weight.shape[1])
    sigma = spectral_norms(blocks)
    blocks.mul_((tau / sigma).clamp(max=1.0).view(count, 1, 1))
    return (sigma > tau).any()


REMEDY = Remedy(
    name="weight", axis="clipping", label="weight clip", style="-", rank=2,
    search={"w_max": SearchDefault(0.5, 2.0)},
    description="weight clipping: each gate block of W_hh rescaled to spectral norm <= tau "
                "after every step",
    after_step=project,
)
