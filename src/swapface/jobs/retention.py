"""Retention: delete a job's media after its retention period, intermediates when it ends, all of it on request.

Layout assumed under the storage root: one folder per job, ``<root>/<job_id>/...`` (the same rule
the encryption layer uses to find an object's job). A job's age is the time its newest object was
written. Deletions are recorded in the ``retention_audit`` table (job id, what, why, when) on the
job store's database, never in logs. Deleting a job also deletes its data key, so copies of its
encrypted media elsewhere (backups, replicas) become unreadable too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import fsspec
import sqlalchemy as sa

from swapface import storage
from swapface.config import Settings, load_settings
from swapface.jobs.db import create_tables, make_engine
from swapface.storage.keys import KEYS_DIR

metadata = sa.MetaData()
audit_table = sa.Table(
    "retention_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(128), nullable=False, index=True),
    sa.Column("what", sa.String(32), nullable=False),  # input | output | intermediate | key | other
    sa.Column("object_hash", sa.String(32), nullable=True),  # sha256 of the object name, never the name
    sa.Column("reason", sa.String(32), nullable=False),  # expired | job_ended | deleted
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

INTERMEDIATE_DIRS = ("work", "chunks", "segments", "tmp")
INPUT_DIRS = ("input", "inputs", "source", "sources", "target", "uploads")
OUTPUT_DIRS = ("output", "outputs", "result", "results")


@dataclass
class SweepReport:
    """What one sweep did: jobs purged and objects deleted (counts only)."""

    jobs: list[str] = field(default_factory=list)
    objects: int = 0
    kept_jobs: int = 0


def engine_for(settings: Settings) -> sa.Engine:
    """An engine on the job store's database, with the audit table created."""
    engine = make_engine(settings.resolved_database_url())
    create_tables(metadata, engine)
    return engine


def _category(relative: str) -> str:
    head = relative.split("/", 1)[0].lower()
    stem = head.split(".", 1)[0]
    if head in INTERMEDIATE_DIRS or stem in INTERMEDIATE_DIRS:
        return "intermediate"
    if head in INPUT_DIRS or stem in INPUT_DIRS:
        return "input"
    if head in OUTPUT_DIRS or stem in OUTPUT_DIRS:
        return "output"
    return "other"


def _mtime(info: dict[str, Any]) -> datetime | None:
    for key in ("mtime", "updated", "LastModified", "last_modified", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(float(value), UTC)
        try:
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


class Retention:
    """Sweeps one storage root and records every deletion in the audit table."""

    def __init__(self, settings: Settings | None = None, engine: sa.Engine | None = None) -> None:
        self.settings = settings or load_settings()
        self.root = self.settings.resolved_storage_url().rstrip("/")
        self.fs, self.base = fsspec.core.url_to_fs(self.root)
        self.engine = engine or engine_for(self.settings)
        create_tables(metadata, self.engine)

    def _objects(self, job_id: str, under: str = "") -> list[tuple[str, dict[str, Any]]]:
        top = f"{self.base}/{job_id}" + (f"/{under}" if under else "")
        try:
            found = self.fs.find(top, detail=True)
        except FileNotFoundError:
            return []
        return sorted(found.items())

    def jobs(self) -> list[str]:
        """Job folders under the storage root."""
        try:
            entries = self.fs.ls(self.base, detail=True)
        except FileNotFoundError:
            return []
        return sorted(e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries
                      if e.get("type") == "directory" and not e["name"].rstrip("/").endswith("/" + KEYS_DIR))

    def _record(self, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        if rows:
            with self.engine.begin() as conn:
                conn.execute(audit_table.insert(), rows)

    def _delete(self, job_id: str, objects: list[tuple[str, dict[str, Any]]], reason: str, *, shred: bool) -> int:
        now = datetime.now(UTC)
        prefix = f"{self.base}/{job_id}/"
        rows = []
        for path, _info in objects:
            relative = path[len(prefix):] if path.startswith(prefix) else path
            self.fs.rm(path)
            rows.append({"job_id": job_id, "what": _category(relative), "reason": reason, "at": now,
                         "object_hash": hashlib.sha256(relative.encode()).hexdigest()[:32]})
        if shred and storage.shred(job_id, settings=self.settings):
            rows.append({"job_id": job_id, "what": "key", "reason": reason, "at": now, "object_hash": None})
        if shred:
            try:
                self.fs.rm(f"{self.base}/{job_id}", recursive=True)
            except (FileNotFoundError, OSError):
                pass
        self._record(rows)
        return len(objects)

    def purge_job(self, job_id: str, reason: str = "deleted") -> int:
        """Delete every object of a job and its data key now (``DELETE /v1/jobs/{id}``); returns the count."""
        storage.keys.check_scope(job_id)
        return self._delete(job_id, self._objects(job_id), reason, shred=True)

    def remove_intermediates(self, job_id: str) -> int:
        """Delete a finished job's intermediate files (its ``work/`` folder and the like)."""
        storage.keys.check_scope(job_id)
        found = [o for d in INTERMEDIATE_DIRS for o in self._objects(job_id, d)]
        return self._delete(job_id, found, "job_ended", shred=False)

    def retention_for(self, key_name: str | None) -> timedelta:
        """The retention period for jobs of an API key (per-key override, else the default)."""
        days = self.settings.retention_days_by_key.get(key_name or "", self.settings.retention_days)
        return timedelta(days=days)

    def sweep(self, now: datetime | None = None, key_of: Callable[[str], str | None] | None = None) -> SweepReport:
        """Delete every job whose newest object is older than its retention period; returns counts."""
        now = now or datetime.now(UTC)
        report = SweepReport()
        for job_id in self.jobs():
            objects = self._objects(job_id)
            times = [t for _, info in objects if (t := _mtime(info)) is not None]
            newest = max(times) if times else None
            if newest is not None and now - newest < self.retention_for(key_of(job_id) if key_of else None):
                report.kept_jobs += 1
                continue
            report.objects += self._delete(job_id, objects, "expired", shred=True)
            report.jobs.append(job_id)
        return report

    def audit(self, job_id: str | None = None) -> list[dict[str, Any]]:
        """Audit rows, oldest first (optionally of one job)."""
        query = sa.select(audit_table).order_by(audit_table.c.id)
        if job_id is not None:
            query = query.where(audit_table.c.job_id == job_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]


def sweep(settings: Settings | None = None, now: datetime | None = None,
          key_of: Callable[[str], str | None] | None = None) -> SweepReport:
    """One retention sweep over the configured storage root (``swapface sweep``; ``serve`` runs it periodically)."""
    return Retention(settings).sweep(now=now, key_of=key_of)
