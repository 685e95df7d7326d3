"""The report's statistics over final seeds, sized for the 3-10 seeds a suite affords
(``scipy.stats``): the Student-t interval of a mean, the exact (Clopper-Pearson) interval of
a solved rate, and the best configuration of a task and T against each other one.

The comparisons are exact permutation tests: a sign-flip test on the paired differences
where the seeds pair (two configurations of one model: the final seeds of every
configuration are ``seed + 1000 + i``, so seed i starts both from the same weights and
draws the same batches), else the test of two independent groups. An exact test cannot go
below its smallest attainable p (``2 / 2**n`` paired, ``2 / C(n_a + n_b, n_a)``
independent), shown beside each p. The p-values of one table are Holm-corrected; the
intervals are Student-t ones (paired, or Welch's): no percentile bootstrap, which at 3-5
seeds has a few dozen distinct resamples and covers far less than it claims.

The mean and sample std are ``bench.board.mean_std``'s, as on both leaderboards. scipy is
imported by the functions that use it: it is heavy, and only a report that draws these
numbers needs it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench.board import mean_std
from bench.names import metric_key
from bench.report.facts import metric_range

EXACT_LIMIT = 20_000  # permutation tests enumerate up to this many splits, else sample
ALPHA = 0.05
LEVEL = 0.95  # of every interval


# ------------------------------------------------------------------------------ intervals


def t_quantile(df: int | float) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t``)."""
    from scipy import stats

    if not df >= 1:
        return math.nan
    return float(stats.t.ppf(0.5 + LEVEL / 2, df))


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


def welch_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """The 95% Welch t-interval of mean(b) - mean(a) (two independent groups, unequal
    variances, Welch-Satterthwaite degrees of freedom); NaN unless each group has two
    values."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size < 2 or y.size < 2:
        return math.nan, math.nan
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    diff, se = float(y.mean() - x.mean()), math.sqrt(va + vb)
    if se == 0:
        return diff, diff
    df = (va + vb) ** 2 / (va ** 2 / (x.size - 1) + vb ** 2 / (y.size - 1))
    half = t_quantile(df) * se
    return diff - half, diff + half


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """The exact 95% (Clopper-Pearson) interval of a rate of ``k`` in ``n``: the beta
    quantiles that bound every binomial rate compatible with k at 2.5% on each side (3 of
    3 solved: [0.29, 1]). NaN without a trial."""
    from scipy import stats

    if n < 1:
        return math.nan, math.nan
    tail = (1 - LEVEL) / 2
    low = 0.0 if k <= 0 else float(stats.beta.ppf(tail, k, n - k + 1))
    high = 1.0 if k >= n else float(stats.beta.ppf(1 - tail, k + 1, n - k))
    return low, high


def clip_to_range(task: str, metric: str, low: float, high: float) -> tuple[float, float]:
    """A t-interval of few seeds can leave the metric's range (a negative MSE): clip it."""
    lo, hi = metric_range(task, metric)
    if math.isnan(low) or math.isnan(high):
        return low, high
    return max(low, lo), min(high, hi)


# ------------------------------------------------------------------------------ tests


def permutation_p(a: Sequence[float], b: Sequence[float], *, samples: int = 10_000,
                  seed: int = 0) -> float:
    """Two-sided permutation test of equal means of two independent groups
    (``scipy.stats.permutation_test``): exact over every split when there are at most
    ``EXACT_LIMIT``, else Monte Carlo with ``samples`` shuffles. The statistic is
    ``|mean(a) - mean(b)|`` and p the share of splits at least as extreme. NaN if a group
    is empty."""
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


def sign_flip_p(diffs: Sequence[float], *, samples: int = 10_000, seed: int = 0) -> float:
    """Two-sided exact paired test (``scipy.stats.permutation_test``, one sample: the
    signs of the differences are flipped): under equal means each pair's difference is as
    likely negative as positive, so p is the share of the ``2**n`` sign patterns whose
    ``|mean|`` reaches the observed one; Monte Carlo beyond ``EXACT_LIMIT`` patterns. NaN
    without a pair."""
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return math.nan
    if d.size == 1:  # scipy needs two values; both sign patterns give the same |mean|
        return 1.0
    patterns = 2 ** d.size
    result = stats.permutation_test(
        (d,), _abs_mean, permutation_type="samples", vectorized=True,
        n_resamples=patterns if patterns <= EXACT_LIMIT else samples, alternative="greater",
        rng=np.random.default_rng(seed))
    return float(result.pvalue)


def _abs_mean(d: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.abs(d.mean(axis=axis))


def min_attainable_p(n_a: int, n_b: int) -> float:
    """The smallest p the independent permutation test can give with these group sizes:
    ``2 / C(n_a + n_b, n_a)`` (the two most extreme splits), 1 where that exceeds 1."""
    if n_a < 1 or n_b < 1:
        return math.nan
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))


def min_paired_p(n: int) -> float:
    """The smallest p the sign-flip test can give with ``n`` pairs: ``2 / 2**n`` (all signs
    the same, either way): 0.25 at 3 pairs, 0.0625 at 5, 0.002 at 10."""
    return math.nan if n < 1 else min(1.0, 2.0 ** (1 - n))


