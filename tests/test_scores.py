"""The one scoring rule (bench/scores.py), checked value by value: the cap in each direction,
keys of unknown direction left alone, and the divergence rule at its boundary."""

from __future__ import annotations

import math

import pytest

from bench import scores


def test_direction_of_each_key() -> None:
    assert scores.direction_of("loss", "acc", "maximize") == "minimize"
    assert scores.direction_of("loss", "loss", "maximize") == "minimize"
    assert scores.direction_of("acc", "acc", "maximize") == "maximize"
    assert scores.direction_of("mse", "mse", "minimize") == "minimize"
    assert scores.direction_of("recall", "acc", "maximize") is None


@pytest.mark.parametrize(("value", "trivial", "direction", "expected"), [
    (0.05, 0.19, "maximize", 0.19),     # an accuracy below chance is worth chance
    (0.90, 0.19, "maximize", 0.90),
    (4.00, 1.80, "minimize", 1.80),     # a loss above the trivial one is worth the trivial one
    (0.10, 1.80, "minimize", 0.10),
    (math.nan, 0.19, "maximize", 0.19),
    (math.inf, 1.80, "minimize", 1.80),
    (-math.inf, 0.19, "maximize", 0.19),
])
def test_cap_in_each_direction(value: float, trivial: float, direction: str,
                               expected: float) -> None:
    assert scores.cap(value, trivial, direction) == expected


def test_capped_caps_known_keys_and_leaves_the_others() -> None:
    trivial = {"loss": 1.8, "acc": 0.19}
    got = scores.capped({"loss": 4.0, "acc": 0.05, "recall": 0.01}, trivial, "acc", "maximize")
    assert got == {"loss": 1.8, "acc": 0.19, "recall": 0.01}
    got = scores.capped({"loss": 0.5, "acc": 0.9}, trivial, "acc", "maximize")
    assert got == {"loss": 0.5, "acc": 0.9}
    # a key the trivial predictor lacks is left as it is, even of known direction
    assert scores.capped({"loss": 4.0, "acc": 0.05}, {"loss": 1.8}, "acc", "maximize") == \
        {"loss": 1.8, "acc": 0.05}
    # a lower-is-better task metric is capped from above
    assert scores.capped({"loss": 0.3, "mse": 0.4}, {"loss": 0.17, "mse": 0.17}, "mse",
                         "minimize") == {"loss": 0.17, "mse": 0.17}
    assert all(type(v) is float for v in scores.capped({"acc": 1}, {"acc": 0}, "acc",
                                                       "maximize").values())


def test_the_divergence_rule_at_its_boundary() -> None:
    assert scores.blew_up(math.nan, 0.17, 10.0)
    assert scores.blew_up(math.inf, None, 10.0)
    assert scores.blew_up(1.71, 0.17, 10.0)
    assert not scores.blew_up(1.0, 0.25, 4.0)         # exactly K times the trivial loss: not yet
    assert scores.blew_up(1.0001, 0.25, 4.0)
    assert not scores.blew_up(2.0, 0.17, 20.0)
    assert not scores.blew_up(1e9, None, 10.0)        # unknown trivial loss: only non-finite
    assert not scores.blew_up(1e9, math.nan, 10.0)
    assert scores.blew_up(0.5, 0.0, 10.0)             # any loss above a perfect trivial one
    assert not scores.blew_up(0.0, 0.0, 10.0)
