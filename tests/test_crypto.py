"""Encryption at rest: ciphertext hides the media, binds job and name, detects truncation, rotates and shreds."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import skvideo
from PIL import Image

from swapface import storage
from swapface.config import load_settings
from swapface.errors import JobError
from swapface.storage.crypto import DecryptError

CARPHONE = Path(skvideo.__file__).parent / "datasets/data/carphone_pristine.mp4"
KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return tmp_path / "objects"


def cfg(root: Path, kek: str | None = f"a:{KEY_A}"):
    return load_settings(storage_url=root.as_uri(), kek=kek, data_dir=root.parent / "data")


@pytest.fixture()
def media(tmp_path: Path, astronaut: np.ndarray) -> dict[str, Path]:
    """A JPEG, a raw pixel dump (for a known pixel run) and a real MP4."""
    jpg = tmp_path / "in.jpg"
    Image.fromarray(astronaut).save(jpg, quality=92)
    raw = tmp_path / "in.rgb"
    raw.write_bytes(astronaut.tobytes())
    mp4 = tmp_path / "in.mp4"
    shutil.copyfile(CARPHONE, mp4)
    return {"jpg": jpg, "raw": raw, "mp4": mp4}


def _roundtrip(uri: str, settings, job_id: str | None = None) -> bytes:
    with storage.fetch(uri, job_id=job_id, settings=settings) as local:
        return Path(local).read_bytes()


def test_ciphertext_has_no_media_bytes_and_round_trips(root, media, astronaut):
    s = cfg(root)
    headers = set()
    for kind, path in media.items():
        uri = storage.join(root.as_uri(), "job1", f"input.{kind}")
        storage.publish(path, uri, settings=s)
        at_rest = (root / "job1" / f"input.{kind}").read_bytes()
        plain = path.read_bytes()
        assert not at_rest.startswith(plain[:8])
        # each JPEG segment or MP4 box header, with its size and the bytes after it: 16 bytes never match by chance
        # (a 4-byte tag alone turns up in a megabyte of ciphertext about once in four thousand runs)
        for tag in (b"JFIF", b"Exif", b"ftyp", b"moov", b"mdat"):
            at = plain.find(tag)
            if at >= 4:
                headers.add(tag)
                assert plain[at - 4 : at + 12] not in at_rest, (kind, tag)
        assert plain[1000:1064] not in at_rest
        assert _roundtrip(uri, s) == plain
    assert headers >= {b"JFIF", b"ftyp", b"moov", b"mdat"}  # the media hold what is looked for
    run = astronaut[200, 100:140].tobytes()  # a known run of 40 pixels
    assert run in media["raw"].read_bytes()
    assert run not in (root / "job1" / "input.raw").read_bytes()
    assert (root / "_keys" / "job1.json").exists()
    assert KEY_A not in (root / "_keys" / "job1.json").read_text()


def test_moved_renamed_or_altered_objects_fail(root, media):
    s = cfg(root)
    uri = storage.join(root.as_uri(), "job1", "result.jpg")
    storage.publish(media["jpg"], uri, settings=s)
    storage.publish(media["jpg"], storage.join(root.as_uri(), "job2", "other.jpg"), settings=s)  # job2 has a key
    (root / "job2").mkdir(exist_ok=True)
    shutil.copyfile(root / "job1" / "result.jpg", root / "job2" / "result.jpg")
    with pytest.raises(DecryptError):  # moved to another job
        _roundtrip(storage.join(root.as_uri(), "job2", "result.jpg"), s)
    with pytest.raises(DecryptError):  # asked for as another job's object
        _roundtrip(uri, s, job_id="job2")
    shutil.copyfile(root / "job1" / "result.jpg", root / "job1" / "renamed.jpg")
    with pytest.raises(DecryptError):  # renamed
        _roundtrip(storage.join(root.as_uri(), "job1", "renamed.jpg"), s)
    data = bytearray((root / "job1" / "result.jpg").read_bytes())
    data[len(data) // 2] ^= 1
    (root / "job1" / "flipped.jpg").write_bytes(bytes(data))
    with pytest.raises(DecryptError):
        _roundtrip(storage.join(root.as_uri(), "job1", "flipped.jpg"), s)
    assert _roundtrip(uri, s, job_id="job1") == media["jpg"].read_bytes()


def test_truncation_at_a_frame_boundary_is_detected(root, tmp_path):
    s = cfg(root)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom((5 << 20) // 2))  # 2.5 frames of 1 MiB
    uri = storage.join(root.as_uri(), "job1", "big.bin")
    storage.publish(big, uri, settings=s)
    assert _roundtrip(uri, s) == big.read_bytes()
    stored = (root / "job1" / "big.bin").read_bytes()
    header = len(stored) - (len(big.read_bytes()) + 3 * 16)
    (root / "job1" / "big.bin").write_bytes(stored[: header + 2 * ((1 << 20) + 16)])  # drop the last frame
    with pytest.raises(DecryptError):
        _roundtrip(uri, s)


def test_kek_rotation_rewraps_keys_without_touching_media(root, media):
    s_old = cfg(root, f"a:{KEY_A}")
    uri = storage.join(root.as_uri(), "job1", "input.mp4")
    storage.publish(media["mp4"], uri, settings=s_old)
    media_before = (root / "job1" / "input.mp4").read_bytes()
    key_before = (root / "_keys" / "job1.json").read_text()
    s_both = cfg(root, f"b:{KEY_B},a:{KEY_A}")
    assert storage.rotate_kek(settings=s_both) == 1
    assert storage.rotate_kek(settings=s_both) == 0  # already under the active key
    assert (root / "job1" / "input.mp4").read_bytes() == media_before
    assert (root / "_keys" / "job1.json").read_text() != key_before
    s_new = cfg(root, f"b:{KEY_B}")  # the old KEK can now be retired
    assert _roundtrip(uri, s_new) == media["mp4"].read_bytes()
    with pytest.raises(JobError):
        _roundtrip(uri, s_old)


def test_shredding_the_data_key_makes_every_copy_unreadable(root, media, tmp_path):
    s = cfg(root)
    uri = storage.join(root.as_uri(), "job1", "input.jpg")
    storage.publish(media["jpg"], uri, settings=s)
    backup = tmp_path / "backup.bin"
    shutil.copyfile(root / "job1" / "input.jpg", backup)
    assert storage.shred("job1", settings=s)
    shutil.copyfile(backup, root / "job1" / "input.jpg")  # a restored backup copy
    with pytest.raises(DecryptError) as err:
        _roundtrip(uri, s)
    assert err.value.code == "key_deleted"


def test_plain_outside_root_or_without_kek(root, media, tmp_path):
    s = cfg(root)
    outside = tmp_path / "elsewhere" / "out.jpg"
    storage.publish(media["jpg"], str(outside), settings=s)
    assert outside.read_bytes() == media["jpg"].read_bytes()
    plain = cfg(root, None)
    uri = storage.join(root.as_uri(), "job9", "in.jpg")
    storage.publish(media["jpg"], uri, settings=plain)
    assert (root / "job9" / "in.jpg").read_bytes().startswith(b"\xff\xd8\xff")
    with pytest.raises(DecryptError):  # once encryption is on, a clear-text object is refused
        _roundtrip(uri, s)


def test_object_store_root_and_json(media):
    """A non-local root (fsspec memory://) encrypts the same way; JSON documents go through it too."""
    import fsspec

    s = load_settings(storage_url="memory://sealed", kek=KEY_A)
    storage.write_json("memory://sealed/jobm/manifest.json", {"chunks": [1, 2]}, settings=s)
    raw = fsspec.filesystem("memory").cat("/sealed/jobm/manifest.json")
    assert b"chunks" not in raw
    assert storage.read_json("memory://sealed/jobm/manifest.json", settings=s) == {"chunks": [1, 2]}
    storage.publish(media["jpg"], "memory://sealed/jobm/in.jpg", settings=s)
    assert _roundtrip("memory://sealed/jobm/in.jpg", s) == media["jpg"].read_bytes()


def test_gcs_root_on_a_fake_gcs_server(media, monkeypatch):
    """gs:// for real against gcp-storage-emulator on loopback: ciphertext in the bucket, plaintext back."""
    import socket

    emulator = pytest.importorskip("gcp_storage_emulator.server")
    monkeypatch.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = emulator.create_server("127.0.0.1", port, in_memory=True, default_bucket="sealed")
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    try:
        import fsspec

        fsspec.filesystem("gs").clear_instance_cache()
        s = load_settings(storage_url="gs://sealed/root", kek=KEY_A)
        uri = "gs://sealed/root/jobg/input.jpg"
        storage.publish(media["jpg"], uri, settings=s)
        raw = fsspec.filesystem("gs").cat("sealed/root/jobg/input.jpg")
        assert b"JFIF" not in raw and not raw.startswith(b"\xff\xd8")
        assert _roundtrip(uri, s) == media["jpg"].read_bytes()
        assert storage.shred("jobg", settings=s)
        with pytest.raises(DecryptError):
            _roundtrip(uri, s)
    finally:
        import fsspec

        fsspec.filesystem("gs").clear_instance_cache()
        server.stop()
