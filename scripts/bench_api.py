"""Latency of the HTTP API alone (no workers): POST /v1/jobs with a ~1 MB JPEG, and GET /v1/jobs/{id}.

    .venv/bin/python scripts/bench_api.py [--posts 400] [--gets 2000] [--clients 20]
                                         [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench]

The service runs on a free loopback port (uvicorn, the real app, SQLite in a temporary data folder unless
``--database-url``, a local storage folder, no job workers), by default in its own process so the client
threads do not share its GIL. ``--clients`` threads, each with its own keep-alive connection, send the
requests; each request's wall time is measured at the client. Before the timed runs a few requests warm
up both sides. ``--stages`` also times the steps of one POST in this process (no HTTP), to show what
dominates. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import multiprocessing
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
from PIL import Image

from swapface.demo_media import astronaut


# --- media ----------------------------------------------------------------------------------------

def jpeg(frame: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def jpeg_near(target_bytes: int) -> tuple[bytes, int, int]:
    """A real photo (the astronaut, upscaled) as a JPEG of about ``target_bytes``: (bytes, side, quality)."""
    photo = astronaut()
    side = 1024
    while True:
        frame = cv2.resize(photo, (side, side), interpolation=cv2.INTER_CUBIC)
        if len(jpeg(frame, 100)) >= target_bytes:
            break
        side *= 2
    lo, hi = 1, 100  # the highest quality whose file is still <= target
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(jpeg(frame, mid)) <= target_bytes:
            lo = mid
        else:
            hi = mid - 1
    return jpeg(frame, lo), side, lo


# --- the service ----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(settings: dict[str, Any], port: int) -> None:
    """Run the app (no workers) until stopped; the body of the service process."""
    import uvicorn

    from swapface.config import load_settings
    from swapface.service.app import create_app

    app = create_app(load_settings(**settings), workers=0)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


@contextlib.contextmanager
def running_service(data_dir: Path, database_url: str | None = None, *, same_process: bool = False,
                    **overrides: Any) -> Iterator[str]:
    """The service on a free loopback port until the block ends; yields its base URL."""
    settings: dict[str, Any] = {"data_dir": data_dir, "models_dir": data_dir / "models", **overrides}
    if database_url:
        settings["database_url"] = database_url
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if same_process:  # as tests/service_fixtures.py does: uvicorn in a thread
        import uvicorn

        from swapface.config import load_settings
        from swapface.service.app import create_app

        server = uvicorn.Server(uvicorn.Config(create_app(load_settings(**settings), workers=0), host="127.0.0.1",
                                               port=port, log_config=None, access_log=False))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        alive: Callable[[], bool] = thread.is_alive
    else:
        process = multiprocessing.get_context("spawn").Process(target=_serve, args=(settings, port), daemon=True)
        process.start()
        alive = process.is_alive
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not alive():
                raise RuntimeError("the service did not start")
            time.sleep(0.1)
        yield url
    finally:
        if same_process:
            server.should_exit = True
            thread.join(timeout=30)
        else:
            process.terminate()
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join(timeout=10)


# --- load -----------------------------------------------------------------------------------------

def timed(url: str, calls: list[Callable[[httpx.Client], Any]], clients: int) -> tuple[list[float], list[Any], float]:
    """Run ``calls`` from ``clients`` threads (one keep-alive connection each): (latencies s, results, wall s)."""
    local = threading.local()
    opened: list[httpx.Client] = []
    lock = threading.Lock()

    def run(call: Callable[[httpx.Client], Any]) -> tuple[float, Any]:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=120)
            with lock:
                opened.append(local.client)
        start = time.perf_counter()
        result = call(local.client)
        return time.perf_counter() - start, result

    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=clients) as pool:
            done = [f.result(timeout=600) for f in [pool.submit(run, c) for c in calls]]
    finally:
        for client in opened:
            client.close()
    return [d for d, _ in done], [r for _, r in done], time.perf_counter() - started


def row(name: str, body: str, clients: int, latencies: list[float], wall: float) -> str:
    ms = np.asarray(latencies) * 1000
    p50, p99 = np.percentile(ms, [50, 99])
    return (f"| {name} | {body} | {len(ms)} | {clients} | {p50:.1f} | {p99:.1f} | {ms.mean():.1f} "
            f"| {len(ms) / wall:.1f} |")


async def parse_form(headers: Any, body: bytes) -> None:
    """Parse a multipart body as the app does (uvicorn hands it over in 64 KB pieces) and read the files back."""
    from starlette.formparsers import MultiPartParser

    async def pieces() -> Any:
        for start in range(0, len(body), 64 * 1024):
            yield body[start:start + 64 * 1024]

    form = await MultiPartParser(headers, pieces(), max_files=10, max_fields=200).parse()
    for _, value in form.multi_items():
        while not isinstance(value, str) and await value.read(1 << 20):
            pass
    await form.close()


def stage_times(big: bytes, small: bytes, repeats: int) -> list[tuple[str, float]]:
    """Median ms of each step of one POST (the same code the app runs, called directly, no HTTP)."""
    from starlette.datastructures import Headers

    from swapface.config import load_settings
    from swapface.jobs.store import NewJob, new_job_id
    from swapface.media.image import read_image
    from swapface.service import intake
    from swapface.service.runtime import ServiceRuntime

    with tempfile.TemporaryDirectory(prefix="swapface-bench-stages-") as tmp:
        folder = Path(tmp)
        settings = load_settings(data_dir=folder / "data", models_dir=folder / "models")
        rt = ServiceRuntime.from_settings(settings)
        (folder / "upload-0").write_bytes(small)
        (folder / "upload-1").write_bytes(big)
        request = intake.JobRequest(uploads=[intake.Upload("source", folder / "upload-0", len(small)),
                                             intake.Upload("target", folder / "upload-1", len(big))])
        options = intake.validate_options({})
        steps: dict[str, list[float]] = {}

        def clock(name: str, fn: Callable[[], Any]) -> Any:
            start = time.perf_counter()
            result = fn()
            steps.setdefault(name, []).append((time.perf_counter() - start) * 1000)
            return result

        def decode() -> None:
            with Image.open(target) as img:
                img.load()

        target = folder / "upload-1"
        upload = httpx.Request("POST", "http://127.0.0.1/v1/jobs", files=[
            ("source", ("source.jpg", small, "image/jpeg")), ("target", ("target.jpg", big, "image/jpeg"))])
        body, headers = upload.read(), Headers(raw=[(k.lower(), v) for k, v in upload.headers.raw])
        for _ in range(repeats):
            clock("multipart parse of the body (Starlette, 64 KB reads)",
                  lambda: asyncio.run(parse_form(headers, body)))
            clock("target: JPEG decode only (Pillow `load`)", decode)
            clock("target: decode + EXIF + RGB array (`read_image`, as the worker reads it)",
                  lambda: read_image(target, max_pixels=settings.max_image_pixels))
            clock("target: sha-256", lambda: intake._digest(target))
            inputs = clock("**intake checks** (`checked_inputs`: both files' media checks + hashes)",
                           lambda: intake.checked_inputs(request, settings, "local", lambda _: None, folder))
            job_id = new_job_id()
            spec = clock("store_inputs (write both to storage)",
                         lambda: intake.store_inputs(job_id, inputs, options, settings))
            clock("job row insert (store.create)", lambda: rt.store.create(
                NewJob(owner="local", kind=spec.pop("kind"), spec=spec, job_id=job_id)))
        rt.store.engine.dispose()
    return [(name, statistics.median(values)) for name, values in steps.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=400, help="timed POST /v1/jobs requests")
    parser.add_argument("--gets", type=int, default=2000, help="timed GET /v1/jobs/{id} requests")
    parser.add_argument("--clients", type=int, default=20, help="concurrent client threads")
    parser.add_argument("--megabytes", type=float, default=1.0, help="size of the target JPEG")
    parser.add_argument("--database-url", default=None, help="job store (default: SQLite in a temporary folder)")
    parser.add_argument("--same-process", action="store_true", help="run uvicorn in a thread of this process")
    parser.add_argument("--single", type=int, default=50, help="also time this many requests from one client")
    parser.add_argument("--stages", type=int, default=20, help="time the steps of a POST this many times (0: skip)")
    args = parser.parse_args()

    big, side, quality = jpeg_near(int(args.megabytes * 1024 * 1024))
    small = jpeg(astronaut(), 90)
    files = [("source", ("source.jpg", small, "image/jpeg")), ("target", ("target.jpg", big, "image/jpeg"))]
    body = f"{len(big) / 1024 / 1024:.2f} MB target + {len(small) / 1024:.0f} KB source"

    def post(http: httpx.Client) -> str:
        answer = http.post("/v1/jobs", files=files)
        if answer.status_code != 201:
            raise RuntimeError(f"POST answered {answer.status_code}: {answer.text}")
        return answer.json()["id"]

    rows = []
    with tempfile.TemporaryDirectory(prefix="swapface-bench-api-") as tmp, \
            running_service(Path(tmp) / "data", args.database_url, same_process=args.same_process) as url:
        timed(url, [post] * max(4, args.clients), args.clients)  # warm-up: imports, pools, connections
        latencies, ids, wall = timed(url, [post] * args.posts, args.clients)
        rows.append(row("`POST /v1/jobs`", body, args.clients, latencies, wall))
        rng = np.random.default_rng(0)

        def get(job_id: str) -> Callable[[httpx.Client], None]:
            def call(http: httpx.Client) -> None:
                answer = http.get(f"/v1/jobs/{job_id}")
                if answer.status_code != 200:
                    raise RuntimeError(f"GET answered {answer.status_code}: {answer.text}")
            return call

        timed(url, [get(ids[0])] * max(4, args.clients), args.clients)
        latencies, _, wall = timed(url, [get(ids[i]) for i in rng.integers(0, len(ids), args.gets)], args.clients)
        rows.append(row("`GET /v1/jobs/{id}`", "—", args.clients, latencies, wall))
        if args.single:
            latencies, _, wall = timed(url, [post] * args.single, 1)
            rows.append(row("`POST /v1/jobs`", body, 1, latencies, wall))
            latencies, _, wall = timed(url, [get(ids[i]) for i in rng.integers(0, len(ids), args.single * 4)], 1)
            rows.append(row("`GET /v1/jobs/{id}`", "—", 1, latencies, wall))

    store = "PostgreSQL" if (args.database_url or "").startswith("postgres") else "SQLite (WAL)"
    print(f"\n{date.today().isoformat()} · {platform.machine()} · {os.cpu_count()} CPUs · Python "
          f"{platform.python_version()} · store: {store} · service in "
          f"{'this process' if args.same_process else 'its own process'} · target JPEG {side}×{side} "
          f"q{quality} = {len(big):,} bytes\n")
    print("| request | body | requests | clients | p50 ms | p99 ms | mean ms | requests/s |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if args.stages:
        print(f"\nSteps of one POST, called directly (median of {args.stages}, ms):\n")
        print("| step | ms |")
        print("|---|---|")
        for name, ms in stage_times(big, small, args.stages):
            print(f"| {name} | {ms:.1f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
