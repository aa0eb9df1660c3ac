"""ONNX Runtime sessions: provider choice (ONNX Runtime's providers by short name), device ids, TensorRT caches on
disk, fp16 (dedicated files, or a conversion checked against fp32 before it is used), batching."""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from swapface.errors import InputError, ModelError

log = logging.getLogger(__name__)

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "directml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}

#: Where an automatic fp32 → fp16 conversion is used at all (NVIDIA GPUs run fp16 fast and correctly);
#: elsewhere fp16 needs a dedicated fp16 file or an explicit ``execution_precision=fp16``.
FP16_PROVIDERS = ("cuda", "tensorrt")

#: An automatic fp16 conversion is used only if, on a probe input, every output stays within this
#: fraction of the fp32 output's largest magnitude.
FP16_TOLERANCE = 0.02


#: Providers whose sessions compute on an accelerator (usage bills their time as GPU seconds); OpenVINO is
#: configured for its GPU device by :func:`provider_entries`.
ACCELERATOR_PROVIDERS = frozenset({"cuda", "tensorrt", "rocm", "directml", "openvino"})

_SHORT_NAMES = {full: short for short, full in PROVIDER_NAMES.items()}
_runs: collections.Counter[str] = collections.Counter()
_runs_lock = threading.Lock()


def primary_provider(session: Any) -> str:
    """The short name of the provider a session runs its graph on: ONNX Runtime's first *registered* provider,
    which is CPU when a requested GPU provider could not load."""
    names = session.get_providers() if hasattr(session, "get_providers") else []
    return _SHORT_NAMES.get(names[0], names[0]) if names else "cpu"


def record_run(provider: str) -> None:
    """Count one use of a session on ``provider`` in this process (see :func:`providers_run`)."""
    with _runs_lock:
        _runs[provider] += 1


def providers_run() -> dict[str, int]:
    """Uses per provider in this process so far; the providers a piece of work ran on are those whose count
    grew while it ran."""
    with _runs_lock:
        return dict(_runs)


def providers_since(before: dict[str, int]) -> tuple[str, ...]:
    """The providers used since the snapshot ``before`` (from :func:`providers_run`), sorted."""
    return tuple(sorted(p for p, n in providers_run().items() if n > before.get(p, 0)))


def onnx_runtime() -> Any:
    """The ``onnxruntime`` module, or an InputError saying which build to install."""
    try:
        import onnxruntime
    except ImportError:
        raise InputError(
            "ONNX Runtime is not installed: run `pip install 'swapface[cpu]'` (or `pip install 'swapface[gpu]'` for CUDA)"
        ) from None
    return onnxruntime


def available_providers() -> list[str]:
    """Short names (cpu, cuda, tensorrt, rocm, directml, openvino, coreml) of the providers this build offers."""
    ort = onnx_runtime()

    offered = set(ort.get_available_providers())
    return [short for short, full in PROVIDER_NAMES.items() if full in offered]


def use_fp16(providers: Sequence[str], precision: str = "auto") -> bool:
    """Half precision: asked for, or ``auto`` on a GPU provider (CPU kernels are fp32-first)."""
    if precision == "fp16":
        return True
    if precision == "fp32":
        return False
    return any(p in FP16_PROVIDERS for p in providers)


def provider_config(
    providers: Sequence[str], device_id: int, cache_dir: Path, fp16: bool = False
) -> list[Any]:
    """The providers list for ``InferenceSession``, CPU always last as the fallback."""
    unknown = [p for p in providers if p not in PROVIDER_NAMES]
    if unknown:
        raise InputError(f"unknown execution provider(s) {', '.join(unknown)}; choose from {', '.join(PROVIDER_NAMES)}")
    offered = available_providers()
    missing = [p for p in providers if p not in offered]
    if missing:
        raise InputError(
            f"execution provider(s) {', '.join(missing)} are not usable in this installation; run `swapface doctor`"
        )
    return provider_entries(providers, device_id, cache_dir, fp16)


