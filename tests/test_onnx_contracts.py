"""The ONNX wrappers honour each model contract: checked against tiny models whose outputs are known functions."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

import onnx_builders as ob
from swapface.faces.face import Face
from swapface.models.catalogue import CATALOGUE, IMAGENET_MEAN, IMAGENET_STD
from swapface.models.templates import TEMPLATES, alignment_affine, from_tensor, to_tensor, warp_face
from swapface.options import SwapOptions
from swapface.processors.base import SourceIdentity


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A models folder holding a tiny model for every contract the tests exercise."""
    d = tmp_path_factory.mktemp("models")
    ob.recognizer(d / "arcface_w600k_r50.onnx")
    ob.swapper(d / "inswapper_128.onnx", 128, batch=None)
    ob.swapper(d / "simswap_256.onnx", 256, batch=1)
    ob.swapper(d / "ghost_1_256.onnx", 256, batch=1, tanh_range=True)
    ob.converter(d / "crossface_simswap.onnx")
    ob.converter(d / "crossface_ghost.onnx")
    ob.enhancer(d / "gfpgan_1.4.onnx")
    ob.enhancer(d / "codeformer.onnx", codeformer=True)
    ob.upscaler(d / "real_esrgan_x2.onnx", 2)
    ob.occluder(d / "xseg_1.onnx")
    ob.parser(d / "bisenet_resnet_34.onnx")
    return d


def face_at(template: str, x: float, y: float, width: float, angle: float = 0.0) -> Face:
    """A face whose keypoints are ``template`` scaled to ``width``, rotated by ``angle`` degrees, placed at (x, y)."""
    pts = TEMPLATES[template] * width
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    pts = pts @ np.array([[c, s], [-s, c]], np.float32) + (x, y)
    box = np.array([*pts.min(0) - width * 0.3, *pts.max(0) + width * 0.3], np.float32)
    return Face(box=box, score=0.99, keypoints=pts.astype(np.float32))


def uniform(value: tuple[int, int, int], h: int = 480, w: int = 640) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def expected_latent_emap(raw: np.ndarray) -> np.ndarray:
    """FaceFusion's inswapper latent: raw ArcFace · emap / ‖raw‖ — normalised once, not again after the emap."""
    return (raw @ ob.emap_matrix()) / np.linalg.norm(raw)


# --- alignment and normalisation -------------------------------------------------------------------------
@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_alignment_maps_keypoints_onto_the_template(template):
    face = face_at(template, 200, 120, 180, angle=17)
    for size in (112, 128, 256, 512):
        m = alignment_affine(face.keypoints, template, size)
        mapped = face.keypoints @ m[:, :2].T + m[:, 2]
        assert np.abs(mapped - TEMPLATES[template] * size).max() < 0.05


def test_insightface_points_are_arcface_112_v2():
    standard = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]])
    assert np.abs(TEMPLATES["arcface_112_v2"] * 112 - standard).max() < 1e-3


def test_normalisation_follows_each_contract():
    px = np.array([[[[255, 128, 0]]]], np.uint8)  # one RGB pixel
    arc = to_tensor(px, CATALOGUE["arcface_w600k_r50"].contract)
    assert arc.shape == (1, 3, 1, 1) and np.allclose(arc.ravel(), [1.0, 128 / 127.5 - 1, -1.0], atol=1e-6)
    scrfd = to_tensor(px, CATALOGUE["scrfd"].contract)  # BGR, (x − 127.5) / 128
    assert np.allclose(scrfd.ravel(), [(0 - 127.5) / 128, (128 - 127.5) / 128, (255 - 127.5) / 128], atol=1e-6)
    yunet = to_tensor(px, CATALOGUE["yunet"].contract)  # BGR, raw 0..255
    assert np.allclose(yunet.ravel(), [0, 128, 255])
    simswap = to_tensor(px, CATALOGUE["simswap_256"].contract)
    assert np.allclose(simswap.ravel(), (np.array([1.0, 128 / 255, 0.0]) - IMAGENET_MEAN) / IMAGENET_STD, atol=1e-6)
    xseg = to_tensor(px, CATALOGUE["xseg_1"].contract)  # NHWC, BGR / 255
    assert xseg.shape == (1, 1, 1, 3) and np.allclose(xseg.ravel(), [0, 128 / 255, 1.0], atol=1e-6)
    inswapper = to_tensor(px, CATALOGUE["inswapper_128"].contract)
    assert np.allclose(inswapper.ravel(), [1.0, 128 / 255, 0.0], atol=1e-6)
    # outputs: inswapper [0, 1]; GFPGAN/GHOST [−1, 1] de-normalised; values outside are clipped
    y = np.array([[[[-0.5]], [[0.5]], [[1.5]]]], np.float32)
    assert from_tensor(y, CATALOGUE["inswapper_128"].contract).ravel().tolist() == [0, 128, 255]
    assert from_tensor(y, CATALOGUE["gfpgan_1.4"].contract).ravel().tolist() == [64, 191, 255]


