"""The report's statistics come from scipy.stats: the same results as the hand-written
versions they replaced where those were exact (the exact permutation test, the t table to
its printed digits), and values worked out by hand for the exact interval of a rate, the
sign-flip test, Holm's adjustment and Welch's interval."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from bench.report.statistics import (
    choose_test,
    clopper_pearson,
    compare,
    holm,
    mean_ci,
    min_attainable_p,
    min_paired_p,
    permutation_p,
    seed_scores,
    sign_flip_p,
    t_quantile,
    verdict,
    welch_interval,
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


def _binomial_tail(k_from: int, k_to: int, n: int, rate: float) -> float:
    return sum(math.comb(n, k) * rate**k * (1 - rate) ** (n - k) for k in range(k_from, k_to + 1))


def test_the_exact_interval_of_a_solved_rate() -> None:
    # k = n: the lower end solves rate**n = 0.025; k = 0: the upper end (1 - rate)**n = 0.025
    assert clopper_pearson(3, 3) == pytest.approx((0.025 ** (1 / 3), 1.0))  # (0.2924, 1)
    assert clopper_pearson(3, 3)[0] == pytest.approx(0.2924, abs=1e-4)
    assert clopper_pearson(0, 5) == pytest.approx((0.0, 1 - 0.025 ** (1 / 5)))  # 0.5218
    # 1 of 2: P(X >= 1 | low) = 1 - (1 - low)**2 = 0.025; high = 1 - low by symmetry
    assert clopper_pearson(1, 2) == pytest.approx((1 - 0.975 ** 0.5, 0.975 ** 0.5))
    # in between, each end leaves 2.5% in its binomial tail
    low, high = clopper_pearson(2, 5)
    assert _binomial_tail(2, 5, 5, low) == pytest.approx(0.025, abs=1e-9)
    assert _binomial_tail(0, 2, 5, high) == pytest.approx(0.025, abs=1e-9)
    assert all(math.isnan(v) for v in clopper_pearson(0, 0))
    # one seed (final.seeds: 1): beta(1, 1) is uniform, so each end is 2.5% from its edge
    assert clopper_pearson(0, 1) == pytest.approx((0.0, 0.975))
    assert clopper_pearson(1, 1) == pytest.approx((0.025, 1.0))


def test_the_sign_flip_test_counts_sign_patterns() -> None:
    # 1+2+3+4+5 = 15: only all-plus and all-minus reach |sum| 15, 2 of 32 patterns
    assert sign_flip_p([1, 2, 3, 4, 5]) == pytest.approx(2 / 32)
    # observed |sum| 11 = 15 - 2 * (the flipped ones): flipped sums <= 2 ({}, {1}, {2}) or
    # >= 13 (their complements): 6 of 32
    assert sign_flip_p([1, -2, 3, 4, 5]) == pytest.approx(6 / 32)
    assert sign_flip_p([0.3, 0.1, 0.2]) == pytest.approx(2 / 8)  # 3 pairs: never below 0.25
    assert sign_flip_p([0.1, -0.1]) == 1.0
    assert sign_flip_p([0.4]) == 1.0  # one pair: both signs reach |0.4|
    assert sign_flip_p([1.0] * 16) < 0.001  # 65,536 patterns: sampled
    assert math.isnan(sign_flip_p([]))
    assert (min_paired_p(3), min_paired_p(5), min_paired_p(10)) == (0.25, 0.0625, 2 / 1024)
    assert min_paired_p(1) == 1.0 and math.isnan(min_paired_p(0))


def test_holm_adjusts_within_the_table() -> None:
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1: 0.03, 0.06, 0.04 -> made non-decreasing
    adjusted = holm([0.01, 0.04, 0.03, math.nan])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adjusted[3])
    assert holm([0.001, 0.2]) == pytest.approx([0.002, 0.2])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []


def test_welchs_interval_of_the_difference() -> None:
    # equal sizes and variances (1 each): se = sqrt(2/3), df = 4, t(4) = 2.776 (the table)
    low, high = welch_interval([1, 2, 3], [4, 5, 6])
    half = 2.776 * math.sqrt(2 / 3)
    assert (low, high) == pytest.approx((3 - half, 3 + half), abs=1e-3)
    assert welch_interval([0.2, 0.2], [0.5, 0.5]) == pytest.approx((0.3, 0.3))
    assert all(math.isnan(v) for v in welch_interval([0.2], [0.5, 0.7]))


def test_the_paired_test_is_chosen_only_where_it_can_reach_the_level() -> None:
    seeds = {s: 0.1 * s for s in range(10)}
    assert choose_test(seeds, seeds, pairs=False, level=0.05)[0] == "independent"
    three = {s: 1.0 for s in range(3)}
    test, why = choose_test(three, three, pairs=True, level=0.05)
    assert test == "independent" and "0.25" in why  # 3 pairs: 0.25; 3 + 3 split: 0.1
    assert choose_test(dict(list(seeds.items())[:6]), dict(list(seeds.items())[:6]),
                       pairs=True, level=0.05)[0] == "paired"  # 2 / 64 = 0.031
    assert choose_test(seeds, seeds, pairs=True, level=0.05 / 8)[0] == "paired"  # 0.002
    five = {s: 1.0 for s in range(5)}  # 0.0625 > 0.05, two groups of 5 reach 2 / 252
    assert choose_test(five, five, pairs=True, level=0.05)[0] == "independent"
    assert choose_test(three, {10: 1.0, 11: 1.0}, pairs=True, level=0.05)[1] == \
        "no seed in common"


def brute_sign_flip_p(diffs: list[float]) -> float:
    """Every one of the 2**n sign patterns, counted by hand."""
    d = np.asarray(diffs, dtype=float)
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    observed = abs(d.mean())
    return float(np.mean(np.abs((signs * d).mean(axis=1)) >= observed * (1 - 1e-12)))


def test_the_sign_flip_test_is_exact_up_to_its_limit_and_reproducible_beyond() -> None:
    rng = np.random.default_rng(3)
    # 14 pairs: 16,384 patterns, below the exact limit: every one counted (a sampled test,
    # or one over 3**14 draws, would not give the exact share)
    diffs = list(rng.normal(0.3, 1.0, 14))
    assert sign_flip_p(diffs) == pytest.approx(brute_sign_flip_p(diffs), abs=1e-12)
    # 16 pairs: sampled, reproducibly (a fixed generator), and close to the exact share
    diffs = list(rng.normal(0.3, 1.0, 16))
    assert sign_flip_p(diffs) == sign_flip_p(diffs)
    assert sign_flip_p(diffs) == pytest.approx(brute_sign_flip_p(diffs), abs=0.02)
    assert sign_flip_p(diffs) != sign_flip_p(diffs, seed=1)


def test_mean_ci_counts_only_finite_values() -> None:
    # a NaN (an unfinished record) neither counts in n nor moves the interval
    assert mean_ci([1.0, 2.0, 3.0, math.nan]) == pytest.approx(mean_ci([1.0, 2.0, 3.0]))


def test_compare_paired_uses_the_shared_seeds_only() -> None:
    best = {1: 0.10, 2: 0.20, 3: 0.15, 7: 0.90}
    other = {1: 0.30, 2: 0.25, 3: 0.45, 9: 0.00}
    out = compare(best, other, "paired")
    d = [0.20, 0.05, 0.30]  # seeds 1, 2, 3; seeds 7 and 9 have no pair
    mean, std = float(np.mean(d)), float(np.std(d, ddof=1))
    half = 4.302652729911275 * std / math.sqrt(3)  # t(0.975, 2)
    assert out["n"] == 3 and out["diff"] == pytest.approx(mean)
    assert out["ci_low"] == pytest.approx(mean - half)
    assert out["ci_high"] == pytest.approx(mean + half)
    assert out["p"] == pytest.approx(2 / 8) and out["min_p"] == 0.25
    out = compare(best, other, "independent")
    assert out["n"] == 4
    assert out["diff"] == pytest.approx(np.mean(list(other.values()))
                                        - np.mean(list(best.values())))
    assert out["min_p"] == pytest.approx(2 / 70)


def test_choose_test_at_its_boundaries() -> None:
    one = {1: 0.1}
    assert choose_test(one, {1: 0.2}, pairs=False, level=0.05) == \
        ("independent", "different models: their seeds do not pair")
    # 3 pairs reach exactly 0.25: at a level of 0.25 the paired test is the one
    three = {s: 1.0 for s in range(3)}
    assert choose_test(three, three, pairs=True, level=0.25)[0] == "paired"
    # 1 pair and two groups of 1 both bottom out at p = 1: neither reaches, the paired stays
    test, why = choose_test(one, {1: 0.2}, pairs=True, level=0.05)
    assert test == "paired" and why.startswith("1 shared seeds: neither test reaches 0.05")


def test_verdict_at_the_level_exactly() -> None:
    # the smallest p times the comparisons exactly at the level cannot reject
    assert verdict(0.01, 0.025, comparisons=2) == "too few seeds to test"
    assert verdict(0.01, 0.0249, comparisons=2) == "best is better"
    assert verdict(0.05, 0.001) == "no detectable difference"  # p must be below 0.05
    assert verdict(0.0499, 0.001) == "best is better"
    assert verdict(0.01, math.nan) == "too few seeds to test"


def test_seed_scores_keys_seedless_runs_by_their_run_id() -> None:
    runs = pd.DataFrame([
        {"role": "final", "configuration": "c", "state": "complete", "seed": 1001.0,
         "run_id": "r1", "test/mse": 0.01},
        {"role": "final", "configuration": "c", "state": "diverged", "seed": 1002.0,
         "run_id": "r2", "test/mse": 0.17},
        {"role": "final", "configuration": "c", "state": "complete", "seed": math.nan,
         "run_id": "r3", "test/mse": 0.02},
        {"role": "final", "configuration": "c", "state": "complete", "seed": math.nan,
         "run_id": "r4", "test/mse": 0.03},
        {"role": "final", "configuration": "c", "state": "failed", "seed": 1005.0,
         "run_id": "r5", "test/mse": 0.5},
        {"role": "trial", "configuration": "c", "state": "complete", "seed": 7.0,
         "run_id": "r6", "test/mse": 0.9},
        {"role": "final", "configuration": "d", "state": "complete", "seed": 1001.0,
         "run_id": "r7", "test/mse": 0.9},
    ])
    assert seed_scores(runs, "c", "mse") == {1001: 0.01, 1002: 0.17, "r3": 0.02, "r4": 0.03}


def test_one_value_a_side_is_still_a_test() -> None:
    # one value against three: 4 splits, the observed one (10 alone) the only one as extreme
    assert permutation_p([1.0, 2.0, 3.0], [10.0]) == pytest.approx(0.25)
    assert permutation_p([10.0], [1.0, 2.0, 3.0]) == pytest.approx(0.25)
    assert min_attainable_p(1, 4) == pytest.approx(0.4)  # 2 / C(5, 1)
    assert min_attainable_p(4, 1) == pytest.approx(0.4)
    assert math.isnan(min_attainable_p(0, 4)) and math.isnan(min_attainable_p(4, 0))


def test_the_sampled_permutation_test_is_reproducible() -> None:
    rng = np.random.default_rng(5)
    a, b = list(rng.normal(0, 1, 10)), list(rng.normal(0.5, 1, 10))  # 184,756 splits: sampled
    assert permutation_p(a, b) == permutation_p(a, b)
    assert permutation_p(a, b) != permutation_p(a, b, seed=1)


def test_the_permutation_test_is_exact_up_to_its_limit_and_ties_count() -> None:
    rng = np.random.default_rng(7)
    # 8 + 8 values: 12,870 splits, more than the sampled test's 10,000 draws, below the exact
    # limit: every split counted
    a, b = list(rng.normal(0, 1, 8)), list(rng.normal(0.8, 1, 8))
    assert permutation_p(a, b) == pytest.approx(exact_permutation_p(a, b), abs=1e-12)
    # no difference at all: every split is as extreme as the observed one
    assert permutation_p([1.0, 1.0, 1.0], [1.0]) == 1.0
