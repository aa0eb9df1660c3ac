"""Hardening: a full disk, a missing key, a killed worker and hostile requests never lose jobs, leak or answer 500.

Every test runs the real app on loopback with a real SQLite store (PostgreSQL where the database matters) and
real local storage; the full-disk tests put the data folder (SQLite) or a tablespace (PostgreSQL) on a small tmpfs
the test mounts.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from service_fixtures import jpeg_bytes, live_service

pytestmark = pytest.mark.slow

KEK = base64.b64encode(b"hardening-tests-key-encrypt-key!").decode()


@pytest.fixture()
def small_fs(tmp_path) -> Iterator[Path]:
    """A 48 MB tmpfs mounted for the test (needs root; skipped where mounting is not allowed)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill_disk(folder: Path) -> Path:
    """Write a filler file until the file system is full; returns it (delete it to free the space)."""
    filler = folder / "filler.bin"
    block = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as out:
        with contextlib.suppress(OSError):
            while True:
                out.write(block)
        with contextlib.suppress(OSError):
            while True:  # the last partial megabyte
                out.write(b"\0" * 4096)
    return filler


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def job_count(settings) -> int:
    engine = sa.create_engine(settings.resolved_database_url())
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar_one()
    finally:
        engine.dispose()


def _job_files(astronaut, driver) -> list:
    return [("source", ("me.jpg", jpeg_bytes(astronaut), "image/jpeg")),
            ("target", ("them.jpg", jpeg_bytes(driver), "image/jpeg"))]


# --- 1. a full disk -------------------------------------------------------------------------------

def worker_survives_a_full_disk_and_resumes(svc, http, job_id: str, filler: Path) -> None:
    """A worker started while the disk is full fails its claims without dying and says so in /readyz; once the
    filler is removed, the same worker runs the queued job without a restart."""
    svc.runtime.start_workers(1)
    deadline = time.monotonic() + 30
    ready = http.get("/readyz")
    while ready.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
        ready = http.get("/readyz")
    assert ready.status_code == 503, ready.text
    assert ready.json()["checks"]["workers"] != "ok"
    assert all(t.is_alive() for t in svc.runtime._threads), "the worker thread died"

    filler.unlink()  # space comes back
    done = svc.wait(http, job_id, timeout=120)
    assert done["status"] == "succeeded", done
    assert http.get("/readyz").status_code == 200


def test_full_disk_refuses_cleanly_and_workers_recover(small_fs, tmp_path, astronaut, driver):
    data = small_fs / "data"
    with live_service(tmp_path, workers=0, data_dir=data, min_free_disk_mb=0) as svc, svc.client() as http:
        queued = http.post("/v1/jobs", files=_job_files(astronaut, driver))
        assert queued.status_code == 201, queued.text
        db = sqlite3.connect(data / "swapface.db", isolation_level=None)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # an empty write-ahead log: the next write needs new space
        db.close()
        before = files_under(data / "objects")
        filler = fill_disk(small_fs)

        refused = http.post("/v1/jobs", files=_job_files(astronaut, driver))
        assert refused.status_code == 507, refused.text
        assert refused.json()["code"] == "insufficient_storage"
        assert files_under(data / "objects") == before  # no orphaned inputs, no .part files
        assert not files_under(data / "tmp")  # no upload copies either

        worker_survives_a_full_disk_and_resumes(svc, http, queued.json()["id"], filler)
    assert job_count(svc.settings) == 1  # the refused submission left no row


