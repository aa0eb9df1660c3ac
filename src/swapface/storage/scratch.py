"""Working copies (decrypted inputs, uploads in flight, outputs before publishing) in a folder the service owns.

Every process writes under ``<data dir>/tmp/<host>-<pid>/`` rather than the system temp folder, so a
decrypted copy never lands where nobody cleans up: each copy is removed when its block ends, and the
folders of processes that are gone (killed workers, crashed executor processes) are swept at start-up
and by the retention sweeper.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swapface.config import Settings

SCRATCH = "tmp"
ATTEMPTS = 10  # tries at a working folder while other threads' blocks end and remove the per-process folder


def scratch_root(settings: Settings) -> Path:
    """The folder holding every process's working copies."""
    return Path(settings.data_dir) / SCRATCH


def _own_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@contextlib.contextmanager
def temp_dir(settings: Settings, prefix: str = "swapface-") -> Iterator[Path]:
    """A private (0700) temporary folder under this process's scratch folder, removed when the block ends."""
    own = scratch_root(settings) / _own_name()
    for attempt in range(ATTEMPTS):
        try:
            own.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=own))
            break
        # another thread's block ended and removed the empty per-process folder: between our mkdir and mkdtemp
        # (not found), or inside mkdir, after it found the folder there and before it checked that it is one
        except (FileNotFoundError, FileExistsError):
            if attempt == ATTEMPTS - 1:
                raise
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(OSError):
            own.rmdir()  # only when empty: nothing of this process is left behind


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie — killed, not yet reaped — does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def sweep(settings: Settings, *, include_own: bool = False) -> int:
    """Remove the scratch folders of processes on this host that are gone; returns how many went.

    ``include_own`` also clears this process's folder (at start-up, before anything is in it: a restarted
    container reuses its process id)."""
    root = scratch_root(settings)
    if not root.is_dir():
        return 0
    host, removed = socket.gethostname(), 0
    for entry in root.iterdir():
        owner, _, pid = entry.name.rpartition("-")
        if owner != host or not pid.isdigit():
            continue
        mine = int(pid) == os.getpid()
        if (mine and include_own) or (not mine and not _alive(int(pid))):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed
