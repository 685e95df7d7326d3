"""Where a suite lives, and what this machine must have for it: checked before anything runs.

The run directory (``--runs-dir``, ``$GRADBENCH_HOME``), whether it can be written, the
device, and the tasks' data (a task whose data are absent is left out, with the reason).
Nothing here imports MLflow or Optuna: ``gradbench run`` checks its input with these before
its workers start, and ``gradbench cost`` reads the grid with them. What is beyond this
machine (a storage database, a tracking server) is ``suite.check_remote_inputs``'s.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.config import TASK_STEPS, Configuration, SuiteSpec, expand
from bench.registry import TASKS


def runs_root(runs_dir: str | Path | None) -> Path:
    """``--runs-dir``, else ``$GRADBENCH_HOME``, else ``./runs``."""
    return Path(runs_dir or os.environ.get("GRADBENCH_HOME") or "runs")


def run_dir_for(spec: SuiteSpec, runs_dir: str | Path | None) -> Path:
    return runs_root(runs_dir) / spec.name


def check_writable(run_dir: Path) -> None:
    """Fail early, with the path, when the run directory cannot be written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"run directory {run_dir} is not writable: {err.strerror}") from err


def available_configurations(spec: SuiteSpec) -> tuple[list[Configuration], dict[str, str]]:
    """Expand the grid; leave a task out (with the reason) when its data are absent.

    The task's record says (``TaskInfo.unavailable``; HAR: no copy at the default location,
    offline). Data that are given but hold nothing, or an archive that is truncated or
    tampered with, are bad input: the task's error propagates.
    """
    configurations = expand(spec)
    skipped: dict[str, str] = {}
    for name, params in spec.tasks:
        info = TASKS.get(name)
        data = {k: v for k, v in params.items() if k != TASK_STEPS}  # the budget is not data
        reason = info.unavailable(data) if info.unavailable is not None else None
        if reason is not None:
            skipped[info.name] = reason
    return [c for c in configurations if c.task not in skipped], skipped


def check_local_inputs(spec: SuiteSpec) -> None:
    """The device and the tasks' data: checked on this machine, in an instant."""
    check_device(spec.device)
    runnable_configurations(spec)


def check_device(device: str) -> None:
    """``cuda`` / ``cuda:N`` where this machine has no such device: a one-line error."""
    if not device.startswith("cuda"):
        return
    import torch  # lazy: only a CUDA device is checked with it (this module stays light)

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= count:
        found = f"{count} CUDA device(s)" if count else "no CUDA device"
        raise ValueError(f"device {device!r}: this machine has {found}; "
                         f"use --device cpu (or auto)")


def runnable_configurations(spec: SuiteSpec) -> tuple[list[Configuration], dict[str, str]]:
    """``available_configurations``, where at least one is: else a one-line error."""
    configurations, skipped = available_configurations(spec)
    if not configurations:
        raise ValueError(f"suite {spec.name!r}: nothing to run (skipped: "
                         f"{', '.join(skipped) or 'none'})")
    return configurations, skipped
