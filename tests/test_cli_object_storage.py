"""``swapface run`` straight on object storage (gs:// on a fake GCS server on loopback): video and image jobs
read their inputs from the bucket, write a marked output there, and resume from a work folder beside it."""

from __future__ import annotations

import av
import numpy as np
import pytest

from media_fixtures import moving_face_clip
from service_fixtures import jpeg_bytes
from swapface.cli.main import main as cli
from swapface.media.image import read_image
from swapface.provenance.inspect import inspect_file

pytestmark = pytest.mark.slow


def test_run_on_gs_uris(tmp_path, fake_gcs, astronaut, driver, capsys):
    import fsspec

    gcs = fsspec.filesystem("gs")
    clip = moving_face_clip(tmp_path / "clip.mp4", frames=30, tone_hz=440.0)
    gcs.pipe(f"{fake_gcs[5:]}/in/face.jpg", jpeg_bytes(astronaut))
    gcs.pipe(f"{fake_gcs[5:]}/in/driver.jpg", jpeg_bytes(driver))
    gcs.put_file(str(clip), f"{fake_gcs[5:]}/in/clip.mp4")

    assert cli(["run", "-s", f"{fake_gcs}/in/face.jpg", "-t", f"{fake_gcs}/in/clip.mp4",
                "-o", f"{fake_gcs}/out/clip.mp4", "--chunk-seconds", "0.4", "--quiet"]) == 0
    video = tmp_path / "out.mp4"
    gcs.get_file(f"{fake_gcs[5:]}/out/clip.mp4", str(video))
    with av.open(str(video)) as container:
        assert len(container.streams.audio) == 1
        assert sum(1 for _ in container.decode(video=0)) == 30
    assert inspect_file(video)["synthetic"]
    assert not [p for p in gcs.find(f"{fake_gcs[5:]}/out", refresh=True) if "swapface-work" in p]  # work folder gone

    assert cli(["run", "-s", f"{fake_gcs}/in/face.jpg", "-t", f"{fake_gcs}/in/driver.jpg",
                "-o", f"{fake_gcs}/out/driver.png", "--quiet"]) == 0
    image = tmp_path / "out.png"
    gcs.get_file(f"{fake_gcs[5:]}/out/driver.png", str(image))
    swapped = read_image(image)
    assert swapped.shape == driver.shape and np.abs(swapped.astype(int) - driver).mean() > 1.0
    assert inspect_file(image)["synthetic"]

    capsys.readouterr()
    assert cli(["run", "-s", f"{fake_gcs}/in/nobody.jpg", "-t", f"{fake_gcs}/in/clip.mp4",
                "-o", f"{fake_gcs}/out/x.mp4"]) == 2
    assert "no such object" in capsys.readouterr().err
