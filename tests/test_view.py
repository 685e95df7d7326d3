"""The terminal view: progress bars follow the workers' events."""

from __future__ import annotations

import io

from rich.console import Console

from bench.view import SuiteProgress


def test_progress_counts_runs_and_final_seeds_that_will_not_run() -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    progress = SuiteProgress(console, total=10, done={"a": 1}, per_configuration=5, workers=2)
    suite = progress.progress.tasks[progress.suite]
    assert suite.completed == 1  # resumed: one run already done
    progress("start", {"worker": 0, "configuration": "a", "role": "trial", "steps": 20})
    progress("step", {"worker": 0, "step": 10})
    assert progress.progress.tasks[progress.trials[0]].completed == 10
    progress("end", {"worker": 0, "configuration": "a", "role": "trial", "outcome": "complete"})
    for _ in range(3):
        progress("end", {"worker": 1, "configuration": "b", "role": "trial",
                         "outcome": "diverged"})
    assert suite.completed == 5 and not suite.finished
    # every trial of b diverged: its two final seeds will never run, yet the suite is whole
    progress("skipped", {"worker": 1, "configuration": "b", "jobs": 2})
    progress("unknown", {})  # events the view does not know are ignored
    assert suite.completed == 7 and progress.done == {"a": 2, "b": 5}
