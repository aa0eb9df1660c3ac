"""``swapface models check``: run installed models on built-in pictures and judge whether their output is plausible.

A file with the wrong contract (another model under this name, a broken export) runs without error but
gives nonsense; these checks catch that on a user's real files: ArcFace must call the astronaut and her
mirror image one person and the carphone driver another; a swapper swapping a face onto itself must keep
the identity; an enhancer at low blend must stay close to its input; a detector must find the astronaut
where the built-in detector does; a 68-point landmarker must put her landmarks where the built-in dlib
predictor does; an upscaler must look like its input when shrunk back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from swapface.errors import InputError, ModelError
from swapface.faces.face import Face, identity_distance
from swapface.models.catalogue import CATALOGUE, get_entry
from swapface.models.store import default_models_dir, missing_files, model_path
from swapface.options import SwapOptions

RECOGNISER = "arcface_w600k_r50"


@dataclass(frozen=True)
class CheckResult:
    """One model's verdict: plausible or not, and the figures behind it."""

    name: str
    ok: bool
    detail: str


@dataclass
class Media:
    """The built-in pictures and the built-in analysis of their faces (computed once per run)."""

    astronaut: np.ndarray
    mirror: np.ndarray
    other: np.ndarray
    face: Face
    mirror_face: Face
    other_face: Face


def _main_face(analyser: object, image: np.ndarray) -> Face:
    faces = analyser.analyse_still(image)  # type: ignore[attr-defined]
    if not faces:
        raise ModelError("the built-in detector found no face in the check pictures; reinstall swapface")
    return faces[0]


def load_media() -> Media:
    """The astronaut, her mirror image and a carphone frame, with faces found by the built-in detector."""
    from swapface.demo_media import astronaut, carphone_frame
    from swapface.faces.analyser import FaceAnalyser

    analyser = FaceAnalyser.from_options(SwapOptions(face_swapper_model="inswapper_128"))
    a = astronaut()
    mirror = np.ascontiguousarray(a[:, ::-1])
    other = carphone_frame()
    return Media(a, mirror, other, _main_face(analyser, a), _main_face(analyser, mirror), _main_face(analyser, other))


def _points(face: Face) -> np.ndarray:
    return face.detector_keypoints if face.detector_keypoints is not None else face.keypoints


def _embed(media_image: np.ndarray, face: Face, models_dir: Path) -> np.ndarray:
    from swapface.faces.arcface import ArcFaceEmbedder

    raw = ArcFaceEmbedder(RECOGNISER, None, models_dir).raw_embeddings(media_image, [_points(face)])[0]
    return raw / max(float(np.linalg.norm(raw)), 1e-12)


def check_recognizer(name: str, media: Media, models_dir: Path) -> CheckResult:
    from swapface.faces.arcface import ARCFACE_MATCH_DISTANCE, ArcFaceEmbedder

    emb = ArcFaceEmbedder(name, None, models_dir)

    def unit(image: np.ndarray, face: Face) -> np.ndarray:
        raw = emb.raw_embeddings(image, [_points(face)])[0]
        return raw / max(float(np.linalg.norm(raw)), 1e-12)

    a = unit(media.astronaut, media.face)
    same = identity_distance(a, unit(media.mirror, media.mirror_face))
    other = identity_distance(a, unit(media.other, media.other_face))
    ok = bool(same < ARCFACE_MATCH_DISTANCE < other)
    return CheckResult(name, ok, f"astronaut vs her mirror image {same:.2f}, vs the carphone driver {other:.2f} "
                                 f"(same person below {ARCFACE_MATCH_DISTANCE:.2f})")


def check_swapper(name: str, media: Media, models_dir: Path) -> CheckResult:
    from swapface.faces.arcface import ARCFACE_MATCH_DISTANCE
    from swapface.processors.base import SourceIdentity
    from swapface.processors.onnx_swapper import OnnxSwapper

    if missing_files([RECOGNISER], models_dir):
        return CheckResult(name, True, f"skipped: judging identity needs {RECOGNISER}")
    swapper = OnnxSwapper(SwapOptions(face_swapper_model=name), models_dir)
    source = SourceIdentity((media.astronaut,), (media.face,), np.zeros(1, np.float32))
    out = swapper.process(media.astronaut, [media.face], source)
    kept = identity_distance(_embed(out, media.face, models_dir), _embed(media.astronaut, media.face, models_dir))
    onto_other = swapper.process(media.other, [media.other_face], source)
    moved = identity_distance(_embed(onto_other, media.other_face, models_dir), _embed(media.astronaut, media.face, models_dir))
    before = identity_distance(_embed(media.other, media.other_face, models_dir), _embed(media.astronaut, media.face, models_dir))
    ok = bool(kept < ARCFACE_MATCH_DISTANCE and moved < before)
    return CheckResult(name, ok, f"self-swap keeps the identity at {kept:.2f} (below {ARCFACE_MATCH_DISTANCE:.2f}); "
                                 f"swapping onto the driver brings him from {before:.2f} to {moved:.2f} of the astronaut")


