"""Executor ``local``: a pool of worker processes (spawn) on this machine running ``process_chunk``.

One worker is the default on CPU: a pipeline already keeps both cores busy (decode, inference and
encode run in threads). ``workers=0`` runs chunks in the calling process (debugging, tests).
Workers die with their parent (Linux), so a killed run leaves no orphan still working.
"""

from __future__ import annotations

import functools
import multiprocessing
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from swapface.errors import JobError, SwapfaceError
from swapface.executors.base import SegmentCallback, throttled
from swapface.jobs.chunk import process_chunk
from swapface.jobs.spec import Chunk, JobSpec, Segment
from swapface.models.session import providers_run, providers_since

#: (chunk index, frames done in that chunk, ONNX Runtime providers its models ran on so far)
FramesCallback = Callable[[int, int, tuple[str, ...]], None]
REPORT_EVERY_S = 0.2

_progress_queue = None  # set once in each worker process by _init_worker


def _die_with_parent() -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _init_worker(progress: multiprocessing.Queue) -> None:
    import signal

    global _progress_queue
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent stops us
    _progress_queue = progress


def _run_chunk(spec: JobSpec, chunk: Chunk) -> Segment:
    """Worker side: process one chunk, sending throttled frame counts (and the providers used so far, so usage
    knows them before the chunk ends) to the parent."""
    tell = None
    if _progress_queue is not None:
        parent = _progress_queue
        before = providers_run()

        def put(done: int) -> None:
            parent.put((chunk.index, done, providers_since(before)))

        tell = throttled(put, REPORT_EVERY_S)
    segment = process_chunk(spec, chunk, on_frame=tell)
    if _progress_queue is not None:
        _progress_queue.put((chunk.index, segment.frames, segment.providers))
    return segment


def _tell_inline(on_frames: FramesCallback, index: int, before: dict[str, int], done: int) -> None:
    on_frames(index, done, providers_since(before))


class LocalExecutor:
    """Runs chunks in ``workers`` spawned processes (default 1), committing each segment as it arrives."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 0:
            raise ValueError("workers must be >= 0")
        self.workers = workers
        self._ctx = multiprocessing.get_context("spawn")
        self._pool: ProcessPoolExecutor | None = None
        self._progress: multiprocessing.Queue | None = None

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._progress = self._ctx.Queue()
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=self._ctx, initializer=_init_worker, initargs=(self._progress,)
            )
        return self._pool

    def run(self, spec: JobSpec, chunks: Sequence[Chunk], on_segment: SegmentCallback | None = None,
            *, on_frames: FramesCallback | None = None) -> list[Segment]:
        """Process ``chunks``; ``on_segment`` runs in this process as each finishes (it may raise to stop)."""
        if not chunks:
            return []
        if self.workers == 0:
            return self._run_inline(spec, chunks, on_segment, on_frames)
        pool = self._ensure_pool()
        pump_stop = threading.Event()
        pump_errors: list[BaseException] = []
        pump = threading.Thread(target=self._pump, args=(on_frames, pump_stop, pump_errors), daemon=True)
        pump.start()
        futures: dict[Future, Chunk] = {pool.submit(_run_chunk, spec, c): c for c in chunks}
        done_segments: list[Segment] = []
        try:
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                if pump_errors:  # a progress callback asked to stop (or failed): stop here, in the caller's thread
                    raise pump_errors[0]
                for future in finished:
                    segment = self._result(future, futures[future])
                    done_segments.append(segment)
                    if on_segment is not None:
                        on_segment(segment)
        except BaseException:
            self._abort()
            raise
        finally:
            pump_stop.set()
            pump.join()
        return sorted(done_segments, key=lambda s: s.chunk.index)

    def _pump(self, on_frames: FramesCallback | None, stop: threading.Event, errors: list[BaseException]) -> None:
        """Hand workers' frame counts to ``on_frames``; an exception it raises is passed to the run loop."""
        assert self._progress is not None
        while True:
            try:
                index, done, providers = self._progress.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    return
                continue
            except (EOFError, OSError):
                return
            if on_frames is not None and not errors:
                try:
                    on_frames(index, done, providers)
                except BaseException as exc:
                    errors.append(exc)

    @staticmethod
    def _result(future: Future, chunk: Chunk) -> Segment:
        try:
            return future.result()
        except SwapfaceError:
            raise
        except Exception as exc:  # a worker crashed or raised something unexpected
            raise JobError(f"chunk {chunk.index} failed in a worker ({type(exc).__name__})", code="chunk_failed") from exc

    def _run_inline(self, spec: JobSpec, chunks: Sequence[Chunk], on_segment: SegmentCallback | None,
                    on_frames: FramesCallback | None) -> list[Segment]:
        out = []
        for chunk in chunks:
            tell = None
            if on_frames is not None:
                tell = functools.partial(_tell_inline, on_frames, chunk.index, providers_run())
            segment = process_chunk(spec, chunk, on_frame=tell)
            out.append(segment)
            if on_segment is not None:
                on_segment(segment)
        return out

    def _abort(self) -> None:
        """Stop now: cancel queued chunks and end the workers (finished segments stay committed)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)

    def close(self) -> None:
        """End the worker processes."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if self._progress is not None:
            self._progress.close()
            self._progress = None

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
