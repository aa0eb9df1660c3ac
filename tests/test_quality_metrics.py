"""Swap-quality metrics measure what they claim, on the astronaut and the carphone driver (dlib as the judge)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from skimage.color import lab2rgb, rgb2lab

from swapface import quality

FACE_PATCH = (180, 80, 260, 170)  # x1, y1, x2, y2: eyes to mouth of the astronaut


@pytest.fixture(scope="module")
def scorer() -> quality.DlibScorer:
    return quality.DlibScorer()


@pytest.fixture(scope="module")
def astronaut_face(astronaut, scorer) -> quality.ScoredFace:
    face = scorer.main_face(astronaut)
    assert face is not None
    return face


def _tinted(image: np.ndarray) -> np.ndarray:
    """The image darker and redder: a different skin colour and brightness."""
    return np.clip(image.astype(np.float32) * np.float32([0.85, 0.6, 0.5]), 0, 255).astype(np.uint8)


def _laplacian_blend(top: np.ndarray, bottom: np.ndarray, mask: np.ndarray, levels: int = 5) -> np.ndarray:
    """Burt–Adelson multi-band blend of ``top`` over ``bottom`` inside ``mask`` (written here, not taken from swapface)."""
    gauss_a, gauss_b, gauss_m = [top.astype(np.float32)], [bottom.astype(np.float32)], [mask.astype(np.float32)]
    for _ in range(levels):
        gauss_a.append(cv2.pyrDown(gauss_a[-1]))
        gauss_b.append(cv2.pyrDown(gauss_b[-1]))
        gauss_m.append(cv2.pyrDown(gauss_m[-1]))
    result = None
    for level in range(levels, -1, -1):
        if level == levels:
            band_a, band_b = gauss_a[level], gauss_b[level]
        else:
            size = (gauss_a[level].shape[1], gauss_a[level].shape[0])
            band_a = gauss_a[level] - cv2.pyrUp(gauss_a[level + 1], dstsize=size)
            band_b = gauss_b[level] - cv2.pyrUp(gauss_b[level + 1], dstsize=size)
        m = gauss_m[level][..., None]
        blended = band_a * m + band_b * (1 - m)
        result = blended if result is None else cv2.pyrUp(result, dstsize=(blended.shape[1], blended.shape[0])) + blended
    assert result is not None
    return np.clip(result + 0.5, 0, 255).astype(np.uint8)


def _lab_cast(image: np.ndarray, where: np.ndarray, shift: tuple[float, float, float]) -> np.ndarray:
    """The image with a CIELAB offset added inside ``where`` (skimage's colour maths)."""
    lab = rgb2lab(image)
    lab[where] += np.asarray(shift)
    cast = (np.clip(lab2rgb(lab), 0, 1) * 255 + 0.5).astype(np.uint8)
    out = image.copy()
    out[where] = cast[where]
    return out


def test_identical_images_score_zero(astronaut, astronaut_face, scorer) -> None:
    q = quality.image_quality(astronaut, astronaut, scorer, astronaut_face)
    assert q.found
    assert q.nme == 0.0 and q.mouth_nme == 0.0
    assert q.cheek_delta_e == 0.0
    assert q.sharpness_ratio == pytest.approx(1.0)
    assert q.seam is None  # nothing changed, so there is no edge to judge


def test_changed_region_is_the_pasted_patch(astronaut) -> None:
    x1, y1, x2, y2 = FACE_PATCH
    out = astronaut.copy()
    out[y1:y2, x1:x2] = _tinted(astronaut)[y1:y2, x1:x2]
    region = quality.changed_region(out, astronaut)
    truth = np.zeros(region.shape, bool)
    truth[y1:y2, x1:x2] = True
    assert (region & truth).sum() / (region | truth).sum() > 0.95


def test_the_changed_regions_edge_is_its_outer_edge_not_an_inlet(astronaut) -> None:
    """A narrow unchanged inlet (a matched cheek between two features) is inside the region; a quarter of the
    patch left unchanged is not: only narrow inlets are closed."""
    x1, y1, x2, y2 = FACE_PATCH
    tinted = _tinted(astronaut)
    slit, corner = astronaut.copy(), astronaut.copy()
    slit[y1:y2, x1:x2] = tinted[y1:y2, x1:x2]
    mid = (x1 + x2) // 2
    slit[y1 : y1 + (y2 - y1) // 2, mid - 3 : mid + 3] = astronaut[y1 : y1 + (y2 - y1) // 2, mid - 3 : mid + 3]
    corner[y1:y2, x1:x2] = tinted[y1:y2, x1:x2]
    corner[y1 : (y1 + y2) // 2, x1:mid] = astronaut[y1 : (y1 + y2) // 2, x1:mid]
    whole = np.zeros(astronaut.shape[:2], bool)
    whole[y1:y2, x1:x2] = True
    l_shape = whole.copy()
    l_shape[y1 : (y1 + y2) // 2, x1:mid] = False
    for out, truth in ((slit, whole), (corner, l_shape)):
        region = quality.changed_region(out, astronaut)
        assert (region & truth).sum() / (region | truth).sum() > 0.97  # the slit alone is 5 % of the patch


def test_hard_paste_has_a_seam_and_a_blended_paste_a_smaller_one(astronaut) -> None:
    x1, y1, x2, y2 = FACE_PATCH
    tinted = _tinted(astronaut)
    hard = astronaut.copy()
    hard[y1:y2, x1:x2] = tinted[y1:y2, x1:x2]
    mask = np.zeros(astronaut.shape[:2], np.float32)
    mask[y1:y2, x1:x2] = 1.0
    blended = _laplacian_blend(tinted, astronaut, mask)

    hard_seam = quality.seam(hard, astronaut)
    blended_seam = quality.seam(blended, astronaut)
    assert hard_seam is not None and blended_seam is not None
    assert hard_seam > 1.0
    assert blended_seam < 0.5 * hard_seam


def test_cheek_delta_e_follows_a_colour_cast(astronaut, astronaut_face) -> None:
    shift = (-6.0, -5.0, -6.0)  # darker, greener, bluer: stays inside sRGB on bright skin; ΔE of the cast ≈ 9.8
    x1, y1, x2, y2 = astronaut_face.box
    face = np.zeros(astronaut.shape[:2], bool)
    face[y1:y2, x1:x2] = True
    on_face = _lab_cast(astronaut, face, shift)
    off_face = _lab_cast(astronaut, ~face, shift)

    # the ΔE the cast really made, measured in the test with skimage over the face box
    made = np.linalg.norm(rgb2lab(on_face)[face].mean(axis=0) - rgb2lab(astronaut)[face].mean(axis=0))
    assert made == pytest.approx(float(np.linalg.norm(shift)), abs=0.5)
    assert quality.cheek_delta_e(on_face, astronaut, astronaut_face.landmarks) == pytest.approx(made, abs=1.0)
    assert quality.cheek_delta_e(off_face, astronaut, astronaut_face.landmarks) < 0.5  # the discs lie on the face


def test_cheek_discs_sit_on_the_cheeks(astronaut_face) -> None:
    points = astronaut_face.landmarks
    (left, r_left), (right, r_right) = quality.cheek_discs(points)
    nose_tip, eye_line = points[30], points[36:48, 1].mean()
    assert left[0] < nose_tip[0] < right[0]
    for centre, radius in ((left, r_left), (right, r_right)):
        assert eye_line + radius < centre[1] < points[48:68, 1].min()  # below the eyes, above the mouth


def test_blur_lowers_the_sharpness_ratio(astronaut, astronaut_face) -> None:
    blurred = cv2.GaussianBlur(astronaut, (0, 0), 1.5)
    sharpened = cv2.addWeighted(astronaut, 2.0, cv2.GaussianBlur(astronaut, (0, 0), 1.5), -1.0, 0)
    assert quality.sharpness_ratio(blurred, astronaut, astronaut_face.landmarks) < 0.5
    assert quality.sharpness_ratio(sharpened, astronaut, astronaut_face.landmarks) > 1.5


def test_landmark_error_of_a_moved_face(astronaut, astronaut_face, scorer) -> None:
    dx = 6
    moved = np.roll(astronaut, dx, axis=1)
    found = quality.output_face(moved, astronaut_face, scorer)
    assert found is not None
    points = astronaut_face.landmarks.astype(np.float64)
    iod = np.linalg.norm(points[42:48].mean(axis=0) - points[36:42].mean(axis=0))
    # the face moved by dx pixels while the judge's box stayed: the points follow the face
    assert quality.landmark_nme(found.landmarks, astronaut_face.landmarks) == pytest.approx(dx / iod, rel=0.35)


def test_landmark_error_of_a_moved_mouth(astronaut, astronaut_face, scorer) -> None:
    points = astronaut_face.landmarks.astype(np.int32)
    mx1, my1 = points[48:68].min(axis=0) - 4
    mx2, my2 = points[48:68].max(axis=0) + 4
    out = astronaut.copy()
    drop = 5
    out[my1 + drop:my2 + drop, mx1:mx2] = astronaut[my1:my2, mx1:mx2]  # the mouth moved down
    found = quality.output_face(out, astronaut_face, scorer)
    assert found is not None
    mouth = quality.landmark_nme(found.landmarks, astronaut_face.landmarks, quality.MOUTH)
    eyes = quality.landmark_nme(found.landmarks, astronaut_face.landmarks, range(36, 48))
    assert mouth > 0.05 > eyes


def test_identity_retrieval_finds_the_same_person(astronaut, driver, scorer) -> None:
    smaller = cv2.resize(astronaut, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    query, same, other = (scorer.main_face(img) for img in (smaller, astronaut, driver))
    assert query is not None and same is not None and other is not None
    name, distance = quality.nearest(query.descriptor, [("driver", other.descriptor), ("astronaut", same.descriptor)])
    assert name == "astronaut" and distance < quality.DLIB_MATCH_DISTANCE
    assert quality.descriptor_distance(query.descriptor, other.descriptor) > quality.DLIB_MATCH_DISTANCE


def test_different_sizes_are_refused(astronaut, astronaut_face) -> None:
    with pytest.raises(ValueError):
        quality.compare(astronaut[:-2], astronaut, astronaut_face, None)


def test_eval_reports_seam_colour_and_sharpness_of_a_still(tmp_path, astronaut, capsys) -> None:
    from swapface.cli.main import main
    from swapface.media.image import write_image

    x1, y1, x2, y2 = FACE_PATCH
    pasted = astronaut.copy()
    pasted[y1:y2, x1:x2] = cv2.GaussianBlur(_tinted(astronaut), (0, 0), 2.0)[y1:y2, x1:x2]
    for name, image in (("source.png", astronaut), ("original.png", astronaut), ("pasted.png", pasted)):
        write_image(image, tmp_path / name)
    args = ["eval", "-s", str(tmp_path / "source.png"), "-t", str(tmp_path / "original.png"), "--json"]

    assert main([*args, "-o", str(tmp_path / "pasted.png")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["seam"] > 1.0  # a hard edge
    assert doc["cheek_delta_e"] > 10  # darker, redder cheeks
    assert doc["sharpness_ratio"] < 0.8  # a blurred patch
    assert main([*args, "-o", str(tmp_path / "original.png")]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["seam"] is None and same["cheek_delta_e"] == 0.0 and same["sharpness_ratio"] == pytest.approx(1.0)
