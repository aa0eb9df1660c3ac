"""Object storage at the edges: every input and output goes through these verbs.

A location is a local path or an fsspec URI (file://, gs://, s3://, memory://). Writes are atomic
(written aside, then moved), so a reader never sees half an object.

Encryption at rest: when a key-encryption key is configured (``SWAPFACE_KEK``), every object under
the configured storage root (``SWAPFACE_STORAGE_URL``) is stored AES-256-GCM encrypted under its
job's data key (see :mod:`swapface.storage.crypto` and :mod:`swapface.storage.keys`); ``fetch``
decrypts and verifies before yielding. Paths outside the root (plain local CLI use) stay as they are.
An object's job is ``job_id`` when given, else the first folder of its name under the root.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec

from swapface.errors import InputError, JobError
from swapface.storage.crypto import DecryptError, Keyring, decrypt_frames, encrypt_stream, read_header
from swapface.storage.keys import KEYS_DIR, KeyStore, check_scope, has_keys
from swapface.storage.scratch import temp_dir as _scratch_dir

if TYPE_CHECKING:
    from swapface.config import Settings

SHARED_SCOPE = "_shared"


def is_local(uri: str) -> bool:
    """Whether a location is on this machine's file system (a path or a file:// URI), not in an object store."""
    return "://" not in uri or uri.startswith("file://")


def _local_path(uri: str) -> Path:
    return Path(uri[len("file://"):]) if uri.startswith("file://") else Path(uri)


def _settings(settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    from swapface.config import load_settings

    return load_settings()


def temp_dir(*, settings: Settings | None = None, prefix: str = "swapface-") -> contextlib.AbstractContextManager[Path]:
    """A private working folder in the service's own scratch area (never the system temp folder)."""
    return _scratch_dir(_settings(settings), prefix)


def canonical(uri: str) -> str:
    """One spelling per location: ``file://`` + absolute path for local ones, no trailing slash otherwise."""
    if is_local(uri):
        return "file://" + os.path.abspath(_local_path(uri))
    return uri.rstrip("/")


class _Sealed:
    """Where an object sits under an encrypted storage root: its name, its job and the key store."""

    def __init__(self, keys: KeyStore, name: str, scope: str) -> None:
        self.keys, self.name, self.scope = keys, name, scope


def _keyring(settings: Settings) -> Keyring | None:
    kek = settings.kek.get_secret_value() if settings.kek is not None else ""
    return Keyring.parse(kek) if kek.strip() else None


def _sealed(uri: str, job_id: str | None, settings: Settings | None) -> _Sealed | None:
    """The encryption context of ``uri``; None when it is stored in the clear."""
    cfg = _settings(settings)
    root = canonical(cfg.resolved_storage_url())
    target = canonical(uri)
    if not target.startswith(root + "/"):
        return None
    name = target[len(root) + 1:]
    keyring = _keyring(cfg)
    if keyring is None:
        return None
    if name.split("/", 1)[0] == KEYS_DIR:
        raise InputError("objects cannot be stored among the data keys", code="bad_path")
    scope = job_id if job_id is not None else (name.split("/", 1)[0] if "/" in name else SHARED_SCOPE)
    if scope != SHARED_SCOPE:
        check_scope(scope)
    return _Sealed(KeyStore(cfg.resolved_storage_url(), keyring), name, scope)


def _open(uri: str, mode: str) -> Any:
    return open(_local_path(uri), mode) if is_local(uri) else fsspec.open(uri, mode).open()


def _decrypt_to(uri: str, sealed: _Sealed, job_id: str | None, dst_path: Path) -> None:
    with _open(uri, "rb") as src:
        header = read_header(src)
        if header is None:
            raise DecryptError("a stored object is not encrypted although encryption at rest is configured",
                               code="not_encrypted")
        if job_id is not None and header.scope != job_id:
            raise DecryptError()
        data_key = sealed.keys.data_key(header.scope, create=False)
        with open(dst_path, "wb") as dst:
            for block in decrypt_frames(src, header, data_key, sealed.name):
                dst.write(block)


@contextlib.contextmanager
def fetch(uri: str, *, job_id: str | None = None, suffix: str = "", settings: Settings | None = None) -> Iterator[Path]:
    """Yield a local file holding the object at ``uri`` (local clear-text paths are used in place).

    Encrypted objects are decrypted and fully verified into a private temporary file first.
    """
    sealed = _sealed(uri, job_id, settings)
    if sealed is not None:
        with temp_dir(settings=settings) as tmp:
            local = tmp / ("object" + (suffix or Path(uri).suffix))
            _decrypt_to(uri, sealed, job_id, local)
            yield local
        return
    if is_local(uri):
        yield _local_path(uri)
        return
    with temp_dir(settings=settings) as tmp:
        local = tmp / ("object" + (suffix or Path(uri).suffix))
        with fsspec.open(uri, "rb") as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield local


def publish(local: Path, uri: str, *, job_id: str | None = None, settings: Settings | None = None) -> None:
    """Store the local file at ``uri`` atomically (encrypted when it lands under an encrypted root)."""
    sealed = _sealed(uri, job_id, settings)
    if sealed is not None:
        data_key = sealed.keys.data_key(sealed.scope, create=True)
        if is_local(uri):
            dest = _local_path(uri)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}")
            try:
                with open(local, "rb") as src, open(tmp, "wb") as dst:
                    encrypt_stream(src, dst, data_key, sealed.scope, sealed.name)
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            with open(local, "rb") as src, fsspec.open(uri, "wb") as dst:  # object stores commit on close
                encrypt_stream(src, dst, data_key, sealed.scope, sealed.name)
        return
    if is_local(uri):
        dest = _local_path(uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if local.resolve() == dest.resolve():
            return
        tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}")
        try:
            shutil.copyfile(local, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)  # a full disk must not leave a partial copy behind
        return
    fs, path = fsspec.core.url_to_fs(uri)
    fs.put_file(str(local), path)


