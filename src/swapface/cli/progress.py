"""Progress on the terminal: a rich bar with the stage, frames/s and ETA, JSON lines for machines, or nothing.

The rate counts from the first swapped frame, so model loading and the source analysis (the warm-up)
neither drag the frames/s down nor inflate the ETA.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

from swapface.errors import InputError
from swapface.jobs.runner import Progress

MODES = ("bar", "json", "quiet")
STAGE_LABELS = {"starting": "loading models, analysing the source", "processing": "swapping", "merging": "merging",
                "done": "done"}


class Rate:
    """Frames per second since the first frame done in this run, and the time left at that rate."""

    def __init__(self) -> None:
        self._start: tuple[float, int] | None = None
        self.fps = 0.0
        self.eta: float | None = None

    def update(self, done: int, total: int, reused: int, now: float) -> None:
        if self._start is None:
            if done > reused:
                self._start = (now, done)
            return
        t0, f0 = self._start
        if now - t0 > 0.2 and done > f0:
            self.fps = (done - f0) / (now - t0)
            self.eta = max(total - done, 0) / self.fps


def stage_of(progress: Progress, rate: Rate) -> str:
    """What the run is doing now, in words."""
    if progress.stage == "processing" and rate.fps == 0.0 and progress.frames_done < progress.frames_total:
        return STAGE_LABELS["starting"] if progress.frames_done == 0 else STAGE_LABELS["processing"]
    return STAGE_LABELS.get(progress.stage, progress.stage)


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA --:--"
    seconds = round(seconds)
    return f"ETA {seconds // 60:d}:{seconds % 60:02d}" if seconds < 3600 else f"ETA {seconds // 3600}h{seconds % 3600 // 60:02d}"


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
        self._bar: Any = None  # a rich Progress, created when the run starts
        self._task: Any = None
        self._rate = Rate()
        self._reused: int | None = None

    def __enter__(self) -> "ProgressReporter":
        if self.mode == "bar":
            self._start_bar()
        return self

    def _start_bar(self) -> None:
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[eta]}"),
                console=Console(file=self.stream or sys.stderr), transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(STAGE_LABELS["starting"], total=None, rate="", eta="")

    def update(self, progress: Progress) -> None:
        """Show one update (called from the runner, possibly from a helper thread)."""
        if self.mode == "quiet":
            return
        now = time.monotonic()
        if self._reused is None:
            self._reused = progress.frames_done  # frames of chunks finished by an earlier run
        self._rate.update(progress.frames_done, progress.frames_total, self._reused, now)
        label = stage_of(progress, self._rate)
        if self.mode == "json":
            if label == self._stage and now - self._last < self.every_s and progress.frames_done < progress.frames_total:
                return
            self._last, self._stage = now, label
            out = self.stream or sys.stdout
            doc = {"event": "progress", **progress.to_dict(), "stage_label": label, "fps": round(self._rate.fps, 2),
                   "eta_seconds": None if self._rate.eta is None else round(self._rate.eta, 1)}
            out.write(json.dumps(doc) + "\n")
            out.flush()
            return
        self._start_bar()
        assert self._bar is not None and self._task is not None
        rate = f"{self._rate.fps:5.1f} frames/s" if self._rate.fps else ""
        eta = "" if progress.stage != "processing" else format_eta(self._rate.eta)
        self._bar.update(self._task, total=progress.frames_total, completed=progress.frames_done, rate=rate,
                         eta=eta, description=label)

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
