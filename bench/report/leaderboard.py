"""The leaderboard: one row per configuration from its parent run and nested runs (the
frames of ``bench.report.results``), ranked best first within each task and T; the slices
and grids of it that the page shows.

The statistics over the final seeds are ``bench.board.seed_stats``'s, the computation behind
the terminal's leaderboard too: ``board_row`` adapts MLflow's runs to it and adds what only
the report shows (the t-interval, the normalised score, status, time, best tuning trial).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench.board import Seed, seed_stats
from bench.checks import Invalid
from bench.config.search import SearchParam, check_search
from bench.names import STEPS_TO_SOLVE, TEST_NORMALIZED, VAL_LOSS, metric_key
from bench.outcomes import BEYOND_HORIZON
from bench.range_edge import range_edge
from bench.report.facts import model_order, remedy_label, remedy_order, task_info
from bench.report.statistics import clip_to_range, clopper_pearson, t_interval

SOLVED_THRESHOLD = 0.5  # a configuration "solves" a T when at least half its seeds do
FAILED_STATES = ("diverged", "interrupted", "failed")


BOARD_COLUMNS = ("suite", "task", "seq_len", "model", "regularization", "clipping",
                 "configuration", "metric", "seeds", "mean", "std", "ci_low", "ci_high",
                 "normalized", "solved_rate", "solved_low", "solved_high", "diverged_rate",
                 "steps_to_solve", "complete", "pruned", "diverged", "failed", "running",
                 "best_val", "range_edge", "time_s", "status", "parent_run_id", "final_run_ids")


def expected_counts(config: Mapping[str, Any]) -> dict[str, int | None]:
    """The trial budget and final seeds of the suite, from its resolved config."""
    tuning, final = config.get("tuning") or {}, config.get("final") or {}
    return {"trials": tuning.get("trials"), "seeds": final.get("seeds")}


def search_ranges(config: Mapping[str, Any]) -> dict[str, SearchParam] | None:
    """The suite's search space, from its resolved config (``search``); None where the
    config has none the schema reads."""
    try:
        return dict(check_search(("search",), config.get("search") or {}))
    except Invalid:
        return None


def edge_of(parent: pd.Series, trials: pd.DataFrame,
            search: Mapping[str, SearchParam] | None, complete: int) -> str:
    """Whether the configuration's best parameters (its parent run's ``best.<name>`` tags,
    set when its tuning ended) lie at the edge of their ranges (``bench.range_edge``, the
    terminal's check too); the tuned parameters are those its trials recorded."""
    if search is None:
        return ""
    tuned = [n for n in search if n in trials and trials[n].notna().any()]
    space = {n: search[n].at(str(parent["task"]), str(parent["model"])) for n in tuned}
    best = {n: parent.get(f"best.{n}") for n in tuned if pd.notna(parent.get(f"best.{n}"))}
    return range_edge(space, best, complete)


# ------------------------------------------------------------------------------ slices


def at_seq_len(frame: pd.DataFrame, seq_len: Any) -> pd.DataFrame:
    """Rows with this sequence length (NA: tasks without one, like HAR)."""
    if pd.isna(seq_len):
        return frame[frame["seq_len"].isna()]
    return frame[frame["seq_len"] == seq_len]


def longest_seq_len(frame: pd.DataFrame) -> Any:
    """The longest T present (NA when the task has none)."""
    values = frame["seq_len"].dropna()
    return values.max() if len(values) else pd.NA


# ------------------------------------------------------------------------------ rows


def metric_of(task: str, nested: pd.DataFrame) -> tuple[str, str]:
    """The task's headline metric and its direction: from the runs' tags (``metric``,
    ``direction``, written with each run), else from the registry, else the loss."""
    if len(nested) and "metric" in nested:
        tagged = nested[nested["metric"].fillna("") != ""]
        if len(tagged):
            row = tagged.iloc[0]
            info = task_info(task)
            fallback = info.direction if info is not None else "minimize"
            return str(row["metric"]), str(row.get("direction") or fallback)
    info = task_info(task)
    return (info.metric, info.direction) if info is not None else ("loss", "minimize")


def trial_counts(trials: pd.DataFrame) -> dict[str, int]:
    """Tuning trials by outcome: complete, pruned, failed (diverged or interrupted), diverged,
    running."""
    states = trials["state"] if len(trials) else pd.Series([], dtype=object)
    return {"complete": int((states == "complete").sum()),
            "pruned": int((states == "pruned").sum()),
            "failed": int(states.isin(FAILED_STATES).sum()),
            "diverged": int((states == "diverged").sum()),
            "running": int((states == "running").sum())}


def status_of(parent_status: str, counts: dict[str, int], finals: pd.DataFrame,
              expected: dict[str, int | None]) -> str:
    """done | diverged | all trials diverged | running | not started | incomplete."""
    done = finals[finals["state"].isin(("complete", "diverged"))] if len(finals) else finals
    seeds = expected.get("seeds")
    if len(done) and (parent_status == "FINISHED" or (seeds and len(done) >= seeds)):
        return "diverged" if (done["state"] == "diverged").all() else "done"
    trials = counts["complete"] + counts["pruned"] + counts["failed"]
    budget = expected.get("trials")
    if counts["running"] or (len(finals) and (finals["state"] == "running").any()):
        return "running"
    if budget and trials >= budget and counts["complete"] + counts["pruned"] == 0:
        return "all trials diverged"
    if trials == 0 and not len(finals):
        return "not started"
    return "incomplete"


def board_row(parent: pd.Series, nested: pd.DataFrame, expected: dict[str, int | None],
              search: Mapping[str, SearchParam] | None = None) -> dict[str, Any]:
    """One configuration's leaderboard entry from its parent run and nested runs.

    The statistics are over every final seed done (``bench.board.seed_stats``): a diverged
    seed counts with the test metrics it recorded, the trivial predictor's (never dropped);
    ``diverged_rate`` beside.
    """
    metric, direction = metric_of(str(parent["task"]), nested)
    trials = nested[nested["role"] == "trial"]
    finals = nested[nested["role"] == "final"]
    done = finals[finals["state"].isin(("complete", "diverged"))]
    stats = seed_stats(_seeds(done, metric_key("test", metric)))
    low, high = clip_to_range(str(parent["task"]), metric,
                              *t_interval(stats.mean, stats.std, stats.n_values))
    normalized = done[TEST_NORMALIZED].dropna() if TEST_NORMALIZED in done \
        else pd.Series([], dtype=float)
    counts = trial_counts(trials)
    solved = round(stats.solved_rate * stats.seeds) if stats.seeds else 0
    solved_low, solved_high = clopper_pearson(solved, stats.seeds)
    return {
        "configuration": parent["configuration"], "task": parent["task"],
        "seq_len": parent["seq_len"], "model": parent["model"],
        "regularization": parent["regularization"], "clipping": parent["clipping"],
        "remedy": remedy_label(str(parent["regularization"]), str(parent["clipping"])),
        "metric": metric, "direction": direction, "seeds": stats.seeds,
        "n_values": stats.n_values, "mean": stats.mean, "std": stats.std,
        "ci_low": low, "ci_high": high,
        "normalized": float(normalized.mean()) if len(normalized) else math.nan,
        "steps_to_solve": stats.steps_to_solve,
        "solved_rate": stats.solved_rate, "solved_low": solved_low, "solved_high": solved_high,
        "diverged_rate": stats.diverged_rate, **counts,
        "time_s": float(nested["duration_s"].sum()) if len(nested) else 0.0,
        "best_val": _best_val(trials),
        "range_edge": edge_of(parent, trials, search, counts["complete"]),
        "status": "beyond horizon" if parent.get("state") == BEYOND_HORIZON
        else status_of(str(parent["status"]), counts, finals, expected),
    }


def _seeds(done: pd.DataFrame, key: str) -> list[Seed]:
    """The final seeds done (``Results.runs`` rows) as ``bench.board`` reads them: test
    score ``key``, the ``solved`` tag, ``val/steps_to_solve``, the ``state``."""
    def column(name: str) -> list[Any]:
        return done[name].tolist() if name in done else [None] * len(done)

    return [Seed(score=None if pd.isna(score) else float(score),
                 solved=bool(solved) if pd.notna(solved) else False,
                 solved_at=None if pd.isna(at) else float(at),
                 diverged=state == "diverged")
            for score, solved, at, state in zip(column(key), column("solved"),
                                                column(STEPS_TO_SOLVE), done["state"],
                                                strict=True)]


def _best_val(trials: pd.DataFrame) -> float:
    """The lowest final validation loss among complete tuning trials (Optuna's best)."""
    if trials.empty or VAL_LOSS not in trials:
        return math.nan
    values = trials.loc[trials["state"] == "complete", VAL_LOSS].dropna()
    return float(values.min()) if len(values) else math.nan


def leaderboard(runs: pd.DataFrame, expected: dict[str, int | None] | None = None,
                search: Mapping[str, SearchParam] | None = None) -> pd.DataFrame:
    """Every configuration of the suite, ranked best first within each task and T.

    Args:
        runs: ``Results.runs``.
        expected: ``{"trials": budget, "seeds": final seeds}`` from the suite config, to tell
            a finished configuration from one still running; None entries are unknown.
        search: the suite's search space (``search_ranges``), for the range check; None:
            not checked.
    """
    expected = expected or {}
    parents = runs[runs["role"] == "configuration"]
    nested = runs[runs["role"].isin(("trial", "final"))]
    groups = dict(tuple(nested.groupby("configuration"))) if len(nested) else {}
    empty = nested.iloc[0:0]
    rows = [board_row(parent, groups.get(parent["configuration"], empty), expected, search)
            for _, parent in parents.iterrows()]
    board = pd.DataFrame(rows)
    return rank(board) if len(board) else board


def rank(board: pd.DataFrame) -> pd.DataFrame:
    """Sort best first per (task, T): by the headline metric in its direction, configurations
    without a result last; longest T first; adds ``rank`` (1 = best; NA without result)."""
    board = board.copy()
    sign = np.where(board["direction"] == "maximize", -1.0, 1.0)
    board["_key"] = sign * board["mean"].astype(float)
    board["_missing"] = board["mean"].isna()
    board["_T"] = board["seq_len"].astype("Float64").fillna(-1.0)
    board = board.sort_values(["task", "_T", "_missing", "_key", "normalized", "configuration"],
                              ascending=[True, False, True, True, True, True],
                              ignore_index=True)
    ranks = board.groupby(["task", "_T"]).cumcount() + 1
    board["rank"] = ranks.where(~board["_missing"]).astype("Int64")
    return board.drop(columns=["_key", "_missing", "_T"])


# ------------------------------------------------------------------------------ views


def score_grid(board: pd.DataFrame) -> pd.DataFrame:
    """Model x remedy grid of the normalised score (test loss / baseline; < 1 beats it)."""
    grid = board.pivot_table(index="model", columns="remedy", values="normalized",
                             aggfunc="first", dropna=False)
    return grid.reindex(index=model_order(board["model"]), columns=remedy_order(board))


def best_rows(board: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """The best configuration for each group of ``by`` (e.g. model): the best-ranked one;
    in a group without any final result yet, the one with the best tuning trial."""
    order = board.assign(_r=board["rank"].astype("Float64").fillna(np.inf))
    order = order[order["_r"].lt(np.inf) | order["best_val"].notna()]
    order = order.sort_values(["_r", "best_val"], na_position="last")
    return order.groupby(list(by), sort=False).head(1).drop(columns="_r")


def longest_solved(board: pd.DataFrame, threshold: float = SOLVED_THRESHOLD) -> pd.DataFrame:
    """Model x remedy: the longest T that the configuration solves (solved-rate >=
    ``threshold`` over final seeds); NaN where it solves none of the T tried."""
    solved = board[board["solved_rate"] >= threshold]
    grid = solved.pivot_table(index="model", columns="remedy", values="seq_len", aggfunc="max")
    return grid.reindex(index=model_order(board["model"]), columns=remedy_order(board))
