"""Calls to a store made again with backoff while it does not answer: the one retry loop.

Both stores use it: the Optuna storage (``tuning``) and the MLflow tracking store
(``tracking``). Which errors count as transient, how long to go on and what to raise at the
end are the caller's; so is ``landed``, a check made before a call is repeated: a write
whose answer was lost may have landed, and repeating it would record it twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Landed(Exception):
    """Raised by ``retrying`` when ``landed`` says a failed call's write is in the store."""


def retrying(call: Callable[[], T], *, transient: Callable[[BaseException], bool],
             limit_s: float, give_up: Callable[[BaseException, int], BaseException],
             max_delay_s: float = 10.0, landed: Callable[[], bool] | None = None) -> T:
    """``call()``, made again while it fails with an error ``transient`` accepts, with
    exponential backoff (0.5 s, doubling, at most ``max_delay_s``) for up to ``limit_s``
    seconds; then the error ``give_up(last error, attempts)`` builds is raised from it.
    Other errors pass through at once. Where ``landed`` is given it is asked before each
    repeat; if it answers yes, ``Landed`` is raised instead of writing again. It is asked
    as part of the repeat: a check that fails with a transient error (the store still
    down) is a failed attempt too, and is asked again before the next one, so a write is
    never repeated without an answer that it did not land."""
    deadline, delay, attempts = time.monotonic() + limit_s, 0.5, 0
    failed: BaseException | None = None
    while True:
        attempts += 1
        try:
            if failed is not None and landed is not None and landed():
                raise Landed(f"the store holds the write of a failed call: {failed}") from failed
            return call()
        except Landed:
            raise
        except Exception as err:
            if not transient(err):
                raise
            if time.monotonic() + delay > deadline:
                raise give_up(err, attempts) from err
            failed = failed or err
            time.sleep(delay)
            delay = min(delay * 2, max_delay_s)
