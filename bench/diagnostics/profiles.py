"""The per-time-step gradient profile ``||dL/dh_t||`` (and ``||dL/dc_t||`` for the LSTM).

``dL/dh_t`` here is the TOTAL derivative of the loss through time: through the head at step t
(the *direct* term) and through h_{t+1}, ..., h_T. It is computed on the unrolled twin
(``bench.diagnostics.unrolled``) with one ``torch.autograd.grad`` call, which leaves every
``.grad`` untouched, so a probe never disturbs training.

Do not read it off the fused layer: the gradient autograd gives on the output sequence of a
fused ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (``retain_grad`` or ``autograd.grad`` on the
output) is only the direct term, exactly zero for every t < T when the loss reads the last
step only (the adding task). The twin gives that direct term too (``ProbeGrads.direct``): it
is what the general form of the theory bound needs.

Averaging: L is the task's loss on the whole probe batch (a batch mean, so each example's
share carries a factor 1/B). The profile is the norm per example, then the mean over the
batch: ``profile[t] = mean_b ||dL/dh_t[b]||``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from bench.diagnostics.unrolled import layer_weights, unroll
from bench.models import RecurrentModel

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # task.loss(output, target)


@dataclass
class ProbeGrads:
    """Gradients of the task loss on one probe batch, from one backward of the twin.

    Attributes:
        loss: the task loss on the probe batch.
        h: (B, T, H) total derivatives dL/dh_t.
        c: (B, T, H) total derivatives dL/dc_t (LSTM), else None.
        direct: (B, T, H) the direct terms: gradient on the head's input at step t only.
        params: parameter name -> dL/dparameter on the probe batch.
        activations: (B, T, H) per named activation (``h`` and the gates), detached.
        states: (B, T, H) per state name (``h``, and ``c`` of the LSTM): h_1..h_T, detached
            (the exact split of each step reads h_(t-1) and c_(t-1)).
    """

    loss: float
    h: torch.Tensor
    c: torch.Tensor | None
    direct: torch.Tensor
    params: dict[str, torch.Tensor]
    activations: dict[str, torch.Tensor]
    states: dict[str, torch.Tensor] = field(default_factory=dict)


def probe_gradients(
    model: RecurrentModel, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor
) -> ProbeGrads:
    """One forward and one ``autograd.grad`` of the twin on a probe batch ``(x, y)``.

    ``.grad`` of the parameters, the model's mode and the random number generators are left
    as they are. ``x`` (and a floating-point ``y``) are cast to the parameters' dtype.
    """
    dtype = layer_weights(model).w_hh.dtype
    x = x.to(dtype)
    y = y.to(dtype) if y.is_floating_point() else y
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    with torch.enable_grad():
        run = unroll(model, x)
        loss = loss_fn(run.output, y)
        inputs = [*run.hs, *run.cs, run.hidden, *(p for _, p in named)]
        grads = torch.autograd.grad(loss, inputs, allow_unused=True, materialize_grads=True)
    steps = len(run.hs)
    h = torch.stack(grads[:steps], dim=1)  # (B, T, H)
    c = torch.stack(grads[steps : 2 * steps], dim=1) if run.cs else None
    rest = grads[steps + len(run.cs) :]
    params = {name: g for (name, _), g in zip(named, rest[1:], strict=True)}
    states = {"h": run.hidden.detach()}
    if run.cs:
        states["c"] = torch.stack(run.cs, dim=1).detach()
    return ProbeGrads(float(loss.detach()), h, c, rest[0], params, run.activations, states)


def example_norms(grads: torch.Tensor) -> torch.Tensor:
    """Per-example norms (B, T) of per-step gradients (B, T, H), in float64 on the CPU.

    Squared in float64: float32 squares of vanished gradients (~1e-25) would underflow to 0.
    """
    norms: torch.Tensor = torch.linalg.vector_norm(grads.detach().double(), dim=-1)
    return norms.cpu()


def profile(grads: torch.Tensor) -> torch.Tensor:
    """The profile (T,): the per-example norm of (B, T, H) gradients, averaged over B."""
    return example_norms(grads).mean(dim=0)
