"""The docs say truthfully how much search each packaged suite does: the table in
docs/results/README.md names every packaged suite with its trials and sampler as the configs
give them, and calls a TPE budget a random search where the sampler's start-up leaves TPE
fewer than the ~20 trials it needs."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest

from bench import config, tuning

PAGE = Path(__file__).resolve().parents[2] / "docs" / "results" / "README.md"
TPE_NEEDS = 20  # trials for TPE to act beyond its random start (the page says so)


def _rows() -> dict[str, tuple[int, str, str]]:
    """suite -> (trials, sampler, the search) from the page's table."""
    text = PAGE.read_text().split("## How much search each suite does", 1)[1]
    found = re.findall(r"^\| `([\w-]+)` \| (\d+) \| (\w+) \| (.+) \|$", text, re.MULTILINE)
    return {name: (int(trials), sampler, words) for name, trials, sampler, words in found}


@pytest.mark.parametrize("name", sorted(config.packaged_configs()))
def test_the_page_states_each_suites_search(name: str) -> None:
    spec = config.load(name, {})
    rows = _rows()
    assert name in rows, f"docs/results/README.md: no row for the packaged suite {name}"
    trials, sampler, words = rows[name]
    assert (trials, sampler) == (spec.tuning.trials, spec.tuning.sampler), name
    if sampler == "random":
        assert words.startswith(f"a random search of {trials} draws"), words
    elif sampler == "grid":
        assert words.startswith("no search"), words
    else:
        made = tuning.make_sampler(spec, config.expand(spec)[0])
        assert isinstance(made, optuna.samplers.TPESampler)
        startup = made._n_startup_trials  # Optuna keeps it private; the page quotes it
        if trials <= startup:
            assert words.startswith(f"a random search of {trials} draws (TPE never"), words
        elif trials < TPE_NEEDS:
            assert words == (f"in effect a random search of {trials} draws ({startup} random "
                             f"start-up draws, then {trials - startup} TPE "
                             f"draw{'s' if trials - startup > 1 else ''})"), words
        else:
            assert words == (f"TPE: {startup} random start-up draws, then {trials - startup} "
                             f"TPE draws"), words
