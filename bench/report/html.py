"""The report page: blocks (figures, tables, notes) -> one self-contained HTML file.

Figures arrive as ``data:`` URIs, the style sheet is inline, and a Content-Security-Policy
forbids every request that is not a ``data:`` image, so the page opens offline and never
touches the network. All text is escaped here, once (``html.escape``).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.report.analysis import model_order
from bench.report.plots import model_hex


@dataclass(frozen=True)
class Figure:
    """An embedded image with a caption that says what it shows and how to read it.

    ``name`` and ``data``: the frame the figure was drawn from, written beside the page as
    ``figures/<name>.csv`` (``figure_data``); ``source``: where it came from (runs,
    configurations, config hash) and how to redraw it, shown under the caption.
    """

    title: str
    uri: str
    caption: str
    alt: str = ""
    name: str = ""
    data: Any = field(default=None, compare=False, hash=False)
    source: str = ""
    links: Sequence[tuple[str, str]] = ()  # (label, URL) of the runs drawn, e.g. in MLflow


@dataclass(frozen=True)
class Table:
    """A table of already formatted cells; ``row_classes`` mark rows (e.g. status)."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[str]]
    caption: str = ""
    row_classes: Sequence[str] = ()
    model_column: int | None = None  # cells of this column get the model's colour dot
    wrap: bool = False  # text cells wrap (tables of sentences)
    links: Sequence[str] = ()  # per row, a URL for the cell of `link_column` ("" for none)
    link_column: int | None = None
    keys: int = 1  # leading columns that name the row: they stay in view on a narrow screen


@dataclass(frozen=True)
class Note:
    """A paragraph; ``kind``: info or warn."""

    text: str
    kind: str = "info"


@dataclass(frozen=True)
class Row:
    """Blocks side by side (wrapping on narrow screens)."""

    blocks: Sequence[Figure | Table | Note]


@dataclass(frozen=True)
class Heading:
    text: str
    anchor: str = ""


Block = Figure | Table | Note | Row | Heading


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Page:
    title: str
    subtitle: str
    sections: list[Section]
    provenance: Mapping[str, str]
    config_text: str = ""


CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "base-uri 'none'; form-action 'none'")

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
  margin: 0; color: #1f2328; background: #fafafa; line-height: 1.45; }}
