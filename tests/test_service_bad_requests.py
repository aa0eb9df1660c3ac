"""Bad requests to ``POST /v1/jobs`` on a real service (loopback): each gets a 4xx with a clear reason and
stores nothing — no job row, no object or data key under the storage root, no upload left in scratch.

The service runs with encryption at rest (a KEK), so anything stored would also leave a data key behind,
and with ``max_upload_mb=0.5`` for the size limit. ``test_a_good_request_does_store`` shows the same
checks do see what a valid request stores.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest

from service_fixtures import LiveService, jpeg_bytes, live_service
from swapface.storage.keys import KEYS_DIR

KEK = "k1:" + base64.b64encode(bytes(range(32))).decode()
LIMIT_MB = 0.5
BOUNDARY = "swapfaceTESTboundary"
MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
TRACE_MARKERS = ("Traceback", 'File "', "site-packages", "swapface/", ".py\"", "line ")


# --- helpers --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small(astronaut) -> bytes:
    return jpeg_bytes(np.ascontiguousarray(astronaut[::4, ::4]))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Iterator[Path]:
    """The process's temporary folder for this module: uploads are spooled here while a request is read."""
    folder = tmp_path_factory.mktemp("scratch")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "tempdir", str(folder))
        yield folder


@pytest.fixture(scope="module")
def svc(tmp_path_factory, scratch) -> Iterator[LiveService]:
    with live_service(tmp_path_factory.mktemp("svc"), workers=0, max_upload_mb=LIMIT_MB, kek=KEK) as service:
        yield service


@pytest.fixture()
def http(svc) -> Iterator[httpx.Client]:
    with svc.client(timeout=30) as client:
        yield client


def storage_root(svc: LiveService) -> Path:
    url = svc.settings.resolved_storage_url()
    assert url.startswith("file://")
    return Path(urlparse(url).path)


def stored_files(svc: LiveService) -> list[Path]:
    root = storage_root(svc)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_nothing_stored(svc: LiveService, http: httpx.Client, scratch: Path) -> None:
    listed = http.get("/v1/jobs")
    assert listed.status_code == 200 and listed.json() == {"jobs": [], "next_cursor": None}, listed.text
    assert sum(svc.runtime.store.counts_by_state().values()) == 0
    assert stored_files(svc) == []
    keys = storage_root(svc) / KEYS_DIR
    assert not keys.exists() or not any(keys.iterdir()), "a data key was created"
    assert not any(scratch.iterdir()), f"uploads left behind: {list(scratch.iterdir())}"


def refused(answer: httpx.Response, status: int, code: str, *words: str) -> dict:
    """The answer is ``status`` with a JSON ``{"detail", "code"}`` naming the problem, and no trace or path."""
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    body = answer.json()
    assert set(body) == {"detail", "code"}, body
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"], body
    for word in words:
        assert word in body["detail"], (word, body)
    for marker in TRACE_MARKERS:
        assert marker not in answer.text, (marker, answer.text)
    assert "/tmp" not in answer.text and tempfile.gettempdir() not in answer.text, answer.text
    return body


def part(name: str, data: bytes | str, filename: str | bytes | None = None, content_type: str = "image/jpeg") -> bytes:
    """One raw multipart part (file names as given: nothing escaped, unlike a client library)."""
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"'.encode()
    if filename is not None:
        head += b'; filename="' + (filename.encode() if isinstance(filename, str) else filename) + b'"'
        head += f"\r\nContent-Type: {content_type}".encode()
    return head + b"\r\n\r\n" + (data.encode() if isinstance(data, str) else data) + b"\r\n"


def closing() -> bytes:
    return f"--{BOUNDARY}--\r\n".encode()


def images(small: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("source", ("me.jpg", small, "image/jpeg")), ("target", ("them.jpg", small, "image/jpeg"))]


# --- the control: a good request is stored (so the checks above can fail) -------------------------

