"""The documentation holds together: its links resolve and its commands parse.

Pages: ``README.md``, ``CHANGELOG.md`` and every ``docs/**/*.md``.

Links: every ``[text](target)`` and ``![alt](target)`` outside fenced code blocks (and not
inside an inline code span) whose target has no scheme (``https:``, ``mailto:`` are left
alone). The target's path, relative to the page, must exist; a ``#anchor`` must be the
GitHub-style slug of a heading of the target page (of the page itself for a bare ``#anchor``):
the heading's text with links reduced to their text, backticks and asterisks dropped,
lower-cased, every character but letters, digits, ``_``, ``-`` and spaces removed, spaces
turned into ``-``; a repeated slug gets ``-1``, ``-2``, ... as GitHub numbers them.

Reachability: every page under ``docs/`` can be reached from the README by following
relative links.

Commands: in the fenced code blocks of shell (no language, ``sh``, ``bash``, ``shell``,
``console``), a line whose first word (after a ``$ `` prompt and any ``NAME=value``
assignments) is ``gradbench`` (or a path ending in ``/gradbench``, or ``python -m bench``),
joined with its ``\\``-continued lines and split as the shell would (``shlex``, comments
dropped), is parsed by the real parser (``bench.cli.main.build_parser``) without running
anything: an error there (argparse's ``SystemExit``) is a failure. Normalised first: shell
substitutions ``$(...)``, ``${NAME}`` and ``$NAME`` become ``1``, a value every option
accepts; ``--help``, ``-h`` and ``--version`` are dropped, since they would print and exit,
and a line left without a command is not checked. Placeholders written as plain words
(``SUITE``, ``/path/to/uci-har``) parse as they are.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

from bench.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md")])
SHELL_BLOCKS = ("", "sh", "bash", "shell", "console")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*<?([^()\s<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
SUBSTITUTION = re.compile(r"\$\([^)]*\)|\$\{\w+\}|\$\w+")
EXITING_FLAGS = ("--help", "-h", "--version")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language and its lines with their line numbers."""

    language: str
    lines: tuple[tuple[int, str], ...]


def split_page(text: str) -> tuple[str, list[Block]]:
    """The page's prose (fenced lines blanked, so line numbers hold) and its fenced blocks."""
    prose: list[str] = []
    blocks: list[Block] = []
    fence: tuple[str, str] | None = None  # (marker, language) while inside a block
    body: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        found = FENCE.match(line)
        if fence is None and found:
            fence, body = (found.group(1), found.group(2).lower()), []
        elif fence is not None and found and found.group(1).startswith(fence[0]) \
                and not found.group(2):
            blocks.append(Block(fence[1], tuple(body)))
            fence = None
        elif fence is not None:
            body.append((number, line))
        else:
            prose.append(line)
            continue
        prose.append("")
    return "\n".join(prose), blocks


def _without_link_code(prose: str) -> str:
    """Inline code spans that look like links blanked (same length): they are not links."""
    return CODE_SPAN.sub(lambda m: " " * len(m.group(0)) if "](" in m.group(2) else m.group(0),
                         prose)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (before numbering repeats)."""
    text = LINK.sub(lambda m: m.group(1), heading)
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page, repeats numbered as GitHub numbers them."""
    prose, _ = split_page(page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out: set[str] = set()
    for line in prose.splitlines():
        found = HEADING.match(line)
        if not found:
            continue
        base = slug(found.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


@dataclass(frozen=True)
class Link:
    page: Path
    line: int
    target: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}: ({self.target})"


def links(page: Path) -> Iterator[Link]:
    """The relative links of a page (outside code), with their line numbers."""
    prose, _ = split_page(page.read_text(encoding="utf-8"))
    prose = _without_link_code(prose)
    for found in LINK.finditer(prose):
        target = found.group(2)
        if not SCHEME.match(target):
            yield Link(page, prose.count("\n", 0, found.start(2)) + 1, target)


def broken(link: Link) -> str | None:
    """Why a relative link does not resolve, or None."""
    path_part, _, anchor = link.target.partition("#")
    target = (link.page.parent / unquote(path_part)).resolve() if path_part else link.page
    if not target.exists():
        return f"{target.relative_to(ROOT) if target.is_relative_to(ROOT) else target} " \
               "does not exist"
    if anchor and target.suffix == ".md" and unquote(anchor) not in anchors(target):
        return f"no heading of {target.relative_to(ROOT)} has the anchor #{anchor}"
    return None


@dataclass(frozen=True)
class Command:
    page: Path
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}: {self.text}"


