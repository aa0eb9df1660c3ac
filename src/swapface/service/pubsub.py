"""Cloud Storage → Pub/Sub push → job: ``POST /v1/events/pubsub``.

A push envelope (``message.data`` base64 JSON, ``message.attributes``, ``messageId``/``message_id``,
``publishTime``, ``subscription``) carrying an ``OBJECT_FINALIZE`` notification creates one job for
the new object. Which source face and options apply comes from ``SWAPFACE_PUBSUB_RULES`` (first rule
whose bucket and prefix match), or from the object's metadata (``swapface-source``,
``swapface-options``) where the rule sets ``"allow_metadata": true``. Delivery is at least once, so
events are deduplicated on bucket/object/generation with a unique constraint in ``pubsub_events``.
Other events, objects no rule covers and objects under a rule's ``output_prefix`` (the jobs' own
results) are acknowledged and ignored. When ``SWAPFACE_PUBSUB_AUDIENCE`` is set, the push's OIDC
bearer token must verify for that audience (and ``SWAPFACE_PUBSUB_SERVICE_ACCOUNT``'s email).

Jobs are created through a callable ``create_job(PubSubJobRequest) -> job id``: the service sets
``app.state.pubsub_create_job``; without one the router answers 503 and Pub/Sub retries later.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from swapface.config import Settings, load_settings
from swapface.errors import InputError
from swapface.jobs.db import create_tables, make_engine
from swapface.options import parse_options

log = logging.getLogger("swapface.pubsub")

GOOGLE_ISSUERS = {"https://accounts.google.com", "accounts.google.com"}
CLAIM_TIMEOUT = timedelta(minutes=5)

metadata = sa.MetaData()
events = sa.Table(
    "pubsub_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("bucket", sa.String(222), nullable=False),
    sa.Column("object", sa.String(1024), nullable=False),
    sa.Column("generation", sa.String(32), nullable=False),
    sa.Column("job_id", sa.String(128), nullable=True),  # NULL while the job is being created
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("bucket", "object", "generation", name="uq_pubsub_object_generation"),
)


@dataclass(frozen=True)
class PubSubJobRequest:
    """A job to create for a new Cloud Storage object."""

    target: str  # gs://bucket/object
    generation: str
    sources: tuple[str, ...]
    options: dict[str, Any]
    output: str | None
    idempotency_key: str  # pubsub:bucket/object#generation — the same for every redelivery
    content_type: str | None = None
    size: int | None = None
    rule: dict[str, Any] = field(default_factory=dict)


JobCreator = Callable[[PubSubJobRequest], str]


def _engine(request: Request, settings: Settings) -> sa.Engine:
    engine = getattr(request.app.state, "pubsub_engine", None)
    if engine is None:
        engine = make_engine(settings.resolved_database_url())
        create_tables(metadata, engine)
        request.app.state.pubsub_engine = engine
    return engine


def _settings(request: Request) -> Settings:
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else load_settings()


def verify_push_token(authorization: str | None, settings: Settings) -> None:
    """Check the push request's OIDC token (audience, issuer, service-account email) when configured."""
    if not settings.pubsub_audience:
        return
    from google.auth import exceptions as google_exceptions
    from google.auth.transport.requests import Request as GoogleRequest
    from google.oauth2 import id_token

    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "a Pub/Sub OIDC bearer token is required")
    token = authorization.split(" ", 1)[1].strip()
    try:
        claims = id_token.verify_token(token, GoogleRequest(), audience=settings.pubsub_audience,
                                       certs_url=settings.pubsub_certs_url, clock_skew_in_seconds=10)
    except (ValueError, google_exceptions.GoogleAuthError):
        raise HTTPException(401, "the Pub/Sub token did not verify (signature, expiry or audience)") from None
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise HTTPException(401, "the Pub/Sub token was not issued by Google")
    expected = settings.pubsub_service_account
    if expected and (claims.get("email") != expected or not claims.get("email_verified", False)):
        raise HTTPException(403, "the Pub/Sub token belongs to another service account")


