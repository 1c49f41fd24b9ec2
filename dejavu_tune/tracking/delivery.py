"""Tracking calls that never hold up training while the tracking server is away.

A trial hands each MLflow call to a ``DeliveryQueue``: one background thread makes
the calls in order and retries each failed one with exponential backoff until the
server takes it or ``retry_for_s`` has passed. Training goes on meanwhile. At the
end of a trial ``drain`` waits for everything queued, so the final status is the
last thing written. Queued calls must be safe to repeat (a request whose reply was
lost is sent again): metrics carry the timestamp they were queued with, and MLflow
ignores a metric point identical to one it has; tags, params and artifacts are
overwritten with the same values.

MLflow's own HTTP client retries too (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, 7 by
default, with backoff), but inside the caller: without this queue a trial would sit
in its logging call for the whole outage. Its backoff also grows to 64 s and more, so
a call could wait a minute after the server is back; trials therefore lower MLflow's
own retries to 2 and leave the waiting to this queue (at most ``max_backoff_s``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from mlflow.exceptions import MlflowException

__all__ = ["DeliveryQueue"]

log = logging.getLogger(__name__)

# Client errors that no retry can fix (MLflow's error codes for a bad request).
_PERMANENT_CODES = {"BAD_REQUEST", "INVALID_PARAMETER_VALUE", "INVALID_STATE",
                    "RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST", "PERMISSION_DENIED",
                    "UNAUTHENTICATED"}


def is_transient(exc: BaseException) -> bool:
    """A failure that may pass once the server is back: a network error, or an MLflow
    error other than a rejected request. A bug in the call itself is not retried, nor
    any other OSError (an unreadable figure is one: PIL's error is an OSError), which
    would hold every later record of the trial for the whole retry window."""
    if isinstance(exc, (ConnectionError, TimeoutError, requests.RequestException)):
        return True
    return isinstance(exc, MlflowException) and exc.error_code not in _PERMANENT_CODES


class DeliveryQueue:
    # Queues with a name are one per process: a copy unpickled in the same process (Tune
    # pickles its callbacks with the experiment and restores them on resume) is the
    # same queue, so the driver drains what the restored callbacks queued.
    _named: dict[str, DeliveryQueue] = {}

    def __init__(self, retry_for_s: float = 3600.0, first_backoff_s: float = 1.0,
                 max_backoff_s: float = 10.0, name: str | None = None):
        self.retry_for_s = retry_for_s
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.name = name
        self.retries = 0  # failed attempts that were tried again
        self.dropped: list[str] = []  # calls given up: a permanent error, or out of time
        self._lock = threading.Lock()
        self._failing = threading.Event()  # set while a call is being retried
        self._calls: queue.Queue[tuple[Callable[..., Any], tuple, dict] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mlflow-delivery", daemon=True)
        self._thread.start()

    @classmethod
    def named(cls, name: str, **settings: Any) -> DeliveryQueue:
        if name not in cls._named:
            cls._named[name] = cls(name=name, **settings)
        return cls._named[name]

    def __reduce__(self) -> tuple[Any, tuple]:
        settings = (self.retry_for_s, self.first_backoff_s, self.max_backoff_s)
        if self.name is not None:
            return _named_queue, (self.name, *settings)
        return DeliveryQueue, settings  # an unnamed copy starts with an empty queue

    def put(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._calls.put((fn, args, kwargs))

    def close(self) -> None:
        """Let the thread end once everything queued so far is delivered."""
        self._calls.put(None)

    def pending(self) -> int:
        return self._calls.unfinished_tasks

    def drain(self, timeout_s: float | None = None, unless_failing: bool = False) -> bool:
        """Wait until every queued call is delivered or dropped; False on timeout.

        ``unless_failing``: stop waiting as soon as a call is failing (the server is
        away), so a caller keeps its records in step while the server answers and
        goes on without them while it does not."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._calls.all_tasks_done:
            while self._calls.unfinished_tasks:
                if unless_failing and self._failing.is_set():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                # a failure does not notify the condition: look at the flag now and then
                self._calls.all_tasks_done.wait(0.1 if unless_failing else left)
        return True

    def _run(self) -> None:
        while True:
            item = self._calls.get()
            try:
                if item is None:
                    return
                self._deliver(*item)
            finally:
                self._calls.task_done()

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` now, in the calling thread, with the queue's retries
        (how the queue delivers each call). Raises a permanent error at once, a
        transient one once ``retry_for_s`` has passed."""
        give_up = time.monotonic() + self.retry_for_s
        backoff = self.first_backoff_s
        while True:
            try:
                result = fn(*args, **kwargs)
                self._failing.clear()
                return result
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() + backoff > give_up:
                    raise
                self._failing.set()
                with self._lock:
                    self.retries += 1
                log.warning("tracking call %s failed (%s); retrying in %.0f s",
                            _describe(fn, args), type(exc).__name__, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    def _deliver(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        try:
            self.call(fn, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - given up: recorded, the queue goes on
            what = f"{_describe(fn, args)}: {type(exc).__name__}: {exc}"
            self.dropped.append(what.splitlines()[0][:500])
            log.error("gave up delivering %s", what)


def _describe(fn: Callable[..., Any], args: tuple) -> str:
    """``fn``'s name, and the function it applies when its first argument is one."""
    name = getattr(fn, "__name__", repr(fn))
    inner = getattr(args[0], "__name__", None) if args and callable(args[0]) else None
    return f"{name}({inner})" if inner else name


def _named_queue(name: str, retry_for_s: float, first_backoff_s: float,
                 max_backoff_s: float) -> DeliveryQueue:
    return DeliveryQueue.named(name, retry_for_s=retry_for_s, first_backoff_s=first_backoff_s,
                               max_backoff_s=max_backoff_s)
