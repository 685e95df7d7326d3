"""Frames -> tables: the numbers of the report, pure pandas/numpy (no plotting, no I/O).

Inputs are the frames of ``bench.report.results`` (one row per run; histories and artifact tables
in long format). Every function returns a new frame; nothing here knows MLflow or HTML.

Facts about tasks, models and remedies (display order, labels, a task's metric, direction,
range and solved rule) are looked up in ``bench.registry``. A name the registry does not
know here (a plugin that does not import where the report runs, a run of an older version)
still renders: under its own name, after the known ones.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench import registry
from bench.outcomes import BEYOND_HORIZON
from bench.registry import MODELS, NONE, REMEDIES, TASKS, ModelInfo, Remedy, TaskInfo
from bench.report.results import float_params
from bench.tracking import (
    BASELINE,
    FACTOR_NAMES,
    STEPS_TO_SOLVE,
    TEST_LOSS,
    TEST_NORMALIZED,
    VAL_LOSS,
    metric_key,
)

SOLVED_THRESHOLD = 0.5  # a configuration "solves" a T when at least half its seeds do
FAILED_STATES = ("diverged", "interrupted", "failed")
BOOTSTRAP = 2000
EXACT_LIMIT = 20_000  # permutation tests enumerate up to this many splits, else sample
ALPHA = 0.05


# ------------------------------------------------------------------------------ registry facts


def _lookup(kind: registry.Registry[Any], name: str) -> Any:
    """The record of ``name``, or None where the registry cannot give one here."""
    if not name or name == NONE:
        return None
    return kind.find(name)  # unknown, or a plugin that does not import here: None


@functools.cache
def model_info(name: str) -> ModelInfo | None:
    return _lookup(MODELS, name)  # type: ignore[no-any-return]


@functools.cache
def task_info(name: str) -> TaskInfo | None:
    return _lookup(TASKS, name)  # type: ignore[no-any-return]


@functools.cache
def remedy_info(name: str) -> Remedy | None:
    return _lookup(REMEDIES, name)  # type: ignore[no-any-return]


def model_order(models: Iterable[str]) -> list[str]:
    """Distinct models in display order: the registry's rank, unknown ones last by name."""
    def key(name: str) -> tuple[int, int, str]:
        info = model_info(name)
        return (0, info.rank, name) if info is not None else (1, 0, name)

    return sorted(dict.fromkeys(models), key=key)


def task_order(tasks: Iterable[str]) -> list[str]:
    """Distinct tasks in display order: the registry's rank, unknown ones last by name."""
    def key(name: str) -> tuple[int, int, str]:
        info = task_info(name)
        return (0, info.rank, name) if info is not None else (1, 0, name)

    return sorted(dict.fromkeys(tasks), key=key)


def _known(name: str) -> str:
    """The name for ``bench.registry``'s pair helpers: none where the registry lacks it."""
    return name if name in ("", NONE) or remedy_info(name) is not None else NONE


def unknown_remedies(regularization: str, clipping: str) -> list[str]:
    """The remedies of a pair that the registry does not know here."""
    return [n for n in (regularization, clipping) if _known(n) != n]


@functools.cache
def remedy_label(regularization: str, clipping: str) -> str:
    """The label of a (regularization, clipping) pair (``none``, ``L2``, ``clip``, ``L2 +
    clip``, ...); a remedy the registry does not know shows under its own name."""
    label = registry.remedy_label(_known(regularization), _known(clipping))
    parts = ([] if label == NONE else [label]) + unknown_remedies(regularization, clipping)
    return " + ".join(parts) or NONE


def remedy_rank(regularization: str, clipping: str) -> tuple[Any, ...]:
    """Sort key of a pair: the registry's, pairs with an unknown remedy last."""
    return (bool(unknown_remedies(regularization, clipping)),
            *registry.remedy_rank(_known(regularization), _known(clipping)),
            remedy_label(regularization, clipping))


def remedy_order(frame: pd.DataFrame) -> list[str]:
    """The remedy labels of a frame's (regularization, clipping) pairs, in display order."""
    pairs = dict.fromkeys(zip(frame["regularization"].astype(str),
                              frame["clipping"].astype(str), strict=True))
    return list(dict.fromkeys(remedy_label(*p) for p in sorted(pairs,
                                                               key=lambda p: remedy_rank(*p))))