BASE64 = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class PushMessage(BaseModel):
    """The message of a push: base64 data (the notification's JSON) and string attributes."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    data: str | None = Field(None, pattern=BASE64, description="base64 of the notification's JSON")
    attributes: dict[str, str] = Field(default_factory=dict)
    message_id: str | None = Field(None, alias="messageId")
    publish_time: str | None = Field(None, alias="publishTime")


class PushEnvelope(BaseModel):
    """A Pub/Sub push request's body (fields Pub/Sub adds later are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")

    message: PushMessage
    subscription: str | None = None


def _parse(envelope: PushEnvelope) -> tuple[dict[str, str], dict[str, Any]]:
    """The message attributes and decoded data of a push envelope (data that is not a JSON object, such as a
    notification sent with payloadFormat NONE, reads as none: the attributes say it all)."""
    data: dict[str, Any] = {}
    if envelope.message.data:
        try:
            decoded = json.loads(base64.b64decode(envelope.message.data, validate=True))
        except (binascii.Error, ValueError):
            decoded = None
        data = decoded if isinstance(decoded, dict) else {}
    return dict(envelope.message.attributes), data


def _rule_for(settings: Settings, bucket: str, name: str) -> tuple[dict[str, Any] | None, bool]:
    """The first rule covering the object, and whether the object is some rule's own output."""
    for rule in settings.pubsub_rules:
        if rule.get("bucket") == bucket and rule.get("output_prefix") and name.startswith(rule["output_prefix"]):
            return None, True
    for rule in settings.pubsub_rules:
        if rule.get("bucket") in (bucket, "*") and name.startswith(rule.get("prefix", "")):
            return rule, False
    return None, False


def _job_request(rule: dict[str, Any], bucket: str, name: str, generation: str,
                 data: dict[str, Any]) -> PubSubJobRequest:
    meta = data.get("metadata") or {}
    source = rule.get("source")
    options = dict(rule.get("options") or {})
    if rule.get("allow_metadata"):
        source = meta.get("swapface-source") or source
        if meta.get("swapface-options"):
            try:
                extra = json.loads(meta["swapface-options"])
            except ValueError:
                raise InputError("object metadata swapface-options is not JSON") from None
            if not isinstance(extra, dict):
                raise InputError("object metadata swapface-options must be a JSON object")
            options.update(extra)
    if not source:
        raise InputError("no source face configured for this object")
    sources = tuple(source) if isinstance(source, list) else (str(source),)
    parse_options(options)  # unknown or invalid options: refuse now, not in the worker
    output = f"gs://{bucket}/{rule['output_prefix']}{name}" if rule.get("output_prefix") else None
    size = data.get("size")
    return PubSubJobRequest(
        target=f"gs://{bucket}/{name}", generation=generation, sources=sources, options=options, output=output,
        idempotency_key=f"pubsub:{bucket}/{name}#{generation}", content_type=data.get("contentType"),
        size=int(size) if isinstance(size, (int, str)) and str(size).isdigit() else None, rule=rule,
    )


def _claim(engine: sa.Engine, bucket: str, name: str, generation: str) -> tuple[bool, str | None]:
    """Claim the object's generation: (True, None) when this delivery must create the job,
    (False, job id) when another delivery already did (or is doing it right now)."""
    now = datetime.now(UTC)
    key = (events.c.bucket == bucket) & (events.c.object == name) & (events.c.generation == generation)
    try:
        with engine.begin() as conn:
            conn.execute(events.insert().values(bucket=bucket, object=name, generation=generation, job_id=None,
                                                claimed_at=now))
        return True, None
    except sa.exc.IntegrityError:
        pass
    with engine.begin() as conn:
        row = conn.execute(sa.select(events.c.job_id, events.c.claimed_at).where(key)).first()
        if row is None:
            return _claim(engine, bucket, name, generation)
        if row.job_id is not None:
            return False, row.job_id
        claimed = row.claimed_at if row.claimed_at.tzinfo else row.claimed_at.replace(tzinfo=UTC)
        if now - claimed < CLAIM_TIMEOUT:
            return False, None  # in flight elsewhere
        # a creator died mid-way: take the claim over (compare-and-set on the old claim time)
        taken = conn.execute(events.update().where(key & events.c.job_id.is_(None)
                                                   & (events.c.claimed_at == row.claimed_at))
                             .values(claimed_at=now)).rowcount
        return bool(taken), None


