"""Tiny ONNX models with the exact input/output names, shapes and value ranges of each catalogue contract.

Their outputs are known functions of their inputs, so tests can compute what the wrappers around them
must produce. Weights are seeded; every builder writes a file and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def recognizer_weights(seed: int = 1) -> np.ndarray:
    """The 588×512 projection of the fake ArcFace (pooled 3×14×14 crop → 512)."""
    return np.random.default_rng(seed).standard_normal((588, 512)).astype(np.float32)


def recognizer(path: Path, seed: int = 1) -> Path:
    """ArcFace-shaped: ``input`` N×3×112×112 → N×512 = flatten(avgpool8(input)) · W (depends on the aligned crop)."""
    nodes = [
        helper.make_node("AveragePool", ["input"], ["p"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "W"], ["embedding"]),
    ]
    g = helper.make_graph(
        nodes, "arcface", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", 512])],
        [_const("W", recognizer_weights(seed))],
    )
    return _save(g, path)


def recognizer_expected(crops: np.ndarray, seed: int = 1) -> np.ndarray:
    """What :func:`recognizer` returns for aligned RGB uint8 crops (N×112×112×3), computed in numpy."""
    x = crops.astype(np.float32) / 127.5 - 1.0
    pooled = x.reshape(-1, 14, 8, 14, 8, 3).mean((2, 4)).transpose(0, 3, 1, 2).reshape(len(crops), -1)
    return pooled @ recognizer_weights(seed)


def emap_matrix(seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((512, 512)).astype(np.float32) / 16


SOURCE_GAIN = 3.0


def swapper(path: Path, size: int, *, batch: int | None = 1, tanh_range: bool = False, seed: int = 2) -> Path:
    """Swapper-shaped: ``target`` N×3×S×S, ``source`` N×512 → y = 0.5·target + 3·source[:, :3] (per channel).

    With ``tanh_range`` the same is returned as 2·y − 1 (for contracts de-normalising y·0.5 + 0.5). A
    512×512 emap is the graph's last initializer, as in inswapper.
    """
    n = batch if batch is not None else "n"
    nodes = [
        helper.make_node("Mul", ["target", "half"], ["t"]),
        helper.make_node("Slice", ["source", "s0", "s3", "ax1"], ["s"]),
        helper.make_node("Reshape", ["s", "shape"], ["s4"]),
        helper.make_node("Mul", ["s4", "tenth"], ["s4t"]),
        helper.make_node("Add", ["t", "s4t"], ["y" if tanh_range else "output"]),
    ]
    inits = [
        _const("half", np.float32(0.5)), _const("tenth", np.float32(SOURCE_GAIN)), _const("s0", np.array([0], np.int64)),
        _const("s3", np.array([3], np.int64)), _const("ax1", np.array([1], np.int64)),
        _const("shape", np.array([-1, 3, 1, 1], np.int64)),
    ]
    if tanh_range:
        nodes += [helper.make_node("Mul", ["y", "two"], ["y2"]), helper.make_node("Sub", ["y2", "one"], ["output"])]
        inits += [_const("two", np.float32(2.0)), _const("one", np.float32(1.0))]
    inits.append(_const("emap", emap_matrix(seed)))
    g = helper.make_graph(
        nodes, "swapper",
        [helper.make_tensor_value_info("target", TensorProto.FLOAT, [n, 3, size, size]),
         helper.make_tensor_value_info("source", TensorProto.FLOAT, [n, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [n, 3, size, size])], inits,
    )
    return _save(g, path)


def converter_matrix(seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((512, 512)).astype(np.float32)


def converter(path: Path, seed: int = 3) -> Path:
    """Embedding-converter-shaped: ``input`` 1×512 → 1×512 = input · M."""
    g = helper.make_graph(
        [helper.make_node("MatMul", ["input", "M"], ["output"])], "converter",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 512])], [_const("M", converter_matrix(seed))],
    )
    return _save(g, path)


def _constant_heads(inputs_name: str, heads: dict[str, np.ndarray], size: int | None) -> onnx.GraphProto:
    """A graph whose outputs are fixed arrays (plus 0 · mean(input), so the input is really consumed)."""
    nodes = [helper.make_node("ReduceMean", [inputs_name], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"])]
    inits = [_const("zero", np.float32(0.0))]
    outs = []
    for name, value in heads.items():
        nodes.append(helper.make_node("Add", [f"{name}_c", "z"], [name]))
        inits.append(_const(f"{name}_c", value.astype(np.float32)))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    dims = [1, 3, size, size] if size else [1, 3, "h", "w"]
    return helper.make_graph(nodes, "detector", [helper.make_tensor_value_info(inputs_name, TensorProto.FLOAT, dims)],
                             outs, inits)


def scrfd(path: Path, face: dict, size: int = 640) -> Path:
    """SCRFD/RetinaFace-shaped (9 heads, strides 8/16/32, 2 anchors): one face at the anchor ``face`` names.

    ``face``: stride, row, col, anchor, distances (4, in strides), kps (10, in strides), score.
    """
    heads: dict[str, np.ndarray] = {}
    for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
        for stride in (8, 16, 32):
            cells = size // stride
            arr = np.zeros((cells * cells * 2, width), np.float32)
            if stride == face["stride"]:
                idx = (face["row"] * cells + face["col"]) * 2 + face["anchor"]
                arr[idx] = {"score": [face["score"]], "bbox": face["distances"], "kps": face["kps"]}[kind]
            heads[f"{kind}_{stride}"] = arr
    return _save(_constant_heads("input", heads, size), path)


def yunet(path: Path, face: dict, size: int = 640) -> Path:
    """YuNet-shaped (12 named heads, one anchor per cell): one face at ``face`` (stride, row, col, cls, obj, bbox, kps)."""
    heads: dict[str, np.ndarray] = {}
    for kind, width in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10)):
        for stride in (8, 16, 32):
            cells = size // stride
            arr = np.zeros((1, cells * cells, width), np.float32)
            if stride == face["stride"]:
                arr[0, face["row"] * cells + face["col"]] = face[kind] if width > 1 else [face[kind]]
            heads[f"{kind}_{stride}"] = arr
    return _save(_constant_heads("input", heads, size), path)


def enhancer(path: Path, *, codeformer: bool = False) -> Path:
    """GFPGAN-shaped: ``input`` 1×3×512×512 in [−1, 1] → output = 0.5·input (CodeFormer: × weight instead)."""
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 512, 512])]
    if codeformer:
        inputs.append(helper.make_tensor_value_info("weight", TensorProto.DOUBLE, [1]))
        nodes = [helper.make_node("Cast", ["weight"], ["w32"], to=TensorProto.FLOAT),
                 helper.make_node("Mul", ["input", "w32"], ["output"])]
        inits = []
    else:
        nodes = [helper.make_node("Mul", ["input", "half"], ["output"])]
        inits = [_const("half", np.float32(0.5))]
    g = helper.make_graph(nodes, "enhancer", inputs,
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 512, 512])], inits)
    return _save(g, path)


def upscaler(path: Path, scale: int) -> Path:
    """Real-ESRGAN-shaped: N×3×H×W → N×3×sH×sW = nearest-upscale(3×3 box blur(input)) (zero padded conv)."""
    kernel = np.full((3, 1, 3, 3), 1 / 9, np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "k"], ["b"], pads=[1, 1, 1, 1], group=3),
        helper.make_node("Resize", ["b", "", "scales"], ["output"], mode="nearest"),
    ]
    g = helper.make_graph(
        nodes, "upscaler", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3, "H", "W"])],
        [_const("k", kernel), _const("scales", np.array([1, 1, scale, scale], np.float32))],
    )
    return _save(g, path)


def occluder(path: Path) -> Path:
    """XSeg-shaped: N×256×256×3 (BGR / 255) → N×256×256×1 = mean over channels (bright = visible face)."""
    g = helper.make_graph(
        [helper.make_node("ReduceMean", ["input", "axes"], ["output"], keepdims=1)], "xseg",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 256, 256, 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 256, 256, 1])],
        [_const("axes", np.array([3], np.int64))],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def parser(path: Path) -> Path:
    """BiSeNet-shaped: N×3×512×512 → N×19×512×512 logits; class 1 (skin) wins on bright pixels, class 0 on dark."""
    w = np.zeros((19, 3, 1, 1), np.float32)
    w[1] = 1.0  # sum of normalised channels: positive on bright pixels
    b = np.full(19, -50.0, np.float32)
    b[0], b[1] = 0.0, 0.0
    g = helper.make_graph(
        [helper.make_node("Conv", ["input", "w", "b"], ["output"])], "bisenet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, 512, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 19, 512, 512])],
        [_const("w", w), _const("b", b)],
    )
    return _save(g, path)


def crop_pattern(size: int) -> np.ndarray:
    """RGB over an aligned crop: R = 3u/S − 1, G = 3v/S − 1, B = 0.5 — linear (3 × 255 levels per crop width)
    for u, v in [S/3, 2S/3], so a pasted pixel tells which crop coordinate landed on it."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return np.stack([3 * u - 1, 3 * v - 1, np.full_like(u, 0.5)])  # 3×S×S