# --- recogniser -------------------------------------------------------------------------------------------
def test_arcface_golden_embedding_and_match_rule(models, astronaut):
    from swapface.faces.arcface import ArcFaceEmbedder

    emb = ArcFaceEmbedder(models_dir=models)
    face = face_at("arcface_112_v2", 190, 80, 70, angle=-8)
    (out,) = emb.embed(astronaut, [face])
    crop, _ = warp_face(astronaut, face.keypoints, "arcface_112_v2", 112)
    want = ob.recognizer_expected(crop[None])[0]
    assert out.embedding.shape == (512,)
    assert abs(np.linalg.norm(out.embedding) - 1) < 1e-5
    assert np.dot(out.embedding, want / np.linalg.norm(want)) > 0.99999
    assert emb.match_distance == pytest.approx(math.sqrt(1.2))
    # the cosine rule (1 − cos)/2 < 0.3 and the Euclidean threshold agree
    a = np.eye(512, dtype=np.float32)[0]
    for cos in (0.35, 0.45):
        b = np.zeros(512, np.float32)
        b[0], b[1] = cos, math.sqrt(1 - cos**2)
        assert ((1 - cos) / 2 < 0.3) == (np.linalg.norm(a - b) < emb.match_distance)


# --- swappers ---------------------------------------------------------------------------------------------
def make_swapper(models: Path, **kw):
    from swapface.processors.onnx_swapper import OnnxSwapper

    return OnnxSwapper(SwapOptions(**kw), models_dir=models)


def source_of(image: np.ndarray, face: Face) -> SourceIdentity:
    return SourceIdentity(images=(image,), faces=(face,), embedding=np.zeros(128, np.float32))


def test_inswapper_golden_latent_colour_and_placement(models):
    swapper = make_swapper(models, face_swapper_model="inswapper_128", face_mask_blur=0.3)
    src_img, src_face = uniform((200, 60, 90)), face_at("arcface_112_v2", 250, 150, 120)
    src = source_of(src_img, src_face)
    crop, _ = warp_face(src_img, src_face.keypoints, "arcface_112_v2", 112)
    latent = expected_latent_emap(ob.recognizer_expected(crop[None])[0])
    assert np.allclose(swapper.source_latent(src)[0], latent, atol=1e-5)

    frame, target = uniform((100, 150, 200)), face_at("arcface_128", 300, 200, 150, angle=10)
    out = swapper.process(frame, [target], src)
    colour = np.clip(0.5 * np.array([100, 150, 200]) / 255 + ob.SOURCE_GAIN * latent[:3], 0, 1) * 255
    centre = (TEMPLATES["arcface_128"] * 150).mean(0) + (300, 200)
    cx, cy = np.round(centre).astype(int)
    assert np.abs(out[cy, cx].astype(float) - colour).max() <= 1.0
    # only the crop's footprint changes: everything far from the face is untouched
    changed = np.argwhere((out != frame).any(-1))
    assert len(changed) > 0
    m = alignment_affine(target.keypoints, "arcface_128", 128)
    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0], [128, 0], [128, 128], [0, 128]], np.float32) @ inv[:, :2].T + inv[:, 2]
    inside = [cv2.pointPolygonTest(corners.reshape(-1, 1, 2), (float(x), float(y)), True) >= -1 for y, x in changed[::50]]
    assert all(inside)
    assert (out[:60] == frame[:60]).all() and (out[:, 520:] == frame[:, 520:]).all()


