"""The command line on real images: results are written, bad input gets one clear line and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from swapface.cli.main import main
from swapface.media.image import read_image, write_image


@pytest.fixture(scope="module")
def files(tmp_path_factory, astronaut, driver) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    write_image(astronaut, folder / "astronaut.jpg", quality=95)
    write_image(driver, folder / "driver.png")
    write_image(np.full((240, 320, 3), 128, np.uint8), folder / "wall.png")
    (folder / "notes.jpg").write_text("this is not an image")
    return folder


def run_cli(*args: str) -> int:
    return main(list(args))


def test_run_swaps_an_image_and_reports(files, capsys):
    out = files / "result.jpg"
    assert run_cli("run", "-s", str(files / "astronaut.jpg"), "-t", str(files / "driver.png"), "-o", str(out)) == 0
    assert "swapped 1 face" in capsys.readouterr().out
    result = read_image(out)
    assert result.shape == read_image(files / "driver.png").shape
    assert not np.array_equal(result, read_image(files / "driver.png"))


def test_processor_chain_with_debugger(files):
    out = files / "debug.png"
    code = run_cli(
        "run", "-s", str(files / "astronaut.jpg"), "-t", str(files / "driver.png"), "-o", str(out),
        "--processors", "face_swapper,face_debugger", "--face-mask-blur", "0.5", "--color-transfer", "off",
    )
    assert code == 0
    result = read_image(out)
    # the debugger draws the box in pure green
    assert ((result[..., 0] == 0) & (result[..., 1] == 255) & (result[..., 2] == 0)).sum() > 100


def test_target_without_a_face_is_written_through_with_a_warning(files, capsys):
    out = files / "wall-out.png"
    assert run_cli("run", "-s", str(files / "astronaut.jpg"), "-t", str(files / "wall.png"), "-o", str(out)) == 0
    assert "no face" in capsys.readouterr().err
    assert np.array_equal(read_image(out), read_image(files / "wall.png"))


@pytest.mark.parametrize(
    ("source", "target", "output", "extra", "message"),
    [
        ("notes.jpg", "driver.png", "o.jpg", [], "not a supported image"),
        ("missing.jpg", "driver.png", "o.jpg", [], "no such file"),
        ("wall.png", "driver.png", "o.jpg", [], "no face found in source"),
        ("astronaut.jpg", "driver.png", "no/such/folder/o.jpg", [], "folder does not exist"),
        ("astronaut.jpg", "driver.png", "o.jpg", ["--face-selector-mode", "everyone"], "face_selector_mode"),
        ("astronaut.jpg", "driver.png", "o.jpg", ["--face-mask-blur", "7"], "face_mask_blur"),
        ("astronaut.jpg", "driver.png", "o.jpg", ["--face-selector-mode", "reference"], "reference"),
        ("astronaut.jpg", "driver.png", "o.jpg", ["--processors", "sparkles"], "unknown processor"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(files, capsys, source, target, output, extra, message):
    code = run_cli("run", "-s", str(files / source), "-t", str(files / target), "-o", str(files / output), *extra)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_decompression_bomb_limit(files, capsys, monkeypatch):
    monkeypatch.setenv("SWAPFACE_MAX_IMAGE_PIXELS", "10000")
    code = run_cli("run", "-s", str(files / "astronaut.jpg"), "-t", str(files / "driver.png"), "-o", str(files / "x.jpg"))
    assert code == 2
    assert "over the limit" in capsys.readouterr().err


def test_compare_prints_distance_and_verdict(files, capsys):
    assert run_cli("compare", str(files / "astronaut.jpg"), str(files / "driver.png")) == 0
    assert "different people" in capsys.readouterr().out


def test_installed_command_and_demo(tmp_path):
    exe = Path(sys.executable).with_name("swapface")
    proc = subprocess.run([str(exe), "demo", "-o", str(tmp_path / "demo")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    sheet = read_image(tmp_path / "demo" / "side-by-side.png")
    assert sheet.shape[0] >= 700 and sheet.shape[1] > 1000
    assert (tmp_path / "demo" / "driver-as-astronaut.jpg").is_file()
    bad = subprocess.run([str(exe), "run", "-s", "nope.jpg", "-t", "nope.jpg", "-o", "x.jpg"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and "Traceback" not in bad.stderr
