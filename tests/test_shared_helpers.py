"""Helpers shared between test modules, and with the benchmarks, live in ``testkit/``: no test
module imports another, nothing outside ``tests/`` imports from it, and ``testkit`` is used by
its public names only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USERS = sorted(p for folder in ("tests", "benchmarks", "testkit", "examples", "scripts")
               for p in (ROOT / folder).rglob("*.py"))


def _problems(path: Path) -> list[str]:
    """Imports in ``path`` (at any depth) of a test module, relative ones included, or of a
    private name of ``testkit``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules = [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [("." * node.level + (node.module or ""),
                        [alias.name for alias in node.names])]
        else:
            continue
        for module, names in modules:
            if module == "tests" or module.startswith(("tests.", ".")):
                found.append((node.lineno, f"from {module} (share it through testkit/)"))
            elif module.split(".")[0] == "testkit":
                found += [(node.lineno, f"{module}.{name} is private") for name in names
                          if name.startswith("_")]
    return [f"line {line}: {what}" for line, what in sorted(found)]


@pytest.mark.parametrize("path", USERS, ids=[p.relative_to(ROOT).as_posix() for p in USERS])
def test_helpers_come_from_testkit(path: Path) -> None:
    assert _problems(path) == [], path.relative_to(ROOT)


def test_the_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    path = tmp_path / "test_x.py"
    path.write_text("def test_it():\n    from tests.cli.test_cli import helper\n"
                    "from .test_y import z\nfrom testkit.servers import _hidden, public\n"
                    "import tests.run.test_suite\nfrom testkit import har\n")
    assert _problems(path) == [
        "line 2: from tests.cli.test_cli (share it through testkit/)",
        "line 3: from .test_y (share it through testkit/)",
        "line 4: testkit.servers._hidden is private",
        "line 5: from tests.run.test_suite (share it through testkit/)"]


def test_a_wait_fails_with_the_last_error_or_at_once_on_another() -> None:
    """``wait_until``: an error named as "not yet" is kept and said at the deadline; any
    other error ends the wait at once with its own message; the value that holds is
    returned."""
    from testkit.waiting import wait_until

    calls: list[int] = []

    def refused() -> bool:
        calls.append(1)
        raise ConnectionRefusedError(f"refused, try {len(calls)}")

    with pytest.raises(AssertionError, match=r"the server answering: not so within 0 s; "
                                             r"last error: ConnectionRefusedError: refused, "
                                             r"try \d+") as raised:
        wait_until(refused, what="the server answering", timeout=0.05, every=0.01,
                   passing=(OSError,))
    assert isinstance(raised.value.__cause__, ConnectionRefusedError) and len(calls) >= 2

    def damaged() -> bool:
        calls.append(1)
        raise ValueError("journal line 3 is not JSON")

    calls.clear()
    with pytest.raises(ValueError, match="journal line 3"):
        wait_until(damaged, what="a trial", timeout=600, passing=(OSError,))
    assert len(calls) == 1  # at once, not at the deadline
    answers = iter([0, [], ["ready"]])
    assert wait_until(lambda: next(answers), what="ready", every=0) == ["ready"]
