"""Executor ``ray`` on a real local Ray cluster (2 CPUs): same pixels as the local executor, a killed worker's
chunk rerun elsewhere, resume submitting only missing chunks, swapface errors not retried, the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from media_fixtures import carphone_frames, carphone_path, write_clip
from swapface import storage
from swapface.cli.main import main
from swapface.errors import InputError, JobError
from swapface.executors import get_executor
from swapface.executors.local import LocalExecutor
from swapface.jobs.runner import run_job
from swapface.jobs.spec import Chunk, JobSpec
from swapface.media.image import read_image, write_image
from swapface.options import SwapOptions

ray = pytest.importorskip("ray")
from swapface.executors.ray import RayExecutor, _chunk_task, _Refused  # noqa: E402 - after the skip

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# Colour transfer off in the equality tests keeps them about the executors; the last test checks that colour
# smoothing, which is per clip, does not leak from one chunk into the next on the same worker.
SHORT = SwapOptions(chunk_seconds=0.3, mark_output=False, color_transfer="off")  # 40 frames → 5 chunks of ≤ 9
LONG = SwapOptions(chunk_seconds=1.0, mark_output=False, color_transfer="off")  # carphone's 120 frames → 4 chunks


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster for the whole file: 2 CPUs, no dashboard, and one GPU *resource* (a scheduling
    label only, nothing runs on CUDA) so GPU tasks can be scheduled on this CPU-only machine."""
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def media(tmp_path_factory, astronaut) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ray")
    write_image(astronaut, d / "source.png")
    blank = np.full((200, 200, 3), 128, np.uint8)
    write_image(blank, d / "no_face.png")
    return {"dir": d, "source": d / "source.png", "no_face": d / "no_face.png",
            "short": write_clip(d / "short.mp4", carphone_frames(40), fps=30), "long": carphone_path()}


def _spec(media: dict[str, Path], name: str, target: str = "short", options: SwapOptions = SHORT,
          source: str = "source") -> JobSpec:
    d = media["dir"]
    return JobSpec(job_id=f"ray-{name}", sources=(str(media[source]),), target=str(media[target]),
                   output=str(d / name), work_dir=str(d / f"{name}.work"), options=options)


def _frames(folder: str | Path) -> list[np.ndarray]:
    return [read_image(p) for p in sorted(Path(folder).glob("*.png"))]


def _running_chunk_tasks() -> list[tuple[int, str]]:
    """(pid, title) of this cluster's workers running a chunk task now: they are titled "ray::swapface-chunk-<i>"."""
    found = []
    for proc in psutil.Process().children(recursive=True):  # the local Ray's processes are our children
        try:
            title = proc.cmdline()
        except psutil.Error:
            continue
        if title and title[0].startswith("ray::swapface-chunk-"):
            found.append((proc.pid, title[0]))
    return found


def _local_reference(media: dict[str, Path], name: str, target: str, options: SwapOptions) -> list[np.ndarray]:
    spec = _spec(media, name, target, options)
    if not Path(spec.output).exists():
        run_job(spec, executor=LocalExecutor(workers=0))
    return _frames(spec.output)


