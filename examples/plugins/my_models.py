"""A model of your own: the np-RNN (Talathi & Vartak 2016).

A ReLU RNN whose recurrent matrix starts as a normalised positive-definite matrix:
``A = R^T R / H`` with R standard normal, then ``W_hh = A / lambda_max(A)``, so its largest
eigenvalue is exactly 1 and the others lie in (0, 1). Like the IRNN it avoids shrinking
activity along the top direction, without the IRNN's identity on every direction.

It reuses PyTorch's fused ``nn.RNN`` (cuDNN on a GPU) and the plain-RNN cell of the unrolled
twin, so the gradient profiles are exact. Use it from a config in this directory:

    models: [rnn, lstm, my_models:NP_RNN]
"""

from __future__ import annotations

import torch
from torch import nn

from bench.models.cells import plain_rnn, rnn_cell
from bench.registry import ModelInfo


@torch.no_grad()
def init_np(layer: nn.Module) -> None:
    hidden = layer.hidden_size
    r = torch.randn(hidden, hidden)
    a = r.T @ r / hidden  # positive definite
    layer.weight_hh_l0.copy_(a / torch.linalg.eigvalsh(a).max())
    nn.init.normal_(layer.weight_ih_l0, std=1.0 / hidden**0.5)
    nn.init.zeros_(layer.bias_ih_l0)
    nn.init.zeros_(layer.bias_hh_l0)


NP_RNN = ModelInfo(
    name="np-rnn", label="np-RNN (ReLU)",
    description="ReLU RNN, W_hh normalised positive definite (Talathi & Vartak 2016)",
    layer=plain_rnn("relu"), init=init_np, blocks=("hh",), cell=rnn_cell(torch.relu),
    activations={"h": "relu"}, gain=1.0, split="plain",  # max relu' = 1
)
