"""Calls to the tracking store, made again while it does not answer (``bench.retry``).

Every call of the writing side (``Tracker``) and the reachability check go through
``RetryingClient``: transient failures (server down, connection refused, database locked)
are retried with exponential backoff for up to ``RETRY_S`` seconds (default 60,
``GRADBENCH_TRACKING_RETRY_S``), then ``TrackingUnavailable`` names the store and the call.
``RETRY_S`` is read from this module when a tracker is made: set it here. An error from a
SQLite file that is damaged is not retried: it is raised at once as ``DamagedStore``, naming
the file (``naming_damage``; the reading side's ``NamingClient`` does the same).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from bench import retry
from bench.errors import DamagedStore, error_line, mask_secrets, shown_path

if TYPE_CHECKING:
    from mlflow import MlflowClient

RETRY_S = float(os.environ.get("GRADBENCH_TRACKING_RETRY_S", "60"))
TRANSIENT = ("ConnectionError", "Connection refused", "Max retries", "timed out",
             "Temporary failure", "TEMPORARILY_UNAVAILABLE", "502", "503", "504",
             "database is locked", "RemoteDisconnected", "Connection aborted",
             # two machines upserting the same row at once (a suite's experiment tag, a
             # shared run's tag): MLflow's store reads, finds nothing, and both insert; the
             # loser's second try finds the row and updates it
             "UniqueViolation", "duplicate key value violates unique constraint")


# What SQLite says of a file that is not (or no longer) a database it can read.
SQLITE_DAMAGE = ("database disk image is malformed", "file is not a database",
                 "malformed database schema")


class TrackingUnavailable(RuntimeError):
    """The tracking store stayed unreachable through every retry."""


def damaged_store(err: BaseException, uri: str) -> DamagedStore | None:
    """``err`` (or an error it was raised from: MLflow wraps SQLAlchemy's, which wraps
    sqlite3's) as a ``DamagedStore`` naming the SQLite file of ``uri``; None when it says
    nothing of a damaged file."""
    if not uri.startswith("sqlite:///"):
        return None
    seen: BaseException | None = err
    while seen is not None:
        found = next((m for m in SQLITE_DAMAGE if m in str(seen)), None)
        if found is not None:
            path = uri.removeprefix("sqlite:///")
            return DamagedStore("the MLflow store", path, found,
                                f"restore it from a backup, try `sqlite3 {shown_path(path)} "
                                f".recover`, or move it aside to start the suite's records "
                                f"afresh")
        seen = seen.__cause__ or seen.__context__
    return None


@contextlib.contextmanager
def naming_damage(uri: str) -> Iterator[None]:
    """Calls to the store at ``uri`` inside: an error from a damaged SQLite file is raised
    as ``DamagedStore`` (``damaged_store``), from the library's error."""
    try:
        yield
    except DamagedStore:
        raise
    except Exception as err:
        damage = damaged_store(err, uri)
        if damage is None:
            raise
        raise damage from err


class NamingClient:
    """``MlflowClient`` whose calls name a damaged SQLite store (``naming_damage``): the
    reading side's, which makes each call once."""

    def __init__(self, client: MlflowClient, uri: str) -> None:
        self._client, self._uri = client, uri

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            with naming_damage(self._uri):
                return method(*args, **kwargs)

        return call


def transient(err: BaseException) -> bool:
    """Whether ``err`` is worth another try: the store may answer later."""
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    text = f"{type(err).__name__}: {err}"
    return any(marker in text for marker in TRANSIENT)


def retried(name: str, fn: Callable[[], Any], uri: str, retry_s: float) -> Any:
    """``fn()``, retried on transient failures with exponential backoff for up to
    ``retry_s`` seconds; then ``TrackingUnavailable`` naming the store and the call."""

    def give_up(err: BaseException, attempts: int) -> BaseException:
        return TrackingUnavailable(
            f"tracking store {mask_secrets(uri)} unreachable: {name} failed "
            f"{attempts} times over {retry_s:.0f} s; last error: {error_line(err)}")

    def attempt() -> Any:
        with naming_damage(uri):  # a damaged file: named at once, not retried
            return fn()

    return retry.retrying(attempt, transient=transient, limit_s=retry_s, give_up=give_up)


class RetryingClient:
    """``MlflowClient`` whose calls retry transient failures with exponential backoff."""

    def __init__(self, client: MlflowClient, uri: str, retry_s: float) -> None:
        self._client, self._uri, self._retry_s = client, uri, retry_s

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            return retried(name, lambda: method(*args, **kwargs), self._uri, self._retry_s)

        return call
