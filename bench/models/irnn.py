"""``irnn``: the ReLU RNN with identity recurrent weights and zero biases (Le, Jaitly &
Hinton 2015, "A simple way to initialize recurrent networks of rectified linear units")."""

import torch
from torch import nn

from bench.models.cells import plain_rnn, rnn_cell
from bench.registry import ModelInfo


@torch.no_grad()
def init_identity(layer: nn.Module) -> None:
    nn.init.eye_(layer.get_parameter("weight_hh_l0"))
    # small input weights, as in Le et al.
    nn.init.normal_(layer.get_parameter("weight_ih_l0"), std=0.001)
    nn.init.zeros_(layer.get_parameter("bias_ih_l0"))
    nn.init.zeros_(layer.get_parameter("bias_hh_l0"))


MODEL = ModelInfo(
    name="irnn", label="IRNN (ReLU)", rank=1, color="#cc78bc",
    description="ReLU RNN, W_hh = I, zero biases, input weights N(0, 0.001^2) (Le et al. 2015)",
    layer=plain_rnn("relu"), init=init_identity, blocks=("hh",), cell=rnn_cell(torch.relu),
    activations={"h": "relu"}, gain=1.0, split="plain",  # max relu' = 1
)
