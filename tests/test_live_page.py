"""The Live view in headless Chromium against the real service, its camera a fake fed from a y4m of carphone.

The page must show the camera swapped (the frame it draws is recognised as the source person, the camera
frame beside it as the man in the car), report frames/s, and end the session on the server when stopped
or when the page goes away. Without camera permission, or with a source photo lacking a face, it says so.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from media_fixtures import carphone_frames
from service_fixtures import jpeg_bytes, live_service

from swapface.faces.face import identity_distance
from swapface.live.y4m import write_y4m

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--use-fake-device-for-media-stream"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs Debian's Chromium at /usr/bin/chromium "
                       "(apt-get install chromium, or 'make browser')"),
]

RUNNING = "() => document.querySelector('#live-state').dataset.state === 'running'"
CAPTURE = """(selector) => {
    const el = document.querySelector(selector);
    const c = document.createElement('canvas');
    c.width = el.videoWidth || el.width; c.height = el.videoHeight || el.height;
    c.getContext('2d').drawImage(el, 0, 0);
    return c.toDataURL('image/png');
}"""


def camera_clip(path: Path) -> Path:
    """carphone's 120 frames at 640×480: the fake webcam plays them in a loop."""
    return write_y4m(path, (cv2.resize(f, (640, 480), interpolation=cv2.INTER_CUBIC) for f in carphone_frames()))


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator:
    sync_api = pytest.importorskip("playwright.sync_api")
    clip = camera_clip(tmp_path_factory.mktemp("camera") / "carphone.y4m")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM),
                                     args=[*ARGS, f"--use-file-for-fake-video-capture={clip}"])
        try:
            yield chromium
        finally:
            chromium.close()


class LivePage:
    """The Live view in a fresh browser context, recording script errors."""

    def __init__(self, browser, base_url: str, *, camera: bool = True, path: str = "/live") -> None:
        self.context = browser.new_context(viewport={"width": 1300, "height": 800}, base_url=base_url,
                                           permissions=["camera"] if camera else [])
        self.page = self.context.new_page()
        self.page.set_default_timeout(60_000)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        response = self.page.goto(path)
        assert response is not None and response.status == 200

    def capture(self, selector: str) -> np.ndarray:
        url = self.page.evaluate(CAPTURE, selector)
        png = base64.b64decode(url.split(",", 1)[1])
        return cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def main_embedding(analyser, image: np.ndarray) -> np.ndarray:
    faces = analyser.analyse_still(image)
    assert faces, "no face found in a frame captured from the page"
    return faces[0].embedding


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_the_page_swaps_the_camera_live(tmp_path, browser, astronaut, analyser):
    source = tmp_path / "astronaut.jpg"
    source.write_bytes(jpeg_bytes(astronaut))
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        web = LivePage(browser, svc.url)
        page = web.page
        assert page.locator("#live-message").is_hidden()
        page.set_input_files("#live-source", str(source))
        page.click("#live-start")
        page.wait_for_function(RUNNING)
        page.wait_for_function("() => window.liveStats.shown >= 40")

        sessions = http.get("/v1/live/sessions").json()["sessions"]
        assert len(sessions) == 1 and sessions[0]["connected"] and sessions[0]["frames_sent"] >= 40
        assert sessions[0]["options"]["label_output"] is True

        # three moments of the stream; the page's two views are captured one after the other, not in one frame
        person = main_embedding(analyser, astronaut)
        to_person, to_camera, camera_to_person = [], [], []
        for _ in range(3):
            swapped, camera = web.capture("#live-output"), web.capture("#live-camera")
            assert swapped.shape == camera.shape == (480, 640, 3)
            in_camera, shown = main_embedding(analyser, camera), main_embedding(analyser, swapped)
            to_person.append(identity_distance(shown, person))
            to_camera.append(identity_distance(shown, in_camera))
            camera_to_person.append(identity_distance(in_camera, person))
            page.wait_for_timeout(300)
        assert min(camera_to_person) > 0.3  # two people
        assert np.median(to_person) < np.median(to_camera) and max(to_person) < min(camera_to_person)
        label = swapped[440:475, 520:635].astype(int)  # the 'AI-generated' badge, bottom right
        assert (label > 235).all(axis=2).sum() > 40 and (label < 60).all(axis=2).sum() > 400

        page.wait_for_function("() => document.querySelector('#live-fps').dataset.fps > 0")
        fps_text = page.locator("#live-fps").inner_text()
        assert fps_text.endswith("frames/s") and float(fps_text.split()[0]) > 0
        assert page.locator("#live-latency").inner_text().endswith("ms")
        page.screenshot(path=str(tmp_path / "live-page-running.png"), full_page=True)

        page.click("#live-stop")
        page.wait_for_function("() => document.querySelector('#live-state').dataset.state === 'stopped'")
        assert http.get("/v1/live/sessions").json()["sessions"] == []
        assert http.get(f"/v1/live/sessions/{sessions[0]['id']}").status_code == 404
        assert page.locator("#live-message").is_hidden()
        assert not web.errors, web.errors
        web.context.close()