def _finish(engine: sa.Engine, bucket: str, name: str, generation: str, job_id: str | None) -> None:
    key = (events.c.bucket == bucket) & (events.c.object == name) & (events.c.generation == generation)
    with engine.begin() as conn:
        if job_id is None:
            conn.execute(events.delete().where(key & events.c.job_id.is_(None)))
        else:
            conn.execute(events.update().where(key).values(job_id=job_id))


router = APIRouter(tags=["events"])


@router.post("/v1/events/pubsub", status_code=201, responses={
    200: {"description": "Acknowledged: a duplicate delivery, or an event or object that makes no job"},
    409: {"description": "Another delivery of this object is creating its job; Pub/Sub retries"}})
def pubsub_push(request: Request, body: PushEnvelope, authorization: str | None = Header(None)) -> Response:
    """Create a job for a Cloud Storage OBJECT_FINALIZE notification (Pub/Sub push); other events are acknowledged."""
    settings = _settings(request)
    verify_push_token(authorization, settings)  # a sync route: FastAPI runs it in its thread pool
    attributes, data = _parse(body)
    if attributes.get("eventType") != "OBJECT_FINALIZE":
        return JSONResponse({"status": "ignored", "reason": "not an OBJECT_FINALIZE event"}, status_code=200)
    bucket = attributes.get("bucketId") or data.get("bucket")
    name = attributes.get("objectId") or data.get("name")
    generation = attributes.get("objectGeneration") or str(data.get("generation") or "")
    if not bucket or not name or not generation:
        raise HTTPException(400, "the notification lacks bucketId, objectId or objectGeneration")
    rule, is_output = _rule_for(settings, bucket, name)
    if rule is None:
        reason = "the object is a job output" if is_output else "no rule covers this object"
        return JSONResponse({"status": "ignored", "reason": reason}, status_code=200)
    try:
        job_request = _job_request(rule, bucket, name, generation, data)
    except InputError as exc:  # retrying cannot fix configuration or metadata: acknowledge, say why
        log.warning("pubsub event not turned into a job", extra={"code": exc.code})
        return JSONResponse({"status": "ignored", "reason": str(exc)}, status_code=200)
    create_job: JobCreator | None = getattr(request.app.state, "pubsub_create_job", None)
    if create_job is None:
        raise HTTPException(503, "job creation is not available yet; Pub/Sub will retry")
    engine = _engine(request, settings)
    first, job_id = _claim(engine, bucket, name, generation)
    if not first:
        if job_id is None:  # another delivery is creating it: ask Pub/Sub to come back
            raise HTTPException(409, "this object's job is being created by another delivery")
        return JSONResponse({"status": "duplicate", "job_id": job_id}, status_code=200)
    try:
        job_id = create_job(job_request)
    except Exception as exc:
        _finish(engine, bucket, name, generation, None)  # let a redelivery try again
        log.warning("pubsub job creation failed", extra={"error": type(exc).__name__})
        raise HTTPException(503, "the job could not be created; Pub/Sub will retry") from None
    _finish(engine, bucket, name, generation, job_id)
    log.info("pubsub job created", extra={"job_id": job_id})
    return JSONResponse({"status": "created", "job_id": job_id}, status_code=201)


def create_app(settings: Settings | None = None, create_job: JobCreator | None = None) -> Any:
    """A minimal app with only this router (tests, or a dedicated event-intake deployment)."""
    from fastapi import FastAPI

    app = FastAPI()
    app.state.settings = settings or load_settings()
    app.state.pubsub_create_job = create_job
    app.include_router(router)
    return app
