"""``value``: gradient-value clipping, each gradient entry clamped to ``[-tau, tau]``.

The older form of clipping (Mikolov 2012, used for his RNN language models): unlike ``norm``
it changes the direction of the gradient, entry by entry. ``tau`` is ``clip_value``; the step
counts as clipped when some entry was beyond it.
"""

from collections.abc import Mapping, Sequence

import torch

from bench.registry import Remedy, SearchDefault


def clip(
    params: Sequence[torch.nn.Parameter], norm: torch.Tensor, hp: Mapping[str, float]
) -> torch.Tensor:
    """Clamp every gradient entry to ``[-tau, tau]``; True if one was beyond it."""
    tau = hp["clip_value"]
    grads = [p.grad for p in params if p.grad is not None]
    largest = torch.stack(torch._foreach_norm(grads, float("inf"))).max()
    torch._foreach_clamp_min_(grads, -tau)
    torch._foreach_clamp_max_(grads, tau)
    return largest > tau


REMEDY = Remedy(
    name="value", axis="clipping", label="value clip", style="-.", rank=1,
    search={"clip_value": SearchDefault(1.0e-3, 1.0)},
    description="gradient-value clipping: every gradient entry clamped to [-tau, tau]",
    after_backward=clip,
)
