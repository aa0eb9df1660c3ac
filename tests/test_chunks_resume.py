"""Chunks, manifest and resume: a run stopped or killed mid-way picks up from its finished chunks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from media_fixtures import audio_seconds, moving_face_clip, moving_face_frames
from swapface import storage
from swapface.errors import InputError
from swapface.executors import get_executor
from swapface.executors.local import LocalExecutor
from swapface.jobs.manifest import Manifest, fingerprint
from swapface.jobs.planner import plan_chunks
from swapface.jobs.runner import run_job
from swapface.jobs.spec import Chunk, JobSpec, Segment
from swapface.media import video
from swapface.media.image import read_image, write_image
from swapface.options import SwapOptions

DEBUG = SwapOptions(processors=("face_debugger",), chunk_seconds=0.3, mark_output=False)


@pytest.fixture(scope="module")
def media(tmp_path_factory, astronaut) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("resume")
    write_image(astronaut, d / "source.png")
    return {"dir": d, "source": d / "source.png", "clip": moving_face_clip(d / "clip.mp4", 36, size=(320, 180))}


def _spec(media: dict[str, Path], name: str, options: SwapOptions = DEBUG, target: Path | None = None) -> JobSpec:
    out = media["dir"] / name
    return JobSpec(job_id=f"t-{out.stem}", sources=(str(media["source"]),), target=str(target or media["clip"]),
                   output=str(out), work_dir=str(media["dir"] / f"{name}.work"), options=options)


class RecordingExecutor(LocalExecutor):
    """The real in-process executor, remembering which chunks it was asked to run."""

    def __init__(self) -> None:
        super().__init__(workers=0)
        self.asked: list[int] = []

    def run(self, spec, chunks, on_segment=None, *, on_frames=None):  # noqa: ANN001, ANN201
        self.asked += [c.index for c in chunks]
        return super().run(spec, chunks, on_segment, on_frames=on_frames)


def test_plan_covers_the_trim_range() -> None:
    chunks = plan_chunks(300, 30.0, SwapOptions(chunk_seconds=4, trim_frame_start=10, trim_frame_end=250))
    assert [(c.frame_start, c.frame_end) for c in chunks] == [(10, 130), (130, 250)]
    chunks = plan_chunks(95, 29.97, SwapOptions(chunk_seconds=1))
    assert chunks[0].frames == 30 and chunks[-1].frame_end == 95 and sum(c.frames for c in chunks) == 95
    with pytest.raises(InputError, match="trim range"):
        plan_chunks(100, 30.0, SwapOptions(trim_frame_start=100))


def test_manifest_survives_reopen_and_ignores_other_jobs(media, tmp_path) -> None:
    spec = JobSpec("m1", ("s.png",), "t.mp4", "o.mp4", str(tmp_path / "work"))
    chunks = [Chunk(0, 0, 10), Chunk(1, 10, 20)]
    seg_file = tmp_path / "work" / "segments" / "00000.mp4"
    seg_file.parent.mkdir(parents=True)
    seg_file.write_bytes(b"x")
    m = Manifest.open(spec, chunks, fingerprint(spec, chunks))
    m.commit(spec, Segment(chunks[0], str(seg_file), 10))
    again = Manifest.open(spec, chunks, fingerprint(spec, chunks))
    assert [c.index for c in again.pending()] == [1] and again.segments[0].frames == 10
    other = SwapOptions(face_mask_blur=0.9)
    changed = JobSpec("m1", ("s.png",), "t.mp4", "o.mp4", str(tmp_path / "work"), options=other)
    assert len(Manifest.open(changed, chunks, fingerprint(changed, chunks)).pending()) == 2
    seg_file.unlink()  # a committed segment whose file vanished is redone
    assert len(Manifest.open(spec, chunks, fingerprint(spec, chunks)).pending()) == 2


def test_stopped_run_resumes_without_redoing_chunks(media) -> None:
    whole = run_job(_spec(media, "whole.mp4"), executor=LocalExecutor(workers=0))
    assert (whole.status, whole.frames, whole.chunks) == ("done", 36, 4)

    spec = _spec(media, "resumed.mp4")
    seen: list[int] = []
    first = RecordingExecutor()
    stopped = run_job(spec, executor=first, on_progress=lambda p: seen.append(p.chunks_done),
                      should_stop=lambda: bool(seen) and seen[-1] >= 2)
    assert stopped.status == "stopped" and not Path(spec.output).exists()
    doc = storage.read_json(storage.join(spec.work_dir, "manifest.json"))
    done_before = sorted(int(k) for k in doc["segments"])
    assert len(done_before) >= 2

    second = RecordingExecutor()
    resumed = run_job(spec, executor=second)
    assert resumed.status == "done" and resumed.chunks_reused == len(done_before)
    assert not set(second.asked) & set(done_before)
    assert resumed.frames == whole.frames == video.probe(spec.output).frames == 36
    assert not Path(spec.work_dir).exists()  # intermediates deleted once the output is published
    assert audio_seconds(Path(spec.output)) == pytest.approx(audio_seconds(media["clip"]), abs=0.05)


def test_trimmed_run_keeps_the_range_and_its_audio(media) -> None:
    options = DEBUG.model_copy(update={"trim_frame_start": 6, "trim_frame_end": 27})
    result = run_job(_spec(media, "trim.mp4", options), executor=LocalExecutor(workers=0))
    assert result.frames == 21 == video.probe(media["dir"] / "trim.mp4").frames
    assert audio_seconds(media["dir"] / "trim.mp4")[0] == pytest.approx(21 / 30, abs=0.05)


def test_image_is_one_chunk_of_one_frame(media, astronaut) -> None:
    spec = _spec(media, "still.png", target=media["source"])
    result = run_job(spec, executor=LocalExecutor(workers=0))
    assert (result.chunks, result.frames) == (1, 1)
    out = read_image(spec.output)
    assert out.shape == astronaut.shape and not np.array_equal(out, astronaut)  # the debugger drew on it


def test_frame_folders_in_and_out(media) -> None:
    folder = media["dir"] / "frames_in"
    folder.mkdir()
    for i, frame in enumerate(moving_face_frames(10, (320, 180))):
        write_image(frame, folder / f"f{i}.png")
    as_video = run_job(_spec(media, "from_frames.mp4", target=folder), executor=LocalExecutor(workers=0))
    assert as_video.frames == 10 == video.probe(media["dir"] / "from_frames.mp4").frames
    result = run_job(_spec(media, "frames_out"), executor=LocalExecutor(workers=0))
    written = sorted((media["dir"] / "frames_out").glob("*.png"))
    assert result.frames == len(written) == 36
    assert read_image(written[0]).shape == (180, 320, 3)


def test_unknown_executor_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown executor"):
        get_executor("cloud9")


def _children(pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(media) -> None:
    """kill -9 a real `swapface run` (pool worker included) after two chunks; the re-run reuses them."""
    out = media["dir"] / "killed.mp4"
    cmd = [sys.executable, "-m", "swapface.cli.main", "run", "-s", str(media["source"]), "-t", str(media["clip"]),
           "-o", str(out), "--processors", "face_debugger", "--chunk-seconds", "0.2", "--progress", "json", "--no-mark"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    killed_at = None
    workers: list[int] = []
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            event = json.loads(line)
            workers = _children(proc.pid) or workers
            if event.get("chunks_done", 0) >= 2 and event["stage"] == "processing":
                killed_at = event["chunks_done"]
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=60)
    assert killed_at is not None and not out.exists()
    deadline = time.monotonic() + 10  # the pool's worker dies with its parent, it does not run on as an orphan
    while any(psutil.pid_exists(w) and psutil.Process(w).status() != psutil.STATUS_ZOMBIE for w in workers):
        assert time.monotonic() < deadline, "a worker outlived its killed parent"
        time.sleep(0.2)

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    events = [json.loads(line) for line in again.stdout.splitlines()]
    result = events[-1]
    assert result["event"] == "result" and result["status"] == "done"
    assert result["chunks_reused"] >= killed_at
    assert events[0]["frames_done"] >= 12  # the bar starts from the reused chunks' frames
    assert result["frames"] == 36 == video.probe(out).frames