def test_the_page_says_what_is_wrong_and_a_closed_page_ends_its_session(tmp_path, browser, astronaut):
    source, blank = tmp_path / "astronaut.jpg", tmp_path / "blank.jpg"
    source.write_bytes(jpeg_bytes(astronaut))
    blank.write_bytes(jpeg_bytes(np.full((300, 300, 3), 128, np.uint8)))
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        refused = LivePage(browser, svc.url, camera=False)  # the user said no to the camera prompt
        refused.page.set_input_files("#live-source", str(source))
        refused.page.click("#live-start")
        refused.page.wait_for_function("() => !document.querySelector('#live-message').hidden")
        assert refused.page.locator("#live-message").inner_text() == \
            "Camera access was refused: allow this page to use the camera, then press Start again."
        assert refused.page.locator("#live-state").get_attribute("data-state") == "error"
        assert not refused.page.locator("#live-start").is_disabled()
        refused.context.close()

        web = LivePage(browser, svc.url)
        page = web.page
        page.set_input_files("#live-source", str(blank))
        page.click("#live-start")
        page.wait_for_function("() => !document.querySelector('#live-message').hidden")
        direct = http.post("/v1/live/sessions", files={"source": ("blank.jpg", blank.read_bytes(), "image/jpeg")})
        assert direct.json()["code"] == "no_face_in_source"
        assert page.locator("#live-message").inner_text() == f"{direct.json()['detail']} (no_face_in_source)"
        assert http.get("/v1/live/sessions").json()["sessions"] == []

        page.set_input_files("#live-source", str(source))
        page.click("#live-start")
        page.wait_for_function(RUNNING)
        page.wait_for_function("() => window.liveStats.shown >= 5")
        assert len(http.get("/v1/live/sessions").json()["sessions"]) == 1
        web.context.close()  # the tab is closed mid-stream
        assert wait_until(lambda: http.get("/v1/live/sessions").json()["sessions"] == [], 5), \
            "a closed page must end its session within seconds"


def test_a_session_started_elsewhere_opens_in_the_page(tmp_path, browser, astronaut):
    """What ``swapface live`` does: it starts the session, the page at /live?session=ID streams to it."""
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        res = http.post("/v1/live/sessions", files={"source": ("a.jpg", jpeg_bytes(astronaut), "image/jpeg")},
                        data={"options": '{"face_selector_mode": "many", "label_output": false}'})
        session = res.json()
        web = LivePage(browser, svc.url, path=f"/live?session={session['id']}&size=320x240")
        page = web.page
        page.wait_for_function(RUNNING)
        page.wait_for_function("() => window.liveStats.shown >= 5")
        assert page.locator("#live-mode").input_value() == "many"
        assert page.locator("#live-size").input_value() == "320x240"
        assert not page.locator("#live-label").is_checked()
        assert http.get(f"/v1/live/sessions/{session['id']}").json()["frames_sent"] >= 5
        page.click("#live-stop")
        page.wait_for_function("() => document.querySelector('#live-state').dataset.state === 'stopped'")
        assert http.get("/v1/live/sessions").json()["sessions"] == []
        assert not web.errors, web.errors
        web.context.close()


def test_a_page_that_stops_sending_frames_is_told_its_session_ended(tmp_path, browser, astronaut):
    """A page still connected but sending no camera frame (a tab in the background, a frozen encoder) has its
    session ended by the service, and says so in a sentence."""
    source = tmp_path / "astronaut.jpg"
    source.write_bytes(jpeg_bytes(astronaut))
    with live_service(tmp_path, workers=0, live_idle_timeout_s=2) as svc, svc.client() as http:
        web = LivePage(browser, svc.url)
        page = web.page
        page.set_input_files("#live-source", str(source))
        page.click("#live-start")
        page.wait_for_function(RUNNING)
        page.wait_for_function("() => window.liveStats.shown >= 3")
        page.evaluate("() => { WebSocket.prototype.send = function () {}; }")  # the camera frames stop leaving
        page.wait_for_function("() => document.querySelector('#live-state').dataset.state === 'stopped'",
                               timeout=15_000)
        assert page.locator("#live-message").inner_text() == \
            "The live session ended: the service got no camera frame for 2 s. Press Start again."
        assert http.get("/v1/live/sessions").json()["sessions"] == []
        assert web.errors == []
        web.context.close()