class RecordingRay(RayExecutor):
    """The real Ray executor, remembering which chunks it was asked to run."""

    def __init__(self, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self.asked: list[int] = []

    def run(self, spec, chunks, on_segment=None, *, on_frames=None):  # noqa: ANN001, ANN201
        self.asked += [c.index for c in chunks]
        return super().run(spec, chunks, on_segment, on_frames=on_frames)


def test_same_frames_and_pixels_as_the_local_executor(cluster, media) -> None:
    reference = _local_reference(media, "local_short", "short", SHORT)
    progress = []
    executor = RayExecutor()
    result = run_job(_spec(media, "ray_short"), executor=executor, on_progress=progress.append)
    executor.close()
    assert ray.is_initialized()  # a Ray the caller started is left running
    assert (result.status, result.chunks, result.frames) == ("done", 5, 40)
    frames = _frames(media["dir"] / "ray_short")
    assert len(frames) == len(reference) == 40
    for i, (ours, theirs) in enumerate(zip(frames, reference)):
        assert np.array_equal(ours, theirs), f"frame {i} differs from the local executor's"
    assert progress[-1].stage == "done" and progress[-1].frames_done == 40
    done = [p.frames_done for p in progress if p.stage == "processing"]
    assert done == sorted(done)


def test_worker_killed_mid_chunk_reruns_it_and_the_job_completes(cluster, media) -> None:
    reference = _local_reference(media, "local_long", "long", LONG)
    killed: list[tuple[int, str]] = []
    finished = threading.Event()

    def kill_first_chunk_worker() -> None:
        while not finished.is_set() and not killed:
            for pid, title in _running_chunk_tasks():
                os.kill(pid, signal.SIGKILL)
                killed.append((pid, title))
                break
            time.sleep(0.01)

    killer = threading.Thread(target=kill_first_chunk_worker, daemon=True)
    killer.start()
    try:
        result = run_job(_spec(media, "ray_killed", "long", LONG), executor=RayExecutor())
    finally:
        finished.set()
        killer.join()
    assert killed, "no chunk task was seen running"
    assert not psutil.pid_exists(killed[0][0]) or psutil.Process(killed[0][0]).status() == psutil.STATUS_ZOMBIE
    assert (result.status, result.chunks, result.frames) == ("done", 4, 120)
    frames = _frames(media["dir"] / "ray_killed")
    assert len(frames) == 120
    assert all(np.array_equal(a, b) for a, b in zip(frames, reference))


def _chunk_workers(stop: threading.Event, seen: dict[int, set[str]]) -> None:
    """Record which worker process (pid) ran which chunk task until ``stop``."""
    while not stop.is_set():
        for pid, title in _running_chunk_tasks():
            seen.setdefault(pid, set()).add(title)
        time.sleep(0.005)


def test_gpu_tasks_keep_their_worker_so_models_load_once_per_worker(cluster, media) -> None:
    """GPU chunk tasks reuse worker processes (single-use workers would load the models for every chunk)."""
    seen: dict[int, set[str]] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_chunk_workers, args=(stop, seen), daemon=True)
    watcher.start()
    try:
        result = run_job(_spec(media, "ray_gpu"), executor=RayExecutor(num_gpus=1))
    finally:
        stop.set()
        watcher.join()
    assert (result.status, result.frames) == ("done", 40)
    chunks_seen = set().union(*seen.values())
    assert len(chunks_seen) >= 3 and any(len(titles) > 1 for titles in seen.values()), seen


def test_rerun_of_a_half_done_job_submits_only_missing_chunks(cluster, media) -> None:
    spec = _spec(media, "ray_resumed")
    seen: list[int] = []
    first = RecordingRay()
    stopped = run_job(spec, executor=first, on_progress=lambda p: seen.append(p.chunks_done),
                      should_stop=lambda: bool(seen) and seen[-1] >= 2)
    assert stopped.status == "stopped" and first.asked == [0, 1, 2, 3, 4]
    doc = storage.read_json(storage.join(spec.work_dir, "manifest.json"))
    done_before = sorted(int(k) for k in doc["segments"])
    assert 2 <= len(done_before) <= 3  # stops at the first progress update after the second commit

    second = RecordingRay()
    resumed = run_job(spec, executor=second)
    assert second.asked == [i for i in range(5) if i not in done_before]
    assert (resumed.status, resumed.chunks_reused, resumed.frames) == ("done", len(done_before), 40)
    assert len(_frames(spec.output)) == 40


def test_swapface_error_is_returned_not_retried_and_reraised(cluster, media) -> None:
    spec = _spec(media, "ray_no_face", source="no_face")
    refused = _chunk_task._function(spec, Chunk(0, 0, 9), None)  # the task body, as a worker runs it
    assert isinstance(refused, _Refused) and isinstance(refused.error, InputError)
    with pytest.raises(InputError, match="no face found in source image"):
        RayExecutor().run(spec, [Chunk(0, 0, 9), Chunk(1, 9, 18)])


