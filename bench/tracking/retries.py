"""Calls to the tracking store, made again while it does not answer (``bench.retry``).

Every call of the writing side (``Tracker``) and the reachability check go through
``RetryingClient``: transient failures (server down, connection refused, database locked)
are retried with exponential backoff for up to ``RETRY_S`` seconds (default 60,
``GRADBENCH_TRACKING_RETRY_S``), then ``TrackingUnavailable`` names the store and the call.
``RETRY_S`` is read from this module when a tracker is made: set it here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bench import retry
from bench.errors import error_line, mask_secrets

if TYPE_CHECKING:
    from mlflow import MlflowClient

RETRY_S = float(os.environ.get("GRADBENCH_TRACKING_RETRY_S", "60"))
TRANSIENT = ("ConnectionError", "Connection refused", "Max retries", "timed out",
             "Temporary failure", "TEMPORARILY_UNAVAILABLE", "502", "503", "504",
             "database is locked", "RemoteDisconnected", "Connection aborted")


class TrackingUnavailable(RuntimeError):
    """The tracking store stayed unreachable through every retry."""


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

    return retry.retrying(fn, transient=transient, limit_s=retry_s, give_up=give_up)


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
