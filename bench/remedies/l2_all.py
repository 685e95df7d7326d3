"""``l2-all``: the L2 penalty of ``l2`` widened to every weight matrix.

``lambda * sum ||W||_F^2`` over the input, recurrent and head weight matrices (biases
excluded), added to the loss: the usual "weight regularization" of a whole network, for
comparison with ``l2``, which acts on the recurrent matrix alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from bench.registry import Remedy
from bench.remedies.l2 import LAMBDA

if TYPE_CHECKING:
    from bench.models import RecurrentModel


def penalty(model: RecurrentModel, hp: Mapping[str, float]) -> torch.Tensor:
    """``hp["l2"]`` times the sum of squared entries of the weight matrices."""
    norms = torch._foreach_norm(tuple(model.weight_matrices()))
    return hp["l2"] * torch.stack(norms).square().sum()


REMEDY = Remedy(
    name="l2-all", axis="regularization", label="L2 (all W)", marker="D", rank=1,
    search={"l2": LAMBDA},
    description="L2 penalty lambda * sum ||W||_F^2 on every weight matrix, in the loss",
    penalty=penalty,
)
