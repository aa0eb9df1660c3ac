"""The web page at / driven in headless Chromium against the real service: a swap end to end, API errors, API keys.

Chromium is Debian's (``make browser`` installs it); Playwright never downloads its own. The browser may
reach only the service on loopback (every other host name fails to resolve), so the page is checked to
work offline as well.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from media_fixtures import moving_face_clip
from service_fixtures import jpeg_bytes, live_service

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs Debian's Chromium at /usr/bin/chromium "
                       "(apt-get install chromium, or 'make browser')"),
]

FINISHED = "() => ['succeeded', 'failed', 'cancelled', 'error'].includes(document.querySelector('#status').dataset.state)"
RESULT_LOADED = "() => { const i = document.querySelector('#result-image'); return !!i && i.complete && i.naturalWidth > 0; }"
SHA256_OF_DOWNLOAD = """async () => {
    const res = await fetch(document.querySelector('#download').href);
    const digest = await crypto.subtle.digest('SHA-256', await res.arrayBuffer());
    return [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join('');
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Page:
    """A fresh page on the service, recording script errors and every URL it requests."""

    def __init__(self, browser, base_url: str) -> None:
        self.base_url = base_url
        self.context = browser.new_context(viewport={"width": 1200, "height": 860}, base_url=base_url)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        self.page.on("request", lambda req: self.requests.append(req.url))

    def open(self) -> "Page":
        response = self.page.goto("/")
        assert response is not None and response.status == 200
        assert response.headers["content-type"].startswith("text/html")
        return self

    def foreign_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith((self.base_url, "blob:", "data:"))]

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def files(tmp_path, astronaut, driver) -> dict[str, Path]:
    paths = {"source": tmp_path / "astronaut.jpg", "target": tmp_path / "driver.jpg", "bad": tmp_path / "notes.jpg"}
    paths["source"].write_bytes(jpeg_bytes(astronaut))
    paths["target"].write_bytes(jpeg_bytes(driver))
    paths["bad"].write_text("These are meeting notes, not a picture.\n" * 20)
    return paths


def test_a_swap_from_the_page(tmp_path, browser, files):
    """An image swap; the event stream is refused here, so the page follows the job by polling it."""
    with live_service(tmp_path, workers=1) as svc, svc.client() as http:
        web = Page(browser, svc.url).open()
        page = web.page
        page.route("**/v1/jobs/*/events", lambda route: route.abort())
        for name in ("source", "target", "face_selector_mode", "face_mask_blur", "color_transfer", "api_key"):
            assert page.locator(f"label[for={name}]").count() == 1, f"#{name} has no label"
        assert "AI-generated" in page.locator("#ai-note").inner_text()
        assert page.locator("#download").is_hidden() and page.locator("#error").is_hidden()
        page.screenshot(path=str(tmp_path / "web-page-empty.png"), full_page=True)

        page.set_input_files("#source", str(files["source"]))
        page.set_input_files("#target", str(files["target"]))
        page.wait_for_function("() => document.querySelectorAll('#source-preview img, #input-view img').length === 2")
        page.select_option("#face_selector_mode", "many")
        page.fill("#face_mask_blur", "0.4")
        page.uncheck("#color_transfer")
        page.click("#submit")

        page.wait_for_function(FINISHED, timeout=120_000)
        status = page.locator("#status").inner_text()
        assert page.locator("#status").get_attribute("data-state") == "succeeded", \
            f"{status}: {page.locator('#error').inner_text() if page.locator('#error').is_visible() else ''}"
        assert "Succeeded" in status
        page.wait_for_function(RESULT_LOADED, timeout=30_000)

        jobs = http.get("/v1/jobs").json()["jobs"]
        assert [j["status"] for j in jobs] == ["succeeded"]
        job = jobs[0]
        assert job["options"] == {"face_selector_mode": "many", "face_mask_blur": 0.4, "color_transfer": "off"}
        assert job["id"] in page.locator("#job-id").inner_text()
        assert page.locator("#progress").evaluate("p => p.value") == 1
        assert page.locator("#frames").inner_text() == "1 / 1 frames"

        result_path = f"/v1/jobs/{job['id']}/result"
        download = page.locator("#download")
        assert download.is_visible()
        assert download.get_attribute("href") == result_path
        assert download.get_attribute("data-result-url") == result_path
        assert download.get_attribute("download").endswith(".jpg")
        expected = http.get(result_path)
        assert expected.status_code == 200 and expected.headers["content-type"] == "image/jpeg"
        assert page.evaluate(SHA256_OF_DOWNLOAD) == hashlib.sha256(expected.content).hexdigest()
        natural = page.locator("#result-image").evaluate("i => [i.naturalWidth, i.naturalHeight]")
        assert natural == [704, 576]  # the driver's size: the result is the target, swapped

        page.screenshot(path=str(tmp_path / "web-page-result.png"), full_page=True)
        assert web.requests.count(f"{svc.url}/v1/jobs/{job['id']}/events") == 1
        assert web.requests.count(f"{svc.url}/v1/jobs/{job['id']}") >= 1  # the fallback
        assert [e for e in web.errors if "ERR_FAILED" not in e] == [], web.errors  # the refused stream is logged
        assert not web.foreign_requests(), web.foreign_requests()
        web.close()


def test_a_bad_target_shows_the_api_error(tmp_path, browser, files):
    with live_service(tmp_path, workers=1) as svc, svc.client() as http:
        with open(files["source"], "rb") as s, open(files["bad"], "rb") as b:
            direct = http.post("/v1/jobs", files=[("source", ("a.jpg", s, "image/jpeg")), ("target", ("b.jpg", b, "image/jpeg"))])
        assert direct.status_code == 422 and direct.json()["code"] == "bad_media"

        web = Page(browser, svc.url).open()
        page = web.page
        page.set_input_files("#source", str(files["source"]))
        page.set_input_files("#target", str(files["bad"]))
        assert page.locator("#target-preview .unreadable").inner_text() == "No preview of notes.jpg"
        page.click("#submit")
        page.wait_for_function(FINISHED)

        error = page.locator("#error")
        assert error.is_visible()
        assert direct.json()["detail"] in error.inner_text()
        assert "bad_media" in error.inner_text()
        assert page.locator("#status").get_attribute("data-state") == "error"
        assert page.locator("#download").is_hidden()
        assert not page.locator("#submit").is_disabled()  # ready for another try
        assert http.get("/v1/jobs").json()["jobs"] == []
        page.screenshot(path=str(tmp_path / "web-page-error.png"), full_page=True)
        assert not [e for e in web.errors if "422" not in e], web.errors  # the browser logs the refused POST
        assert not web.foreign_requests(), web.foreign_requests()
        web.close()


def test_the_api_key_is_kept_and_sent(tmp_path, browser, files):
    with live_service(tmp_path, workers=1) as svc:
        _, key = svc.runtime.keys.create("web")
        web = Page(browser, svc.url).open()
        page = web.page
        page.set_input_files("#source", str(files["source"]))
        page.set_input_files("#target", str(files["bad"]))

        page.click("#submit")  # no key: keyless loopback access ended with the first key
        page.wait_for_function(FINISHED)
        assert "Authorization: Bearer" in page.locator("#error").inner_text()
        assert "api_key_required" in page.locator("#error").inner_text()
        assert "needs an API key" in page.locator("#error").inner_text()  # a sentence, then the API's detail
        assert page.locator("#key-details").evaluate("d => d.open")  # the key field opened by itself
        assert page.evaluate("document.activeElement.id") == "api_key"
        assert page.locator("#api_key").get_attribute("placeholder").startswith("swf_")

        page.fill("#api_key", key)
        page.click("#submit")  # with the key the request reaches the media checks
        page.wait_for_function(FINISHED)
        assert "bad_media" in page.locator("#error").inner_text()

        page.reload()  # the key is remembered in this browser
        assert page.locator("#api_key").input_value() == key
        assert page.evaluate("localStorage.getItem('swapface.apiKey')") == key
        page.fill("#api_key", "sk_wrong")
        page.set_input_files("#source", str(files["source"]))
        page.set_input_files("#target", str(files["bad"]))
        page.click("#submit")
        page.wait_for_function(FINISHED)
        assert "bad_api_key" in page.locator("#error").inner_text()
        assert not web.foreign_requests(), web.foreign_requests()
        web.close()


def test_a_video_swap_with_an_api_key(tmp_path, browser, files):
    """Progress in frames while a clip is swapped; with a key the result is fetched (an <img>/<video> sends none)."""
    clip = moving_face_clip(tmp_path / "clip.mp4", frames=24, tone_hz=None)
    with live_service(tmp_path, workers=1) as svc:
        _, key = svc.runtime.keys.create("web")
        web = Page(browser, svc.url).open()
        page = web.page
        page.click("#key-details summary")
        page.fill("#api_key", key)
        page.set_input_files("#source", str(files["target"]))  # the driver's face onto the astronaut's
        page.set_input_files("#target", str(clip))
        page.wait_for_function("() => !!document.querySelector('#input-view video')")
        page.evaluate("""() => {  // every frames text the page shows while the job runs
            window.framesSeen = [];
            new MutationObserver(() => window.framesSeen.push(document.querySelector('#frames').textContent))
                .observe(document.querySelector('#frames'), {childList: true, characterData: true, subtree: true});
        }""")
        page.click("#submit")
        page.wait_for_function(FINISHED, timeout=120_000)
        assert page.locator("#status").get_attribute("data-state") == "succeeded", page.locator("#error").inner_text()
        assert page.locator("#frames").inner_text() == "24 / 24 frames"
        seen = [t for t in page.evaluate("window.framesSeen") if t]
        assert seen and all(t.endswith(" / 24 frames") for t in seen), seen
        assert page.locator("#progress").evaluate("p => p.value") == 1

        with svc.client(key) as http:
            jobs = http.get("/v1/jobs").json()["jobs"]
            assert [(j["status"], j["kind"]) for j in jobs] == [("succeeded", "video")]
            expected = http.get(f"/v1/jobs/{jobs[0]['id']}/result")
        assert expected.headers["content-type"] == "video/mp4"
        download = page.locator("#download")
        assert download.get_attribute("href").startswith("blob:")
        assert download.get_attribute("data-result-url") == f"/v1/jobs/{jobs[0]['id']}/result"
        assert download.get_attribute("download").endswith(".mp4")
        assert page.evaluate(SHA256_OF_DOWNLOAD) == hashlib.sha256(expected.content).hexdigest()
        assert page.locator("#result-video").count() == 1 and page.locator("#result-image").count() == 0
        if page.evaluate("document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.42E01E\"')"):
            page.wait_for_function("() => document.querySelector('#result-video').readyState >= 2", timeout=30_000)
            width, height, duration = page.locator("#result-video").evaluate("v => [v.videoWidth, v.videoHeight, v.duration]")
            assert (width, height) == (640, 360) and duration == pytest.approx(0.8, abs=0.1)
        page.screenshot(path=str(tmp_path / "web-page-video.png"), full_page=True)
        job_url = f"{svc.url}/v1/jobs/{jobs[0]['id']}"
        assert web.requests.count(f"{job_url}/events") == 1 and job_url not in web.requests  # the stream, no polls
        assert not web.errors, web.errors
        assert not web.foreign_requests(), web.foreign_requests()
        web.close()


def test_no_worker_notice_and_cancel(tmp_path, browser, files):
    """With no worker the page says so while the job waits, and the cancel button ends it."""
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        web = Page(browser, svc.url).open()
        page = web.page
        page.wait_for_function("() => !document.querySelector('#worker-note').hidden")
        assert "--workers 0" in page.locator("#worker-note").inner_text()
        page.set_input_files("#source", str(files["source"]))
        page.set_input_files("#target", str(files["target"]))
        page.click("#submit")
        page.wait_for_function("() => document.querySelector('#status').dataset.state === 'queued'")
        assert "no worker" in page.locator("#status").inner_text()
        assert page.locator("#cancel").is_visible()
        page.click("#cancel")
        page.wait_for_function(FINISHED)
        assert page.locator("#status").get_attribute("data-state") == "cancelled"
        assert [j["status"] for j in http.get("/v1/jobs").json()["jobs"]] == ["cancelled"]
        assert page.locator("#cancel").is_hidden()
        assert not web.foreign_requests(), web.foreign_requests()
        web.close()


def test_before_after_slider_and_phone_scroll(tmp_path, browser, files):
    with live_service(tmp_path, workers=1) as svc:
        web = Page(browser, svc.url)
        web.context.close()
        web.context = browser.new_context(viewport={"width": 390, "height": 760}, base_url=svc.url, is_mobile=True)
        web.page = web.context.new_page()
        web.page.set_default_timeout(30_000)
        web.page.on("request", lambda req: web.requests.append(req.url))
        page = web.open().page
        page.set_input_files("#source", str(files["source"]))
        page.set_input_files("#target", str(files["target"]))
        page.click("#submit")
        page.wait_for_function(FINISHED, timeout=120_000)
        assert page.locator("#status").get_attribute("data-state") == "succeeded"
        page.wait_for_function("() => window.scrollY > 200")  # the result, below the form on a phone, came into view
        top = page.locator("#result-heading").evaluate("h => h.getBoundingClientRect().top")
        assert 0 <= top < 760
        assert page.locator("#before-after-field").is_visible()
        page.wait_for_function("() => document.querySelector('#after-image').naturalWidth > 0")
        assert page.locator("#before-image").get_attribute("src") == page.locator("#input-view img").get_attribute("src")
        cut = "() => getComputedStyle(document.querySelector('#before-after')).getPropertyValue('--cut').trim()"
        page.locator("#compare-slider").fill("80")
        assert page.evaluate(cut) == "20%"
        page.locator("#compare-slider").fill("10")
        assert page.evaluate(cut) == "90%"
        page.screenshot(path=str(tmp_path / "web-page-phone.png"), full_page=True)
        assert not web.foreign_requests(), web.foreign_requests()
        web.close()


def test_reference_face_chosen_by_clicking_it_in_the_target(tmp_path, browser, files, group):
    """Three faces in the target; clicking the middle one (the driver) replaces only him."""
    import numpy as np

    from swapface.media.image import read_image, write_image

    target = tmp_path / "group.png"
    write_image(group, target)
    with live_service(tmp_path, workers=1) as svc, svc.client() as http:
        web = Page(browser, svc.url).open()
        page = web.page
        page.set_input_files("#source", str(files["source"]))
        page.set_input_files("#target", str(target))
        page.select_option("#face_selector_mode", "reference")
        page.wait_for_function("() => document.querySelectorAll('#input-view .face-box').length === 3", timeout=60_000)
        boxes = page.locator("#input-view .face-box")
        lefts = [boxes.nth(i).evaluate("b => b.getBoundingClientRect().left") for i in range(3)]
        middle = sorted(range(3), key=lambda i: lefts[i])[1]
        boxes.nth(middle).click()
        page.wait_for_function("() => !!document.querySelector('#picked-reference')")
        assert boxes.nth(middle).get_attribute("aria-pressed") == "true"
        page.click("#submit")
        page.wait_for_function(FINISHED, timeout=120_000)
        assert page.locator("#status").get_attribute("data-state") == "succeeded", page.locator("#error").inner_text()
        job = http.get("/v1/jobs").json()["jobs"][0]
        assert job["options"] == {"face_selector_mode": "reference"}
        out = tmp_path / "result.png"
        out.write_bytes(http.get(job["urls"]["result"]).content)
        result = read_image(out)
        diff = np.abs(result.astype(int) - group.astype(int)).mean(axis=(0, 2))
        assert diff[470:790].mean() > 0.5 and diff[:380].max() == 0 and diff[880:].max() == 0
        assert not web.foreign_requests(), web.foreign_requests()
        web.close()


def test_video_options_and_synchronised_players(tmp_path, browser, files):
    clip = moving_face_clip(tmp_path / "clip.mp4", frames=30, tone_hz=None)
    with live_service(tmp_path, workers=1) as svc, svc.client() as http:
        web = Page(browser, svc.url).open()
        page = web.page
        for name in ("face_swapper_model", "face_enhancer_model", "trim_frame_start", "trim_frame_end",
                     "output_video_fps", "output_video_resolution"):
            assert page.locator(f"label[for={name}]").count() == 1, f"#{name} has no label"
        page.wait_for_function("() => !document.querySelector('#enhancer-hint').hidden")  # none installed here
        assert page.locator("#face_swapper_model option").all_inner_texts() == ["mesh3d (built in, 3D-aware)", "mesh (built in, plain 2D warp, faster)"]
        assert page.locator("input[name=face_mask_types][value=region]").is_disabled()
        page.set_input_files("#source", str(files["target"]))
        page.set_input_files("#target", str(clip))
        page.click("#more-options summary")
        page.fill("#trim_frame_start", "5")
        page.fill("#trim_frame_end", "20")
        page.fill("#output_video_fps", "15")
        page.click("#submit")
        page.wait_for_function(FINISHED, timeout=120_000)
        assert page.locator("#status").get_attribute("data-state") == "succeeded", page.locator("#error").inner_text()
        job = http.get("/v1/jobs").json()["jobs"][0]
        assert job["options"] == {"trim_frame_start": 5, "trim_frame_end": 20, "output_video_fps": 15.0}
        # frames 5..19 of 30 fps (0.167 s .. 0.667 s) at 15 fps: output frames 3..9 (0.2 s .. 0.6 s)
        assert page.locator("#frames").inner_text() == "7 / 7 frames"
        assert page.locator("#sync-field").is_visible()
        assert page.locator("#input-view video").get_attribute("data-synced") == "true"
        assert page.locator("#result-video").get_attribute("data-synced") == "true"
        if page.evaluate("document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.42E01E\"')"):
            page.wait_for_function("() => document.querySelector('#result-video').readyState >= 2", timeout=30_000)
            # both must start from the one click; the 0.47 s result can end (and pause) before a poll on a busy
            # machine sees it playing, so each player's 'playing' event is recorded rather than polled for
            page.evaluate("() => { window.started = new Set(); for (const [name, css] of [['result', '#result-video'], "
                          "['input', '#input-view video']]) document.querySelector(css).addEventListener('playing', "
                          "() => window.started.add(name)); }")
            page.click("#play-both")
            page.wait_for_function("() => window.started.has('result') && window.started.has('input')")
            page.evaluate("() => document.querySelector('#input-view video').pause()")
            page.wait_for_function("() => document.querySelector('#result-video').paused")
        assert not web.foreign_requests(), web.foreign_requests()
        web.close()
