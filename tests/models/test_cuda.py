"""On a CUDA device (skipped without one): the same code paths as on the CPU."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from bench.diagnostics import GradientDiagnostics, every
from bench.models import ModelSizes, build_model, select_device
from bench.registry import MODELS
from bench.train import TrainConfig, train
from tasks import adding, copy
from testkit.suites import SMALL, write_suite

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


@pytest.mark.parametrize("kind", MODELS.names())
def test_training_with_diagnostics_on_cuda(kind: str) -> None:
    device = select_device("cuda")
    task = adding.build({"seq_len": 30, "val_size": 128, "test_size": 128}, seed=0,
                        device=device)
    x, y = task.train_batch(8, task.train_generator(0))
    assert x.device.type == "cuda" and y.device.type == "cuda"  # generated on the device
    torch.manual_seed(0)
    model = build_model(kind, ModelSizes(2, 1, False), hidden_size=32).to(device)
    cfg = TrainConfig(steps=60, lr=3e-3, clipping="norm", hparams={"clip": 1.0}, eval_every=30)
    result = train(cfg, task, model, observer=GradientDiagnostics(task, every(30)))
    assert result.status == "completed" and len(result.grad_norm) == 60
    assert all(math.isfinite(v) for v in result.train_loss)
    assert {row.step for row in result.diagnostics.summaries} == {0, 30, 60}
    assert all(row.norm > 0 for row in result.diagnostics.profiles if row.kind == "h")


def test_copy_and_divergence_on_cuda() -> None:
    device = select_device("cuda")
    task = copy.build({"seq_len": 5, "val_size": 64, "test_size": 64}, seed=0, device=device)
    torch.manual_seed(0)
    model = build_model("irnn", ModelSizes(10, 10, True), hidden_size=16).to(device)
    result = train(TrainConfig(steps=200, lr=1e4, optimizer="sgd"), task, model)
    assert result.status == "diverged" and result.diverged_at is not None


def test_workers_spread_over_the_devices() -> None:
    count = torch.cuda.device_count()
    assert [select_device("cuda", worker=w).index for w in range(2 * count)] == \
        [w % count for w in range(2 * count)]
    assert select_device("auto", worker=count).index == 0


def test_a_suite_runs_its_workers_on_cuda(tmp_path: Path) -> None:
    """``gradbench run`` end to end on the device: two workers forked from the fork server
    (which never touched CUDA) each initialise it and train there."""
    from mlflow import MlflowClient

    from bench.cli.main import main

    spec = {**SMALL, "name": "gpu", "device": "cuda"}
    runs_dir = tmp_path / "runs"
    assert main(["run", str(write_suite(tmp_path, spec)), "--runs-dir", str(runs_dir),
                 "--workers", "2"]) == 0
    client = MlflowClient(f"sqlite:///{runs_dir / 'gpu' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("gpu").experiment_id],
                              "tags.role != 'configuration'")
    assert len(runs) == 8 and all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.tags["device"].startswith("cuda") for r in runs)
