"""2DFAN4 and the ``area`` mask as FaceFusion runs them: expected values come from FaceFusion's formulas
(``face_landmarker.detect_with_2dfan4``, ``face_helper``, ``face_masker.create_area_mask``) and its numbers
written out here, never from swapface's own helpers.

The fake 2DFAN4 reads its input at fixed places, so a wrong crop, colour order, scale or contrast step moves
its points; targets are textured photos; the detector's box differs from the mesh's.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import onnx_builders as ob
from swapface.faces.face import Face
from swapface.options import SwapOptions
from swapface.processors.base import SourceIdentity
from test_facefusion_parity import DETECTOR_POINTS, ff_affine, swapper_models

# FaceFusion's face_mask_area_set (choices.py), written out
FF_AREAS = {
    "upper-face": [0, 1, 2, 31, 32, 33, 34, 35, 14, 15, 16, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17],
    "lower-face": [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 35, 34, 33, 32, 31],
    "mouth": list(range(48, 68)),
}
MESH_BOX = np.array([150.0, 60.0, 290.0, 215.0], np.float32)  # where a mesh's extent might put the face
DETECTOR_BOX = np.array([162.0, 72.0, 272.0, 200.0], np.float32)  # the detector's own box: 2DFAN4 crops from this


def face_with_boxes(points: np.ndarray = DETECTOR_POINTS, box: np.ndarray = MESH_BOX,
                    detector_box: np.ndarray = DETECTOR_BOX) -> Face:
    return Face(box=box, score=0.9, keypoints=(points + (6.0, -4.0)).astype(np.float32),
                detector_keypoints=points.astype(np.float32), detector_box=detector_box)


def ff_crop_affine(box: np.ndarray) -> np.ndarray:
    """FaceFusion: scale = 195 / longer side, translation = (256 − (x1 + x2, y1 + y2) · scale) / 2."""
    x1, y1, x2, y2 = np.asarray(box, float)
    s = 195 / max(x2 - x1, y2 - y1)
    return np.array([[s, 0, (256 - (x1 + x2) * s) / 2], [0, s, (256 - (y1 + y2) * s) / 2]])


def ff_rotation(angle: int) -> tuple[np.ndarray, tuple[int, int]]:
    """FaceFusion's create_rotated_matrix_and_size for the 256-px crop."""
    m = cv2.getRotationMatrix2D((128, 128), angle, 1)
    size = np.abs(m[:, :2]) @ np.array([256.0, 256.0])
    m[:, 2] += (size - 256) * 0.5
    return m, (int(size[0]), int(size[1]))


def ff_angle(points: np.ndarray) -> int:
    (x1, y1), (x2, y2) = points[:2]
    theta = np.degrees(np.arctan2(y2 - y1, x2 - x1)) % 360
    angles = np.linspace(0, 360, 5)
    return int(angles[np.argmin(np.abs(angles - theta))] % 360)


def invert(m: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]