def _face_box(face: Face, shape: tuple[int, ...]) -> tuple[slice, slice]:
    x0, y0, x1, y1 = np.clip(face.box, 0, [shape[1], shape[0], shape[1], shape[0]]).astype(int)
    return slice(y0, y1), slice(x0, x1)


def check_face_enhancer(name: str, media: Media, models_dir: Path) -> CheckResult:
    from swapface.processors.face_enhancer import FaceEnhancer

    box = _face_box(media.face, media.astronaut.shape)
    low = FaceEnhancer(SwapOptions(face_enhancer_model=name, face_enhancer_blend=20), models_dir)
    diff = float(np.abs(low.process(media.astronaut, [media.face], None)[box].astype(float) - media.astronaut[box]).mean())
    full = FaceEnhancer(SwapOptions(face_enhancer_model=name, face_enhancer_blend=100), models_dir)
    out = full.process(media.astronaut, [media.face], None)[box].astype(float)
    corr = float(np.corrcoef(out.ravel(), media.astronaut[box].astype(float).ravel())[0, 1])
    ok = bool(diff < 10.0 and corr > 0.8)
    return CheckResult(name, ok, f"at 20 % blend the face moves {diff:.1f} levels on average (below 10); "
                                 f"fully enhanced it correlates {corr:.2f} with the input (above 0.8)")