def pattern_swapper(path: Path, size: int, *, tanh_range: bool = False, source_shape: tuple[int, ...] = (1, 512)) -> Path:
    """Swapper-shaped, output = :func:`crop_pattern` (as 2p − 1 with ``tanh_range``) + 0·inputs: the pasted pixels
    show exactly which crop coordinate landed where, so a wrong template or alignment moves them."""
    p = crop_pattern(size)[None]
    if tanh_range:
        p = 2 * p - 1
    nodes = [
        helper.make_node("ReduceMean", ["target"], ["tm"], keepdims=0),
        helper.make_node("ReduceMean", ["source"], ["sm"], keepdims=0),
        helper.make_node("Add", ["tm", "sm"], ["both"]),
        helper.make_node("Mul", ["both", "zero"], ["z"]),
        helper.make_node("Add", ["pattern", "z"], ["output"]),
    ]
    g = helper.make_graph(
        nodes, "pattern_swapper",
        [helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, size, size]),
         helper.make_tensor_value_info("source", TensorProto.FLOAT, list(source_shape))],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, size, size])],
        [_const("pattern", p.astype(np.float32)), _const("zero", np.float32(0.0)), _const("emap", emap_matrix())],
    )
    return _save(g, path)


def pattern_enhancer(path: Path, size: int = 512) -> Path:
    """Face-restorer-shaped (input in [−1, 1]), output = 2·crop_pattern − 1 + 0·input."""
    p = 2 * crop_pattern(size)[None] - 1
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Add", ["pattern", "z"], ["output"])]
    g = helper.make_graph(nodes, "pattern_enhancer",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, size, size])],
                          [_const("pattern", p.astype(np.float32)), _const("zero", np.float32(0.0))])
    return _save(g, path)


