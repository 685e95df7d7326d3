"""``l2``: an L2 penalty on the weight matrices, ``lambda * sum ||W||_F^2``, added to the loss.

It acts on every weight matrix of the model (input, recurrent and head; biases excluded).
Under Adam a penalty in the loss is not weight decay: its gradient is rescaled by the
adaptive step like any other.
"""

from collections.abc import Mapping

import torch

from bench.registry import Remedy, SearchDefault


def penalty(model: torch.nn.Module, hp: Mapping[str, float]) -> torch.Tensor:
    """``hp["l2"]`` times the sum of squared entries of the weight matrices."""
    norms = torch._foreach_norm(model.weight_matrices())
    return hp["l2"] * torch.stack(norms).square().sum()


REMEDY = Remedy(
    name="l2", axis="regularization", label="L2", style="-.", rank=0,
    search={"l2": SearchDefault(1.0e-6, 1.0e-2)},
    description="L2 penalty lambda * sum ||W||_F^2 on the weight matrices, in the loss",
    penalty=penalty,
)
