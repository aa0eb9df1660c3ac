"""Bounds on what a request may make the service do before it is refused: JSON size and nesting depth.

JSON bodies (references to stored objects) are small, so they get their own limit, far below the upload
limit, and are read at most that far; the nesting depth is measured before parsing, so a deeply nested
document is a 422 instead of a RecursionError.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from swapface.errors import InputError

MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32


class JsonTooLarge(Exception):
    """A JSON body past :data:`MAX_JSON_BYTES`."""


async def read_limited(stream: AsyncIterator[bytes], limit: int = MAX_JSON_BYTES) -> bytes:
    """The whole body, or JsonTooLarge as soon as it passes ``limit`` bytes (it is never buffered further)."""
    parts, seen = [], 0
    async for block in stream:
        seen += len(block)
        if seen > limit:
            raise JsonTooLarge()
        parts.append(block)
    return b"".join(parts)


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in a JSON text (strings are skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def load_json(text: str | bytes, what: str, *, code: str = "bad_request", max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a small JSON document; InputError (422) when it is too large, too deep or not JSON."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{what} is not UTF-8 JSON", code=code) from None
    if len(text) > max_bytes:
        raise InputError(f"{what} is larger than {max_bytes // 1024} KB", code=code)
    if nesting_depth(text) > MAX_JSON_DEPTH:
        raise InputError(f"{what} nests deeper than {MAX_JSON_DEPTH} levels", code=code)
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise InputError(f"{what} is not valid JSON", code=code) from None