def _joined(lines: tuple[tuple[int, str], ...]) -> Iterator[tuple[int, str]]:
    """Shell lines with their ``\\``-continuations joined, each with its first line number."""
    start = 0
    parts: list[str] = []
    for number, line in lines:
        if not parts:
            start = number
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        parts.append(line)
        yield start, " ".join(parts)
        parts = []
    if parts:
        yield start, " ".join(parts)


def commands(page: Path) -> Iterator[Command]:
    """The ``gradbench`` command lines of a page's shell code blocks."""
    _, blocks = split_page(page.read_text(encoding="utf-8"))
    for block in blocks:
        if block.language not in SHELL_BLOCKS:
            continue
        for number, line in _joined(block.lines):
            if gradbench_argv(line) is not None:
                yield Command(page, number, " ".join(line.split()))


def gradbench_argv(line: str) -> list[str] | None:
    """The arguments after ``gradbench`` in a shell line, normalised; None: not a command."""
    text = SUBSTITUTION.sub("1", line.strip().removeprefix("$ "))
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        return None
    while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
        words.pop(0)
    if words and (words[0] == "gradbench" or words[0].endswith("/gradbench")):
        return words[1:]
    if len(words) >= 3 and Path(words[0]).name.startswith("python") and words[1:3] == \
            ["-m", "bench"]:
        return words[3:]
    return None


def parse_error(argv: list[str]) -> str | None:
    """What the real parser says against these arguments, or None when they parse."""
    argv = [word for word in argv if word not in EXITING_FLAGS]
    if not argv:
        return None
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as stop:
        lines = said.getvalue().strip().splitlines()
        return lines[-1] if lines else f"exit status {stop.code}"
    return None


ALL_LINKS = [link for page in PAGES for link in links(page)]
ALL_COMMANDS = [command for page in PAGES for command in commands(page)]


def test_the_pages_have_links_and_commands_to_check() -> None:
    """The collectors find what the pages hold (so the checks below cannot pass empty)."""
    assert (ROOT / "README.md") in PAGES and len(PAGES) > 5
    assert len(ALL_LINKS) > 50 and len(ALL_COMMANDS) > 10


@pytest.mark.parametrize("link", ALL_LINKS, ids=str)
def test_every_relative_link_resolves(link: Link) -> None:
    assert broken(link) is None, f"{link}: {broken(link)}"


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=str)
def test_every_gradbench_command_parses(command: Command) -> None:
    argv = gradbench_argv(command.text)
    assert argv is not None
    assert parse_error(argv) is None, f"{command}: {parse_error(argv)}"


def test_every_docs_page_is_reachable_from_the_readme() -> None:
    """Following relative links from the README reaches every page under docs/."""
    seen: set[Path] = set()
    todo = [ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        for link in links(page):
            path_part = link.target.partition("#")[0]
            target = (page.parent / unquote(path_part)).resolve() if path_part else page
            if target.suffix == ".md" and target.is_file():
                todo.append(target)
    unreached = [str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md") if p not in seen]
    assert not unreached, f"not reachable from README.md: {unreached}"


def test_the_checks_catch_what_they_should() -> None:
    """The slug follows GitHub, a broken link and a bad command are caught."""
    assert slug("Clipping with SGD: `clipping-sgd`") == "clipping-with-sgd-clipping-sgd"
    assert slug("The IRNN's learning rates") == "the-irnns-learning-rates"
    assert slug("[Remedies](docs/remedies.md) and *more*") == "remedies-and-more"
    readme = ROOT / "README.md"
    assert broken(Link(readme, 1, "docs/no-such-page.md")) is not None
    assert broken(Link(readme, 1, "#no-such-heading")) is not None
    assert broken(Link(readme, 1, "#quick-start")) is None
    assert gradbench_argv("PGPASSWORD=x gradbench run --workers $(nproc)  # note") == \
        ["run", "--workers", "1"]
    assert gradbench_argv(".venv/bin/gradbench ui") == ["ui"]
    assert gradbench_argv("make run") is None
    assert parse_error(["run", "--workers", "two"]) is not None
    assert parse_error(["no-such-command"]) is not None
    assert parse_error(["run", "--help"]) is None
    prose, blocks = split_page("a\n```sh\ngradbench x \\\n  --y\n```\n[t](u)\n")
    assert prose.splitlines()[5] == "[t](u)"
    assert list(_joined(blocks[0].lines)) == [(3, "gradbench x    --y")]
