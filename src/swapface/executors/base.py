"""The one interface every executor (local process pool, Ray) implements."""

from __future__ import annotations

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
