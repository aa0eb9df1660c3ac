"""Pub/Sub push trigger: one job per object generation however often it is delivered; OIDC push auth."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from swapface.config import load_settings
from swapface.service.pubsub import PubSubJobRequest, create_app

RULES = [
    {"bucket": "studio-in", "prefix": "plates/", "source": "gs://studio-faces/actor.jpg",
     "options": {"face_selector_mode": "many"}, "output_prefix": "swapped/", "allow_metadata": True},
]


class Jobs:
    """Stands in for the job store's create call: records each request, returns a new id."""

    def __init__(self, delay: float = 0.0) -> None:
        self.created: list[PubSubJobRequest] = []
        self.delay = delay
        self.lock = threading.Lock()
        self.fail_next = False

    def __call__(self, request: PubSubJobRequest) -> str:
        time.sleep(self.delay)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("store unavailable")
        with self.lock:
            self.created.append(request)
        return uuid.uuid4().hex


def envelope(name: str = "plates/shot-001.mp4", generation: str = "1700000000000001", event: str = "OBJECT_FINALIZE",
             bucket: str = "studio-in", message_id: str | None = None, metadata: dict | None = None) -> dict:
    data = {"kind": "storage#object", "bucket": bucket, "name": name, "generation": generation,
            "contentType": "video/mp4", "size": "123456", "metadata": metadata or {}}
    return {
        "message": {
            "attributes": {"eventType": event, "bucketId": bucket, "objectId": name, "objectGeneration": generation,
                           "payloadFormat": "JSON_API_V1", "notificationConfig": "projects/_/buckets/b/notificationConfigs/1"},
            "data": base64.b64encode(json.dumps(data).encode()).decode(),
            "messageId": message_id or uuid.uuid4().hex, "message_id": message_id or "x",
            "publishTime": "2026-11-24T10:00:00.000Z",
        },
        "subscription": "projects/p/subscriptions/swapface-push",
    }


def _settings(tmp_path: Path, database_url: str | None = None, **extra):
    return load_settings(data_dir=tmp_path, database_url=database_url or f"sqlite:///{tmp_path / 'jobs.db'}",
                         pubsub_rules=RULES, **extra)


@pytest.fixture()
def jobs() -> Jobs:
    return Jobs()


@pytest.fixture()
def client(tmp_path, jobs) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tmp_path), jobs)) as c:
        yield c


def test_duplicate_deliveries_create_one_job(client, jobs, tmp_path):
    event = envelope(message_id="m-1")
    first = client.post("/v1/events/pubsub", json=event)
    assert first.status_code == 201 and first.json()["status"] == "created"
    job_id = first.json()["job_id"]
    again = client.post("/v1/events/pubsub", json=event)  # Pub/Sub redelivery: same message id
    also = client.post("/v1/events/pubsub", json=envelope(message_id="m-2"))  # a second notification
    assert again.status_code == 200 and again.json() == {"status": "duplicate", "job_id": job_id}
    assert also.json() == {"status": "duplicate", "job_id": job_id}
    with TestClient(create_app(_settings(tmp_path), jobs)) as restarted:  # dedupe survives a restart
        assert restarted.post("/v1/events/pubsub", json=event).json()["job_id"] == job_id
    assert len(jobs.created) == 1
    (req,) = jobs.created
    assert req.target == "gs://studio-in/plates/shot-001.mp4" and req.generation == "1700000000000001"
    assert req.sources == ("gs://studio-faces/actor.jpg",) and req.options == {"face_selector_mode": "many"}
    assert req.output == "gs://studio-in/swapped/plates/shot-001.mp4"
    assert req.idempotency_key == "pubsub:studio-in/plates/shot-001.mp4#1700000000000001"
    newer = client.post("/v1/events/pubsub", json=envelope(generation="1700000000000002"))  # overwritten object
    assert newer.status_code == 201 and len(jobs.created) == 2


