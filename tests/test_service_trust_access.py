"""Issue 5 through the real service, part 1: who may see and do what.

API keys isolate jobs (another key's job is indistinguishable from a missing one on every route),
per-key limits answer 429/413, the ``swapface keys`` commands manage keys, webhook URLs that point
inside the network are refused before anything is stored, and Pub/Sub redeliveries make one job.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from service_fixtures import jpeg_bytes, live_service
from swapface.cli.main import main as cli

pytestmark = pytest.mark.slow


def _files(source: bytes, target: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("source", ("a.jpg", source, "image/jpeg")), ("target", ("b.jpg", target, "image/jpeg"))]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_keys_isolate_jobs_on_every_route(tmp_path, astronaut, driver):
    files = _files(jpeg_bytes(astronaut), jpeg_bytes(driver))
    with live_service(tmp_path, workers=1) as svc:
        with svc.client() as anonymous:  # a fresh install: loopback callers need no key
            assert anonymous.get("/v1/jobs").status_code == 200
        _, key_a = svc.runtime.keys.create("alice")
        _, key_b = svc.runtime.keys.create("bob")
        with svc.client() as anonymous, svc.client("swf_not-a-key-anyone-was-given") as stranger:
            refused = anonymous.get("/v1/jobs")  # once a key exists, loopback needs one too
            assert refused.status_code == 401 and refused.json()["code"] == "api_key_required"
            assert refused.headers["www-authenticate"] == "Bearer"
            assert anonymous.post("/v1/jobs", files=files).status_code == 401
            assert stranger.get("/v1/jobs").status_code == 401
            assert stranger.get("/v1/jobs").json()["code"] == "bad_api_key"

        with svc.client(key_a) as alice, svc.client(key_b) as bob:
            # the same Idempotency-Key and the same request from two keys: two jobs, one each
            mine = alice.post("/v1/jobs", files=files, headers={"Idempotency-Key": "order-1"})
            theirs = bob.post("/v1/jobs", files=files, headers={"Idempotency-Key": "order-1"})
            assert mine.status_code == 201 and theirs.status_code == 201, (mine.text, theirs.text)
            job_id, bob_job = mine.json()["id"], theirs.json()["id"]
            assert job_id != bob_job
            again = alice.post("/v1/jobs", files=files, headers={"Idempotency-Key": "order-1"})
            assert again.status_code == 200 and again.json()["id"] == job_id
            bob.post(f"/v1/jobs/{bob_job}/cancel")  # keep the single worker for alice's job
            assert svc.wait(alice, job_id)["status"] == "succeeded"

            folder = svc.settings.data_dir / "objects" / job_id
            before = _snapshot(folder)
            assert any(name.startswith("outputs/") for name in before)

            missing = bob.get("/v1/jobs/00000000-0000-4000-8000-000000000000")
            assert missing.status_code == 404
            expected = missing.json()
            attempts = {
                "get": bob.get(f"/v1/jobs/{job_id}"),
                "result": bob.get(f"/v1/jobs/{job_id}/result"),
                "range": bob.get(f"/v1/jobs/{job_id}/result", headers={"Range": "bytes=0-9"}),
                "events": bob.get(f"/v1/jobs/{job_id}/events"),
                "cancel": bob.post(f"/v1/jobs/{job_id}/cancel"),
                "delete": bob.delete(f"/v1/jobs/{job_id}"),
            }
            for route, answer in attempts.items():
                assert answer.status_code == 404, (route, answer.status_code, answer.text)
                assert answer.json() == expected, route
                assert answer.headers["content-type"] == missing.headers["content-type"], route
            assert [j["id"] for j in bob.get("/v1/jobs").json()["jobs"]] == [bob_job]
            # nor can bob reach alice's stored media by reference: it reads like an object that is not there
            alice_input = (folder / "inputs" / "source-0.jpg").as_uri()
            nowhere = (folder.parent / "00000000-0000-4000-8000-000000000000" / "inputs" / "source-0.jpg").as_uri()
            for uri in (alice_input, nowhere):
                reference = bob.post("/v1/jobs", json={"sources": [uri], "target": uri})
                assert reference.status_code == 422, reference.text
                assert reference.json() == {"detail": "no such object", "code": "bad_reference"}
            own = alice.post("/v1/jobs", json={"sources": [alice_input], "target": alice_input})
            assert own.status_code == 201, own.text  # her own objects she may reuse
            alice.post(f"/v1/jobs/{own.json()['id']}/cancel")
            assert alice.get(f"/v1/jobs/{bob_job}").status_code == 404  # and the other way round
            assert bob.get("/v1/usage").json()["jobs"] == 1

            # alice still has her job, its media untouched by bob's delete attempt
            assert _snapshot(folder) == before
            job = alice.get(f"/v1/jobs/{job_id}").json()
            assert job["status"] == "succeeded" and job["purged"] is False and job["result_available"] is True
            result = alice.get(f"/v1/jobs/{job_id}/result")
            assert result.status_code == 200 and result.content[:3] == b"\xff\xd8\xff"
            assert job_id in [j["id"] for j in alice.get("/v1/jobs").json()["jobs"]]

            # a revoked key is refused like an unknown one; the other key goes on working
            assert svc.runtime.keys.revoke("bob") == 1
            revoked = bob.get(f"/v1/jobs/{bob_job}")
            assert revoked.status_code == 401 and revoked.json()["code"] == "bad_api_key"
            assert alice.get(f"/v1/jobs/{job_id}").status_code == 200
            with svc.client() as anonymous:
                assert anonymous.get("/v1/jobs").status_code == 401  # alice's key is still active
                assert svc.runtime.keys.revoke("alice") == 1
                assert anonymous.get("/v1/jobs").status_code == 401  # revoking every key does not reopen keyless access
                assert anonymous.get(f"/v1/jobs/{job_id}").status_code == 401


def test_per_key_limits(tmp_path, astronaut):
    """Too many jobs at once or per hour: 429 with Retry-After (seconds), since waiting helps.

    An upload over the key's size limit is 413 Payload Too Large, not 429: retrying the same
    request can never succeed, so there is no Retry-After.
    """
    small = jpeg_bytes(astronaut[::4, ::4])
    files = _files(small, small)
    with live_service(tmp_path, workers=0) as svc:
        _, one_at_a_time = svc.runtime.keys.create("serial", max_concurrent_jobs=1)
        _, hourly = svc.runtime.keys.create("hourly", jobs_per_hour=2)
        tiny_key, tiny = svc.runtime.keys.create("tiny", max_upload_mb=0.05)
        with svc.client(one_at_a_time) as http:
            first = http.post("/v1/jobs", files=files)
            assert first.status_code == 201 and first.json()["status"] == "queued"
            second = http.post("/v1/jobs", files=files)
            assert second.status_code == 429 and second.json()["code"] == "too_many_active_jobs"
            assert int(second.headers["retry-after"]) > 0
            assert http.post(f"/v1/jobs/{first.json()['id']}/cancel").status_code == 202
            assert http.post("/v1/jobs", files=files).status_code == 201  # the slot is free again

        with svc.client(hourly) as http:
            created = [http.post("/v1/jobs", files=files) for _ in range(2)]
            assert [r.status_code for r in created] == [201, 201]
            for job in created:  # cancelling does not give an hourly slot back
                http.post(f"/v1/jobs/{job.json()['id']}/cancel")
            third = http.post("/v1/jobs", files=files)
            assert third.status_code == 429 and third.json()["code"] == "hourly_limit"
            wait = third.headers["retry-after"]
            assert wait.isdigit() and 3500 <= int(wait) <= 3601  # seconds until the oldest job is an hour old

        big = jpeg_bytes(astronaut)
        assert 2 * len(big) > 0.05 * 1024 * 1024 > 2 * len(small) + 1024
        with svc.client(tiny) as http:
            refused = http.post("/v1/jobs", files=_files(big, big))
            assert refused.status_code == 413 and refused.json()["code"] == "upload_too_large"
            assert "retry-after" not in refused.headers
            assert http.post("/v1/jobs", files=files).status_code == 201  # small uploads are fine
        assert len(svc.runtime.store.list(tiny_key.id)) == 1


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_submissions_cannot_slip_past_a_limit(tmp_path, astronaut, backend, request):
    """Requests racing each other are counted in the transaction that inserts the job, not only before it."""
    overrides = {"database_url": request.getfixturevalue("pg_url")} if backend == "postgres" else {}
    big = jpeg_bytes(astronaut)  # a longer upload: a wider window between the early check and the insert
    files = _files(big, big)
    with live_service(tmp_path, workers=0, **overrides) as svc:
        serial_key, serial = svc.runtime.keys.create("serial", max_concurrent_jobs=1)
        hourly_key, hourly = svc.runtime.keys.create("hourly", jobs_per_hour=2)
        for key, allowed, code in ((serial, 1, "too_many_active_jobs"), (hourly, 2, "hourly_limit")):
            barrier = threading.Barrier(5)
            answers: list[httpx.Response] = []

            def submit(key: str = key) -> None:
                with svc.client(key) as http:
                    barrier.wait()
                    answers.append(http.post("/v1/jobs", files=files))

            threads = [threading.Thread(target=submit) for _ in range(5)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            codes = sorted(a.status_code for a in answers)
            assert codes == [201] * allowed + [429] * (5 - allowed), [a.text for a in answers]
            assert all(a.json()["code"] == code and int(a.headers["retry-after"]) > 0
                       for a in answers if a.status_code == 429)
        assert len(svc.runtime.store.list(serial_key.id)) == 1 and len(svc.runtime.store.list(hourly_key.id)) == 2
        folders = [p for p in (svc.settings.data_dir / "objects").iterdir() if p.name != "_keys"]
        assert len(folders) == 3  # refused requests left no media behind


def test_a_replay_at_the_limit_returns_the_job(tmp_path, astronaut):
    """An Idempotency-Key replay is not a new job: a key at its limit gets its job back, not 429."""
    small = jpeg_bytes(astronaut[::4, ::4])
    with live_service(tmp_path, workers=0) as svc:
        _, serial = svc.runtime.keys.create("serial", max_concurrent_jobs=1, jobs_per_hour=1)
        with svc.client(serial) as http:
            first = http.post("/v1/jobs", files=_files(small, small), headers={"Idempotency-Key": "render-9"})
            replay = http.post("/v1/jobs", files=_files(small, small), headers={"Idempotency-Key": "render-9"})
            assert first.status_code == 201 and replay.status_code == 200, replay.text
            assert replay.json()["id"] == first.json()["id"]
            other = http.post("/v1/jobs", files=_files(small, small), headers={"Idempotency-Key": "render-10"})
            assert other.status_code == 429


def test_per_key_upload_limit_holds_without_content_length(tmp_path, astronaut):
    """A chunked body (no Content-Length) is measured as it is read: the key's limit still holds."""
    big = jpeg_bytes(astronaut)
    request = httpx.Request("POST", "http://x/v1/jobs", files=_files(big, big))
    body, content_type = request.read(), request.headers["content-type"]

    def chunked():
        for i in range(0, len(body), 8192):
            yield body[i:i + 8192]

    with live_service(tmp_path, workers=0) as svc:
        tiny_key, tiny = svc.runtime.keys.create("tiny", max_upload_mb=0.05)
        with svc.client(tiny) as http:
            answer = http.post("/v1/jobs", content=chunked(), headers={"content-type": content_type})
            assert answer.status_code == 413, answer.text
            assert answer.json()["code"] == "upload_too_large"
        assert svc.runtime.store.list(tiny_key.id) == []
        assert not any(p.is_file() for p in (svc.settings.data_dir / "objects").rglob("*"))


