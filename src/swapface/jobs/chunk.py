"""The unit of work: ``process_chunk(spec, chunk) -> Segment``, a pure function of files/URIs.

It fetches the inputs, decodes the chunk's frames, runs the pipeline and publishes the encoded
segment atomically to ``work_dir/segments/<index>.<ext>``. Decode → analyse → render → encode run in
four threads (PyAV, OpenCV and ONNX Runtime release the GIL), so one frame's swap overlaps the next
frame's face analysis; frames flow through small queues and are never all in memory. Pipelines are
cached per process (keyed by sources + options), so models load once per worker, not once per chunk;
per-clip state (tracks, smoothing) is reset at every chunk, so a chunk's result does not depend on
which worker ran what before.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from swapface import storage
from swapface.errors import InputError
from swapface.jobs.spec import Chunk, JobSpec, Segment
from swapface.media.image import is_image_path
from swapface.options import SwapOptions

FrameCallback = Callable[[int], None]
_DONE = object()
QUEUE_FRAMES = 6
PREROLL_FRAMES = 8  # frames before a chunk analysed (not output) so tracks and smoothing are settled at its start


def is_sequence_output(output: str) -> bool:
    """Whether the output is a folder of frames (no file suffix)."""
    name = output.rstrip("/").rsplit("/", 1)[-1]
    return "." not in name or output.endswith("/")


def segment_encoder(spec: JobSpec) -> str:
    """Lossless FFV1 for frame-folder outputs (decoded again at merge), else the requested encoder."""
    return "ffv1" if is_sequence_output(spec.output) else spec.options.output_video_encoder


def segment_uri(spec: JobSpec, chunk: Chunk, ext: str) -> str:
    return storage.join(spec.work_dir, "segments", f"{chunk.index:05d}.{ext}")


def read_frame_image(path: str | Path) -> np.ndarray:
    """Image input (one function, so the image reader can be swapped in one place)."""
    from swapface.media.image import read_image

    return read_image(path)


def write_frame_image(frame: np.ndarray, path: Path, quality: int) -> None:
    from swapface.media.image import write_image

    write_image(frame, path, quality=quality)


@functools.lru_cache(maxsize=2)
def _pipeline(sources: tuple[str, ...], reference: str | None, options_json: str, video: bool, fps: float,
              target: str | None = None):
    """A pipeline for these inputs and options, built once per process (models load lazily, once).

    ``target`` is given only when the reference face is taken from one of its frames (``reference_frame_number``)."""
    from swapface.faces.analyser import FaceAnalyser
    from swapface.pipeline import Pipeline

    options = SwapOptions.model_validate_json(options_json)
    with contextlib.ExitStack() as stack:
        images = [read_frame_image(stack.enter_context(storage.fetch(s))) for s in sources]
        ref = read_frame_image(stack.enter_context(storage.fetch(reference))) if reference else None
        if ref is None and target is not None:
            from swapface.reference import reference_from_target

            ref = reference_from_target(stack.enter_context(storage.fetch(target)), options)
    kwargs = {"fps": fps} if video else {}
    analyser = FaceAnalyser.from_options(options, video=video, **kwargs)
    return Pipeline(images, options, reference=ref, analyser=analyser, video=video)


def pipeline_for(spec: JobSpec, *, video: bool, fps: float = 30.0):
    """The (cached) pipeline for a job, reset for a new clip."""
    from_target = spec.target if spec.options.reference_frame_number is not None and not spec.reference_face else None
    pipe = _pipeline(tuple(spec.sources), spec.reference_face, spec.options.model_dump_json(), video, round(fps, 3),
                     from_target)
    pipe.reset()
    return pipe


def process_chunk(spec: JobSpec, chunk: Chunk, *, on_frame: FrameCallback | None = None) -> Segment:
    """Process the frames of ``chunk`` of ``spec.target`` into a published segment; returns where it is.

    ``on_frame(n)`` is told the number of frames finished so far in this chunk (for progress).
    """
    from swapface.models.session import providers_run, providers_since

    before = providers_run()
    with storage.fetch(spec.target, job_id=spec.job_id) as target, storage.temp_dir() as tmp:
        if target.is_file() and is_image_path(target):
            segment = _process_image(spec, chunk, target, tmp, on_frame)
        else:
            with _opencv_threads(1):
                segment = _process_video(spec, chunk, target, tmp, on_frame)
    return replace(segment, providers=providers_since(before))


def _process_image(spec: JobSpec, chunk: Chunk, target: Path, tmp: Path, on_frame: FrameCallback | None) -> Segment:
    ext = storage_ext(spec.output, default="png")
    pipe = pipeline_for(spec, video=False)
    out = pipe.process_frame(read_frame_image(target))
    local = tmp / f"segment.{ext}"
    write_frame_image(out, local, spec.options.output_image_quality)
    uri = segment_uri(spec, chunk, ext)
    storage.publish(local, uri, job_id=spec.job_id)
    if on_frame:
        on_frame(1)
    return Segment(chunk=chunk, uri=uri, frames=1)


def storage_ext(uri: str, default: str) -> str:
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else default


class _Stage(threading.Thread):
    """A worker thread that records its exception for the caller to re-raise and sets ``stop`` when it fails,
    so no other stage waits forever on a queue it no longer drains."""

    def __init__(self, target: Callable[[], None], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self._work = target
        self._halt = stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._work()
        except BaseException as exc:
            self.error = exc
            self._halt.set()


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


def _drain(q: queue.Queue, stop: threading.Event) -> Iterator[Any]:
    while True:
        try:
            item = q.get(timeout=0.2)
        except queue.Empty:
            if stop.is_set():
                return
            continue
        if item is _DONE:
            return
        yield item


@contextlib.contextmanager
def _opencv_threads(count: int) -> Iterator[None]:
    """OpenCV's own thread pool limited while a chunk runs: decode, analysis, render and encode threads
    already keep every core busy, and splitting small face-sized operations only adds hand-offs."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _preroll(pipe, target: Path, info, chunk: Chunk) -> None:
    """Run the pipeline over the frames just before the chunk (output dropped), so tracks, landmark smoothing
    and the processors' colour smoothing are settled and a chunk boundary looks like any other frame."""
    from swapface.media.video import DecodeReport, decode_frames

    start = max(0, chunk.frame_start - PREROLL_FRAMES)
    for _, _, rgb in decode_frames(target, info, start, chunk.frame_start, DecodeReport()):
        pipe.process_frame(rgb)


