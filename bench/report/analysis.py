"""Frames -> the tables the report's figures draw: pure pandas/numpy (no plotting, no I/O).

Inputs are the frames of ``bench.report.results`` (one row per run; histories and artifact tables
in long format). Every function returns a new frame; nothing here knows MLflow or HTML. The
leaderboard is ``bench.report.leaderboard``, the statistics ``bench.report.statistics``, and
facts about tasks, models and remedies ``bench.report.facts``.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from bench.names import BASELINE, TEST_LOSS, TEST_NORMALIZED, VAL_LOSS, metric_key
from bench.report.facts import model_order, remedy_label
from bench.report.leaderboard import at_seq_len
from bench.report.results import float_params

# the columns of diagnostics/factors.csv a configuration's row shows (bench.diagnostics.factors)
SPLIT_COLUMNS = ("fprime_log10", "w_hh_log10", "step_log10_ratio", "carry_share")

# ------------------------------------------------------------------------------ runs


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


# ------------------------------------------------------------------------------ gradients


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
    """The split of each run at initialisation (step 0) and after training (its last probe),
    one ``diagnostics/factors.csv`` row per run and moment (``when``)."""
    if factors.empty:
        return pd.DataFrame(columns=["run_id", "when", "step", "path", *SPLIT_COLUMNS, "slope"])
    frame = factors.sort_values(["run_id", "step"])
    first = frame.groupby("run_id").head(1).assign(when="at initialisation")
    last = frame.groupby("run_id").tail(1).assign(when="after training")
    return pd.concat([first, last]).reset_index(drop=True)


def factor_step_snapshots(steps: pd.DataFrame) -> pd.DataFrame:
    """The per-step split (``diagnostics/factor_steps.csv``: one row per probe and backward
    step t) of each run at initialisation (its first probe) and after training (its last,
    where it has more than one), with a ``when`` column, as ``profile_snapshots``."""
    if steps.empty:
        return pd.DataFrame(columns=["run_id", "when", "step", "t", *SPLIT_COLUMNS])
    first = steps.groupby("run_id")["step"].transform("min")
    last = steps.groupby("run_id")["step"].transform("max")
    init = steps[steps["step"] == first].assign(when="at initialisation")
    trained = steps[(steps["step"] == last) & (last > first)].assign(when="after training")
    return pd.concat([init, trained], ignore_index=True).sort_values(
        ["run_id", "step", "t"], ignore_index=True)


def factor_medians(snaps: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and moment (``when``): the split of the median run (the run whose
    mean per-step log ratio is the median over the configuration's runs, the lower of two
    middles), so that its f' and W_hh factors add up to its log ratio as each run's do; the
    median slope and its range over the runs (``slope_low``, ``slope_high``); the number of
    runs; and the median run's ``fprime_all_units`` (the mean log10 f' over every unit, not
    on the gradient's path; NaN where not recorded). ``snaps``: ``factor_snapshots`` rows with
    a ``configuration`` column."""
    columns = ["configuration", "when", *SPLIT_COLUMNS, "slope", "slope_low", "slope_high",
               "runs", "fprime_all_units"]
    if snaps.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (configuration, when), group in snaps.groupby(["configuration", "when"], sort=False):
        median = _median_run(group)
        slope = group["slope"].astype(float)
        rows.append({"configuration": configuration, "when": when,
                     **{k: median[k] for k in SPLIT_COLUMNS}, "slope": slope.median(),
                     "slope_low": slope.min(), "slope_high": slope.max(),
                     "runs": group["run_id"].nunique(),
                     "fprime_all_units": median.get("fprime_all_units", math.nan)})
    return pd.DataFrame(rows, columns=columns)


def _median_run(group: pd.DataFrame) -> pd.Series:
    """The row whose ``step_log10_ratio`` is the median of the group's (the lower of two
    middles); the first row where no run has one."""
    ratio = group["step_log10_ratio"].astype(float)
    ranked = group[np.isfinite(ratio)].sort_values("step_log10_ratio")
    return group.iloc[0] if ranked.empty else ranked.iloc[(len(ranked) - 1) // 2]


# ------------------------------------------------------------------------------ curves


def seed_band(histories: pd.DataFrame, key: str) -> pd.DataFrame:
    """Mean, min and max over runs (seeds) of one metric per step."""
    frame = histories[histories["key"] == key]
    if frame.empty:
        return pd.DataFrame(columns=["step", "mean", "low", "high", "n"])
    grouped = frame.groupby("step")["value"]
    return pd.DataFrame({"mean": grouped.mean(), "low": grouped.min(), "high": grouped.max(),
                         "n": grouped.count()}).reset_index()


# ------------------------------------------------------------------------------ tuning


def best_so_far(trials: pd.DataFrame) -> pd.DataFrame:
    """Per configuration and trial number: the trial's final validation loss (complete trials
    only, as Optuna counts them) and the best value so far."""
    columns = ["configuration", "model", "regularization", "clipping", "remedy",
               "trial_number", "run_id", "state", "value", "best"]
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


COUNTED_TRIALS = ("complete", "pruned", "diverged")  # the trials a budget counts


def last_third(curve: pd.DataFrame) -> pd.DataFrame:
    """Per configuration of a ``best_so_far`` frame: whether the last third of its trials
    (of the n it counts, ``COUNTED_TRIALS``, by trial number: the last ``n // 3``) still
    improved the best value.

    Columns: ``trials`` (n), ``best_at`` (the trial number that set the best, as the
    best-so-far figure counts; NA without a complete trial), ``improved`` (True / False; NA
    below three trials or without a complete trial) and ``last_third`` in words. A best
    still falling late says more trials may well find a better one; a flat last third says
    the search settled, not that it found the optimum.
    """
    columns = ["configuration", "trials", "best_at", "improved", "last_third"]
    rows = []
    counted = curve[curve["state"].isin(COUNTED_TRIALS)]
    for configuration, part in counted.groupby("configuration", sort=False):
        part = part.sort_values("trial_number")
        values = part["value"].astype(float).to_numpy()
        n, late = len(values), len(values) // 3
        found = np.isfinite(values)
        if not found.any():
            rows.append([configuration, n, pd.NA, pd.NA, "no complete trial"])
            continue
        best_at = int(part["trial_number"].iloc[int(np.nanargmin(values))])
        if not late:
            rows.append([configuration, n, best_at, pd.NA, "too few trials to tell"])
            continue
        before, after = values[:n - late][found[:n - late]], values[n - late:][found[n - late:]]
        improved = bool(len(after) and (not len(before) or after.min() < before.min()))
        rows.append([configuration, n, best_at, improved,
                     f"{'improved' if improved else 'no improvement'} in the last {late} of "
                     f"{n} trials (best at trial {best_at})"])
    return pd.DataFrame(rows, columns=columns)


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
    params = (*float_params(), "batch_size", "param_budget", "hidden_size")
    known_params = [p for p in params if p in table.columns]
    table = table[known_params + sorted(set(table.columns) - set(known_params))]
    return table, notes


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
