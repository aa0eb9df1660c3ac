"""Issue 5 through the real service, part 2: what happens to the media of real jobs.

One encrypted service (``SWAPFACE_KEK``) with a loopback webhook receiver runs an image job, a video
job and a job that fails (no face in the source), all uploaded under private-looking file names and
with a webhook URL, by an API key, while every log record of the process is captured as JSON. The
tests below then check, on those same jobs: the results are swapped and carry the synthetic-media
marks; the webhooks arrived signed and thin; nothing readable is stored and a deleted job's key is
gone; and the logs hold none of the names, paths, keys or secrets. (Chunks run in a spawned process
whose logs are not captured here; ``tests/test_logs.py`` covers the engine's own log lines.)
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from media_fixtures import moving_face_clip, moving_face_frames
from service_fixtures import LiveService, jpeg_bytes, live_service
from swapface import storage
from swapface.cli.main import main as cli
from swapface.provenance.inspect import inspect_file
from swapface.provenance.xmp import DIGITAL_SOURCE_TYPE
from swapface.service.logging import configure_logging
from swapface.storage.crypto import MAGIC, DecryptError

pytestmark = pytest.mark.slow

MARK = "zqxprivate"  # in every name the caller chooses: uploads, the webhook URL
KEK = base64.b64encode(b"trust-tests-key-encryption-key!!").decode()
CLIP_FRAMES = 30
DRIVER_HEAD = (160, 60, 460, 440)  # x1, y1, x2, y2 of the face in the ``driver`` picture
# plaintext media signatures that would give a stored file away (long enough not to occur in ciphertext by chance)
PLAINTEXT = re.compile(rb"\xff\xd8\xff(?:\xe0..JFIF\x00|\xe1..Exif\x00|\xdb\x00[\x43\x84])|\x89PNG\r\n\x1a\n"
                       rb"|ftyp(?:isom|iso[2-9]|mp4[12]|avc1|M4V |qt  |dash)", re.DOTALL)


class Receiver:
    """A webhook endpoint on loopback that records every delivery."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, dict[str, str], bytes]] = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.changed:
                    receiver.deliveries.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.changed.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def wait_for(self, job_id: str, timeout: float = 30.0) -> tuple[str, dict[str, str], bytes]:
        """The delivery about ``job_id`` (exactly one)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = [d for d in self.deliveries if json.loads(d[2])["data"]["job_id"] == job_id]
                if found:
                    assert len(found) == 1, found
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no webhook for job {job_id} in {timeout}s")
                self.changed.wait(left)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@dataclass
class Run:
    """The shared service and what its jobs left behind."""

    svc: LiveService
    http: httpx.Client
    key: str
    tmp: Path
    logs: io.StringIO
    uploads: dict[str, bytes]
    answers: dict[str, dict[str, Any]]  # the 201 bodies, by job name
    jobs: dict[str, dict[str, Any]]  # the final job states, by name
    results: dict[str, Path] = field(default_factory=dict)

    @property
    def objects(self) -> Path:
        return self.svc.settings.data_dir / "objects"

    def uri(self, job: str, relative: str) -> str:
        return (self.objects / self.jobs[job]["id"] / relative).as_uri()


@pytest.fixture(scope="module")
def run(tmp_path_factory, receiver, astronaut, driver) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("trust")
    logs = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(logging.DEBUG, logs)
    try:
        with pytest.MonkeyPatch.context() as env:
            # chunks run in a spawned process, which reads its settings from the environment
            env.setenv("SWAPFACE_KEK", KEK)
            env.setenv("SWAPFACE_DATA_DIR", str(tmp / "data"))
            clip = moving_face_clip(tmp / f"{MARK}_talk.mp4", frames=CLIP_FRAMES, tone_hz=440.0)
            uploads = {"face": jpeg_bytes(astronaut), "party": jpeg_bytes(driver), "clip": clip.read_bytes(),
                       "blank": jpeg_bytes(np.full((240, 240, 3), 128, np.uint8))}
            with live_service(tmp, workers=1, kek=KEK, webhook_allow_http=True,
                              webhook_allowlist=["127.0.0.1"]) as svc:
                _, key = svc.runtime.keys.create("studio")
                hook = receiver.url(f"/hooks/{MARK}?job=1")
                requests = {
                    "image": [("source", f"{MARK}_holiday.jpg", uploads["face"]),
                              ("target", f"{MARK}_party.jpg", uploads["party"])],
                    "video": [("source", f"{MARK}_me.jpg", uploads["party"]),
                              ("target", f"{MARK}_talk.mp4", uploads["clip"])],
                    "noface": [("source", f"{MARK}_blank.jpg", uploads["blank"]),
                               ("target", f"{MARK}_party.jpg", uploads["party"])],
                }
                with svc.client(key) as http:
                    answers = {}
                    for name, parts in requests.items():
                        files = [(f, (n, data, "video/mp4" if n.endswith(".mp4") else "image/jpeg"))
                                 for f, n, data in parts]
                        extra = {"chunk_seconds": "0.4"} if name == "video" else {}
                        answer = http.post("/v1/jobs", files=files, data={"webhook_url": hook, **extra})
                        assert answer.status_code == 201, answer.text
                        answers[name] = answer.json()
                    jobs = {name: svc.wait(http, a["id"]) for name, a in answers.items()}
                    out = Run(svc, http, key, tmp, logs, uploads, answers, jobs)
                    for name, ext in (("image", "jpg"), ("video", "mp4")):
                        assert jobs[name]["status"] == "succeeded", jobs[name]
                        result = http.get(f"/v1/jobs/{jobs[name]['id']}/result")
                        assert result.status_code == 200
                        out.results[name] = tmp / f"result.{ext}"
                        out.results[name].write_bytes(result.content)
                    yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_results_are_swapped_and_marked(run, driver, capsys):
    image = np.asarray(Image.open(run.results["image"]).convert("RGB")).astype(np.int16)
    assert image.shape == driver.shape
    change = np.abs(image - driver).mean(axis=2)
    x1, y1, x2, y2 = DRIVER_HEAD
    face = change[y1:y2, x1:x2].mean()
    outside = (change.sum() - change[y1:y2, x1:x2].sum()) / (change.size - (y2 - y1) * (x2 - x1))
    assert face > 4 and face > 4 * outside, (face, outside)  # the face changed, the rest only by re-encoding

    with av.open(str(run.results["video"])) as container:
        frames = [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]
        assert len(container.streams.audio) == 1
    assert len(frames) == CLIP_FRAMES
    originals = moving_face_frames(CLIP_FRAMES)
    background = moving_face_frames(1, face_from=1)[0]
    for i in (0, CLIP_FRAMES // 2, CLIP_FRAMES - 1):
        head = np.any(originals[i] != background, axis=2)
        change = np.abs(frames[i] - originals[i]).mean(axis=2)
        assert change[head].mean() > 4 * change[~head].mean() and change[head].mean() > 5, (i, change[head].mean(), change[~head].mean())

    for name, path in run.results.items():  # ranges of an encrypted result are ranges of the clear file
        part = run.http.get(f"/v1/jobs/{run.jobs[name]['id']}/result", headers={"Range": "bytes=100-299"})
        assert part.status_code == 206 and part.content == path.read_bytes()[100:300]

    image_report, video_report = inspect_file(run.results["image"]), inspect_file(run.results["video"])
    assert image_report["synthetic"] and image_report["xmp_digital_source_type"] == DIGITAL_SOURCE_TYPE
    assert video_report["synthetic"] and video_report["container_tag"] == DIGITAL_SOURCE_TYPE
    for path in run.results.values():
        assert cli(["inspect", str(path)]) == 0
        assert "marked as synthetic: yes" in capsys.readouterr().out


def test_webhooks_from_real_jobs(run, receiver):
    from standardwebhooks import Webhook
    from standardwebhooks.webhooks import WebhookVerificationError

    secrets = {name: answer["webhook_secret"] for name, answer in run.answers.items()}
    assert all(s.startswith("whsec_") for s in secrets.values()) and len(set(secrets.values())) == 3
    expected = {"image": "succeeded", "video": "succeeded", "noface": "failed"}
    ids = set()
    for name, status in expected.items():
        job_id = run.jobs[name]["id"]
        assert run.jobs[name]["status"] == status and run.jobs[name]["has_webhook"] is True
        assert "webhook_secret" not in run.http.get(f"/v1/jobs/{job_id}").json()  # shown once, at creation
        path, headers, body = receiver.wait_for(job_id)
        assert path == f"/hooks/{MARK}?job=1"
        event = Webhook(secrets[name]).verify(body, headers)
        assert event["type"] == f"job.{status}" and event["data"] == {"job_id": job_id, "status": status}
        assert set(event) == {"type", "timestamp", "data"}  # thin: no URLs, names or results
        assert not re.search(rb"://|\.jpg|\.mp4|" + MARK.encode(), body)
        other = secrets["video" if name == "image" else "image"]
        with pytest.raises(WebhookVerificationError):
            Webhook(other).verify(body, headers)
        ids.add(headers["webhook-id"])
    assert len(ids) == 3

    failed = run.jobs["noface"]
    # the engine refuses a source without a face as the caller's error: failed at once, not retried
    assert failed["error"]["code"] == "no_face_in_source" and "no face" in failed["error"]["message"]
    assert failed["attempts"] == 1 and MARK not in failed["error"]["message"]


def test_cancelling_or_deleting_a_queued_job_sends_its_webhook(tmp_path, receiver, astronaut):
    from standardwebhooks import Webhook

    secret = "whsec_" + base64.b64encode(b"c" * 32).decode()
    small = jpeg_bytes(astronaut[::4, ::4])
    files = [("source", ("a.jpg", small, "image/jpeg")), ("target", ("b.jpg", small, "image/jpeg"))]
    with live_service(tmp_path, workers=0, webhook_allow_http=True, webhook_allowlist=["127.0.0.1"]) as svc, \
            svc.client() as http:
        job = http.post("/v1/jobs", files=files, data={"webhook_url": receiver.url("/cancelled"),
                                                       "webhook_secret": secret})
        assert job.status_code == 201 and "webhook_secret" not in job.json()  # the caller chose it
        assert http.post(f"/v1/jobs/{job.json()['id']}/cancel").json()["status"] == "cancelled"
        _, headers, body = receiver.wait_for(job.json()["id"])
        event = Webhook(secret).verify(body, headers)
        assert event["type"] == "job.cancelled" and event["data"]["status"] == "cancelled"

        deleted = http.post("/v1/jobs", files=files, data={"webhook_url": receiver.url("/deleted")})
        assert http.delete(f"/v1/jobs/{deleted.json()['id']}").status_code == 204  # deleting a queued job ends it
        _, headers, body = receiver.wait_for(deleted.json()["id"])
        assert Webhook(deleted.json()["webhook_secret"]).verify(body, headers)["type"] == "job.cancelled"


def test_stored_objects_are_ciphertext(run):
    stored = [p for p in run.objects.rglob("*") if p.is_file() and "_keys" not in p.relative_to(run.objects).parts]
    names = {str(p.relative_to(run.objects / run.jobs[j]["id"])) for j in ("image", "video") for p in stored
             if p.is_relative_to(run.objects / run.jobs[j]["id"])}
    assert {"inputs/source-0.jpg", "inputs/target.jpg", "outputs/result.jpg", "inputs/target.mp4",
            "outputs/result.mp4"} <= names
    assert not any("work" in p.relative_to(run.objects).parts for p in stored)  # intermediates gone
    plaintexts = list(run.uploads.values()) + [p.read_bytes() for p in run.results.values()]
    assert all(PLAINTEXT.search(data) for data in plaintexts)  # the detector finds every file in the clear
    runs = [data[i:i + 64] for data in plaintexts for i in (len(data) // 3, len(data) // 2, len(data) - 200)]
    for path in stored:
        raw = path.read_bytes()
        assert raw.startswith(MAGIC), path.name
        scope = path.relative_to(run.objects).parts[0]
        assert raw[46:46 + len(scope)] == scope.encode()  # sealed to its own job
        assert PLAINTEXT.search(raw) is None, path.name
        assert not any(chunk in raw for chunk in runs), path.name
    for name in run.jobs:  # one wrapped data key per job, nothing readable in it
        key_file = run.objects / "_keys" / f"{run.jobs[name]['id']}.json"
        assert key_file.is_file() and PLAINTEXT.search(key_file.read_bytes()) is None


def test_an_object_moved_to_another_job_does_not_decrypt(run):
    image_out, video_out = run.uri("image", "outputs/result.jpg"), run.uri("video", "outputs/result.mp4")
    video_path = Path(video_out[len("file://"):])
    original = video_path.read_bytes()
    video_id = run.jobs["video"]["id"]
    try:
        shutil.copyfile(image_out[len("file://"):], video_path)  # another job's (valid) ciphertext
        moved = run.http.get(f"/v1/jobs/{video_id}/result")
        assert moved.status_code == 410 and moved.json()["code"] == "gone"
        for job_id in (video_id, None):
            with pytest.raises(DecryptError):
                with storage.fetch(video_out, job_id=job_id, settings=run.svc.settings):
                    pass
        renamed = run.uri("image", "outputs/renamed.jpg")  # the same job, another name: also refused
        shutil.copyfile(image_out[len("file://"):], renamed[len("file://"):])
        with pytest.raises(DecryptError):
            with storage.fetch(renamed, settings=run.svc.settings):
                pass
        Path(renamed[len("file://"):]).unlink()
    finally:
        video_path.write_bytes(original)
    again = run.http.get(f"/v1/jobs/{video_id}/result")
    assert again.status_code == 200 and again.content == run.results["video"].read_bytes()


def test_delete_removes_media_and_data_key(run):
    job_id = run.jobs["image"]["id"]
    folder = run.objects / job_id
    backup = run.tmp / "backup.bin"  # a copy kept elsewhere (a backup, a replica)
    shutil.copyfile(folder / "outputs" / "result.jpg", backup)
    count = sum(1 for p in folder.rglob("*") if p.is_file())

    assert run.http.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert not folder.exists() and not (run.objects / "_keys" / f"{job_id}.json").exists()
    assert run.http.get(f"/v1/jobs/{job_id}/result").status_code == 410
    assert run.http.get(f"/v1/jobs/{job_id}").json()["purged"] is True

    with run.svc.runtime.store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(
            sa.text("SELECT what, reason, object_hash FROM retention_audit WHERE job_id = :j"), {"j": job_id})]
    assert {r["reason"] for r in rows} == {"deleted"}
    assert sum(r["what"] != "key" for r in rows) == count and [r["what"] for r in rows].count("key") == 1
    assert {"input", "output"} <= {r["what"] for r in rows}
    assert all(r["object_hash"] is None or re.fullmatch(r"[0-9a-f]{32}", r["object_hash"]) for r in rows)

    # the backup cannot be read back: its data key is gone
    (folder / "outputs").mkdir(parents=True)
    shutil.copyfile(backup, folder / "outputs" / "result.jpg")
    try:
        with pytest.raises(DecryptError):
            with storage.fetch(run.uri("image", "outputs/result.jpg"), job_id=job_id, settings=run.svc.settings):
                pass
    finally:
        shutil.rmtree(folder)
    other = run.jobs["video"]["id"]  # other jobs keep their media and keys
    assert (run.objects / "_keys" / f"{other}.json").exists()
    assert run.http.get(f"/v1/jobs/{other}/result").status_code == 200


def test_logs_carry_no_private_data(run):
    """Runs last in this module: the captured logs cover every job and request above."""
    text = run.logs.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert any(line.get("job_id") == run.jobs["video"]["id"] for line in lines)  # still traceable by id
    secrets = [a["webhook_secret"] for a in run.answers.values()]
    forbidden = [MARK, str(run.tmp), run.tmp.name, run.key, run.key[4:], KEK, "file://", ".jpg", ".mp4",
                 "Traceback", *secrets, *(s[len("whsec_"):] for s in secrets)]
    for item in forbidden:
        assert item not in text, f"the logs contain {item!r}"