def test_keys_cli(tmp_path, monkeypatch, capsys, astronaut):
    monkeypatch.setenv("SWAPFACE_DATA_DIR", str(tmp_path / "data"))  # the same database the service uses
    assert cli(["keys", "list"]) == 0
    assert "no API keys" in capsys.readouterr().out
    assert cli(["keys", "create", "--name", "render-farm", "--max-concurrent-jobs", "2", "--jobs-per-hour", "50"]) == 0
    printed = capsys.readouterr()
    key = printed.out.strip()
    assert key.startswith("swf_") and len(key) > 40 and "\n" not in key
    assert "render-farm" in printed.err and key not in printed.err

    small = jpeg_bytes(astronaut[::4, ::4])
    with live_service(tmp_path, workers=0) as svc:
        with svc.client(key) as http:
            created = http.post("/v1/jobs", files=_files(small, small))
            assert created.status_code == 201
            assert http.get("/v1/usage").json()["key"] == "render-farm"

        assert cli(["keys", "list"]) == 0
        listing = capsys.readouterr().out
        assert "render-farm" in listing and "active" in listing and "concurrent=2" in listing
        assert key not in listing and key[8:16] not in listing  # only the hint (its first 8 characters)
        assert key[:8] in listing

        assert cli(["keys", "revoke", "render-farm"]) == 0
        assert capsys.readouterr().out.strip() == "revoked"
        with svc.client(key) as http:
            refused = http.get("/v1/jobs")
            assert refused.status_code == 401 and refused.json()["code"] == "bad_api_key"
        assert cli(["keys", "list"]) == 0
        listing = capsys.readouterr().out
        assert "revoked" in listing and key not in listing
        assert cli(["keys", "revoke", "render-farm"]) == 2  # nothing active by that name any more
        assert "no active key" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["http://10.0.0.1/x", "http://169.254.169.254/", "http://127.0.0.1:9/hook",
                                 "http://[::ffff:169.254.169.254]/", "http://user:pw@93.184.216.34/"])
