"""The report's statistics come from scipy.stats: the same results as the hand-written
versions they replaced where those were exact (the exact permutation test, the t table to
its printed digits), and the bootstrap's known cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from bench.report.statistics import (
    bootstrap_diff_ci,
    mean_ci,
    min_attainable_p,
    permutation_p,
    t_quantile,
)

# The table the project printed before (97.5% quantiles of Student's t, df 1..30).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def exact_permutation_p(a: list[float], b: list[float]) -> float:
    """The former hand-written exact test: the share of all splits of the pooled values
    whose |difference of means| reaches the observed one."""
    pooled = np.asarray(a + b, dtype=float)
    n, k = pooled.size, len(a)
    observed = abs(np.mean(a) - np.mean(b))
    tol = 1e-12 * max(1.0, float(np.abs(pooled).max()))
    total, hits, count = pooled.sum(), 0, 0
    for idx in itertools.combinations(range(n), k):
        s = pooled[list(idx)].sum()
        hits += abs(s / k - (total - s) / (n - k)) >= observed - tol
        count += 1
    return hits / count


def test_t_quantile_matches_the_printed_table() -> None:
    for df, value in enumerate(T975, start=1):
        assert t_quantile(df) == pytest.approx(value, abs=5e-4), df
    assert t_quantile(200) == pytest.approx(1.972, abs=1e-3)
    assert math.isnan(t_quantile(0))


def test_mean_ci_is_the_student_t_interval() -> None:
    values = [0.12, 0.18, 0.11, 0.16]
    mean, std, low, high = mean_ci(values)
    half = 3.182 * np.std(values, ddof=1) / 2  # t(3) from the table, sqrt(4) = 2
    assert mean == pytest.approx(np.mean(values))
    assert std == pytest.approx(np.std(values, ddof=1))
    assert (low, high) == pytest.approx((mean - half, mean + half), abs=1e-5)
    assert all(math.isnan(v) for v in mean_ci([0.3])[1:])


@pytest.mark.parametrize("sizes", [(2, 2), (3, 3), (2, 3), (3, 5), (5, 5), (1, 4), (7, 8)])
def test_permutation_p_is_the_exact_test_it_replaced(sizes: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(sizes))
    for trial in range(4):
        a = rng.normal(0.0, 1.0, sizes[0]).round(3).tolist()
        b = rng.normal(0.8 * trial, 1.0, sizes[1]).round(3).tolist()
        assert permutation_p(a, b) == pytest.approx(exact_permutation_p(a, b), rel=1e-12)
    tied = [0.1, 0.2, 0.3]
    assert permutation_p(tied, tied) == 1.0


def test_smallest_attainable_p() -> None:
    assert min_attainable_p(2, 2) == pytest.approx(2 / 6)  # 2 of the 6 splits are extreme
    assert min_attainable_p(3, 3) == pytest.approx(2 / 20)
    assert min_attainable_p(5, 5) == pytest.approx(2 / 252)
    assert math.isnan(min_attainable_p(0, 3))


def test_permutation_p_samples_when_splits_are_many() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 12).tolist(), rng.normal(3, 1, 12).tolist()  # C(24,12) > 20,000
    p = permutation_p(a, b, samples=2000)
    assert p == pytest.approx(1 / 2001)  # nothing reaches a 3-sigma gap: (0 + 1) / (n + 1)
    assert permutation_p(a, a, samples=500) == 1.0


def test_bootstrap_interval_of_the_difference() -> None:
    assert bootstrap_diff_ci([0.1, 0.1], [0.5, 0.5]) == pytest.approx((0.4, 0.4))
    assert bootstrap_diff_ci([0.2], [0.7]) == pytest.approx((0.5, 0.5))
    low, high = bootstrap_diff_ci([0.2], [0.5, 0.7, 0.9])  # one value: a constant
    assert 0.3 - 1e-12 <= low < high <= 0.7 + 1e-12
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.0, 1.0, 200), rng.normal(1.0, 1.0, 200)
    low, high = bootstrap_diff_ci(a.tolist(), b.tolist())
    diff, se = b.mean() - a.mean(), math.sqrt(a.var(ddof=1) / 200 + b.var(ddof=1) / 200)
    assert low == pytest.approx(diff - 1.96 * se, abs=0.04)  # the normal-theory interval
    assert high == pytest.approx(diff + 1.96 * se, abs=0.04)
    assert bootstrap_diff_ci([0.1, 0.3], [0.5, 0.9]) == bootstrap_diff_ci([0.1, 0.3], [0.5, 0.9])
    assert all(math.isnan(v) for v in bootstrap_diff_ci([], [0.1]))
