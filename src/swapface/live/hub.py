"""The live sessions of one process, and the threads that swap their frames: newest frame first, turns taken fairly.

Each session keeps at most one unprocessed camera frame: a newer one replaces it (the old one is dropped,
never queued), so a stream that outruns the CPU loses frames, not time. A frame has two stages, analysis
(in order: faces are tracked) and rendering; one frame's rendering overlaps the next one's analysis on
another core, and between the stages too only the newest frame waits. Engine threads take the waiting
stages in turn (round robin), so sessions share the CPU evenly however fast each sends.

A watcher thread (alive while sessions are) ends sessions nobody connects to, and connected ones whose
camera went silent (``idle_timeout_s``), and hands every session's counters to the ledger (the job
database, which counts live sessions in per-key limits and ``/metrics``).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from swapface.errors import InputError, SwapfaceError
from swapface.jobs.live_usage import HEARTBEAT_S
from swapface.live.engine import AnalysisModels, LiveEngine, live_options
from swapface.live.frames import Result, decode_jpeg, encode_jpeg
from swapface.pipeline import FrameEvent, Pipeline

log = logging.getLogger("swapface.live")

ANALYSE, RENDER = "analyse", "render"  # a frame's two stages: in order within each, overlapping between them
CONNECT_WITHIN_S = 60.0  # a session nobody streams to within this long is closed
IDLE_THREAD_S = 2.0  # an engine thread with nothing to do for this long ends (threads exist only while needed)
IDLE_TIMEOUT_S = 15.0  # a connected stream that sends no camera frame for this long is ended
WATCH_S = 0.25  # how often the watcher looks for sessions to end


class LiveLedger(Protocol):
    """Where session counters go (``swapface.jobs.live_usage.LiveUsage``): refreshed while open, closed at the end."""

    def seen(self, counters: Mapping[str, Mapping[str, float]]) -> None: ...

    def ended(self, session_id: str, reason: str, counters: Mapping[str, float]) -> None: ...


class LiveLimit(SwapfaceError):
    """A session cannot start now: too many at once for this caller (429) or this service (503)."""

    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message)
        self.code, self.status = code, status


@dataclass
class SessionStats:
    """Counters of one session: frames received, swapped and sent, dropped for newer ones, unreadable."""

    received: int = 0
    sent: int = 0
    dropped: int = 0
    bad: int = 0
    engine_ms: float = 0.0  # the last frame's, wall clock
    cpu_seconds: float = 0.0  # CPU time of every frame so far (decode, swap, encode)
    started_at: float = field(default_factory=time.monotonic)

    def public(self) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self.started_at, 1e-6)
        return {"frames_received": self.received, "frames_sent": self.sent, "frames_dropped": self.dropped,
                "frames_unreadable": self.bad, "engine_ms": round(self.engine_ms, 1),
                "frames_per_second": round(self.sent / elapsed, 2),
                "cpu_ms_per_frame": round(1000 * self.cpu_seconds / max(self.sent, 1), 1)}

    def counters(self) -> dict[str, float]:
        """The totals the ledger keeps (names as its columns)."""
        return {"frames_received": self.received, "frames_sent": self.sent, "frames_dropped": self.dropped,
                "cpu_seconds": self.cpu_seconds}


@dataclass
class Analysed:
    """A frame between its stages: its clock, when it was taken up, CPU spent so far, and the analysis to render."""

    clock: float
    started: float
    cpu_seconds: float
    pipeline: Pipeline
    event: FrameEvent


class LiveSession:
    """One caller's live stream: its engine, its newest waiting frame, where results go, and its counters."""

    def __init__(self, owner: str, engine: LiveEngine) -> None:
        self.id = secrets.token_urlsafe(18)  # also the stream's capability: only its creator learns it
        self.owner = owner
        self.engine = engine
        self.created_at = time.time()
        self.opened_at = time.monotonic()
        self.last_frame_at = self.opened_at  # when the stream connected or last sent a camera frame
        self.end_reason: str | None = None  # set when it ends: stopped, disconnected, idle, unconnected, error
        self.stats = SessionStats()
        self.connected = False
        self.closed = threading.Event()
        self.deliver: Callable[[Result], None] | None = None
        self.on_frame: Callable[[np.ndarray], None] | None = None  # sees each swapped frame (a recording)
        self.on_close: list[Callable[[], None]] = []
        self.pending: tuple[float, bytes] | None = None  # the newest camera frame not yet analysed
        self.analysed: Analysed | None = None  # the newest analysed frame not yet rendered
        self.analysing = False
        self.rendering = False
        self.queued = {ANALYSE: False, RENDER: False}

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "connected": self.connected, "created_at": self.created_at,
                "options": self.options_public(), **self.stats.public()}

    def options_public(self) -> dict[str, Any]:
        """The options in force that differ from the defaults, and always whether the label is drawn."""
        options = self.engine.options
        return {**options.model_dump(mode="json", exclude_defaults=True), "label_output": options.label_output}