def apply(m: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.asarray(p, float) @ m[:2, :2].T + m[:, 2]


def ff_2dfan4_input(rgb: np.ndarray, box: np.ndarray, angle: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FaceFusion's 2DFAN4 input from an RGB frame (its frames are BGR), with the crop's two affines."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    a = ff_crop_affine(box)
    crop = cv2.warpAffine(bgr, a, (256, 256))
    r, size = ff_rotation(angle)
    crop = cv2.warpAffine(crop, r, size)
    lab = cv2.cvtColor(crop, cv2.COLOR_RGB2Lab)
    if np.mean(lab[:, :, 0]) < 30:
        lab[:, :, 0] = cv2.createCLAHE(clipLimit=2).apply(lab[:, :, 0])
    crop = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return crop.transpose(2, 0, 1).astype(np.float32) / 255.0, a, r


def ff_points_back(heat: np.ndarray, a: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Heatmap coordinates → frame: / 64 · 256, then back through the rotation and the crop affine."""
    return apply(invert(a), apply(invert(r), np.asarray(heat, float) / 64 * 256))


# --- the detector's box on Face ------------------------------------------------------------------------
def test_analysed_faces_keep_the_detectors_box_and_it_follows_a_tracked_face(astronaut):
    from swapface.faces.analyser import FaceAnalyser

    analyser = FaceAnalyser.from_options(SwapOptions(face_swapper_model="inswapper_128"))
    face = analyser.analyse_still(astronaut)[0]
    raw = analyser.detector.detect(astronaut, past_border=True)[0]  # the passes a still analysis runs
    assert face.detector_box is not None
    assert np.abs(face.detector_box - raw.box).max() < 1e-4
    assert np.abs(face.box - raw.box).max() > 5  # the mesh's extent is another box: 2DFAN4 must not crop from it

    video = FaceAnalyser.from_options(SwapOptions(face_swapper_model="inswapper_128"), video=True)
    first = video.analyse(astronaut)[0]
    moved = cv2.warpAffine(astronaut, np.float32([[1, 0, 12], [0, 1, 7]]), (512, 512), borderMode=cv2.BORDER_REPLICATE)
    second = video.analyse(moved)[0]  # no detection on frame 1: the mesh carries the detector's box along
    assert first.detector_box is not None and second.detector_box is not None
    assert np.abs(second.detector_box - (first.detector_box + (12, 7, 12, 7))).max() < 2.5


# --- 2DFAN4 as FaceFusion runs it ----------------------------------------------------------------------
@pytest.mark.parametrize("case", ["bright", "dark", "turned"])
def test_2dfan4_input_points_and_score_are_facefusions(tmp_path, astronaut, case):
    from swapface.faces.landmark68 import Landmarker68

    rng = np.random.default_rng(5)
    probes = np.stack([rng.integers(0, 3, 68), rng.integers(48, 208, 68), rng.integers(48, 208, 68)], 1)
    base = rng.uniform(16, 40, (68, 2))
    peaks = rng.uniform(0.4, 1.0, 68).astype(np.float32)
    ob.probing_fan68(tmp_path / "2dfan4.onnx", probes, base, 8.0, peaks)
    frame, points, face = astronaut, DETECTOR_POINTS, face_with_boxes()
    if case == "dark":
        frame = (astronaut // 10).astype(np.uint8)
    if case == "turned":  # the photo turned a quarter (counter-clockwise): FaceFusion turns the crop upright
        frame = np.ascontiguousarray(np.rot90(astronaut))

        def turn(p: np.ndarray) -> np.ndarray:
            return np.stack([p[:, 1], 511 - p[:, 0]], 1).astype(np.float32)

        points = turn(DETECTOR_POINTS)
        corners = turn(DETECTOR_BOX.reshape(2, 2))
        box = np.concatenate([corners.min(0), corners.max(0)])
        face = face_with_boxes(points, box + (-10, -10, 10, 10), box)
    angle = ff_angle(points)
    assert angle == (270 if case == "turned" else 0)
    x, a, r = ff_2dfan4_input(frame, DETECTOR_BOX if case != "turned" else face.detector_box, angle)
    if case == "dark":  # the CLAHE branch really ran: the crop is not the plain warp
        plain = cv2.warpAffine(np.ascontiguousarray(frame[:, :, ::-1]), a, (256, 256)).transpose(2, 0, 1) / 255.0
        assert np.abs(x - plain).max() > 0.05
    heat = np.stack([base[:, 0] + 8.0 * x[probes[:, 0], probes[:, 1], probes[:, 2]], base[:, 1]], 1)
    want = ff_points_back(heat, a, r)

    got, score = Landmarker68(models_dir=tmp_path).detect(frame, face, points)
    assert np.abs(got - want).max() < 0.02, case
    assert score == pytest.approx(float(np.interp(peaks.mean(), [0, 0.9], [0, 1])), abs=1e-6)


# --- the area mask ----------------------------------------------------------------------------------
def ff_soften(m: np.ndarray) -> np.ndarray:
    return (cv2.GaussianBlur(m.clip(0, 1), (0, 0), 5).clip(0.5, 1) - 0.5) * 2


def ff_box(size: int, blur: float) -> np.ndarray:
    amount = int(size * 0.5 * blur)
    edge = max(amount // 2, 1)
    m = np.ones((size, size), np.float32)
    m[:edge], m[-edge:], m[:, :edge], m[:, -edge:] = 0, 0, 0, 0
    return cv2.GaussianBlur(m, (0, 0), amount * 0.25) if amount > 0 else m


def bilinear(m: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``m`` sampled at points q (x, y) by bilinear interpolation (as the paste-back warp samples the mask)."""
    x0, y0 = np.floor(q[:, 0]).astype(int), np.floor(q[:, 1]).astype(int)
    fx, fy = q[:, 0] - x0, q[:, 1] - y0
    x1, y1 = np.minimum(x0 + 1, m.shape[1] - 1), np.minimum(y0 + 1, m.shape[0] - 1)
    return (m[y0, x0] * (1 - fx) * (1 - fy) + m[y0, x1] * fx * (1 - fy) + m[y1, x0] * (1 - fx) * fy
            + m[y1, x1] * fx * fy)


@pytest.mark.parametrize("areas", [("upper-face",), ("lower-face", "mouth"), ("mouth",)])
def test_area_mask_is_the_hull_of_2dfan4s_landmarks_in_the_crop(tmp_path, astronaut, areas):
    from swapface.processors.onnx_swapper import OnnxSwapper

    d = swapper_models(tmp_path, "inswapper_128.onnx", 128, False, None)
    rng = np.random.default_rng(11)
    heat = rng.uniform(14, 50, (68, 2))
    # an unreliable fit (score 0.33): alignment stays on the detector's points, yet the area mask uses the
    # 68 points, as FaceFusion's '68' landmarks are 2DFAN4's whatever its score
    ob.fan68(d / "2dfan4.onnx", heat, 0.3)
    face = face_with_boxes()
    frame_68 = ff_points_back(heat, ff_crop_affine(DETECTOR_BOX), ff_rotation(0)[0])
    affine = ff_affine(DETECTOR_POINTS, "arcface_128", 128)
    crop_68 = apply(affine, frame_68)
    index = [i for a in areas for i in FF_AREAS[a]]
    hull = np.zeros((128, 128), np.float32)
    cv2.fillConvexPoly(hull, cv2.convexHull(crop_68[index].astype(np.int32)), 1.0)
    want_mask = np.minimum(ff_box(128, 0.3), ff_soften(hull))

    swapper = OnnxSwapper(SwapOptions(face_swapper_model="inswapper_128", face_landmarker_model="2dfan4",
                                      face_mask_types=("box", "area"), face_mask_areas=areas), models_dir=d)
    out = swapper.process(astronaut, [face], SourceIdentity((astronaut,), (face,), np.zeros(1, np.float32)))

    ys, xs = np.mgrid[0:512, 0:512]
    p = np.stack([xs.ravel(), ys.ravel()], 1)
    q = apply(affine, p)
    inside = ((q >= 2) & (q <= 125)).all(1)
    p, q = p[inside], q[inside]
    m = bilinear(want_mask, q)
    pattern = np.clip(np.stack([255 * (3 * q[:, 0] / 128 - 1), 255 * (3 * q[:, 1] / 128 - 1), np.full(len(q), 127.5)], 1),
                      0, 255)
    want = astronaut[p[:, 1], p[:, 0]] * (1 - m[:, None]) + pattern * m[:, None]
    got = out[p[:, 1], p[:, 0]].astype(float)
    shown, hidden, edge = m > 0.99, m == 0, (m > 0.2) & (m < 0.8)
    assert shown.sum() > 150 and hidden.sum() > 150 and edge.sum() > 50, areas
    assert np.abs(got[hidden] - astronaut[p[hidden, 1], p[hidden, 0]]).max() <= 1, areas  # untouched outside the hull
    assert np.abs(got[shown] - want[shown]).max() <= 3, areas
    assert np.percentile(np.abs(got[edge] - want[edge]), 95) <= 6, areas  # the soft edge (σ 5, clipped, stretched)


def test_area_mask_without_a_landmarker_uses_the_built_in_68_points(tmp_path, astronaut):
    from swapface.faces.analyser import FaceAnalyser
    from swapface.processors.onnx_swapper import OnnxSwapper

    d = swapper_models(tmp_path, "inswapper_128.onnx", 128, False, None)
    face = FaceAnalyser.from_options(SwapOptions(face_swapper_model="inswapper_128")).analyse_still(astronaut)[0]
    swapper = OnnxSwapper(SwapOptions(face_swapper_model="inswapper_128", face_mask_types=("area",),
                                      face_mask_areas=("mouth",)), models_dir=d)
    out = swapper.process(astronaut, [face], SourceIdentity((astronaut,), (face,), np.zeros(1, np.float32)))
    eyes, mouth = face.detector_keypoints[:2], face.detector_keypoints[3:].mean(0)
    changed = np.abs(out.astype(int) - astronaut).sum(2) > 6
    assert changed[int(mouth[1]) - 2:int(mouth[1]) + 3, int(mouth[0]) - 2:int(mouth[0]) + 3].all()
    for x, y in eyes.astype(int):
        assert not changed[y - 3:y + 4, x - 3:x + 4].any()


def test_area_mask_options_take_effect_or_are_refused():
    from pydantic import ValidationError

    from swapface.validation import OptionError, check_options, check_swapper_options

    with pytest.raises(ValidationError, match="face mask area"):
        SwapOptions(face_mask_types=("area",), face_mask_areas=("nose",))
    with pytest.raises(OptionError, match="area"):
        check_options(SwapOptions(face_swapper_model="inswapper_128", face_mask_types=("area",), face_mask_areas=()))
    for model in ("mesh", "mesh3d"):  # the built-in swappers have no 68-point area mask
        with pytest.raises(OptionError, match="area"):
            check_swapper_options(SwapOptions(face_swapper_model=model, face_mask_types=("box", "area")))


# --- swapface models check 2dfan4 ----------------------------------------------------------------------
def test_models_check_compares_2dfan4_with_the_built_in_68_points(tmp_path):
    from swapface.faces.dlib_landmarks import Dlib68Landmarker
    from swapface.models.selfcheck import CHECKS, check_landmarker, load_media

    assert CHECKS["face_landmarker"] is check_landmarker  # `swapface models check 2dfan4` runs it
    media = load_media()  # the astronaut as the built-in analysis finds her
    assert media.face.detector_box is not None
    reference = Dlib68Landmarker().points(media.astronaut, media.face.detector_box)
    eye = float(np.linalg.norm(reference[36:42].mean(0) - reference[42:48].mean(0)))
    a = ff_crop_affine(media.face.detector_box)
    heat = apply(a, reference) / 256 * 64  # where a 2DFAN4 agreeing with dlib puts them, in heatmap coordinates
    rng = np.random.default_rng(2)
    for shift, peak, ok in ((0.03, 0.9, True), (0.2, 0.9, False), (0.03, 0.3, False)):
        # Gaussian noise whose mean 2D displacement is about 1.25 · shift eye distances in the frame
        noise = rng.normal(0, shift * eye * a[0, 0] / 4, (68, 2))
        ob.fan68(tmp_path / "2dfan4.onnx", heat + noise, peak)
        result = check_landmarker("2dfan4", media, tmp_path)
        assert result.ok is ok, (shift, peak, result.detail)
    assert "eye distances from the built-in dlib predictor's" in result.detail


def test_cli_offers_face_mask_areas_and_refuses_what_cannot_apply(tmp_path, astronaut):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from swapface.media.image import write_image

    exe = str(Path(sys.executable).with_name("swapface"))
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "COLUMNS": "100", "PYTHONPATH": str(src)}
    photo = tmp_path / "a.png"
    write_image(astronaut, photo)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, env=env)

    assert "--face-mask-areas" in run("run", "--help").stdout
    common = ["run", "-s", str(photo), "-t", str(photo), "-o", str(tmp_path / "o.png")]
    for extra in (["--face-mask-types", "area"],  # the built-in mesh swapper has no area mask
                  ["--face-swapper-model", "inswapper_128", "--face-mask-types", "area", "--face-mask-areas", "nose"]):
        proc = run(*common, *extra)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "area" in lines[0], proc.stderr
    assert not (tmp_path / "o.png").exists()
