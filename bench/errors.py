"""Errors as one line a user can read: the first line of a message, passwords masked.

Every place that prints or records an error (the command, the workers, the stores' retries)
goes through ``error_line``, so a password in a storage or tracking URL never reaches a
terminal, a log or a run's tags.
"""

from __future__ import annotations

import re

_SECRET_RE = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@")


def mask_secrets(text: str) -> str:
    """Hide the password of every URL in ``text``: ``postgresql://u:secret@h`` -> ``u:***@h``."""
    return _SECRET_RE.sub(lambda m: f"{m.group('head')}***@", text)


def error_line(err: BaseException, *, with_type: bool = False, limit: int = 300) -> str:
    """``err`` as one line, passwords masked, at most ``limit`` characters: the first
    non-blank line of its message (the type's name where it has none); ``with_type`` puts
    ``Type: `` in front."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if with_type:
        text = f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    else:
        text = lines[0] if lines else type(err).__name__
    return mask_secrets(text)[:limit]
