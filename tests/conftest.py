"""Shared test set-up: one torch thread, as the benchmark runs its workers; the real servers'
fixtures (helpers shared with the benchmarks are in testkit/)."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules with slow tests first, each module's tests in their order: in parallel
    test processes (pytest-xdist) the minutes-long tests start early and the seconds-long
    ones fill in at the end, rather than one process running a long test alone at the end."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


@pytest.fixture
def cpu() -> torch.device:
    return torch.device("cpu")


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session, one per test process under pytest-xdist
    (skipped where PostgreSQL is not installed)."""
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
