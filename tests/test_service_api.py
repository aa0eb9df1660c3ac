"""The HTTP API end to end on loopback: real jobs (image and video) submitted, followed, downloaded."""

from __future__ import annotations

import io
import json

import av
import numpy as np
import pytest
from PIL import Image

from media_fixtures import moving_face_clip
from service_fixtures import jpeg_bytes, live_service
from swapface.faces.face import identity_distance

pytestmark = pytest.mark.slow


def _identity(analyser, frame: np.ndarray) -> np.ndarray:
    faces = analyser.analyse_still(frame)
    assert faces, "no face found"
    return faces[0].embedding


def test_image_and_video_jobs_over_http(tmp_path, astronaut, driver, analyser):
    clip = moving_face_clip(tmp_path / "clip.mp4", frames=36, tone_hz=440.0)
    with live_service(tmp_path, workers=1) as svc, svc.client() as http:
        image = http.post("/v1/jobs", files=[("source", ("me.jpg", jpeg_bytes(astronaut), "image/jpeg")),
                                             ("target", ("them.jpg", jpeg_bytes(driver), "image/jpeg"))],
                          data={"face_mask_blur": "0.35", "face_mask_padding": "0,0,0,0"})
        assert image.status_code == 201, image.text
        assert image.headers["location"] == f"/v1/jobs/{image.json()['id']}"
        video = http.post("/v1/jobs", files=[("source", ("driver.jpg", jpeg_bytes(driver), "image/jpeg")),
                                             ("target", ("clip.mp4", clip.read_bytes(), "video/mp4"))],
                          data={"options": json.dumps({"chunk_seconds": 0.5})})
        assert video.status_code == 201, video.text
        assert video.json()["kind"] == "video" and video.json()["options"] == {"chunk_seconds": 0.5}

        done_image = svc.wait(http, image.json()["id"])
        done_video = svc.wait(http, video.json()["id"])
        assert done_image["status"] == "succeeded", done_image
        assert done_video["status"] == "succeeded", done_video
        assert done_video["progress"]["frames_done"] == done_video["progress"]["frames_total"] == 36
        assert done_video["progress"]["chunks_total"] >= 2
        assert done_video["usage"]["frames"] == 36 and done_video["usage"]["compute_seconds"] > 0

        # the image result carries the source's identity
        result = http.get(f"/v1/jobs/{done_image['id']}/result")
        assert result.status_code == 200 and result.headers["content-type"] == "image/jpeg"
        swapped = np.asarray(Image.open(io.BytesIO(result.content)).convert("RGB"))
        assert swapped.shape == driver.shape
        src, out, orig = (_identity(analyser, f) for f in (astronaut, swapped, driver))
        assert identity_distance(out, src) < identity_distance(out, orig)

        # the video result has every frame, and its audio
        body = http.get(f"/v1/jobs/{done_video['id']}/result")
        assert body.headers["content-type"] == "video/mp4"
        path = tmp_path / "result.mp4"
        path.write_bytes(body.content)
        with av.open(str(path)) as container:
            assert len(container.streams.audio) == 1
            assert sum(1 for _ in container.decode(video=0)) == 36

        # Range requests
        part = http.get(f"/v1/jobs/{done_video['id']}/result", headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and part.content == body.content[:100]
        assert part.headers["content-range"].startswith("bytes 0-99/")

        # server-sent events of a finished job end at once with its final state
        with http.stream("GET", f"/v1/jobs/{done_image['id']}/events") as events:
            text = "".join(events.iter_text())
        assert "event: end" in text and '"status": "succeeded"' in text

        # listing, filtering, usage, metrics
        listed = http.get("/v1/jobs", params={"status": "succeeded"}).json()["jobs"]
        assert {j["id"] for j in listed} == {done_image["id"], done_video["id"]}
        usage = http.get("/v1/usage").json()
        assert usage["jobs"] == 2 and usage["frames"] == 37
        metrics = http.get("/metrics").text
        assert 'swapface_jobs{state="succeeded"} 2.0' in metrics
        assert "swapface_job_latency_seconds_count 2.0" in metrics
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json()["status"] == "ready"
        assert "/v1/jobs" in http.get("/openapi.json").json()["paths"]

        # intermediates are gone once a job ends
        root = svc.settings.data_dir / "objects"
        assert not any((root / done_video["id"]).glob("work/**/*.mp4"))


def test_events_follow_progress_of_a_running_video(tmp_path, driver):
    clip = moving_face_clip(tmp_path / "clip.mp4", frames=30, tone_hz=None)
    with live_service(tmp_path, workers=1) as svc, svc.client() as http:
        job = http.post("/v1/jobs", files=[("source", ("a.jpg", jpeg_bytes(driver), "image/jpeg")),
                                           ("target", ("c.mp4", clip.read_bytes(), "video/mp4"))],
                        data={"chunk_seconds": "0.3"}).json()
        updates = []
        with http.stream("GET", f"/v1/jobs/{job['id']}/events", timeout=120) as events:
            event = None
            for line in events.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    updates.append((event, json.loads(line[6:])))
        assert updates[-1][0] == "end" and updates[-1][1]["status"] == "succeeded"
        states = [u["status"] for _, u in updates]
        assert states[0] in ("queued", "running") and "succeeded" not in states[:-1]
        done = [u["progress"]["frames_done"] for _, u in updates]
        assert done == sorted(done) and done[-1] == 30


def test_idempotency_cancel_and_delete(tmp_path, astronaut, driver):
    files = [("source", ("a.jpg", jpeg_bytes(astronaut), "image/jpeg")), ("target", ("b.jpg", jpeg_bytes(driver), "image/jpeg"))]
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        first = http.post("/v1/jobs", files=files, headers={"Idempotency-Key": "order-17"})
        again = http.post("/v1/jobs", files=files, headers={"Idempotency-Key": "order-17"})
        assert first.status_code == 201 and again.status_code == 200
        assert first.json()["id"] == again.json()["id"]
        other = http.post("/v1/jobs", files=files, data={"face_selector_mode": "many"},
                          headers={"Idempotency-Key": "order-17"})
        assert other.status_code == 422 and other.json()["code"] == "idempotency_mismatch"
        assert len(http.get("/v1/jobs").json()["jobs"]) == 1

        job_id = first.json()["id"]
        assert http.get(f"/v1/jobs/{job_id}/result").status_code == 409
        cancelled = http.post(f"/v1/jobs/{job_id}/cancel")
        assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
        assert http.post(f"/v1/jobs/{job_id}/cancel").status_code == 409

        root = svc.settings.data_dir / "objects"
        assert any((root / job_id).rglob("*.jpg"))
        assert http.delete(f"/v1/jobs/{job_id}").status_code == 204
        assert not (root / job_id).exists()
        gone = http.get(f"/v1/jobs/{job_id}").json()
        assert gone["purged"] is True and gone["status"] == "cancelled"
        assert http.get(f"/v1/jobs/{job_id}/result").status_code == 410
        assert http.get("/v1/jobs/not-a-job").status_code == 404


def test_pagination_walks_every_job_once(tmp_path, astronaut):
    small = jpeg_bytes(astronaut[::4, ::4])
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        ids = {http.post("/v1/jobs", files=[("source", ("a.jpg", small, "image/jpeg")),
                                            ("target", ("b.jpg", small, "image/jpeg"))]).json()["id"] for _ in range(7)}
        seen, cursor = [], None
        while True:
            page = http.get("/v1/jobs", params={"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
            seen += [j["id"] for j in page["jobs"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(seen) == sorted(ids)
        assert http.get("/v1/jobs", params={"cursor": "garbage"}).status_code == 400
        assert http.get("/v1/jobs", params={"status": "sleeping"}).status_code == 422


def test_a_job_past_its_time_limit_fails_with_timeout(tmp_path, driver):
    clip = moving_face_clip(tmp_path / "clip.mp4", frames=60, tone_hz=None)
    with live_service(tmp_path, workers=1, job_timeout_s=0.5) as svc, svc.client() as http:
        job = http.post("/v1/jobs", files=[("source", ("a.jpg", jpeg_bytes(driver), "image/jpeg")),
                                           ("target", ("c.mp4", clip.read_bytes(), "video/mp4"))],
                        data={"chunk_seconds": "0.2"}).json()
        done = svc.wait(http, job["id"])
        assert done["status"] == "failed" and done["attempts"] == 1
        assert done["error"] == {"code": "timeout", "message": "the job ran past its time limit"}
        assert http.get(f"/v1/jobs/{job['id']}/result").status_code == 409
        assert not (svc.settings.data_dir / "objects" / job["id"] / "work").exists()
        assert 'swapface_job_failures_total{code="timeout"} 1.0' in http.get("/metrics").text
