"""Numbers and words for the page's tables and captions: a value or NaN as text, counts,
shares, durations, T."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd


def number_format(values: Iterable[Any], digits: int = 4) -> Callable[[Any], str]:
    """One format for all the numbers of a table's column: scientific notation for every
    one of them when any is below 1e-3 or at least 10**digits (never ``4.12e-04`` beside
    ``0.001135``), else ``digits`` significant digits; NaN -> '-'."""
    finite = [abs(v) for v in map(_float, values) if math.isfinite(v) and v != 0]
    scientific = any(v < 1e-3 or v >= 10**digits for v in finite)

    def form(value: Any) -> str:
        v = _float(value)
        if math.isnan(v):
            return "-"
        if v == 0:
            return "0"
        return f"{v:.2e}" if scientific or math.isinf(v) else f"{v:.{digits}g}"

    return form


def _float(value: Any) -> float:
    return math.nan if value is None or pd.isna(value) else float(value)


def num(value: Any, digits: int = 4) -> str:
    """A number on its own (a note, a caption): NaN -> '-', small/large in scientific
    notation. A table's column takes one ``number_format`` for all its cells."""
    return number_format([value], digits)(value)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def spread(row: Mapping[str, Any]) -> str:
    """'mean ± std over n seeds' (no ± with one seed)."""
    n = int(row["n_values"])
    text = num(row["mean"]) if n < 2 else f"{num(row['mean'])} ± {num(row['std'])}"
    return f"{text} over {plural(n, 'seed')}"


def pct(value: Any) -> str:
    return "-" if value is None or pd.isna(value) else f"{float(value):.0%}"


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def t_label(seq_len: Any) -> str:
    return "-" if pd.isna(seq_len) else str(int(seq_len))


def where(seq_len: Any) -> str:
    return "" if pd.isna(seq_len) else f" at T = {int(seq_len)}"


def status_class(status: str) -> str:
    return "status-" + "-".join(str(status).split())