def test_source_latent_averages_raw_embeddings_and_is_cached(models, astronaut):
    swapper = make_swapper(models, face_swapper_model="inswapper_128")
    f1, f2 = face_at("arcface_112_v2", 180, 70, 80), face_at("arcface_112_v2", 200, 90, 60, angle=5)
    src = SourceIdentity(images=(astronaut, astronaut), faces=(f1, f2), embedding=np.zeros(128, np.float32))
    raws = [ob.recognizer_expected(warp_face(astronaut, f.keypoints, "arcface_112_v2", 112)[0][None])[0] for f in (f1, f2)]
    got = swapper.source_latent(src)
    assert np.allclose(got[0], expected_latent_emap(np.mean(raws, 0)), atol=1e-5)
    assert swapper.source_latent(src) is got  # cached per source


def test_simswap_golden_converter_and_imagenet_normalisation(models, astronaut):
    swapper = make_swapper(models, face_swapper_model="simswap_256")
    raw = np.random.default_rng(5).standard_normal(512).astype(np.float32)
    conv = raw @ ob.converter_matrix()
    latent = conv / np.linalg.norm(conv)
    assert np.allclose(swapper.latent(raw)[0], latent, atol=1e-5)
    crop, _ = warp_face(astronaut, face_at("arcface_112_v1", 170, 60, 90).keypoints, "arcface_112_v1", 256)
    got = swapper.swap_crops(crop[None], latent[None])[0]
    t = (crop / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    want = np.rint(np.clip(0.5 * t + ob.SOURCE_GAIN * latent[:3], 0, 1) * 255)
    assert np.abs(got.astype(float) - want).max() <= 1


def test_ghost_golden_output_is_denormalised(models, astronaut):
    swapper = make_swapper(models, face_swapper_model="ghost_256")
    latent = np.zeros(512, np.float32)
    latent[:3] = (0.1, -0.1, 0.0)
    crop, _ = warp_face(astronaut, face_at("arcface_112_v1", 170, 60, 90).keypoints, "arcface_112_v1", 256)
    got = swapper.swap_crops(crop[None], latent[None])[0]
    t = (crop / 255.0 - 0.5) / 0.5
    want = np.rint(np.clip(0.5 * t + ob.SOURCE_GAIN * latent[:3], 0, 1) * 255)  # model returns 2y − 1; y·0.5 + 0.5 undoes it
    assert np.abs(got.astype(float) - want).max() <= 1


@pytest.mark.parametrize("boost", [256, 512])
def test_pixel_boost_polyphase_equals_direct_computation(models, astronaut, boost):
    swapper = make_swapper(models, face_swapper_model="inswapper_128", face_swapper_pixel_boost=boost)
    assert swapper.k == boost // 128
    latent = np.zeros(512, np.float32)
    latent[:3] = (0.05, -0.02, 0.03)
    crop, _ = warp_face(astronaut, face_at("arcface_128", 160, 50, 120).keypoints, "arcface_128", boost)
    got = swapper.swap_crops(crop[None], latent[None])[0]
    want = np.rint(np.clip(0.5 * crop / 255.0 + ob.SOURCE_GAIN * latent[:3], 0, 1) * 255)
    assert got.shape == (boost, boost, 3)
    assert np.abs(got.astype(float) - want).max() <= 1


def test_polyphase_split_and_merge_round_trip():
    from swapface.processors.onnx_swapper import polyphase_merge, polyphase_split

    x = np.arange(8 * 8 * 3).reshape(8, 8, 3)
    parts = polyphase_split(x, 2)
    assert len(parts) == 4 and parts[1].shape == (4, 4, 3) and parts[1][0, 0, 0] == x[0, 1, 0]
    assert (polyphase_merge(parts, 2) == x).all()


def test_pixel_boost_that_does_not_suit_the_model_is_refused(models):
    from pydantic import ValidationError

    from swapface.errors import InputError

    # refused when the options are made (not a listed size) or when the swapper is built (not the model's)
    with pytest.raises((InputError, ValidationError), match="pixel.boost"):
        make_swapper(models, face_swapper_model="inswapper_128", face_swapper_pixel_boost=200)
    with pytest.raises((InputError, ValidationError), match="pixel.boost"):
        make_swapper(models, face_swapper_model="inswapper_128", face_swapper_pixel_boost=9 * 128)


def test_batching_across_frames_equals_one_by_one(models, group):
    faces = [face_at("arcface_128", 80 + 200 * i, 120 + 40 * i, 110, angle=-12 + 9 * i) for i in range(5)]
    frames = [group[:480, :1100], group[200:680, 100:1200]]
    per_frame = [faces[:3], faces[2:]]
    src = source_of(group, face_at("arcface_112_v2", 160, 240, 130))
    batched = make_swapper(models, face_swapper_model="inswapper_128", execution_batch_size=8)
    single = make_swapper(models, face_swapper_model="inswapper_128", execution_batch_size=1)
    together = batched.process_batch(frames, per_frame, src)
    alone = [single.process(f, ff, src) for f, ff in zip(frames, per_frame)]
    for a, b in zip(together, alone):
        assert np.array_equal(a, b)


def test_swap_weight_zero_leaves_the_frame(models, astronaut):
    swapper = make_swapper(models, face_swapper_model="inswapper_128", face_swapper_weight=0.0)
    face = face_at("arcface_128", 160, 50, 120)
    out = swapper.process(astronaut, [face], source_of(astronaut, face))
    assert np.array_equal(out, astronaut)


def test_fp16_session_within_tolerance_of_fp32(models, astronaut):
    from swapface.models.session import SessionSpec, create_session

    crops = np.stack([warp_face(astronaut, face_at("arcface_112_v2", 170 + 9 * i, 70, 80).keypoints, "arcface_112_v2", 112)[0] for i in range(4)])
    x = to_tensor(crops, CATALOGUE["arcface_w600k_r50"].contract)
    path = models / "arcface_w600k_r50.onnx"
    s32 = create_session(path, SessionSpec(precision="fp32", cache_dir=models / ".cache"))
    s16 = create_session(path, SessionSpec(precision="fp16", cache_dir=models / ".cache"))
    a, b = s32.run(None, {"input": x})[0], s16.run(None, {"input": x})[0]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.9995
    assert np.abs(a - b).max() < 0.02 * np.abs(a).max()
    assert list((models / ".cache" / "fp16").glob("*.fp16.onnx"))  # converted once, kept


# --- detectors --------------------------------------------------------------------------------------------
def test_scrfd_golden_decoding_through_the_letterbox(tmp_path):
    from swapface.faces.onnx_detectors import OnnxDetector

    kps = [-1.0, -1.0, 1.0, -1.0, 0.0, 0.0, -0.8, 1.2, 0.8, 1.2]
    for name, file in (("scrfd", "scrfd_2.5g.onnx"), ("retinaface", "retinaface_10g.onnx")):
        ob.scrfd(tmp_path / file, dict(stride=16, row=10, col=20, anchor=1, score=0.9, distances=[2, 3, 2, 3], kps=kps))
        det = OnnxDetector(name, SwapOptions(face_detector_score=0.5), models_dir=tmp_path)
        (face,) = det.detect(uniform((10, 20, 30), 720, 1280))  # scale 640/1280 = 0.5
        assert face.score == pytest.approx(0.9)
        assert np.allclose(face.box, np.array([320 - 32, 160 - 48, 320 + 32, 160 + 48]) * 2, atol=1e-3)
        want_kps = (np.array(kps).reshape(5, 2) * 16 + (320, 160)) * 2
        assert np.allclose(face.keypoints, want_kps, atol=1e-3)
        assert face.keypoints[0, 0] < face.keypoints[1, 0]  # image-left eye first
        assert OnnxDetector(name, SwapOptions(face_detector_score=0.95), models_dir=tmp_path).detect(uniform((0, 0, 0))) == []


def test_yunet_golden_decoding(tmp_path):
    from swapface.faces.onnx_detectors import OnnxDetector

    kps = [-0.5, -0.3, 0.5, -0.3, 0.0, 0.1, -0.3, 0.5, 0.3, 0.5]
    ob.yunet(tmp_path / "yunet_2023mar.onnx",
             dict(stride=32, row=5, col=7, cls=0.9, obj=0.8, bbox=[0.5, -0.25, math.log(2), math.log(3)], kps=kps))
    det = OnnxDetector("yunet", SwapOptions(face_detector_score=0.5), models_dir=tmp_path)
    (face,) = det.detect(uniform((10, 20, 30), 320, 200))  # smaller than 640: padded, never enlarged (FaceFusion)
    assert face.score == pytest.approx(0.72)
    assert np.allclose(face.box, np.array([240 - 32, 152 - 48, 240 + 32, 152 + 48]), atol=1e-3)
    assert np.allclose(face.keypoints, np.array(kps).reshape(5, 2) * 32 + (224, 160), atol=1e-3)


# --- enhancers --------------------------------------------------------------------------------------------
def test_gfpgan_golden_colour_blend_and_placement(models):
    from swapface.processors.face_enhancer import FaceEnhancer

    enh = FaceEnhancer(SwapOptions(face_enhancer_model="gfpgan_1.4", face_enhancer_blend=80), models_dir=models)
    frame, face = uniform((200, 100, 40)), face_at("ffhq_512", 200, 100, 200)
    out = enh.process(frame, [face], None)
    restored = 0.5 * np.array([200, 100, 40]) + 63.75  # 0.5 · x in [−1, 1] space
    want = 0.2 * np.array([200, 100, 40]) + 0.8 * restored
    cx, cy = np.round((TEMPLATES["ffhq_512"] * 200).mean(0) + (200, 100)).astype(int)
    assert np.abs(out[cy, cx].astype(float) - want).max() <= 1.0
    assert (out[:, 500:] == frame[:, 500:]).all()


def test_codeformer_fidelity_weight_reaches_the_model(models):
    from swapface.processors.face_enhancer import FaceEnhancer

    frame, face = uniform((200, 100, 40)), face_at("ffhq_512", 200, 100, 200)
    cx, cy = np.round((TEMPLATES["ffhq_512"] * 200).mean(0) + (200, 100)).astype(int)
    centres = {}
    for w in (0.0, 1.0):
        enh = FaceEnhancer(SwapOptions(face_enhancer_model="codeformer", face_enhancer_weight=w, face_enhancer_blend=100),
                           models_dir=models)
        centres[w] = enh.process(frame, [face], None)[cy, cx].astype(float)
    assert np.abs(centres[1.0] - (200, 100, 40)).max() <= 1  # weight 1 · x: unchanged
    assert np.abs(centres[0.0] - 127.5).max() <= 1  # weight 0: mid grey


def test_frame_enhancer_tiles_equal_the_direct_computation(models, astronaut):
    from swapface.processors.frame_enhancer import FrameEnhancer

    enh = FrameEnhancer(SwapOptions(frame_enhancer_model="real_esrgan_x2", frame_enhancer_blend=100,
                                    execution_batch_size=4), models_dir=models)
    assert enh.whole_frame and not enh.needs_source
    frame = astronaut[40:340, 60:500]  # 300×440: several tiles each way
    tiled = enh.upscale(frame)
    session = enh.model.session
    padded = cv2.copyMakeBorder(frame, 16, 16, 16, 16, cv2.BORDER_REFLECT_101)
    direct = from_tensor(session.run(None, {"input": to_tensor(padded[None], enh.model.contract)})[0], enh.model.contract)[0]
    direct = direct[32:32 + 600, 32:32 + 880]
    assert tiled.shape == (600, 880, 3)
    assert np.abs(tiled.astype(int) - direct).max() <= 1
    assert enh.process(frame[:100, :90], [], None).shape == (200, 180, 3)  # smaller than one tile


# --- masks ------------------------------------------------------------------------------------------------
def test_box_mask_edges_blur_and_padding():
    from swapface.processors.masks import box_mask

    m = box_mask(128, 0.3)
    assert m[64, 64] == pytest.approx(1.0, abs=1e-3) and m[0, 64] < 0.1 and m[64, 127] < 0.1 and m[64, 20] > m[64, 5]
    assert np.allclose(m, m.T, atol=1e-6)
    padded = box_mask(128, 0.0, (50, 0, 0, 0))
    assert (padded[:64] == 0).all() and (padded[70:120, 10:118] == 1).all()


def test_occlusion_and_region_masks(models):
    from swapface.processors.masks import FaceMasker

    crop = np.zeros((1, 256, 256, 3), np.uint8)
    crop[:, :, :128] = 255  # left half bright
    occ = FaceMasker(SwapOptions(face_mask_types=("occlusion",)), models_dir=models).target_masks(crop)[0]
    assert occ[128, 40] > 0.99 and occ[128, 215] < 0.01
    skin = FaceMasker(SwapOptions(face_mask_types=("region",), face_mask_regions=("skin",)), models_dir=models).swapped_masks(crop)[0]
    assert skin[128, 40] > 0.99 and skin[128, 215] < 0.01
    nose = FaceMasker(SwapOptions(face_mask_types=("region",), face_mask_regions=("nose",)), models_dir=models).swapped_masks(crop)[0]
    assert nose.max() < 0.01
    both = FaceMasker(SwapOptions(face_mask_types=("box", "occlusion")), models_dir=models).target_masks(crop)[0]
    assert both[128, 40] > 0.9 and both[0, 40] < 0.1 and both[128, 215] < 0.01


def test_paste_back_lands_at_the_right_place_under_the_mask():
    from swapface.processors.masks import paste_back

    frame = uniform((0, 0, 0), 300, 400)
    crop = np.full((100, 100, 3), 255, np.uint8)
    mask = np.zeros((100, 100), np.float32)
    mask[25:75, 25:75] = 1
    m = np.array([[0.5, 0, -50], [0, 0.5, -20]], np.float32)  # the crop shows frame region x 100..300, y 40..240
    out = paste_back(frame, crop, m, mask)
    ys, xs = np.nonzero(out[..., 0] > 127)
    assert abs(xs.min() - 150) <= 1 and abs(xs.max() - 249) <= 1 and abs(ys.min() - 90) <= 1 and abs(ys.max() - 189) <= 1
    assert (out[:40] == 0).all() and (out[:, 300:] == 0).all()


# --- in the pipeline --------------------------------------------------------------------------------------
def test_pipeline_runs_an_onnx_swapper_on_real_faces(models, astronaut, driver, monkeypatch):
    from swapface.pipeline import Pipeline

    monkeypatch.setenv("SWAPFACE_MODELS_DIR", str(models))
    pipe = Pipeline([astronaut], SwapOptions(face_swapper_model="inswapper_128"))
    out = pipe.process_frame(driver)
    assert pipe.stats.faces_processed == 1
    changed = np.argwhere((np.abs(out.astype(int) - driver).max(-1) > 8))
    face = pipe.analyser.analyse_still(driver)[0]
    cy, cx = changed.mean(0)
    assert face.box[0] < cx < face.box[2] and face.box[1] < cy < face.box[3]


def test_registries_build_the_onnx_stages(models, monkeypatch):
    from swapface.faces.interfaces import FaceDetector, FaceEmbedder
    from swapface.faces.registry import build_detector, build_embedder
    from swapface.processors.base import FrameProcessor
    from swapface.processors.registry import build_processor

    monkeypatch.setenv("SWAPFACE_MODELS_DIR", str(models))
    opts = SwapOptions(face_swapper_model="inswapper_128", face_enhancer_model="gfpgan_1.4",
                       frame_enhancer_model="real_esrgan_x2")
    assert isinstance(build_detector("yunet", opts), FaceDetector)
    embedder = build_embedder("arcface_w600k_r50", opts)
    assert isinstance(embedder, FaceEmbedder) and embedder.match_distance == pytest.approx(math.sqrt(1.2))
    for name in ("face_swapper", "face_enhancer", "frame_enhancer"):
        assert isinstance(build_processor(name, opts), FrameProcessor)
    assert type(build_processor("face_swapper", opts)).__name__ == "OnnxSwapper"
