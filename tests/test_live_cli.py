"""``swapface live`` from the command line: a local camera (here a video file standing in for one) swapped into a
recording, and the one-line errors for what cannot work (no virtual camera device, no face, no output)."""

from __future__ import annotations

import glob
import subprocess
import sys
from pathlib import Path

import av
import cv2
import pytest
from media_fixtures import carphone_frames, write_clip
from service_fixtures import free_port, jpeg_bytes

from swapface.faces.face import identity_distance
from swapface.provenance.inspect import inspect_file

pytestmark = pytest.mark.slow


def swapface(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "swapface.cli.main", "live", *args], check=False,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def files(tmp_path, astronaut) -> dict[str, Path]:
    paths = {"source": tmp_path / "astronaut.jpg", "blank": tmp_path / "blank.jpg", "camera": tmp_path / "camera.mp4"}
    paths["source"].write_bytes(jpeg_bytes(astronaut))
    paths["blank"].write_bytes(jpeg_bytes(cv2.resize(astronaut[:60, :60], (300, 300))))  # sky and hair, no face
    frames = [cv2.resize(f, (640, 480), interpolation=cv2.INTER_CUBIC) for f in carphone_frames(60)]
    write_clip(paths["camera"], frames, fps=30)
    return paths


def test_a_camera_swapped_into_a_marked_recording(tmp_path, files, astronaut, analyser):
    out = tmp_path / "live.mp4"
    done = swapface("-s", str(files["source"]), "--camera", str(files["camera"]), "--fps", "5", "--record", str(out))
    assert done.returncode == 0, done.stderr
    assert "frames/s" in done.stderr and "latency" in done.stderr
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert 5 <= len(frames) <= 60 and frames[0].shape == (480, 640, 3)  # frames the engine missed are skipped
    marks = inspect_file(out)
    assert marks["synthetic"] is True, marks
    camera = cv2.resize(carphone_frames(60)[30], (640, 480), interpolation=cv2.INTER_CUBIC)
    shown = analyser.analyse_still(frames[len(frames) // 2])[0].embedding
    person, driver = analyser.analyse_still(astronaut)[0].embedding, analyser.analyse_still(camera)[0].embedding
    assert identity_distance(shown, person) < identity_distance(shown, driver)
    label = frames[-1][440:475, 520:635].astype(int)  # the visible label, bottom right
    assert (label > 220).all(axis=2).sum() > 30


@pytest.mark.skipif(bool(glob.glob("/dev/video*")), reason="a video device exists here")
def test_no_virtual_camera_device_is_one_line_saying_what_to_install(files):
    done = swapface("-s", str(files["source"]), "--camera", str(files["camera"]), "--virtual-camera")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "v4l2loopback" in lines[0] and "OBS" in lines[0]


def test_bad_input_is_one_error_line(files, tmp_path):
    for args, words in [
        (["-s", str(files["blank"]), "--camera", str(files["camera"]), "--record", str(tmp_path / "a.mp4")],
         "no face found in source image #1"),
        (["-s", str(files["blank"]), "--no-open", "--port", str(free_port())], "no face found in source image #1"),
        (["-s", str(files["source"]), "--camera", str(files["camera"])], "--virtual-camera and/or --record"),
        (["-s", str(files["source"]), "--fps", "10", "--no-open"], "--fps applies to --camera"),
        (["-s", str(files["source"]), "--camera", str(tmp_path / "none.mp4"), "--record", str(tmp_path / "b.mp4")],
         "cannot open camera"),
        (["-s", str(files["source"]), "--face-selector-mode", "reference", "--camera", str(files["camera"]),
          "--record", str(tmp_path / "c.mp4")], "not available live"),
    ]:
        done = swapface(*args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, done.stderr)
        assert words in lines[0], (args, lines[0])
    assert not list(tmp_path.glob("*.mp4")) or [p.name for p in tmp_path.glob("*.mp4")] == ["camera.mp4"]
