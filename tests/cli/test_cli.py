"""The command line: fast help, clear errors, the UI's process group."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest
import yaml

from bench.cli.main import main
from testkit.har import make_fixture, write_zip
from testkit.processes import (
    default_sigint,
    group_alive,
    listening_addresses,
    read_lines,
    stop_command,
    wait_for_line,
)
from testkit.servers import free_port
from testkit.suites import journal_with_a_study
from testkit.waiting import wait_until


def test_help_imports_nothing_heavy() -> None:
    code = ("import sys; from bench.cli.main import build_parser; build_parser(); "
            "heavy = [m for m in ('torch', 'mlflow', 'optuna', 'pandas') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [["--help"], ["run", "--help"], ["status", "--help"],
                                     ["ui", "--help"], ["train", "--help"]])
def test_help_of_every_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(command)
    assert stop.value.code == 0
    assert "usage: gradbench" in capsys.readouterr().out


BAD_INPUT = [
    ("unknown task", {"tasks": {"sorting": {}}}, [], "tasks.sorting: unknown task"),
    ("unknown model", {"models": ["transformer"]}, [], "models"),
    ("unknown key", {"trainig": {}}, [], "trainig"),
    ("negative steps", {}, ["--steps", "-5"], "training.steps: must be >= 1"),
    ("low > high", {"search": {"lr": {"low": 0.1, "high": 0.01}}}, [], "search.lr"),
    ("seq_len too small", {"tasks": {"adding": {"seq_len": [1]}}}, [], "tasks.adding.seq_len"),
    ("bad --set path", {}, ["--set", "training.nope=1"], "training.nope"),
    ("zero workers", {}, ["--workers", "0"], "--workers: must be >= 1"),
]


@pytest.mark.parametrize(("case", "spec", "flags", "message"), BAD_INPUT,
                         ids=[case[0] for case in BAD_INPUT])
def test_bad_input_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     case: str, spec: dict, flags: list[str],
                                     message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", **spec}))
    code = main(["run", str(path), "--runs-dir", str(tmp_path / "runs"), *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2, case
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "runs" / "bad" / "optuna.journal").exists()  # nothing half-done


def _truncated_har(tmp_path: Path) -> Path:
    path = tmp_path / "UCI HAR Dataset.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("UCI HAR Dataset/train/y_train.txt", "1\n" * 5000)
    path.write_bytes(path.read_bytes()[:100])  # cut short, as by an interrupted copy
    return path


def _tampered_har(tmp_path: Path) -> Path:
    path = write_zip(make_fixture().files, tmp_path / "UCI HAR Dataset.zip",
                     compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    at = data.index(b"e+000") - 3  # a digit of the first signal value
    data[at] = ord("9") if data[at] != ord("9") else ord("8")  # the CRC no longer matches
    path.write_bytes(bytes(data))
    return path


# Bad input that only shows when the run starts: (case, flags builder, expected message).
BAD_WHERE = [
    ("unreachable storage", lambda tmp: ["--storage",
                                         "postgresql+psycopg2://u:pw@127.0.0.1:1/nodb"],
     "storage postgresql+psycopg2://u:***@127.0.0.1:1/nodb unreachable"),
    ("unreachable tracking", lambda tmp: ["--tracking-uri", "http://127.0.0.1:1"],
     "tracking store http://127.0.0.1:1 unreachable"),
    ("no database driver in the URL", lambda tmp: ["--storage",
                                                   "postgresql://u:pw@127.0.0.1:1/nodb"],
     "storage postgresql://u:***@127.0.0.1:1/nodb"),
    ("cuda without CUDA", lambda tmp: ["--device", "cuda"], "device 'cuda': this machine"),
    ("missing HAR data_dir", lambda tmp: ["--tasks", "har", "--set",
                                          f"tasks.har.data_dir={tmp / 'nowhere'}"],
     "tasks.har.data_dir"),
    ("truncated HAR archive", lambda tmp: ["--tasks", "har", "--set",
                                           f"tasks.har.data_dir={_truncated_har(tmp)}"],
     "UCI HAR Dataset.zip"),
    ("tampered HAR archive", lambda tmp: ["--tasks", "har", "--set",
                                          f"tasks.har.data_dir={_tampered_har(tmp)}"],
     "CRC"),
]


@pytest.mark.parametrize(("case", "flags", "message"), BAD_WHERE,
                         ids=[case[0] for case in BAD_WHERE])
def test_bad_places_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch, case: str, flags,
                                       message: str) -> None:
    import torch

    from bench.tracking import retries

    if case == "cuda without CUDA" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setattr(retries, "RETRY_S", 1.0)  # read by each tracker made
    code = main(["run", "smoke", "--runs-dir", str(tmp_path / "runs"), *flags(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2, (case, err)
    assert len(err.splitlines()) == 1 and message in err, err
    assert "pw@" not in err
    assert not (tmp_path / "runs").exists()  # nothing written: no lock, journal or store


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n", "[adding, copy]\n"])
def test_an_empty_or_non_mapping_config_is_refused(tmp_path: Path, text: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    assert main(["run", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "suite.yaml" in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_bad_input_loses_nothing_recorded(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    flags = ["--tasks", "adding", "--models", "rnn", "--runs-dir", str(runs)]
    assert main(["run", "smoke", *flags]) == 0
    journal = (runs / "smoke" / "optuna.journal").read_bytes()
    database = (runs / "smoke" / "mlflow.db").stat().st_size
    assert main(["run", "smoke", *flags, "--steps", "-1"]) == 2
    assert main(["run", "smoke", *flags, "--storage", "postgresql+psycopg2://127.0.0.1:1/x"]) == 2
    assert (runs / "smoke" / "optuna.journal").read_bytes() == journal
    assert (runs / "smoke" / "mlflow.db").stat().st_size == database
    capsys.readouterr()
    assert main(["status", "smoke", "--runs-dir", str(runs)]) == 0
    assert "adding-T10/rnn/none/none" in capsys.readouterr().out


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\ntraining: {steps: 10\n")
    assert main(["run", str(path), "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "broken.yaml" in err and "line" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    runs.mkdir(mode=0o500)
    assert main(["run", "smoke", "--runs-dir", str(runs)]) == 2
    assert "not writable" in capsys.readouterr().err


def test_unwritable_run_dir_as_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "runs"
    blocker.write_text("a file where the runs directory should be")
    assert main(["run", "smoke", "--runs-dir", str(blocker)]) == 2
    assert "not writable" in capsys.readouterr().err


def test_status_of_a_suite_not_started(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "smoke", "--runs-dir", str(tmp_path)]) == 0
    assert "has not started" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_ui_serves_the_store_and_stops_its_process_group(tmp_path: Path, how: str) -> None:
    from mlflow import MlflowClient

    run_dir = tmp_path / "runs" / "smoke"
    run_dir.mkdir(parents=True)
    client = MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")
    client.create_experiment("smoke")
    journal_with_a_study(run_dir)  # optuna-dashboard starts beside the MLflow UI
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "ui", "smoke", "--runs-dir", str(tmp_path / "runs"),
         "--port", str(free_port()), "--dashboard-port", str(free_port())],
        start_new_session=True, stdout=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    seen: list[str] = []
    try:
        # the links are printed once both servers answer: stopping before that would be a
        # different case (the command stopped while starting them)
        wait_for_line(read_lines(proc), "Ctrl-C stops", seen, timeout=120)
        # where they answer: the ports asked for, or the next free ones when taken meanwhile
        printed = "".join(seen)
        port = int(re.search(r"MLflow UI: http://127\.0\.0\.1:(\d+)/", printed)[1])
        dashboard_port = int(re.search(r"optuna-dashboard: http://127\.0\.0\.1:(\d+)/",
                                       printed)[1])

        def experiment() -> bytes:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/"
                                        "get-by-name?experiment_name=smoke",
                                        timeout=10) as response:
                return bytes(response.read())

        body = wait_until(experiment, what="the MLflow UI answering", timeout=90,
                          every=0.5, passing=(OSError,))
        assert b'"name": "smoke"' in body or b'"name":"smoke"' in body
        assert listening_addresses(port) == {"127.0.0.1"}  # loopback only
        wait_until(lambda: listening_addresses(dashboard_port), what="the dashboard listening",
                   timeout=60, every=0.5)
        assert listening_addresses(dashboard_port) == {"127.0.0.1"}
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        else:
            proc.terminate()  # `kill PID`: the ui process only, not the server's group
        assert proc.wait(timeout=90) == 0  # generous: a loaded machine is slow
        wait_until(lambda: not (group_alive(proc.pid) or listening_addresses(port)
                                or listening_addresses(dashboard_port)),
                   what="the servers gone", timeout=60)
        assert not group_alive(proc.pid)
        assert not listening_addresses(port)  # the server and its workers are gone too
        assert not listening_addresses(dashboard_port)
        assert f"MLflow UI: http://127.0.0.1:{port}/#/experiments/" in printed
        assert "runs?workflowType=machine_learning" in printed  # the runs table, not GenAI
        assert f"optuna-dashboard: http://127.0.0.1:{dashboard_port}/dashboard" in printed
    finally:
        stop_command(proc)


def test_train_takes_any_remedy_and_its_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "--task", "adding", "--seq-len", "8", "--steps", "10", "--eval-every",
            "10", "--hidden-size", "4", "--device", "cpu"]
    assert main([*args, "--model", "orth-rnn", "--clipping", "norm", "--param",
                 "clip=1e-4"]) == 0
    assert "clip rate 1.00" in capsys.readouterr().out  # every step clipped at tau 1e-4
    assert main([*args, "--regularization", "norm"]) == 2
    assert "belongs to clipping, not regularization" in capsys.readouterr().err
    assert main([*args, "--param", "clip"]) == 2
    assert "--param clip: expected NAME=NUMBER" in capsys.readouterr().err
