"""``rnn``: the tanh RNN with PyTorch's default initialisation, the lecture's vanilla RNN."""

import torch

from bench.models.cells import keep_default, plain_rnn, rnn_cell
from bench.registry import ModelInfo

MODEL = ModelInfo(
    name="rnn", label="tanh RNN", rank=0, color="#d55e00",
    description="tanh RNN, PyTorch's default initialisation uniform(-1/sqrt(H), 1/sqrt(H))",
    layer=plain_rnn("tanh"), init=keep_default, blocks=("hh",), cell=rnn_cell(torch.tanh),
    activations={"h": "tanh"}, gain=1.0, split="plain",  # max tanh' = 1
)
