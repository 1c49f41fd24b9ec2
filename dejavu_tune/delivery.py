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

__all__ = ["DeliveryQueue"]

log = logging.getLogger(__name__)


class DeliveryQueue:
    def __init__(self, retry_for_s: float = 3600.0, first_backoff_s: float = 1.0,
                 max_backoff_s: float = 10.0):
        self.retry_for_s = retry_for_s
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.retries = 0  # failed attempts that were tried again
        self.dropped: list[str] = []  # calls given up after retry_for_s
        self._calls: queue.Queue[tuple[Callable[..., Any], tuple, dict]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mlflow-delivery", daemon=True)
        self._thread.start()

    def __reduce__(self) -> tuple[Any, tuple[float, float, float]]:
        # Tune pickles its callbacks with the experiment; a copy starts with an empty queue.
        return DeliveryQueue, (self.retry_for_s, self.first_backoff_s, self.max_backoff_s)

    def put(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._calls.put((fn, args, kwargs))

    def pending(self) -> int:
        return self._calls.unfinished_tasks

    def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued call is delivered or dropped; False on timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._calls.all_tasks_done:
            while self._calls.unfinished_tasks:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._calls.all_tasks_done.wait(left)
        return True

    def _run(self) -> None:
        while True:
            item = self._calls.get()
            try:
                self._deliver(*item)
            finally:
                self._calls.task_done()

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` now, in the caller, retried like a queued call; for what
        the caller cannot go on without (the run's id). Raises once ``retry_for_s`` passed."""
        give_up = time.monotonic() + self.retry_for_s
        backoff = self.first_backoff_s
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - any failure is retried, then raised
                if time.monotonic() + backoff > give_up:
                    raise
                self.retries += 1
                log.warning("tracking call %s failed (%s); retrying in %.0f s",
                            getattr(fn, "__name__", fn), type(exc).__name__, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    def _deliver(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        try:
            self.call(fn, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - given up: recorded, the queue goes on
            what = f"{getattr(fn, '__name__', fn)}: {type(exc).__name__}: {exc}"
            self.dropped.append(what.splitlines()[0][:500])
            log.error("gave up delivering %s after %.0f s", what, self.retry_for_s)
