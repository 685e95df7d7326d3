"""``norm``: gradient-norm clipping (Pascanu, Mikolov & Bengio 2013).

When the global norm of all gradients exceeds tau (``clip``), every gradient is rescaled by
``tau / (norm + 1e-6)``: the direction is kept and the step bounded. Computed from the norm
the loop has already measured (``torch.nn.utils.clip_grads_with_norm_``), so it costs one
fused multiply.
"""

from collections.abc import Mapping, Sequence

import torch

from bench.registry import Remedy, SearchDefault


def clip(
    params: Sequence[torch.nn.Parameter], norm: torch.Tensor, hp: Mapping[str, float]
) -> torch.Tensor:
    """Rescale the gradients to norm ``hp["clip"]`` when above it; True if it did."""
    tau = hp["clip"]
    torch.nn.utils.clip_grads_with_norm_(params, tau, norm, foreach=True)
    return norm > tau


REMEDY = Remedy(
    name="norm", axis="clipping", label="norm clip", style="--", rank=0,
    search={"clip": SearchDefault(0.1, 10.0)},
    description="global gradient-norm clipping at tau (Pascanu et al. 2013)",
    after_backward=clip,
)