def holm(ps: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of the p-values of one table (the family): the i-th
    smallest of m is multiplied by m - i + 1, made non-decreasing, capped at 1. NaN entries
    (no test) stay NaN and do not count in m."""
    order = sorted((p, i) for i, p in enumerate(ps) if math.isfinite(p))
    out = [math.nan] * len(ps)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        out[i] = running
    return out


TOO_FEW = "too few seeds to test"  # the verdict where no p this table gives can reject


def verdict(p: float, min_p: float, comparisons: int = 1) -> str:
    """What a (Holm-adjusted) p-value says at the 5% level, given the smallest p the test
    can reach at its n. Among ``comparisons`` Holm multiplies the smallest p by their
    number, so a test whose smallest p times that is not below the level cannot reject
    anything: "too few seeds to test" (4 seeds a side reach 0.029, and 0.086 among 3)."""
    if not math.isfinite(min_p) or min(1.0, min_p * comparisons) >= ALPHA:
        return TOO_FEW
    return "best is better" if p < ALPHA else "no detectable difference"


# ------------------------------------------------------------------------------ the table


def seed_scores(runs: pd.DataFrame, configuration: str, metric: str) -> dict[Any, float]:
    """The test metric of each final seed of a configuration (a diverged one's: the
    trivial predictor's), by seed (a run without a seed: by its run id, so it pairs with
    nothing)."""
    key = metric_key("test", metric)
    finals = runs[(runs["role"] == "final") & (runs["configuration"] == configuration)
                  & runs["state"].isin(("complete", "diverged"))]
    if key not in finals:
        return {}
    finals = finals[finals[key].notna()]
    return {(int(s) if pd.notna(s) else str(r)): float(v)
            for s, r, v in zip(finals["seed"], finals["run_id"], finals[key], strict=True)}


def choose_test(best: Mapping[Any, float], other: Mapping[Any, float], *, pairs: bool,
                level: float) -> tuple[str, str]:
    """("paired" | "independent", why). The seeds pair where ``pairs`` (one model) and
    they share seeds; the paired test is used where its smallest p reaches ``level`` (the
    strictest Holm step of the table: alpha / comparisons), else the test with the smaller
    smallest p. The choice reads the numbers of seeds only, never their values."""
    shared = len(set(best) & set(other))
    independent = min_attainable_p(len(best), len(other))
    if not pairs or shared == 0:
        why = "different models: their seeds do not pair" if not pairs \
            else "no seed in common"
        return "independent", why
    paired = min_paired_p(shared)
    if paired <= level:
        return "paired", (f"{shared} shared seeds: the paired test can reach p = "
                          f"{paired:.2g} <= {level:.2g}")
    if independent < paired:
        return "independent", (f"{shared} pairs cannot go below p = {paired:.2g} (above "
                               f"{level:.2g}); two independent groups reach "
                               f"{independent:.2g}")
    return "paired", (f"{shared} shared seeds: neither test reaches {level:.2g}; the paired "
                      f"one comes closer ({paired:.2g})")


def compare(best: Mapping[Any, float], other: Mapping[Any, float], test: str
            ) -> dict[str, float]:
    """One comparison by ``test``: the difference of means (other - best), its 95%
    t-interval, p and the smallest p the test can reach at its n."""
    if test == "paired":
        shared = sorted(set(best) & set(other), key=str)
        d = [other[s] - best[s] for s in shared]
        mean, std = mean_std(d)
        low, high = t_interval(mean, std, len(d))
        return {"n": len(d), "diff": mean, "ci_low": low, "ci_high": high,
                "p": sign_flip_p(d), "min_p": min_paired_p(len(d))}
    a, b = list(best.values()), list(other.values())
    low, high = welch_interval(a, b)
    return {"n": min(len(a), len(b)),
            "diff": float(np.mean(b) - np.mean(a)) if a and b else math.nan,
            "ci_low": low, "ci_high": high, "p": permutation_p(a, b),
            "min_p": min_attainable_p(len(a), len(b))}


def significance(board: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The best configuration of ``board`` (one task and T) against each other one.

    Per pair: the test (``choose_test``) and why, the mean difference (other - best) of the
    test metric over final seeds with its 95% t-interval, the two-sided p, its Holm
    adjustment over the table, the smallest p the test can reach, and the ``verdict`` on the
    adjusted p at the 5% level.
    """
    ranked = board[board["rank"].notna()].sort_values("rank")
    if len(ranked) < 2:
        return pd.DataFrame()
    best = ranked.iloc[0]
    metric = str(best["metric"])
    a = seed_scores(runs, str(best["configuration"]), metric)
    level = ALPHA / (len(ranked) - 1)
    rows = []
    for _, other in ranked.iloc[1:].iterrows():
        b = seed_scores(runs, str(other["configuration"]), metric)
        test, why = choose_test(a, b, pairs=other["model"] == best["model"], level=level)
        rows.append({"best": best["configuration"], "other": other["configuration"],
                     "model": other["model"], "n_best": len(a), "n_other": len(b),
                     "test": test, "why": why, **compare(a, b, test)})
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p"].tolist())
    table["verdict"] = [verdict(p, m, len(table)) for p, m in zip(table["p_holm"], table["min_p"],
                                                      strict=True)]
    return table
