"""``lstm``: the LSTM with forget-gate bias 1 (Jozefowicz, Zaremba & Sutskever 2015)."""

import torch
from torch import nn

from bench.models.cells import lstm_cell
from bench.registry import ModelInfo


def make_layer(input_size: int, hidden_size: int) -> nn.Module:
    return nn.LSTM(input_size, hidden_size, batch_first=True)


@torch.no_grad()
def init_forget_bias(layer: nn.Module) -> None:
    # PyTorch gate order is (input, forget, cell, output); two bias vectors are summed,
    # so put the whole forget bias of 1 in one and zero the other.
    hidden = layer.get_parameter("bias_hh_l0").shape[0] // 4  # the four gates stacked
    layer.get_parameter("bias_ih_l0")[hidden : 2 * hidden].fill_(1.0)
    layer.get_parameter("bias_hh_l0")[hidden : 2 * hidden].fill_(0.0)


MODEL = ModelInfo(
    name="lstm", label="LSTM", rank=2, color="#0173b2",
    description="LSTM, forget-gate bias 1 (Jozefowicz et al. 2015)",
    layer=make_layer, init=init_forget_bias, blocks=("i", "f", "g", "o"), cell=lstm_cell,
    state=("h", "c"), carry="f", split="lstm",
    activations={"i": "sigmoid", "f": "sigmoid", "g": "tanh", "o": "sigmoid",
                 "tanh_c": "tanh"},
)
