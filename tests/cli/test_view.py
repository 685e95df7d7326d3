"""The terminal view: progress bars follow the workers' events."""

from __future__ import annotations

import io
import math

from rich.console import Console

from bench.cli.view import SuiteProgress, leaderboard_table


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


def _row(model: str, mean: float, metric: str, direction: str) -> dict:
    return {"task": "t", "seq_len": 10, "model": model, "regularization": "none",
            "clipping": "none", "metric": metric, "direction": direction, "mean": mean,
            "std": 0.0, "seeds": 1, "solved_rate": 0.0, "diverged_rate": 0.0, "complete": 1,
            "pruned": 0, "diverged": 0}


def test_the_leaderboard_ranks_by_the_recorded_direction() -> None:
    def order(direction: str) -> tuple[list[str], str]:
        rows = [_row("a", 0.2, "score", direction), _row("b", 0.9, "score", direction),
                _row("c", math.nan, "score", direction)]
        table = leaderboard_table(rows, "t")
        return list(table.columns[1].cells), str(table.title)

    models, title = order("maximize")
    assert models == ["b", "a", "c"] and "higher is better" in title  # no run last
    models, title = order("minimize")
    assert models == ["a", "b", "c"] and "lower is better" in title