def provider_entries(providers: Sequence[str], device_id: int, cache_dir: Path, fp16: bool = False) -> list[Any]:
    """ONNX Runtime's provider names with their options (device id, caches), CPU last; no availability check."""
    out: list[Any] = []
    for p in providers:
        if p == "tensorrt":
            engines, timing = cache_dir / "tensorrt" / "engines", cache_dir / "tensorrt" / "timing"
            engines.mkdir(parents=True, exist_ok=True)
            timing.mkdir(parents=True, exist_ok=True)
            out.append((PROVIDER_NAMES[p], {
                "device_id": device_id,
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(engines),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(timing),
                "trt_fp16_enable": fp16,
                "trt_builder_optimization_level": 3,
            }))
        elif p == "cuda":
            out.append((PROVIDER_NAMES[p], {"device_id": device_id, "cudnn_conv_algo_search": "DEFAULT"}))
        elif p in ("rocm", "directml"):
            out.append((PROVIDER_NAMES[p], {"device_id": device_id}))
        elif p == "openvino":
            out.append((PROVIDER_NAMES[p], {"device_type": "GPU" if device_id == 0 else f"GPU.{device_id}"}))
        elif p == "coreml":
            out.append(PROVIDER_NAMES[p])
    out.append("CPUExecutionProvider")
    return out


def fp16_model(path: Path, cache_dir: Path) -> Path:
    """A half-precision copy of an ONNX model (inputs and outputs stay float32), converted once and cached."""
    import onnx
    from onnxconverter_common import float16

    stat = path.stat()
    key = hashlib.sha256(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    out = cache_dir / "fp16" / f"{path.stem}.{key}.fp16.onnx"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(path))
    if any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer):
        return path  # already half precision
    for i, node in enumerate(model.graph.node):  # the converter names its casts after nodes: names must be unique
        if not node.name:
            node.name = f"node_{i}"
    with warnings.catch_warnings():  # it warns about every weight below fp16's range, which is expected
        warnings.simplefilter("ignore")
        half = float16.convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(half, str(tmp))
    os.replace(tmp, out)
    return out


