"""``l2``: an L2 penalty on the recurrent matrix, ``lambda * ||W_hh||_F^2``, added to the loss.

It acts on W_hh only (every gate block of it), the lecture's ``W_r``: the matrix whose powers
``W_r^t`` make gradients explode or vanish. ``l2-all`` widens it to every weight matrix.
Under Adam or RMSprop a penalty in the loss is not weight decay: its gradient is rescaled by
the adaptive step like any other (``decay`` is the decoupled form).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from bench.registry import Remedy, SearchDefault

if TYPE_CHECKING:
    from bench.models import RecurrentModel

LAMBDA = SearchDefault(1.0e-6, 1.0e-2)  # the lambda range of the penalty and of decay


def penalty(model: RecurrentModel, hp: Mapping[str, float]) -> torch.Tensor:
    """``hp["l2"]`` times the sum of squared entries of W_hh."""
    return hp["l2"] * model.recurrent_weight().square().sum()


REMEDY = Remedy(
    name="l2", axis="regularization", label="L2", marker="s", rank=0,
    search={"l2": LAMBDA},
    description="L2 penalty lambda * ||W_hh||_F^2 on the recurrent matrix, in the loss",
    penalty=penalty,
)
