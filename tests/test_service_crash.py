"""A worker killed with SIGKILL mid-video: another worker takes the job over when the lease runs out and
finishes it from the committed chunks — no frame lost or duplicated, no committed chunk processed again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from media_fixtures import moving_face_clip
from service_fixtures import jpeg_bytes, live_service
from swapface import storage

pytestmark = pytest.mark.slow

FRAMES = 90
LEASE_S = 3.0
KEK = "c3dhcGZhY2UtY3Jhc2gtdGVzdC1rZXktMzItYnl0ZXM="  # base64 of 32 bytes


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "swapface.cli.main", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"))


def _manifest(svc, job_id: str) -> dict:
    """The job's checkpoint as the workers see it (decrypted when encryption at rest is on)."""
    uri = storage.join(svc.settings.resolved_storage_url(), job_id, "work", "manifest.json")
    try:
        return storage.read_json(uri, job_id=job_id, settings=svc.settings) or {}
    except (FileNotFoundError, ValueError):
        return {}


def _committed(svc, job_id: str) -> dict[str, dict]:
    return _manifest(svc, job_id).get("segments", {})


@pytest.mark.parametrize("kek", [None, KEK], ids=["clear", "encrypted"])
def test_sigkilled_worker_job_is_finished_by_another(tmp_path, monkeypatch, driver, kek):
    """With encryption at rest too: every fetch of the target is a fresh decrypted copy, and resume must
    still recognise it."""
    data = tmp_path / "data"
    env = {**os.environ, "SWAPFACE_DATA_DIR": str(data), "SWAPFACE_LEASE_S": str(LEASE_S),
           "SWAPFACE_WORKER_POLL_S": "0.2", "SWAPFACE_MODELS_DIR": str(tmp_path / "models")}
    if kek:
        env["SWAPFACE_KEK"] = kek
    clip = moving_face_clip(tmp_path / "clip.mp4", frames=FRAMES, tone_hz=330.0)
    with live_service(tmp_path, workers=0, lease_s=LEASE_S, kek=kek) as svc, svc.client() as http:
        job = http.post("/v1/jobs", files=[("source", ("a.jpg", jpeg_bytes(driver), "image/jpeg")),
                                           ("target", ("c.mp4", clip.read_bytes(), "video/mp4"))],
                        data={"chunk_seconds": "0.3"}).json()

        first = _worker(env, tmp_path / "worker1.log")
        deadline = time.monotonic() + 120
        while len(_committed(svc, job["id"])) < 3:
            assert first.poll() is None, (tmp_path / "worker1.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the first worker committed no chunks"
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        committed = _committed(svc, job["id"])
        total_chunks = len(_manifest(svc, job["id"])["chunks"])
        assert 3 <= len(committed) < total_chunks, "kill the worker mid-job, not after it"
        assert http.get(f"/v1/jobs/{job['id']}").json()["status"] == "running"

        second = _worker(env, tmp_path / "worker2.log")
        try:
            done = svc.wait(http, job["id"], timeout=240)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=60)
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 2
        record = svc.runtime.store.get(job["id"])
        # the committed chunks were reused, not processed again; every other chunk ran once
        assert record.chunks_reused == len(committed)
        assert record.chunks_total == total_chunks
        lost = [f for f in svc.runtime.store.failure_rows(0) if f["job_id"] == job["id"]]
        assert [f["code"] for f in lost] == ["worker_lost"] and lost[0]["retried"]

        out = tmp_path / "out.mp4"
        out.write_bytes(http.get(f"/v1/jobs/{job['id']}/result").content)
        with av.open(str(out)) as container:
            stamps = [frame.pts for frame in container.decode(video=0)]
        assert len(stamps) == FRAMES
        assert stamps == sorted(set(stamps)), "duplicated or reordered frames"
