"""The durable job store: SQLAlchemy over SQLite (default, WAL) or PostgreSQL.

Jobs move ``queued → running → succeeded | failed | cancelled``. Workers claim a job atomically
(PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: one ``BEGIN IMMEDIATE`` writer at a time) and hold
a lease renewed by heartbeats; a job whose lease ran out (its worker died) is claimed again and
resumes from its committed chunks. Every failed attempt is a row in ``job_failures``. Times are
stored as epoch seconds (floats), which compare the same way on every database.
"""

from __future__ import annotations

import builtins
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import sqlalchemy as sa

from swapface.errors import InputError
from swapface.jobs import live_usage
from swapface.jobs.db import create_tables, make_engine, read_only
from swapface.jobs.live_usage import LiveUsage

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
STATES: tuple[str, ...] = get_args(JobState)
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
ACTIVE = ("queued", "running")

metadata = sa.MetaData()
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),  # image | video
    sa.Column("spec", sa.Text, nullable=False),  # JSON: sources, target, output, reference_face, options
    sa.Column("idempotency_key", sa.String(255), nullable=True),
    sa.Column("request_hash", sa.String(64), nullable=True),
    sa.Column("webhook_url", sa.Text, nullable=True),
    sa.Column("webhook_secret", sa.String(128), nullable=True),
    sa.Column("frames_done", sa.Integer, nullable=False, default=0),
    sa.Column("frames_total", sa.Integer, nullable=False, default=0),
    sa.Column("chunks_done", sa.Integer, nullable=False, default=0),
    sa.Column("chunks_total", sa.Integer, nullable=False, default=0),
    sa.Column("chunks_reused", sa.Integer, nullable=False, default=0),
    sa.Column("lost_frames", sa.Integer, nullable=False, default=0),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("run_after", sa.Float, nullable=False),
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column("lease_expires_at", sa.Float, nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("purged_at", sa.Float, nullable=True),
    sa.Column("frames", sa.Integer, nullable=False, default=0),  # usage: frames output
    sa.Column("compute_seconds", sa.Float, nullable=False, default=0.0),
    sa.Column("gpu_seconds", sa.Float, nullable=False, default=0.0),
    sa.Column("providers", sa.String(128), nullable=True),  # usage: ONNX Runtime providers that ran, comma-separated
    sa.UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idempotency"),
    sa.Index("ix_jobs_claim", "status", "run_after"),
    sa.Index("ix_jobs_owner_created", "owner", "created_at"),
)
failures = sa.Table(
    "job_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(64), nullable=False, index=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("retried", sa.Boolean, nullable=False),
    sa.Column("at", sa.Float, nullable=False, index=True),
)


def iso(ts: float | None) -> str | None:
    """Epoch seconds as an ISO-8601 UTC string (API and exports)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class JobRecord:
    """One row of ``jobs``, as plain data."""

    id: str
    owner: str
    status: str
    kind: str
    spec: dict[str, Any]
    idempotency_key: str | None
    request_hash: str | None
    webhook_url: str | None
    webhook_secret: str | None
    frames_done: int
    frames_total: int
    chunks_done: int
    chunks_total: int
    chunks_reused: int
    lost_frames: int
    attempts: int
    max_attempts: int
    error_code: str | None
    error_message: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    run_after: float
    lease_owner: str | None
    lease_expires_at: float | None
    cancel_requested: bool
    purged_at: float | None
    frames: int
    compute_seconds: float
    gpu_seconds: float
    providers: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> "JobRecord":
        values = dict(row._mapping)
        values["spec"] = json.loads(values["spec"])
        values["cancel_requested"] = bool(values["cancel_requested"])
        return cls(**values)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def public(self) -> dict[str, Any]:
        """What the API shows: no storage locations, no secrets, no file names."""
        return {
            "id": self.id,
            "status": self.status,
            "kind": self.kind,
            "progress": {
                "frames_done": self.frames_done, "frames_total": self.frames_total,
                "chunks_done": self.chunks_done, "chunks_total": self.chunks_total,
                "fraction": round(self.frames_done / self.frames_total, 4) if self.frames_total else 0.0,
            },
            "options": self.spec.get("options", {}),
            "attempts": self.attempts,
            "error": {"code": self.error_code, "message": self.error_message} if self.error_code else None,
            "created_at": iso(self.created_at), "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "cancel_requested": self.cancel_requested,
            "result_available": self.status == "succeeded" and self.purged_at is None,
            "purged": self.purged_at is not None,
            "lost_frames": self.lost_frames,
            "usage": {"frames": self.frames, "compute_seconds": round(self.compute_seconds, 3),
                      "gpu_seconds": round(self.gpu_seconds, 3),
                      "providers": self.providers.split(",") if self.providers else []},
            "has_webhook": bool(self.webhook_url),
        }


def new_job_id() -> str:
    """A fresh job id (a UUID: safe as a storage folder and a key file name)."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class NewJob:
    """What a caller asks for; the store gives it an id, a state and timestamps."""

    owner: str
    kind: str
    spec: dict[str, Any]
    idempotency_key: str | None = None
    request_hash: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    job_id: str = field(default_factory=new_job_id)