def solved_rule(task: str) -> str:
    """The task's solved rule in words (from the registry)."""
    info = task_info(task)
    return info.solved if info is not None and info.solved else "see the task"


# ------------------------------------------------------------------------------ basics


def t_quantile(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t``)."""
    from scipy import stats

    if df < 1:
        return math.nan
    return float(stats.t.ppf(0.975, df))


def mean_ci(values: Sequence[float]) -> tuple[float, float, float, float]:
    """(mean, sample std, 95% t-interval low, high); NaN where undefined (std needs 2)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size == 1:
        return mean, math.nan, math.nan, math.nan
    std = float(x.std(ddof=1))
    half = t_quantile(x.size - 1) * std / math.sqrt(x.size)
    return mean, std, mean - half, mean + half


def metric_range(task: str, metric: str) -> tuple[float, float]:
    """The range of the task's headline metric (from the registry); unbounded otherwise."""
    info = task_info(task)
    if info is not None and info.metric == metric:
        return info.metric_range
    return -math.inf, math.inf


def clip_to_range(task: str, metric: str, low: float, high: float) -> tuple[float, float]:
    """A t-interval of few seeds can leave the metric's range (a negative MSE): clip it."""
    lo, hi = metric_range(task, metric)
    if math.isnan(low) or math.isnan(high):
        return low, high
    return max(low, lo), min(high, hi)


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


def at_seq_len(frame: pd.DataFrame, seq_len: Any) -> pd.DataFrame:
    """Rows with this sequence length (NA: tasks without one, like HAR)."""
    if pd.isna(seq_len):
        return frame[frame["seq_len"].isna()]
    return frame[frame["seq_len"] == seq_len]


def longest_seq_len(frame: pd.DataFrame) -> Any:
    """The longest T present (NA when the task has none)."""
    values = frame["seq_len"].dropna()
    return values.max() if len(values) else pd.NA


# ------------------------------------------------------------------------------ leaderboard


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


def board_row(parent: pd.Series, nested: pd.DataFrame,
              expected: dict[str, int | None]) -> dict[str, Any]:
    """One configuration's leaderboard entry from its parent run and nested runs.

    The statistics are over every final seed done: a diverged seed counts with the test
    metrics it recorded, the trivial predictor's (never dropped); ``diverged_rate`` beside.
    """
    metric, direction = metric_of(str(parent["task"]), nested)
    trials = nested[nested["role"] == "trial"]
    finals = nested[nested["role"] == "final"]
    done = finals[finals["state"].isin(("complete", "diverged"))]
    key = metric_key("test", metric)
    values = done[key].dropna().tolist() if key in done else []
    mean, std, low, high = mean_ci(values)
    low, high = clip_to_range(str(parent["task"]), metric, low, high)
    normalized = done[TEST_NORMALIZED].dropna() if TEST_NORMALIZED in done \
        else pd.Series([], dtype=float)
    to_solve = done[STEPS_TO_SOLVE].dropna() if STEPS_TO_SOLVE in done \
        else pd.Series([], dtype=float)
    counts = trial_counts(trials)
    solved = done["solved"].fillna(False).astype(bool) if "solved" in done else done["state"]
    return {
        "configuration": parent["configuration"], "task": parent["task"],
        "seq_len": parent["seq_len"], "model": parent["model"],
        "regularization": parent["regularization"], "clipping": parent["clipping"],
        "remedy": remedy_label(str(parent["regularization"]), str(parent["clipping"])),
        "metric": metric, "direction": direction, "seeds": len(done), "n_values": len(values),
        "mean": mean, "std": std, "ci_low": low, "ci_high": high,
        "normalized": float(normalized.mean()) if len(normalized) else math.nan,
        "steps_to_solve": float(to_solve.median()) if len(to_solve) else math.nan,
        "solved_rate": float(solved.mean()) if len(done) else math.nan,
        "diverged_rate": float((done["state"] == "diverged").mean()) if len(done) else math.nan,
        **counts, "time_s": float(nested["duration_s"].sum()) if len(nested) else 0.0,
        "best_val": _best_val(trials),
        "status": "beyond horizon" if parent.get("state") == BEYOND_HORIZON
        else status_of(str(parent["status"]), counts, finals, expected),
    }


