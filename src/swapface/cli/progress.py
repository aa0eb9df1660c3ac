"""Progress on the terminal: a rich bar with frames/s and ETA, JSON lines for machines, or nothing."""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

from swapface.errors import InputError
from swapface.jobs.runner import Progress

MODES = ("bar", "json", "quiet")


class ProgressReporter:
    """Shows :class:`Progress` updates. ``bar``: a rich bar on stderr; ``json``: one JSON object per line
    on ``stream`` (stdout by default), at most every ``every_s`` seconds plus stage changes; ``quiet``: nothing."""

    def __init__(self, mode: str = "bar", *, stream: IO[str] | None = None, every_s: float = 0.5) -> None:
        if mode not in MODES:
            raise InputError(f"unknown progress mode {mode!r}; choose from {', '.join(MODES)}")
        self.mode = mode
        self.stream = stream
        self.every_s = every_s
        self._last = 0.0
        self._stage = ""
        self._bar: Any = None  # a rich Progress, created with the first update
        self._task: Any = None

    def __enter__(self) -> "ProgressReporter":
        return self

    def _start_bar(self) -> None:
        """The bar appears with the first update, so an input error is not preceded by an empty bar."""
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[fps]:>6.1f} frames/s"), TextColumn("ETA"), TimeRemainingColumn(),
                console=Console(file=self.stream or sys.stderr), transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("swapping", total=None, fps=0.0)

    def update(self, progress: Progress) -> None:
        """Show one update (called from the runner, possibly from a helper thread)."""
        if self.mode == "quiet":
            return
        if self.mode == "json":
            now = time.monotonic()
            if progress.stage == self._stage and now - self._last < self.every_s and progress.frames_done < progress.frames_total:
                return
            self._last, self._stage = now, progress.stage
            out = self.stream or sys.stdout
            out.write(json.dumps({"event": "progress", **progress.to_dict()}) + "\n")
            out.flush()
            return
        self._start_bar()
        assert self._bar is not None and self._task is not None
        label = {"processing": "swapping", "merging": "merging", "done": "done"}.get(progress.stage, progress.stage)
        self._bar.update(self._task, total=progress.frames_total, completed=progress.frames_done, fps=progress.fps,
                         description=label)

    def result(self, doc: dict) -> None:
        """The final summary line in JSON mode."""
        if self.mode == "json":
            out = self.stream or sys.stdout
            out.write(json.dumps({"event": "result", **doc}) + "\n")
            out.flush()

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
