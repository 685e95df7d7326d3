"""The published tables against the runs they come from.

A results page measured under the current protocol links its runs' ``leaderboard.csv``
(committed under ``docs/results/data/``, as ``gradbench report`` wrote it). Every "mean ± std"
in the page's tables must be some configuration's mean and std in that file, to the digits
shown; the README's default table must be the default run's means and solved counts. A page
edited by hand away from its run, or a run replaced without its page, fails here.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
# the pages measured under the current protocol; each links its run's leaderboard
BOUND = ["default.md", "copy-long.md", "horizon.md", "remedies.md", "har.md", "clipping-sgd.md"]
NAMES = {"tanh RNN": "rnn", "IRNN": "irnn", "LSTM": "lstm", "GRU": "gru", "`orth-rnn`": "orth-rnn"}
NUMBER = r"\d+(?:\.\d+)?(?:e-?\d+)?"


def rows_of(csv_path: Path) -> list[dict[str, str]]:
    with csv_path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def shown_as(value: float, text: str) -> bool:
    """``value`` written to the digits of ``text`` is ``text``."""
    if "e" in text:
        mantissa = text.split("e")[0]
        digits = len(mantissa.split(".")[1]) if "." in mantissa else 0
        return f"{value:.{digits}e}".replace("e-0", "e-") == text.replace("e-0", "e-")
    digits = len(text.split(".")[1]) if "." in text else 0
    return round(value, digits) == float(text)


def leaderboards_of(page: Path) -> list[Path]:
    """The runs' leaderboards a page links (a page may show more than one run)."""
    links = re.findall(r"\]\(((?:[\w./-]*/)?data/[\w.-]+\.csv)\)", page.read_text("utf-8"))
    assert links, f"{page.name} links no leaderboard.csv under docs/results/data/"
    return [(page.parent / link).resolve() for link in links]


@pytest.mark.parametrize("name", BOUND)
def test_every_mean_and_std_of_a_page_is_its_runs(name: str) -> None:
    page = RESULTS / name
    rows = [row for csv_path in leaderboards_of(page) for row in rows_of(csv_path)
            if row["mean"] and row["std"]]  # a configuration never run has no figures
    pairs = [(m, s) for line in page.read_text("utf-8").splitlines() if line.startswith("|")
             for m, s in re.findall(rf"({NUMBER}) ± ({NUMBER})", line)]
    assert pairs, f"{name}: no 'mean ± std' in its tables"
    for mean, std in pairs:
        assert any(shown_as(float(r["mean"]), mean) and shown_as(float(r["std"]), std)
                   for r in rows), f"{name}: {mean} ± {std} is no configuration's in its run"


def test_the_readme_default_table_is_the_default_run() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    rows = rows_of(RESULTS / "data" / "default.csv")
    assert "](docs/results/data/default.csv)" in readme
    table = readme[readme.index("**[`default`]"):readme.index("**[`copy-long`]")]
    checked = 0
    for line in table.splitlines():
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")]
        if len(cells) != 4 or cells[0] not in NAMES:
            continue
        model = NAMES[cells[0]]
        adding = next(r for r in rows if r["task"] == "adding" and r["model"] == model)
        har = next(r for r in rows if r["task"] == "har" and r["model"] == model)
        mean, solved = re.match(rf"({NUMBER})(?: \(the baseline\))?, (\d+)/(\d+)",
                                cells[1]).group(1, 2)
        assert shown_as(float(adding["mean"]), mean), (cells[0], mean, adding["mean"])
        assert round(float(adding["solved_rate"]) * int(adding["seeds"])) == int(solved)
        assert shown_as(float(har["mean"]), cells[3].strip("*")), (cells[0], cells[3])
        checked += 1
    assert checked == 4


@pytest.mark.parametrize("name", BOUND)
def test_the_readme_quotes_the_pages_runs(name: str) -> None:
    """The README's paragraph on a bound suite: every "mean ± std" in it is a configuration's
    of that suite's run."""
    readme = (ROOT / "README.md").read_text("utf-8")
    start = readme.find(f"**[`{name.removesuffix('.md')}`](docs/results/{name})**")
    if start < 0:
        pytest.skip(f"the README has no paragraph on {name}")
    section = readme[start:].split("\n\n**[", 1)[0].split("\n## ", 1)[0]
    rows = [row for csv_path in leaderboards_of(RESULTS / name) for row in rows_of(csv_path)
            if row["mean"] and row["std"]]
    for mean, std in re.findall(rf"({NUMBER}) ± ({NUMBER})", section):
        assert any(shown_as(float(r["mean"]), mean) and shown_as(float(r["std"]), std)
                   for r in rows), f"README on {name}: {mean} ± {std} is no configuration's"


def test_the_check_catches_a_changed_digit() -> None:
    assert shown_as(0.0007938963797641918, "0.0008")
    assert not shown_as(0.0007938963797641918, "0.0007")
    assert shown_as(0.12554000094532966, "0.126")
    assert not shown_as(0.12554000094532966, "0.125")
    assert shown_as(4.5655e-4, "4.57e-4") and shown_as(4.5655e-4, "4.57e-04")
    assert not shown_as(4.5655e-4, "4.56e-4")
