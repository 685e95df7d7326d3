"""The range check after tuning (``bench.range_edge``): a best value in the outer tenth of a
log range is flagged, with enough complete trials; the terminal's rows and the report's
leaderboard say the same."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest
from rich.console import Console

from bench import config, tuning
from bench.cli.view import leaderboard_table, status_table
from bench.config import SearchParam
from bench.range_edge import TOO_FEW, log_position, range_edge
from bench.report import leaderboard as lb
from bench.run import suite as suites

LR = SearchParam("lr", low=1e-4, high=1e-2, log=True)  # two decades: a tenth is 10**0.2
CLIP = SearchParam("clip", low=0.5, high=5.0, log=False)


def test_log_position_is_measured_in_log_space() -> None:
    assert log_position(LR, 1e-3) == pytest.approx(0.5)  # the geometric middle
    assert log_position(LR, 1e-4 * 10 ** 0.2) == pytest.approx(0.1)
    assert math.isnan(log_position(CLIP, 1.0)) and math.isnan(log_position(LR, 0.0))


def test_a_best_at_the_edge_is_flagged() -> None:
    # 9.0e-3 sits at 0.977 of the log range, above the last tenth (> 0.9)
    assert range_edge({"lr": LR}, {"lr": 9.0e-3}, complete=8) == \
        "lr at the edge (high): widen the range"
    # 1.2e-4 sits at 0.04, in the first tenth
    assert range_edge({"lr": LR, "clip": CLIP}, {"lr": 1.2e-4, "clip": 4.9}, complete=20) == \
        "lr at the edge (low): widen the range"  # clip: a linear range, not checked


def test_a_best_inside_its_range_or_too_few_trials_is_not_flagged() -> None:
    # 1.5e-3 sits at 0.59; 1.5e-4 at 0.088 is an edge, 1.7e-4 at 0.115 is not
    assert range_edge({"lr": LR}, {"lr": 1.5e-3}, complete=8) == "inside"
    assert range_edge({"lr": LR}, {"lr": 1.7e-4}, complete=8) == "inside"
    assert "edge" in range_edge({"lr": LR}, {"lr": 1.5e-4}, complete=8)
    assert range_edge({"lr": LR}, {"lr": 9.0e-3}, complete=7) == TOO_FEW
    assert range_edge({"clip": CLIP}, {"clip": 5.0}, complete=30) == ""  # nothing to check
    assert range_edge({"lr": LR}, None, complete=9) == ""  # tuning not done: no best yet


def _trials(lrs: list[float]) -> list[tuning.TrialRecord]:
    # trial n has validation loss 1 / (n + 1): the last is the best
    return [tuning.TrialRecord(n, "complete", 1 / (n + 1), {"lr": lr, "seed": n})
            for n, lr in enumerate(lrs)]


def test_the_terminal_and_the_report_flag_the_same_configuration() -> None:
    spec = config.load("smoke", {})  # lr: 1e-4 to 1e-2, log
    configuration = config.expand(spec)[0]
    edge = [2e-3] * 7 + [9.5e-3]
    assert suites.edge_of(spec, configuration, _trials(edge)) == \
        "lr at the edge (high): widen the range"
    assert suites.edge_of(spec, configuration, _trials([2e-3] * 8)) == "inside"
    assert suites.edge_of(spec, configuration, _trials(edge[1:])) == TOO_FEW

    # the report reads the same facts from MLflow: the parent's best.lr tag, the trials
    name = configuration.name
    runs = pd.DataFrame(
        [{"run_id": "p", "role": "configuration", "best.lr": "0.0095"}]
        + [{"run_id": f"t{n}", "role": "trial", "trial_number": n, "lr": lr,
            "val/loss": 1 / (n + 1)} for n, lr in enumerate(edge)])
    runs = runs.assign(configuration=name, task="adding", seq_len=10, model="rnn",
                       regularization="none", clipping="none", status="FINISHED",
                       state=["" if r == "configuration" else "complete"
                              for r in runs["role"]],
                       metric="", direction="", solved=False, duration_s=1.0, seed=pd.NA)
    board = lb.leaderboard(runs, {"trials": 8, "seeds": 1}, lb.search_ranges(spec.to_dict()))
    assert board.loc[0, "range_edge"] == "lr at the edge (high): widen the range"
    assert lb.leaderboard(runs)["range_edge"].tolist() == [""]  # no search known: no check


def test_the_terminal_tables_show_the_flag() -> None:
    flag = "lr at the edge (high): widen the range"
    row = {"configuration": "adding-T10/rnn/none/none", "task": "t", "seq_len": 10,
           "model": "rnn", "regularization": "none", "clipping": "none", "metric": "mse",
           "direction": "minimize", "mean": 0.1, "std": 0.0, "seeds": 1, "solved_rate": 0.0,
           "diverged_rate": 0.0, "complete": 8, "pruned": 0, "diverged": 0,
           "interrupted": 0, "running": 0, "waiting": 0, "best": 0.1, "finals": "1/1",
           "range_edge": flag}
    console = Console(file=io.StringIO(), width=400, force_terminal=False)
    console.print(leaderboard_table([row], "t"))
    console.print(status_table([row], "suite"))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert out.count("best in range") >= 2 and out.count(flag) == 2