def object_size(uri: str) -> int | None:
    """The stored size of the object at ``uri`` (encrypted size under encryption); None when no object
    (a missing one, a folder, or a name the file system refuses, such as a 300-character component)."""
    try:
        if is_local(uri):
            path = _local_path(uri)
            return path.stat().st_size if path.is_file() else None
        fs, path = fsspec.core.url_to_fs(uri)
        info = fs.info(path)
    except (OSError, ValueError):
        return None
    return int(info["size"]) if info.get("type") == "file" else None


def exists(uri: str) -> bool:
    """Whether an object is stored at ``uri``."""
    if is_local(uri):
        return _local_path(uri).exists()
    fs, path = fsspec.core.url_to_fs(uri)
    return bool(fs.exists(path))


def remove(uri: str, *, recursive: bool = False) -> None:
    """Delete the object (or, with ``recursive``, everything under the prefix); missing is fine."""
    if is_local(uri):
        p = _local_path(uri)
        if p.is_dir() and recursive:
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink()
        return
    fs, path = fsspec.core.url_to_fs(uri)
    if fs.exists(path):
        fs.rm(path, recursive=recursive)


def read_json(uri: str, *, job_id: str | None = None, settings: Settings | None = None) -> Any:
    """Load a small JSON document (manifests); None where there is none."""
    if not exists(uri):
        return None
    with fetch(uri, job_id=job_id, settings=settings) as local:
        return json.loads(local.read_text())


def write_json(uri: str, value: Any, *, job_id: str | None = None, settings: Settings | None = None) -> None:
    """Store a small JSON document atomically."""
    with temp_dir(settings=settings) as tmp:
        local = tmp / "doc.json"
        local.write_text(json.dumps(value, indent=1, sort_keys=True))
        publish(local, uri, job_id=job_id, settings=settings)


def shred(job_id: str, *, settings: Settings | None = None) -> bool:
    """Delete a job's data key: every copy of its encrypted media becomes unreadable. False if it had none."""
    cfg = _settings(settings)
    keyring = _keyring(cfg)
    if keyring is None:
        return False
    return KeyStore(cfg.resolved_storage_url(), keyring).shred(job_id)


def check_encryption(*, settings: Settings | None = None) -> str:
    """Whether the configured KEK reads the storage: 'ok', 'off' (no KEK, nothing encrypted), or an error code.

    Raises JobError ``kek_missing`` when the storage holds encrypted objects and no KEK is configured at all:
    a service that ran on then served ciphertext and stored new uploads in the clear beside it. A KEK that is
    configured but does not unwrap the stored keys returns ``kek_missing`` (its id is not configured) or
    ``kek_mismatch`` (same id, other key), for the service to report."""
    cfg = _settings(settings)
    root = cfg.resolved_storage_url()
    keyring = _keyring(cfg)
    if keyring is None:
        if has_keys(root):
            raise JobError("the storage holds encrypted media but no key-encryption key is configured: set "
                           "SWAPFACE_KEK to the key it was encrypted with", code="kek_missing")
        return "off"
    try:
        KeyStore(root, keyring).check()
    except JobError as exc:
        return exc.code
    return "ok"


SEALED_SECRET = "e1."


def _secret_aad(job_id: str) -> bytes:
    return b"swapface-webhook-secret-v1\x00" + job_id.encode()


def seal_secret(secret: str, job_id: str, *, settings: Settings | None = None) -> str:
    """A job's webhook signing secret as stored: encrypted under the active KEK when one is configured.

    The stored form stays within 128 characters: only the key bytes after ``whsec_`` are sealed."""
    keyring = _keyring(_settings(settings))
    if keyring is None:
        return secret
    from swapface.storage.crypto import wrap_key

    raw = base64.b64decode(secret[len("whsec_"):])
    sealed = wrap_key(keyring.get(keyring.active_id), raw, _secret_aad(job_id))
    return SEALED_SECRET + base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def open_secret(stored: str, job_id: str, *, settings: Settings | None = None) -> str:
    """The webhook signing secret from its stored form (any configured KEK may have sealed it)."""
    if not stored.startswith(SEALED_SECRET):
        return stored
    keyring = _keyring(_settings(settings))
    if keyring is None:
        raise JobError("a webhook secret is encrypted but no key-encryption key is configured", code="kek_missing")
    from swapface.storage.crypto import unwrap_key

    body = stored[len(SEALED_SECRET):]
    sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    for _, kek in keyring.keys:
        try:
            return "whsec_" + base64.b64encode(unwrap_key(kek, sealed, _secret_aad(job_id))).decode()
        except DecryptError:
            continue
    raise DecryptError("a webhook secret did not decrypt with any configured key-encryption key",
                       code="kek_mismatch")


def rotate_kek(*, settings: Settings | None = None) -> int:
    """Re-wrap every job's data key under the active (first) KEK; media is not touched. Returns how many."""
    cfg = _settings(settings)
    keyring = _keyring(cfg)
    if keyring is None:
        raise InputError("no key-encryption key is configured (set SWAPFACE_KEK)", code="no_kek")
    return KeyStore(cfg.resolved_storage_url(), keyring).rotate()


def join(base: str, *parts: str) -> str:
    """Join a location and relative parts with '/' (works for paths and URIs)."""
    out = base.rstrip("/")
    for part in parts:
        out += "/" + part.strip("/")
    return out
