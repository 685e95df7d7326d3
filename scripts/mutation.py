"""Mutation testing of the numeric core, one module at a time, and its score.

    python scripts/mutation.py bench/scores.py [MODULE ...]   run mutmut on these modules
    python scripts/mutation.py --score [MODULE ...]           only print the scores recorded

mutmut (a dev dependency; its settings are ``[tool.mutmut]`` in pyproject.toml) copies the
package to ``mutants/``, runs the fast tier's numeric tests once to learn which tests call
which function, then makes one change at a time (a mutant) and runs the tests that call the
changed function. A mutant is killed when one of them fails (or runs past mutmut's timeout).
The score of a module is killed / (mutants - equivalent): the equivalent mutants, changes
that cannot alter any result, are listed with their reasons in docs/mutation.md, which this
script reads. ``make mutate MODULE=bench/scores.py`` runs it; ``make mutate`` runs every core
module. Exit status 1 when a module scores below the goal (90%).
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "mutation.md"
GOAL = 0.90
# the modules where a wrong number would be published unnoticed (pyproject's only_mutate)
CORE = [
    "bench/scores.py", "bench/board.py", "bench/errors.py", "bench/report/statistics.py",
    "bench/remedies", "bench/diagnostics/factors.py", "bench/diagnostics/profiles.py",
    "bench/diagnostics/probing.py", "bench/diagnostics/paths.py",
    "bench/diagnostics/unrolled.py",
]
KILLED = {"killed", "timeout"}


def dotted(module: str) -> str:
    """``bench/report/statistics.py`` -> ``bench.report.statistics``."""
    return module.removesuffix(".py").strip("/").replace("/", ".")


def equivalent() -> set[str]:
    """The mutants docs/mutation.md lists as equivalent: the first cell of each row of the
    table under its heading "Equivalent mutants" (not the survivors listed after it)."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Equivalent mutants\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\|\s*`([\w.ǁ]+__mutmut_\d+)`", section, flags=re.M))


def results() -> dict[str, str]:
    """Every mutant mutmut knows of, with its status."""
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    status = {}
    for line in out.splitlines():
        name, sep, state = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            status[name] = state
    return status


def module_of(name: str) -> str:
    """``bench.scores.x_cap__mutmut_3`` -> ``bench.scores``."""
    return re.split(r"\.x[_ǁ]", name, maxsplit=1)[0]


def score(modules: list[str]) -> bool:
    """Print each module's score; False when one is below the goal or was not run."""
    status, equiv, ok = results(), equivalent(), True
    print(f"{'module':34} {'mutants':>7} {'killed':>6} {'equiv':>5} {'survived':>8} "
          f"{'no test':>7} {'other':>5} {'score':>6}")
    for module in modules:
        prefix = dotted(module)
        mine = {n: s for n, s in status.items()
                if module_of(n) == prefix or module_of(n).startswith(prefix + ".")}
        counts = Counter("killed" if s in KILLED else
                         "equivalent" if n in equiv else s for n, s in mine.items())
        if not mine:
            print(f"{prefix:34} not run: make mutate MODULE={module}")
            ok = False
            continue
        # the score is over the mutants tested; those not yet tested are said apart
        counted = len(mine) - counts["equivalent"] - counts["not checked"]
        value = counts["killed"] / counted if counted else math.nan
        other = counted - counts["killed"] - counts["survived"] - counts["no tests"]
        unfinished = (f"  ({counts['not checked']} of {len(mine)} not tested yet)"
                      if counts["not checked"] else "")
        print(f"{prefix:34} {len(mine):7d} {counts['killed']:6d} {counts['equivalent']:5d} "
              f"{counts['survived']:8d} {counts['no tests']:7d} {other:5d} {value:6.1%}"
              f"{unfinished}")
        ok = ok and not unfinished and value >= GOAL
        for name, state in sorted(mine.items()):
            if state not in KILLED and state != "not checked" and name not in equiv:
                print(f"    {state:10} {name}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="files or folders of bench/ "
                        "(default: the numeric core)")
    parser.add_argument("--score", action="store_true", help="only print the recorded scores")
    parser.add_argument("--max-children", type=int, default=1,
                        help="mutants tested at once (default 1)")
    args = parser.parse_args()
    modules = args.modules or CORE
    if not args.score:
        globs = [dotted(m) + "*" for m in modules]
        subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children",
                        str(args.max_children), *globs], cwd=ROOT, check=True)
    return 0 if score(modules) else 1


if __name__ == "__main__":
    sys.exit(main())
