"""The live API and its WebSocket stream on the real service, driven by a plain WebSocket client.

Frames are carphone's talking head (640×480) and the astronaut is put in; the assertions are what a
viewer sees: swapped frames of the source person, the newest frame kept when the engine falls behind,
untouched frames without a face, live option and source changes, and sessions that end with their stream.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading
import time
import weakref

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ASTRONAUT_HEAD, paste
from media_fixtures import carphone_frames
from service_fixtures import jpeg_bytes, live_service
from swapface.faces.face import identity_distance
from swapface.jobs.live_usage import STALE_S, live_sessions
from swapface.jobs.store import LimitReached
from swapface.live.frames import Result, encode_jpeg, pack_frame

websockets_client = pytest.importorskip("websockets.sync.client")
ConnectionClosed = pytest.importorskip("websockets.exceptions").ConnectionClosed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def camera() -> list[np.ndarray]:
    return [cv2.resize(f, (640, 480), interpolation=cv2.INTER_CUBIC) for f in carphone_frames(60)]


@pytest.fixture()
def photos(astronaut) -> dict[str, bytes]:
    blank = np.full((300, 300, 3), 128, np.uint8)
    return {"astronaut": jpeg_bytes(astronaut), "blank": jpeg_bytes(blank)}


def open_session(http, photo: bytes, **options) -> dict:
    res = http.post("/v1/live/sessions", files={"source": ("face.jpg", photo, "image/jpeg")},
                    data={"options": json.dumps(options)})
    assert res.status_code == 201, res.text
    return res.json()


def connect(svc, session: dict):
    return websockets_client.connect(svc.url.replace("http", "ws", 1) + session["stream"], max_size=None)


def exchange(ws, frame: np.ndarray, clock: float = 0.0) -> tuple[Result, np.ndarray]:
    """Send one frame and wait for its answer (decoded to RGB)."""
    ws.send(pack_frame(clock, encode_jpeg(frame, 92)))
    result = Result.decode(ws.recv(timeout=30))
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(result.jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return result, rgb


def live_metrics(http) -> dict[str, float]:
    """The live samples of /metrics as 'name{label=value}' → value."""
    out = {}
    for family in text_string_to_metric_families(http.get("/metrics").text):
        for sample in family.samples:
            if sample.name.startswith("swapface_live"):
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                out[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return out


def main_embedding(analyser, image: np.ndarray) -> np.ndarray:
    faces = analyser.analyse_still(image)
    assert faces, "no face found"
    return faces[0].embedding


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_frames_come_back_swapped_and_newest_first(tmp_path, camera, photos, astronaut, analyser):
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        session = open_session(http, photos["astronaut"], label_output=False)
        with connect(svc, session) as ws:
            for i in range(8):  # one at a time: tracking settles
                result, out = exchange(ws, camera[i], clock=float(i))
                assert result.clock == float(i)
            person, driver = main_embedding(analyser, astronaut), main_embedding(analyser, camera[7])
            shown = main_embedding(analyser, out)
            assert identity_distance(shown, person) < identity_distance(shown, driver)

            # a burst far faster than the engine: older waiting frames are dropped, the newest is answered
            for i in range(8, 48):
                ws.send(pack_frame(float(i), encode_jpeg(camera[i], 92)))
            clocks = []
            while not clocks or clocks[-1] != 47.0:
                clocks.append(Result.decode(ws.recv(timeout=30)).clock)
            assert clocks == sorted(clocks) and len(clocks) < 40
            info = http.get(f"/v1/live/sessions/{session['id']}").json()
            assert info["frames_received"] == 48 and info["frames_dropped"] == 48 - 8 - len(clocks)
            assert info["frames_sent"] == 8 + len(clocks)

            # no face in view: the frame comes back as it went (bar JPEG rounding); no label was asked for
            empty = np.ascontiguousarray(camera[0][:, :300][::-1])  # the car's ceiling and window, upside down
            empty = cv2.resize(empty, (640, 480))
            assert not analyser.analyse_still(empty)
            _, out = exchange(ws, empty, clock=99.0)
            assert np.abs(out.astype(int) - empty.astype(int)).mean() < 2.5
        assert wait_until(lambda: http.get("/v1/live/sessions").json()["sessions"] == [], 5), \
            "closing the stream must end the session"


def two_astronauts(astronaut) -> np.ndarray:
    """A 1280×720 frame with the astronaut twice: large on the left, smaller on the right."""
    canvas = np.full((720, 1280, 3), 96, np.uint8)
    paste(canvas, astronaut, ASTRONAUT_HEAD, (80, 140), 380)
    paste(canvas, astronaut, ASTRONAUT_HEAD, (820, 220), 280)
    return canvas


def test_options_and_source_change_while_live(tmp_path, camera, photos, astronaut, driver, analyser):
    group = two_astronauts(astronaut)
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        session = open_session(http, jpeg_bytes(driver))  # the driver into both astronauts
        url = f"/v1/live/sessions/{session['id']}"
        with connect(svc, session) as ws:
            faces = sorted(analyser.analyse_still(group), key=lambda f: f.box[0])
            assert len(faces) == 2

            def change_per_face() -> list[float]:
                """Mean change of each face of ``group`` (left to right) after a few frames."""
                for _ in range(3):
                    _, out = exchange(ws, group)
                diffs = []
                for face in faces:
                    x1, y1, x2, y2 = (int(v) for v in face.box)
                    diffs.append(float(np.abs(out[y1:y2, x1:x2].astype(int) - group[y1:y2, x1:x2].astype(int)).mean()))
                return diffs

            left, right = change_per_face()
            assert left > 6 and right < 3, (left, right)  # mode one: the largest face only
            res = http.patch(url, json={"options": {"face_selector_mode": "many"}})
            assert res.status_code == 200 and res.json()["options"]["face_selector_mode"] == "many"
            left, right = change_per_face()
            assert left > 6 and right > 6, (left, right)  # mode many: both

            # refused, not ignored: options that load models, options that have no meaning live, unknown ones
            for options, code in [({"face_detector_model": "scrfd"}, "fixed_while_live"),
                                  ({"trim_frame_start": 3}, "bad_option"), ({"face_mask_blur": 7}, "bad_option"),
                                  ({"sharpness": 1}, "bad_option"), ({"face_selector_mode": "reference"}, "bad_option")]:
                res = http.patch(url, json={"options": options})
                assert res.status_code == 422 and res.json()["code"] == code, (options, res.text)

            # a source without a face is refused and the current person stays in
            res = http.put(f"{url}/source", files={"source": ("blank.jpg", photos["blank"], "image/jpeg")})
            assert res.status_code == 422 and res.json()["code"] == "no_face_in_source"
            _, out = exchange(ws, camera[10])
            before = main_embedding(analyser, out)
            res = http.put(f"{url}/source", files={"source": ("driver.jpg", jpeg_bytes(driver), "image/jpeg")})
            assert res.status_code == 200
            for i in range(11, 14):
                _, after_frame = exchange(ws, camera[i])
            after = main_embedding(analyser, after_frame)
            photo = main_embedding(analyser, driver)
            assert identity_distance(after, photo) < identity_distance(before, photo)


def test_a_source_without_a_face_gets_the_message_run_gives(tmp_path, photos, driver):
    blank, target = tmp_path / "blank.jpg", tmp_path / "target.jpg"
    blank.write_bytes(photos["blank"])
    target.write_bytes(jpeg_bytes(driver))
    cli = subprocess.run([sys.executable, "-m", "swapface.cli.main", "run", "-s", str(blank), "-t", str(target),
                          "-o", str(tmp_path / "out.jpg")], check=False, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 2
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        res = http.post("/v1/live/sessions", files={"source": ("blank.jpg", photos["blank"], "image/jpeg")})
        assert res.status_code == 422
        assert res.json()["code"] == "no_face_in_source"
        assert cli.stderr.strip() == f"error: {res.json()['detail']}"
        res = http.post("/v1/live/sessions", files={"source": ("notes.jpg", b"meeting notes", "image/jpeg")})
        assert res.status_code == 422 and res.json()["code"] == "bad_media"
        assert http.get("/v1/live/sessions").json()["sessions"] == []


def test_sessions_belong_to_their_api_key_and_count_against_its_limit(tmp_path, photos):
    with live_service(tmp_path, workers=0) as svc:
        _, alice = svc.runtime.keys.create("alice", max_concurrent_jobs=1)
        _, bob = svc.runtime.keys.create("bob")
        with svc.client() as anonymous:
            res = anonymous.post("/v1/live/sessions", files={"source": ("a.jpg", photos["astronaut"], "image/jpeg")})
            assert res.status_code == 401 and res.json()["code"] == "api_key_required"
        with svc.client(alice) as a, svc.client(bob) as b:
            session = open_session(a, photos["astronaut"])
            assert b.get(f"/v1/live/sessions/{session['id']}").status_code == 404
            assert b.delete(f"/v1/live/sessions/{session['id']}").status_code == 404
            assert b.get("/v1/live/sessions").json()["sessions"] == []
            res = a.post("/v1/live/sessions", files={"source": ("a.jpg", photos["astronaut"], "image/jpeg")})
            assert res.status_code == 429 and res.json()["code"] == "too_many_active_jobs"
            assert a.delete(f"/v1/live/sessions/{session['id']}").status_code == 204
            assert a.get(f"/v1/live/sessions/{session['id']}").status_code == 404
            open_session(a, photos["astronaut"])  # the slot is free again


def test_a_dropped_connection_frees_its_session_and_four_share_the_engine(tmp_path, camera, photos):
    with live_service(tmp_path, workers=0) as svc, svc.client() as http:
        session = open_session(http, photos["astronaut"])
        ws = connect(svc, session)
        exchange(ws, camera[0])
        ws.socket.close()  # the browser tab is gone: no closing handshake
        assert wait_until(lambda: http.get("/v1/live/sessions").json()["sessions"] == [], 5)

        sessions = [open_session(http, photos["astronaut"]) for _ in range(4)]  # the sources are analysed first
        counts = [0, 0, 0, 0]
        start = threading.Barrier(4)

        def viewer(n: int) -> None:
            with connect(svc, sessions[n]) as ws:
                start.wait()
                deadline = time.monotonic() + 8
                k = n
                while time.monotonic() < deadline:
                    exchange(ws, camera[k % len(camera)])
                    counts[n] += 1
                    k += 1

        threads = [threading.Thread(target=viewer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert min(counts) > 0 and min(counts) >= 0.5 * max(counts), counts
        assert http.get("/healthz").status_code == 200
        assert wait_until(lambda: http.get("/v1/live/sessions").json()["sessions"] == [], 5)


def test_only_a_local_user_may_turn_the_label_off(tmp_path, astronaut):
    from swapface.errors import InputError
    from swapface.live.hub import LiveHub

    hub = LiveHub()
    with pytest.raises(InputError) as refused:
        hub.open("tenant", astronaut, {"label_output": False}, may_unlabel=False)
    assert refused.value.code == "label_required" and hub.sessions() == []
    session = hub.open("local", astronaut, {"label_output": False}, may_unlabel=True)
    assert session.engine.options.label_output is False
    hub.close(session)
    assert hub.sessions() == []


def test_a_silent_stream_is_ended_and_its_engine_let_go(tmp_path, camera, photos):
    """A viewer that stays connected but sends no camera frame (a frozen tab) does not hold a session forever."""
    with live_service(tmp_path, workers=0, live_idle_timeout_s=1.5) as svc, svc.client() as http:
        session = open_session(http, photos["astronaut"])
        engine = weakref.ref(svc.app.state.live.get(session["id"]).engine)
        with connect(svc, session) as ws:
            for i in range(3):
                silent_since = time.monotonic()  # the last camera frame leaves now
                exchange(ws, camera[i])
            ws.send("keep-alive")  # a text message is no camera frame: it does not keep the session alive
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=10)
            waited = time.monotonic() - silent_since
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408, closed.value
        assert "no camera frame for 1.5 s" in closed.value.rcvd.reason
        assert 1.5 <= waited < 4.5, waited
        assert http.get(f"/v1/live/sessions/{session['id']}").status_code == 404
        assert wait_until(lambda: gc.collect() >= 0 and engine() is None, 5), "the ended session's engine is still held"
        metrics = live_metrics(http)
        assert metrics["swapface_live_sessions"] == 0 and metrics["swapface_live_sessions_started_total"] == 1
        assert metrics["swapface_live_sessions_ended_total{reason=idle}"] == 1
        assert metrics["swapface_live_frames_total{outcome=received}"] == 3
        assert metrics["swapface_live_frames_total{outcome=sent}"] == 3
        assert metrics["swapface_live_compute_seconds_total"] > 0
        usage = http.get("/v1/usage").json()  # the session is billed to its key like a job
        assert usage["live_sessions"] == 1 and usage["live_frames"] == 3 and usage["live_compute_seconds"] > 0


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_live_sessions_count_against_a_keys_job_limits(tmp_path, photos, astronaut, backend, request):
    """A live session starting counts as a job submitted (jobs per hour), and an open one as a job running."""
    overrides = {"database_url": request.getfixturevalue("pg_url")} if backend == "postgres" else {}
    small = jpeg_bytes(astronaut[::4, ::4])
    job_files = [("source", ("a.jpg", small, "image/jpeg")), ("target", ("b.jpg", small, "image/jpeg"))]
    with live_service(tmp_path, workers=0, **overrides) as svc:
        _, alice = svc.runtime.keys.create("alice", max_concurrent_jobs=1, jobs_per_hour=2)
        with svc.client(alice) as http:
            first = open_session(http, photos["astronaut"])
            assert live_metrics(http)["swapface_live_sessions"] == 1
            busy = http.post("/v1/jobs", files=job_files)  # one thing at once: the live session is it
            assert busy.status_code == 429 and busy.json()["code"] == "too_many_active_jobs", busy.text
            assert "live session" in busy.json()["detail"]
            assert http.delete(f"/v1/live/sessions/{first['id']}").status_code == 204
            job = http.post("/v1/jobs", files=job_files)
            assert job.status_code == 201, job.text  # the second start of the hour
            assert http.post(f"/v1/jobs/{job.json()['id']}/cancel").status_code == 202
            res = http.post("/v1/live/sessions", files={"source": ("a.jpg", photos["astronaut"], "image/jpeg")})
            assert res.status_code == 429 and res.json()["code"] == "hourly_limit", res.text
            assert 3500 <= int(res.headers["retry-after"]) <= 3601  # until the live session's start is an hour old
            assert http.get("/v1/live/sessions").json()["sessions"] == []
            metrics = live_metrics(http)
            assert metrics["swapface_live_sessions_started_total"] == 1
            assert metrics["swapface_live_sessions_ended_total{reason=stopped}"] == 1


def test_a_dead_services_sessions_stop_counting(tmp_path):
    """Rows of sessions whose process died (no longer refreshed) do not hold a key's slot for ever."""
    with live_service(tmp_path, workers=0) as svc:
        store = svc.runtime.store
        store.start_live("one", "alice", 1, None)
        with pytest.raises(LimitReached):
            store.start_live("two", "alice", 1, None)
        with store.engine.begin() as conn:  # the process holding "one" stopped refreshing it long ago
            conn.execute(live_sessions.update().values(seen_at=time.time() - STALE_S - 1))
        store.start_live("two", "alice", 1, None)