@pytest.fixture()
def pg_on_small_fs() -> Iterator[tuple[str, Path]]:
    """A PostgreSQL database whose tables live in a tablespace on a 24 MB tmpfs this fixture mounts (owned by the
    ``postgres`` OS user): a real file-system limit under the database. Needs root and a server on 127.0.0.1."""
    import pwd
    import tempfile
    import uuid

    try:
        server_user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres OS user on this machine")
    admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect():
            pass
    except sa.exc.OperationalError:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432 (trust auth)")
    mount = Path(tempfile.mkdtemp(prefix="swapface-pgfull-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=24m,mode=0700,uid={server_user.pw_uid},"
                           f"gid={server_user.pw_gid}", "tmpfs", str(mount)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a small file system here: {done.stderr.strip() or done.returncode}")
    name = f"swapface_full_{uuid.uuid4().hex[:10]}"
    try:
        (mount / "pg").mkdir()
        os.chown(mount / "pg", server_user.pw_uid, server_user.pw_gid)
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE TABLESPACE {name} LOCATION '{mount / 'pg'}'"))
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
            conn.execute(sa.text(f"ALTER DATABASE {name} SET default_tablespace = {name}"))  # every table the service makes
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", mount
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            conn.execute(sa.text(f"DROP TABLESPACE IF EXISTS {name}"))
        admin.dispose()
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def _fill_table_until_full(url: str) -> int:
    """Insert finished filler jobs until PostgreSQL cannot extend the table's file any more (the file system is
    full), so the table's pages hold no room for another job; returns how many went in."""
    engine = sa.create_engine(url)
    count = 0
    try:
        while True:
            try:
                with engine.begin() as conn:
                    conn.execute(sa.text(
                        "INSERT INTO jobs (id, owner, status, kind, spec, frames_done, frames_total, chunks_done, "
                        "chunks_total, chunks_reused, lost_frames, attempts, max_attempts, created_at, updated_at, "
                        "run_after, cancel_requested, frames, compute_seconds, gpu_seconds) VALUES (:id, 'filler', "
                        "'succeeded', 'image', :spec, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, false, 0, 0, 0)"),
                        {"id": f"filler-{count}", "spec": "{}" + " " * 200})
                count += 1
            except sa.exc.OperationalError as exc:
                assert "could not extend file" in str(exc) or "No space left" in str(exc), exc
                return count
    finally:
        engine.dispose()


def test_full_disk_under_postgresql_refuses_cleanly_and_workers_recover(pg_on_small_fs, tmp_path, astronaut, driver):
    url, mount = pg_on_small_fs
    with live_service(tmp_path, workers=0, database_url=url, min_free_disk_mb=0) as svc, svc.client() as http:
        queued = http.post("/v1/jobs", files=_job_files(astronaut, driver))
        assert queued.status_code == 201, queued.text
        before = files_under(svc.settings.data_dir / "objects")
        filler = fill_disk(mount)
        assert _fill_table_until_full(url) > 0

        refused = http.post("/v1/jobs", files=_job_files(astronaut, driver))
        assert refused.status_code == 507, refused.text
        assert refused.json()["code"] == "insufficient_storage"
        assert files_under(svc.settings.data_dir / "objects") == before  # no orphaned inputs, no .part files
        assert not files_under(svc.settings.data_dir / "tmp")

        # claiming the queued job needs a new row version: no room for it
        worker_survives_a_full_disk_and_resumes(svc, http, queued.json()["id"], filler)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:  # the refused submission left no row
            assert conn.execute(sa.text("SELECT count(*) FROM jobs WHERE owner <> 'filler'")).scalar_one() == 1
    finally:
        engine.dispose()


def test_low_disk_answers_507_and_readyz_says_so(tmp_path, astronaut, driver):
    with live_service(tmp_path, workers=0, min_free_disk_mb=1e12) as svc, svc.client() as http:
        refused = http.post("/v1/jobs", files=_job_files(astronaut, driver))
        assert refused.status_code == 507 and refused.json()["code"] == "insufficient_storage", refused.text
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["disk"] == "full"
    assert job_count(svc.settings) == 0


# --- 2. no plaintext left on disk under encryption -------------------------------------------------

def _worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "swapface.cli.main", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"))


def plaintext_copies(folder: Path, content: bytes) -> list[Path]:
    """Files under ``folder`` holding exactly ``content``."""
    return [p for p in folder.rglob("*") if p.is_file() and p.stat().st_size == len(content)
            and p.read_bytes() == content]


def test_killed_worker_leaves_no_decrypted_copy(tmp_path, driver):
    from media_fixtures import moving_face_clip

    data, system_tmp = tmp_path / "data", tmp_path / "system-tmp"
    system_tmp.mkdir()
    env = {**os.environ, "SWAPFACE_DATA_DIR": str(data), "SWAPFACE_LEASE_S": "3", "SWAPFACE_KEK": KEK,
           "SWAPFACE_WORKER_POLL_S": "0.2", "SWAPFACE_MODELS_DIR": str(tmp_path / "models"), "TMPDIR": str(system_tmp)}
    clip = moving_face_clip(tmp_path / "clip.mp4", frames=60, tone_hz=330.0).read_bytes()
    with live_service(tmp_path, workers=0, lease_s=3.0, kek=KEK) as svc, svc.client() as http:
        job = http.post("/v1/jobs", files=[("source", ("a.jpg", jpeg_bytes(driver), "image/jpeg")),
                                           ("target", ("c.mp4", clip, "video/mp4"))],
                        data={"chunk_seconds": "0.3"}).json()
        first = _worker(env, tmp_path / "worker1.log")
        deadline = time.monotonic() + 120
        while (state := http.get(f"/v1/jobs/{job['id']}").json())["progress"]["chunks_done"] < 1 \
                or not state["usage"]["providers"]:
            assert first.poll() is None, (tmp_path / "worker1.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the worker made no progress"
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        assert not plaintext_copies(system_tmp, clip), "a decrypted copy of the upload is in the system temp folder"
        killed = http.get(f"/v1/jobs/{job['id']}").json()["usage"]
        assert killed["compute_seconds"] > 0, "the killed attempt's compute was not metered"  # (14)
        assert killed["providers"] == ["cpu"] and killed["gpu_seconds"] == 0, killed  # built-in models: CPU only

        second = _worker(env, tmp_path / "worker2.log")  # start-up sweeps the killed worker's working copies
        try:
            done = svc.wait(http, job["id"], timeout=240)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=60)
        assert done["status"] == "succeeded", done
        assert not plaintext_copies(data, clip), "a decrypted copy of the upload survived restart and success"
        assert http.delete(f"/v1/jobs/{job['id']}").status_code == 204
        assert not plaintext_copies(data, clip) and not plaintext_copies(system_tmp, clip)


# --- 3. a restart without the KEK, or with a wrong one ----------------------------------------------

def test_restart_without_or_with_a_wrong_kek_never_serves_ciphertext(tmp_path, monkeypatch, astronaut, driver):
    from service_fixtures import service_settings
    from swapface.errors import JobError
    from swapface.service.runtime import ServiceRuntime

    monkeypatch.setenv("SWAPFACE_DATA_DIR", str(tmp_path / "data"))  # the engine reads its settings from the environment
    monkeypatch.setenv("SWAPFACE_KEK", KEK)
    with live_service(tmp_path, workers=1, kek=KEK) as svc, svc.client() as http:
        job = http.post("/v1/jobs", files=_job_files(astronaut, driver)).json()
        assert svc.wait(http, job["id"])["status"] == "succeeded"
        assert http.get(f"/v1/jobs/{job['id']}/result").status_code == 200

    monkeypatch.delenv("SWAPFACE_KEK")
    with pytest.raises(JobError) as refused:  # no KEK at all: the service does not start
        ServiceRuntime.from_settings(service_settings(tmp_path))
    assert refused.value.code == "kek_missing"

    wrong_same_id = base64.b64encode(b"another-key-encryption-key-32byt").decode()
    wrong_other_id = "spare:" + wrong_same_id
    for kek, code in ((wrong_same_id, "kek_mismatch"), (wrong_other_id, "kek_missing")):
        monkeypatch.setenv("SWAPFACE_KEK", kek)
        with live_service(tmp_path, workers=0, kek=kek) as svc, svc.client() as http:
            result = http.get(f"/v1/jobs/{job['id']}/result")
            assert result.status_code == 503 and result.json()["code"] == code, result.text
            assert b"SWFENC" not in result.content
            ready = http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["encryption"] == code


# --- 13. options are checked at submit ---------------------------------------------------------------

BAD_OPTIONS = [
    ({"processors": "face_swapper,telepathy"}, "processors"),
    ({"face_swapper_model": "../../etc/passwd"}, "face_swapper_model"),
    ({"face_swapper_model": "gfpgan_1.4"}, "face_swapper_model"),  # a model, but not a swapper
    ({"face_enhancer_model": "nope"}, "face_enhancer_model"),
    ({"frame_enhancer_model": "/etc/shadow"}, "frame_enhancer_model"),
    ({"face_detector_model": "eyeball"}, "face_detector_model"),
    ({"face_recognizer_model": "x"}, "face_recognizer_model"),
    ({"output_video_encoder": "mpeg1video"}, "output_video_encoder"),
    ({"output_video_preset": "warp9"}, "output_video_preset"),
    ({"trim_frame_start": "10", "trim_frame_end": "5"}, "trim_frame_end"),
    ({"face_selector_mode": "reference"}, "face_selector_mode"),  # and no reference face
    ({"face_mask_types": "box,laser"}, "face_mask_types"),
    ({"face_mask_types": "region", "face_mask_regions": "skin,tail"}, "face_mask_regions"),
    ({"execution_providers": "quantum"}, "execution_providers"),
    ({"face_swapper_pixel_boost": "100000"}, "face_swapper_pixel_boost"),
    ({"face_swapper_model": "inswapper_128", "face_swapper_pixel_boost": "384"}, "face_swapper_pixel_boost"),
    ({"face_swapper_pixel_boost": "512"}, "face_swapper_pixel_boost"),  # the mesh swapper has none
]


def test_options_the_installation_cannot_honour_are_refused_at_submit(tmp_path, astronaut, driver):
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        for fields, field in BAD_OPTIONS:
            answer = http.post("/v1/jobs", files=_job_files(astronaut, driver), data=fields)
            assert answer.status_code == 422, (fields, answer.text)
            assert answer.json()["code"] == "bad_option" and answer.json()["field"] == field, (fields, answer.text)
        as_json = http.post("/v1/jobs", json={"sources": ["x"], "target": "y",
                                              "options": {"face_swapper_model": "../../etc/passwd"}})
        assert as_json.status_code == 422 and as_json.json()["field"] == "face_swapper_model"
    assert job_count(svc.settings) == 0


def test_a_missing_model_fails_once_without_retries(tmp_path, astronaut, driver):
    with live_service(tmp_path, workers=1) as svc, svc.client() as http:
        job = http.post("/v1/jobs", files=_job_files(astronaut, driver), data={"face_swapper_model": "inswapper_128"})
        assert job.status_code == 201, job.text
        done = svc.wait(http, job.json()["id"], timeout=120)
    assert done["status"] == "failed" and done["error"]["code"] == "model_error", done
    assert done["attempts"] == 1


# --- 4–7. hostile request bodies and references -----------------------------------------------------

def test_deeply_nested_json_is_a_422_not_a_500(tmp_path, astronaut, driver):
    deep = "[" * 950 + "]" * 950
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        body = '{"sources": ' + deep + ', "target": "x"}'
        answer = http.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 422 and answer.json()["code"] == "bad_request", answer.text
        options = http.post("/v1/jobs", files=_job_files(astronaut, driver), data={"options": '{"a": ' + deep + "}"})
        assert options.status_code == 422 and options.json()["code"] == "bad_option", options.text
        assert http.get("/healthz").status_code == 200


def test_json_bodies_have_their_own_small_limit(tmp_path):
    import psutil

    block = b" " * (1 << 20)

    def body():
        yield b'{"sources": ["'
        for _ in range(200):
            yield block
        yield b'"], "target": "x"}'

    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        before = psutil.Process().memory_info().rss
        try:
            answer = http.post("/v1/jobs", content=body(), headers={"content-type": "application/json"})
        except httpx.TransportError:  # the server may close the connection once it has answered
            answer = None
        grown_mb = (psutil.Process().memory_info().rss - before) / (1 << 20)
        if answer is not None:
            assert answer.status_code == 413 and answer.json()["code"] == "body_too_large", answer.text
        assert grown_mb < 60, f"a 200 MB JSON body grew the server by {grown_mb:.0f} MB"
        assert http.get("/healthz").status_code == 200


def test_references_to_folders_or_overlong_names_are_422(tmp_path, astronaut, driver):
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        root = svc.settings.resolved_storage_url()
        folder = Path(root[len("file://"):]) / "shared" / "inputs"
        folder.mkdir(parents=True)
        for uri in (f"{root}/shared/inputs", f"{root}/shared/{'a' * 300}.jpg", f"{root}/{'b' * 300}/x.jpg"):
            answer = http.post("/v1/jobs", json={"sources": [uri], "target": uri})
            assert answer.status_code == 422 and answer.json()["code"] == "bad_reference", (uri[-40:], answer.text)
        assert http.get("/healthz").status_code == 200  # the connection was not reset


def test_too_many_references_are_refused_before_any_is_read(tmp_path):
    import numpy as np
    from PIL import Image

    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        root = svc.settings.resolved_storage_url()
        big = Path(root[len("file://"):]) / "shared" / "big.png"
        big.parent.mkdir(parents=True)
        ramp = np.linspace(0, 255, 6000, dtype=np.uint8)
        Image.fromarray(np.dstack([np.tile(ramp, (6000, 1))] * 3)).save(big, compress_level=1)  # 36 MP
        uri = f"{root}/shared/big.png"
        started = time.monotonic()
        answer = http.post("/v1/jobs", json={"sources": [uri] * 40, "target": uri})
        elapsed = time.monotonic() - started
    assert answer.status_code == 422 and answer.json()["code"] == "too_many_sources", answer.text
    assert elapsed < 1.5, f"refusing 40 references took {elapsed:.1f}s: they were read first"


# --- 8–9. webhook endpoints that answer slowly or hugely ------------------------------------------

class Endpoint:
    """A loopback HTTP endpoint: ``trickle`` answers one byte per second, ``huge`` a 300 MB body, else 204."""

    def __init__(self, mode: str = "fast") -> None:
        import http.server
        import threading

        self.received: list[float] = []
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length", 0)))
                endpoint.received.append(time.monotonic())
                try:
                    if mode == "trickle":
                        for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n":
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(1.0)
                    elif mode == "huge":
                        self.send_response(200)
                        self.send_header("content-length", str(300 << 20))
                        self.end_headers()
                        block = b"x" * (1 << 20)
                        for _ in range(300):
                            self.wfile.write(block)
                    else:
                        self.send_response(204)
                        self.send_header("content-length", "0")
                        self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


WEBHOOKS = {"webhook_allow_http": True, "webhook_allowlist": ["127.0.0.1/32"], "webhook_timeout_s": 3.0,
            "webhook_max_attempts": 2, "webhook_backoff_s": 0.5}


def _cancelled_with_webhook(http, files, url: str) -> str:
    job = http.post("/v1/jobs", files=files, data={"webhook_url": url})
    assert job.status_code == 201, job.text
    assert http.post(f"/v1/jobs/{job.json()['id']}/cancel").status_code == 202
    return job.json()["id"]


def test_slow_webhook_endpoints_do_not_delay_others(tmp_path, astronaut, driver):
    slow = [Endpoint("trickle") for _ in range(4)]
    fast = Endpoint("fast")
    try:
        with live_service(tmp_path, workers=0, **WEBHOOKS) as svc, svc.client() as http:
            files = _job_files(astronaut, driver)
            for endpoint in slow:
                _cancelled_with_webhook(http, files, endpoint.url)
            time.sleep(0.5)  # the slow deliveries are under way
            started = time.monotonic()
            _cancelled_with_webhook(http, files, fast.url)
            deadline = started + 30
            while not fast.received and time.monotonic() < deadline:
                time.sleep(0.05)
            assert fast.received, "the other tenant's webhook never arrived"
            assert fast.received[0] - started < 2.0, f"delayed {fast.received[0] - started:.1f}s by slow endpoints"
    finally:
        for endpoint in [*slow, fast]:
            endpoint.close()


def test_a_huge_webhook_response_is_not_read(tmp_path, astronaut, driver):
    import psutil

    huge = Endpoint("huge")
    try:
        with live_service(tmp_path, workers=0, **WEBHOOKS) as svc, svc.client() as http:
            before = psutil.Process().memory_info().rss
            job_id = _cancelled_with_webhook(http, _job_files(astronaut, driver), huge.url)
            from swapface.service.webhooks import WebhookDeliveries

            deliveries = WebhookDeliveries(svc.settings, svc.runtime.store.engine)
            deadline = time.monotonic() + 30
            while (row := deliveries.get(job_id, "cancelled")) is None or row["state"] == "pending":
                assert time.monotonic() < deadline, row
                time.sleep(0.1)
            grown_mb = (psutil.Process().memory_info().rss - before) / (1 << 20)
        assert row["state"] == "delivered", row
        assert grown_mb < 100, f"a 300 MB webhook answer grew the service by {grown_mb:.0f} MB"
    finally:
        huge.close()


# --- 10. event streams are capped and end when their key is revoked --------------------------------

def test_event_streams_are_capped_and_stop_when_the_key_is_revoked(tmp_path, astronaut, driver):
    import threading

    with live_service(tmp_path, workers=0, max_event_streams_per_key=2, max_event_streams=3) as svc:
        _, alice = svc.runtime.keys.create("alice")
        _, bob = svc.runtime.keys.create("bob")
        with svc.client(alice) as a, svc.client(bob) as b:
            job_a = a.post("/v1/jobs", files=_job_files(astronaut, driver)).json()["id"]
            job_b = b.post("/v1/jobs", files=_job_files(astronaut, driver)).json()["id"]
            opened, texts = [], []

            def follow(client, job_id):
                with contextlib.suppress(httpx.HTTPError), client.stream("GET", f"/v1/jobs/{job_id}/events") as events:
                    opened.append(events.status_code)
                    texts.append("".join(events.iter_text()))  # until the server ends the stream

            for client, job_id in ((a, job_a), (a, job_a), (b, job_b)):
                threading.Thread(target=follow, args=(client, job_id), daemon=True).start()
            deadline = time.monotonic() + 10
            while len(opened) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert opened == [200, 200, 200]
            third = a.get(f"/v1/jobs/{job_a}/events")  # alice holds her two
            assert third.status_code == 429 and third.json()["code"] == "too_many_streams", third.text
            with svc.client(bob) as b2:
                over = b2.get(f"/v1/jobs/{job_b}/events")  # three open in all
            assert over.status_code == 429 and over.json()["code"] == "too_many_streams", over.text

            assert svc.runtime.keys.revoke("alice") == 1
            deadline = time.monotonic() + 15
            while len(texts) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(texts) == 2 and all("bad_api_key" in t for t in texts), texts
            svc.runtime.keys.revoke("bob")


# --- 11. keyless local mode refuses other sites and rebound names ------------------------------------

def test_keyless_mode_refuses_cross_site_and_foreign_host(tmp_path, astronaut, driver):
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        evil = http.post("/v1/jobs", files=_job_files(astronaut, driver), headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403 and evil.json()["code"] == "cross_site", evil.text
        fetch = http.get("/v1/jobs", headers={"Sec-Fetch-Site": "cross-site"})
        assert fetch.status_code == 403 and fetch.json()["code"] == "cross_site"
        port = svc.url.rsplit(":", 1)[1]
        rebound = http.get("/v1/jobs", headers={"Host": f"rebind.evil.example:{port}"})
        assert rebound.status_code == 403 and rebound.json()["code"] == "bad_host", rebound.text
        same = http.post("/v1/jobs", files=_job_files(astronaut, driver), headers={"Origin": svc.url})
        assert same.status_code == 201, same.text
        assert http.get("/v1/jobs", headers={"Host": f"localhost:{port}"}).status_code == 200
    assert job_count(svc.settings) == 1


# --- 15. webhook secrets are checked at submit ---------------------------------------------------------

def test_bad_webhook_secrets_are_refused_at_submit(tmp_path, astronaut, driver):
    with live_service(tmp_path, workers=0, **WEBHOOKS) as svc, svc.client() as http:
        for secret in ("whsec_!!!notbase64", "whsec_", "whsec_" + base64.b64encode(b"short").decode(), "plain"):
            answer = http.post("/v1/jobs", files=_job_files(astronaut, driver),
                               data={"webhook_url": "http://127.0.0.1:9/hook", "webhook_secret": secret})
            assert answer.status_code == 422 and answer.json()["code"] == "bad_webhook_secret", (secret, answer.text)
    assert job_count(svc.settings) == 0


# --- 16–17. cancel and delete of running jobs -----------------------------------------------------------

def _wait_running(http, job_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while http.get(f"/v1/jobs/{job_id}").json()["status"] == "queued":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.02)


def _wait_frames(svc, job_id: str, timeout: float = 90) -> None:
    """Until the job has committed a chunk: frames are flowing (progress reaches the database only per beat)."""
    from swapface import storage

    uri = storage.join(svc.settings.resolved_storage_url(), job_id, "work", "manifest.json")
    deadline = time.monotonic() + timeout
    while not ((storage.read_json(uri) if storage.exists(uri) else None) or {}).get("segments"):
        assert time.monotonic() < deadline, "no chunk was committed"
        time.sleep(0.05)


def test_cancelled_or_deleted_running_jobs_end_cancelled_promptly(tmp_path, astronaut, driver):
    from media_fixtures import moving_face_clip

    clip = moving_face_clip(tmp_path / "clip.mp4", frames=120, tone_hz=330.0).read_bytes()
    video = [("source", ("a.jpg", jpeg_bytes(driver), "image/jpeg")), ("target", ("c.mp4", clip, "video/mp4"))]
    with live_service(tmp_path, workers=1, lease_s=27.0) as svc, svc.client() as http:  # heartbeat every 9 s
        for _ in range(3):  # an image job cancelled while it runs never ends succeeded
            job = http.post("/v1/jobs", files=_job_files(astronaut, driver)).json()["id"]
            _wait_running(http, job)
            if http.post(f"/v1/jobs/{job}/cancel").status_code == 202:
                assert svc.wait(http, job)["status"] == "cancelled"

        job = http.post("/v1/jobs", files=video, data={"chunk_seconds": "0.5"}).json()["id"]
        _wait_frames(svc, job)
        asked = time.monotonic()
        assert http.post(f"/v1/jobs/{job}/cancel").status_code == 202
        assert svc.wait(http, job)["status"] == "cancelled"
        assert time.monotonic() - asked < 3.0, "cancel waited for the heartbeat"

        job = http.post("/v1/jobs", files=video, data={"chunk_seconds": "0.5"}).json()["id"]
        _wait_frames(svc, job)
        assert http.delete(f"/v1/jobs/{job}").status_code == 204
        done = svc.wait(http, job)
        assert done["status"] == "cancelled", done
        assert [f for f in svc.runtime.store.failure_rows(0) if f["job_id"] == job] == []


# --- 12. video caps at intake, damaged videos fail --------------------------------------------------------

def test_video_caps_at_submit_and_damaged_videos_fail(tmp_path, driver):
    from media_fixtures import moving_face_clip, truncate

    clip = moving_face_clip(tmp_path / "clip.mp4", frames=60, tone_hz=None)  # 640×360, 60 frames
    damaged = truncate(clip, tmp_path / "damaged.mp4", 0.25)
    limits = {"max_video_frames": 50, "max_video_pixels": 1_000_000,
              "video_limits_by_key": {"tiny": {"max_video_pixels": 100_000}, "big": {"max_video_frames": 1000}}}

    def files(path: Path) -> list:
        return [("source", ("a.jpg", jpeg_bytes(driver), "image/jpeg")),
                ("target", ("c.mp4", path.read_bytes(), "video/mp4"))]

    with live_service(tmp_path, workers=1, **limits) as svc:
        keys = {name: svc.runtime.keys.create(name)[1] for name in ("plain", "tiny", "big")}
        with svc.client(keys["plain"]) as plain, svc.client(keys["tiny"]) as tiny, svc.client(keys["big"]) as big:
            too_long = plain.post("/v1/jobs", files=files(clip))
            assert too_long.status_code == 422 and too_long.json()["code"] == "video_too_long", too_long.text
            too_large = tiny.post("/v1/jobs", files=files(clip))
            assert too_large.status_code == 422 and too_large.json()["code"] == "video_too_large", too_large.text
            broken = big.post("/v1/jobs", files=files(damaged), data={"chunk_seconds": "1"})
            assert broken.status_code == 201, broken.text  # the override lets it in; its frames are mostly gone
            done = svc.wait(big, broken.json()["id"], timeout=180)
    assert done["status"] == "failed" and done["error"]["code"] == "damaged_video", done
    assert done["attempts"] == 1
    # the file keeps a quarter of its bytes: most of the 60 frames are gone, and the job row says how many
    assert 30 <= done["lost_frames"] < 60, done


# --- 14. GPU seconds only for what ran on a GPU -------------------------------------------------------

def test_gpu_seconds_are_billed_only_for_a_gpu_that_ran(tmp_path, astronaut, driver):
    """Asking for cuda bills nothing on a GPU unless an ONNX Runtime session ran there: the built-in detector,
    landmarker and swapper always run on the CPU, on a GPU host too, so the job's usage names only the CPU."""
    with live_service(tmp_path, workers=1) as svc, svc.client() as http:
        job = http.post("/v1/jobs", files=_job_files(astronaut, driver), data={"execution_providers": "cuda"})
        assert job.status_code == 201, job.text
        done = svc.wait(http, job.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["usage"]["compute_seconds"] > 0, done
    assert done["usage"]["providers"] == ["cpu"], done
    assert done["usage"]["gpu_seconds"] == 0, done


# --- 19. headers, metrics behind a key, webhook secrets encrypted at rest ----------------------------

def test_security_headers_metrics_key_and_sealed_webhook_secrets(tmp_path, monkeypatch, astronaut, driver):
    monkeypatch.setenv("SWAPFACE_KEK", KEK)
    monkeypatch.setenv("SWAPFACE_DATA_DIR", str(tmp_path / "data"))
    fast = Endpoint("fast")
    try:
        with live_service(tmp_path, workers=0, kek=KEK, metrics_require_key=True, **WEBHOOKS) as svc:
            with svc.client() as anonymous:
                page = anonymous.get("/")
                assert page.headers["x-content-type-options"] == "nosniff"
                assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
                assert anonymous.get("/metrics").status_code == 401
            _, key = svc.runtime.keys.create("alice")
            with svc.client(key) as http:
                listed = http.get("/v1/jobs")
                assert listed.headers["x-content-type-options"] == "nosniff"
                assert "sandbox" in listed.headers["content-security-policy"]
                assert http.get("/metrics").status_code == 200
                job = http.post("/v1/jobs", files=_job_files(astronaut, driver), data={"webhook_url": fast.url}).json()
                secret = job["webhook_secret"]
                stored = svc.runtime.store.get(job["id"]).webhook_secret
                assert stored and secret not in stored and secret[len("whsec_"):] not in stored
                assert http.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
                deadline = time.monotonic() + 20
                while not fast.received and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert fast.received, "the webhook was not delivered with the sealed secret"
    finally:
        fast.close()


# --- 18. the OpenAPI document describes what the service does ----------------------------------------

def test_openapi_describes_bodies_errors_and_allow(tmp_path):
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        doc = http.get("/openapi.json").json()
        submit = doc["paths"]["/v1/jobs"]["post"]
        assert set(submit["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
        assert {"400", "401", "413", "415", "422", "429", "507"} <= set(submit["responses"])
        problem = doc["components"]["schemas"]["ProblemBody"]["properties"]
        assert problem["detail"]["type"] == "string"  # what a 422 really carries, not FastAPI's array
        assert submit["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ProblemBody")
        assert "202" in doc["paths"]["/v1/jobs/{job_id}/cancel"]["post"]["responses"]
        assert {"404", "409", "410"} <= set(doc["paths"]["/v1/jobs/{job_id}/result"]["get"]["responses"])
        wrong = http.put("/v1/jobs/some-id")
        assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
        assert set(wrong.headers["allow"].split(", ")) == {"GET", "DELETE"}
        invalid = http.get("/v1/jobs", params={"limit": "lots"})
        assert invalid.status_code == 422 and isinstance(invalid.json()["detail"], str)


# --- the store's new verbs on SQLite and PostgreSQL ---------------------------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    from swapface.jobs.store import JobStore, make_engine

    url = f"sqlite:///{tmp_path / 'jobs.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    engine = make_engine(url)
    yield JobStore(engine, max_attempts=3, retry_backoff_s=0.0)
    engine.dispose()


def test_schemathesis_with_every_check_finds_nothing(tmp_path):
    """Schemathesis, every check, a bounded number of examples per route and a fixed seed, against the real app
    on loopback (the repository's schemathesis.toml says which routes may refuse schema-valid media with 422)."""
    pytest.importorskip("schemathesis")
    root = Path(__file__).resolve().parent.parent
    with live_service(tmp_path, workers=0) as svc:
        done = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(root / "schemathesis.toml"), "run",
             f"{svc.url}/openapi.json", "--checks", "all", "--max-examples", "8", "--workers", "1", "--seed", "13",
             "--request-timeout", "30", "--no-color"],
            capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failure" not in done.stdout.split("SUMMARY")[-1].lower(), done.stdout[-3000:]


def test_cancelled_job_never_finishes_succeeded_and_hand_back_keeps_attempts(store):
    from swapface.jobs.store import NewJob

    spec = {"sources": [], "target": "t", "output": "o", "work_dir": "w"}
    job, _ = store.create(NewJob(owner="alice", kind="image", spec=spec))
    claimed = store.claim("w1", lease_seconds=30)
    assert claimed.id == job.id and claimed.attempts == 1
    assert store.release(job.id, "w1", delay_s=0.0)  # a full disk broke the attempt, not the job
    again = store.claim("w1", lease_seconds=30)
    assert again.id == job.id and again.attempts == 1, "the handed-back attempt was counted"
    assert not store.cancel_requested(job.id)
    store.request_cancel(job.id, "alice")
    assert store.cancel_requested(job.id)
    assert not store.finish(job.id, "w1", "succeeded", unless_cancelled=True)
    assert store.get(job.id).status == "running"
    assert store.finish(job.id, "w1", "cancelled")
    assert store.get(job.id).status == "cancelled"


def test_polyglot_uploads_are_not_stored(tmp_path, astronaut, driver):
    import io
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("index.html", "<script>alert(1)</script>")
    polyglot = jpeg_bytes(driver) + archive.getvalue()
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        answer = http.post("/v1/jobs", files=[("source", ("a.jpg", jpeg_bytes(astronaut), "image/jpeg")),
                                              ("target", ("b.jpg", polyglot, "image/jpeg"))])
        assert answer.status_code == 422 and answer.json()["code"] == "bad_media", answer.text
        assert http.post("/v1/jobs", files=_job_files(astronaut, driver)).status_code == 201  # plain images pass
