"""``orth-rnn``: the tanh RNN with an orthogonal recurrent matrix at initialisation.

Saxe, McClelland & Ganguli (2014) showed that orthogonal weights preserve the norm of signals
through depth; Henaff, Szlam & LeCun (2016) used orthogonal W_hh for long-memory RNN tasks.
Every singular value of an orthogonal W_hh is 1, so the lecture's W_r^t factor starts at
norm 1 for every t: whatever vanishing this model shows at initialisation comes from the
product of tanh derivatives, which is what sets it apart from ``rnn`` (whose W_r^t factor
shrinks) and from ``irnn`` (whose ReLU derivative is 1 where active).
"""

import torch
from torch import nn

from bench.models.cells import plain_rnn, rnn_cell
from bench.registry import ModelInfo


@torch.no_grad()
def init_orthogonal(layer: nn.Module) -> None:
    """W_hh orthogonal (QR of a Gaussian matrix, drawn from torch's global generator);
    input weights and biases keep PyTorch's default."""
    nn.init.orthogonal_(layer.get_parameter("weight_hh_l0"))


MODEL = ModelInfo(
    name="orth-rnn", label="orthogonal tanh RNN", rank=4, color="#de8f05",
    description="tanh RNN, orthogonal W_hh (Saxe et al. 2014; Henaff et al. 2016)",
    layer=plain_rnn("tanh"), init=init_orthogonal, blocks=("hh",), cell=rnn_cell(torch.tanh),
    activations={"h": "tanh"}, gain=1.0, split="plain",  # max tanh' = 1
)