def check_frame_enhancer(name: str, media: Media, models_dir: Path) -> CheckResult:
    from swapface.processors.frame_enhancer import FrameEnhancer

    enh = FrameEnhancer(SwapOptions(frame_enhancer_model=name, frame_enhancer_blend=100), models_dir)
    small = np.ascontiguousarray(media.astronaut[40:200, 140:300])
    up = enh.process(small, [], None)
    scale = enh.model.contract.upscale
    if up.shape[:2] != (small.shape[0] * scale, small.shape[1] * scale):
        return CheckResult(name, False, f"output {up.shape[1]}×{up.shape[0]} is not {scale}× the input")
    back = cv2.resize(up, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
    mse = float(((back.astype(float) - small) ** 2).mean())
    psnr = 10 * np.log10(255.0**2 / max(mse, 1e-9))
    return CheckResult(name, bool(psnr > 22.0), f"shrunk back it matches the input at {psnr:.1f} dB PSNR (above 22)")


def check_detector(name: str, media: Media, models_dir: Path) -> CheckResult:
    from swapface.faces.onnx_detectors import OnnxDetector
    from swapface.faces.tracker import box_iou

    found = OnnxDetector(name, SwapOptions(face_detector_score=0.5), models_dir).detect(media.astronaut)
    if not found:
        return CheckResult(name, False, "found no face in the astronaut photo")
    best = max(found, key=lambda f: box_iou(f.box, media.face.box))
    iou = box_iou(best.box, media.face.box)
    eye = float(np.linalg.norm(best.keypoints[0] - _points(media.face)[0])) / max(media.face.width, 1.0)
    return CheckResult(name, bool(iou > 0.4 and eye < 0.15),
                       f"face box overlaps the built-in detector's by IoU {iou:.2f} (above 0.4); left eye "
                       f"{eye:.2f} face widths away (below 0.15)")


LANDMARK_TOLERANCE = 0.10  # mean distance to dlib's 68 points, in eye distances (the two models' published errors differ by less)


def check_landmarker(name: str, media: Media, models_dir: Path) -> CheckResult:
    from swapface.faces.dlib_landmarks import Dlib68Landmarker, interocular_68
    from swapface.faces.landmark68 import MIN_SCORE, Landmarker68, detector_box

    points, score = Landmarker68(name, None, models_dir).detect(media.astronaut, media.face, _points(media.face))
    reference = Dlib68Landmarker().points(media.astronaut, detector_box(media.face))
    error = float(np.linalg.norm(points - reference, axis=1).mean()) / max(interocular_68(reference), 1.0)
    ok = bool(score > MIN_SCORE and error < LANDMARK_TOLERANCE)
    return CheckResult(name, ok, f"the astronaut's 68 points lie {error:.3f} eye distances from the built-in dlib "
                                 f"predictor's on average (below {LANDMARK_TOLERANCE:.2f}); score {score:.2f} (above {MIN_SCORE})")


def _aligned(media: Media, size: int) -> np.ndarray:
    from swapface.models.templates import warp_face

    return warp_face(media.astronaut, _points(media.face), "arcface_128", size)[0][None]


def check_occluder(name: str, media: Media, models_dir: Path) -> CheckResult:
    from swapface.processors.masks import OcclusionMasker

    mask = OcclusionMasker(SwapOptions(face_occluder_model=name), models_dir).masks(_aligned(media, 256))[0]
    centre = float(mask[96:160, 96:160].mean())
    return CheckResult(name, bool(centre > 0.5), f"the unoccluded face centre is {centre:.0%} visible (above 50 %)")


def check_parser(name: str, media: Media, models_dir: Path) -> CheckResult:
    from swapface.processors.masks import RegionMasker

    mask = RegionMasker(("skin", "nose"), SwapOptions(face_parser_model=name), models_dir).masks(_aligned(media, 512))[0]
    centre = float(mask[192:320, 192:320].mean())
    return CheckResult(name, bool(centre > 0.3), f"skin and nose cover {centre:.0%} of the face centre (above 30 %)")


def check_converter(name: str, media: Media, models_dir: Path) -> CheckResult:
    from swapface.faces.arcface import ArcFaceEmbedder
    from swapface.models.runtime import LazyModel

    if missing_files([RECOGNISER], models_dir):
        return CheckResult(name, True, f"skipped: its input comes from {RECOGNISER}")
    emb = ArcFaceEmbedder(RECOGNISER, None, models_dir)
    raws = [emb.raw_embeddings(img, [_points(f)])[0] for img, f in ((media.astronaut, media.face), (media.other, media.other_face))]
    session = LazyModel(name, None, models_dir, "embedding_converter").session
    outs = [session.run(None, {session.get_inputs()[0].name: r.reshape(1, -1).astype(np.float32)})[0].ravel() for r in raws]
    cos = float(outs[0] @ outs[1] / max(np.linalg.norm(outs[0]) * np.linalg.norm(outs[1]), 1e-12))
    ok = bool(all(np.isfinite(o).all() and o.shape == (512,) for o in outs) and cos < 0.95)
    return CheckResult(name, ok, f"two people's converted identities have cosine {cos:.2f} (below 0.95)")


CHECKS: dict[str, Callable[[str, Media, Path], CheckResult]] = {
    "face_recognizer": check_recognizer,
    "face_swapper": check_swapper,
    "face_enhancer": check_face_enhancer,
    "frame_enhancer": check_frame_enhancer,
    "face_detector": check_detector,
    "face_landmarker": check_landmarker,
    "face_occluder": check_occluder,
    "face_parser": check_parser,
    "embedding_converter": check_converter,
}


def run_checks(names: list[str], models_dir: Path | None = None) -> list[CheckResult]:
    """Check the named models (default: every downloaded or imported model swapface can judge)."""
    folder = models_dir or default_models_dir()
    if names:
        for n in names:
            entry = get_entry(n)
            if entry.builtin or entry.task not in CHECKS:
                raise InputError(f"model {n!r} has no self-check (built in, or of a task the check does not judge)")
        missing = [n for n in names if not model_path(n, folder).is_file()]
        if missing:
            raise ModelError(f"not in the models folder: {', '.join(missing)}; run `swapface models download {' '.join(missing)}`")
    else:
        names = [e.name for e in CATALOGUE.values()
                 if not e.builtin and e.task in CHECKS and model_path(e.name, folder).is_file()]
    if not names:
        return []
    media = load_media()
    results = []
    for n in names:
        try:
            results.append(CHECKS[get_entry(n).task](n, media, folder))
        except ModelError as exc:
            results.append(CheckResult(n, False, str(exc)))
    return results
