"""The neural path computes what FaceFusion computes: expected values come from FaceFusion's formulas and the
template numbers written out here, never from swapface's own warp or tensor helpers.

Fakes treat colour channels differently (so channel order matters), targets are textured photos (so the
template matters), and face points are not template-shaped (so the alignment fit matters).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

import onnx_builders as ob
from swapface.faces.face import Face
from swapface.options import SwapOptions
from swapface.processors.base import SourceIdentity

# FaceFusion's warp templates (face_helper.py), written out: left eye, right eye, nose, left/right mouth corner
FF_TEMPLATES = {
    "arcface_112_v1": [[0.35473214, 0.45658929], [0.64526786, 0.45658929], [0.50000000, 0.61154464],
                       [0.37913393, 0.77687500], [0.62086607, 0.77687500]],
    "arcface_112_v2": [[0.34191607, 0.46157411], [0.65653393, 0.45983393], [0.50022500, 0.64050536],
                       [0.37097589, 0.82469196], [0.63151696, 0.82325089]],
    "arcface_128": [[0.36167656, 0.40387734], [0.63696719, 0.40235469], [0.50019687, 0.56044219],
                    [0.38710391, 0.72160547], [0.61507734, 0.72034453]],
    "ffhq_512": [[0.37691676, 0.46864664], [0.62285697, 0.46912813], [0.50123859, 0.61331904],
                 [0.39308822, 0.72541100], [0.61150205, 0.72490465]],
    "mtcnn_512": [[0.36562865, 0.46733799], [0.63305391, 0.46585885], [0.50019127, 0.61942959],
                  [0.39032951, 0.77598822], [0.61178945, 0.77476328]],
}

# five points on the astronaut's face as a detector might give them: not template-shaped (the nose is off)
DETECTOR_POINTS = np.array([[190.0, 112.0], [246.0, 104.0], [229.0, 141.0], [199.0, 172.0], [241.0, 167.0]], np.float32)


def ls_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 4-DoF similarity over all points: X = a·x − b·y + tx, Y = b·x + a·y + ty."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(np.asarray(src, float), np.asarray(dst, float)):
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
        rhs += [u, v]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def ff_affine(points: np.ndarray, template: str, size: int) -> np.ndarray:
    return ls_similarity(points, np.array(FF_TEMPLATES[template]) * size)


def interior(affine: np.ndarray, size: int, shape: tuple[int, int], lo: float = 0.36, hi: float = 0.64):
    """Frame pixels whose crop coordinates lie in [lo·S, hi·S]², with those crop coordinates."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    p = np.stack([xs.ravel(), ys.ravel()], 1).astype(float)
    q = p @ affine[:, :2].T + affine[:, 2]
    keep = ((q >= lo * size) & (q <= hi * size)).all(1)
    return p[keep].astype(int), q[keep]


def pattern_at(q: np.ndarray, size: int) -> np.ndarray:
    """The pattern fakes' RGB pixel at crop coordinates q (R = 255·(3u/S − 1), G = 255·(3v/S − 1))."""
    return np.stack([255 * (3 * q[:, 0] / size - 1), 255 * (3 * q[:, 1] / size - 1)], 1)


def detector_face(points: np.ndarray = DETECTOR_POINTS, mesh_shift: tuple[float, float] = (7.0, -5.0)) -> Face:
    """A face whose mesh keypoints differ from the detector's: neural models must align on the detector's."""
    box = np.array([*points.min(0) - 40, *points.max(0) + 40], np.float32)
    return Face(box=box, score=0.9, keypoints=(points + mesh_shift).astype(np.float32),
                detector_keypoints=points.astype(np.float32))


