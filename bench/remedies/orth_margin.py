"""``orth-margin``: every singular value of W_hh held within ``[1 - m, 1 + m]``, the
``W_r^t`` remedy taken to its limit.

Weight clipping (``weight``) bounds only the largest singular value of each gate block of
W_hh from above, so the powers ``W^t`` cannot grow, but they may still shrink. This remedy
bounds them both ways: after every optimizer step each gate block (one for a plain RNN, four
for the LSTM, three for the GRU, as ``weight`` splits them) with a singular value outside
``[1 - m, 1 + m]`` is replaced by its nearest matrix (in Frobenius and spectral norm) whose
singular values lie inside: with ``W = U S V^T`` its SVD, ``W <- U clamp(S, 1 - m, 1 + m)
V^T``. Every product of ``t`` such blocks then has its singular values within
``[(1 - m)^t, (1 + m)^t]``; ``m = 0`` keeps each block exactly orthogonal (``U V^T``, the
orthogonal factor of its polar decomposition).

Vorontsov, Trabelsi, Kadoury & Pal (2017, "On orthogonality and learning recurrent networks
with long term dependencies") parametrise exactly this set: ``W = U S V^T`` with U and V kept
orthogonal by geodesic steps and each singular value a sigmoid of a free parameter, mapped
into ``[1 - m, 1 + m]``. This module is not their method: it is the projected-gradient
version of the same constraint (an ordinary step on W_hh, then the projection onto the set),
which needs no change to the model or the optimizer.

The margin ``m`` is searched log-uniformly in 1e-3 to 0.5 by default. At 1e-3 the bound on
``W^t`` is within ``[0.90, 1.11]`` for t = 100 and ``[0.37, 2.7]`` for t = 1,000: orthogonal
for this benchmark's lengths, so the range needs no 0 (which a log scale cannot hold). At
0.5 the lower bound lets ``W^t`` fall as ``0.5^t`` and the upper bound lets it grow as
``1.5^t``: the constraint has all but gone. A config fixes ``m = 0`` with ``choices: [0]``.

The step counts as clipped when some block was replaced. A block counts as inside when its
singular values are within the margin up to the float rounding of the projection itself
(``eps(dtype) * sqrt(H) * (1 + m)``, a bound on the spectral norm of the rounding of a block
of that Frobenius norm), so a block that was just projected is left as it is. The SVD is
computed in float64, on the weights' device, one batched call over the blocks per step;
its cost per step is in ``docs/remedies.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from bench.registry import Remedy, SearchDefault

if TYPE_CHECKING:
    from bench.models import RecurrentModel


def clamp_singular_values(blocks: torch.Tensor, margin: float) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
    """Each (H, H) block of ``blocks`` (k, H, H) with its singular values clamped to
    ``[1 - margin, 1 + margin]`` (in the blocks' dtype), and which blocks had one outside
    (beyond the rounding tolerance; (k,) bool). A block with a non-finite entry is left as
    it is and not counted: the training loop reports the divergence."""
    finite = torch.isfinite(blocks).flatten(1).all(dim=1)
    safe = torch.where(finite.view(-1, 1, 1), blocks, torch.zeros_like(blocks)).double()
    u, s, vh = torch.linalg.svd(safe, full_matrices=False)
    low, high = max(1.0 - margin, 0.0), 1.0 + margin
    tol = torch.finfo(blocks.dtype).eps * math.sqrt(blocks.shape[-1]) * high
    outside = ((s < low - tol) | (s > high + tol)).any(dim=1) & finite
    projected = ((u * s.clamp(low, high).unsqueeze(1)) @ vh).to(blocks.dtype)
    return torch.where(outside.view(-1, 1, 1), projected, blocks), outside


def project(model: RecurrentModel, hp: Mapping[str, float], lr: float) -> torch.Tensor:
    """Clamp the singular values of every gate block of W_hh to ``1 +- hp["margin"]``;
    True if a block was changed."""
    weight = model.recurrent_weight()
    count = len(model.info.blocks)
    blocks = weight.view(count, weight.shape[1], weight.shape[1])
    clamped, outside = clamp_singular_values(blocks, hp["margin"])
    blocks.copy_(clamped)
    return outside.any()


REMEDY = Remedy(
    name="orth-margin", axis="clipping", label="singular values within 1 +- m",
    style=(0, (8, 2)), rank=3,
    search={"margin": SearchDefault(1.0e-3, 0.5)},
    description="each gate block of W_hh projected after every step so that every singular "
                "value lies in [1 - m, 1 + m] (m = 0: orthogonal; the projected form of "
                "Vorontsov et al. 2017's constraint)",
    after_step=project,
)
