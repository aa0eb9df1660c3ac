"""Working copies in the service's scratch folder under concurrent requests."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from swapface.config import Settings
from swapface.storage.scratch import scratch_root, temp_dir


def test_working_folders_of_concurrent_threads_never_collide(tmp_path: Path) -> None:
    # each block removes the per-process folder when it is the last one out, while other threads are creating
    # theirs in it: a result download raced this way answered 503 (FileExistsError inside mkdir)
    settings = Settings(data_dir=tmp_path)

    def work(_: int) -> int:
        failed = 0
        for _ in range(300):
            try:
                with temp_dir(settings) as folder:
                    (folder / "copy").write_bytes(b"decrypted")
            except OSError:
                failed += 1
        return failed

    with ThreadPoolExecutor(max_workers=8) as pool:
        failures = sum(pool.map(work, range(8)))
    assert failures == 0  # 19 of 2400 blocks failed before
    assert not any(scratch_root(settings).iterdir())  # and every copy is gone
