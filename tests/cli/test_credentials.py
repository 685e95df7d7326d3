"""Credentials reach the servers ``gradbench`` starts through their environment, never their
command line (which any local user reads in ``ps``); ``status`` on a suite whose recorded
storage URL hides its password finds the password where libpq does, or says what to pass."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from bench import config, tuning
from bench.cli import serve
from bench.cli.main import main
from testkit.waiting import wait_until

PASSWORD = "s3cret-pw"  # testkit.servers.create_database's (trust authentication ignores it)


@pytest.mark.parametrize(("uri", "store", "pgpassword"), [
    ("postgresql+psycopg2://mlflow:p%40ss@db:5432/mlflow?sslmode=require",
     "postgresql+psycopg2://mlflow@db:5432/mlflow?sslmode=require", "p@ss"),
    ("postgresql+psycopg2://mlflow:***@db/mlflow", "postgresql+psycopg2://mlflow@db/mlflow",
     None),  # a recorded, masked URL: the user's own PGPASSWORD or ~/.pgpass
    ("mysql+pymysql://u:pw@db/mlflow", "mysql+pymysql://u:pw@db/mlflow", None),
    ("sqlite:////runs/smoke/mlflow.db", "sqlite:////runs/smoke/mlflow.db", None),
])
def test_the_mlflow_ui_gets_its_store_in_its_environment(uri: str, store: str,
                                                         pgpassword: str | None) -> None:
    server = serve.mlflow_server(uri, "127.0.0.1", 5000, "/")
    assert server.env is not None and not any("db" in part for part in server.command)
    assert server.env["MLFLOW_BACKEND_STORE_URI"] == store
    assert server.env.get("PGPASSWORD") == (pgpassword or os.environ.get("PGPASSWORD"))


def _cmdlines() -> list[str]:
    """Every process's command line, as ``ps -eo args`` shows it."""
    lines = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                lines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return lines


@pytest.mark.slow
@pytest.mark.serial  # reads every command line on the host: no other test may run meanwhile
def test_no_password_on_the_command_lines_of_the_ui_servers(tmp_path: Path,
                                                            postgres: str) -> None:
    """``gradbench ui``'s servers on stores with a password: the MLflow UI on a PostgreSQL
    tracking store and optuna-dashboard on a PostgreSQL storage. Both answer; no command line
    on the host holds the password, theirs and their workers' included."""
    from testkit.servers import PORT_TRIES, create_database, free_port

    tracking = create_database(postgres, "ui_tracking")
    storage = create_database(postgres, "ui_storage")
    assert PASSWORD in tracking and PASSWORD in storage
    spec = config.load("smoke", {"storage": storage})
    tuning.create_studies(tuning.open_storage(storage, tmp_path), spec, config.expand(spec)[:1])
    servers = [serve.mlflow_server(tracking, "127.0.0.1", free_port(), "/"),
               serve.dashboard_server(storage, tmp_path, "127.0.0.1", free_port())]
    exits: list[str] = []

    def answering() -> bool:
        for server in servers:
            assert server.proc is not None
            if server.proc.poll() is not None:  # its port taken meanwhile: on another one
                exits.append(f"{server.name} exit {server.proc.returncode}")
                assert len(exits) < PORT_TRIES, f"the servers keep stopping: {exits}"
                server.port = free_port()
                server.start()
        return all(server.answers() for server in servers)

    try:
        for server in servers:
            server.start()
        wait_until(answering, what="both servers answering", timeout=120, every=0.5)
        seen = [line for line in _cmdlines() if "mlflow" in line or "bench.cli.serve" in line]
        assert any("mlflow server" in line for line in seen), seen
        assert not [line for line in _cmdlines() if PASSWORD in line]
    finally:
        for server in servers:
            serve.stop_group(server.proc)


def _recorded_suite(tmp_path: Path, url: str) -> Path:
    """A suite that ran on ``url``: its studies there and its recorded (masked) config."""
    spec = config.load("smoke", {"storage": url})
    tuning.create_studies(tuning.open_storage(url, tmp_path), spec, config.expand(spec))
    run_dir = tmp_path / "runs" / "smoke"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(spec.public_dict()))
    assert "postgres:***@" in (run_dir / "config.yaml").read_text()
    return tmp_path / "runs"


@pytest.mark.slow
def test_status_of_a_masked_storage_url_takes_the_password_from_libpqs_places(
        tmp_path: Path, postgres: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from testkit.servers import create_database

    runs = _recorded_suite(tmp_path, create_database(postgres, "masked_status"))
    host, port = postgres.split(":")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-such-file"))
    assert main(["status", "smoke", "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and PASSWORD not in err
    assert "pass --storage with the full URL" in err and "PGPASSWORD" in err
    assert f"~/.pgpass line {host}:{port}:masked_status:postgres:PASSWORD" in err

    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    assert main(["status", "smoke", "--runs-dir", str(runs)]) == 0
    assert "suite smoke" in capsys.readouterr().out

    monkeypatch.delenv("PGPASSWORD")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"# host:port:database:user:password\n{host}:*:masked_status:postgres:"
                      f"{PASSWORD}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    assert main(["status", "smoke", "--runs-dir", str(runs), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["suite"] == "smoke" and shown["configurations"]
