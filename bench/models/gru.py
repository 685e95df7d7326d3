"""``gru``: the GRU with PyTorch's default initialisation."""

from torch import nn

from bench.models.cells import gru_cell, keep_default
from bench.registry import ModelInfo


def make_layer(input_size: int, hidden_size: int) -> nn.Module:
    return nn.GRU(input_size, hidden_size, batch_first=True)


MODEL = ModelInfo(
    name="gru", label="GRU", rank=3, color="#029e73",
    description="GRU, PyTorch's default initialisation",
    layer=make_layer, init=keep_default, blocks=("r", "z", "n"), cell=gru_cell,
    activations={"r": "sigmoid", "z": "sigmoid", "n": "tanh"}, carry="z", split="gru",
)
