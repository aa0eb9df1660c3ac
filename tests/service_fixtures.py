"""A real swapface service on loopback for tests: uvicorn in a thread, real SQLite/PostgreSQL, real storage."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from swapface.config import Settings, load_settings
from swapface.service.runtime import ServiceRuntime

FINAL = {"succeeded", "failed", "cancelled"}


def jpeg_bytes(frame: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveService:
    """A running service: its base URL, runtime (store, keys, settings) and a client factory."""

    url: str
    runtime: ServiceRuntime
    app: Any = None  # the FastAPI app (its state: the live hub)

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=kwargs.pop("timeout", 60), **kwargs)

    def wait(self, client: httpx.Client, job_id: str, timeout: float = 180.0) -> dict[str, Any]:
        """Poll a job until it reaches a final state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in FINAL:
                return job
            time.sleep(0.3)
        raise AssertionError(f"job did not finish in {timeout}s: {job}")


def service_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test service: everything under ``tmp_path``, short leases and polls."""
    values: dict[str, Any] = {"data_dir": tmp_path / "data", "lease_s": 6.0, "worker_poll_s": 0.2,
                              "retry_backoff_s": 0.2, "models_dir": tmp_path / "models"}
    values.update(overrides)
    return load_settings(**values)


@contextlib.contextmanager
def live_service(tmp_path: Path, *, workers: int = 1, sweeper: bool = False, **overrides: Any) -> Iterator[LiveService]:
    """Run the app on a free loopback port until the block ends."""
    import uvicorn

    from swapface.service.app import create_app

    settings = service_settings(tmp_path, **overrides)
    runtime = ServiceRuntime.from_settings(settings)
    app = create_app(runtime_=runtime, workers=workers, sweeper=sweeper)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test service did not start")
        time.sleep(0.05)
    try:
        yield LiveService(f"http://127.0.0.1:{port}", runtime, app)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
