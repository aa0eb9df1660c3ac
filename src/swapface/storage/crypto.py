"""Envelope encryption primitives: a keyring of key-encryption keys, data-key wrapping, streamed AES-256-GCM.

Object format (version 1), all integers big-endian::

    header  = MAGIC (8) | frame_size (4) | salt (32) | scope length (2) | scope (UTF-8, the job id)
    frames  = AES-256-GCM(ciphertext ‖ 16-byte tag) of each ``frame_size`` slice of the plaintext

Each object gets its own key, derived with HKDF-SHA256 from the job's data key, the random salt and
the object's associated data (job id + object name), so a frame's nonce can simply be its index.
Every frame's associated data is the header, the object's associated data, the frame index and a
final flag: reordering, truncating, renaming or moving an object to another job all fail to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from swapface.errors import InputError, JobError

MAGIC = b"SWFENC\x00\x01"
FRAME_SIZE = 1 << 20
TAG = 16
_FIXED = struct.Struct(">8sI32sH")


class DecryptError(JobError):
    """A stored object or key does not decrypt: altered, moved, truncated, or its key was deleted."""

    def __init__(self, message: str = "a stored object failed its integrity check (altered, moved or truncated)",
                 code: str = "decrypt_failed") -> None:
        super().__init__(message, code=code)


@dataclass(frozen=True)
class Keyring:
    """Key-encryption keys by id; the first one wraps new data keys, every one can unwrap."""

    keys: tuple[tuple[str, bytes], ...]

    @property
    def active_id(self) -> str:
        return self.keys[0][0]

    def get(self, kek_id: str) -> bytes:
        """The KEK with this id; a missing one is a configuration error."""
        for kid, key in self.keys:
            if kid == kek_id:
                return key
        raise JobError(f"no key-encryption key with id {kek_id!r} is configured (SWAPFACE_KEK)", code="kek_missing")

    @classmethod
    def parse(cls, text: str) -> "Keyring":
        """Parse ``BASE64`` or ``id1:BASE64,id2:BASE64`` (32-byte keys; the first is active)."""
        keys: list[tuple[str, bytes]] = []
        for i, item in enumerate(p.strip() for p in text.split(",") if p.strip()):
            kid, _, b64 = item.rpartition(":")
            kid = kid or ("default" if i == 0 else f"k{i}")
            try:
                key = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError):
                raise InputError("SWAPFACE_KEK: a key is not valid base64", code="bad_kek") from None
            if len(key) != 32:
                raise InputError("SWAPFACE_KEK: each key must be 32 bytes (base64 of 32 random bytes)", code="bad_kek")
            if any(kid == k for k, _ in keys):
                raise InputError(f"SWAPFACE_KEK: key id {kid!r} appears twice", code="bad_kek")
            keys.append((kid, key))
        if not keys:
            raise InputError("SWAPFACE_KEK is empty", code="bad_kek")
        return cls(tuple(keys))


def new_data_key() -> bytes:
    """A fresh random 256-bit data key."""
    return AESGCM.generate_key(bit_length=256)


def wrap_key(kek: bytes, data_key: bytes, aad: bytes) -> bytes:
    """Encrypt a data key under a KEK; ``aad`` binds it to its job."""
    nonce = os.urandom(12)
    return nonce + AESGCM(kek).encrypt(nonce, data_key, aad)


def unwrap_key(kek: bytes, wrapped: bytes, aad: bytes) -> bytes:
    """Decrypt a wrapped data key; a wrong KEK or job raises DecryptError."""
    try:
        return AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], aad)
    except (InvalidTag, ValueError):
        raise DecryptError("a data key did not unwrap: the key-encryption key (SWAPFACE_KEK) is not the one it was "
                           "wrapped with, or the key file was moved", code="kek_mismatch") from None


def object_aad(scope: str, name: str) -> bytes:
    """The associated data of an object: its job and its name under the storage root."""
    return b"swapface-object-v1\x00" + scope.encode() + b"\x00" + name.encode()


def _object_key(data_key: bytes, salt: bytes, aad: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=aad)
    return AESGCM(hkdf.derive(data_key))


def _frame_aad(header: bytes, aad: bytes, index: int, final: bool) -> bytes:
    return header + aad + struct.pack(">QB", index, 1 if final else 0)


def _nonce(index: int) -> bytes:
    return b"\x00\x00\x00\x00" + struct.pack(">Q", index)


def _read_full(src: BinaryIO, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        block = src.read(n - got)
        if not block:
            break
        parts.append(block)
        got += len(block)
    return b"".join(parts)


def encrypt_stream(src: BinaryIO, dst: BinaryIO, data_key: bytes, scope: str, name: str,
                   frame_size: int = FRAME_SIZE) -> None:
    """Encrypt ``src`` into ``dst`` frame by frame (memory use: about two frames)."""
    scope_b = scope.encode()
    header = _FIXED.pack(MAGIC, frame_size, os.urandom(32), len(scope_b)) + scope_b
    aad = object_aad(scope, name)
    aead = _object_key(data_key, header[12:44], aad)
    dst.write(header)
    index = 0
    current = _read_full(src, frame_size)
    while True:
        following = _read_full(src, frame_size)
        final = not following
        dst.write(aead.encrypt(_nonce(index), current, _frame_aad(header, aad, index, final)))
        if final:
            return
        current, index = following, index + 1


@dataclass(frozen=True)
class Header:
    """The clear-text header of an encrypted object."""

    raw: bytes
    frame_size: int
    salt: bytes
    scope: str


def read_header(src: BinaryIO) -> Header | None:
    """Parse an object's header; None when the object is not in the encrypted format."""
    fixed = _read_full(src, _FIXED.size)
    if len(fixed) < _FIXED.size or not fixed.startswith(MAGIC):
        return None
    _, frame_size, salt, scope_len = _FIXED.unpack(fixed)
    scope_b = _read_full(src, scope_len)
    if len(scope_b) != scope_len or not 0 < frame_size <= 64 << 20:
        raise DecryptError()
    return Header(fixed + scope_b, frame_size, salt, scope_b.decode("utf-8", "replace"))


def decrypt_frames(src: BinaryIO, header: Header, data_key: bytes, name: str) -> Iterator[bytes]:
    """Yield the plaintext frame by frame after ``read_header``; any tampering raises DecryptError."""
    aad = object_aad(header.scope, name)
    aead = _object_key(data_key, header.salt, aad)
    step = header.frame_size + TAG
    index = 0
    current = _read_full(src, step)
    while True:
        following = _read_full(src, step)
        final = not following
        try:
            yield aead.decrypt(_nonce(index), current, _frame_aad(header.raw, aad, index, final))
        except (InvalidTag, ValueError):
            raise DecryptError() from None
        if final:
            return
        current, index = following, index + 1
