"""The service as a new user meets it: `serve` with no options runs jobs, job JSON says where to go next,
``Prefer: wait`` answers with the finished job, the page learns what the server offers, /docs works offline."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from service_fixtures import free_port, jpeg_bytes, live_service

EXE = str(Path(sys.executable).with_name("swapface"))
SRC = Path(__file__).resolve().parents[1] / "src"
CHROMIUM = Path("/usr/bin/chromium")


def upload(astronaut, driver) -> list:
    return [("source", ("a.jpg", jpeg_bytes(astronaut), "image/jpeg")), ("target", ("d.jpg", jpeg_bytes(driver), "image/jpeg"))]


@pytest.mark.slow
def test_serve_with_no_options_completes_a_job(tmp_path, astronaut, driver):
    port = free_port()
    env = {**os.environ, "SWAPFACE_DATA_DIR": str(tmp_path / "data"), "SWAPFACE_WORKER_POLL_S": "0.2",
           "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([EXE, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "no start"
                time.sleep(0.2)
            assert http.get("/v1/info").json()["workers"] == 1
            job = http.post("/v1/jobs", files=upload(astronaut, driver)).json()
            deadline = time.monotonic() + 180
            while job["status"] not in ("succeeded", "failed", "cancelled"):
                assert time.monotonic() < deadline, f"the job never ran: {job}"
                time.sleep(0.3)
                job = http.get(job["urls"]["get"]).json()
            assert job["status"] == "succeeded", job
            result = http.get(job["urls"]["result"])
            assert result.status_code == 200 and result.headers["content-type"] == "image/jpeg"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.mark.slow
def test_job_urls_and_prefer_wait(tmp_path, astronaut, driver):
    with live_service(tmp_path, workers=1) as svc, svc.client() as http:
        waited = http.post("/v1/jobs", files=upload(astronaut, driver), headers={"Prefer": "wait=60"})
        assert waited.status_code == 201
        job = waited.json()
        assert job["status"] == "succeeded", job  # a small image is done within the wait
        assert waited.headers["Preference-Applied"] == "wait=60"
        assert job["urls"] == {"get": f"/v1/jobs/{job['id']}", "result": f"/v1/jobs/{job['id']}/result",
                               "events": f"/v1/jobs/{job['id']}/events", "cancel": f"/v1/jobs/{job['id']}/cancel"}
        assert http.get(job["urls"]["result"]).status_code == 200
        assert http.get(job["urls"]["get"]).json()["urls"] == job["urls"]
        assert http.get("/v1/jobs").json()["jobs"][0]["urls"] == job["urls"]
        with http.stream("GET", job["urls"]["events"]) as events:
            assert events.status_code == 200 and events.headers["content-type"].startswith("text/event-stream")
        bad = http.post("/v1/jobs", files=upload(astronaut, driver), headers={"Prefer": "wait=soon"})
        assert bad.status_code == 400 and bad.json()["code"] == "bad_prefer"


def test_info_says_when_no_worker_runs_and_faces_are_found(tmp_path, group):
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        info = http.get("/v1/info").json()
        assert info["workers"] == 0 and info["models"]["face_swapper_model"] == ["mesh3d", "mesh"]
        assert info["models"]["face_enhancer_model"] == []  # none installed in this models folder
        faces = http.post("/v1/faces", content=jpeg_bytes(group), headers={"Content-Type": "image/jpeg"}).json()["faces"]
        assert len(faces) == 3
        areas = [(f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]) for f in faces]
        assert areas == sorted(areas, reverse=True)
        centres = sorted((f["box"][0] + f["box"][2]) / 2 for f in faces)
        assert centres[0] < 400 and 450 < centres[1] < 800 and centres[2] > 880
        bad = http.post("/v1/faces", content=b"not a picture")
        assert bad.status_code == 422 and bad.json()["code"]


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs Debian's Chromium at /usr/bin/chromium")
def test_docs_render_offline_with_no_request_to_another_host(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from test_web_page import ARGS

    with live_service(tmp_path, workers=0) as svc, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page()
            requests: list[str] = []
            page.on("request", lambda req: requests.append(req.url))
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(svc.url)
                       else route.abort())
            assert page.goto(f"{svc.url}/docs").status == 200
            page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
            assert page.locator(".swagger-ui .opblock").count() >= 5
            assert "/v1/jobs" in page.locator(".swagger-ui").inner_text()
            foreign = [u for u in requests if not u.startswith((svc.url, "data:", "blob:"))]
            assert foreign == [], foreign
        finally:
            browser.close()