def _best_val(trials: pd.DataFrame) -> float:
    """The lowest final validation loss among complete tuning trials (Optuna's best)."""
    if trials.empty or VAL_LOSS not in trials:
        return math.nan
    values = trials.loc[trials["state"] == "complete", VAL_LOSS].dropna()
    return float(values.min()) if len(values) else math.nan


def leaderboard(runs: pd.DataFrame, expected: dict[str, int | None] | None = None
                ) -> pd.DataFrame:
    """Every configuration of the suite, ranked best first within each task and T.

    Args:
        runs: ``Results.runs``.
        expected: ``{"trials": budget, "seeds": final seeds}`` from the suite config, to tell
            a finished configuration from one still running; None entries are unknown.
    """
    expected = expected or {}
    parents = runs[runs["role"] == "configuration"]
    nested = runs[runs["role"].isin(("trial", "final"))]
    groups = dict(tuple(nested.groupby("configuration"))) if len(nested) else {}
    empty = nested.iloc[0:0]
    rows = [board_row(parent, groups.get(parent["configuration"], empty), expected)
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


def representative_runs(runs: pd.DataFrame, configuration: str) -> list[str]:
    """The runs that stand for a configuration in figures: its completed final seeds (by
    seed); else its best tuning trial; else its first run."""
    nested = runs[(runs["configuration"] == configuration)
                  & runs["role"].isin(("trial", "final"))]
    finals = nested[(nested["role"] == "final") & (nested["state"] == "complete")]
    if len(finals):
        return finals.sort_values("seed")["run_id"].tolist()
    trials = nested[(nested["role"] == "trial") & nested["state"].isin(("complete", "pruned"))]
    if len(trials) and VAL_LOSS in trials:
        return [str(trials.sort_values(VAL_LOSS)["run_id"].iloc[0])]
    return nested.sort_values("start_time")["run_id"].head(1).tolist()


def empirical_baselines(runs: pd.DataFrame, task: str, seq_len: Any,
                        metric: str) -> dict[str, float]:
    """The trivial predictor's loss and ``metric`` on the fixed validation and test sets
    of ``task`` at ``seq_len``, as its runs recorded them (``baseline/val_loss``, ...);
    NaN where none did."""
    frame = at_seq_len(runs[(runs["task"] == task) & runs["role"].isin(("trial", "final"))],
                       seq_len)
    out = {}
    for split, name in itertools.product(("val", "test"), ("loss", metric)):
        key = metric_key(BASELINE, f"{split}_{name}")
        values = frame[key].dropna() if key in frame else pd.Series([], dtype=float)
        out[f"{split}_{name}"] = float(values.median()) if len(values) else math.nan
    return out


def gradient_ratios(snapshots: pd.DataFrame) -> pd.DataFrame:
    """Per run and snapshot: log10(||dL/dh_1|| / ||dL/dh_T||) of the measured profile
    (negative: the gradient shrinks on its way back, i.e. vanishes)."""
    h = snapshots[(snapshots["kind"] == "h") & (snapshots["norm"] > 0)]
    if h.empty:
        return pd.DataFrame(columns=["run_id", "when", "log10_ratio"])
    first = h.loc[h.groupby(["run_id", "when"])["t"].idxmin()].set_index(["run_id", "when"])
    last = h.loc[h.groupby(["run_id", "when"])["t"].idxmax()].set_index(["run_id", "when"])
    ratio = np.log10(first["norm"] / last["norm"])
    return ratio.rename("log10_ratio").reset_index()


# ------------------------------------------------------------------------------ significance


def permutation_p(a: Sequence[float], b: Sequence[float], *, samples: int = 10_000,
                  seed: int = 0) -> float:
    """Two-sided permutation test of equal means (``scipy.stats.permutation_test``): exact
    over every split when there are at most ``EXACT_LIMIT``, else Monte Carlo with
    ``samples`` shuffles. The statistic is ``|mean(a) - mean(b)|`` and p the share of splits
    at least as extreme. NaN if a group is empty."""
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        return math.nan
    if min(x.size, y.size) == 1:  # scipy needs two values a group: count the n splits here
        pooled = np.concatenate([x, y])
        rest = (pooled.sum() - pooled) / (pooled.size - 1)
        extreme = np.abs(pooled - rest) >= _abs_mean_diff(x, y) * (1 - 1e-12)
        return float(extreme.mean())
    splits = math.comb(x.size + y.size, x.size)
    result = stats.permutation_test(
        (x, y), _abs_mean_diff, permutation_type="independent", vectorized=True,
        n_resamples=splits if splits <= EXACT_LIMIT else samples, alternative="greater",
        rng=np.random.default_rng(seed))
    return float(result.pvalue)


def _abs_mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.abs(x.mean(axis=axis) - y.mean(axis=axis))


def min_attainable_p(n_a: int, n_b: int) -> float:
    """The smallest p the permutation test can give with these group sizes."""
    if n_a < 1 or n_b < 1:
        return math.nan
    return permutation_p(list(range(n_a)), list(range(n_a, n_a + n_b)))


def bootstrap_diff_ci(a: Sequence[float], b: Sequence[float], *, samples: int = BOOTSTRAP,
                      seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of mean(b) - mean(a), resampling each group
    (``scipy.stats.bootstrap``). A group of one value resamples to itself: a constant."""
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        return math.nan, math.nan
    varying = [g for g in (y, -x) if g.size > 1]
    shift = sum(float(g.mean()) for g in (y, -x) if g.size == 1)
    if not varying:
        return shift, shift
    result = stats.bootstrap(
        tuple(varying), _sum_of_means, n_resamples=samples, confidence_level=0.95,
        method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return float(low) + shift, float(high) + shift


def _sum_of_means(*groups: np.ndarray, axis: int = -1) -> np.ndarray:
    return sum(g.mean(axis=axis) for g in groups)  # type: ignore[return-value]


def verdict(p: float, min_p: float) -> str:
    """What a permutation p-value says at the 5% level, given the smallest attainable p."""
    if not math.isfinite(min_p) or min_p >= ALPHA:
        return "too few seeds to test"
    return "best is better" if p < ALPHA else "no detectable difference"


def seed_values(runs: pd.DataFrame, configuration: str, metric: str) -> list[float]:
    """The test metric of each final seed of a configuration (a diverged one's: the
    trivial predictor's)."""
    key = metric_key("test", metric)
    finals = runs[(runs["role"] == "final") & (runs["configuration"] == configuration)
                  & runs["state"].isin(("complete", "diverged"))]
    return finals[key].dropna().astype(float).tolist() if key in finals else []


def significance(board: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The best configuration of ``board`` (one task and T) against each other one.

    Per pair: mean difference (other - best) of the test metric over final seeds, its 95%
    bootstrap interval, and the two-sided permutation p-value; ``verdict`` says whether the
    best is better at the 5% level.
    """
    ranked = board[board["rank"].notna()].sort_values("rank")
    if ranked.empty:
        return pd.DataFrame()
    best = ranked.iloc[0]
    metric = str(best["metric"])
    a = seed_values(runs, str(best["configuration"]), metric)
    rows = []
    for _, other in ranked.iloc[1:].iterrows():
        b = seed_values(runs, str(other["configuration"]), metric)
        low, high = bootstrap_diff_ci(a, b)
        p = permutation_p(a, b)
        rows.append({"best": best["configuration"], "other": other["configuration"],
                     "model": other["model"], "n_best": len(a), "n_other": len(b),
                     "diff": float(np.mean(b) - np.mean(a)) if a and b else math.nan,
                     "ci_low": low, "ci_high": high, "p": p,
                     "min_p": min_attainable_p(len(a), len(b)),
                     "verdict": verdict(p, min_attainable_p(len(a), len(b)))})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ tuning


def gradient_flow(profiles: pd.DataFrame) -> pd.DataFrame:
    """Per run, probe step and time step t: ``log10(||dL/dh_t|| / ||dL/dh_T||)`` of the h
    profile at that probe (0 where nothing is lost, negative where the gradient vanished on
    its way back, positive where it grew). NaN where either norm is 0 or not finite."""
    columns = ["run_id", "step", "t", "norm", "value"]
    h = profiles[profiles["kind"] == "h"] if len(profiles) else profiles
    if h.empty:
        return pd.DataFrame(columns=columns)
    h = h.sort_values(["run_id", "step", "t"])
    last = h.groupby(["run_id", "step"])["norm"].transform("last")
    ratio = h["norm"].astype(float) / last.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.log10(ratio.where((ratio > 0) & np.isfinite(ratio)))
    return h.assign(value=value)[columns].reset_index(drop=True)


def factor_snapshots(factors: pd.DataFrame) -> pd.DataFrame:
    """The two factors of each run at initialisation (step 0) and after training (its last
    probe), one row per run and moment (``when``)."""
    if factors.empty:
        return pd.DataFrame(columns=["run_id", "when", "step", "path", *FACTOR_NAMES])
    frame = factors.sort_values(["run_id", "step"])
    first = frame.groupby("run_id").head(1).assign(when="at initialisation")
    last = frame.groupby("run_id").tail(1).assign(when="after training")
    return pd.concat([first, last]).reset_index(drop=True)


def factor_medians(snaps: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and moment (``when``): the median of each factor over the
    configuration's runs, the range of the measured decay (``measured_low``,
    ``measured_high``) and the number of runs. ``snaps``: ``factor_snapshots`` rows with a
    ``configuration`` column."""
    columns = ["configuration", "when", *FACTOR_NAMES, "measured_low", "measured_high", "runs"]
    if snaps.empty:
        return pd.DataFrame(columns=columns)
    groups = snaps.groupby(["configuration", "when"], sort=False)
    out = groups[list(FACTOR_NAMES)].median()
    out["measured_low"] = groups["measured"].min()
    out["measured_high"] = groups["measured"].max()
    out["runs"] = groups["run_id"].nunique()
    return out.reset_index()[columns]


def best_so_far(trials: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and trial number: the trial's final validation loss (complete trials
    only, as Optuna counts them) and the best value so far."""
    columns = ["configuration", "model", "regularization", "clipping", "remedy",
               "trial_number", "run_id", "value", "best"]
    if trials.empty or VAL_LOSS not in trials:
        return pd.DataFrame(columns=columns)
    frame = trials[trials["trial_number"].notna()].copy()
    frame["value"] = frame[VAL_LOSS].where(frame["state"] == "complete")
    frame["remedy"] = [remedy_label(r, c) for r, c in
                       zip(frame["regularization"], frame["clipping"], strict=True)]
    frame = frame.sort_values(["configuration", "trial_number"])
    frame["best"] = frame.groupby("configuration")["value"].cummin()
    frame["best"] = frame.groupby("configuration")["best"].ffill()  # cummin leaves NaN holes
    return frame[columns].reset_index(drop=True)


def importance_table(importances: dict[str, dict[str, float] | str],
                     board: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Configuration x parameter importances, and the configurations without (reason)."""
    studies = {c: v for c, v in importances.items() if isinstance(v, dict)}
    notes = {c: v for c, v in importances.items() if isinstance(v, str)}
    known = board[board["configuration"].isin(studies)]
    model_of = dict(zip(known["configuration"], known["model"].astype(str), strict=True))
    rank = {m: i for i, m in enumerate(model_order(model_of.values()))}
    order = sorted(model_of, key=lambda c: (rank[model_of[c]], c))
    table = pd.DataFrame([studies[c] for c in order], index=order)
    order = (*float_params(), "batch_size", "param_budget", "hidden_size")
    known_params = [p for p in order if p in table.columns]
    table = table[known_params + sorted(set(table.columns) - set(known_params))]
    return table, notes


# ------------------------------------------------------------------------------ sweep


def longest_solved(board: pd.DataFrame, threshold: float = SOLVED_THRESHOLD) -> pd.DataFrame:
    """Model x remedy: the longest T that the configuration solves (solved-rate >=
    ``threshold`` over final seeds); NaN where it solves none of the T tried."""
    solved = board[board["solved_rate"] >= threshold]
    grid = solved.pivot_table(index="model", columns="remedy", values="seq_len", aggfunc="max")
    return grid.reindex(index=model_order(board["model"]), columns=remedy_order(board))


# ------------------------------------------------------------------------------ HAR


def confusion_matrix(rows: pd.DataFrame) -> pd.DataFrame:
    """Counts summed over runs, rows: true class, columns: predicted (first-seen order)."""
    order = list(dict.fromkeys(rows["true"].tolist() + rows["predicted"].tolist()))
    matrix = rows.pivot_table(index="true", columns="predicted", values="count", aggfunc="sum",
                              fill_value=0)
    return matrix.reindex(index=order, columns=order, fill_value=0).astype(int)


def per_class_f1(matrix: pd.DataFrame) -> pd.DataFrame:
    """Precision, recall, F1 and support per class of a confusion matrix (rows = true)."""
    m = matrix.to_numpy(dtype=float)
    tp = np.diag(m)
    support, predicted = m.sum(axis=1), m.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = 2 * tp + (predicted - tp) + (support - tp)
        f1 = np.where(denom > 0, 2 * tp / denom, 0.0)
    return pd.DataFrame({"class": matrix.index, "precision": precision, "recall": recall,
                         "f1": f1, "support": support.astype(int)})


# ------------------------------------------------------------------------------ curves


MEMORY_KINDS = {"h_memory": "h", "bound_memory": "bound"}  # see bench.diagnostics.probing


def memory_profiles(profiles: pd.DataFrame) -> pd.DataFrame:
    """A run that recorded the profile of its task's memory loss (copy: the recall alone)
    shows that one, as kinds ``h`` and ``bound``: the full loss is dominated by steps that
    need no memory. Other runs keep their profiles."""
    if profiles.empty or not profiles["kind"].isin(list(MEMORY_KINDS)).any():
        return profiles
    has = set(profiles.loc[profiles["kind"].isin(list(MEMORY_KINDS)), "run_id"])
    mine = profiles["run_id"].isin(has)
    keep = profiles[~mine | profiles["kind"].isin(list(MEMORY_KINDS))]
    return keep.assign(kind=keep["kind"].replace(MEMORY_KINDS))


def profile_snapshots(profiles: pd.DataFrame) -> pd.DataFrame:
    """Per run, the first probe (at initialisation) and the last (after training), with a
    ``when`` column; kinds ``h`` and ``bound`` only (of the memory loss where a run has it,
    ``memory_profiles``)."""
    if profiles.empty:
        return profiles.assign(when=pd.Series(dtype=object))
    profiles = memory_profiles(profiles)
    frame = profiles[profiles["kind"].isin(("h", "bound"))]
    first = frame.groupby("run_id")["step"].transform("min")
    last = frame.groupby("run_id")["step"].transform("max")
    init = frame[frame["step"] == first].assign(when="at initialisation")
    trained = frame[(frame["step"] == last) & (last > first)].assign(when="after training")
    return pd.concat([init, trained], ignore_index=True)


def seed_band(histories: pd.DataFrame, key: str) -> pd.DataFrame:
    """Mean, min and max over runs (seeds) of one metric per step."""
    frame = histories[histories["key"] == key]
    if frame.empty:
        return pd.DataFrame(columns=["step", "mean", "low", "high", "n"])
    grouped = frame.groupby("step")["value"]
    return pd.DataFrame({"mean": grouped.mean(), "low": grouped.min(), "high": grouped.max(),
                         "n": grouped.count()}).reset_index()


def baseline_of(finals: pd.DataFrame) -> float:
    """The task's baseline loss on the test set: the trivial predictor's, as the final
    seeds measured it (``baseline/test_loss``); for older runs, test loss / normalised
    score of any completed seed."""
    measured = metric_key(BASELINE, "test_loss")
    if measured in finals and finals[measured].notna().any():
        return float(finals[measured].dropna().median())
    if finals.empty or TEST_NORMALIZED not in finals or TEST_LOSS not in finals:
        return math.nan
    ok = finals[(finals[TEST_NORMALIZED] > 0) & finals[TEST_LOSS].notna()]
    return float((ok[TEST_LOSS] / ok[TEST_NORMALIZED]).median()) if len(ok) else math.nan