def _process_video(spec: JobSpec, chunk: Chunk, target: Path, tmp: Path, on_frame: FrameCallback | None) -> Segment:
    """Decode → analyse → render → encode the chunk's frames in four threads.

    Every input frame is analysed (tracks stay continuous); with ``output_video_fps`` a frame is written once per
    output timestamp it covers, so a dropped frame is not rendered and a repeated one is rendered once."""
    from swapface.media.retime import resize_frame, retime, stored_size
    from swapface.media.video import DecodeReport, SegmentWriter, check_encoder, decode_frames, probe
    from swapface.options import output_size

    info = probe(target)
    opts = spec.options
    encoder = segment_encoder(spec)
    if encoder != "ffv1":
        check_encoder(encoder)
    pipe = pipeline_for(spec, video=True, fps=info.fps)
    _preroll(pipe, target, info, chunk)
    timeline = retime(info, opts.output_video_fps) if opts.output_video_fps else None
    copies = timeline.copies(chunk.frame_start, chunk.frame_end) if timeline else None
    size = output_size(opts)
    width, height = stored_size(info, size, pipe.output_scale)
    out_info = replace(timeline.info if timeline else info, width=width, height=height)
    ext = "mkv" if encoder == "ffv1" else "mp4"
    local = tmp / f"segment.{ext}"
    report = DecodeReport()
    decoded: queue.Queue = queue.Queue(QUEUE_FRAMES)
    analysed: queue.Queue = queue.Queue(QUEUE_FRAMES)
    processed: queue.Queue = queue.Queue(QUEUE_FRAMES)
    stop = threading.Event()
    written = 0

    def decode() -> None:
        try:
            for index, pts, rgb in decode_frames(target, info, chunk.frame_start, chunk.frame_end, report):
                stamps = [pts] if copies is None else copies.get(index, [])
                if not _put(decoded, (stamps, rgb), stop):
                    return
        finally:
            _put(decoded, _DONE, stop)

    def render() -> None:  # the processors, one frame behind the analysis (they share no state with it)
        try:
            for stamps, event in _drain(analysed, stop):
                rgb = None
                if stamps:  # a frame the output rate drops is analysed (for tracking) but not rendered
                    rgb = pipe.render_frame(event)
                    if size is not None:
                        rgb = resize_frame(rgb, size)
                if not _put(processed, (stamps, rgb), stop):
                    return
        finally:
            _put(processed, _DONE, stop)

    def encode() -> None:
        nonlocal written
        consumed = 0
        with SegmentWriter(local, out_info, encoder=encoder, quality=opts.output_video_quality,
                           preset=opts.output_video_preset) as writer:
            for stamps, rgb in _drain(processed, stop):
                for pts in stamps:
                    writer.write(rgb, pts)
                written = writer.frames
                consumed += 1
                if on_frame:
                    on_frame(consumed)  # progress counts input frames, as the chunk plan does
            if stop.is_set():
                raise InputError("stopped")

    stages = _decoder, renderer, encoder_thread = _Stage(decode, stop), _Stage(render, stop), _Stage(encode, stop)
    for stage in stages:
        stage.start()
    try:
        for stamps, rgb in _drain(decoded, stop):
            if renderer.error is not None or encoder_thread.error is not None:
                break
            _put(analysed, (stamps, pipe.analyse_frame(rgb)), stop)
    except BaseException:
        stop.set()
        raise
    finally:
        if any(stage.error is not None for stage in stages):
            stop.set()
        _put(analysed, _DONE, stop)
        for stage in stages:
            stage.join()
    for stage in stages:
        if stage.error is not None:
            raise stage.error
    if written == 0:  # nothing decodable in this range: an empty segment that only reports the loss
        return Segment(chunk=chunk, uri="", frames=0, lost_frames=report.lost)
    uri = segment_uri(spec, chunk, ext)
    storage.publish(local, uri, job_id=spec.job_id)
    return Segment(chunk=chunk, uri=uri, frames=written, lost_frames=report.lost)