SWAPPERS = [  # name, file, template, size, output de-normalised (y·0.5 + 0.5), converter file
    ("inswapper_128", "inswapper_128.onnx", "arcface_128", 128, False, None),
    ("hyperswap_1a_256", "hyperswap_1a_256.onnx", "arcface_128", 256, True, None),
    ("ghost_256", "ghost_1_256.onnx", "arcface_112_v1", 256, True, "crossface_ghost.onnx"),
    ("hififace_256", "hififace_unofficial_256.onnx", "mtcnn_512", 256, True, "crossface_hififace.onnx"),
    ("simswap_256", "simswap_256.onnx", "arcface_112_v1", 256, False, "crossface_simswap.onnx"),
    ("simswap_unofficial_512", "simswap_unofficial_512.onnx", "arcface_112_v1", 512, False, "crossface_simswap.onnx"),
]


def swapper_models(d: Path, file: str, size: int, tanh: bool, converter: str | None) -> Path:
    ob.pattern_swapper(d / file, size, tanh_range=tanh)
    ob.recognizer(d / "arcface_w600k_r50.onnx")
    if converter:
        ob.converter(d / converter)
    return d


@pytest.mark.parametrize("name,file,template,size,tanh,converter", SWAPPERS)
def test_swapper_pastes_its_crop_where_facefusions_alignment_puts_it(tmp_path, astronaut, name, file, template, size,
                                                                     tanh, converter):
    from swapface.processors.onnx_swapper import OnnxSwapper

    d = swapper_models(tmp_path, file, size, tanh, converter)
    swapper = OnnxSwapper(SwapOptions(face_swapper_model=name, face_mask_blur=0.3), models_dir=d)
    face = detector_face()
    src = SourceIdentity(images=(astronaut,), faces=(face,), embedding=np.zeros(128, np.float32))
    out = swapper.process(astronaut, [face], src)
    p, q = interior(ff_affine(DETECTOR_POINTS, template, size), size, astronaut.shape[:2])
    assert len(p) > 200
    got = out[p[:, 1], p[:, 0], :2].astype(float)
    assert np.abs(got - pattern_at(q, size)).max() <= 2.0, name


def test_pixel_boost_384_keeps_the_alignment(tmp_path, astronaut):
    from swapface.processors.onnx_swapper import OnnxSwapper

    d = swapper_models(tmp_path, "inswapper_128.onnx", 128, False, None)
    swapper = OnnxSwapper(SwapOptions(face_swapper_model="inswapper_128", face_swapper_pixel_boost=384), models_dir=d)
    assert swapper.k == 3
    face = detector_face()
    out = swapper.process(astronaut, [face], SourceIdentity((astronaut,), (face,), np.zeros(128, np.float32)))
    # each of the 3×3 sub-crops gets the 128-px pattern: crop pixel (u, v) shows pattern(u // 3, v // 3)
    p, q = interior(ff_affine(DETECTOR_POINTS, "arcface_128", 384), 384, astronaut.shape[:2], 0.4, 0.6)
    got = out[p[:, 1], p[:, 0], :2].astype(float)
    want = pattern_at(np.floor(q + 0.5) // 3, 128)
    assert np.median(np.abs(got - want)) <= 3.0


def test_alignment_fit_is_least_squares_on_all_five_points():
    from swapface.geometry.transform import fit_similarity
    from swapface.models.templates import alignment_affine

    for template, size in (("arcface_128", 128), ("ffhq_512", 512), ("arcface_112_v2", 112)):
        want = ff_affine(DETECTOR_POINTS, template, size)
        assert np.abs(alignment_affine(DETECTOR_POINTS, template, size) - want).max() < 1e-3
    # a far-off point still counts (a robust fit would ignore it and the crop would jump when it moved)
    src = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [30, -4]], np.float64)
    dst = src * 2 + 5
    dst[4] += (6, 3)
    assert np.abs(fit_similarity(src, dst) - ls_similarity(src, dst)).max() < 1e-4
    off = np.array(FF_TEMPLATES["arcface_128"]) * 300 + (40, 60)
    off[2] += (25, 10)  # the nose far from where the other four put it
    assert np.abs(alignment_affine(off, "arcface_128", 128) - ff_affine(off, "arcface_128", 128)).max() < 1e-3


