"""C2PA manifests (c2pa-python): sign an output with an EDIT intent and a ``c2pa.edited`` action, read one back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from swapface.errors import InputError, JobError
from swapface.provenance.xmp import DIGITAL_SOURCE_TYPE

MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".mp4": "video/mp4", ".m4v": "video/mp4",
        ".mov": "video/quicktime", ".webp": "image/webp"}
SIGNABLE = {".jpg", ".jpeg", ".png", ".mp4", ".m4v"}


def _manifest() -> dict[str, Any]:
    from swapface import __version__

    return {
        "claim_generator_info": [{"name": "swapface", "version": __version__}],
        "title": "swapface output",
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.edited",
                            "digitalSourceType": DIGITAL_SOURCE_TYPE,
                            "softwareAgent": {"name": "swapface", "version": __version__},
                            "description": "faces replaced by a trained face-swap model",
                        }
                    ]
                },
            }
        ],
    }


def sign(path: Path, cert: Path, key: Path, alg: str = "es256", tsa_url: str | None = None) -> None:
    """Embed a signed C2PA manifest in ``path`` (JPEG, PNG, non-fragmented MP4), in place."""
    try:
        import c2pa
    except ImportError:
        raise JobError("C2PA signing is configured but c2pa-python is not installed (pip install 'swapface[c2pa]')",
                       code="c2pa_missing") from None

    suffix = path.suffix.lower()
    if suffix not in SIGNABLE:
        return
    try:
        chain, private = Path(cert).read_bytes(), Path(key).read_bytes()
    except OSError:
        raise InputError("the C2PA certificate or key file cannot be read (SWAPFACE_C2PA_CERT / _KEY)") from None
    tmp = path.with_name(f".{path.name}.c2pa-part{suffix}")
    try:
        info = c2pa.C2paSignerInfo(alg.encode(), chain, private, tsa_url.encode() if tsa_url else None)
        with c2pa.Signer.from_info(info) as signer, c2pa.Builder(_manifest()) as builder:
            builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
            with open(path, "rb") as src, open(tmp, "w+b") as dst:
                builder.sign(signer, MIME[suffix], src, dst)
        tmp.replace(path)
    except c2pa.C2paError as exc:
        raise JobError(f"C2PA signing failed ({type(exc).__name__}); check the signing certificate and key",
                       code="c2pa_failed") from None
    finally:
        tmp.unlink(missing_ok=True)


def read(path: Path) -> dict[str, Any] | None:
    """The C2PA state of a file: present, validation state, problems, and the actions' digital source types."""
    try:
        import c2pa
    except ImportError:
        return {"present": None, "validation_state": "unknown: install swapface[c2pa] to read C2PA manifests"}

    suffix = path.suffix.lower()
    if suffix not in MIME:
        return None
    try:
        with open(path, "rb") as f, c2pa.Reader(MIME[suffix], f) as reader:
            store = json.loads(reader.json())
            state = reader.get_validation_state()
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__ or "not found" in str(exc).lower():
            return None
        return {"present": True, "validation_state": "Invalid", "error": type(exc).__name__}
    active = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    types = []
    for assertion in active.get("assertions", []):
        if assertion.get("label", "").startswith("c2pa.actions"):
            types += [a.get("digitalSourceType") for a in assertion.get("data", {}).get("actions", [])
                      if a.get("digitalSourceType")]
    statuses = [s.get("code") for s in store.get("validation_status", [])]
    return {
        "present": True,
        "validation_state": state,
        "validation_status": statuses,
        "signer": active.get("signature_info", {}).get("common_name"),
        "issuer": active.get("signature_info", {}).get("issuer"),
        "digital_source_types": types,
    }
