"""Object storage at the edges: every input and output goes through these verbs.

A location is a local path or an fsspec URI (file://, gs://, s3://, memory://). Writes are atomic
(written aside, then moved), so a reader never sees half an object.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def _local_path(uri: str) -> Path:
    return Path(uri[len("file://"):]) if uri.startswith("file://") else Path(uri)


@contextlib.contextmanager
def fetch(uri: str, *, job_id: str | None = None, suffix: str = "") -> Iterator[Path]:
    """Yield a local file holding the object at ``uri`` (local paths are used in place)."""
    if _is_local(uri):
        yield _local_path(uri)
        return
    with tempfile.TemporaryDirectory(prefix="swapface-") as tmp:
        local = Path(tmp) / ("object" + (suffix or Path(uri).suffix))
        with fsspec.open(uri, "rb") as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield local


def publish(local: Path, uri: str, *, job_id: str | None = None) -> None:
    """Store the local file at ``uri`` atomically."""
    if _is_local(uri):
        dest = _local_path(uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if local.resolve() == dest.resolve():
            return
        tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}")
        shutil.copyfile(local, tmp)
        os.replace(tmp, dest)
        return
    fs, path = fsspec.core.url_to_fs(uri)
    fs.put_file(str(local), path)


def exists(uri: str) -> bool:
    """Whether an object is stored at ``uri``."""
    if _is_local(uri):
        return _local_path(uri).exists()
    fs, path = fsspec.core.url_to_fs(uri)
    return bool(fs.exists(path))


def remove(uri: str, *, recursive: bool = False) -> None:
    """Delete the object (or, with ``recursive``, everything under the prefix); missing is fine."""
    if _is_local(uri):
        p = _local_path(uri)
        if p.is_dir() and recursive:
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink()
        return
    fs, path = fsspec.core.url_to_fs(uri)
    if fs.exists(path):
        fs.rm(path, recursive=recursive)


def read_json(uri: str) -> Any:
    """Load a small JSON document (manifests); None where there is none."""
    if not exists(uri):
        return None
    with fetch(uri) as local:
        return json.loads(local.read_text())


def write_json(uri: str, value: Any) -> None:
    """Store a small JSON document atomically."""
    with tempfile.TemporaryDirectory(prefix="swapface-") as tmp:
        local = Path(tmp) / "doc.json"
        local.write_text(json.dumps(value, indent=1, sort_keys=True))
        publish(local, uri)


def join(base: str, *parts: str) -> str:
    """Join a location and relative parts with '/' (works for paths and URIs)."""
    out = base.rstrip("/")
    for part in parts:
        out += "/" + part.strip("/")
    return out
