"""Live sessions in the job database: one row each, so per-key limits and ``/metrics`` count them like jobs.

A row is written when a session starts (in the transaction that checks the key's limits, see
``JobStore.start_live``), refreshed with the session's counters every few seconds while it runs
(``seen``), and closed with its counters and the reason it ended (``ended``). A session whose
process died stops being refreshed and, after ``STALE_S``, no longer counts as open anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from swapface.jobs.db import create_tables, read_only

HEARTBEAT_S = 5.0  # how often a service writes the counters of its open sessions
STALE_S = 6 * HEARTBEAT_S  # an open row not refreshed for this long belongs to a dead process: not counted
COUNTERS = ("frames_received", "frames_sent", "frames_dropped", "cpu_seconds")

metadata = sa.MetaData()

live_sessions = sa.Table(
    "live_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("seen_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float, nullable=True),
    sa.Column("end_reason", sa.String(32), nullable=True),
    sa.Column("frames_received", sa.Integer, nullable=False, default=0),
    sa.Column("frames_sent", sa.Integer, nullable=False, default=0),
    sa.Column("frames_dropped", sa.Integer, nullable=False, default=0),
    sa.Column("cpu_seconds", sa.Float, nullable=False, default=0.0),
    sa.Index("ix_live_sessions_owner_started", "owner", "started_at"),
)


def is_open(now: float) -> sa.ColumnElement[bool]:
    """Rows of sessions running now: not ended, and refreshed recently by a living process."""
    return live_sessions.c.ended_at.is_(None) & (live_sessions.c.seen_at >= now - STALE_S)


def count_open(conn: sa.Connection, owner: str, now: float) -> int:
    """Open live sessions of an owner (they count against its jobs-at-once limit)."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(live_sessions)
                            .where((live_sessions.c.owner == owner) & is_open(now))).scalar_one())


def starts_since(conn: sa.Connection, owner: str, since: float) -> list[float]:
    """When the owner's live sessions started, from ``since`` on (they count against its jobs-per-hour limit)."""
    return [r[0] for r in conn.execute(sa.select(live_sessions.c.started_at).where(
        (live_sessions.c.owner == owner) & (live_sessions.c.started_at >= since)))]


def insert(conn: sa.Connection, session_id: str, owner: str, now: float) -> None:
    """The row of a session starting now (the caller has checked the owner's limits in ``conn``)."""
    conn.execute(live_sessions.insert().values(
        id=session_id, owner=owner, started_at=now, seen_at=now, frames_received=0, frames_sent=0,
        frames_dropped=0, cpu_seconds=0.0))


def usage(conn: sa.Connection, owner: str, start: float, end: float) -> dict[str, Any]:
    """An owner's live sessions started in [start, end): how many, frames swapped and sent, CPU seconds."""
    c = live_sessions.c
    count, frames, cpu = conn.execute(sa.select(
        sa.func.count(), sa.func.coalesce(sa.func.sum(c.frames_sent), 0), sa.func.coalesce(sa.func.sum(c.cpu_seconds), 0.0))
        .where((c.owner == owner) & (c.started_at >= start) & (c.started_at < end))).one()
    return {"live_sessions": int(count), "live_frames": int(frames), "live_compute_seconds": round(float(cpu), 3)}


class LiveUsage:
    """Writes the counters of a service's live sessions and reads the totals ``/metrics`` shows."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        create_tables(metadata, engine)

    def seen(self, counters: Mapping[str, Mapping[str, float]]) -> None:
        """Refresh open sessions (id → counters): they stay counted, and their frames show in the metrics."""
        if not counters:
            return
        now = time.time()
        with self.engine.begin() as conn:
            for session_id, values in counters.items():
                conn.execute(live_sessions.update().where(
                    (live_sessions.c.id == session_id) & live_sessions.c.ended_at.is_(None))
                    .values(seen_at=now, **_counters(values)))

    def ended(self, session_id: str, reason: str, counters: Mapping[str, float]) -> None:
        """Close a session's row with its final counters and why it ended."""
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(live_sessions.update().where(
                (live_sessions.c.id == session_id) & live_sessions.c.ended_at.is_(None))
                .values(ended_at=now, seen_at=now, end_reason=reason, **_counters(counters)))

    def snapshot(self) -> dict[str, Any]:
        """Open sessions now, sessions started and ended (by reason), and frame and CPU totals."""
        now = time.time()
        c = live_sessions.c
        with read_only(self.engine) as conn:
            open_now = conn.execute(sa.select(sa.func.count()).select_from(live_sessions)
                                    .where(is_open(now))).scalar_one()
            totals = conn.execute(sa.select(sa.func.count(), *(sa.func.coalesce(sa.func.sum(getattr(c, name)), 0)
                                                                for name in COUNTERS))).one()
            ended: dict[Any, Any] = dict(conn.execute(sa.select(c.end_reason, sa.func.count()).where(c.ended_at.is_not(None))
                                      .group_by(c.end_reason)).all())
        return {"live_open": int(open_now), "live_started_total": int(totals[0]),
                "live_ended_by_reason": {str(k): int(v) for k, v in ended.items()},
                **{f"live_{name}_total": float(v) for name, v in zip(COUNTERS, totals[1:])}}


def _counters(values: Mapping[str, float]) -> dict[str, float]:
    return {name: values[name] for name in COUNTERS if name in values}