class LimitReached(Exception):
    """A per-owner limit refuses a new job: ``code`` names the limit, ``retry_after`` is in seconds."""

    def __init__(self, code: str, retry_after: int) -> None:
        super().__init__(code)
        self.code, self.retry_after = code, retry_after


@dataclass(frozen=True)
class Lease:
    """Answer to a heartbeat: whether the worker still holds the job and whether a cancel was asked."""

    held: bool
    cancel_requested: bool


def _ended(status: str, now: float, error_code: str | None, error_message: str | None) -> dict[str, Any]:
    """The column values of a job reaching a final state: its lease released, its error recorded."""
    return {"status": status, "finished_at": now, "updated_at": now, "lease_owner": None, "lease_expires_at": None,
            "error_code": error_code, "error_message": error_message}


class JobStore:
    """Jobs, their leases and their failures on one database."""

    def __init__(self, engine: sa.Engine, *, max_attempts: int = 4, retry_backoff_s: float = 5.0) -> None:
        self.engine = engine
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        self.is_postgres = engine.dialect.name == "postgresql"
        create_tables(metadata, engine)
        self.live = LiveUsage(engine)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> "JobStore":
        return cls(make_engine(url), **kwargs)

    # --- creating and reading -------------------------------------------------------------------

    def create(self, new: NewJob, *, max_active: int | None = None,
               per_hour: int | None = None) -> tuple[JobRecord, bool]:
        """Insert a queued job; with an idempotency key already used by the owner, return that job instead.

        Returns (job, created). The same key with a different request hash is an InputError.
        ``max_active`` / ``per_hour`` are the owner's limits, checked in the inserting transaction
        (LimitReached), so concurrent requests cannot all slip under them.
        """
        now = time.time()
        row = {
            "id": new.job_id, "owner": new.owner, "status": "queued", "kind": new.kind,
            "spec": json.dumps(new.spec, sort_keys=True), "idempotency_key": new.idempotency_key,
            "request_hash": new.request_hash, "webhook_url": new.webhook_url, "webhook_secret": new.webhook_secret,
            "frames_done": 0, "frames_total": 0, "chunks_done": 0, "chunks_total": 0, "chunks_reused": 0,
            "lost_frames": 0, "attempts": 0, "max_attempts": self.max_attempts, "created_at": now,
            "updated_at": now, "run_after": now, "cancel_requested": False, "frames": 0,
            "compute_seconds": 0.0, "gpu_seconds": 0.0,
        }
        try:
            with self.engine.begin() as conn:
                if max_active is not None or per_hour is not None:
                    self._admit(conn, new.owner, max_active, per_hour, now)
                conn.execute(jobs.insert().values(**row))
            return self.get(new.job_id), True  # type: ignore[return-value]
        except sa.exc.IntegrityError:
            if new.idempotency_key is None:
                raise
        existing = self.by_idempotency_key(new.owner, new.idempotency_key)
        if existing is None:  # the row we collided with was removed meanwhile: try once more
            return self.create(new)
        if existing.request_hash != new.request_hash:
            raise InputError("this Idempotency-Key was already used with a different request", code="idempotency_mismatch")
        return existing, False

    def admit(self, owner: str, max_active: int | None, per_hour: int | None) -> None:
        """Raise LimitReached when a new job of ``owner`` would pass a limit (an early check; ``create`` checks
        again where racing requests are serialized)."""
        with read_only(self.engine) as conn:
            self._admit(conn, owner, max_active, per_hour, time.time(), lock=False)

    def start_live(self, session_id: str, owner: str, max_active: int | None, per_hour: int | None) -> None:
        """Record a live session starting; LimitReached when it would pass the owner's limits, which count
        live sessions like jobs (checked in the inserting transaction, as for jobs)."""
        now = time.time()
        with self.engine.begin() as conn:
            if max_active is not None or per_hour is not None:
                self._admit(conn, owner, max_active, per_hour, now)
            live_usage.insert(conn, session_id, owner, now)

    def _admit(self, conn: sa.Connection, owner: str, max_active: int | None, per_hour: int | None,
               now: float, *, lock: bool = True) -> None:
        """Raise LimitReached when the owner is at a limit; open live sessions count as active jobs and live
        session starts as job submissions. SQLite transactions hold the write lock from their start
        (BEGIN IMMEDIATE); on PostgreSQL a per-owner advisory lock serializes creators."""
        if self.is_postgres and lock:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:owner))"), {"owner": owner})
        if max_active is not None:
            active = conn.execute(sa.select(sa.func.count()).select_from(jobs)
                                  .where((jobs.c.owner == owner) & jobs.c.status.in_(ACTIVE))).scalar_one()
            if active + live_usage.count_open(conn, owner, now) >= max_active:
                raise LimitReached("too_many_active_jobs", 30)
        if per_hour is not None:
            recent = [r[0] for r in conn.execute(sa.select(jobs.c.created_at).where(
                (jobs.c.owner == owner) & (jobs.c.created_at >= now - 3600)))]
            recent = sorted(recent + live_usage.starts_since(conn, owner, now - 3600))
            if len(recent) >= per_hour:
                raise LimitReached("hourly_limit", max(1, int(recent[len(recent) - per_hour] + 3600 - now) + 1))

    def by_idempotency_key(self, owner: str, key: str) -> JobRecord | None:
        with read_only(self.engine) as conn:
            row = conn.execute(sa.select(jobs).where((jobs.c.owner == owner) & (jobs.c.idempotency_key == key))).first()
        return JobRecord.from_row(row) if row else None

    def get(self, job_id: str, owner: str | None = None) -> JobRecord | None:
        """The job, or None (also when ``owner`` is given and the job is someone else's)."""
        query = sa.select(jobs).where(jobs.c.id == job_id)
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        with read_only(self.engine) as conn:
            row = conn.execute(query).first()
        return JobRecord.from_row(row) if row else None

    def list(self, owner: str | None, *, status: str | None = None, limit: int = 50,
             before: tuple[float, str] | None = None) -> list[JobRecord]:
        """Jobs newest first; ``before`` = (created_at, id) of the last job of the previous page."""
        query = sa.select(jobs)
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        if status is not None:
            query = query.where(jobs.c.status == status)
        if before is not None:
            created, job_id = before
            query = query.where((jobs.c.created_at < created) | ((jobs.c.created_at == created) & (jobs.c.id < job_id)))
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
        with read_only(self.engine) as conn:
            return [JobRecord.from_row(r) for r in conn.execute(query)]

    def count_active(self, owner: str) -> int:
        """Queued or running jobs of an owner (per-key concurrency limit)."""
        with read_only(self.engine) as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(jobs)
                                    .where((jobs.c.owner == owner) & jobs.c.status.in_(ACTIVE))).scalar_one())

    # --- workers ----------------------------------------------------------------------------------

    def claim(self, worker_id: str, *, lease_seconds: float, max_running: int | None = None) -> JobRecord | None:
        """Take the oldest runnable job (queued and due, or running with an expired lease); None if none.

        A job taken over from a dead worker records a ``worker_lost`` failure; one cancelled while its
        worker was gone ends as cancelled instead of running again.
        """
        while True:
            now = time.time()
            with self.engine.begin() as conn:
                if self.is_postgres and max_running is not None:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(727274)"))  # makes the global cap strict
                if max_running is not None:
                    running = conn.execute(sa.select(sa.func.count()).select_from(jobs).where(
                        (jobs.c.status == "running") & (jobs.c.lease_expires_at >= now))).scalar_one()
                    if running >= max_running:
                        return None
                runnable = (((jobs.c.status == "queued") & (jobs.c.run_after <= now))
                            | ((jobs.c.status == "running") & (jobs.c.lease_expires_at < now)))
                query = sa.select(jobs).where(runnable).order_by(jobs.c.run_after, jobs.c.created_at).limit(1)
                if self.is_postgres:
                    query = query.with_for_update(skip_locked=True)
                row = conn.execute(query).first()
                if row is None:
                    return None
                job = JobRecord.from_row(row)
                if job.status == "running":  # its worker died: count the lost attempt
                    self._record_failure(conn, job, "worker_lost", "the worker stopped answering; the job was taken over",
                                         retried=not job.cancel_requested and job.attempts < job.max_attempts, now=now)
                    if job.cancel_requested or job.attempts >= job.max_attempts:
                        status = "cancelled" if job.cancel_requested else "failed"
                        conn.execute(jobs.update().where(jobs.c.id == job.id).values(**_ended(
                            status, now, None if status == "cancelled" else "worker_lost",
                            None if status == "cancelled" else "the job's worker stopped too many times")))
                        continue
                taken = conn.execute(jobs.update().where((jobs.c.id == job.id) & (jobs.c.status == job.status)
                                                         & (jobs.c.updated_at == job.updated_at)).values(
                    status="running", lease_owner=worker_id, lease_expires_at=now + lease_seconds,
                    attempts=job.attempts + 1, started_at=job.started_at or now, updated_at=now)).rowcount
            if taken:  # read back outside the transaction: SQLite allows one writer at a time
                return self.get(job.id)
            # another worker took it between our read and write (SQLite never gets here): look again

    def heartbeat(self, job_id: str, worker_id: str, *, lease_seconds: float, **progress: int) -> Lease:
        """Extend the lease and store progress; ``held`` is False when the job was taken from this worker."""
        now = time.time()
        held = (jobs.c.id == job_id) & (jobs.c.lease_owner == worker_id) & (jobs.c.status == "running")
        with self.engine.begin() as conn:
            changed = conn.execute(jobs.update().where(held).values(
                lease_expires_at=now + lease_seconds, updated_at=now, **progress)).rowcount
            cancel = conn.execute(sa.select(jobs.c.cancel_requested).where(jobs.c.id == job_id)).scalar()
        return Lease(held=bool(changed), cancel_requested=bool(cancel))

    def finish(self, job_id: str, worker_id: str, status: str, *, error_code: str | None = None,
               error_message: str | None = None, unless_cancelled: bool = False, **values: Any) -> bool:
        """End a running job held by ``worker_id`` (succeeded / failed / cancelled); False if it was not held
        (or, with ``unless_cancelled``, if a cancel was requested: a cancelled job never ends succeeded)."""
        if status not in TERMINAL:
            raise ValueError(f"not a final state: {status}")
        now = time.time()
        held = (jobs.c.id == job_id) & (jobs.c.lease_owner == worker_id) & (jobs.c.status == "running")
        if unless_cancelled:
            held &= jobs.c.cancel_requested == sa.false()
        with self.engine.begin() as conn:
            return bool(conn.execute(jobs.update().where(held).values(
                **_ended(status, now, error_code, error_message), **values)).rowcount)

    def cancel_requested(self, job_id: str) -> bool:
        """Whether a cancel (or delete) of the job was asked for."""
        with read_only(self.engine) as conn:
            return bool(conn.execute(sa.select(jobs.c.cancel_requested).where(jobs.c.id == job_id)).scalar())

    def add_usage(self, job_id: str, *, compute_seconds: float, gpu_seconds: float,
                  providers: Iterable[str] = ()) -> None:
        """Add one attempt's compute to the job's metered usage (failed attempts cost too); ``providers`` (the
        ONNX Runtime providers its models ran on) join those already recorded."""
        with self.engine.begin() as conn:
            values: dict[str, Any] = {"compute_seconds": jobs.c.compute_seconds + compute_seconds,
                                      "gpu_seconds": jobs.c.gpu_seconds + gpu_seconds}
            providers = set(providers)
            if providers:
                known = conn.execute(sa.select(jobs.c.providers).where(jobs.c.id == job_id)).scalar()
                merged = providers | set(filter(None, (known or "").split(",")))
                values["providers"] = ",".join(sorted(merged))
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))

    def fail_attempt(self, job_id: str, worker_id: str, code: str, message: str, *, retryable: bool,
                     **values: Any) -> str:
        """Record a failed attempt; re-queue it with exponential backoff while attempts remain. Returns the new state.

        ``values`` are other columns the attempt found out (``lost_frames`` of a damaged video)."""
        now = time.time()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(jobs).where((jobs.c.id == job_id) & (jobs.c.lease_owner == worker_id)
                                                     & (jobs.c.status == "running"))).first()
            if row is None:
                return "lost"
            job = JobRecord.from_row(row)
            retry = retryable and job.attempts < job.max_attempts and not job.cancel_requested
            self._record_failure(conn, job, code, message, retried=retry, now=now)
            if retry:
                delay = self.retry_backoff_s * 2 ** (job.attempts - 1)
                conn.execute(jobs.update().where(jobs.c.id == job_id).values(
                    status="queued", run_after=now + delay, lease_owner=None, lease_expires_at=None, updated_at=now,
                    error_code=code, error_message=message, **values))
                return "queued"
            status = "cancelled" if job.cancel_requested else "failed"
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(**_ended(status, now, code, message), **values))
            return status

    def release(self, job_id: str, worker_id: str, *, delay_s: float) -> bool:
        """Hand a job back to the queue without counting the attempt (the machine failed, not the job)."""
        now = time.time()
        with self.engine.begin() as conn:
            return bool(conn.execute(jobs.update().where(
                (jobs.c.id == job_id) & (jobs.c.lease_owner == worker_id) & (jobs.c.status == "running")).values(
                status="queued", run_after=now + delay_s, lease_owner=None, lease_expires_at=None, updated_at=now,
                attempts=sa.case((jobs.c.attempts > 0, jobs.c.attempts - 1), else_=0))).rowcount)

    @staticmethod
    def _record_failure(conn: sa.Connection, job: JobRecord, code: str, message: str, *, retried: bool,
                        now: float) -> None:
        conn.execute(failures.insert().values(job_id=job.id, owner=job.owner, attempt=job.attempts, code=code,
                                              message=message, retried=retried, at=now))

    # --- callers' actions -------------------------------------------------------------------------

    def request_cancel(self, job_id: str, owner: str | None = None) -> JobRecord | None:
        """Cancel a queued job now; ask a running job's worker to stop. Finished jobs stay as they are."""
        now = time.time()
        where = jobs.c.id == job_id
        if owner is not None:
            where &= jobs.c.owner == owner
        with self.engine.begin() as conn:
            conn.execute(jobs.update().where(where & (jobs.c.status == "queued")).values(
                status="cancelled", finished_at=now, updated_at=now, cancel_requested=True))
            conn.execute(jobs.update().where(where & (jobs.c.status == "running")).values(
                cancel_requested=True, updated_at=now))
        return self.get(job_id, owner)

    def mark_purged(self, job_id: str) -> None:
        """Record that a job's media was deleted (the row stays, for usage and audit)."""
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(purged_at=now, updated_at=now))

    # --- reports ----------------------------------------------------------------------------------

    def usage(self, owner: str, start: float, end: float) -> dict[str, Any]:
        """Metered usage of an owner's jobs and live sessions created in [start, end)."""
        query = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(jobs.c.frames), 0),
                          sa.func.coalesce(sa.func.sum(jobs.c.compute_seconds), 0.0),
                          sa.func.coalesce(sa.func.sum(jobs.c.gpu_seconds), 0.0)).where(
            (jobs.c.owner == owner) & (jobs.c.created_at >= start) & (jobs.c.created_at < end))
        with read_only(self.engine) as conn:
            count, frames, compute, gpu = conn.execute(query).one()
            live = live_usage.usage(conn, owner, start, end)
        return {"jobs": int(count), "frames": int(frames), "compute_seconds": round(float(compute), 3),
                "gpu_seconds": round(float(gpu), 3), **live}

    def failure_rows(self, since: float, until: float | None = None) -> Iterator[dict[str, Any]]:
        """Failures in a time window, oldest first (for export)."""
        query = sa.select(failures).where(failures.c.at >= since)
        if until is not None:
            query = query.where(failures.c.at < until)
        with read_only(self.engine) as conn:
            rows = [dict(r._mapping) for r in conn.execute(query.order_by(failures.c.at, failures.c.id))]
        for row in rows:
            row["at"] = iso(row["at"])
            row["retried"] = bool(row["retried"])
            yield row

    def failure_summary(self, since: float, until: float | None = None) -> builtins.list[dict[str, Any]]:
        """Failure modes by code in a window: count, jobs affected, retried, last seen, an example message."""
        summary: dict[str, dict[str, Any]] = {}
        for row in self.failure_rows(since, until):
            item = summary.setdefault(row["code"], {"code": row["code"], "count": 0, "jobs": set(), "retried": 0,
                                                    "last_at": None, "example": row["message"]})
            item["count"] += 1
            item["jobs"].add(row["job_id"])
            item["retried"] += int(row["retried"])
            item["last_at"] = row["at"]
        out = [{**v, "jobs": len(v["jobs"])} for v in summary.values()]
        return sorted(out, key=lambda v: (-v["count"], v["code"]))

    def counts_by_state(self) -> dict[str, int]:
        with read_only(self.engine) as conn:
            rows = conn.execute(sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status))
            found = {status: int(n) for status, n in rows}
        return {state: found.get(state, 0) for state in STATES}

    def metrics_snapshot(self, latency_buckets: tuple[float, ...], window_s: float = 300.0) -> dict[str, Any]:
        """Numbers for /metrics, computed from the database so every worker process counts."""
        now = time.time()
        latency = jobs.c.finished_at - jobs.c.created_at
        bucket_cols = [sa.func.coalesce(sa.func.sum(sa.case((latency <= b, 1), else_=0)), 0) for b in latency_buckets]
        finished = jobs.c.status.in_(tuple(TERMINAL)) & jobs.c.finished_at.is_not(None)
        with read_only(self.engine) as conn:
            hist = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(latency), 0.0), *bucket_cols)
                                .where(finished)).one()
            by_code: dict[str, int] = dict(conn.execute(sa.select(failures.c.code, sa.func.count()).group_by(failures.c.code)).all())
            retries = conn.execute(sa.select(sa.func.count()).select_from(failures).where(failures.c.retried)).scalar_one()
            frames, compute = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(jobs.c.frames), 0),
                                                     sa.func.coalesce(sa.func.sum(jobs.c.compute_seconds), 0.0))
                                           .where(finished & (jobs.c.finished_at >= now - window_s))).one()
            queued = conn.execute(sa.select(sa.func.count()).select_from(jobs).where(
                (jobs.c.status == "queued") & (jobs.c.run_after <= now))).scalar_one()
            totals = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(jobs.c.frames), 0),
                                            sa.func.coalesce(sa.func.sum(jobs.c.compute_seconds), 0.0),
                                            sa.func.coalesce(sa.func.sum(jobs.c.gpu_seconds), 0.0))).one()
        return {
            "states": self.counts_by_state(), "queue_depth": int(queued),
            "latency_count": int(hist[0]), "latency_sum": float(hist[1]),
            "latency_buckets": [int(v) for v in hist[2:]],
            "failures_by_code": {k: int(v) for k, v in by_code.items()}, "retries": int(retries),
            "recent_fps": float(frames) / float(compute) if compute else 0.0,
            "frames_total": int(totals[0]), "compute_seconds_total": float(totals[1]),
            "gpu_seconds_total": float(totals[2]),
            **self.live.snapshot(),
        }


def record_dict(job: JobRecord) -> dict[str, Any]:
    """A job record as a plain dict (tests, exports)."""
    return asdict(job)
