"""Shared test set-up: one torch thread, as the benchmark runs its workers."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def cpu() -> torch.device:
    return torch.device("cpu")
