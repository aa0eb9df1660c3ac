"""Which ONNX Runtime providers really work here: packages, GPU, CUDA/cuDNN/TensorRT libraries, a live probe.

Each check says what it found and, when something is wrong, the one thing to do about it.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from swapface.models.session import PROVIDER_NAMES

# (what, shared-library names tried in order, pip package that ships it)
LIBRARIES = (
    ("CUDA runtime 12", ("libcudart.so.12",), "nvidia-cuda-runtime-cu12"),
    ("cuBLAS 12", ("libcublas.so.12",), "nvidia-cublas-cu12"),
    ("cuDNN 9", ("libcudnn.so.9",), "nvidia-cudnn-cu12"),
    ("cuFFT 11", ("libcufft.so.11",), "nvidia-cufft-cu12"),
    ("TensorRT 10", ("libnvinfer.so.10",), "tensorrt-cu12-libs"),
)


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, whether it is fine, what was seen, and the fix when it is not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _pip_library_dirs() -> list[Path]:
    """Library folders of NVIDIA's pip wheels (nvidia-*-cu12, tensorrt) in this environment."""
    dirs: list[Path] = []
    for entry in map(Path, sys.path):
        for sub in ("nvidia", "tensorrt_libs"):
            root = entry / sub
            if root.is_dir():
                dirs += [p for p in root.glob("**/lib") if p.is_dir()] + ([root] if sub == "tensorrt_libs" else [])
    return dirs


def find_library(names: tuple[str, ...]) -> str | None:
    """Where a shared library loads from: the system loader first, then NVIDIA's pip wheels."""
    for name in names:
        try:
            ctypes.CDLL(name)
            return "system"
        except OSError:
            pass
        for folder in _pip_library_dirs():
            if (folder / name).exists():
                return "pip wheel"
    return None


def gpus() -> tuple[list[str], str]:
    """GPU names and the driver version as nvidia-smi reports them (empty when none is visible)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [], ""
    try:
        out = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return [], ""
    rows = [r.split(", ") for r in out.strip().splitlines() if r.strip()]
    return [f"{r[0]} ({r[2]})" for r in rows if len(r) >= 3], (rows[0][1] if rows and len(rows[0]) > 1 else "")


def probe(provider: str) -> tuple[bool, str]:
    """Run a one-node model on a provider; ONNX Runtime silently falls back to CPU, so check who ran it."""
    import numpy as np

    from swapface.models.session import onnx_runtime

    ort = onnx_runtime()
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        s = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=[PROVIDER_NAMES[provider], "CPUExecutionProvider"])
        s.run(None, {"x": np.ones((1, 4), np.float32)})
    except Exception as exc:
        return False, f"session failed: {type(exc).__name__}"
    used = s.get_providers()[0]
    return used == PROVIDER_NAMES[provider], f"ran on {used}"


def diagnose() -> list[Check]:
    """Every check, in the order a user should fix them."""
    from swapface.models.session import onnx_runtime

    ort = onnx_runtime()

    checks: list[Check] = []
    cpu_pkg, gpu_pkg = _version("onnxruntime"), _version("onnxruntime-gpu")
    checks.append(Check("onnxruntime", True, f"{ort.__version__} (packages: onnxruntime {cpu_pkg or '-'}, onnxruntime-gpu {gpu_pkg or '-'})"))
    if cpu_pkg and gpu_pkg:
        checks.append(Check("package conflict", False, "both onnxruntime and onnxruntime-gpu are installed; the CPU one may win",
                            "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"))
    offered = ort.get_available_providers()
    checks.append(Check("providers offered", True, ", ".join(offered)))
    checks.append(Check("cpu", True, "usable"))
    names, driver = gpus()
    checks.append(Check("GPU", bool(names), ", ".join(names) + (f"; driver {driver}" if driver else "") if names else "no NVIDIA GPU visible (nvidia-smi not found or no device)",
                        "" if names else "install the NVIDIA driver, or on a container pass the GPU in (docker run --gpus all)"))
    wants_gpu = bool(names) or "CUDAExecutionProvider" in offered
    for what, libs, pip_name in LIBRARIES:
        where = find_library(libs)
        checks.append(Check(what, where is not None or not wants_gpu, f"{libs[0]}: {where or 'not found'}" + ("" if where or wants_gpu else " (needed only with a GPU)"),
                            "" if where else f"pip install {pip_name}  (or install it system-wide and add it to LD_LIBRARY_PATH)"))
    for short in ("cuda", "tensorrt"):
        if PROVIDER_NAMES[short] not in offered:
            fix = "pip uninstall -y onnxruntime && pip install onnxruntime-gpu" if not gpu_pkg else "reinstall onnxruntime-gpu matching your CUDA major version"
            checks.append(Check(short, False, "not in this ONNX Runtime build", fix))
            continue
        ok, detail = probe(short)
        fix = "" if ok else (
            "install the CUDA 12 and cuDNN 9 libraries listed above" if short == "cuda"
            else "install TensorRT 10 (pip install tensorrt-cu12-libs) next to the CUDA libraries"
        )
        checks.append(Check(short, ok, detail, fix))
    return checks