def probe_inputs(session: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs in [−1, 1] of a session's declared shapes (free axes: 1 for the first, 64 for the others)."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in session.get_inputs():
        dims = [d if isinstance(d, int) and d > 0 else (1 if n == 0 else 64) for n, d in enumerate(i.shape or [1])]
        dtype = {"tensor(float16)": np.float16, "tensor(double)": np.float64}.get(i.type, np.float32)
        out[i.name] = rng.uniform(-1, 1, dims).astype(dtype) if dims else np.asarray(0.5, dtype)
    return out


def fp16_agrees(fp32_path: Path, fp16_path: Path, providers: list[Any], cache_dir: Path) -> bool:
    """Whether a converted fp16 model gives the fp32 model's outputs within FP16_TOLERANCE on a probe input
    (the verdict is cached beside the converted file)."""
    verdict = fp16_path.with_suffix(".agrees")
    if verdict.exists():
        return verdict.read_text().strip() == "yes"
    ort = onnx_runtime()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    full = ort.InferenceSession(str(fp32_path), sess_options=opts, providers=providers)
    half = ort.InferenceSession(str(fp16_path), sess_options=opts, providers=providers)
    feed = probe_inputs(full)
    ok = True
    for a, b in zip(full.run(None, feed), half.run(None, feed)):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        scale = max(float(np.abs(a).max()), 1e-6)
        ok = ok and bool(np.isfinite(b).all()) and float(np.abs(a - b).max()) <= FP16_TOLERANCE * scale
    verdict.write_text("yes" if ok else "no")
    return ok


@dataclass
class SessionSpec:
    """How to run models: providers by short name, the device, precision and the cache folder."""

    providers: tuple[str, ...] = ("cpu",)
    device_id: int = 0
    precision: str = "auto"  # auto | fp32 | fp16
    cache_dir: Path | None = None
    threads: int = 0  # intra-op threads; 0: by the rule in :func:`session_options`

    @classmethod
    def from_options(cls, options: Any, models_dir: Path, model: str = "") -> SessionSpec:
        """The session settings the swap options ask for; with several device ids each model is placed on one of
        them by its name (the same model always on the same device, a chain's models spread over the devices)."""
        ids = tuple(getattr(options, "execution_device_ids", (0,)) or (0,))
        return cls(
            providers=tuple(getattr(options, "execution_providers", ("cpu",))),
            device_id=int(device_for(model, ids)),
            precision=str(getattr(options, "execution_precision", "auto")),
            cache_dir=models_dir / ".cache",
        )


def device_for(model: str, device_ids: Sequence[int]) -> int:
    """The device a model's session runs on, out of ``device_ids`` (stable per model name)."""
    import zlib

    return int(device_ids[zlib.crc32(model.encode()) % len(device_ids)]) if device_ids else 0


SMALL_MODEL_BYTES = 32 * 2**20  # below this a model's ops are too short to gain from a thread pool


def intra_op_threads(model_bytes: int, spec: SessionSpec) -> int:
    """Intra-op threads for a session: ``spec.threads`` when set, else 1 for small models, else 0 (all cores)."""
    if spec.threads > 0:
        return spec.threads
    return 1 if model_bytes < SMALL_MODEL_BYTES else 0


def session_options(model_bytes: int, spec: SessionSpec) -> Any:
    """``SessionOptions`` by one rule, so model threads do not starve the video codec threads.

    * Intra-op threads: ``spec.threads`` when set; otherwise 1 for small models (< 32 MB, e.g. the
      built-in MediaPipe detector and mesh: their ops last microseconds, so a pool mostly hands work
      back and forth) and ONNX Runtime's default of one per physical core for large models (swappers,
      recognisers, enhancers of tens to hundreds of MB, whose convolutions do split well on CPU).
    * Spinning is always off: idle pool threads otherwise busy-wait for the next op and burn the
      cores that decode and libx264 encode run on (a 720p swap went from 23.4 to 29.5 frames/s on
      2 cores with this alone). Waking a sleeping pool thread costs microseconds per op, far less.
    * One model at a time: sequential execution, inter-op threads 1.
    """
    ort = onnx_runtime()

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    threads = intra_op_threads(model_bytes, spec)
    if threads:
        opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


def create_session(path: Path, spec: SessionSpec | None = None, equivalent: Path | bytes | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` for a verified model file under the spec's providers.

    ``equivalent``: a rewrite of the model with the same outputs (a file or its bytes, see
    :mod:`swapface.models.lean_graph`), loaded instead of it; the original is loaded where the rewrite fails to.
    """
    ort = onnx_runtime()

    spec = spec or SessionSpec()
    cache = spec.cache_dir or path.parent / ".cache"
    fp16 = use_fp16(spec.providers, spec.precision)
    providers = provider_config(spec.providers, spec.device_id, cache, fp16)
    model: Path | bytes = equivalent or path
    if fp16 and "tensorrt" not in spec.providers:  # TensorRT builds fp16 engines from the fp32 graph itself
        try:
            model = fp16_model(path, cache)
            if model != path and not fp16_agrees(path, model, providers, cache):
                log.warning("fp16 conversion differs from fp32 beyond tolerance; running in fp32",
                            extra={"model": path.stem, "tolerance": FP16_TOLERANCE})
                model = path
        except Exception as exc:
            log.warning("fp16 conversion failed; running in fp32", extra={"model": path.stem, "error": type(exc).__name__})
            model = path
    opts = session_options(path.stat().st_size, spec)
    engines = cache / "tensorrt" / "engines"
    before = set(engines.iterdir()) if "tensorrt" in spec.providers and engines.exists() else set()
    try:
        try:
            session = ort.InferenceSession(model if isinstance(model, bytes) else str(model), sess_options=opts,
                                           providers=providers)
        except Exception:
            if model == path:
                raise
            log.warning("the converted model failed to load; running the original", extra={"model": path.stem})
            session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:
        raise ModelError(
            f"model file {path.name!r} could not be loaded by ONNX Runtime ({type(exc).__name__}); "
            "delete it and download or import it again"
        ) from None
    if "tensorrt" in spec.providers and engines.exists() and set(engines.iterdir()) - before:
        log.info("tensorrt engine built on first run and cached", extra={"model": path.stem})
    return session


def input_dtype(session: Any, index: int = 0) -> type:
    """The numpy dtype a session's input expects (fp16 models take half-precision tensors)."""
    kind = session.get_inputs()[index].type
    return {"tensor(float16)": np.float16, "tensor(double)": np.float64}.get(kind, np.float32)


def batch_is_dynamic(session: Any) -> bool:
    """Whether every input's first axis is free (several items per call)."""
    return all(not isinstance(i.shape[0], int) if i.shape else False for i in session.get_inputs())


def run_batched(
    session: Any,
    batched: dict[str, np.ndarray],
    batch_size: int,
    fixed: dict[str, np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Run ``batched`` inputs (first axis = items) in chunks of ``batch_size``; outputs concatenated in order.

    Models with a fixed batch axis of 1 are run one item at a time. ``fixed`` inputs go to every call.
    """
    count = len(next(iter(batched.values())))
    if count == 0:
        return [np.zeros((0,), np.float32) for _ in session.get_outputs()]
    step = max(1, batch_size) if batch_is_dynamic(session) else 1
    parts: list[list[np.ndarray]] = []
    for start in range(0, count, step):
        feed = {k: v[start:start + step] for k, v in batched.items()}
        feed.update(fixed or {})
        parts.append(session.run(None, feed))
    return [np.concatenate([p[i] for p in parts], axis=0) for i in range(len(parts[0]))]
