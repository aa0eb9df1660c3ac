"""The image engine on real photographs: identity moves to the source, pose and expression stay the target's,
selection modes change exactly the faces they should, and the hard cases (small, rotated, cut-off faces) work."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import swapface
from swapface.errors import InputError
from swapface.faces.face import identity_distance
from swapface.options import SwapOptions
from swapface.pipeline import FrameEvent, Pipeline


def main_face(analyser, image):
    faces = analyser.analyse_still(image)
    assert faces, "expected a face"
    return faces[0]


def region_changed(before: np.ndarray, after: np.ndarray, box: np.ndarray) -> float:
    x1, y1, x2, y2 = (int(v) for v in box)
    a = before[y1:y2, x1:x2].astype(np.int16)
    b = after[y1:y2, x1:x2].astype(np.int16)
    return float(np.abs(a - b).mean())


@pytest.mark.parametrize("direction", ["astronaut_into_driver", "driver_into_astronaut"])
def test_swapped_face_takes_the_source_identity_and_keeps_the_target_pose(direction, astronaut, driver, analyser):
    source, target = (astronaut, driver) if direction == "astronaut_into_driver" else (driver, astronaut)
    result = swapface.swap_image(source, target)
    src, tgt, out = (main_face(analyser, x) for x in (source, target, result))

    to_source = identity_distance(out.embedding, src.embedding)
    to_target = identity_distance(out.embedding, tgt.embedding)
    assert to_source < to_target, (to_source, to_target)
    assert to_target > 0.45  # it no longer reads as the same person as before (dlib threshold 0.42)

    # pose and expression kept: the result's mesh lies on the target's, within a few percent of the eye distance
    error = np.linalg.norm(out.landmarks - tgt.landmarks, axis=1).mean() / tgt.interocular
    assert error < 0.06, error
    # outside the face nothing changes
    x1, y1, x2, y2 = (int(v) for v in tgt.box)
    outside = np.ones(target.shape[:2], bool)
    outside[max(y1 - 10, 0) : y2 + 10, max(x1 - 10, 0) : x2 + 10] = False
    assert np.array_equal(result[outside], target[outside])


def test_many_changes_every_face_and_reference_only_the_chosen_person(group, astronaut, driver, analyser):
    faces = analyser.analyse_still(group)
    assert len(faces) == 3
    driver_face = min(faces, key=lambda f: identity_distance(f.embedding, main_face(analyser, driver).embedding))

    many = swapface.swap_image(driver, group, face_selector_mode="many")
    # (the driver's own face changes least: it is swapped with a photo of himself, ~0.5; untouched faces change 0.0)
    assert all(region_changed(group, many, f.box) > 0.2 for f in faces)

    only = swapface.swap_image(astronaut, group, face_selector_mode="reference", reference_face=driver)
    assert region_changed(group, only, driver_face.box) > 2.0
    for face in faces:
        if face is not driver_face:
            assert region_changed(group, only, face.box) == 0.0

    one = swapface.swap_image(astronaut, group)  # 'one' = the largest face only (the driver's)
    changed = [region_changed(group, one, f.box) > 2.0 for f in faces]
    assert sum(changed) == 1 and changed[int(np.argmax([f.area for f in faces]))]


def test_small_rotated_and_cut_off_faces_are_swapped(astronaut, driver, analyser):
    canvas = np.full((720, 1280, 3), 80, np.uint8)
    head = driver[60:440, 160:460]
    small = cv2.resize(head, (80, 101), interpolation=cv2.INTER_AREA)  # the face itself is ~45 px wide
    canvas[300:401, 200:280] = small
    rot = cv2.warpAffine(head, cv2.getRotationMatrix2D((150, 190), 30, 1.0), (300, 380), borderMode=cv2.BORDER_REPLICATE)
    canvas[200:580, 500:800] = rot
    canvas[400:720, 1080:1280] = cv2.resize(head, (300, 380))[:320, :200]  # cut by the right and bottom border
    faces = analyser.analyse_still(canvas)
    assert len(faces) == 3
    assert min(f.width for f in faces) < 70
    result = swapface.swap_image(astronaut, canvas, face_selector_mode="many")
    for face in faces:
        assert region_changed(canvas, result, face.box) > 2.0


@pytest.mark.parametrize("model", ["mesh3d", "mesh"])
def test_several_source_photos_use_the_one_whose_pose_matches(astronaut, driver, model):
    pipe = Pipeline([astronaut, driver], SwapOptions(face_swapper_model=model))
    swapper = pipe.processors[0]
    swapper._prepare(pipe.source)
    for index, image in enumerate((astronaut, driver)):
        target = pipe.analyser.analyse_still(image)[0]
        assert swapper.choose_source(target) == index


def test_hooks_see_faces_and_can_veto(astronaut, driver):
    seen: list[tuple[str, int, int]] = []

    def pre(event: FrameEvent) -> None:
        seen.append(("pre", len(event.faces), len(event.targets)))

    def post(event: FrameEvent) -> None:
        seen.append(("post", len(event.faces), int(event.frame.shape[0])))

    swapface.swap_image(astronaut, driver, pre_frame=pre, post_frame=post)
    assert seen == [("pre", 1, 1), ("post", 1, driver.shape[0])]

    def deny(event: FrameEvent) -> None:
        raise PermissionError("not allowed")

    with pytest.raises(PermissionError):
        swapface.swap_image(astronaut, driver, pre_frame=deny)

    def nobody(event: FrameEvent) -> None:
        event.targets = []

    assert np.array_equal(swapface.swap_image(astronaut, driver, pre_frame=nobody), driver)


def test_bad_python_api_input_is_an_input_error(astronaut):
    with pytest.raises(InputError, match="no face found in source"):
        swapface.swap_image(np.full((100, 100, 3), 128, np.uint8), astronaut)
    with pytest.raises(InputError, match="face_mask_blurr"):
        swapface.swap_image(astronaut, astronaut, face_mask_blurr=0.2)
    with pytest.raises(InputError, match="reference"):
        swapface.swap_image(astronaut, astronaut, face_selector_mode="reference")


def test_compare_faces_tells_people_apart(astronaut, driver):
    assert not swapface.compare_faces(astronaut, driver).same_person
    mirrored = np.ascontiguousarray(astronaut[:, ::-1])
    assert swapface.compare_faces(astronaut, mirrored).same_person
