"""Running a job end to end: plan → skip committed chunks → execute → commit → merge → mark → publish.

The manifest in ``spec.work_dir`` is the checkpoint: a run started again with the same spec reuses
every committed segment and processes only the rest. Intermediates are deleted once the output
is published.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from swapface import storage
from swapface.errors import InputError, JobError
from swapface.executors.base import Executor
from swapface.jobs.chunk import is_sequence_output
from swapface.jobs.manifest import Manifest, fingerprint
from swapface.jobs.merger import merge_segments
from swapface.jobs.planner import plan_chunks, plan_image
from swapface.jobs.spec import Chunk, JobSpec, Segment
from swapface.media.image import is_image_path
from swapface.media.video import VideoInfo
from swapface.media.video_limits import check_video_size


@dataclass(frozen=True)
class Progress:
    """One progress update: frames done of the total (reused chunks count as done), speed, ETA, chunk."""

    frames_done: int
    frames_total: int
    fps: float
    eta_seconds: float | None
    chunk_index: int | None
    chunks_done: int
    chunks_total: int
    stage: str = "processing"  # processing | merging | done
    providers: tuple[str, ...] = ()  # ONNX Runtime providers this run's chunks have run on so far

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class JobResult:
    """What a finished (or stopped) job did."""

    job_id: str
    output: str
    status: str  # done | stopped
    frames: int
    frames_total: int
    lost_frames: int
    chunks: int
    chunks_reused: int
    seconds: float
    audio_streams: int = 0
    providers: tuple[str, ...] = ()  # ONNX Runtime providers this run's chunks ran on (reused chunks excluded)


ProgressCallback = Callable[[Progress], None]


class _Stopped(Exception):
    """Raised inside callbacks to unwind the executor when ``should_stop`` says so."""


class _Tracker:
    """Turns per-chunk frame counts into :class:`Progress` updates (thread-safe)."""

    def __init__(self, manifest: Manifest, on_progress: ProgressCallback | None,
                 should_stop: Callable[[], bool] | None) -> None:
        self.total = sum(c.frames for c in manifest.chunks)
        self.reused = sum(c.frames for c in manifest.chunks if c.index in manifest.segments)
        self.chunks_total = len(manifest.chunks)
        self.chunks_done = len(manifest.segments)
        self.in_flight: dict[int, int] = {}
        self.finished = 0
        self.providers: set[str] = set()
        self.started = time.monotonic()
        self.on_progress = on_progress
        self.should_stop = should_stop
        self.lock = threading.Lock()

    def frames(self, chunk_index: int, done: int, providers: tuple[str, ...] = ()) -> None:
        with self.lock:
            self.in_flight[chunk_index] = done
            self.providers.update(providers)
        self.emit(chunk_index)

    def segment(self, segment: Segment) -> None:
        with self.lock:
            self.in_flight.pop(segment.chunk.index, None)
            self.finished += segment.chunk.frames
            self.chunks_done += 1
            self.providers.update(segment.providers)
        self.emit(segment.chunk.index)

    def emit(self, chunk_index: int | None, stage: str = "processing") -> None:
        if self.should_stop is not None and stage == "processing" and self.should_stop():
            raise _Stopped()
        if self.on_progress is None:
            return
        with self.lock:
            fresh = self.finished + sum(self.in_flight.values())
            done = min(self.total, self.reused + fresh)
            elapsed = max(time.monotonic() - self.started, 1e-6)
            providers = tuple(sorted(self.providers))
        fps = fresh / elapsed
        eta = (self.total - done) / fps if fps > 0 else None
        self.on_progress(Progress(done, self.total, round(fps, 2), None if eta is None else round(eta, 1), chunk_index,
                                  self.chunks_done, self.chunks_total, stage, providers))


SIGNATURE_BYTES = 1 << 20


def _target_signature(local: Path) -> str:
    """What identifies the target's content, so a changed file invalidates old segments.

    A file: its size and a hash of its first and last MiB — not its modification time, because a target
    fetched from object storage or decrypted is a fresh copy on every run, and resume must still see the
    same target. A folder of frames: each frame's name, size and modification time.
    """
    if local.is_dir():
        return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sorted(local.iterdir()))
    size = local.stat().st_size
    digest = hashlib.sha256()
    with open(local, "rb") as f:
        digest.update(f.read(SIGNATURE_BYTES))
        if size > SIGNATURE_BYTES:
            f.seek(max(SIGNATURE_BYTES, size - SIGNATURE_BYTES))
            digest.update(f.read(SIGNATURE_BYTES))
    return f"{size}:{digest.hexdigest()}"


def _local_output_place(output: str, stack: contextlib.ExitStack) -> tuple[Path, bool]:
    """Where to write the output locally: beside a local output (then moved in place), else in a temp folder."""
    name = output.rstrip("/").rsplit("/", 1)[-1]
    tmp = stack.enter_context(storage.temp_dir(prefix="swapface-out-"))
    return tmp / name, "://" not in output or output.startswith("file://")


def run_job(spec: JobSpec, *, executor: Executor | None = None, on_progress: ProgressCallback | None = None,
            should_stop: Callable[[], bool] | None = None, keep_work_dir: bool = False) -> JobResult:
    """Run (or resume) a job to its published output; returns counts, lost frames and timing.

    ``keep_work_dir`` leaves the chunks and manifest in place after publishing (``run --keep-temp``)."""
    started = time.monotonic()
    owns_executor = executor is None
    if executor is None:
        from swapface.executors.local import LocalExecutor

        executor = LocalExecutor()
    try:
        with contextlib.ExitStack() as stack:
            target = stack.enter_context(storage.fetch(spec.target, job_id=spec.job_id))
            info = None
            if target.is_file() and is_image_path(target):
                from swapface.validation import refuse_video_options

                refuse_video_options(spec.options)
                chunks = plan_image()
            else:
                from swapface.media.video import check_encoder, probe

                info = probe(target)
                if spec.video_limits is not None:  # before any frame is decoded
                    check_video_size(info, spec.video_limits)
                if not is_sequence_output(spec.output):  # a folder of frames uses lossless FFV1 segments
                    check_encoder(spec.options.output_video_encoder, "." + spec.output.rsplit(".", 1)[-1].lower())
                chunks = plan_chunks(info.frames, info.fps, spec.options)
                check_output_frames(info, chunks, spec)
            manifest = Manifest.open(spec, chunks, fingerprint(spec, chunks, _target_signature(target)))
            reused = len(manifest.segments)
            tracker = _Tracker(manifest, on_progress, should_stop)
            pending = manifest.pending()

            def commit(segment: Segment) -> None:
                manifest.commit(spec, segment)
                tracker.segment(segment)

            tracker.emit(None)
            kwargs = {"on_frames": tracker.frames} if "on_frames" in inspect.signature(executor.run).parameters else {}
            try:
                executor.run(spec, pending, commit, **kwargs)
            except _Stopped:
                return JobResult(spec.job_id, spec.output, "stopped", 0, tracker.total, 0, len(chunks), reused,
                                 time.monotonic() - started, providers=tuple(sorted(tracker.providers)))
            segments = manifest.ordered()
            if len(segments) != len(chunks):
                raise JobError("some chunks have no segment after the run; start it again to resume", code="incomplete")
            written = sum(s.frames for s in segments)
            if written == 0:
                raise InputError("no frame of the target could be decoded: the video is damaged", code="undecodable")
            tracker.emit(None, stage="merging")
            local_output, local = _local_output_place(spec.output, stack)
            merged = merge_segments(spec, segments, local_output, source=target, info=info)
            _finalize(local_output, spec)
            _publish(local_output, spec, local)
            lost = sum(s.lost_frames for s in segments) + (info.missing_frames if info is not None else 0)
            tracker.emit(None, stage="done")
        if not keep_work_dir:
            storage.remove(spec.work_dir, recursive=True)
        return JobResult(
            job_id=spec.job_id, output=spec.output, status="done", frames=merged.frames,
            frames_total=(info.declared_frames or info.frames) if info is not None else 1, lost_frames=lost,
            chunks=len(chunks), chunks_reused=reused, seconds=round(time.monotonic() - started, 3),
            audio_streams=merged.audio_copied + merged.audio_reencoded, providers=tuple(sorted(tracker.providers)),
        )
    finally:
        if owns_executor:
            executor.close()


def check_output_frames(info: VideoInfo, chunks: list[Chunk], spec: JobSpec) -> None:
    """At another output rate, the processed range must last at least one output frame."""
    fps = spec.options.output_video_fps
    if not fps:
        return
    from swapface.media.retime import retime

    k0, k1 = retime(info, fps).output_range(chunks[0].frame_start, chunks[-1].frame_end)
    if k1 <= k0:
        raise InputError(f"the frames [{chunks[0].frame_start}, {chunks[-1].frame_end}) last less than one frame at "
                         f"output_video_fps {fps:g}; process a longer range", code="bad_trim")


def _finalize(local_output: Path, spec: JobSpec) -> None:
    """Mark the output as synthetic (every frame of a folder output)."""
    from swapface.provenance import finalize_output

    if local_output.is_dir():
        for frame in sorted(local_output.iterdir()):
            finalize_output(frame, spec.options)
    else:
        finalize_output(local_output, spec.options)


def _publish(local_output: Path, spec: JobSpec, local: bool) -> None:
    """Store the output: a file atomically; a folder frame by frame (replacing an older folder's frames)."""
    if not local_output.is_dir():
        storage.publish(local_output, spec.output, job_id=spec.job_id)
        return
    if local:
        dest = Path(spec.output[len("file://"):] if spec.output.startswith("file://") else spec.output)
        dest.mkdir(parents=True, exist_ok=True)
        for old in dest.glob("[0-9][0-9][0-9][0-9][0-9][0-9].png"):  # frames of an earlier run, nothing else
            old.unlink()
        for frame in sorted(local_output.iterdir()):
            shutil.move(str(frame), dest / frame.name)
        return
    for frame in sorted(local_output.iterdir()):
        storage.publish(frame, storage.join(spec.output, frame.name), job_id=spec.job_id)
