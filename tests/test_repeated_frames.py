"""A frame that repeats the one before (a pulldown's doubled frame, a camera's duplicate) keeps the output of
the frame it repeats: nothing moves in the picture, so nothing in the swap may. Real frames (carphone),
repeated with compression-like noise."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from media_fixtures import carphone_frames
from swapface.media.repeats import motion_thumbnail, repeats
from swapface.options import SwapOptions
from swapface.pipeline import Pipeline


def _noisy(frame: np.ndarray, seed: int) -> np.ndarray:
    """The frame as a compressed clip repeats it: the same picture with noise of about one grey level."""
    noise = np.random.default_rng(seed).normal(0.0, 1.0, frame.shape)
    return np.clip(frame + noise + 0.5, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    return [cv2.resize(f, (352, 288), interpolation=cv2.INTER_CUBIC) for f in carphone_frames(40)[::4]]


def test_a_repeated_frame_keeps_the_output_of_the_frame_it_repeats(clip, astronaut) -> None:
    f = clip
    sequence = [f[0], f[1], _noisy(f[1], 1), _noisy(f[1], 2), f[2], f[3], _noisy(f[3], 3), f[4]]
    repeated = {2, 3, 6}
    pipe = Pipeline([astronaut], SwapOptions(), video=True)
    outputs, events = [], []
    for frame in sequence:
        event = pipe.analyse_frame(frame)
        events.append(event)
        outputs.append(pipe.render_frame(event))
    assert all(event.targets for event in events)  # a face swapped in every frame
    for i in range(1, len(sequence)):
        if i in repeated:
            assert events[i].repeats == (1 if i < 4 else 5)
            assert np.array_equal(outputs[i], outputs[i - 1]), f"frame {i} repeats {i - 1} but its swap moved"
        else:
            assert events[i].repeats is None
            assert np.abs(outputs[i].astype(int) - outputs[i - 1]).mean() > 1.0  # new frames are swapped afresh
    assert pipe.stats.frames == len(sequence) and pipe.stats.faces_processed == len(sequence)


def test_stills_are_never_taken_for_repeats(clip, astronaut) -> None:
    pipe = Pipeline([astronaut], SwapOptions())
    first = pipe.process_frame(clip[1])
    assert pipe.analyse_frame(_noisy(clip[1], 4)).repeats is None
    assert not np.array_equal(pipe.process_frame(_noisy(clip[1], 5)), first)


def test_a_small_change_in_a_still_picture_is_not_a_repeat(clip) -> None:
    frame = clip[1]
    assert repeats(motion_thumbnail(frame), motion_thumbnail(_noisy(frame, 6)))
    blink = frame.copy()
    blink[140:164, 160:184] = np.clip(blink[140:164, 160:184].astype(int) - 40, 0, 255)  # 24 px, 0.6 % of the frame
    assert not repeats(motion_thumbnail(frame), motion_thumbnail(blink))
    assert not repeats(motion_thumbnail(frame), motion_thumbnail(clip[2]))  # the next frame of a man talking


def test_a_slow_fade_is_followed_not_frozen_by_a_chain_of_repeats(clip, astronaut) -> None:
    """Each frame 0.2 grey levels darker than the one before: no two consecutive frames tell apart, but each is
    compared with the frame last swapped, so the output follows the fade."""
    pipe = Pipeline([astronaut], SwapOptions(), video=True)
    base = clip[1].astype(np.float32)
    outputs = [pipe.process_frame(np.clip(base - 0.2 * k + 0.5, 0, 255).astype(np.uint8)) for k in range(30)]
    drop = outputs[0].astype(np.float32).mean() - outputs[-1].astype(np.float32).mean()
    assert drop == pytest.approx(0.2 * 29, abs=1.2)


def test_a_repeat_whose_hook_drops_the_face_is_not_given_the_swapped_output(clip, astronaut) -> None:
    """A ``pre_frame`` hook decides per frame (a permission check): a repeat it refuses shows the frame itself."""

    def refuse_the_third(event) -> None:
        if event.index == 2:
            event.targets.clear()

    pipe = Pipeline([astronaut], SwapOptions(), video=True, pre_frame=refuse_the_third)
    frames = [clip[0], clip[1], _noisy(clip[1], 7)]
    outputs = [pipe.process_frame(frame) for frame in frames]
    assert not np.array_equal(outputs[1], frames[1])  # swapped
    assert np.array_equal(outputs[2], frames[2])  # refused: the repeat is the frame as it came
