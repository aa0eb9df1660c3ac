"""Fair webhook scheduling: one attempt in flight per endpoint, retries wait on a timer, not in a thread.

Every attempt is bounded by ``webhook_timeout_s`` in total (see :mod:`swapface.service.webhooks`). An
endpoint's deliveries queue behind each other, so slow or failing endpoints hold at most one sender thread
each and a healthy endpoint of another tenant is sent to at once while spare threads remain.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

log = logging.getLogger("swapface.webhooks")

SENDERS = 8


@dataclass(frozen=True)
class Delivery:
    """A job's finished event to send."""

    job_id: str
    status: str
    url: str
    secret: str

    @property
    def endpoint(self) -> str:
        return hashlib.sha256(self.url.strip().encode()).hexdigest()


Step = Callable[[Delivery], "float | None"]  # one attempt; the wait before the next one, None when done


class WebhookDispatcher:
    """Runs deliveries' attempts on a small pool, at most one per endpoint at a time."""

    def __init__(self, step: Step, senders: int = SENDERS) -> None:
        self._step = step
        self._pool = ThreadPoolExecutor(max_workers=senders, thread_name_prefix="webhook")
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Delivery]] = {}
        self._busy: set[str] = set()
        self._timers: set[threading.Timer] = set()
        self._closed = False

    def submit(self, delivery: Delivery) -> None:
        """Queue a delivery behind its endpoint's others; it starts at once when the endpoint is idle."""
        with self._lock:
            if self._closed:
                return
            if delivery.endpoint in self._busy:
                self._queues.setdefault(delivery.endpoint, deque()).append(delivery)
                return
            self._busy.add(delivery.endpoint)
        self._pool.submit(self._run, delivery)

    def _run(self, delivery: Delivery) -> None:
        wait: float | None = None
        try:
            wait = self._step(delivery)
        except Exception as exc:
            log.warning("webhook delivery failed", extra={"job_id": delivery.job_id, "error": type(exc).__name__})
        if wait is not None:
            self._later(wait, delivery)
        self._next(delivery.endpoint)

    def _later(self, wait: float, delivery: Delivery) -> None:
        def fire() -> None:
            with self._lock:
                self._timers.discard(timer)
            self.submit(delivery)

        timer = threading.Timer(wait, fire)
        timer.daemon = True
        with self._lock:
            if self._closed:
                return
            self._timers.add(timer)
        timer.start()

    def _next(self, endpoint: str) -> None:
        with self._lock:
            queue = self._queues.get(endpoint)
            if not queue or self._closed:
                self._busy.discard(endpoint)
                self._queues.pop(endpoint, None)
                return
            delivery = queue.popleft()
        self._pool.submit(self._run, delivery)

    def close(self) -> None:
        """Stop sending: pending retries stay pending in the database."""
        with self._lock:
            self._closed = True
            timers, self._timers = list(self._timers), set()
        for timer in timers:
            timer.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