UPSCALER_GAINS = (1.0, 0.6, 0.3)  # per input channel, in the model's channel order (R, G, B)


def channel_upscaler(path: Path, scale: int) -> Path:
    """Real-ESRGAN-shaped, channel c of the output = UPSCALER_GAINS[c] · channel c of the input, nearest-upscaled:
    a swapped channel order or a wrong input scale gives other colours."""
    w = np.zeros((3, 3, 1, 1), np.float32)
    for c, g in enumerate(UPSCALER_GAINS):
        w[c, c] = g
    nodes = [helper.make_node("Conv", ["input", "w"], ["b"]),
             helper.make_node("Resize", ["b", "", "scales"], ["output"], mode="nearest")]
    g = helper.make_graph(
        nodes, "channel_upscaler", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3, "H", "W"])],
        [_const("w", w), _const("scales", np.array([1, 1, scale, scale], np.float32))],
    )
    return _save(g, path)


def red_parser(path: Path) -> Path:
    """BiSeNet-shaped: class 1 (skin) logit = input channel 0 (R after ImageNet normalisation), every other class
    0 except class 0 at 0 too (argmax ties go to class 0): skin exactly where (r / 255 − 0.485) / 0.229 > 0."""
    w = np.zeros((19, 3, 1, 1), np.float32)
    w[1, 0] = 1.0
    b = np.full(19, -50.0, np.float32)
    b[0] = 0.0
    b[1] = 0.0
    g = helper.make_graph(
        [helper.make_node("Conv", ["input", "w", "b"], ["output"])], "red_parser",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, 512, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 19, 512, 512])],
        [_const("w", w), _const("b", b)],
    )
    return _save(g, path)


def scrfd_faces(path: Path, faces: list[dict], size: int = 640) -> Path:
    """Like :func:`scrfd` with several faces (each: stride, row, col, anchor, distances, kps, score)."""
    heads: dict[str, np.ndarray] = {}
    for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
        for stride in (8, 16, 32):
            cells = size // stride
            arr = np.zeros((cells * cells * 2, width), np.float32)
            for face in faces:
                if stride == face["stride"]:
                    idx = (face["row"] * cells + face["col"]) * 2 + face["anchor"]
                    arr[idx] = {"score": [face["score"]], "bbox": face["distances"], "kps": face["kps"]}[kind]
            heads[f"{kind}_{stride}"] = arr
    return _save(_constant_heads("input", heads, size), path)


def identity_swapper(path: Path, size: int = 128) -> Path:
    """inswapper-shaped, output = target + 0·source: a swapper that keeps the target's identity."""
    nodes = [helper.make_node("ReduceMean", ["source"], ["sm"], keepdims=0),
             helper.make_node("Mul", ["sm", "zero"], ["z"]),
             helper.make_node("Add", ["target", "z"], ["output"])]
    g = helper.make_graph(nodes, "identity_swapper",
                          [helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, size, size]),
                           helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 512])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, size, size])],
                          [_const("zero", np.float32(0.0)), _const("emap", emap_matrix())])
    return _save(g, path)


