"""The one interface every executor (local process pool, Ray) implements."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from swapface.jobs.spec import Chunk, JobSpec, Segment

SegmentCallback = Callable[[Segment], None]


class Executor(Protocol):
    """Runs ``process_chunk(spec, chunk)`` for every chunk, calling ``on_segment`` as each one is committed.

    Chunks already committed in the job's manifest are never passed in: the caller filters them.
    Returns the segments in chunk order. Raises JobError when a chunk fails for good.
    """

    name: str

    def run(self, spec: JobSpec, chunks: Sequence[Chunk], on_segment: SegmentCallback | None = None) -> list[Segment]: ...

    def close(self) -> None: ...


def throttled(report: Callable[[int], None], every_s: float) -> Callable[[int], None]:
    """``report`` called at most every ``every_s`` seconds (for per-frame progress from a chunk worker)."""
    last = [float("-inf")]

    def tell(done: int) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0] = now
            report(done)

    return tell
