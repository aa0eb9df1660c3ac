"""``output_video_fps`` and ``output_video_resolution`` through the real service: checked at submit (422 naming
the field, nothing stored) and honoured by a worker on a short carphone clip with audio."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from media_fixtures import audio_seconds, carphone_frames, write_clip
from service_fixtures import jpeg_bytes, live_service


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    path = write_clip(tmp_path_factory.mktemp("clip") / "car.mp4", carphone_frames(25), fps=25, tone_hz=440.0)
    return path.read_bytes()


def files(astronaut, target: tuple[str, bytes, str]) -> list:
    return [("source", ("a.jpg", jpeg_bytes(astronaut), "image/jpeg")), ("target", target)]


@pytest.mark.parametrize(("fields", "field", "said"), [
    ({"output_video_fps": "24"}, "output_video_fps", "image"),
    ({"output_video_resolution": "64x64"}, "output_video_resolution", "image"),
])
def test_an_image_target_refuses_the_video_options(tmp_path, astronaut, driver, fields, field, said):
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        answer = http.post("/v1/jobs", files=files(astronaut, ("d.jpg", jpeg_bytes(driver), "image/jpeg")), data=fields)
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert body["code"] == "bad_option" and body["field"] == field and said in body["detail"], body
        assert http.get("/v1/jobs").json()["jobs"] == []


def test_bad_values_name_their_field(tmp_path, astronaut, clip):
    with live_service(tmp_path, workers=0, max_video_pixels=640 * 480) as svc, svc.client() as http:
        video = ("car.mp4", clip, "video/mp4")
        for fields, field in [({"output_video_fps": "0"}, "output_video_fps"),
                              ({"output_video_fps": "500"}, "output_video_fps"),
                              ({"output_video_resolution": "1281x720"}, "output_video_resolution"),
                              ({"output_video_resolution": "wide"}, "output_video_resolution"),
                              ({"output_video_resolution": "1280x720"}, "output_video_resolution")]:  # over the limit
            answer = http.post("/v1/jobs", files=files(astronaut, video), data=fields)
            assert answer.status_code == 422 and answer.json()["field"] == field, (fields, answer.text)
        assert http.get("/v1/jobs").json()["jobs"] == []


@pytest.mark.slow
def test_a_video_job_is_resampled_and_scaled_with_its_audio(tmp_path, astronaut, clip):
    with live_service(tmp_path, workers=1) as svc, svc.client() as http:
        answer = http.post("/v1/jobs", files=files(astronaut, ("car.mp4", clip, "video/mp4")),
                           data={"output_video_fps": "10", "output_video_resolution": "352x288"})
        assert answer.status_code == 201, answer.text
        job = svc.wait(http, answer.json()["id"])
        assert job["status"] == "succeeded", job
        out = Path(tmp_path / "result.mp4")
        out.write_bytes(http.get(job["urls"]["result"]).content)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 10
        assert (stream.codec_context.width, stream.codec_context.height) == (352, 288)
        assert sum(1 for _ in container.decode(stream)) == 10  # 1 s at 10 fps
    (audio,) = audio_seconds(out)
    assert abs(audio - 1.0) <= 0.1 + 0.03
