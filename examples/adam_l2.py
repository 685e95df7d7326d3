"""L2 through Adam is not weight decay: an LSTM on the adding plateau (T=100), with and without L2.

Prints the loss, the norm of the task gradient and of task + L2 gradient of the weight
matrices, and the norm of the weight matrices, at a few steps of Adam (lr 0.02) for lambda
0, 1e-5 and 5e-5. With plain gradient descent an L2 term of lambda shrinks the weights by a
factor (1 - 2 lr lambda) per step (0.06% over 300 steps here); with Adam each coordinate is
rescaled by its own gradient size, so where the task gradient is tiny the L2 term moves the
weight by about lr per step.

Usage:
    python examples/adam_l2.py
"""
from __future__ import annotations

import torch

from bench.models import ModelSizes, build_model
from bench.remedies.l2 import penalty
from tasks import adding


def l2_penalty(model: torch.nn.Module) -> torch.Tensor:
    """The sum of squared weight-matrix entries (the l2 remedy's penalty at lambda 1)."""
    return penalty(model, {"l2": 1.0})


def main() -> None:
    torch.set_num_threads(1)
    task = adding.build({"seq_len": 100, "val_size": 256, "test_size": 256}, seed=0,
                        device=torch.device("cpu"))
    for l2 in (0.0, 1e-5, 5e-5):
        torch.manual_seed(0)
        model = build_model("lstm", ModelSizes(2, 1, False), param_budget=10000)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
        generator = task.train_generator(0)
        for step in range(1, 301):
            x, y = task.train_batch(64, generator)
            loss = task.loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            task_grad = _norm(p.grad for p in model.weight_matrices())
            if l2:
                (l2 * l2_penalty(model)).backward()
            all_grad = _norm(p.grad for p in model.weight_matrices())
            optimizer.step()
            if step in (50, 100, 200, 300):
                weights = _norm(p.detach() for p in model.weight_matrices())
                print(f"lambda={l2:g} step {step}: loss {loss.item():.4f} |task grad| "
                      f"{task_grad:.2e} |task+L2 grad| {all_grad:.2e} |W| {weights:.2f}")


def _norm(tensors) -> float:  # noqa: ANN001
    return torch.cat([t.flatten() for t in tensors]).norm().item()


if __name__ == "__main__":
    main()
