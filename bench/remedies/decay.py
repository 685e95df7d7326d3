"""``decay``: decoupled weight decay on the recurrent matrix (Loshchilov & Hutter 2019).

After every optimizer step, ``W_hh <- W_hh - lr * lambda * W_hh``: the shrinkage acts on the
weights directly, outside the adaptive scaling of Adam or RMSprop (the AdamW form), so every
entry of W_hh decays at the same rate ``lr * lambda`` per step whatever its gradient
history; an L2 penalty in the loss (``l2``) is instead divided by Adam's running gradient
scale. For plain SGD, ``decay`` at lambda is ``l2`` at lambda / 2 (the penalty's gradient is
``2 lambda W``) up to the order of the two terms; with SGD's momentum (used here) ``decay`` is
the SGDW form, which keeps the decay out of the momentum buffer. ``lr`` is the step's
learning rate. AdamW applies the shrinkage just before its update instead of after it: the
two orders differ by ``lr^2 * lambda`` times the update, nothing at ``lambda = 0``. Tuned over
the same lambda range as ``l2``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from bench.registry import Remedy
from bench.remedies.l2 import LAMBDA

if TYPE_CHECKING:
    from bench.models import RecurrentModel


def decay(model: RecurrentModel, hp: Mapping[str, float], lr: float) -> None:
    """Shrink W_hh by the factor ``1 - lr * hp["decay"]`` (in place, after the step)."""
    model.recurrent_weight().mul_(1.0 - lr * hp["decay"])


REMEDY = Remedy(
    name="decay", axis="regularization", label="decay", marker="^", rank=2,
    search={"decay": LAMBDA},
    description="decoupled weight decay W_hh <- W_hh - lr * lambda * W_hh after each step "
                "(AdamW form; Loshchilov & Hutter 2019)",
    after_step=decay,
)