def test_webhook_urls_inside_the_network_are_refused(tmp_path, astronaut, url):
    small = jpeg_bytes(astronaut[::4, ::4])
    with live_service(tmp_path, workers=0, webhook_allow_http=True) as svc, svc.client() as http:
        answer = http.post("/v1/jobs", files=_files(small, small), data={"webhook_url": url})
        assert answer.status_code == 422 and answer.json()["code"] == "bad_webhook_url", answer.text
        as_json = http.post("/v1/jobs", json={"sources": ["file:///etc/hostname"], "target": "file:///etc/hostname",
                                              "webhook_url": url})
        assert as_json.status_code == 422 and as_json.json()["code"] == "bad_webhook_url"
        assert svc.runtime.store.list(None) == []
        objects = svc.settings.data_dir / "objects"
        assert not objects.exists() or not any(objects.iterdir())


def test_plain_http_webhooks_need_the_setting(tmp_path, astronaut):
    small = jpeg_bytes(astronaut[::4, ::4])
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        answer = http.post("/v1/jobs", files=_files(small, small), data={"webhook_url": "http://93.184.216.34/hook"})
        assert answer.status_code == 422 and "https" in answer.json()["detail"]
        assert svc.runtime.store.list(None) == []


def _envelope(bucket: str, name: str, generation: str, message_id: str) -> dict:
    """A Cloud Storage OBJECT_FINALIZE notification as Pub/Sub pushes it."""
    data = {"kind": "storage#object", "bucket": bucket, "name": name, "generation": generation,
            "contentType": "image/jpeg", "size": "2048", "metadata": {}}
    return {"message": {"attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": bucket, "objectId": name,
                                       "objectGeneration": generation, "payloadFormat": "JSON_API_V1"},
                        "data": base64.b64encode(json.dumps(data).encode()).decode(),
                        "messageId": message_id, "publishTime": "2026-11-24T10:00:00.000Z"},
            "subscription": "projects/p/subscriptions/swapface-push"}


