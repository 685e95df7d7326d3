"""Numbers and words for the page's tables and captions: a value or NaN as text, counts,
shares, durations, T."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd


def num(value: Any, digits: int = 4) -> str:
    """A number for a table: NaN -> '-', small/large in scientific notation."""
    if value is None or pd.isna(value):
        return "-"
    v = float(value)
    if v == 0:
        return "0"
    if abs(v) < 1e-3 or abs(v) >= 1e5:
        return f"{v:.2e}"
    return f"{v:.{digits}g}"


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
