"""Structured JSON logs that refuse forbidden content.

A log line carries job ids, hashes, counts, codes and timings. The :class:`RedactingFilter` removes,
whatever a caller passes: file names and paths, storage URIs and URLs (signed ones included),
API keys, bearer tokens, webhook secrets and other key-like strings, and arrays (embeddings,
landmarks, pixels, bytes). Tracebacks are reduced to the exception's type, because their frames
name files. Route paths of this service (``/v1/...``) stay, without their query strings.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any

REDACTED = "[redacted]"
_STD_ATTRS = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message", "asctime", "taskName", "color_message"}  # uvicorn's ANSI-coloured copy of the message
_FORBIDDEN_KEYS = re.compile(
    r"path|file|name$|filename|dir|url|uri|secret|token|password|passwd|authorization|api_?key|bearer|"
    r"embedding|landmark|keypoint|pixel|image|frame_data|bytes|body|cookie|signature|credential",
    re.IGNORECASE,
)
_ALLOWED_KEYS = {"job_id", "api_key_id", "key_id", "webhook_id", "request_id", "chunk", "attempt", "status",
                 "status_code", "code", "error", "event", "state", "frames", "duration_ms", "method", "route",
                 "sha256", "hash", "object_hash", "count", "bytes_total", "kind"}
_MEDIA_EXT = (r"jpe?g|png|webp|gif|bmp|tiff?|heic|avif|mp4|m4v|mov|mkv|webm|avi|wmv|flv|mpe?g|ts|wav|mp3|aac|"
              r"m4a|flac|ogg|npy|npz|json|jsonl|txt|csv|yaml|yml|onnx|pem|key|crt|db|sqlite|zip|tar|gz|bin|part")
_PATTERNS = [
    re.compile(r"\b[a-z][a-z0-9+.-]{1,15}://[^\s\"'<>]*", re.IGNORECASE),  # URIs and URLs (gs://, https://, file://)
    re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]+"),  # webhook secrets
    re.compile(r"\b(?:Bearer|Basic)\s+[^\s\"',;]+", re.IGNORECASE),  # authorization values
    re.compile(r"\b(?:sk|swf|sf|key|api)[_-][A-Za-z0-9_-]{8,}", re.IGNORECASE),  # API-key-looking tokens
    re.compile(r"(?:(?<=\s)|(?<=^)|(?<=[\"'=(\[]))(?:~|\.{1,2})?(?:/[^\s/\"'<>]+)+/?", re.MULTILINE),  # POSIX paths
    re.compile(r"\b[A-Za-z]:\\[^\s\"'<>]*"),  # Windows paths
    re.compile(r"(?<![\w/.-])[\w.-]+(?:/[\w.-]+)+/?"),  # relative paths (a/b/c)
    re.compile(rf"[^\s\"'<>/\\]+\.(?:{_MEDIA_EXT})\b", re.IGNORECASE),  # bare file names
]
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{24,}={0,2}(?![A-Za-z0-9+/=_-])")
_ID = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f]{64}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[a-z_.-]+)$")
_ROUTE = re.compile(r"(?<![\w/.])/(?:v1|healthz|readyz|metrics|openapi\.json|docs)(?:/[A-Za-z0-9_.-]*)*(?:\?\S*)?")


def _keep_routes(text: str) -> tuple[str, list[str]]:
    routes: list[str] = []

    def hold(m: re.Match[str]) -> str:
        routes.append(m.group(0).split("?", 1)[0])
        return f"\x00{len(routes) - 1}\x00"

    return _ROUTE.sub(hold, text), routes


def scrub_text(text: str) -> str:
    """The text with paths, file names, URIs, secrets and key-like tokens replaced by ``[redacted]``."""
    text, routes = _keep_routes(text)
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    # long key-like tokens (API keys, KEKs, base64 secrets); job ids (uuid, hex) and hashes are kept
    text = _TOKEN.sub(lambda m: m.group(0) if _ID.match(m.group(0)) else REDACTED, text)
    return re.sub(r"\x00(\d+)\x00", lambda m: routes[int(m.group(1))], text)


def scrub_value(key: str, value: Any) -> Any:
    """A log field made safe: forbidden keys and arrays removed, strings scrubbed, numbers kept."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if key not in _ALLOWED_KEYS and _FORBIDDEN_KEYS.search(key):
        return REDACTED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, (bytes, bytearray, memoryview)) or hasattr(value, "__array__"):
        return REDACTED  # pixels, embeddings, landmarks, raw bytes
    if isinstance(value, Mapping):
        return {str(k): scrub_value(str(k), v) for k, v in list(value.items())[:32]}
    if isinstance(value, Sequence):
        if len(value) > 8 or any(isinstance(v, (int, float)) for v in value):
            return REDACTED  # numeric vectors are embeddings or points
        return [scrub_value(key, v) for v in value]
    return scrub_text(str(value))


class RedactingFilter(logging.Filter):
    """Rewrites every record so that nothing forbidden reaches a handler (attach to handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not leak its arguments
            message = str(record.msg)
        record.msg, record.args = scrub_text(message), None
        if record.exc_info and record.exc_info[0] is not None:
            record.__dict__["exc_type"] = record.exc_info[0].__name__
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        for key in [k for k in vars(record) if k not in _STD_ATTRS]:
            record.__dict__[key] = scrub_value(key, record.__dict__[key])
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                doc[key] = value
        return json.dumps(doc, default=lambda v: REDACTED, ensure_ascii=False)


def json_handler(stream: IO[str] | None = None, level: int | str = logging.INFO) -> logging.Handler:
    """A stream handler writing redacted JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setLevel(level)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    return handler


LOGGERS = ("swapface", "uvicorn", "uvicorn.error", "uvicorn.access", "fastapi", "sqlalchemy", "httpx", "ray")


def configure_logging(level: int | str = logging.INFO, stream: IO[str] | None = None) -> logging.Handler:
    """Route the root logger and the service's libraries through one redacting JSON handler."""
    handler = json_handler(stream, level)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_swapface_json", False):
            root.removeHandler(existing)
    handler._swapface_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in LOGGERS[1:]:
        lib = logging.getLogger(name)
        lib.handlers = [h for h in lib.handlers if not isinstance(h, logging.StreamHandler)]
        lib.propagate = True
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)  # SQL parameters would carry stored values
    return handler
