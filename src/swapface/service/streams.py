"""Bounds on server-sent event streams: how many a key and the whole service may hold open at once.

Each open stream polls the job store, so streams are counted per API key and in total (429 past either
cap), and a stream re-checks its key every :data:`KEY_RECHECK_S` seconds so a revoked key stops receiving.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

KEY_RECHECK_S = 5.0


class TooManyStreams(Exception):
    """No stream slot is free for this key or for the service."""

    def __init__(self, scope: str, limit: int) -> None:
        super().__init__(scope)
        self.scope, self.limit = scope, limit


class StreamSlots:
    """Counts open event streams per key and in total (one instance per app)."""

    def __init__(self, per_key: int, total: int) -> None:
        self.per_key, self.total = per_key, total
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}

    def acquire(self, key_id: str) -> None:
        """Take a slot for ``key_id`` or raise TooManyStreams."""
        with self._lock:
            if sum(self._open.values()) >= self.total:
                raise TooManyStreams("service", self.total)
            if self._open.get(key_id, 0) >= self.per_key:
                raise TooManyStreams("key", self.per_key)
            self._open[key_id] = self._open.get(key_id, 0) + 1

    def release(self, key_id: str) -> None:
        with self._lock:
            left = self._open.get(key_id, 0) - 1
            if left > 0:
                self._open[key_id] = left
            else:
                self._open.pop(key_id, None)

    @contextlib.contextmanager
    def held(self, key_id: str) -> Iterator[None]:
        """A slot already acquired, released when the block ends."""
        try:
            yield
        finally:
            self.release(key_id)
