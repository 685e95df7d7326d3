"""Shared test set-up: one torch thread, as the benchmark runs its workers."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def cpu() -> torch.device:
    return torch.device("cpu")


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session (skipped where PostgreSQL is not installed)."""
    from testkit.servers import postgres_bin, postgres_server

    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (make test installs it: scripts/system-deps.sh)")
    with postgres_server() as server:
        yield server


@pytest.fixture
def mlflow_server(tmp_path):
    """A real MLflow tracking server on a free port, stopped after the test."""
    from testkit.servers import MlflowServer

    server = MlflowServer(tmp_path / "mlflow-server").start()
    try:
        yield server
    finally:
        server.stop()
