"""Milliseconds per face for each stage of the image pipeline on a 1280×720 frame (median of repeats).

    .venv/bin/python scripts/bench_image.py [--repeats 30]

Stages: detection (single 128 pass, as used per frame in video, and the still-image pyramid), mesh
landmarks, identity embedding, swap + blend (both built-in swappers; the default also on a face tracked in video),
and the per-frame analysis cost of video mode (tracking).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import date

import cv2

from swapface.demo_media import astronaut, carphone_frame
from swapface.faces.analyser import FaceAnalyser
from swapface.faces.mediapipe import MediaPipeDetector, MeshLandmarker
from swapface.options import SwapOptions
from swapface.pipeline import Pipeline


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--source-scale", type=float, default=1.0,
                        help="enlarge the source photo (3 gives a 1536 px astronaut: every face drawn at full size)")
    args = parser.parse_args()

    frame = cv2.resize(carphone_frame(scale=1), (1280, 720), interpolation=cv2.INTER_CUBIC)
    source = astronaut()
    if args.source_scale != 1.0:
        source = cv2.resize(source, None, fx=args.source_scale, fy=args.source_scale, interpolation=cv2.INTER_CUBIC)
    single = MediaPipeDetector("short", sizes=(128,))
    pyramid = MediaPipeDetector("short", sizes=(128, 384, 768))
    mesh = MeshLandmarker()
    faces = single.detect(frame)
    assert len(faces) == 1, "the benchmark frame should hold one face"
    meshed = mesh.landmark(frame, faces)

    pipe = Pipeline([source], SwapOptions())
    plain = Pipeline([source], SwapOptions(face_swapper_model="mesh"))
    # in video a face has a track: its hair estimate is refreshed every few frames, its light and gaze smoothed
    tracked = Pipeline([source], SwapOptions(), video=True)
    followed = [face.with_(track_id=1) for face in meshed]
    video = FaceAnalyser.from_options(SwapOptions(), video=True)
    embedder = pipe.analyser.embedder

    rows = {
        "detect (128, video per-frame pass)": median_ms(lambda: single.detect(frame), args.repeats),
        "detect (still pyramid 128+384+768)": median_ms(lambda: pyramid.detect(frame, parallel=True), args.repeats),
        "mesh landmarks (468 points)": median_ms(lambda: mesh.landmark(frame, faces), args.repeats),
        "identity embedding (dlib, only for reference mode)": median_ms(lambda: embedder.embed(frame, meshed), max(5, args.repeats // 3)),
        "video analysis per frame (tracked: mesh + detect every 6th)": median_ms(lambda: video.analyse(frame), args.repeats),
        "swap + blend (mesh3d, the default)": median_ms(lambda: pipe.processors[0].process(frame, meshed, pipe.source), args.repeats),
        "swap + blend (mesh3d), a face tracked in video": median_ms(
            lambda: tracked.processors[0].process(frame, followed, tracked.source), args.repeats),
        "swap + blend (mesh, the plain 2D warp)": median_ms(lambda: plain.processors[0].process(frame, meshed, plain.source), args.repeats),
        "whole pipeline, still image (1 face)": median_ms(lambda: pipe.process_frame(frame), max(5, args.repeats // 3)),
    }
    print(f"# {platform.machine()} {platform.processor() or ''} — {date.today()} — 1280x720, 1 face, median of {args.repeats}, "
          f"source {source.shape[1]} px")
    for name, ms in rows.items():
        print(f"| {name} | {ms:.1f} ms |")


if __name__ == "__main__":
    main()
