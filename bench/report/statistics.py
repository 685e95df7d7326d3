"""The report's statistics over final seeds: the Student-t interval of a mean, and the
best configuration of a task and T against each other one (permutation test, bootstrap
interval of the difference; ``scipy.stats``).

The mean and sample std are ``bench.board.mean_std``'s, as on both leaderboards. scipy is
imported by the functions that use it: it is heavy, and only a report that draws these
numbers needs it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.board import mean_std
from bench.names import metric_key
from bench.report.facts import metric_range

BOOTSTRAP = 2000
EXACT_LIMIT = 20_000  # permutation tests enumerate up to this many splits, else sample
ALPHA = 0.05


# ------------------------------------------------------------------------------ intervals


def t_quantile(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t``)."""
    from scipy import stats

    if df < 1:
        return math.nan
    return float(stats.t.ppf(0.975, df))


def mean_ci(values: Sequence[float]) -> tuple[float, float, float, float]:
    """(mean, sample std, 95% t-interval low, high) of the finite ``values``; NaN where
    undefined (std needs 2)."""
    mean, std = mean_std(values)
    n = sum(1 for v in values if v is not None and math.isfinite(v))
    low, high = t_interval(mean, std, n)
    return mean, std, low, high


def t_interval(mean: float, std: float, n: int) -> tuple[float, float]:
    """The 95% Student-t interval of the mean of ``n`` values with sample std ``std``; NaN
    below two values."""
    if n < 2:
        return math.nan, math.nan
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return mean - half, mean + half


def clip_to_range(task: str, metric: str, low: float, high: float) -> tuple[float, float]:
    """A t-interval of few seeds can leave the metric's range (a negative MSE): clip it."""
    lo, hi = metric_range(task, metric)
    if math.isnan(low) or math.isnan(high):
        return low, high
    return max(low, lo), min(high, hi)


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