def test_pubsub_redeliveries_make_one_job(tmp_path, astronaut):
    face = tmp_path / "data" / "objects" / "faces" / "actor.jpg"
    face.parent.mkdir(parents=True)
    face.write_bytes(jpeg_bytes(astronaut[::2, ::2]))
    rules = [{"bucket": "b", "prefix": "in/", "source": face.as_uri(), "output_prefix": "out/"}]
    event = _envelope("b", "in/shot-7.jpg", "1700000000000042", "m-1")
    # workers=0: the job's target is on gs://, which this machine cannot reach
    with live_service(tmp_path, workers=0, pubsub_rules=rules) as svc:
        barrier = threading.Barrier(2)
        answers: list[httpx.Response] = []

        def push() -> None:
            with httpx.Client(base_url=svc.url, timeout=30) as client:
                barrier.wait()
                for _ in range(100):
                    answer = client.post("/v1/events/pubsub", json=event)
                    if answer.status_code != 409:  # 409: the other delivery is creating it; Pub/Sub retries
                        break
                    time.sleep(0.05)
                answers.append(answer)

        threads = [threading.Thread(target=push) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        answers.sort(key=lambda a: a.status_code)
        assert [a.status_code for a in answers] == [200, 201], [a.text for a in answers]
        duplicate, created = answers[0].json(), answers[1].json()
        assert created["status"] == "created" and duplicate == {"status": "duplicate", "job_id": created["job_id"]}

        (job,) = svc.runtime.store.list(None)
        assert job.id == created["job_id"] and job.owner == "pubsub" and job.status == "queued"
        assert job.spec["target"] == "gs://b/in/shot-7.jpg" and job.spec["sources"] == [face.as_uri()]
        assert job.spec["output"] == "gs://b/out/in/shot-7.jpg"

        with httpx.Client(base_url=svc.url, timeout=30) as client:
            later = client.post("/v1/events/pubsub", json=_envelope("b", "in/shot-7.jpg", "1700000000000042", "m-2"))
            assert later.json() == {"status": "duplicate", "job_id": job.id}
            output = client.post("/v1/events/pubsub", json=_envelope("b", "out/in/shot-7.jpg", "5", "m-3"))
            assert output.status_code == 200 and output.json()["status"] == "ignored"  # no job loops
        assert len(svc.runtime.store.list(None)) == 1