def test_chunk_failing_on_every_try_is_a_chunk_failed_job_error(cluster, media) -> None:
    spec = JobSpec(job_id="ray-broken", sources=(str(media["source"]),), target="nosuchprotocol://bucket/clip.mp4",
                   output=str(media["dir"] / "broken.mp4"), work_dir=str(media["dir"] / "broken.work"), options=SHORT)
    with pytest.raises(JobError) as info:
        RayExecutor(max_retries=1).run(spec, [Chunk(0, 0, 9)])
    assert info.value.code == "chunk_failed"
    assert str(info.value) == "chunk 0 failed on the Ray cluster after 1 retries (ValueError)"  # no URI or path


def test_settings_give_the_resources(monkeypatch) -> None:
    monkeypatch.setenv("SWAPFACE_RAY_NUM_GPUS", "1")
    monkeypatch.setenv("SWAPFACE_RAY_NUM_CPUS", "4")
    monkeypatch.setenv("SWAPFACE_RAY_ADDRESS", "ray-head:6379")
    executor = RayExecutor()
    assert (executor.address, executor.num_cpus, executor.num_gpus) == ("ray-head:6379", 4.0, 1.0)
    assert RayExecutor(num_gpus=0.5, address="auto").num_gpus == 0.5
    monkeypatch.delenv("SWAPFACE_RAY_NUM_GPUS")
    assert RayExecutor().num_gpus == 0 and RayExecutor().num_cpus == 4


def test_cli_in_process_uses_the_running_ray(cluster, media) -> None:
    out = media["dir"] / "cli_inproc.mp4"
    code = main(["run", "-s", str(media["source"]), "-t", str(media["short"]), "-o", str(out), "--executor", "ray",
                 "--chunk-seconds", "0.3", "--no-mark", "--quiet"])
    assert code == 0 and ray.is_initialized()
    from swapface.media import video

    assert video.probe(out).frames == 40


def test_cli_subprocess_joins_the_cluster_by_address(cluster, media) -> None:
    out = media["dir"] / "cli_sub.mp4"
    cmd = [sys.executable, "-m", "swapface.cli.main", "run", "-s", str(media["source"]), "-t", str(media["short"]),
           "-o", str(out), "--executor", "ray", "--chunk-seconds", "0.3", "--no-mark", "--progress", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "SWAPFACE_RAY_ADDRESS": cluster})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert (result["status"], result["frames"], result["chunks"]) == ("done", 40, 5)


def _closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_unreachable_address_is_one_clear_line(media) -> None:
    out = media["dir"] / "unreachable.mp4"
    cmd = [sys.executable, "-m", "swapface.cli.main", "run", "-s", str(media["source"]), "-t", str(media["short"]),
           "-o", str(out), "--executor", "ray", "--no-mark"]
    env = {**os.environ, "SWAPFACE_RAY_ADDRESS": f"127.0.0.1:{_closed_port()}"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1 and not out.exists()
    assert "error: cannot reach the Ray cluster at 127.0.0.1:" in done.stderr and "Traceback" not in done.stderr


def test_malformed_address_is_an_input_error(monkeypatch) -> None:
    monkeypatch.setenv("SWAPFACE_RAY_ADDRESS", "head-without-port")
    with pytest.raises(InputError, match="not host:port") as info:
        get_executor("ray")
    assert info.value.code == "bad_ray_address"


def test_colour_transfer_pixels_do_not_depend_on_worker_history(cluster, media) -> None:
    options = SHORT.model_copy(update={"color_transfer": "on"})
    reference = _local_reference(media, "local_colour", "short", options)
    run_job(_spec(media, "ray_colour", options=options), executor=RayExecutor())
    frames = _frames(media["dir"] / "ray_colour")
    assert len(frames) == len(reference)
    assert all(np.array_equal(a, b) for a, b in zip(frames, reference))