def test_faces_analysed_for_a_neural_swapper_keep_the_detectors_points(astronaut):
    from swapface.faces.analyser import FaceAnalyser

    analyser = FaceAnalyser.from_options(SwapOptions(face_swapper_model="inswapper_128"))
    (face,) = analyser.analyse_still(astronaut)[:1]
    raw = analyser.detector.detect(astronaut, past_border=True)[0]  # the passes a still analysis runs
    assert face.detector_keypoints is not None
    assert np.abs(face.detector_keypoints - raw.keypoints).max() < 1e-4
    assert analyser.landmarker.presence == 0.0  # the mesh's presence score does not drop faces for neural swappers
    assert FaceAnalyser.from_options(SwapOptions()).landmarker.presence == 0.5


# --- latents --------------------------------------------------------------------------------------------
def _swapper(tmp_path: Path, name: str, file: str, size: int, converter: str | None):
    from swapface.processors.onnx_swapper import OnnxSwapper

    d = swapper_models(tmp_path, file, size, False, converter)
    return OnnxSwapper(SwapOptions(face_swapper_model=name), models_dir=d)


def test_latents_follow_facefusion(tmp_path):
    rng = np.random.default_rng(7)
    raw = (rng.standard_normal(512) * 3).astype(np.float32)
    unit = raw / np.linalg.norm(raw)
    # inswapper: raw · emap / ‖raw‖ — normalised once
    ins = _swapper(tmp_path / "a", "inswapper_128", "inswapper_128.onnx", 128, None)
    assert np.allclose(ins.latent(raw)[0], raw @ ob.emap_matrix() / np.linalg.norm(raw), atol=1e-4)
    # ghost: the converter's output as it is (its identity layers are linear: scale matters)
    ghost = _swapper(tmp_path / "b", "ghost_256", "ghost_1_256.onnx", 256, "crossface_ghost.onnx")
    assert np.allclose(ghost.latent(raw)[0], raw @ ob.converter_matrix(), rtol=1e-4, atol=1e-3)
    # simswap / hififace: the converter's output L2-normalised
    sim = _swapper(tmp_path / "c", "simswap_256", "simswap_256.onnx", 256, "crossface_simswap.onnx")
    conv = raw @ ob.converter_matrix()
    assert np.allclose(sim.latent(raw)[0], conv / np.linalg.norm(conv), atol=1e-5)
    # hyperswap: the mean of the photos' normalised embeddings (not re-normalised)
    hyper = _swapper(tmp_path / "d", "hyperswap_1a_256", "hyperswap_1a_256.onnx", 256, None)
    other = rng.standard_normal(512).astype(np.float32)
    mean_normed = (unit + other / np.linalg.norm(other)) / 2
    assert np.allclose(hyper.latent((raw + other) / 2, mean_normed)[0], mean_normed, atol=1e-6)


