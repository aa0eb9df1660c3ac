"""Signed job webhooks (Standard Webhooks), delivered with retries to URLs that cannot reach inside the network.

- Events are thin: ``{"type": "job.succeeded", "timestamp": ..., "data": {"job_id": ..., "status": ...}}``.
- Signature: ``webhook-signature: v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`` with the
  ``whsec_`` secret; ``webhook-id`` stays the same across retries, ``webhook-timestamp`` is per attempt.
- URL policy: https only (http when ``webhook_allow_http``), no credentials in the URL, and every
  address the host resolves to must be public; loopback, private, link-local (cloud metadata),
  unique-local, multicast, reserved and their IPv4-mapped IPv6 forms are refused unless allow-listed.
- No DNS rebinding: the host is resolved once per attempt and the request goes to that validated
  address, with the ``Host`` header and TLS SNI/certificate check of the name. No proxies, no redirects.
- 2xx delivered; 3xx and other statuses are failures retried with exponential backoff (``Retry-After``
  honoured); 410 Gone disables the endpoint. State lives in ``webhook_deliveries`` and
  ``webhook_endpoints`` on the job store's database.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa

from swapface.config import Settings
from swapface.errors import InputError
from swapface.jobs.db import create_tables, make_engine

log = logging.getLogger("swapface.webhooks")

EVENTS = {"succeeded": "job.succeeded", "failed": "job.failed", "cancelled": "job.cancelled"}

metadata = sa.MetaData()
deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the webhook-id, stable across retries
    sa.Column("job_id", sa.String(128), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("endpoint", sa.String(64), nullable=False),  # sha256 of the URL: never the URL itself
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending | delivered | failed | disabled | refused
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("job_id", "event", name="uq_webhook_delivery_job_event"),
)
endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("endpoint", sa.String(64), primary_key=True),
    sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
)


# --- URL policy --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WebhookTarget:
    """A webhook URL that passed the policy, pinned to the address it was validated with."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]

    def connect_url(self, address: str) -> str:
        """The URL with a validated address in place of the name."""
        ip = ipaddress.ip_address(address)
        host = f"[{ip}]" if ip.version == 6 else str(ip)
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and not _public(embedded):
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_link_local)


def _allowed(host: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allowlist: list[str]) -> bool:
    for entry in allowlist:
        entry = entry.strip()
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            if entry.lower().rstrip(".") == host.lower().rstrip("."):
                return True
    return False


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise InputError("webhook_url: the host name does not resolve", code="bad_webhook_url") from None
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]
        if addr not in seen:
            seen.append(addr)
    return seen


