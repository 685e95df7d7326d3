"""Where the workers' time goes: ``timings.json`` after a run, and the efficiency benchmark
that turns it into a table next to the bare-loop price of the steps run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_efficiency_benchmark_on_the_smoke_suite(tmp_path: Path) -> None:
    """The real command runs the smoke suite; the breakdown splits the workers' time without
    counting any of it twice and within what a clock around the command saw, counts every
    step, and the table shows the training share both measured and priced."""
    figures = tmp_path / "figures.json"
    started = time.perf_counter()
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "efficiency.py"), "smoke",
                          "--workers", "2", "--set", "tuning.trials=1", "--timed-steps", "3",
                          "--json", str(figures)],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    around_s = time.perf_counter() - started  # an independent clock around it all
    [row] = json.loads(figures.read_text())
    assert row["workers"] == 2 and row["jobs"] == 16 * 2  # 1 trial + 1 seed each
    assert row["steps"] == sum(r["steps"] for r in row["steps_by"]) > 0
    assert {(r["variant"], r["model"]) for r in row["steps_by"]} == {
        (v, m) for v in ("adding-T10", "copy-T5") for m in ("rnn", "lstm")}
    _check_the_parts(row, row["workers"] * around_s)
    kinds = row["kinds"]
    assert kinds["steps_s"] > 0 and kinds["start_s"] > 0 and kinds["open_s"] > 0
    assert 0 < row["priced_s"] < row["worker_s"]
    assert 0 < row["priced_together_s"] < row["worker_s"]  # 2 bare loops at once, as ran
    assert "training steps, priced (bare loop)" in out
    assert "2 bare loops side by side" in out and "priced side by side" in out
    assert "tracking on the path, of run time" in out


def _check_the_parts(row: dict, clock_s: float) -> None:
    """Seconds by kind: none negative, none counted twice (the jobs' phases within the jobs'
    time, the kinds within the workers'), and the workers' time within ``clock_s``, what a
    clock in the test gave them (their count times the time around the command). Checked
    for their form, not for their values."""
    kinds = row["kinds"]
    assert min(kinds.values()) >= 0 and row["unaccounted_s"] >= 0, kinds
    job_phases = ("steps_s", "eval_s", "probe_s", "build_s", "optuna_s", "open_s",
                  "record_s")
    assert sum(kinds[k] for k in job_phases) <= row["job_s"] * (1 + 1e-3) + 1e-3
    assert sum(kinds.values()) <= row["worker_s"] * (1 + 1e-3) + 1e-3
    assert kinds["steps_s"] <= row["job_s"] <= row["worker_s"] <= clock_s


def test_a_run_saves_where_the_time_went(tmp_path: Path) -> None:
    from bench.cli.main import main

    runs_dir = tmp_path / "runs"
    started = time.perf_counter()
    assert main(["run", "smoke", "--runs-dir", str(runs_dir), "--workers", "1",
                 "--set", "tuning.trials=1", "--set", "models=[rnn]", "--quiet"]) == 0
    around_s = time.perf_counter() - started
    saved = json.loads((runs_dir / "smoke" / "timings.json").read_text())
    assert saved["jobs"] == 8 * 2 and saved["workers"] == 1
    assert saved["kinds"]["steps_s"] > 0
    _check_the_parts(saved, around_s)
    assert 0 < saved["wall_s"] <= around_s
    # the table of a suite run before, priced afterwards (`make run`, then the benchmark)
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "efficiency.py"), "smoke",
                          "--set", "tuning.trials=1", "--set", "models=[rnn]",
                          "--timed-steps", "3", "--from-run", str(runs_dir / "smoke")],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert f"16 runs, {saved['steps']:,} training steps" in out and "priced" in out


def test_cuda_checks_say_what_is_missing(tmp_path: Path) -> None:
    """``benchmarks/cuda_checks.sh`` measures nothing and says why (exit 2) where torch sees
    no CUDA device, or where ``python`` is not the project's environment."""
    import os

    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: the script would measure")
    script = str(ROOT / "benchmarks" / "cuda_checks.sh")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", script, str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "sees no CUDA device on this machine; nothing was measured" in done.stderr
    assert not list((tmp_path / "out").iterdir())
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python").symlink_to("/bin/false")
    done = subprocess.run(["bash", script, str(tmp_path / "out")], capture_output=True,
                          text=True, timeout=60, env={**env, "PATH": f"{bare}:/usr/bin:/bin"})
    assert done.returncode == 2 and "cannot import the project and torch" in done.stderr