class LiveHub:
    """Every live session of a service (or of ``swapface live``), the shared analysis models and the engine threads."""

    def __init__(self, *, max_sessions: int = 8, threads: int | None = None, connect_within_s: float = CONNECT_WITHIN_S,
                 idle_timeout_s: float = IDLE_TIMEOUT_S, ledger: LiveLedger | None = None) -> None:
        self.max_sessions = max_sessions
        self.threads = threads or max(1, min(4, os.cpu_count() or 1))
        self.connect_within_s = connect_within_s
        self.idle_timeout_s = idle_timeout_s
        self.ledger = ledger
        self._watching = False
        self._next_beat = 0.0
        self._sessions: dict[str, LiveSession] = {}
        self._models: dict[tuple, AnalysisModels] = {}
        self._models_lock = threading.Lock()
        self._cond = threading.Condition()
        self._ready: deque[tuple[LiveSession, str]] = deque()
        self._running = 0

    # --- sessions -----------------------------------------------------------------------------------
    def models_for(self, values: dict[str, Any]) -> AnalysisModels:
        """The analysis models these options need, built (and loaded) once per process."""
        options = live_options(values)
        key = AnalysisModels.key(options)
        with self._models_lock:
            if key not in self._models:
                self._models[key] = AnalysisModels.for_options(options)
            return self._models[key]

    def open(self, owner: str, source: np.ndarray, values: dict[str, Any], *, may_unlabel: bool = False,
             admit: Callable[[str], None] | None = None) -> LiveSession:
        """Start a session for ``owner`` (analyses the source: InputError ``no_face_in_source`` when it has no face).

        ``admit(session_id)`` records the start where the owner's limits are kept and raises when one is reached
        (then no session starts); LiveLimit when this service runs its most sessions already.
        """
        options = live_options(values)
        if not options.label_output and not may_unlabel:
            raise InputError("live output keeps its 'AI-generated' label here; only a local user may turn it off",
                             code="label_required")
        self._check_room()
        engine = LiveEngine(source, options, self.models_for(values))
        session = LiveSession(owner, engine)
        with self._cond:
            self._check_room()  # again: others may have opened meanwhile
            self._sessions[session.id] = session
        try:
            if admit is not None:
                admit(session.id)
        except BaseException:
            with self._cond:
                self._sessions.pop(session.id, None)
            raise
        with self._cond:
            session.opened_at = session.last_frame_at = time.monotonic()  # the connect deadline runs from here
            if not self._watching:
                self._watching = True
                threading.Thread(target=self._watch, name="live-watch", daemon=True).start()
        log.info("live session opened", extra={"session": session.id[:8], "owner": owner})
        return session

    def _check_room(self) -> None:
        if len(self._sessions) >= self.max_sessions:
            raise LiveLimit(f"this service runs at most {self.max_sessions} live sessions at once; try again later",
                            "live_busy", 503)

    def connect(self, session: LiveSession) -> bool:
        """A stream attaches to the session (one only); False when it is taken or the session has ended."""
        with self._cond:
            if session.connected or session.closed.is_set():
                return False
            session.connected = True
            session.last_frame_at = time.monotonic()  # the idle clock starts now
            return True

    def get(self, session_id: str, owner: str | None = None) -> LiveSession | None:
        """A session by id (and owner, when given: another owner's session reads as missing)."""
        session = self._sessions.get(session_id)
        if session is None or (owner is not None and session.owner != owner):
            return None
        return session

    def sessions(self, owner: str | None = None) -> list[LiveSession]:
        """Open sessions, oldest first (an owner's only, when given)."""
        found = sorted(self._sessions.values(), key=lambda s: s.created_at)
        return [s for s in found if owner is None or s.owner == owner]

    def close(self, session: LiveSession, reason: str = "stopped") -> None:
        """End a session: no more frames are taken, its callbacks run (the stream closes), its engine is let go,
        and the ledger records its counters and ``reason``."""
        with self._cond:
            if session.closed.is_set():
                return
            session.end_reason = reason
            session.closed.set()
            self._sessions.pop(session.id, None)
            session.pending = session.analysed = None
            self._ready = deque(item for item in self._ready if item[0] is not session)
        for callback in session.on_close:
            try:
                callback()
            except Exception:
                log.exception("a live session's close callback failed")
        if self.ledger is not None:
            try:
                self.ledger.ended(session.id, reason, session.stats.counters())
            except Exception:
                log.exception("a live session's end could not be recorded")
        log.info("live session closed", extra={"session": session.id[:8], "reason": reason, **session.stats.public()})

    def close_all(self, reason: str = "shutdown") -> None:
        for session in self.sessions():
            self.close(session, reason)

    # --- the watcher --------------------------------------------------------------------------------
    def _watch(self) -> None:
        """Runs while sessions exist: ends overdue ones, and refreshes the ledger every ``HEARTBEAT_S``."""
        self._next_beat = time.monotonic() + HEARTBEAT_S
        while self._watch_once():
            time.sleep(WATCH_S)

    def _watch_once(self) -> bool:
        now = time.monotonic()
        with self._cond:
            if not self._sessions:
                self._watching = False
                return False
            overdue = [(s, reason) for s in self._sessions.values() if (reason := self._overdue(s, now))]
        for session, reason in overdue:
            self.close(session, reason)
        if self.ledger is not None and now >= self._next_beat:
            self._next_beat = now + HEARTBEAT_S
            try:
                self.ledger.seen({s.id: s.stats.counters() for s in self.sessions()})
            except Exception:
                log.exception("live session counters could not be recorded")
        return True

    def _overdue(self, session: LiveSession, now: float) -> str | None:
        """Why a session should end now: nobody connected in time, or its camera went silent."""
        if not session.connected and now - session.opened_at > self.connect_within_s:
            return "unconnected"
        if session.connected and now - session.last_frame_at > self.idle_timeout_s:
            return "idle"
        return None

    # --- frames -------------------------------------------------------------------------------------
    def submit(self, session: LiveSession, clock: float, jpeg: bytes) -> None:
        """Offer a camera frame: it replaces any frame of this session still waiting (which counts as dropped)."""
        with self._cond:
            if session.closed.is_set():
                return
            session.stats.received += 1
            session.last_frame_at = time.monotonic()
            if session.pending is not None:
                session.stats.dropped += 1
            session.pending = (clock, jpeg)
            self._enqueue(session)

    def _enqueue(self, session: LiveSession) -> None:
        """Queue whatever stage of ``session`` can run now (caller holds the lock); start a thread if one is due."""
        if session.closed.is_set():
            return
        # analysis waits while an analysed frame waits for rendering: it would only be dropped after costing CPU,
        # while the waiting camera frame is still replaced for free by newer ones
        if (session.pending is not None and session.analysed is None and not session.analysing
                and not session.queued[ANALYSE]):
            session.queued[ANALYSE] = True
            self._ready.append((session, ANALYSE))
        if session.analysed is not None and not session.rendering and not session.queued[RENDER]:
            session.queued[RENDER] = True
            self._ready.append((session, RENDER))
        self._cond.notify()
        if self._running < min(self.threads, len(self._ready) + self._busy_count()):
            self._running += 1
            threading.Thread(target=self._engine_thread, name="live-engine", daemon=True).start()

    def _busy_count(self) -> int:
        return sum(int(s.analysing) + int(s.rendering) for s in self._sessions.values())

    def _engine_thread(self) -> None:
        while self._take_turn():
            pass

    def _take_turn(self) -> bool:
        """Wait for a waiting stage and run it; False when none came for IDLE_THREAD_S (the thread ends).
        A method of its own so that no ended session stays referenced from a waiting thread's locals."""
        with self._cond:
            if not self._ready:
                self._cond.wait(IDLE_THREAD_S)
            if not self._ready:
                self._running -= 1
                return False
            session, stage = self._ready.popleft()
            session.queued[stage] = False
            if stage == ANALYSE:
                frame, session.pending = session.pending, None
                session.analysing = True
            else:
                analysed, session.analysed = session.analysed, None
                session.rendering = True
                self._enqueue(session)  # the analysis slot is free again
        if stage == ANALYSE:
            done = self._analyse(session, *frame) if frame is not None else None
            with self._cond:
                session.analysing = False
                if done is not None and not session.closed.is_set():
                    if session.analysed is not None:
                        session.stats.dropped += 1
                    session.analysed = done
                self._enqueue(session)  # to the back: every waiting session goes first
        else:
            if analysed is not None:
                self._render(session, analysed)
            with self._cond:
                session.rendering = False
                self._enqueue(session)
        return True

    def _analyse(self, session: LiveSession, clock: float, jpeg: bytes) -> Analysed | None:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            pipeline, event = session.engine.analyse(decode_jpeg(jpeg))
        except InputError:
            session.stats.bad += 1
            return None
        except Exception:
            log.exception("a live frame failed; the session ends")
            self.close(session, "error")
            return None
        return Analysed(clock, started, time.thread_time() - cpu, pipeline, event)

    def _render(self, session: LiveSession, analysed: Analysed) -> None:
        cpu = time.thread_time()
        try:
            out = analysed.pipeline.render_frame(analysed.event)
            data = encode_jpeg(out)
        except Exception:
            log.exception("a live frame failed; the session ends")
            self.close(session, "error")
            return
        session.stats.engine_ms = (time.perf_counter() - analysed.started) * 1000
        session.stats.cpu_seconds += analysed.cpu_seconds + time.thread_time() - cpu
        if session.on_frame is not None:
            session.on_frame(out)
        if session.deliver is not None and not session.closed.is_set():
            session.stats.sent += 1
            session.deliver(Result(analysed.clock, session.stats.engine_ms, session.stats.dropped, data))