def validate_webhook_url(url: str, settings: Settings) -> WebhookTarget:
    """Check a webhook URL against the policy and resolve it once; InputError (HTTP 422) says why not."""
    def refuse(reason: str) -> InputError:
        return InputError(f"webhook_url: {reason}", code="bad_webhook_url")

    if not isinstance(url, str) or len(url) > 2048:
        raise refuse("must be a URL of at most 2048 characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise refuse("is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or (scheme == "http" and not settings.webhook_allow_http):
        raise refuse("must use https")
    if parts.username or parts.password:
        raise refuse("must not carry credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise refuse("has no host")
    port = port or (443 if scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        literal = ipaddress.ip_address(host)
        addresses = [str(literal)]
    except ValueError:
        addresses = _resolve(host, port)
    if not addresses:
        raise refuse("the host name does not resolve")
    for addr in addresses:  # every address must pass: a name with one private address is refused
        ip = ipaddress.ip_address(addr)
        if not _public(ip) and not _allowed(host, ip, settings.webhook_allowlist):
            raise refuse("points to a private, loopback or link-local address; webhooks must reach a public host")
    return WebhookTarget(scheme, host, port, path, tuple(addresses))


# --- signing -----------------------------------------------------------------------------------------

def new_secret() -> str:
    """A fresh ``whsec_`` signing secret for a job or an endpoint."""
    import secrets

    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


MIN_SECRET_BYTES, MAX_SECRET_BYTES = 16, 64
MAX_RESPONSE_BYTES = 4096  # of a webhook response body: only its status matters


def check_secret(secret: str) -> None:
    """Refuse a caller's signing secret unless it is ``whsec_`` + base64 of 16–64 bytes (checked at submit)."""
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        raise InputError("webhook_secret must be a Standard Webhooks secret ('whsec_' + base64)", code="bad_webhook_secret")
    key = _secret_bytes(secret)
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise InputError(f"webhook_secret must hold {MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} bytes after 'whsec_' "
                         "(base64)", code="bad_webhook_secret")


def _secret_bytes(secret: str) -> bytes:
    raw = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        raise InputError("webhook secret must be 'whsec_' followed by base64", code="bad_webhook_secret") from None


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """The Standard Webhooks signature header value: ``v1,<base64 HMAC-SHA256>``."""
    digest = hmac.new(_secret_bytes(secret), f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def event_body(job_id: str, status: str, when: datetime | None = None) -> str:
    """The thin JSON event for a finished job (ids and status only)."""
    if status not in EVENTS:
        raise InputError(f"no webhook event for status {status!r}")
    when = when or datetime.now(UTC)
    doc = {"type": EVENTS[status], "timestamp": when.isoformat().replace("+00:00", "Z"),
           "data": {"job_id": job_id, "status": status}}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


# --- delivery ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeliveryResult:
    """How a webhook delivery ended: state, attempts, last HTTP status."""

    id: str
    state: str
    attempts: int
    last_status: int | None


def _endpoint_hash(url: str) -> str:
    return hashlib.sha256(url.strip().encode()).hexdigest()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


def _attempt(target: WebhookTarget, msg_id: str, body: str, secret: str, settings: Settings) -> httpx.Response:
    """One POST, over within ``webhook_timeout_s`` in total (a peer trickling its answer byte by byte is cut off)."""
    try:
        return asyncio.run(asyncio.wait_for(_attempt_async(target, msg_id, body, secret, settings),
                                            settings.webhook_timeout_s))
    except TimeoutError:
        raise httpx.TimeoutException("the webhook endpoint did not answer within the deadline") from None


async def _attempt_async(target: WebhookTarget, msg_id: str, body: str, secret: str,
                         settings: Settings) -> httpx.Response:
    timestamp = int(time.time())
    headers = {
        "host": target.host_header,
        "content-type": "application/json",
        "user-agent": "swapface-webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }
    verify: Any = True
    if getattr(settings, "webhook_ca_file", None):
        import ssl

        verify = ssl.create_default_context(cafile=str(settings.webhook_ca_file))
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, verify=verify,
                                 timeout=settings.webhook_timeout_s) as client:
        for i, address in enumerate(target.addresses):  # only addresses that passed the policy
            request = client.build_request("POST", target.connect_url(address), content=body.encode(),
                                           headers=headers, extensions=extensions)
            try:
                response = await client.send(request, stream=True)
            except httpx.ConnectError:
                if i == len(target.addresses) - 1:
                    raise
                continue
            try:  # read a few KB at most: a huge or endless answer costs no memory
                seen = 0
                async for block in response.aiter_raw(1024):
                    seen += len(block)
                    if seen >= MAX_RESPONSE_BYTES:
                        break
            finally:
                await response.aclose()
            return response
        raise httpx.ConnectError("no address")


class WebhookDeliveries:
    """Durable delivery state on the job store's database."""

    def __init__(self, settings: Settings, engine: sa.Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.resolved_database_url())
        create_tables(metadata, self.engine)

    def is_disabled(self, url: str) -> bool:
        """Whether an endpoint was disabled (it answered 410 Gone)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(endpoints.c.endpoint).where(
                endpoints.c.endpoint == _endpoint_hash(url))).first() is not None

    def _disable(self, url: str, reason: str) -> None:
        with self.engine.begin() as conn:
            if conn.execute(sa.select(endpoints.c.endpoint).where(endpoints.c.endpoint == _endpoint_hash(url))).first():
                return
            conn.execute(endpoints.insert().values(endpoint=_endpoint_hash(url), disabled_at=datetime.now(UTC),
                                                   reason=reason))

    def _row(self, job_id: str, event: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(deliveries).where(deliveries.c.job_id == job_id,
                                                           deliveries.c.event == event)).first()
        return dict(row._mapping) if row else None

    def _start(self, job_id: str, event: str, url: str, body: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        row = {"id": "msg_" + uuid.uuid4().hex, "job_id": job_id, "event": event, "endpoint": _endpoint_hash(url),
               "body": body, "state": "pending", "attempts": 0, "last_status": None, "next_attempt_at": now,
               "created_at": now, "updated_at": now}
        try:
            with self.engine.begin() as conn:
                conn.execute(deliveries.insert().values(**row))
        except sa.exc.IntegrityError:  # already started (a retried worker): continue that delivery
            existing = self._row(job_id, event)
            assert existing is not None
            return existing
        return row

    def _update(self, msg_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(deliveries.update().where(deliveries.c.id == msg_id)
                         .values(updated_at=datetime.now(UTC), **values))

    def deliver(self, job_id: str, status: str, url: str, secret: str,
                sleep: Callable[[float], object] = time.sleep) -> DeliveryResult:
        """Deliver the job's event, retrying until delivered, disabled or out of attempts (blocking)."""
        while True:
            result, wait = self.step(job_id, status, url, secret)
            if wait is None:
                return result
            sleep(wait)

    def step(self, job_id: str, status: str, url: str, secret: str) -> tuple[DeliveryResult, float | None]:
        """Make the next attempt of the job's event; returns the state and the wait before the next attempt
        (None once delivered, disabled, refused or out of attempts). A scheduler calls it again after the wait,
        so a failing endpoint holds no thread between its attempts."""
        body = event_body(job_id, status)
        row = self._start(job_id, EVENTS[status], url, body)
        msg_id, attempts, body = row["id"], row["attempts"], row["body"]
        if row["state"] != "pending":
            return DeliveryResult(msg_id, row["state"], attempts, row["last_status"]), None
        if self.is_disabled(url):
            self._update(msg_id, state="disabled", next_attempt_at=None)
            return DeliveryResult(msg_id, "disabled", attempts, None), None
        if attempts >= self.settings.webhook_max_attempts:
            return self._give_up(job_id, msg_id, attempts, row["last_status"]), None
        delay: float | None = None
        try:
            target = validate_webhook_url(url, self.settings)  # resolve now; connect to this address only
        except InputError:
            self._update(msg_id, state="refused", next_attempt_at=None)
            log.warning("webhook refused by the URL policy", extra={"job_id": job_id, "webhook_id": msg_id})
            return DeliveryResult(msg_id, "refused", attempts, None), None
        attempts += 1
        last_status: int | None = None
        try:
            response = _attempt(target, msg_id, body, secret, self.settings)
            last_status = response.status_code
            delay = _retry_after(response)
        except httpx.HTTPError as exc:
            log.info("webhook attempt failed", extra={"job_id": job_id, "webhook_id": msg_id,
                                                      "error": type(exc).__name__, "attempt": attempts})
        if last_status is not None and 200 <= last_status < 300:
            self._update(msg_id, state="delivered", attempts=attempts, last_status=last_status, next_attempt_at=None)
            log.info("webhook delivered", extra={"job_id": job_id, "webhook_id": msg_id, "attempt": attempts})
            return DeliveryResult(msg_id, "delivered", attempts, last_status), None
        if last_status == 410:
            self._disable(url, "410 Gone")
            self._update(msg_id, state="disabled", attempts=attempts, last_status=410, next_attempt_at=None)
            log.warning("webhook endpoint disabled after 410", extra={"job_id": job_id, "webhook_id": msg_id})
            return DeliveryResult(msg_id, "disabled", attempts, 410), None
        if attempts >= self.settings.webhook_max_attempts:
            self._update(msg_id, attempts=attempts, last_status=last_status)
            return self._give_up(job_id, msg_id, attempts, last_status), None
        backoff = self.settings.webhook_backoff_s * 2 ** (attempts - 1)
        wait = min(self.settings.webhook_max_delay_s, max(backoff, delay or 0.0))
        self._update(msg_id, attempts=attempts, last_status=last_status,
                     next_attempt_at=datetime.fromtimestamp(time.time() + wait, UTC))
        return DeliveryResult(msg_id, "pending", attempts, last_status), wait

    def _give_up(self, job_id: str, msg_id: str, attempts: int, last_status: int | None) -> DeliveryResult:
        self._update(msg_id, state="failed", next_attempt_at=None)
        log.warning("webhook delivery failed", extra={"job_id": job_id, "webhook_id": msg_id, "attempt": attempts,
                                                      "status_code": last_status})
        return DeliveryResult(msg_id, "failed", attempts, last_status)

    def get(self, job_id: str, status: str) -> dict[str, Any] | None:
        """The delivery row of a job's event (tests and operators)."""
        return self._row(job_id, EVENTS[status])


def notify_job_finished(job_id: str, status: str, webhook_url: str | None, secret: str | None,
                        settings: Settings, *, engine: sa.Engine | None = None,
                        sleep: Callable[[float], object] = time.sleep) -> DeliveryResult | None:
    """Send ``job.succeeded|failed|cancelled`` to the job's webhook (blocking, with retries); None without one."""
    if not webhook_url or status not in EVENTS:
        return None
    if not secret:
        raise InputError("a webhook needs a signing secret", code="bad_webhook_secret")
    return WebhookDeliveries(settings, engine).deliver(job_id, status, webhook_url, secret, sleep=sleep)
