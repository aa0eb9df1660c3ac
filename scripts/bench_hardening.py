"""Adversarial requests against the real service (loopback only): what each costs and how it is answered.

    .venv/bin/python scripts/bench_hardening.py [--streams 200] [--stream-seconds 10]

The service runs in its own process (uvicorn, the real app, SQLite and local storage in a temporary
folder, no job workers), so its CPU time and memory are measured apart from the clients'. Cases:

- ``streams``: N clients open ``GET /v1/jobs/{id}/events`` on one queued job for a while; how many were
  served, how many refused (429), and the service's CPU seconds over that time.
- ``json``: a 200 MB JSON body: the answer, its time, and the service's RSS growth.
- ``deep``: JSON nested 950 deep, in the body and in the multipart ``options`` field.
- ``references``: 40 references to one 36 MP PNG in ``sources``: the answer and its time.
- ``webhooks``: four endpoints answering one byte per second, then a fast one of another caller: how
  long the fast one waited.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import io
import json
import multiprocessing
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from bench_api import _serve, free_port  # noqa: E402


@contextlib.contextmanager
def service(data_dir: Path, **overrides: Any) -> Iterator[tuple[str, psutil.Process]]:
    settings: dict[str, Any] = {"data_dir": data_dir, "models_dir": data_dir / "models", **overrides}
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(settings, port), daemon=True)
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.1)
        yield url, psutil.Process(process.pid)
    finally:
        process.terminate()
        process.join(timeout=30)


def jpeg(size: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def files() -> list:
    return [("source", ("a.jpg", jpeg(64, 1), "image/jpeg")), ("target", ("b.jpg", jpeg(64, 2), "image/jpeg"))]


def cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def case_streams(url: str, proc: psutil.Process, count: int, seconds: float) -> list[str]:
    with httpx.Client(base_url=url, timeout=30) as http:
        job = http.post("/v1/jobs", files=files()).json()["id"]
    statuses: list[int] = []
    stop = threading.Event()

    def follow() -> None:
        with contextlib.suppress(httpx.HTTPError), httpx.Client(base_url=url, timeout=seconds + 30) as client, \
                client.stream("GET", f"/v1/jobs/{job}/events") as events:
            statuses.append(events.status_code)
            for _ in events.iter_bytes():
                if stop.is_set():
                    return

    before = cpu(proc)
    threads = [threading.Thread(target=follow, daemon=True) for _ in range(count)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    spent = cpu(proc) - before
    stop.set()
    served, refused = statuses.count(200), statuses.count(429)
    return [f"| {count} event streams on one job, {seconds:g} s | {served} served, {refused} answered 429 "
            f"`too_many_streams` | service CPU {spent:.1f} s in {seconds:g} s |"]


def case_json(url: str, proc: psutil.Process) -> list[str]:
    block = b" " * (1 << 20)

    def body() -> Iterator[bytes]:
        yield b'{"sources": ["'
        for _ in range(200):
            yield block
        yield b'"], "target": "x"}'

    rss = proc.memory_info().rss
    started = time.monotonic()
    try:
        answer = httpx.post(f"{url}/v1/jobs", content=body(), headers={"content-type": "application/json"}, timeout=60)
        outcome = f"{answer.status_code} `{answer.json()['code']}`"
    except httpx.TransportError:
        outcome = "connection closed after the answer"
    took = time.monotonic() - started
    grown = (proc.memory_info().rss - rss) / (1 << 20)
    return [f"| 200 MB JSON body | {outcome} in {took:.2f} s | service RSS +{grown:.0f} MB |"]


def case_deep(url: str) -> list[str]:
    deep = "[" * 950 + "]" * 950
    with httpx.Client(base_url=url, timeout=30) as http:
        body = http.post("/v1/jobs", content='{"sources": ' + deep + ', "target": "x"}',
                         headers={"content-type": "application/json"})
        field = http.post("/v1/jobs", files=files(), data={"options": '{"a": ' + deep + "}"})
    return [f"| JSON nested 950 deep (body / `options` field) | {body.status_code} `{body.json()['code']}` / "
            f"{field.status_code} `{field.json()['code']}` | |"]


def case_references(url: str, data_dir: Path) -> list[str]:
    big = data_dir / "objects" / "shared" / "big.png"
    big.parent.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 255, 6000, dtype=np.uint8)
    Image.fromarray(np.dstack([np.tile(ramp, (6000, 1))] * 3)).save(big, compress_level=1)
    uri = big.as_uri()
    started = time.monotonic()
    answer = httpx.post(f"{url}/v1/jobs", json={"sources": [uri] * 40, "target": uri}, timeout=120)
    took = time.monotonic() - started
    return [f"| 40 references to one 36 MP PNG | {answer.status_code} `{answer.json()['code']}` in {took:.2f} s | |"]


class Endpoint:
    def __init__(self, trickle: bool) -> None:
        self.received: list[float] = []
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length", 0)))
                endpoint.received.append(time.monotonic())
                with contextlib.suppress(OSError):
                    if trickle:
                        for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n":
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(1.0)
                    else:
                        self.send_response(204)
                        self.send_header("content-length", "0")
                        self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def case_webhooks(url: str) -> list[str]:
    slow, fast = [Endpoint(True) for _ in range(4)], Endpoint(False)
    with httpx.Client(base_url=url, timeout=30) as http:
        for endpoint in slow:
            job = http.post("/v1/jobs", files=files(), data={"webhook_url": endpoint.url}).json()["id"]
            http.post(f"/v1/jobs/{job}/cancel")
        time.sleep(0.5)
        job = http.post("/v1/jobs", files=files(), data={"webhook_url": fast.url}).json()["id"]
        started = time.monotonic()
        http.post(f"/v1/jobs/{job}/cancel")
        deadline = started + 60
        while not fast.received and time.monotonic() < deadline:
            time.sleep(0.02)
    waited = f"{fast.received[0] - started:.2f} s" if fast.received else "not within 60 s"
    return [f"| 4 endpoints answering 1 byte/s, then another caller's webhook | delivered after {waited} | |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--stream-seconds", type=float, default=10.0)
    args = parser.parse_args()
    lines = ["| case | answer | cost |", "|---|---|---|"]
    hooks = {"webhook_allow_http": True, "webhook_allowlist": ["127.0.0.1/32"], "webhook_timeout_s": 3.0,
             "webhook_max_attempts": 2}
    with tempfile.TemporaryDirectory() as tmp, service(Path(tmp), **hooks) as (url, proc):
        lines += case_streams(url, proc, args.streams, args.stream_seconds)
        lines += case_json(url, proc)
        lines += case_deep(url)
        lines += case_references(url, Path(tmp))
        lines += case_webhooks(url)
    print("\n".join(lines))
    print(json.dumps({"streams": args.streams, "stream_seconds": args.stream_seconds}))


if __name__ == "__main__":
    main()
