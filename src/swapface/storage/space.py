"""Disk space: whether an error means the disk is full, and how much room is left where data lives."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DISK_FULL_TEXT = ("database or disk is full", "no space left on device", "disk full", "could not extend file",
                   "quota exceeded")


def is_disk_full(exc: BaseException) -> bool:
    """Whether an error (OS, SQLite or PostgreSQL, or one it was raised from) means the disk is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return True
        if any(text in str(current).lower() for text in _DISK_FULL_TEXT):
            return True
        current = current.__cause__ or current.__context__
    return False


def free_mb(path: Path) -> float | None:
    """Free space where ``path`` lives (or would live), in MB; None when it cannot be measured."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free / (1024 * 1024)
    except OSError:
        return None
