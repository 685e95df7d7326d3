"""Many small models at once: k LSTMs in one batched-weights step against k fused runs.

A small recurrent model (H=32, T=100, B=64) is limited by the cost of launching operations,
not by FLOPs. On a CPU, k separate runs of the fused ``nn.LSTM`` in parallel worker
processes are the way to use the machine; on a GPU one small model leaves the device nearly
idle, and training k models in one step could win. This measures, for each k, the training
time per model-step of:

- ``separate``: k models of the project (``bench.models.build_model("lstm", ...)``, the fused
  layer; cuDNN on a GPU) trained one after the other, each with its own batch and Adam;
- ``batched``: the same k models as one module whose weights are stacked along a model axis
  (``BatchedLSTM`` below), unrolled over time with batched matmuls (``torch.baddbmm``: one
  call per time step for all k), each model on its own batch, one Adam over the stacks.

The ratio printed is separate / batched time per model-step: above 1 the batched step wins.
Checked before timing: with k=1 and the fused model's weights, ``BatchedLSTM`` gives the same
outputs. The project adopts a batched model only where this wins on the device at hand; k
worker processes sharing a device are measured by ``benchmarks/scaling.py --device cuda``.

Usage:
    python benchmarks/many_models.py                      # CPU, one thread, k = 1..16
    python benchmarks/many_models.py --device cuda --ks 1,4,16,64
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import torch
from torch import nn

from bench.models import ModelSizes, build_model, select_device
from bench.train import configure_torch
from tasks import adding


class BatchedLSTM(nn.Module):
    """k single-layer LSTMs with a linear head on the last step, weights stacked (k, ...).

    Gate order and initialisation follow ``nn.LSTM`` (input, forget, cell, output;
    uniform(-1/sqrt(H), 1/sqrt(H)); the project's forget-gate bias 1).
    """

    def __init__(self, k: int, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(hidden_size)

        def uniform(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

        self.hidden_size = hidden_size
        self.w_ih = uniform(k, input_size, 4 * hidden_size)
        self.w_hh = uniform(k, hidden_size, 4 * hidden_size)
        self.bias = nn.Parameter(torch.zeros(k, 1, 4 * hidden_size))
        with torch.no_grad():
            self.bias[:, :, hidden_size : 2 * hidden_size] = 1.0
        self.w_out = uniform(k, hidden_size, output_size)
        self.b_out = nn.Parameter(torch.zeros(k, 1, output_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(k, B, T, I) -> (k, B, O)."""
        k, batch, steps, inputs = x.shape
        hidden = self.hidden_size
        projected = torch.baddbmm(self.bias, x.reshape(k, batch * steps, inputs), self.w_ih)
        projected = projected.view(k, batch, steps, 4 * hidden)
        h = x.new_zeros(k, batch, hidden)
        c = x.new_zeros(k, batch, hidden)
        # unbind, not projected[:, :, t]: the backward of each slice would allocate a
        # zero tensor of the whole sequence's size
        for step_input in projected.unbind(dim=2):
            gates = torch.baddbmm(step_input, h, self.w_hh)
            i, f, g, o = gates.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return torch.baddbmm(self.b_out, h, self.w_out)

    @torch.no_grad()
    def load_fused(self, index: int, model: nn.Module) -> None:
        """Copy a fused ``RecurrentModel``'s weights into model ``index``."""
        rnn, head = model.rnn, model.head
        self.w_ih[index] = rnn.weight_ih_l0.T
        self.w_hh[index] = rnn.weight_hh_l0.T
        self.bias[index, 0] = rnn.bias_ih_l0 + rnn.bias_hh_l0
        self.w_out[index] = head.weight.T
        self.b_out[index, 0] = head.bias


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Callable[[], None], args: argparse.Namespace, device: torch.device) -> float:
    """Seconds for ``args.steps`` calls of ``step`` after ``args.warmup`` untimed ones."""
    for _ in range(args.warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronize(device)
    return time.perf_counter() - start


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               loss: Callable[[torch.Tensor], torch.Tensor]) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss(model(x)).backward()
    optimizer.step()


def time_separate(task: adding.AddingTask, k: int, args: argparse.Namespace,
                  device: torch.device) -> float:
    """Seconds per model-step: k fused models trained one after the other."""
    sizes = ModelSizes(task.input_size, task.output_size, task.per_step)
    total = 0.0
    for index in range(k):
        torch.manual_seed(index)
        model = build_model("lstm", sizes, hidden_size=args.hidden).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        generator = task.train_generator(index)

        def step(model: nn.Module = model, optimizer: torch.optim.Optimizer = optimizer,
                 generator: torch.Generator = generator) -> None:
            x, y = task.train_batch(args.batch, generator)
            train_step(model, optimizer, x, lambda out: task.loss(out, y))

        total += timed(step, args, device)
    return total / (k * args.steps)


def time_batched(task: adding.AddingTask, k: int, args: argparse.Namespace,
                 device: torch.device) -> float:
    """Seconds per model-step: the k models in one batched-weights module."""
    torch.manual_seed(0)
    model = BatchedLSTM(k, task.input_size, args.hidden, task.output_size).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generators = [task.train_generator(index) for index in range(k)]

    def step() -> None:
        batches = [task.train_batch(args.batch, g) for g in generators]
        x = torch.stack([b[0] for b in batches])
        y = torch.stack([b[1] for b in batches])
        # the models are independent: the sum's gradient is each model's own
        train_step(model, optimizer, x,
                   lambda out: sum(task.loss(out[i], y[i]) for i in range(k)))

    return timed(step, args, device) / (k * args.steps)


def check_equal(task: adding.AddingTask, hidden: int, device: torch.device) -> float:
    """Largest output difference between a fused model and BatchedLSTM holding its weights."""
    sizes = ModelSizes(task.input_size, task.output_size, task.per_step)
    torch.manual_seed(0)
    fused = build_model("lstm", sizes, hidden_size=hidden).to(device)
    batched = BatchedLSTM(1, task.input_size, hidden, task.output_size).to(device)
    batched.load_fused(0, fused)
    x, _ = task.train_batch(16, task.train_generator(0))
    with torch.no_grad():
        return float((fused(x) - batched(x.unsqueeze(0))[0]).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--ks", default="1,2,4,8,16")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    configure_torch(1)
    device = select_device(args.device)
    task = adding.build({"seq_len": args.seq_len, "val_size": 64, "test_size": 64}, seed=0,
                        device=device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu, 1 thread"
    print(f"device {device} ({name}); LSTM H={args.hidden}, T={args.seq_len}, "
          f"B={args.batch}; {args.steps} timed steps per model after {args.warmup}")
    print(f"check: fused vs batched outputs, max |diff| = "
          f"{check_equal(task, args.hidden, device):.1e}")
    print(f"{'k':>4} {'separate ms/model-step':>24} {'batched ms/model-step':>23} "
          f"{'separate / batched':>19}")
    for k in (int(v) for v in args.ks.split(",")):
        separate = time_separate(task, k, args, device)
        batched = time_batched(task, k, args, device)
        print(f"{k:>4} {separate * 1e3:>24.2f} {batched * 1e3:>23.2f} "
              f"{separate / batched:>18.2f}x")


if __name__ == "__main__":
    main()