main {{ max-width: 1180px; margin: 0 auto; padding: 1.2rem 1.6rem 3rem; background: #fff; }}
h1 {{ font-size: 1.6rem; margin: 0.4rem 0 0.2rem; }}
h2 {{ font-size: 1.3rem; border-bottom: 2px solid #d0d7de; padding-bottom: 0.2rem;
  margin-top: 2.4rem; }}
h3 {{ font-size: 1.08rem; margin: 1.8rem 0 0.4rem; }}
h4 {{ font-size: 0.98rem; margin: 1rem 0 0.3rem; }}
.subtitle {{ color: #57606a; margin: 0 0 1rem; }}
nav {{ font-size: 0.9rem; background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px;
  padding: 0.5rem 0.9rem; }}
nav a {{ margin-right: 1rem; }}
figure {{ margin: 0.6rem 0 1.2rem; }}
figure img {{ max-width: 100%; height: auto; display: block; }}
figure > a.full {{ display: block; }}
figcaption, .caption {{ font-size: 0.86rem; color: #424a53; max-width: 70rem; }}
.source {{ font-size: 0.76rem; color: #57606a; max-width: 70rem; overflow-wrap: anywhere;
  margin: 0.2rem 0 0; }}
.row {{ display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }}
.row > * {{ flex: 1 1 20rem; min-width: 0; }}
table {{ border-collapse: collapse; font-size: 0.8rem; margin: 0.4rem 0 0.3rem; width: 100%; }}
th, td {{ padding: 0.2rem 0.4rem; border-bottom: 1px solid #e4e7eb; text-align: right;
  vertical-align: top; }}
th {{ background: #f6f8fa; position: sticky; top: 0; }}
td.num span {{ white-space: nowrap; }}
td.text, th.text {{ text-align: left; }}
.scroll {{ overflow-x: auto; max-width: 100%; }}
table.wrap td.text {{ overflow-wrap: anywhere; min-width: 6rem; }}
@media (max-width: 760px) {{
  main {{ padding: 0.8rem 0.7rem 2rem; }}
  td.key, th.key {{ position: sticky; left: var(--left); width: var(--w); min-width: var(--w);
    max-width: var(--w); box-sizing: border-box; overflow-wrap: anywhere; z-index: 1;
    background: #fff; }}
  th.key {{ background: #f6f8fa; z-index: 2; }}
  td.key-last, th.key-last {{ box-shadow: inset -1px 0 #8c959f; }}
}}
tr.status-running td {{ background: #fff8c5; }}
tr.status-incomplete td, tr.status-not-started td {{ background: #f6f8fa; color: #57606a; }}
tr.status-diverged td, tr.status-all-trials-diverged td {{ background: #ffebe9; }}
tr.best td {{ font-weight: 600; }}
tr.group-start td {{ border-top: 2px solid #8c959f; }}
.note {{ font-size: 0.9rem; padding: 0.4rem 0.7rem; border-left: 4px solid #0969da;
  background: #ddf4ff; margin: 0.5rem 0; }}
.note.warn {{ border-color: #bf8700; background: #fff8c5; }}
.dot {{ display: inline-block; width: 0.7em; height: 0.7em; border-radius: 50%;
  margin-right: 0.3em; vertical-align: baseline; }}
{model_css}
footer {{ margin-top: 3rem; font-size: 0.8rem; color: #57606a; border-top: 1px solid #d0d7de; }}
footer dl {{ display: grid; grid-template-columns: max-content 1fr; gap: 0.1rem 1rem; }}
footer dt {{ font-weight: 600; }}
footer dd {{ margin: 0; overflow-wrap: anywhere; }}
pre {{ background: #f6f8fa; padding: 0.6rem; overflow-x: auto; font-size: 0.78rem; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
<p class="subtitle">{subtitle}</p>
<nav>{nav}</nav>
{sections}
<footer>
<h2 id="provenance">Provenance</h2>
<dl>{provenance}</dl>
{config}
</footer>
</main>
</body>
</html>
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _model_css(sections: Sequence[Section]) -> str:
    """A colour dot per model named in the page's model columns (the figures' colours)."""
    models = model_order(str(row[t.model_column]) for t in _tables(sections)
                         if t.model_column is not None
                         for row in t.rows if t.model_column < len(row))
    return "\n".join(f".dot.m-{_css_class(m)} {{ background: {model_hex(m)}; }}"
                     for m in models)


def _blocks(sections: Sequence[Section]) -> list[Block]:
    """Every block of the page, rows flattened."""
    blocks: list[Block] = [b for s in sections for b in s.blocks]
    while any(isinstance(b, Row) for b in blocks):
        blocks = [x for b in blocks for x in (b.blocks if isinstance(b, Row) else [b])]
    return blocks


def _tables(sections: Sequence[Section]) -> list[Table]:
    return [b for b in _blocks(sections) if isinstance(b, Table)]


def _css_class(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower())


def _link(url: str, text: str) -> str:
    return f'<a href="{_e(url)}">{text}</a>' if url else text


def render_figure(block: Figure) -> str:
    alt = block.alt or block.title
    source = ""
    if block.name and block.data is not None:
        path = figure_path(block.name)
        source += f"Data: <code>{_e(path)}</code> (beside this page). "
    if block.source:
        source += _e(block.source)
    if block.links:
        source += " Runs in MLflow: " + ", ".join(_link(url, _e(label))
                                                  for label, url in block.links) + "."
    source = f'<p class="source">{source}</p>' if source else ""
    image = f'<img src="{_e(block.uri)}" alt="{_e(alt)}">'
    if block.name:  # the picture beside the page (``figure_images``), at full size
        full = figure_path(block.name).removesuffix(".csv") + ".png"
        image = f'<a class="full" href="{_e(full)}" title="the full-size image">{image}</a>'
    return (f"<figure><h4>{_e(block.title)}</h4>{image}"
            f"<figcaption>{_e(block.caption)}</figcaption>{source}</figure>")


def figure_path(name: str) -> str:
    """Where a figure's data go, relative to the page: ``figures/<name>.csv``."""
    return f"figures/{_css_class(name)}.csv"


def figure_data(sections: Sequence[Section]) -> dict[str, Any]:
    """Relative CSV path -> frame, for every figure of the page that carries its data."""
    return {figure_path(b.name): b.data for b in _blocks(sections)
            if isinstance(b, Figure) and b.name and b.data is not None}


def figure_images(sections: Sequence[Section]) -> dict[str, bytes]:
    """Relative PNG path (``figures/<name>.png``, beside its CSV) -> the image's bytes, for
    every named figure of the page: the picture as a file, for a paper or a README."""
    prefix = "data:image/png;base64,"
    return {figure_path(b.name).removesuffix(".csv") + ".png":
            base64.b64decode(b.uri.removeprefix(prefix)) for b in _blocks(sections)
            if isinstance(b, Figure) and b.name and b.uri.startswith(prefix)}


# a number as the tables write it: 12, -0.5, 1,200, 4.12e-04, 95%
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?%?")
# words that may stand beside numbers in a numeric cell (units, 'of', 'to', 'running', inf)
_NUMERIC_WORDS = frozenset({"of", "to", "x", "s", "ms", "min", "h", "running", "inf", "T"})
_PLACEHOLDERS = ("-", "")


def _numeric(value: str) -> bool:
    """A cell of numbers: numbers, intervals, ratios and units only (``0.01 ± 0.002``,
    ``[0.1, 0.3]``, ``-0.2 -> -0.1 (-0.3 to 0)``, ``2/0/1 of 3 +1 running``, ``1.5 min``);
    a sentence that starts with a digit is text."""
    if not _NUMBER.search(value):
        return False
    words = re.findall(r"[A-Za-z]+", _NUMBER.sub(" ", value))
    return all(w in _NUMERIC_WORDS for w in words)


def _column_classes(block: Table) -> list[str]:
    """``num`` (right-aligned, numbers kept whole) for a column whose every cell that is not
    a placeholder holds numbers, else ``text`` (left-aligned, wraps): one per column."""
    out = []
    for i in range(len(block.columns)):
        cells = [str(r[i]) for r in block.rows
                 if i < len(r) and str(r[i]).strip() not in _PLACEHOLDERS]
        out.append("num" if cells and all(_numeric(c) for c in cells) else "text")
    return out


def _number_chunks(value: str) -> str:
    """A numeric cell as pieces that never break inside (each number whole): lines may
    break only before ``->``, ``(`` and ``+`` and after a comma."""
    parts = re.split(r" (?=->|\(|\+)|(?<=,) ", value)
    return " ".join(f"<span>{_e(p)}</span>" for p in parts)


def _key_styles(block: Table) -> list[str]:
    """Per key column (``Table.keys``), the width and left offset that keep it in view when
    a narrow screen scrolls the table sideways: its longest word, 3 to 12 characters (a
    longer cell wraps), each offset the widths before it (CSS applies them on narrow screens
    only)."""
    styles, left = [], "0px"
    for i in range(min(block.keys, len(block.columns))):
        words = [w for r in block.rows if i < len(r) for w in str(r[i]).split()]
        longest = max((len(w) for w in [*words, *block.columns[i].split()]), default=1)
        chars = min(max(longest + (3 if block.model_column == i else 1), 3), 12)  # bold
        width = f"calc({chars}ch + 0.8rem)"
        styles.append(f"--w: {width}; --left: {left}")
        left = f"calc({left} + {width})"
    return styles


def _cell_tag(tag: str, column: int, cls: str, keys: Sequence[str]) -> str:
    if column >= len(keys):
        return f'<{tag} class="{cls}">'
    last = " key-last" if column == len(keys) - 1 else ""
    return f'<{tag} class="{cls} key{last}" style="{keys[column]}">'


def _cell(value: str, column: int, table: Table, cls: str, keys: Sequence[str],
          url: str = "") -> str:
    text = _number_chunks(value) if cls == "num" else _e(value)
    if table.link_column == column:
        text = _link(url, text)
    if table.model_column == column:
        text = f'<span class="dot m-{_css_class(value)}"></span>{text}'
    return f"{_cell_tag('td', column, cls, keys)}{text}</td>"


def render_table(block: Table) -> str:
    classes = list(block.row_classes) + [""] * (len(block.rows) - len(block.row_classes))
    links = list(block.links) + [""] * (len(block.rows) - len(block.links))
    columns, keys = _column_classes(block), _key_styles(block)
    head = "".join(f"{_cell_tag('th', i, cls, keys)}{_e(c)}</th>"
                   for i, (c, cls) in enumerate(zip(block.columns, columns, strict=True)))
    body = "".join(
        f'<tr class="{_e(cls)}">' + "".join(_cell(str(v), i, block, columns[i], keys, url)
                                            for i, v in enumerate(row))
        + "</tr>" for row, cls, url in zip(block.rows, classes, links, strict=False))
    title = f"<h4>{_e(block.title)}</h4>" if block.title else ""
    caption = f'<p class="caption">{_e(block.caption)}</p>' if block.caption else ""
    table = '<table class="wrap">' if block.wrap else "<table>"
    return f'<div>{title}<div class="scroll">{table}<thead><tr>{head}</tr></thead>' \
        f"<tbody>{body}</tbody></table></div>{caption}</div>"


def render_block(block: Block) -> str:
    if isinstance(block, Figure):
        return render_figure(block)
    if isinstance(block, Table):
        return render_table(block)
    if isinstance(block, Note):
        return f'<p class="note {_e(block.kind)}">{_e(block.text)}</p>'
    if isinstance(block, Row):
        return '<div class="row">' + "".join(render_block(b) for b in block.blocks) + "</div>"
    anchor = f' id="{_e(block.anchor)}"' if block.anchor else ""
    return f"<h3{anchor}>{_e(block.text)}</h3>"


def render_section(section: Section) -> str:
    inner = "\n".join(render_block(b) for b in section.blocks)
    return f'<section><h2 id="{_e(section.anchor)}">{_e(section.title)}</h2>\n{inner}</section>'


def render(page: Page) -> str:
    """The whole page as one HTML string."""
    nav = "".join(f'<a href="#{_e(s.anchor)}">{_e(s.title)}</a>' for s in page.sections)
    nav += '<a href="#provenance">Provenance</a>'
    provenance = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in page.provenance.items())
    config = ""
    if page.config_text:
        config = (f"<details><summary>resolved suite config (config.yaml)</summary>"
                  f"<pre>{_e(page.config_text)}</pre></details>")
    return TEMPLATE.format(csp=CSP, title=_e(page.title), subtitle=_e(page.subtitle), nav=nav,
                           sections="\n".join(render_section(s) for s in page.sections),
                           provenance=provenance, config=config,
                           model_css=_model_css(page.sections))
