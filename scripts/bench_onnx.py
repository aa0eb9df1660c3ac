"""Frames/s of the neural swap path at 1080p for providers × fp32/fp16 × batch sizes, with real-size random graphs.

No real weights are needed: the graphs have the published architectures' sizes and operator mix
(an inswapper-class generator of ~138 M parameters: 7×7 stem, two stride-2 downs, six AdaIN residual
blocks of 1024 channels at 32×32 driven by the 512-d latent, two upsampling stages; a SCRFD-2.5G-class
detector at 640×640), with random weights. Per frame: one detection, one face swapped (its share of a
batch), paste-back into the 1920×1080 frame. Run:

    .venv/bin/python scripts/bench_onnx.py --providers cpu --batches 1 8 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from swapface.models.session import SessionSpec, available_providers, create_session  # noqa: E402
from swapface.processors.masks import box_mask, paste_back  # noqa: E402

RNG = np.random.default_rng(0)


class _G:
    """A tiny graph builder: conv, AdaIN and friends with random weights."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self.n = 0

    def name(self, p: str) -> str:
        self.n += 1
        return f"{p}{self.n}"

    def const(self, value: np.ndarray) -> str:
        n = self.name("w")
        self.inits.append(numpy_helper.from_array(value.astype(np.float32), n))
        return n

    def op(self, kind: str, inputs: list[str], **attrs) -> str:
        out = self.name(kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1) -> str:
        w = self.const(RNG.standard_normal((cout, cin, k, k)) * (2 / (cin * k * k)) ** 0.5)
        b = self.const(np.zeros(cout))
        return self.op("Conv", [x, w, b], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4)

    def adain(self, x: str, latent: str, c: int) -> str:
        norm = self.op("InstanceNormalization", [x, self.const(np.ones(c)), self.const(np.zeros(c))])
        style = self.op("Gemm", [latent, self.const(RNG.standard_normal((512, 2 * c)) * 0.02), self.const(np.zeros(2 * c))])
        shaped = self.op("Reshape", [style, self.inits_int([-1, 2 * c, 1, 1])])
        gamma = self.op("Slice", [shaped, self.inits_int([0]), self.inits_int([c]), self.inits_int([1])])
        beta = self.op("Slice", [shaped, self.inits_int([c]), self.inits_int([2 * c]), self.inits_int([1])])
        return self.op("Add", [self.op("Mul", [norm, gamma]), beta])

    def inits_int(self, v: list[int]) -> str:
        n = self.name("i")
        self.inits.append(numpy_helper.from_array(np.array(v, np.int64), n))
        return n


def swapper_graph(path: Path, size: int = 128, width: int = 1024, blocks: int = 6) -> Path:
    """An inswapper-class generator of the published size (target N×3×128×128, source N×512)."""
    g = _G()
    x = g.op("Relu", [g.conv("target", 3, 128, 7)])
    x = g.op("Relu", [g.conv(x, 128, 256, 3, 2)])
    x = g.op("Relu", [g.conv(x, 256, 512, 3, 2)])
    x = g.op("Relu", [g.conv(x, 512, width, 3)])
    for _ in range(blocks):
        y = g.op("Relu", [g.adain(g.conv(x, width, width, 3), "source", width)])
        y = g.adain(g.conv(y, width, width, 3), "source", width)
        x = g.op("Add", [x, y])
    scales = g.const(np.array([1, 1, 2, 2]))
    x = g.op("Relu", [g.conv(g.op("Resize", [x, "", scales], mode="nearest"), width, 512, 3)])
    x = g.op("Relu", [g.conv(g.op("Resize", [x, "", scales], mode="nearest"), 512, 256, 3)])
    x = g.op("Sigmoid", [g.conv(x, 256, 3, 7)])
    g.nodes[-1].output[0] = "output"
    g.inits.append(numpy_helper.from_array((RNG.standard_normal((512, 512)) / 22).astype(np.float32), "emap"))
    graph = helper.make_graph(
        g.nodes, "inswapper_like",
        [helper.make_tensor_value_info("target", TensorProto.FLOAT, ["n", 3, size, size]),
         helper.make_tensor_value_info("source", TensorProto.FLOAT, ["n", 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3, size, size])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def detector_graph(path: Path) -> Path:
    """A SCRFD-2.5G-class backbone and heads at 640×640 (≈ 0.7 M parameters, strides 8/16/32)."""
    g = _G()
    x, c, outs = "input", 3, []
    for i, cout in enumerate([16, 32, 64, 64, 128, 160]):
        x = g.op("Relu", [g.conv(x, c, cout, 3, 2 if i in (0, 1, 2, 4, 5) else 1)])
        x = g.op("Relu", [g.conv(x, cout, cout, 3)])
        c = cout
        if i >= 3:
            outs.append(g.conv(g.op("Relu", [g.conv(x, c, 64, 3)]), 64, 2 * 15, 1))
    graph = helper.make_graph(
        g.nodes, "scrfd_like", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


class GpuSampler:
    """Mean GPU utilisation from nvidia-smi while a block runs (None without a GPU)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                self.samples.append(float(out.split()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return
            time.sleep(0.2)

    def __enter__(self) -> "GpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


def bench(provider: str, precision: str, batch: int, repeats: int, folder: Path) -> dict:
    """Frames/s of detect + swap (batched across frames) + paste-back at 1080p with one face per frame."""
    spec = SessionSpec(providers=(provider,), precision=precision, cache_dir=folder / ".cache")
    det = create_session(folder / "scrfd_like.onnx", spec)
    swap = create_session(folder / "inswapper_like.onnx", spec)
    frame = RNG.integers(0, 255, (1080, 1920, 3), np.uint8)
    det_in = RNG.standard_normal((1, 3, 640, 640)).astype(np.float32)
    crops = RNG.random((batch, 3, 128, 128), dtype=np.float32)
    latent = RNG.standard_normal((batch, 512)).astype(np.float32)
    affine = np.array([[0.4, 0, -700], [0, 0.4, -250]], np.float32)
    mask = box_mask(128, 0.3)
    crop_img = RNG.integers(0, 255, (128, 128, 3), np.uint8)
    swap.run(None, {"target": crops, "source": latent})  # warm-up (and, on TensorRT, the engine build)
    det.run(None, {"input": det_in})
    times = []
    with GpuSampler() as gpu:
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(batch):
                det.run(None, {"input": det_in})
            swap.run(None, {"target": crops, "source": latent})
            for _ in range(batch):
                paste_back(frame, crop_img, affine, mask)
            times.append((time.perf_counter() - t) / batch)
    per_frame = float(np.median(times))
    return {"provider": provider, "precision": precision, "batch": batch, "ms_per_frame": round(per_frame * 1000, 1),
            "frames_per_s": round(1 / per_frame, 2), "gpu_util_percent": gpu.mean}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--providers", nargs="+", default=["cpu", "cuda", "tensorrt"])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "fp16"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    usable = available_providers()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        swapper_graph(folder / "inswapper_like.onnx")
        detector_graph(folder / "scrfd_like.onnx")
        size_mb = (folder / "inswapper_like.onnx").stat().st_size / 1e6
        print(json.dumps({"swapper_graph_mb": round(size_mb, 1), "usable_providers": usable}))
        for provider in args.providers:
            if provider not in usable:
                print(json.dumps({"provider": provider, "skipped": "not usable in this session (see swapface doctor)"}))
                continue
            for precision in args.precisions:
                for batch in args.batches:
                    print(json.dumps(bench(provider, precision, batch, args.repeats, folder)), flush=True)


if __name__ == "__main__":
    main()