def test_source_embedding_is_taken_on_the_detectors_points(tmp_path, astronaut):
    sw = _swapper(tmp_path, "inswapper_128", "inswapper_128.onnx", 128, None)
    face = detector_face()
    got = sw.source_latent(SourceIdentity((astronaut,), (face,), np.zeros(128, np.float32)))
    m = ff_affine(DETECTOR_POINTS, "arcface_112_v2", 112)
    crop = cv2.warpAffine(astronaut, m, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    raw = ob.recognizer_expected(crop[None])[0]
    assert np.allclose(got[0], raw @ ob.emap_matrix() / np.linalg.norm(raw), atol=2e-3)


# --- masks ----------------------------------------------------------------------------------------------
def test_box_mask_is_facefusions():
    from swapface.processors.masks import box_mask

    for size, blur, padding in ((128, 0.3, (0, 0, 0, 0)), (256, 0.5, (10, 0, 20, 5)), (512, 0.1, (0, 30, 0, 0))):
        amount = int(size * 0.5 * blur)
        area = max(amount // 2, 1)
        want = np.ones((size, size), np.float32)
        want[:max(area, int(size * padding[0] / 100)), :] = 0
        want[-max(area, int(size * padding[2] / 100)):, :] = 0
        want[:, :max(area, int(size * padding[3] / 100))] = 0
        want[:, -max(area, int(size * padding[1] / 100)):] = 0
        want = cv2.GaussianBlur(want, (0, 0), amount * 0.25)
        assert np.abs(box_mask(size, blur, padding) - want).max() < 1e-5


def test_region_mask_comes_from_the_swapped_crop_in_rgb_with_imagenet_normalisation(tmp_path, astronaut):
    """The fake parser calls 'skin' what is red after ImageNet normalisation; the target is red everywhere, the
    swapped crop (the pattern) only right of u ≈ S/2: so the left part must keep the target."""
    from swapface.processors.onnx_swapper import OnnxSwapper

    d = swapper_models(tmp_path, "inswapper_128.onnx", 128, False, None)
    ob.red_parser(d / "bisenet_resnet_34.onnx")
    frame = astronaut.copy()
    frame[..., 0] = 220
    swapper = OnnxSwapper(SwapOptions(face_swapper_model="inswapper_128", face_mask_types=("box", "region"),
                                      face_mask_regions=("skin",)), models_dir=d)
    face = detector_face()
    out = swapper.process(frame, [face], SourceIdentity((astronaut,), (face,), np.zeros(128, np.float32)))
    m = ff_affine(DETECTOR_POINTS, "arcface_128", 128)
    p, q = interior(m, 128, frame.shape[:2], 0.36, 0.64)
    left = q[:, 0] <= 0.43 * 128  # the pattern's red is (3u/S − 1) · 255 < 0.485 · 255 there: not skin
    right = q[:, 0] >= 0.6 * 128
    assert np.abs(out[p[left, 1], p[left, 0]].astype(int) - frame[p[left, 1], p[left, 0]]).max() <= 1
    got = out[p[right, 1], p[right, 0], :2].astype(float)
    assert np.abs(got - pattern_at(q[right], 128)).max() <= 2.0


@pytest.mark.parametrize("name,file,template,size", [("gfpgan_1.4", "gfpgan_1.4.onnx", "ffhq_512", 512),
                                                      ("gpen_bfr_256", "gpen_bfr_256.onnx", "arcface_128", 256)])
def test_enhancer_pastes_with_a_zero_padding_box_only(tmp_path, astronaut, name, file, template, size):
    """FaceFusion's enhancer mask: box (the user's blur, zero padding) + occlusion if asked; not the padding or regions."""
    from swapface.processors.face_enhancer import FaceEnhancer

    ob.pattern_enhancer(tmp_path / file, size)
    enh = FaceEnhancer(SwapOptions(face_enhancer_model=name, face_enhancer_blend=100, face_mask_blur=0.3,
                                   face_mask_padding=(45, 0, 0, 0), face_mask_types=("box", "region")),
                       models_dir=tmp_path)
    out = enh.process(astronaut, [detector_face()], None)
    p, q = interior(ff_affine(DETECTOR_POINTS, template, size), size, astronaut.shape[:2])
    got = out[p[:, 1], p[:, 0], :2].astype(float)
    assert np.abs(got - pattern_at(q, size)).max() <= 2.0


# --- frame enhancer --------------------------------------------------------------------------------------
def test_real_esrgan_gets_rgb_over_255_and_its_output_times_255(tmp_path, astronaut):
    from swapface.processors.frame_enhancer import FrameEnhancer

    ob.channel_upscaler(tmp_path / "real_esrgan_x2.onnx", 2)
    enh = FrameEnhancer(SwapOptions(frame_enhancer_model="real_esrgan_x2", frame_enhancer_blend=100), models_dir=tmp_path)
    frame = astronaut[60:260, 120:420]
    got = enh.process(frame, [], None)
    up = np.repeat(np.repeat(frame.astype(float), 2, 0), 2, 1)
    want = np.clip(up * np.array(ob.UPSCALER_GAINS), 0, 255)
    assert got.shape == (400, 600, 3)
    assert np.abs(got - want).max() <= 1.0


def test_faces_are_rescaled_for_processors_after_a_frame_enhancer(tmp_path, astronaut, monkeypatch):
    from swapface.pipeline import Pipeline

    ob.upscaler(tmp_path / "real_esrgan_x2.onnx", 2)
    ob.pattern_enhancer(tmp_path / "gfpgan_1.4.onnx", 512)
    monkeypatch.setenv("SWAPFACE_MODELS_DIR", str(tmp_path))
    opts = SwapOptions(processors=("frame_enhancer", "face_enhancer"), frame_enhancer_blend=100, face_enhancer_blend=100)
    pipe = Pipeline([], opts)
    out = pipe.process_frame(astronaut)
    face = pipe.analyser.analyse_still(astronaut)[0]
    points = (face.detector_keypoints if face.detector_keypoints is not None else face.keypoints) * 2
    p, q = interior(ff_affine(points, "ffhq_512", 512), 512, out.shape[:2])
    assert out.shape == (1024, 1024, 3) and len(p) > 1000
    got = out[p[:, 1], p[:, 0], :2].astype(float)
    assert np.abs(got - pattern_at(q, 512)).max() <= 2.0


# --- detector -------------------------------------------------------------------------------------------
def test_detector_nms_keeps_faces_overlapping_up_to_iou_0_4(tmp_path):
    from swapface.faces.onnx_detectors import OnnxDetector

    kps = [-1.0, -1.0, 1.0, -1.0, 0.0, 0.0, -0.8, 1.2, 0.8, 1.2]
    a = dict(stride=16, row=10, col=20, anchor=0, score=0.9, distances=[2, 3, 2, 3], kps=kps)
    b = dict(a, col=22, score=0.8)  # 64×96 boxes 32 px apart: IoU 32/96 = 0.33 — two faces
    c = dict(stride=8, row=20, col=37, anchor=0, score=0.7, distances=[4, 6, 4, 6], kps=[2 * k for k in kps])  # 24 px: IoU 0.45
    ob.scrfd_faces(tmp_path / "scrfd_2.5g.onnx", [a, b, c])
    faces = OnnxDetector("scrfd", SwapOptions(face_detector_score=0.5), models_dir=tmp_path).detect(
        np.full((640, 640, 3), 90, np.uint8))
    assert [round(f.score, 2) for f in faces] == [0.9, 0.8]


def test_video_output_has_the_enhanced_resolution(tmp_path, monkeypatch, astronaut):
    from media_fixtures import carphone_path
    from swapface.cli.main import main
    from swapface.media import video
    from swapface.media.image import write_image

    write_image(astronaut, tmp_path / "a.png")
    ob.upscaler(tmp_path / "real_esrgan_x2.onnx", 2)
    monkeypatch.setenv("SWAPFACE_MODELS_DIR", str(tmp_path))
    out = tmp_path / "big.mp4"
    assert main(["run", "-s", str(tmp_path / "a.png"), "-t", str(carphone_path()), "-o", str(out), "--processors", "frame_enhancer",
                 "--trim-frame-end", "12", "--no-mark", "--quiet"]) == 0
    info = video.probe(out)
    assert (info.width, info.height, info.frames) == (352, 288, 12)


@pytest.mark.parametrize("name,template,tanh,source_template,source_size", [
    ("blendswap_256", "ffhq_512", False, "arcface_112_v2", 112), ("uniface_256", "ffhq_512", True, "ffhq_512", 256)])
def test_image_conditioned_swappers_get_the_source_face_crop(tmp_path, astronaut, name, template, tanh,
                                                             source_template, source_size):
    from swapface.processors.onnx_swapper import OnnxSwapper

    ob.pattern_swapper(tmp_path / f"{name}.onnx", 256, tanh_range=tanh, source_shape=(1, 3, source_size, source_size))
    swapper = OnnxSwapper(SwapOptions(face_swapper_model=name), models_dir=tmp_path)
    assert swapper.recogniser is None  # no ArcFace: the source is a picture
    face = detector_face()
    src = SourceIdentity((astronaut,), (face,), np.zeros(1, np.float32))
    m = ff_affine(DETECTOR_POINTS, source_template, source_size)
    crop = cv2.warpAffine(astronaut, m, (source_size, source_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    want = (crop / 255.0).transpose(2, 0, 1)[None]  # RGB / 255, NCHW
    assert np.abs(swapper.source_latent(src) - want).max() < 2 / 255
    out = swapper.process(astronaut, [face], src)
    p, q = interior(ff_affine(DETECTOR_POINTS, template, 256), 256, astronaut.shape[:2])
    assert np.abs(out[p[:, 1], p[:, 0], :2].astype(float) - pattern_at(q, 256)).max() <= 2.0


def test_in_video_the_detectors_points_follow_a_tracked_face(astronaut):
    from swapface.faces.analyser import FaceAnalyser

    analyser = FaceAnalyser.from_options(SwapOptions(face_swapper_model="inswapper_128"), video=True)
    first = analyser.analyse(astronaut)[0]
    shift = np.float32([[1, 0, 12], [0, 1, 7]])
    moved = cv2.warpAffine(astronaut, shift, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    second = analyser.analyse(moved)[0]  # frame 1: no detection, the track is re-fitted by the mesh
    assert first.detector_keypoints is not None and second.detector_keypoints is not None
    assert np.abs(second.detector_keypoints - (first.detector_keypoints + (12, 7))).max() < 2.5


def test_yolo_face_decoding_through_the_letterbox(tmp_path):
    from swapface.faces.onnx_detectors import OnnxDetector

    kps = [300, 150, 1.0, 340, 150, 1.0, 320, 175, 1.0, 305, 195, 1.0, 335, 195, 1.0]
    ob.yolo_face(tmp_path / "yolo_face_8n.onnx", [[320, 170, 64, 96, 0.9, *kps], [100, 100, 20, 20, 0.3, *kps]])
    det = OnnxDetector("yolo_face", SwapOptions(face_detector_score=0.5), models_dir=tmp_path)
    (face,) = det.detect(np.full((720, 1280, 3), 50, np.uint8))  # shrunk to 640×360: ratio 2
    assert face.score == pytest.approx(0.9)
    assert np.allclose(face.box, np.array([288, 122, 352, 218]) * 2, atol=1e-3)
    assert np.allclose(face.keypoints, np.array(kps).reshape(5, 3)[:, :2] * 2, atol=1e-3)
    # a frame smaller than the input is padded, not enlarged (FaceFusion's restrict_frame)
    (small,) = det.detect(np.full((400, 600, 3), 50, np.uint8))
    assert np.allclose(small.box, [288, 122, 352, 218], atol=1e-3)
    # FaceFusion's input: the frame in BGR / 255
    from swapface.models.catalogue import CATALOGUE
    from swapface.models.templates import to_tensor

    x = to_tensor(np.array([[[255, 128, 0]]], np.uint8)[None], CATALOGUE["yolo_face"].contract)
    assert np.allclose(x.ravel(), [0.0, 128 / 255, 1.0])


def test_detector_angles_map_faces_back_from_the_turned_frame(tmp_path):
    from swapface.errors import InputError
    from swapface.faces.onnx_detectors import OnnxDetector
    from swapface.faces.registry import build_detector

    kps = [-1.0, -1.0, 1.0, -1.0, 0.0, 0.0, -0.8, 1.2, 0.8, 1.2]
    ob.scrfd(tmp_path / "scrfd_2.5g.onnx", dict(stride=16, row=10, col=20, anchor=1, score=0.9, distances=[2, 3, 2, 3], kps=kps))
    frame = np.full((720, 1280, 3), 60, np.uint8)
    # turned by 90°, the 1280×720 frame is a 720×1280 canvas: T(x, y) = (y, 1280 − x), letterboxed at 0.5.
    # The fake always reports a face centred at input (320, 160) = canvas (640, 320) = frame (1280 − 320, 640)
    det = OnnxDetector("scrfd", SwapOptions(face_detector_angles=(90,)), models_dir=tmp_path)
    (face,) = det.detect(frame)
    assert np.allclose(face.center, (960, 640), atol=1e-2)
    assert np.allclose([face.width, face.height], [192, 128], atol=1e-2)  # the 128×192 box, turned back
    eye = (np.array(kps[:2]) * 16 + (320, 160)) * 2  # the first keypoint in canvas pixels
    assert np.allclose(face.keypoints[0], (1280 - eye[1], eye[0]), atol=1e-2)
    both = OnnxDetector("scrfd", SwapOptions(face_detector_angles=(0, 90)), models_dir=tmp_path)
    assert both.iou == 0.3 and len(both.detect(frame)) == 2  # FaceFusion: NMS 0.3 with two angles
    with pytest.raises(InputError, match="angles"):
        OnnxDetector("scrfd", SwapOptions(face_detector_angles=(45,)), models_dir=tmp_path)
    with pytest.raises(InputError, match="ONNX detector"):
        build_detector("mediapipe", SwapOptions(face_detector_angles=(0, 90)))


def test_inputs_are_fed_by_name_and_output_0_is_read(tmp_path, astronaut):
    from swapface.models import store
    from swapface.processors.face_enhancer import FaceEnhancer

    ob.two_output_restorer(tmp_path / "codeformer.onnx")
    store.locate("codeformer", tmp_path)  # an export with an extra output is accepted
    enh = FaceEnhancer(SwapOptions(face_enhancer_model="codeformer", face_enhancer_weight=1.0, face_enhancer_blend=100),
                       models_dir=tmp_path)
    out = enh.process(astronaut, [detector_face()], None)
    p, _ = interior(ff_affine(DETECTOR_POINTS, "ffhq_512", 512), 512, astronaut.shape[:2])
    # weight 1 · input: the face comes back as it was (output 1 would paint it white)
    assert np.abs(out[p[:, 1], p[:, 0]].astype(int) - astronaut[p[:, 1], p[:, 0]]).mean() < 2.0


def test_2dfan4_refines_the_points_neural_models_align_on(tmp_path, astronaut):
    from swapface.processors.onnx_swapper import OnnxSwapper

    d = swapper_models(tmp_path, "inswapper_128.onnx", 128, False, None)
    face = detector_face()
    rng = np.random.default_rng(3)
    heat_pts = rng.uniform(20, 44, (68, 2))  # where the fake finds the 68 points, in 64-px heatmap coordinates
    # FaceFusion: crop = box scaled to 195 px on its longer side, centred in 256; points = heatmap / 64 · 256
    x1, y1, x2, y2 = face.box.astype(float)
    s = 195 / max(x2 - x1, y2 - y1)
    tx, ty = (256 - (x1 + x2) * s) / 2, (256 - (y1 + y2) * s) / 2
    frame_pts = (heat_pts / 64 * 256 - (tx, ty)) / s
    five = np.stack([frame_pts[36:42].mean(0), frame_pts[42:48].mean(0), frame_pts[30], frame_pts[48], frame_pts[54]])
    src = SourceIdentity((astronaut,), (face,), np.zeros(1, np.float32))
    for peak, want_points in ((0.9, five), (0.3, DETECTOR_POINTS)):  # score = peak / 0.9: used from 0.5 up
        ob.fan68(d / "2dfan4.onnx", heat_pts, peak)
        swapper = OnnxSwapper(SwapOptions(face_swapper_model="inswapper_128", face_landmarker_model="2dfan4"), models_dir=d)
        out = swapper.process(astronaut, [face], src)
        p, q = interior(ff_affine(want_points, "arcface_128", 128), 128, astronaut.shape[:2])
        assert len(p) > 100
        assert np.abs(out[p[:, 1], p[:, 0], :2].astype(float) - pattern_at(q, 128)).max() <= 2.0, peak