def test_concurrent_duplicates_create_one_job(tmp_path):
    jobs = Jobs(delay=0.2)
    with TestClient(create_app(_settings(tmp_path), jobs)) as client:
        event = envelope(message_id="same")
        codes: list[int] = []
        threads = [threading.Thread(target=lambda: codes.append(client.post("/v1/events/pubsub", json=event).status_code))
                   for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes.count(201) == 1 and set(codes) <= {201, 200, 409}  # 409: in flight, Pub/Sub retries
        assert client.post("/v1/events/pubsub", json=event).json()["status"] == "duplicate"
    assert len(jobs.created) == 1


@pytest.mark.parametrize("event", ["OBJECT_DELETE", "OBJECT_METADATA_UPDATE", "OBJECT_ARCHIVE"])
def test_other_events_are_acknowledged_and_ignored(client, jobs, event):
    response = client.post("/v1/events/pubsub", json=envelope(event=event))
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert jobs.created == []


def test_outputs_unmatched_objects_and_bad_options_are_ignored(client, jobs):
    for event in (envelope(name="swapped/plates/shot-001.mp4"), envelope(bucket="other-bucket"),
                  envelope(name="elsewhere/x.mp4"),
                  envelope(metadata={"swapface-options": json.dumps({"no_such_option": 1})})):
        response = client.post("/v1/events/pubsub", json=event)
        assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert jobs.created == []
    assert client.post("/v1/events/pubsub", json={"message": {"data": "%%%"}}).status_code == 422  # not base64
    assert client.post("/v1/events/pubsub", json={"hello": 1}).status_code == 422  # not a push envelope


def test_object_metadata_chooses_source_and_options(client, jobs):
    meta = {"swapface-source": "gs://studio-faces/stunt.jpg", "swapface-options": json.dumps({"face_mask_blur": 0.5})}
    assert client.post("/v1/events/pubsub", json=envelope(metadata=meta)).status_code == 201
    (req,) = jobs.created
    assert req.sources == ("gs://studio-faces/stunt.jpg",)
    assert req.options == {"face_selector_mode": "many", "face_mask_blur": 0.5}


def test_failed_creation_is_retried_by_pubsub(client, jobs):
    jobs.fail_next = True
    assert client.post("/v1/events/pubsub", json=envelope()).status_code == 503
    assert client.post("/v1/events/pubsub", json=envelope()).status_code == 201  # the redelivery succeeds
    assert len(jobs.created) == 1


def test_no_job_store_answers_503(tmp_path):
    with TestClient(create_app(_settings(tmp_path), None)) as client:
        assert client.post("/v1/events/pubsub", json=envelope()).status_code == 503


# --- OIDC push authentication, with a local key and certificate endpoint ---------------------------

@pytest.fixture(scope="module")
def google_like() -> Iterator[tuple[str, object]]:
    """An RSA key, its self-signed certificate served as Google-style certs JSON on loopback."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    from google.auth import crypt

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-oidc")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    certs = json.dumps({"kid1": cert.public_bytes(serialization.Encoding.PEM).decode()}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(certs)))
            self.end_headers()
            self.wfile.write(certs)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    yield f"http://127.0.0.1:{server.server_address[1]}/certs", crypt.RSASigner.from_string(pem, "kid1")
    server.shutdown()
    server.server_close()


def _token(signer, **claims) -> str:
    from google.auth import jwt

    now = int(time.time())
    payload = {"iss": "https://accounts.google.com", "aud": "https://swapface.example/v1/events/pubsub",
               "email": "push@proj.iam.gserviceaccount.com", "email_verified": True, "iat": now, "exp": now + 600,
               "sub": "1234"}
    payload.update(claims)
    return jwt.encode(signer, payload).decode()


def test_oidc_push_token_is_checked(tmp_path, google_like, jobs):
    certs_url, signer = google_like
    settings = _settings(tmp_path, pubsub_audience="https://swapface.example/v1/events/pubsub",
                         pubsub_service_account="push@proj.iam.gserviceaccount.com", pubsub_certs_url=certs_url)
    with TestClient(create_app(settings, jobs)) as client:
        def post(token: str | None) -> int:
            headers = {"authorization": f"Bearer {token}"} if token else {}
            return client.post("/v1/events/pubsub", json=envelope(generation=uuid.uuid4().hex[:12]),
                               headers=headers).status_code

        assert post(None) == 401
        assert post(_token(signer, aud="https://attacker.example/")) == 401
        assert post(_token(signer, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)) == 401
        assert post(_token(signer, iss="https://evil.example")) == 401
        assert post(_token(signer, email="other@proj.iam.gserviceaccount.com")) == 403
        assert post(_token(signer)[:-4] + "AAAA") == 401  # forged signature
        assert jobs.created == []
        assert post(_token(signer)) == 201
    assert len(jobs.created) == 1


@pytest.mark.postgres
def test_dedupe_on_postgres(tmp_path, jobs):
    sqlalchemy = pytest.importorskip("sqlalchemy")
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    try:
        with sqlalchemy.create_engine(url).connect():
            pass
    except Exception:  # noqa: BLE001
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    generation = uuid.uuid4().hex[:16]
    with TestClient(create_app(_settings(tmp_path, database_url=url), jobs)) as client:
        codes = [client.post("/v1/events/pubsub", json=envelope(generation=generation)).status_code for _ in range(3)]
    assert codes == [201, 200, 200] and len(jobs.created) == 1


# --- the video caps apply to jobs from events, whose target the service never saw at submit -------------

def test_video_caps_fail_pubsub_jobs_with_their_code(tmp_path, fake_gcs, driver):
    """Events create jobs for objects nobody uploaded to the API: the worker applies the same caps (and the rule
    owner's overrides) once it probes the object, failing the job at once with the cap's code."""
    import fsspec

    from media_fixtures import moving_face_clip
    from service_fixtures import jpeg_bytes, live_service

    clip = moving_face_clip(tmp_path / "clip.mp4", frames=24, tone_hz=None)  # 640×360, 24 frames
    gcs = fsspec.filesystem("gs")
    gcs.pipe("studio/faces/actor.jpg", jpeg_bytes(driver))
    gcs.pipe("studio/plates/shot.mp4", clip.read_bytes())
    gcs.pipe("studio/small/shot.mp4", clip.read_bytes())
    rules = [{"bucket": "studio", "prefix": "plates/", "source": "gs://studio/faces/actor.jpg"},
             {"bucket": "studio", "prefix": "small/", "source": "gs://studio/faces/actor.jpg", "owner": "tiny"}]
    caps = {"max_video_frames": 10, "video_limits_by_key": {"tiny": {"max_video_frames": 1000,
                                                                     "max_video_pixels": 100_000}}}
    with live_service(tmp_path, workers=1, pubsub_rules=rules, **caps) as svc, svc.client() as http:
        ids = {}
        for name in ("plates/shot.mp4", "small/shot.mp4"):
            created = http.post("/v1/events/pubsub", json=envelope(name=name, bucket="studio"))
            assert created.status_code == 201, created.text
            ids[name] = created.json()["job_id"]
        deadline = time.monotonic() + 120
        jobs = {}
        while time.monotonic() < deadline and len(jobs) < len(ids):
            for name, job_id in ids.items():
                record = svc.runtime.store.get(job_id)
                if record is not None and record.terminal:
                    jobs[name] = record
            time.sleep(0.3)
    too_long, too_large = jobs["plates/shot.mp4"], jobs["small/shot.mp4"]
    assert too_long.status == "failed" and too_long.error_code == "video_too_long", too_long
    assert "24 frames" in (too_long.error_message or "") and too_long.attempts == 1
    assert too_large.status == "failed" and too_large.error_code == "video_too_large", too_large
    assert too_large.owner == "tiny" and too_large.attempts == 1
