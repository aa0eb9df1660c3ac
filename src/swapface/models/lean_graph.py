"""An equivalent, faster form of the MediaPipe graphs (BlazeFace, Face Mesh) for ONNX Runtime's CPU kernels.

ONNX Runtime runs convolutions in a channel-blocked layout (NCHWc: 16 channels a block with AVX-512, 8 with
AVX2), but a channel ``Pad`` and a per-channel ``PRelu`` have no blocked kernels: at each one the tensors leave
the layout and come back, and the Pad, Add and activation run as separate passes over memory. In BlazeFace's
residual blocks (each shortcut zero-padded in channels, 24 → 28, ...) that was 40 % of the detector's time on
a 768 px pass; in Face Mesh (a PRelu after every block) two thirds of its time. The rewrite keeps the
arithmetic and changes the ops:

* every feature tensor carries zero channels up to a multiple of ``BLOCK`` (the blocked layout stores them
  anyway), so most channel pads vanish, and the few left become 1×1 convolutions with identity weights, which
  the layout fuses with their Add and Relu;
* ``PRelu(x) = s·x + (1 − s)·Relu(x)``, the two products as depthwise 1×1 convolutions.

The added channels are exactly zero and every added weight multiplies only them, so outputs agree with the
original's to float rounding; each rewrite is checked against the original on a probe before it is used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

BLOCK = 16  # channel multiple the feature tensors are widened to (ONNX Runtime's NCHWc block with AVX-512)
FEATURE_OPS = frozenset({"Conv", "Relu", "Add", "MaxPool", "Pad"})  # ops that carry feature channels on
PROBE_TOLERANCE = 1e-4  # largest difference from the original's outputs, relative to each output's range
REWRITE_VERSION = 1  # part of the cache key: a changed rewrite never reads an old one's files

log = logging.getLogger(__name__)


class UnsupportedGraph(ValueError):
    """The graph is not built the way this rewrite understands; the original is used instead."""


def _widen(channels: int) -> int:
    return -(-channels // BLOCK) * BLOCK


def constant_folded(path: Path) -> Any:
    """The model with its constant subgraphs folded (pad widths become plain initializers), as ONNX Runtime's
    basic graph optimisation leaves it."""
    import onnx

    from swapface.models.session import onnx_runtime

    ort = onnx_runtime()
    with tempfile.TemporaryDirectory() as folder:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.optimized_model_filepath = str(Path(folder) / "folded.onnx")
        opts.log_severity_level = 3
        ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        return onnx.load(opts.optimized_model_filepath)


def prelu_as_convolutions(model: Any) -> Any:
    """``model`` with each per-channel ``PRelu(x)`` written ``s·x + (1 − s)·Relu(x)``: a Relu, two depthwise 1×1
    convolutions and an Add, which the blocked layout runs without leaving it; raises :class:`UnsupportedGraph`."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    nodes, added = [], []
    for node in graph.node:
        if node.op_type != "PRelu":
            nodes.append(node)
            continue
        slope = weights.get(node.input[1])
        if slope is None or slope.ndim not in (1, 3) or (slope.ndim == 3 and slope.shape[1:] != (1, 1)):
            raise UnsupportedGraph(f"{node.name}: a PRelu whose slope is not one constant per channel")
        slope = slope.reshape(-1, 1, 1, 1).astype(np.float32)
        x, y = node.input[0], node.output[0]
        added += [numpy_helper.from_array(slope, f"{y}::slope"), numpy_helper.from_array(1 - slope, f"{y}::rest")]
        nodes += [
            helper.make_node("Relu", [x], [f"{y}::relu"]),
            helper.make_node("Conv", [x, f"{y}::slope"], [f"{y}::sloped"], group=len(slope), kernel_shape=[1, 1]),
            helper.make_node("Conv", [f"{y}::relu", f"{y}::rest"], [f"{y}::rested"], group=len(slope), kernel_shape=[1, 1]),
            helper.make_node("Add", [f"{y}::rested", f"{y}::sloped"], [y]),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(added)
    return model


def widened(model: Any) -> Any:
    """``model`` (constant-folded) with its feature channels widened to multiples of ``BLOCK`` and its channel
    pads removed or turned into identity convolutions; raises :class:`UnsupportedGraph`."""
    from onnx import numpy_helper

    graph = model.graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    consumers: dict[str, list[Any]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    channels: dict[str, int] = {}  # feature tensor → its true channel count (widened ones only)
    replaced: dict[str, np.ndarray] = {}
    renamed: dict[str, str] = {}
    nodes = []
    for node in graph.node:
        inputs = [renamed.get(name, name) for name in node.input]
        if node.op_type == "Conv":
            nodes.append(_widened_conv(node, inputs, weights, consumers, channels, replaced))
        elif node.op_type == "Pad":
            pad = _widened_pad(node, inputs, weights, channels, replaced, renamed)
            if pad is not None:
                nodes.append(pad)
        else:
            if node.op_type in FEATURE_OPS and any(name in channels for name in inputs):
                widths = [channels[name] for name in inputs if name in channels]
                if node.op_type == "Add" and (len(widths) != len(inputs) or len({_widen(w) for w in widths}) != 1):
                    raise UnsupportedGraph(f"{node.name}: adds tensors of different widths")
                channels[node.output[0]] = max(widths)  # a renamed pad's zero channels are the widening's
            elif any(name in channels for name in inputs):
                raise UnsupportedGraph(f"{node.name}: {node.op_type} reads widened channels")
            del node.input[:]
            node.input.extend(inputs)
            nodes.append(node)
    if any(out.name in channels or out.name in renamed for out in graph.output):
        raise UnsupportedGraph("a graph output is a widened feature tensor")
    del graph.node[:]
    graph.node.extend(nodes)
    read = {name for node in nodes for name in node.input}
    kept = [i for i in graph.initializer if i.name in read and i.name not in replaced]
    del graph.initializer[:]
    graph.initializer.extend(kept + [numpy_helper.from_array(v, k) for k, v in replaced.items()])
    return model


def _widened_conv(node: Any, inputs: list[str], weights: dict[str, np.ndarray], consumers: dict[str, list[Any]],
                  channels: dict[str, int], replaced: dict[str, np.ndarray]) -> Any:
    """A Conv reading and writing widened channels: zero rows for the added outputs (none for a head, whose
    outputs the post-processing reads), zero columns for the added inputs."""
    if inputs[1] not in weights or (len(inputs) > 2 and inputs[2] not in weights):
        raise UnsupportedGraph(f"{node.name}: weights are not constants")
    weight = weights[inputs[1]]
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    out_c = weight.shape[0]
    head = all(c.op_type not in FEATURE_OPS for c in consumers[node.output[0]])
    new_out = out_c if head else _widen(out_c)
    wide_in = inputs[0] in channels
    if group == 1:
        new_in = _widen(weight.shape[1]) if wide_in else weight.shape[1]
        if wide_in and channels[inputs[0]] != weight.shape[1]:
            raise UnsupportedGraph(f"{node.name}: input channels do not match")
        grown = np.zeros((new_out, new_in) + weight.shape[2:], weight.dtype)
        grown[:out_c, : weight.shape[1]] = weight
    elif group == out_c and weight.shape[1] == 1 and not head and (not wide_in or channels[inputs[0]] == out_c):
        grown = np.zeros((new_out,) + weight.shape[1:], weight.dtype)
        grown[:out_c] = weight
        for attribute in node.attribute:
            if attribute.name == "group":
                attribute.i = new_out
    else:
        raise UnsupportedGraph(f"{node.name}: grouped convolution of another kind")
    weight_name = f"{node.output[0]}::weight"
    replaced[weight_name] = grown
    del node.input[:]
    node.input.extend([inputs[0], weight_name])
    if len(inputs) > 2:
        bias = np.zeros(new_out, weights[inputs[2]].dtype)
        bias[:out_c] = weights[inputs[2]]
        replaced[f"{node.output[0]}::bias"] = bias
        node.input.append(f"{node.output[0]}::bias")
    if not head:
        channels[node.output[0]] = out_c
    return node


def _widened_pad(node: Any, inputs: list[str], weights: dict[str, np.ndarray], channels: dict[str, int],
                 replaced: dict[str, np.ndarray], renamed: dict[str, str]) -> Any | None:
    """A zero pad of channels at their end, on widened tensors: gone where the widths already agree, else a
    1×1 identity convolution; a pad of nothing is dropped, one of rows and columns kept as it is."""
    from onnx import helper

    if len(inputs) < 2 or inputs[1] not in weights:
        raise UnsupportedGraph(f"{node.name}: pad widths are not constants")
    if len(inputs) > 2 and inputs[2] in weights and np.any(weights[inputs[2]]):
        raise UnsupportedGraph(f"{node.name}: pads with a value other than zero")
    if any(a.name == "mode" and a.s not in (b"constant", b"") for a in node.attribute):
        raise UnsupportedGraph(f"{node.name}: not a constant pad")
    pads = np.asarray(weights[inputs[1]]).reshape(-1)
    if not pads.any():
        renamed[node.output[0]] = inputs[0]
        return None
    if pads.size != 8 or pads[[0, 4]].any():
        raise UnsupportedGraph(f"{node.name}: pads the batch")
    if not pads[[1, 5]].any():  # rows and columns only (a stride-2 convolution's 'same' padding): zeros stay zeros
        if inputs[0] in channels:
            channels[node.output[0]] = channels[inputs[0]]
        node_inputs = list(inputs)
        del node.input[:]
        node.input.extend(node_inputs)
        return node
    if pads[[1, 2, 3, 6, 7]].any() or inputs[0] not in channels:
        raise UnsupportedGraph(f"{node.name}: pads more than channels at their end")
    before = channels[inputs[0]]
    after = before + int(pads[5])
    channels[node.output[0]] = after
    if _widen(after) == _widen(before):
        renamed[node.output[0]] = inputs[0]
        return None
    identity = np.zeros((_widen(after), _widen(before), 1, 1), np.float32)
    identity[np.arange(before), np.arange(before)] = 1.0
    replaced[f"{node.output[0]}::identity"] = identity
    return helper.make_node("Conv", [inputs[0], f"{node.output[0]}::identity"], [node.output[0]],
                            kernel_shape=[1, 1], name=f"{node.name}::as_conv")


@lru_cache(maxsize=8)
def lean_model_file(path: Path, cache_dir: Path) -> Path | bytes:
    """What ONNX Runtime should load for ``path``: its rewrite, made once and cached in ``cache_dir/lean`` (the
    rewrite needs the ``onnx`` package, whose import alone takes a second), its bytes where the cache cannot be
    written (a read-only models folder), or ``path`` itself where the graph is not one the rewrite understands."""
    from swapface.models.session import onnx_runtime

    stat = path.stat()
    version = onnx_runtime().__version__
    key = hashlib.sha256(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}:{version}:{BLOCK}:{REWRITE_VERSION}".encode())
    out = cache_dir / "lean" / f"{path.stem}.{key.hexdigest()[:16]}.onnx"
    refused = out.with_suffix(".unsupported")
    if out.is_file():
        return out
    if refused.is_file():
        return path
    lean = lean_model(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if lean is None:
            refused.touch()
            return path
        tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
        tmp.write_bytes(lean)
        os.replace(tmp, out)
    except OSError as exc:
        log.info("the built-in model's faster graph could not be cached; it is rebuilt in each process",
                 extra={"model": path.stem, "error": type(exc).__name__})
        return path if lean is None else lean
    return out


def lean_model(path: Path) -> bytes | None:
    """The rewritten model as bytes, or None where the graph is not one this rewrite understands or the rewrite
    does not give the original's outputs on a probe input."""
    try:
        lean = widened(prelu_as_convolutions(constant_folded(path))).SerializeToString()
    except UnsupportedGraph:
        return None
    return lean if agrees(path, lean) else None


def agrees(path: Path, lean: bytes) -> bool:
    """Whether the rewritten model gives the original's outputs (within ``PROBE_TOLERANCE`` of each output's
    range) on a random image (0..255, the input's own size where it is fixed, else 128 × 128)."""
    from swapface.models.session import onnx_runtime

    ort = onnx_runtime()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    original = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    rewritten = ort.InferenceSession(lean, sess_options=opts, providers=["CPUExecutionProvider"])
    first = original.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else (1 if i == 0 else 128) for i, d in enumerate(first.shape)]
    probe = {first.name: np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)}
    for a, b in zip(original.run(None, probe), rewritten.run(None, probe)):
        scale = max(float(np.abs(a).max()), 1e-6)
        if a.shape != b.shape or not float(np.abs(a - b).max()) <= PROBE_TOLERANCE * scale:
            return False
    return True
