"""Waiting for a condition in a test: poll it with a generous deadline, never sleep a fixed
time and assume the other side is ready, and never hide why it did not hold.

A machine running the suite in parallel can be many times slower than a quiet one, so a
deadline is a bound on a hang, not a measurement: nothing is asserted about how long the
wait took.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], *, what: str, timeout: float = 120.0,
               every: float = 0.2, passing: tuple[type[BaseException], ...] = ()) -> T:
    """Call ``condition()`` until it returns something true, and return that.

    An error of a kind in ``passing`` (a server still starting: ``OSError``) counts as "not
    yet"; the last one is kept and named in the failure at the deadline. Any other error
    stops the wait at once with its own message: a journal that cannot be read is its error,
    not a timeout two minutes later.

    Raises:
        AssertionError: ``what`` did not happen within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = condition()
        except passing as err:
            last = err
        else:
            if value:
                return value
        if time.monotonic() > deadline:
            seen = f"; last error: {type(last).__name__}: {last}" if last is not None else ""
            raise AssertionError(f"{what}: not so within {timeout:.0f} s{seen}") from last
        time.sleep(every)
