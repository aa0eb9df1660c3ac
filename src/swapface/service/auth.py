"""API keys: created, listed and revoked from the CLI; stored hashed; presented as ``Authorization: Bearer``.

A key's id is its owner name for every job it creates: one key never sees another key's jobs.
With ``SWAPFACE_AUTH=auto`` (the default) a fresh install with no key serves loopback callers as the
``local`` owner, so the laptop case needs no setup; the first key created switches keys on for everyone.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from swapface.errors import InputError
from swapface.jobs.db import create_tables, read_only

KEY_PREFIX = "swf_"
LOCAL_OWNER = "local"

metadata = sa.MetaData()
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),  # sha256 of the key: never the key
    sa.Column("hint", sa.String(16), nullable=False),  # first characters, to tell keys apart in listings
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
    sa.Column("max_concurrent_jobs", sa.Integer, nullable=True),
    sa.Column("max_upload_mb", sa.Float, nullable=True),
    sa.Column("jobs_per_hour", sa.Integer, nullable=True),
)


@dataclass(frozen=True)
class ApiKey:
    """A key's record (never the key itself) and its limits."""

    id: str
    name: str
    hint: str
    created_at: float
    revoked_at: float | None
    max_concurrent_jobs: int | None
    max_upload_mb: float | None
    jobs_per_hour: int | None

    @classmethod
    def from_row(cls, row: Any) -> "ApiKey":
        values = dict(row._mapping)
        values.pop("key_hash", None)
        return cls(**values)


LOCAL_CALLER = ApiKey(LOCAL_OWNER, LOCAL_OWNER, "", 0.0, None, None, None, None)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """The key table of the job store's database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        create_tables(metadata, engine)

    def create(self, name: str, *, max_concurrent_jobs: int | None = None, max_upload_mb: float | None = None,
               jobs_per_hour: int | None = None) -> tuple[ApiKey, str]:
        """A new key: returns its record and the key itself (shown once, stored only as a hash)."""
        name = name.strip()
        if not name or len(name) > 128:
            raise InputError("a key needs a name of 1-128 characters", code="bad_key_name")
        for limit in (max_concurrent_jobs, max_upload_mb, jobs_per_hour):
            if limit is not None and limit <= 0:
                raise InputError("key limits must be positive", code="bad_key_limit")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        row = {"id": "key_" + uuid.uuid4().hex[:16], "name": name, "key_hash": _hash(key), "hint": key[:8],
               "created_at": time.time(), "revoked_at": None, "max_concurrent_jobs": max_concurrent_jobs,
               "max_upload_mb": max_upload_mb, "jobs_per_hour": jobs_per_hour}
        with self.engine.begin() as conn:
            conn.execute(api_keys.insert().values(**row))
        return ApiKey.from_row(_Row(row)), key

    def list(self) -> list[ApiKey]:
        with read_only(self.engine) as conn:
            return [ApiKey.from_row(r) for r in conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at))]

    def revoke(self, key_id_or_name: str) -> int:
        """Revoke keys by id or by name; returns how many were revoked."""
        with self.engine.begin() as conn:
            return conn.execute(api_keys.update().where(
                ((api_keys.c.id == key_id_or_name) | (api_keys.c.name == key_id_or_name))
                & api_keys.c.revoked_at.is_(None)).values(revoked_at=time.time())).rowcount

    def any_active(self) -> bool:
        with read_only(self.engine) as conn:
            return conn.execute(sa.select(api_keys.c.id).where(api_keys.c.revoked_at.is_(None)).limit(1)).first() is not None

    def any_created(self) -> bool:
        """Whether a key was ever created (revoked ones count): keyless access ends with the first key."""
        with read_only(self.engine) as conn:
            return conn.execute(sa.select(api_keys.c.id).limit(1)).first() is not None

    def authenticate(self, key: str) -> ApiKey | None:
        """The active key matching ``key``; None for unknown or revoked keys."""
        digest = _hash(key)
        with read_only(self.engine) as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_hash == digest)).first()
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
            return None
        return ApiKey.from_row(row)

    def name_of(self, key_id: str) -> str | None:
        with read_only(self.engine) as conn:
            return conn.execute(sa.select(api_keys.c.name).where(api_keys.c.id == key_id)).scalar()


class _Row:
    """Adapter so a dict can go through ``ApiKey.from_row``."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._mapping = values


def is_loopback(host: str | None) -> bool:
    """Whether a client address is this machine (the keyless local mode serves only those)."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