def test_a_good_request_does_store(tmp_path, small, scratch):
    with live_service(tmp_path, workers=0, max_upload_mb=LIMIT_MB, kek=KEK) as good, good.client() as http:
        raw = part("source", small, "me.jpg") + part("target", small, "them.jpg") + closing()
        answer = http.post("/v1/jobs", content=raw, headers=MULTIPART)
        assert answer.status_code == 201, answer.text
        job_id = answer.json()["id"]
        assert [j["id"] for j in http.get("/v1/jobs").json()["jobs"]] == [job_id]
        names = {p.relative_to(storage_root(good)).as_posix() for p in stored_files(good)}
        assert names == {f"{job_id}/inputs/source-0.jpg", f"{job_id}/inputs/target.jpg", f"{KEYS_DIR}/{job_id}.json"}
        with pytest.raises(AssertionError):
            assert_nothing_stored(good, http, scratch)


# --- malformed bodies -----------------------------------------------------------------------------

def test_malformed_multipart_is_400(svc, http, small, scratch):
    whole = part("source", small, "me.jpg") + part("target", small, "them.jpg") + closing()
    cases = {
        "wrong boundary": whole.replace(BOUNDARY.encode(), b"someOtherBoundary"),
        "cut inside the target": whole[: len(whole) // 2 + 700],
        "cut before the closing boundary": whole[: -len(closing())],
        "cut inside part headers": whole[:40],
        "empty": b"",
        "garbage": np.random.default_rng(0).bytes(4096),
        "no blank line after headers": f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="source"'.encode()
        + b"\x00\x01" * 64 + closing(),
    }
    for label, body in cases.items():
        answer = http.post("/v1/jobs", content=body, headers=MULTIPART)
        detail = refused(answer, 400, "malformed_multipart", "multipart body could not be read")["detail"]
        if label.startswith("cut") or label == "empty":
            assert "truncated" in detail, (label, detail)
        assert_nothing_stored(svc, http, scratch)

    no_boundary = http.post("/v1/jobs", content=whole, headers={"content-type": "multipart/form-data"})
    refused(no_boundary, 400, "malformed_multipart", "boundary")
    assert_nothing_stored(svc, http, scratch)

    # a part without a name
    nameless = f'--{BOUNDARY}\r\nContent-Disposition: form-data; filename="a.jpg"\r\n\r\n'.encode() + small + b"\r\n"
    refused(http.post("/v1/jobs", content=nameless + closing(), headers=MULTIPART), 400, "malformed_multipart", "name")
    assert_nothing_stored(svc, http, scratch)

    # JSON that does not parse, or is not an object
    refused(http.post("/v1/jobs", content=b'{"sources": [', headers={"content-type": "application/json"}),
            400, "bad_request", "not valid JSON")
    refused(http.post("/v1/jobs", json=["file:///etc/passwd"]), 400, "bad_request", "JSON object")
    assert_nothing_stored(svc, http, scratch)


def test_unsupported_content_type_is_415(svc, http, small, scratch):
    for headers, body in ((({"content-type": "text/plain"}), b"source=me.jpg"),
                          ({"content-type": "application/x-www-form-urlencoded"}, b"face_selector_mode=many"),
                          ({"content-type": "image/jpeg"}, small),
                          ({}, small)):
        answer = http.post("/v1/jobs", content=body, headers=headers)
        refused(answer, 415, "unsupported_media_type", "multipart/form-data", "application/json")
        assert_nothing_stored(svc, http, scratch)
    # fields without files: httpx sends them url-encoded, which this endpoint does not take
    refused(http.post("/v1/jobs", data={"source_uri": "x", "target_uri": "y"}), 415, "unsupported_media_type")
    assert_nothing_stored(svc, http, scratch)


# --- size -----------------------------------------------------------------------------------------

def test_oversize_upload_is_413_with_and_without_content_length(svc, small, scratch):
    big = os.urandom(1024 * 1024)  # ~1 MB against a 0.5 MB limit
    body = part("source", big, "big.jpg") + part("target", small, "them.jpg") + closing()

    with svc.client(timeout=30) as http:  # Content-Length given: refused before the body is read
        answer = http.post("/v1/jobs", content=body, headers=MULTIPART)
        assert int(answer.request.headers["content-length"]) == len(body)
        refused(answer, 413, "upload_too_large", f"{LIMIT_MB:g} MB")

    sent = []

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while it streams in
        for start in range(0, len(body), 64 * 1024):
            sent.append(start)
            yield body[start:start + 64 * 1024]

    with svc.client(timeout=30) as http:
        answer = http.post("/v1/jobs", content=chunks(), headers=MULTIPART)
        assert "content-length" not in answer.request.headers
        assert answer.request.headers["transfer-encoding"] == "chunked"
        refused(answer, 413, "upload_too_large", f"{LIMIT_MB:g} MB")
        assert_nothing_stored(svc, http, scratch)

    # the same files through the client library's own encoder
    with svc.client(timeout=30) as http:
        answer = http.post("/v1/jobs", files=[("source", ("big.jpg", big, "image/jpeg")),
                                              ("target", ("them.jpg", small, "image/jpeg"))])
        refused(answer, 413, "upload_too_large")
        assert_nothing_stored(svc, http, scratch)


# --- fields and options ---------------------------------------------------------------------------

def test_unknown_fields_and_options_are_named(svc, http, small, scratch):
    answer = http.post("/v1/jobs", files=images(small), data={"face_swapper_strength": "0.8"})
    refused(answer, 422, "unknown_field", "face_swapper_strength")
    answer = http.post("/v1/jobs", files=images(small) + [("sauce", ("x.jpg", small, "image/jpeg"))])
    refused(answer, 422, "unknown_field", "sauce")
    answer = http.post("/v1/jobs", files=images(small), data={"options": json.dumps({"face_swapper_strength": 0.8})})
    refused(answer, 422, "bad_option", "face_swapper_strength")
    answer = http.post("/v1/jobs", json={"sources": ["a"], "target": "b", "priority": "high"})
    refused(answer, 422, "unknown_field", "priority")
    answer = http.post("/v1/jobs", json={"sources": ["a"], "target": "b", "options": {"turbo": True}})
    refused(answer, 422, "bad_option", "turbo")
    assert_nothing_stored(svc, http, scratch)


@pytest.mark.parametrize(("fields", "named"), [
    ({"face_mask_blur": "abc"}, "face_mask_blur"),
    ({"face_mask_blur": "2.5"}, "face_mask_blur"),
    ({"face_selector_mode": "sideways"}, "face_selector_mode"),
    ({"output_image_quality": "high"}, "output_image_quality"),
    ({"face_mask_padding": "1,2,x,4"}, "face_mask_padding"),
    ({"skip_audio": "perhaps"}, "skip_audio"),
    ({"chunk_seconds": "-1"}, "chunk_seconds"),
    ({"options": json.dumps({"execution_batch_size": "many"})}, "execution_batch_size"),
    ({"options": "{not json"}, "options"),
    ({"options": "[1, 2]"}, "options"),
])
def test_wrong_option_values_are_named(svc, http, small, scratch, fields, named):
    answer = http.post("/v1/jobs", files=images(small), data=fields)
    refused(answer, 422, "bad_option", named)
    assert_nothing_stored(svc, http, scratch)


def test_an_option_given_twice_is_refused(svc, http, small, scratch):
    answer = http.post("/v1/jobs", files=images(small), data={"face_mask_blur": ["0.2", "0.4"]})
    refused(answer, 422, "bad_option", "face_mask_blur", "2 times")
    assert_nothing_stored(svc, http, scratch)


def test_mark_output_false_is_refused(svc, http, small, scratch):
    for data in ({"mark_output": "false"}, {"options": json.dumps({"mark_output": False})}):
        refused(http.post("/v1/jobs", files=images(small), data=data), 422, "bad_option", "mark_output", "always marks")
    refused(http.post("/v1/jobs", json={"sources": ["a"], "target": "b", "options": {"mark_output": False}}),
            422, "bad_option", "mark_output")
    assert_nothing_stored(svc, http, scratch)


def test_fields_of_the_wrong_kind(svc, http, small, scratch):
    # a text field where a file belongs, and a file where a text field belongs
    answer = http.post("/v1/jobs", content=part("source", "me.jpg") + part("target", small, "them.jpg") + closing(),
                       headers=MULTIPART)
    refused(answer, 422, "bad_field", "source", "must be a file")
    answer = http.post("/v1/jobs", files=images(small) + [("face_mask_blur", ("blur.txt", b"0.3", "text/plain"))])
    refused(answer, 422, "bad_field", "face_mask_blur", "text field")
    assert_nothing_stored(svc, http, scratch)


# --- media ----------------------------------------------------------------------------------------

def test_files_that_are_not_media(svc, http, small, scratch):
    text = b"just some text, not a picture\n" * 40
    target = ("target", ("them.jpg", small, "image/jpeg"))
    cases = [
        ([("source", ("me.jpg", small, "image/jpeg")), ("target", ("them.jpg", text, "image/jpeg"))],
         "target", "neither a readable image nor a readable video"),
        ([("source", ("me.jpg", small, "image/jpeg")), ("target", ("clip.mp4", os.urandom(64 * 1024), "video/mp4"))],
         "target", "neither a readable image nor a readable video"),
        ([("source", ("me.jpg", text, "image/jpeg")), ("target", ("them.jpg", small, "image/jpeg"))],
         "source", "not a readable image"),
        ([("source", ("me.jpg", small[: len(small) // 3], "image/jpeg")), target],
         "source", "cannot be used"),
        ([("source", ("me.jpg", b"", "image/jpeg")), ("target", ("them.jpg", small, "image/jpeg"))],
         "source", "not a readable image"),
        (images(small) + [("reference_face", ("ref.jpg", text, "image/jpeg"))],
         "reference face", "not a readable image"),
    ]
    for files, role, words in cases:
        body = refused(http.post("/v1/jobs", files=files), 422, "bad_media", role, words)
        assert "upload-" not in body["detail"] and "me.jpg" not in body["detail"], body
        assert_nothing_stored(svc, http, scratch)


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels in a few dozen bytes (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns as it opens them
@pytest.mark.parametrize(("width", "height", "said"), [
    (7000, 7000, "7000x7000 pixels"),  # over SWAPFACE_MAX_IMAGE_PIXELS (40 M)
    (10000, 10000, "10000x10000 pixels"),  # also over Pillow's warning limit (89 M)
    (20000, 20000, "too many pixels"),  # over Pillow's hard limit: refused as the file is opened
    (100000, 100000, "too many pixels"),
])
def test_images_with_too_many_pixels(svc, http, small, scratch, width, height, said):
    for role in ("source", "target"):
        files = {"source": ("me.jpg", small, "image/jpeg"), "target": ("them.jpg", small, "image/jpeg")}
        files[role] = (f"{role}.png", png_header(width, height), "image/png")
        answer = http.post("/v1/jobs", files=list(files.items()))
        body = refused(answer, 422, "bad_media", f"the {role} image cannot be used", said, "SWAPFACE_MAX_IMAGE_PIXELS")
        assert "upload-" not in body["detail"], body
        assert_nothing_stored(svc, http, scratch)


def test_damaged_images(svc, http, small, scratch):
    damaged = bytearray(small)
    damaged[len(small) // 2:len(small) // 2 + 400] = bytes(400)  # entropy-coded data overwritten
    for data, said in ((small[: len(small) // 2], "the source image cannot be used: damaged or truncated"),
                       (bytes(damaged[: len(small) * 3 // 4]), "the source image cannot be used"),
                       (small[:300], "the source is not a readable image")):  # cut inside its headers
        answer = http.post("/v1/jobs", files=[("source", ("me.jpg", data, "image/jpeg")),
                                              ("target", ("them.jpg", small, "image/jpeg"))])
        refused(answer, 422, "bad_media", said)
        assert_nothing_stored(svc, http, scratch)


# --- file names -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../etc/passwd.jpg", "..\\x.jpg", "a/b.jpg", "/etc/passwd", "..", "a\\..\\b.jpg"])
def test_path_traversal_file_names(svc, http, small, scratch, name):
    for field in ("source", "target"):
        # through the client library (which escapes quotes and backslashes) ...
        files = [("source", ("me.jpg", small, "image/jpeg")), ("target", ("them.jpg", small, "image/jpeg"))]
        files[0 if field == "source" else 1] = (field, (name, small, "image/jpeg"))
        refused(http.post("/v1/jobs", files=files), 422, "bad_file_name", "path separators")
        # ... and raw, exactly as written
        parts = {"source": part("source", small, "me.jpg"), "target": part("target", small, "them.jpg")}
        parts[field] = part(field, small, name)
        answer = http.post("/v1/jobs", content=parts["source"] + parts["target"] + closing(), headers=MULTIPART)
        refused(answer, 422, "bad_file_name", "path separators")
        assert_nothing_stored(svc, http, scratch)


@pytest.mark.parametrize("name", [b"a\x00.jpg", b"a\x01b.jpg", b"evil\x1b[2J.jpg", b"a\x7f.jpg", b"line\tbreak.jpg"])
def test_control_characters_in_file_names(svc, http, small, scratch, name):
    answer = http.post("/v1/jobs", content=part("source", small, name) + part("target", small, "them.jpg") + closing(),
                       headers=MULTIPART)
    refused(answer, 422, "bad_file_name", "control characters")
    assert_nothing_stored(svc, http, scratch)


# --- missing inputs -------------------------------------------------------------------------------

def test_missing_source_or_target(svc, http, small, scratch):
    refused(http.post("/v1/jobs", files=[("target", ("them.jpg", small, "image/jpeg"))]),
            422, "missing_source", "source")
    refused(http.post("/v1/jobs", files=[("source", ("me.jpg", small, "image/jpeg"))]),
            422, "missing_target", "target")
    refused(http.post("/v1/jobs", files=[("source", ("me.jpg", small, "image/jpeg")),
                                         ("target", ("a.jpg", small, "image/jpeg")),
                                         ("target", ("b.jpg", small, "image/jpeg"))]),
            422, "missing_target", "exactly one target")
    refused(http.post("/v1/jobs", content=closing(), headers=MULTIPART), 422, "missing_source", "source")
    refused(http.post("/v1/jobs", json={}), 422, "missing_source", "source")
    refused(http.post("/v1/jobs", files=[("reference_face", ("r.jpg", small, "image/jpeg"))]), 422, "missing_source")
    assert_nothing_stored(svc, http, scratch)


# --- references to stored objects -----------------------------------------------------------------

def test_references_outside_storage(svc, http, small, scratch):
    root = svc.settings.resolved_storage_url().rstrip("/")
    outside = ["file:///etc/passwd", "../x", "/etc/passwd", f"{root}/../swapface.db", f"{root}/../../x.jpg",
               f"{root}x/a.jpg", "http://127.0.0.1:9/x.jpg", "memory://x/a.jpg", f"{root}", f"{root}/{KEYS_DIR}/x.json"]
    for uri in outside:
        for body in ({"sources": [uri], "target": uri}, {"sources": uri, "target": uri}):
            refused(http.post("/v1/jobs", json=body), 422, "bad_reference", "inside the service's storage")
        # the same references as form fields beside uploads
        answer = http.post("/v1/jobs", files=[("source", ("me.jpg", small, "image/jpeg"))], data={"target_uri": uri})
        refused(answer, 422, "bad_reference", "inside the service's storage")
        assert_nothing_stored(svc, http, scratch)
    # inside the root but not there
    refused(http.post("/v1/jobs", json={"sources": [f"{root}/nope/inputs/a.jpg"], "target": f"{root}/nope/t.jpg"}),
            422, "bad_reference", "no such object")
    assert_nothing_stored(svc, http, scratch)


def test_bad_idempotency_key(svc, http, small, scratch):
    answer = http.post("/v1/jobs", files=images(small), headers={"Idempotency-Key": "k" * 256})
    refused(answer, 400, "bad_idempotency_key", "1-255")
    assert_nothing_stored(svc, http, scratch)
