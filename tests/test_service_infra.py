"""The service on real infrastructure: PostgreSQL as the job store and gs:// (a fake GCS server on loopback)
as the object store, with encryption at rest — a real job end to end."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from media_fixtures import moving_face_clip
from service_fixtures import jpeg_bytes, live_service

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

KEK = "a2V5LWVuY3J5cHRpb24ta2V5LWZvci10ZXN0cy0zMmI="  # base64 of 32 bytes


def test_jobs_on_postgres_and_gcs(tmp_path, monkeypatch, fake_gcs, pg_url, astronaut, driver):
    # the chunk workers are spawned processes: they read the same settings from the environment
    for name, value in {"SWAPFACE_DATABASE_URL": pg_url, "SWAPFACE_STORAGE_URL": fake_gcs, "SWAPFACE_KEK": KEK,
                        "SWAPFACE_DATA_DIR": str(tmp_path / "data")}.items():
        monkeypatch.setenv(name, value)
    clip = moving_face_clip(tmp_path / "clip.mp4", frames=24, tone_hz=None)
    with live_service(tmp_path, workers=1, database_url=pg_url, storage_url=fake_gcs, kek=KEK) as svc, \
            svc.client() as http:
        image = http.post("/v1/jobs", files=[("source", ("a.jpg", jpeg_bytes(astronaut), "image/jpeg")),
                                             ("target", ("b.jpg", jpeg_bytes(driver), "image/jpeg"))]).json()
        video = http.post("/v1/jobs", files=[("source", ("a.jpg", jpeg_bytes(driver), "image/jpeg")),
                                             ("target", ("c.mp4", clip.read_bytes(), "video/mp4"))],
                          data={"chunk_seconds": "0.4"}).json()
        assert svc.wait(http, image["id"])["status"] == "succeeded"
        done = svc.wait(http, video["id"])
        assert done["status"] == "succeeded" and done["progress"]["frames_done"] == 24

        import fsspec

        gcs = fsspec.filesystem("gs")
        stored = gcs.find("studio/swapface")
        assert any(p.endswith(f"{image['id']}/outputs/result.jpg") for p in stored)
        assert not any("/work/" in p for p in stored)  # intermediates removed at job end
        for path in stored:
            if "/_keys/" not in path:
                raw = gcs.cat(path)
                assert b"\xff\xd8\xff" not in raw[:16] and b"ftyp" not in raw[:64]

        result = http.get(f"/v1/jobs/{image['id']}/result")
        swapped = np.asarray(Image.open(io.BytesIO(result.content)).convert("RGB"))
        assert swapped.shape == driver.shape and np.abs(swapped.astype(int) - driver).mean() > 1.0
        assert http.get(f"/v1/jobs/{video['id']}/result").content[4:8] == b"ftyp"

        assert http.delete(f"/v1/jobs/{image['id']}").status_code == 204
        assert not any(f"/{image['id']}/" in p for p in gcs.find("studio/swapface", refresh=True))
