"""Executor ``ray``: one Ray task per chunk on a cluster (or a local Ray), committed in the driver as each lands.

Tasks run ``process_chunk``, which writes the segment to shared storage atomically and returns the small
:class:`Segment`; frames never travel through Ray's object store. A task whose worker or node dies is
rerun elsewhere (``max_retries``); an unexpected exception is retried too, but a swapface error (bad
media, a missing model) is final and comes back as a value so Ray does not retry it. Workers are reused
across chunks (``max_calls=0``, also on GPUs), so ``process_chunk``'s per-process pipeline cache loads
the models once per worker. Live frame counts flow through a small actor the driver polls.

This module imports Ray; it is only imported through ``get_executor("ray")``.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ray
import ray.exceptions

from swapface.errors import InputError, JobError, SwapfaceError
from swapface.executors.base import SegmentCallback, throttled
from swapface.jobs.chunk import process_chunk
from swapface.jobs.spec import Chunk, JobSpec, Segment

FramesCallback = Callable[[int, int], None]  # (chunk index, frames done in that chunk)
TASK_NAME = "swapface-chunk-{index}"  # a running task's worker process is titled "ray::swapface-chunk-<index>"
MAX_RETRIES = 3
POLL_S = 0.2
REPORT_EVERY_S = 0.5
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class _Refused:
    """A chunk that failed with a swapface error: returned, not raised, so Ray does not retry it."""

    error: SwapfaceError


@ray.remote(num_cpus=0, max_restarts=0)
class _ProgressBoard:
    """Latest frame count per running chunk, reported by tasks and drained by the driver."""

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}

    def report(self, index: int, done: int) -> None:
        self._counts[index] = done

    def take(self) -> dict[int, int]:
        counts, self._counts = self._counts, {}
        return counts


# max_calls=0: workers (and the models they loaded) serve chunk after chunk. Ray makes functions declared with
# num_gpus single-use unless told otherwise; resources come through .options() here, and this pins it anyway.
@ray.remote(max_calls=0)
def _chunk_task(spec: JobSpec, chunk: Chunk, board: Any | None) -> Segment | _Refused:
    """Worker side: process one chunk, telling ``board`` its frame count at most every REPORT_EVERY_S."""
    tell = None
    if board is not None:
        tell = throttled(lambda done: board.report.remote(chunk.index, done), REPORT_EVERY_S)
    try:
        return process_chunk(spec, chunk, on_frame=tell)
    except SwapfaceError as exc:
        return _Refused(exc)


class _LiveProgress:
    """Driver side of the board: polls it without blocking and hands counts to ``on_frames``."""

    def __init__(self, on_frames: FramesCallback) -> None:
        self.on_frames = on_frames
        self.board = _ProgressBoard.remote()  # type: ignore[attr-defined]  # added by @ray.remote
        self._asked: Any | None = self.board.take.remote()

    def pump(self, finished: set[int]) -> None:
        """Deliver the latest counts if the board has answered (never for chunks already committed)."""
        if self._asked is None or not ray.wait([self._asked], timeout=0)[0]:
            return
        try:
            counts = ray.get(self._asked)
        except ray.exceptions.RayError:  # the board died: progress falls back to whole segments
            self._asked = None
            return
        for index, done in counts.items():
            if index not in finished:
                self.on_frames(index, done)
        self._asked = self.board.take.remote()

    def close(self) -> None:
        ray.kill(self.board)


def _head(address: str) -> tuple[str, int] | None:
    """Host and port of a head-node address ('host:port', 'ray://host:port'); None for 'auto' / 'local'."""
    if address in ("auto", "local"):
        return None
    host, _, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"SWAPFACE_RAY_ADDRESS {address!r} is not host:port, ray://host:port or 'auto'",
                         code="bad_ray_address")
    return host.strip("[]"), int(port)


def _check_reachable(host: str, port: int) -> None:
    """Fail fast with a clear message when the head node does not answer (Ray would wait, then print a traceback)."""
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise JobError(f"cannot reach the Ray cluster at {host}:{port} (SWAPFACE_RAY_ADDRESS): "
                       f"{exc.strerror or type(exc).__name__}; is the head node running and reachable?",
                       code="ray_unreachable") from None


class RayExecutor:
    """Runs chunks as Ray tasks (``num_cpus``/``num_gpus`` each), committing each segment as it completes."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: float | None = None, num_gpus: float | None = None,
                 max_retries: int = MAX_RETRIES, live_progress: bool = True) -> None:
        from swapface.config import load_settings

        settings = load_settings()
        self.address = address if address is not None else settings.ray_address
        self._head = _head(self.address) if self.address else None
        self.num_cpus = settings.ray_num_cpus if num_cpus is None else num_cpus
        self.num_gpus = settings.ray_num_gpus if num_gpus is None else num_gpus
        if self.num_cpus < 0 or self.num_gpus < 0 or max_retries < 0:
            raise InputError("Ray resources and retries must be >= 0", code="bad_ray_resources")
        self.max_retries = max_retries
        self.live_progress = live_progress
        self._owns_ray = False

    def _connect(self) -> None:
        """Reuse a Ray this process already joined, else join the configured cluster, else start a local one."""
        if ray.is_initialized():
            return
        if self._head is not None:
            _check_reachable(*self._head)
        try:
            ray.init(address=self.address or None, ignore_reinit_error=True, logging_level=logging.WARNING)
        except (ConnectionError, TimeoutError, RuntimeError) as exc:
            where = "the Ray cluster at SWAPFACE_RAY_ADDRESS" if self.address else "a local Ray"
            raise JobError(f"cannot connect to {where} ({type(exc).__name__})", code="ray_unreachable") from exc
        self._owns_ray = True

    def run(self, spec: JobSpec, chunks: Sequence[Chunk], on_segment: SegmentCallback | None = None,
            *, on_frames: FramesCallback | None = None) -> list[Segment]:
        """Submit one task per chunk; ``on_segment`` runs here as each completes (any order; it may raise to stop)."""
        if not chunks:
            return []
        self._connect()
        progress = _LiveProgress(on_frames) if on_frames is not None and self.live_progress else None
        spec_ref = ray.put(spec)
        board = progress.board if progress is not None else None
        refs = {self._submit(spec_ref, chunk, board): chunk for chunk in chunks}
        pending = list(refs)
        finished: set[int] = set()
        segments: list[Segment] = []
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
                if progress is not None:
                    progress.pump(finished)
                for ref in ready:
                    segment = self._result(ref, refs[ref])
                    finished.add(segment.chunk.index)
                    segments.append(segment)
                    if on_segment is not None:
                        on_segment(segment)
        except BaseException:
            # queued chunks are dropped and running ones stopped by ending their worker process: a plain cancel
            # raises KeyboardInterrupt inside the task, which can land mid-import (of dlib, say) and leave the
            # reused worker unable to import it again. Committed segments stay.
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass
            raise
        finally:
            if progress is not None:
                progress.close()
        return sorted(segments, key=lambda s: s.chunk.index)

    def _submit(self, spec_ref: Any, chunk: Chunk, board: Any | None) -> Any:
        return _chunk_task.options(
            name=TASK_NAME.format(index=chunk.index), num_cpus=self.num_cpus, num_gpus=self.num_gpus,
            max_retries=self.max_retries, retry_exceptions=True,
        ).remote(spec_ref, chunk, board)

    def _result(self, ref: Any, chunk: Chunk) -> Segment:
        try:
            out = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # raised on every try
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            raise JobError(f"chunk {chunk.index} failed on the Ray cluster after {self.max_retries} retries "
                           f"({type(cause).__name__})", code="chunk_failed") from exc
        except ray.exceptions.RayError as exc:  # its worker or node died once too often, or it was lost
            raise JobError(f"chunk {chunk.index} failed on the Ray cluster ({type(exc).__name__})",
                           code="chunk_failed") from exc
        if isinstance(out, _Refused):
            raise out.error
        return out

    def close(self) -> None:
        """Leave the Ray this executor started or joined; a Ray the caller initialised is left alone."""
        if self._owns_ray:
            self._owns_ray = False
            ray.shutdown()

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