def constant_recognizer(path: Path) -> Path:
    """ArcFace-shaped, the same embedding for every face (a broken export)."""
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Add", ["e", "z"], ["embedding"])]
    g = helper.make_graph(nodes, "constant_recognizer",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, 112, 112])],
                          [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 512])],
                          [_const("zero", np.float32(0.0)), _const("e", np.ones((1, 512), np.float32))])
    return _save(g, path)


def yolo_face(path: Path, rows: list[list[float]], size: int = 640) -> Path:
    """YOLOv8-face-shaped: one output 1×20×8400; ``rows`` (20 values each: cx, cy, w, h, score, 5 × (x, y, vis))
    fill the first anchors, the rest score 0."""
    anchors = sum((size // s) ** 2 for s in (8, 16, 32))
    head = np.zeros((1, 20, anchors), np.float32)
    for i, row in enumerate(rows):
        head[0, :, i] = row
    return _save(_constant_heads("input", {"output0": head}, size), path)


def two_output_restorer(path: Path) -> Path:
    """CodeFormer-shaped with its inputs in the other order (``weight`` first) and a second output:
    output 0 = weight · input, output 1 = a constant (what a wrapper reading the wrong output would show)."""
    nodes = [helper.make_node("Cast", ["weight"], ["w32"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["input", "w32"], ["output"]),
             helper.make_node("Mul", ["input", "zero"], ["z"]),
             helper.make_node("Add", ["z", "one"], ["extra"])]
    g = helper.make_graph(nodes, "two_outputs",
                          [helper.make_tensor_value_info("weight", TensorProto.DOUBLE, [1]),
                           helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 512, 512])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 512, 512]),
                           helper.make_tensor_value_info("extra", TensorProto.FLOAT, [1, 3, 512, 512])],
                          [_const("zero", np.float32(0.0)), _const("one", np.float32(1.0))])
    return _save(g, path)


def fan68(path: Path, points: np.ndarray, peak: float) -> Path:
    """2DFAN4-shaped: ``input`` N×3×256×256 → fixed 68 points (64-px heatmap coordinates, + a third column)
    and heatmaps whose every peak is ``peak`` (+ 0·input)."""
    pts = np.concatenate([np.asarray(points, np.float32).reshape(1, 68, 2), np.ones((1, 68, 1), np.float32)], 2)
    heat = np.zeros((1, 68, 64, 64), np.float32)
    heat[:, :, 10, 10] = peak
    return _save(_constant_heads("input", {"landmarks": pts, "heatmaps": heat}, 256), path)


def probing_fan68(path: Path, probes: np.ndarray, base: np.ndarray, gain: float, peaks: np.ndarray) -> Path:
    """2DFAN4-shaped, with points that read the input: landmark k's x (64-px heatmap coordinates) is
    ``base[k, 0] + gain · input[0, c, v, u]`` for ``probes[k] = (c, v, u)``, its y ``base[k, 1]``; heatmap k
    peaks at ``peaks[k]``. A wrong crop, colour order, scale or contrast step moves the points."""
    c, v, u = np.asarray(probes, np.int64).T
    flat = (c * 256 + v) * 256 + u
    heat = np.zeros((1, 68, 64, 64), np.float32)
    heat[0, np.arange(68), 5, 7] = np.asarray(peaks, np.float32)
    nodes = [helper.make_node("Reshape", ["input", "flat_shape"], ["flat"]),
             helper.make_node("Gather", ["flat", "probes"], ["read"], axis=1),
             helper.make_node("Mul", ["read", "gain"], ["scaled"]),
             helper.make_node("Reshape", ["scaled", "column"], ["dx"]),
             helper.make_node("Add", ["dx", "base_x"], ["x"]),
             helper.make_node("Concat", ["x", "base_y", "ones"], ["landmarks"], axis=2),
             helper.make_node("Identity", ["heat"], ["heatmaps"])]
    g = helper.make_graph(
        nodes, "probing_fan68", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 256, 256])],
        [helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, [1, 68, 3]),
         helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, [1, 68, 64, 64])],
        [_const("flat_shape", np.array([1, -1], np.int64)), _const("probes", flat), _const("gain", np.float32(gain)),
         _const("column", np.array([1, 68, 1], np.int64)),
         _const("base_x", np.asarray(base, np.float32)[:, 0].reshape(1, 68, 1)),
         _const("base_y", np.asarray(base, np.float32)[:, 1].reshape(1, 68, 1)),
         _const("ones", np.ones((1, 68, 1), np.float32)), _const("heat", heat)],
    )
    return _save(g, path)