_AUDIT: list[tuple[str, str]] = []  # what the audit hook saw while a test listens
_LISTENING = threading.Event()


def _audit(event: str, args: tuple) -> None:
    if _LISTENING.is_set() and event in ("open", "import", "ctypes.dlopen"):
        _AUDIT.append((event, str(args[0])))


def test_after_start_no_model_loads_and_no_stale_frame_waits(camera, astronaut, driver, monkeypatch):
    """Once a session has started, frames, an option change and a new source load nothing (no model session,
    no file, no module) and a source photo is analysed once (an option change or another session with the same
    photo reuse it); a burst of frames is answered newest first, the older ones dropped, not queued."""
    import onnxruntime

    from swapface.faces.analyser import FaceAnalyser
    from swapface.live.hub import LiveHub

    stills: list[tuple[int, ...]] = []  # the shapes of photos analysed as stills while listening
    analyse_still = FaceAnalyser.analyse_still_detailed

    def still_counted(self, image):
        if _LISTENING.is_set():
            stills.append(image.shape)
        return analyse_still(self, image)

    monkeypatch.setattr(FaceAnalyser, "analyse_still_detailed", still_counted)

    sessions_made: list[str] = []
    made = onnxruntime.InferenceSession.__init__

    def counted(self, *args, **kwargs):
        if _LISTENING.is_set():
            sessions_made.append(str(args[0]) if args else "")
        made(self, *args, **kwargs)

    monkeypatch.setattr(onnxruntime.InferenceSession, "__init__", counted)
    sys.addaudithook(_audit)
    hub = LiveHub()
    session = hub.open("me", astronaut, {})
    assert hub.connect(session)
    answers: list[Result] = []
    answered = threading.Condition()

    def deliver(result: Result) -> None:
        with answered:
            answers.append(result)
            answered.notify_all()

    def answer_to(clock: float) -> None:
        with answered:
            assert answered.wait_for(lambda: any(a.clock == clock for a in answers), 30), clock

    session.deliver = deliver
    jpegs = [encode_jpeg(frame, 90) for frame in camera[:40]]
    newcomer = np.ascontiguousarray(driver)
    _AUDIT.clear()
    _LISTENING.set()
    try:
        for i in range(6):
            hub.submit(session, float(i), jpegs[i])
            answer_to(float(i))
        session.engine.set_options({"face_selector_mode": "many", "face_mask_blur": 0.5})
        assert stills == [], "an option change analysed the source photo again"
        session.engine.set_source(newcomer)
        assert stills == [driver.shape]
        again = hub.open("me", np.array(astronaut), {})  # the same photo (another array): remembered
        assert stills == [driver.shape], "a second session analysed the same source photo again"
        hub.close(again)
        for i in range(6, 40):  # at once, far faster than the engine
            hub.submit(session, float(i), jpegs[i])
        answer_to(39.0)
    finally:
        _LISTENING.clear()
        hub.close(session)
    assert sessions_made == [] and _AUDIT == [], (sessions_made, _AUDIT[:10])
    clocks = [a.clock for a in answers]
    assert clocks[:6] == [0, 1, 2, 3, 4, 5] and clocks == sorted(clocks) and len(clocks) < 6 + 10, clocks
    assert session.stats.received == 40 and session.stats.dropped == 40 - len(clocks)
