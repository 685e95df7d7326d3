"""Output for people, logs and scripts: help, version, plain progress, dry runs, --data-dir."""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

import bench
from bench.cli.main import build_parser, main, packaged_suites
from bench.cli.view import PlainProgress
from testkit.har import make_fixture, write_dir
from testkit.waiting import wait_until


def _options(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += [(f"{name} {a}", b) for a, b in _options(sub)]
        elif action.option_strings and action.dest not in ("help", "version"):
            found.append((action.option_strings[-1], action))
    return found


def test_every_option_says_its_default() -> None:
    from bench.cli.main import _Help

    options = _options(build_parser())
    assert len(options) > 40
    for name, action in options:
        assert "default" in (_Help("gradbench")._get_help_string(action) or ""), name


def test_version_and_packaged_suites_in_run_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"gradbench {bench.__version__}"
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    names = sorted(p.stem for p in (Path(bench.__file__).parent / "configs").glob("*.yaml"))
    assert packaged_suites() == names and {"smoke", "default", "full"} <= set(names)
    assert f"packaged suites: {', '.join(names)}" in " ".join(out.split())
    assert "(default: one per core, no more than free memory holds" in " ".join(out.split())


def _plain(total: int, done: dict[str, int], refresh=None) -> tuple[PlainProgress, io.StringIO]:
    buffer = io.StringIO()
    console = Console(file=buffer, width=200)
    return PlainProgress(console, total, done, refresh=refresh, every=0.05), buffer


def test_plain_progress_prints_steady_lines_with_counts_and_time_left() -> None:
    progress, buffer = _plain(10, {"a": 2})
    with progress:
        progress("start", {"worker": 0, "configuration": "a", "role": "trial", "steps": 5})
        progress("start", {"worker": 1, "configuration": "b", "role": "trial", "steps": 5})
        progress("end", {"worker": 1, "configuration": "b", "role": "trial",
                         "outcome": "diverged"})
        # at a steady pace, without any event: two lines come by themselves
        wait_until(lambda: len(buffer.getvalue().splitlines()) >= 2, what="two steady lines",
                   timeout=60, every=0.05)
    lines = buffer.getvalue().strip().splitlines()
    assert len(lines) >= 3  # and once more at the end
    pattern = r"\d\d:\d\d:\d\d progress: 3/10 runs done \(30%\), 1 running, 1 diverged; " \
              r"elapsed \d+m\d\ds, about \d+m\d\ds left"  # times: their form, not their value
    assert re.fullmatch(pattern, lines[-1]), lines[-1]


def test_plain_progress_counts_the_whole_suite_from_the_storage() -> None:
    """Two machines on one suite: this one ran 3 of 8 runs, the storage says all 8 are done."""
    progress, buffer = _plain(8, {}, refresh=lambda: {"a": 4, "b": 4})
    progress.every = 60.0
    with progress:
        for _ in range(3):
            progress("end", {"worker": 0, "configuration": "a", "role": "trial",
                             "outcome": "complete"})
    assert "progress: 8/8 runs done (100%)" in buffer.getvalue()
    assert buffer.getvalue().rstrip().endswith("done")


def test_the_bars_count_the_whole_suite_at_the_end() -> None:
    from bench.cli.view import SuiteProgress

    console = Console(file=io.StringIO(), width=120)
    bars = SuiteProgress(console, total=8, done={}, per_configuration=4, workers=1,
                         refresh=lambda: {"a": 4, "b": 4})
    with bars:
        bars("end", {"worker": 0, "configuration": "a", "role": "trial", "outcome": "complete"})
    assert bars.progress.tasks[bars.suite].completed == 8  # not 1 of 8


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*"))


def test_dry_run_prints_the_grid_and_cost_and_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "GRADBENCH_HOME": str(tmp_path / "gb"),
           "GRADBENCH_DATA_DIR": str(tmp_path / "data"), "MLFLOW_TRACKING_URI": ""}
    before = _files(tmp_path)
    out = subprocess.run([sys.executable, "-m", "bench", "run", "smoke", "--dry-run",
                          "--workers", "2", "--set", "training.steps=30"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert _files(tmp_path) == before  # no run directory, no store, no cache, nothing
    text = out.stdout
    assert "suite smoke: 16 configurations x (2 trials + 1 seeds); steps per run: adding-T10 " \
        "30, copy-T5 30; batch 16" in text
    assert re.search(r"adding-T10\s+8\s+24\s+720", text)  # configurations, runs, steps
    assert re.search(r"total\s+16\s+48\s+1,440", text)
    assert re.search(r"adding-T10\s+lstm\s+\d+\s+\d+\.\d\d", text)  # timed here
    # 1,440 short steps: core-seconds, not '0.00 core-hours'
    assert re.search(r"total: \d+\.\d core-(seconds|minutes) of training; with 2 worker\(s\) "
                     r"about \d+ s of wall time", text), text


def test_cost_command_and_the_benchmarks_script(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "cost.py"), "smoke",
                          "--models", "lstm", "--timed-steps", "2", "--workers", "4"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "with 4 worker(s)" in out.stdout and "rnn" not in out.stdout
    assert list(tmp_path.iterdir()) == []


def test_run_data_dir_reaches_every_task_that_reads_data(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from bench import config

    spec = config.load(config.resolve_config("default"), {"data_dir": str(tmp_path)})
    assert dict(spec.tasks)["har"]["data_dir"] == str(tmp_path)
    missing = tmp_path / "nowhere"
    code = main(["run", "default", "--dry-run", "--data-dir", str(missing)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"UCI HAR data not found in {missing}" in err and len(err.strip().splitlines()) == 1
    spec_path = tmp_path / "synthetic.yaml"
    spec_path.write_text(yaml.safe_dump({"name": "syn", "tasks": {"adding": {"seq_len": [4]}}}))
    assert main(["run", str(spec_path), "--dry-run", "--data-dir", str(tmp_path)]) == 2
    assert "none of the suite's tasks (adding) reads a data directory" in capsys.readouterr().err


def test_verbose_shows_the_traceback_of_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntrainig: {}\n")
    quiet = subprocess.run([sys.executable, "-m", "bench", "run", str(bad), "--dry-run"],
                           capture_output=True, text=True, timeout=120)
    loud = subprocess.run([sys.executable, "-m", "bench", "run", str(bad), "--dry-run",
                           "--verbose"], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == loud.returncode == 2
    assert "Traceback" not in quiet.stderr and len(quiet.stderr.strip().splitlines()) == 1
    assert "Traceback" in loud.stderr and "trainig" in loud.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("name", packaged_suites())
def test_models_narrow_every_packaged_suite(name: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``--models lstm,gru`` on a suite whose search ranges name other models: those ranges
    are left aside, and the header shows the steps each run trains (a task's own, else
    ``training.steps``). Steps are not timed here (the dry run's own test times them)."""
    from bench import config
    from bench.cli import cost

    monkeypatch.setattr(cost, "step_time", lambda *args, **kwargs: 1e-3)
    for module in ("archive", "cache"):  # the fixture is a small copy of the HAR data
        monkeypatch.setattr(f"tasks.har_data.{module}._check_counts", lambda *args: None)
    har = ["--data-dir", str(write_dir(make_fixture().files, tmp_path)), "--set",
           "tasks.har.val_subjects=1"] if "har" in dict(config.load(name).tasks) else []
    assert main(["run", name, "--models", "lstm,gru", "--dry-run", *har]) == 0
    out = capsys.readouterr().out
    spec = config.load(name, {"models": ["lstm", "gru"], "data_dir": har[1] if har else None,
                              "set": har[3:]})
    runnable = config.expand(spec)
    assert "skipped task" not in out and {c.model for c in runnable} == {"lstm", "gru"}
    header = next(line for line in out.splitlines() if line.startswith(f"suite {name}:"))
    for c in runnable:
        assert f"{c.variant} {c.budget(spec):,}" in header
    assert "dry run: nothing was written" in out


def test_cost_and_wall_time_show_a_unit_that_is_not_zero() -> None:
    from bench.cli.cost import _core_time, _wall

    assert _core_time(14.4) == "14.4 core-seconds" and _core_time(90) == "1.5 core-minutes"
    assert _core_time(5400) == "1.50 core-hours"
    assert (_wall(7.2), _wall(150), _wall(7200)) == ("7 s", "2.5 min", "2.0 h")


def test_the_default_workers_follow_cores_memory_and_devices(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.cli import workers

    monkeypatch.setattr(workers, "cores", lambda: 8)
    monkeypatch.setattr(workers, "free_memory", lambda: 32 * workers.WORKER_BYTES)
    monkeypatch.setattr(workers, "cuda_devices", lambda: 0)
    assert workers.default_workers("auto") == (8, "8 core(s)")
    monkeypatch.setattr(workers, "free_memory", lambda: 3 * workers.WORKER_BYTES + 5)
    n, why = workers.default_workers("cpu")
    assert n == 3 and "3.0 GiB free (about 1 GiB a worker)" in why
    monkeypatch.setattr(workers, "cuda_devices", lambda: 2)
    assert workers.default_workers("auto")[0] == 2 and workers.default_workers("cpu")[0] == 3
    assert workers.default_workers("cuda:1")[0] == 1
    args = argparse.Namespace(workers=None)
    assert workers.resolve_workers(args, "cuda") == " (8 core(s), 3.0 GiB free (about 1 GiB " \
        "a worker), 2 CUDA device(s))" and args.workers == 2
    with pytest.raises(ValueError, match="--workers: must be >= 1, got 0"):
        workers.resolve_workers(argparse.Namespace(workers=0), "cpu")


@pytest.mark.slow
def test_a_finished_suite_reads_whole_at_80_columns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The leaderboard, `status` and the closing lines of a finished small suite in an
    80-column terminal: every number of the leaderboard (from the suite's Optuna records)
    and every configuration's name whole, and the next commands named."""
    from bench import config, tuning
    from bench.run import suite as suites
    from testkit.suites import SMALL, write_suite

    monkeypatch.setenv("COLUMNS", "80")
    path = write_suite(tmp_path, SMALL)
    runs = tmp_path / "runs"
    assert main(["run", str(path), "--runs-dir", str(runs), "--workers", "2"]) == 0
    assert main(["status", str(path), "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines()  # a command is one line, to copy whole
             if not line.startswith("  gradbench ")]
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    assert "…" not in out  # nothing cut
    spec = config.load(path, {})
    storage = tuning.open_storage(None, runs / SMALL["name"])
    numbers = []
    for configuration in config.expand(spec):
        row = suites.board_row(configuration, *suites.records(storage, spec, configuration))
        numbers += [f"{row['mean']:.4f}", f"{row['std']:.4f}", f"{row['solved_rate']:.2f}",
                    f"{row['diverged_rate']:.2f}",
                    f"{row['complete']}/{row['pruned']}/{row['diverged']}"]
        assert re.search(rf"(?m)^{re.escape(configuration.name)} ", out), configuration.name
    words = set(out.split())
    missing = [n for n in numbers if n not in words]
    assert missing == [], missing
    runs_dir = str(runs)
    assert f"\n  gradbench report {path} --runs-dir {runs_dir}\n" in out
    assert f"\n  gradbench ui {path} --runs-dir {runs_dir}\n" in out
    # renamed: the report and the UI of the renamed run, whose directory holds its config
    assert main(["run", str(path), "--runs-dir", str(runs), "--set", "name=renamed",
                 "--set", "final.seeds=1"]) == 0
    out = capsys.readouterr().out
    assert f"\n  gradbench report renamed --runs-dir {runs_dir}\n" in out
    assert main(["status", "renamed", "--runs-dir", str(runs)]) == 0  # found by that name

