"""Swap metrics: the pure maths on known numbers, and `swapface eval` on a real swapped image and clip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from media_fixtures import moving_face_clip
from swapface.cli.main import main
from swapface.evaluation import (
    FrameMetrics,
    clip_box,
    identity_distance,
    landmark_error,
    region_change,
    summarize,
    temporal_change_ratio,
)
from swapface.media.image import read_image, write_image


def test_identity_distance_normalises() -> None:
    a = np.array([3.0, 0.0])
    assert identity_distance(a, 2 * a) == pytest.approx(0.0)
    assert identity_distance(a, np.array([0.0, 1.0])) == pytest.approx(np.sqrt(2))


def test_landmark_error_in_percent_of_interocular() -> None:
    ref = np.zeros((5, 2), np.float32)
    assert landmark_error(ref + [3, 4], ref, interocular=50.0) == pytest.approx(10.0)
    with pytest.raises(ValueError):
        landmark_error(np.zeros((4, 2)), ref, 10)


def test_region_change_and_ratio() -> None:
    a = np.zeros((20, 20, 3), np.uint8)
    b = a.copy()
    b[5:10, 5:10] = 100
    box = clip_box((5, 5, 10, 10), a.shape, grow=0.0)
    assert box == (5, 5, 10, 10)
    assert region_change(a, b, box) == pytest.approx(100.0)
    assert region_change(a, b, (0, 0, 20, 20)) == pytest.approx(100 * 25 / 400)
    assert temporal_change_ratio([2, 2], [1, 1]) == pytest.approx(2.0)
    assert temporal_change_ratio([1], [0]) is None


def test_summary_means_over_frames_with_faces() -> None:
    frames = [
        FrameMetrics(0, 0.2, 0.8, 4.0),
        FrameMetrics(1, None, None, None, 1.0, 2.0),
        FrameMetrics(2, 0.4, 0.6, 6.0, 3.0, 2.0),
    ]
    s = summarize(frames)
    assert (s.frames, s.frames_with_face) == (3, 2)
    assert s.identity_to_source == pytest.approx(0.3) and s.identity_to_original == pytest.approx(0.7)
    assert s.landmark_error_pct == pytest.approx(5.0) and s.temporal_change_ratio == pytest.approx(1.0)


def test_eval_of_a_swapped_image(tmp_path, astronaut, driver, capsys) -> None:
    write_image(astronaut, tmp_path / "src.png")
    write_image(driver, tmp_path / "target.png")
    out = tmp_path / "out.png"
    assert main(["run", "-s", str(tmp_path / "src.png"), "-t", str(tmp_path / "target.png"), "-o", str(out), "--no-mark", "-q"]) == 0
    capsys.readouterr()
    assert main(["eval", "-s", str(tmp_path / "src.png"), "-t", str(tmp_path / "target.png"), "-o", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["frames"] == 1 and doc["frames_with_face"] == 1
    assert doc["identity_to_source"] < doc["identity_to_original"]  # the source went in, the driver went out
    assert doc["landmark_error_pct"] < 15  # pose and expression kept
    assert doc["temporal_change_ratio"] is None
    # an unchanged image is the original person, with zero landmark error
    assert main(["eval", "-s", str(tmp_path / "src.png"), "-t", str(tmp_path / "target.png"), "-o", str(tmp_path / "target.png"), "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["identity_to_original"] == pytest.approx(0.0, abs=1e-5) and same["landmark_error_pct"] == pytest.approx(0.0)


def test_eval_of_a_clip_with_plot(tmp_path, driver, capsys) -> None:
    clip = moving_face_clip(tmp_path / "clip.mp4", 12, size=(320, 180), tone_hz=None)
    write_image(driver, tmp_path / "driver.png")
    out = tmp_path / "swapped.mp4"
    assert main(["run", "-s", str(tmp_path / "driver.png"), "-t", str(clip), "-o", str(out), "--no-mark", "-q"]) == 0
    plot = tmp_path / "metrics.png"
    assert main(["eval", "-s", str(tmp_path / "driver.png"), "-t", str(clip), "-o", str(out), "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    assert "temporal change ratio" in text and "identity distance to source" in text
    ratio = float(text.split("temporal change ratio")[1].split()[0])
    assert 0.5 < ratio < 1.5
    image = read_image(plot)
    assert image.shape[0] > 300 and image.std() > 10  # a real drawing, not a blank page
    assert main(["eval", "-s", str(tmp_path / "driver.png"), "-t", str(clip), "-o", str(tmp_path / "nope.mp4")]) == 2


class _ShiftedPoints:
    """A stand-in for dlib: 68 points 50 px apart at the eyes, moved by the frame's mean grey level."""

    def steady_points(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        points = np.zeros((68, 2), np.float32)
        points[42:48] = [50.0, 0.0]
        return points + float(frame.mean())


def test_jitter_meter_pairs_frames_with_a_face_and_eval_counts_change_on_every_frame() -> None:
    from swapface.jitter import JitterMeter

    inputs = [np.full((20, 20, 3), v, np.uint8) for v in (0, 10, 20, 30)]
    outputs = [np.full((20, 20, 3), v, np.uint8) for v in (0, 10, 25, 30)]
    boxes = [np.array([5.0, 5, 15, 15]), None, np.array([5.0, 5, 15, 15]), np.array([5.0, 5, 15, 15])]
    pairs, every = JitterMeter(_ShiftedPoints()), JitterMeter(_ShiftedPoints(), every_frame_change=True)
    for inp, out, box in zip(inputs, outputs, boxes):
        pairs.add(inp, out, box)
        every.add(inp, out, box)
    # offsets 0, –, 5, 0: one pair with a face on both sides (frames 2 and 3), a jump of 5√2 / 50
    assert [f.jitter for f in pairs.frames] == [None, None, None, pytest.approx(np.sqrt(50) / 50)]
    assert [f.change_input for f in pairs.frames] == [None, None, None, 10.0]
    assert [f.change_input for f in every.frames] == [None, None, 10.0, 10.0]
    assert pairs.result().temporal_change_ratio == pytest.approx(0.5)
    assert every.result().temporal_change_ratio == pytest.approx(1.0)
