"""Per-job data keys, kept wrapped in small key files under ``<storage root>/_keys/<job id>.json``.

One data key per job encrypts every object of that job (each object derives its own key from it).
A key file holds only the data key wrapped by a key-encryption key (KEK) from configuration, and the
KEK's id; the job id is bound as associated data, so a key file copied to another job is useless.
Deleting the key file makes every copy of the job's media unreadable (crypto-shredding); rotating
the KEK rewrites only these small files, never the media.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from swapface.errors import InputError, JobError
from swapface.storage.crypto import DecryptError, Keyring, new_data_key, unwrap_key, wrap_key

KEYS_DIR = "_keys"
_SAFE_SCOPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_scope(scope: str) -> str:
    """A job id usable as a key file name (no separators, no dots first)."""
    if not _SAFE_SCOPE.match(scope):
        raise InputError("job ids must be 1-128 letters, digits, '_', '.' or '-'", code="bad_job_id")
    return scope


def _key_aad(scope: str) -> bytes:
    return b"swapface-data-key-v1\x00" + scope.encode()


def has_keys(root: str) -> bool:
    """Whether the storage root holds data keys, i.e. encrypted objects (no KEK needed to tell)."""
    fs, base = fsspec.core.url_to_fs(root.rstrip("/") + "/" + KEYS_DIR)
    try:
        names = fs.ls(base, detail=False)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return any(n.endswith(".json") and not n.rsplit("/", 1)[-1].startswith(".") for n in names)


class KeyStore:
    """Key files of one storage root: create, load, delete (shred) and re-wrap data keys."""

    def __init__(self, root: str, keyring: Keyring) -> None:
        self.root = root.rstrip("/")
        self.keyring = keyring
        self.fs, self.base = fsspec.core.url_to_fs(self.root + "/" + KEYS_DIR)

    def _path(self, scope: str) -> str:
        return f"{self.base}/{check_scope(scope)}.json"

    def _read(self, scope: str) -> dict | None:
        try:
            with self.fs.open(self._path(scope), "rb") as f:
                return json.loads(f.read())
        except FileNotFoundError:
            return None

    def _unwrap(self, scope: str, doc: dict) -> bytes:
        kek = self.keyring.get(str(doc["kek_id"]))
        return unwrap_key(kek, base64.b64decode(doc["wrapped"]), _key_aad(scope))

    def _doc(self, scope: str, data_key: bytes) -> bytes:
        kek_id = self.keyring.active_id
        wrapped = wrap_key(self.keyring.get(kek_id), data_key, _key_aad(scope))
        return json.dumps({"version": 1, "kek_id": kek_id, "wrapped": base64.b64encode(wrapped).decode()}).encode()

    def _write(self, scope: str, body: bytes, *, exclusive: bool) -> bool:
        """Write a key file atomically; with ``exclusive``, only if none exists (False when one did)."""
        path = self._path(scope)
        if isinstance(self.fs, LocalFileSystem):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=".key-")
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            try:
                if exclusive:
                    try:
                        os.link(tmp, path)  # atomic create-if-absent
                    except FileExistsError:
                        return False
                else:
                    os.replace(tmp, path)
                    tmp = ""
            finally:
                if tmp:
                    os.unlink(tmp)
            return True
        if exclusive and self.fs.exists(path):
            return False
        with self.fs.open(path, "wb") as f:
            f.write(body)
        return True

    def data_key(self, scope: str, *, create: bool) -> bytes:
        """The job's data key; with ``create``, a fresh one is made when the job has none yet."""
        doc = self._read(scope)
        if doc is None:
            if not create:
                raise DecryptError("this job's data key was deleted; its stored media can no longer be read",
                                   code="key_deleted")
            # create-if-absent; when another writer won the race, its key is the one read back and used
            self._write(scope, self._doc(scope, new_data_key()), exclusive=True)
            doc = self._read(scope)
            if doc is None:
                raise JobError("could not create the job's data key in storage", code="storage_error")
        return self._unwrap(scope, doc)

    def shred(self, scope: str) -> bool:
        """Delete the job's data key: every copy of its encrypted media becomes unreadable."""
        path = self._path(scope)
        try:
            self.fs.rm(path)
            return True
        except FileNotFoundError:
            return False

    def scopes(self) -> list[str]:
        """Every job that has a data key."""
        try:
            names = self.fs.ls(self.base, detail=False)
        except FileNotFoundError:
            return []
        return sorted(n.rsplit("/", 1)[-1][: -len(".json")] for n in names if n.endswith(".json")
                      and not n.rsplit("/", 1)[-1].startswith("."))

    def check(self) -> None:
        """Unwrap one data key, so a wrong or missing KEK shows at start-up (JobError kek_missing / kek_mismatch)."""
        for scope in self.scopes()[:1]:
            doc = self._read(scope)
            if doc is not None:
                self._unwrap(scope, doc)

    def rotate(self) -> int:
        """Re-wrap every data key under the active KEK (media untouched); returns how many changed."""
        changed = 0
        for scope in self.scopes():
            doc = self._read(scope)
            if doc is None or doc.get("kek_id") == self.keyring.active_id:
                continue
            self._write(scope, self._doc(scope, self._unwrap(scope, doc)), exclusive=False)
            changed += 1
        return changed
