"""Video swaps end to end through `swapface run`: real footage, faces swapped where there are faces,
everything else (frame count, timing, audio, frames without a face) kept; bad input handled."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from media_fixtures import audio_seconds, carphone_path, moving_face_clip, no_face_clip, truncate, vfr_clip
from swapface.cli.main import main
from swapface.faces.face import identity_distance
from swapface.media import video
from swapface.media.image import read_image, write_image


@pytest.fixture(scope="module")
def files(tmp_path_factory, astronaut, driver) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("vswap")
    write_image(astronaut, d / "astronaut.png")
    write_image(driver, d / "driver.png")
    return {
        "dir": d,
        "astronaut": d / "astronaut.png",
        "driver": d / "driver.png",
        "moving": moving_face_clip(d / "moving.mp4", 36, size=(480, 270), face_from=8),
    }


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _main_embedding(analyser, frame: np.ndarray) -> np.ndarray | None:
    faces = analyser.analyse_still(frame)
    return faces[0].embedding if faces else None


def _run(*args: str) -> int:
    return main(["run", *args, "--no-mark", "--quiet"])


def test_carphone_swapped_with_timing_kept(files, analyser) -> None:
    out = files["dir"] / "carphone_swapped.mp4"
    assert _run("-s", str(files["astronaut"]), "-t", str(carphone_path()), "-o", str(out)) == 0
    before, after = video.probe(carphone_path()), video.probe(out)
    assert (after.frames, after.width, after.height) == (120, 176, 144)
    assert video.frame_times(out) == pytest.approx(video.frame_times(carphone_path()), abs=1e-4)
    astronaut = _main_embedding(analyser, read_image(files["astronaut"]))
    inputs, outputs = _decode(carphone_path()), _decode(out)
    closer = 0
    sampled = range(5, 120, 23)
    for i in sampled:
        e_in, e_out = _main_embedding(analyser, inputs[i]), _main_embedding(analyser, outputs[i])
        assert e_in is not None and e_out is not None
        if identity_distance(e_out, astronaut) < identity_distance(e_in, astronaut) - 0.05:
            closer += 1
    assert closer == len(sampled), "every sampled frame moved towards the source identity"
    assert before.fps == after.fps


def test_faces_swapped_only_where_there_are_faces_audio_kept(files, analyser) -> None:
    src, out = files["moving"], files["dir"] / "moving_swapped.mp4"
    assert _run("-s", str(files["driver"]), "-t", str(src), "-o", str(out), "--chunk-seconds", "0.5") == 0
    assert video.probe(out).frames == 36
    assert video.frame_times(out) == pytest.approx(video.frame_times(src), abs=1e-4)
    assert audio_seconds(out) == pytest.approx(audio_seconds(src), abs=0.05)
    inputs, outputs = _decode(src), _decode(out)
    for i in range(8):  # no face yet: only encoding noise
        assert np.abs(inputs[i].astype(int) - outputs[i]).mean() < 1.5
    driver = _main_embedding(analyser, read_image(files["driver"]))
    for i in (10, 21, 33):
        e_in, e_out = _main_embedding(analyser, inputs[i]), _main_embedding(analyser, outputs[i])
        assert e_in is not None and e_out is not None
        assert identity_distance(e_out, driver) < identity_distance(e_in, driver) - 0.05


def test_no_face_video_passes_through(files) -> None:
    src = no_face_clip(files["dir"] / "bars.mp4", 20)
    out = files["dir"] / "bars_out.mp4"
    assert _run("-s", str(files["astronaut"]), "-t", str(src), "-o", str(out)) == 0
    a, b = _decode(src), _decode(out)
    assert len(a) == len(b) == 20
    mse = np.mean([(x.astype(float) - y) ** 2 for x, y in zip(a, b)])
    assert 10 * np.log10(255**2 / mse) > 35  # unchanged up to re-encoding
    assert audio_seconds(out) == pytest.approx(audio_seconds(src), abs=0.05)


def test_vfr_clip_keeps_its_timestamps(files) -> None:
    src = vfr_clip(files["dir"] / "vfr.mp4", 30)
    out = files["dir"] / "vfr_out.mkv"
    assert _run("-s", str(files["driver"]), "-t", str(src), "-o", str(out), "--chunk-seconds", "1") == 0
    assert video.frame_times(out) == pytest.approx(video.frame_times(src), abs=1e-3)


def test_truncated_video_reports_lost_frames(files, capsys) -> None:
    broken = truncate(files["moving"], files["dir"] / "broken.mp4", 0.55)
    out = files["dir"] / "broken_out.mp4"
    assert _run("-s", str(files["driver"]), "-t", str(broken), "-o", str(out)) == 0
    decodable = video.count_decodable(broken)
    err = capsys.readouterr().err
    assert f"the output has the {decodable} decodable frame(s)" in err
    lost = int(err.split("warning: ")[1].split(" frame")[0])
    assert lost == 36 - decodable > 0
    assert video.probe(out).frames == decodable


def test_not_a_video_exits_2_with_one_line(files, capsys) -> None:
    bogus = files["dir"] / "clip.mp4.txt"
    bogus.write_text("hello")
    renamed = bogus.rename(files["dir"] / "fake.mov")
    assert _run("-s", str(files["astronaut"]), "-t", str(renamed), "-o", str(files["dir"] / "x.mp4")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a video" in err[0]
