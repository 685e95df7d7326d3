"""Gradient norms per parameter group (the global norm, every step, is the training loop's:
``bench.train.global_grad_norm``).

Groups of a ``RecurrentModel``: ``input`` (``rnn.weight_ih_l0``), ``recurrent``
(``rnn.weight_hh_l0``), ``bias`` (the recurrent layer's biases) and ``head`` (the output
layer's weight and bias). The group norms squared add up to the global norm squared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

GROUPS = ("input", "recurrent", "bias", "head")


def parameter_group(name: str) -> str:
    """The group of a parameter of a ``RecurrentModel``, from its qualified name."""
    if name.startswith("head."):
        return "head"
    if "weight_ih" in name:
        return "input"
    if "weight_hh" in name:
        return "recurrent"
    if "bias" in name:
        return "bias"
    raise ValueError(f"parameter {name!r} belongs to no group of {', '.join(GROUPS)}")


def group_grad_norms(named_grads: Iterable[tuple[str, torch.Tensor | None]]) -> dict[str, float]:
    """Norm of the gradients of each group, from ``(name, grad)`` pairs.

    One fused ``_foreach_norm`` and a single host sync. Groups without any gradient are
    omitted; missing (None) gradients are skipped.
    """
    pairs = [(name, g) for name, g in named_grads if g is not None]
    if not pairs:
        return {}
    norms = torch.stack(torch._foreach_norm([g.detach() for _, g in pairs])).double().tolist()
    squares: dict[str, float] = {}
    for (name, _), norm in zip(pairs, norms, strict=True):
        group = parameter_group(name)
        squares[group] = squares.get(group, 0.0) + norm * norm
    return {group: math.sqrt(squares[group]) for group in GROUPS if group in squares}
