"""The HTTP API (FastAPI): jobs under /v1, health, metrics, Pub/Sub push, and the web page at /.

Routes are thin: they authenticate the caller, check limits, hand the request to
:mod:`swapface.service.intake` or the job store, and shape the answer. Errors a caller can fix are
4xx with ``{"detail": message, "code": code}``; nothing a caller sees holds a path or a trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, MutableMapping
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import TypeAdapter, ValidationError
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from swapface import storage
from swapface.config import Settings
from swapface.errors import InputError, JobError, SwapfaceError
from swapface.jobs.store import JobRecord, JobState, LimitReached, NewJob, new_job_id
from swapface.media.video_limits import VideoLimits, limits_to_spec
from swapface.service import intake, limits, openapi, streams
from swapface.service.auth import LOCAL_CALLER, ApiKey, is_loopback
from swapface.service.faults import install_fault_handlers
from swapface.service.headers import SecurityHeaders
from swapface.service.local_guard import CrossSiteRefused, check_local_request
from swapface.service.runtime import ServiceRuntime

log = logging.getLogger("swapface.api")

SSE_POLL_S = 0.5
SSE_KEEPALIVE_S = 15.0
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "mp4": "video/mp4"}


class Problem(HTTPException):
    """An HTTP error with a machine-readable code beside the message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers)
        self.code = code


class BodyTooLarge(Problem):
    def __init__(self, limit_mb: float) -> None:
        super().__init__(413, "upload_too_large", f"the upload is larger than {limit_mb:g} MB")


class UploadLimit:
    """ASGI middleware: POST bodies to /v1/jobs over ``SWAPFACE_MAX_UPLOAD_MB`` are refused while they stream in."""

    def __init__(self, app: Any, limit_mb: float) -> None:
        self.app, self.limit_mb, self.limit = app, limit_mb, int(limit_mb * 1024 * 1024)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/v1/jobs"):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _send_problem(send, BodyTooLarge(self.limit_mb))
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge(self.limit_mb)
            return message

        await self.app(scope, counted, send)


class WholeMultiPart(MultiPartParser):
    """Starlette's multipart parser, noting whether the body reached its closing boundary (else it was cut short)."""

    ended = False

    def on_end(self) -> None:
        self.ended = True


async def _send_problem(send: Any, problem: Problem) -> None:
    body = json.dumps({"detail": problem.detail, "code": problem.code}).encode()
    await send({"type": "http.response.start", "status": problem.status_code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# --- dependencies ---------------------------------------------------------------------------------

def runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


def caller(request: Request, authorization: str | None = Header(None)) -> ApiKey:
    """The API key behind the request; keyless loopback callers are ``local`` until a key exists (auth=auto)."""
    rt: ServiceRuntime = request.app.state.runtime
    if authorization and authorization.lower().startswith("bearer "):
        key = rt.keys.authenticate(authorization.split(" ", 1)[1].strip())
        if key is None:
            raise Problem(401, "bad_api_key", "the API key is unknown or revoked", {"WWW-Authenticate": "Bearer"})
        return key
    if rt.settings.auth == "auto" and not rt.keys.any_created():  # revoking every key does not reopen it
        if is_loopback(request.client.host if request.client else None):
            check_local_request(request)
            return LOCAL_CALLER
        raise Problem(401, "api_key_required", "create an API key ('swapface keys create') to call this service "
                      "from another machine", {"WWW-Authenticate": "Bearer"})
    raise Problem(401, "api_key_required", "send 'Authorization: Bearer <API key>'", {"WWW-Authenticate": "Bearer"})


def _bearer(request: Request) -> str | None:
    """The API key the request presented, if any."""
    value = request.headers.get("authorization", "")
    return value.split(" ", 1)[1].strip() if value.lower().startswith("bearer ") else None


def own_job(job_id: str, rt: ServiceRuntime, key: ApiKey) -> JobRecord:
    """The caller's job; another caller's job answers exactly like a missing one."""
    job = rt.store.get(job_id, owner=key.id)
    if job is None:
        raise Problem(404, "not_found", "no such job")
    return job


# --- request handling helpers ---------------------------------------------------------------------

def check_limits(rt: ServiceRuntime, key: ApiKey, content_length: str | None, idempotency_key: str | None = None) -> None:
    """Per-key limits, early (before the body is read): concurrent jobs and jobs per hour (429 + Retry-After),
    upload size (413). The job counts are checked again in the transaction that inserts the job, where racing
    requests are serialized; a replay of an Idempotency-Key this key already used is no new job."""
    if (key.max_upload_mb is not None and content_length and content_length.isdigit()
            and int(content_length) > key.max_upload_mb * 1024 * 1024):
        raise Problem(413, "upload_too_large", f"this API key may upload at most {key.max_upload_mb:g} MB per job")
    if idempotency_key and rt.store.by_idempotency_key(key.id, idempotency_key) is not None:
        return
    if rt.disk_low():
        raise Problem(507, "insufficient_storage", "the service is out of disk space; try again later")
    if key.max_concurrent_jobs is not None or key.jobs_per_hour is not None:
        try:
            rt.store.admit(key.id, key.max_concurrent_jobs, key.jobs_per_hour)
        except LimitReached as reached:
            raise limit_problem(key, reached) from None


def limit_problem(key: ApiKey, reached: LimitReached) -> Problem:
    """The 429 answer for a per-key job limit the store found reached."""
    if reached.code == "too_many_active_jobs":
        message = f"this API key may have {key.max_concurrent_jobs} queued or running job(s) or live session(s) at once"
    else:
        message = f"this API key may start {key.jobs_per_hour} job(s) or live session(s) per hour"
    return Problem(429, reached.code, message, {"Retry-After": str(reached.retry_after)})


async def _limited(stream: AsyncIterator[bytes], limit_mb: float) -> AsyncGenerator[bytes, None]:
    """The request body, refused with 413 once it passes ``limit_mb`` (bodies without Content-Length too)."""
    seen, limit = 0, int(limit_mb * 1024 * 1024)
    async for block in stream:
        seen += len(block)
        if seen > limit:
            raise BodyTooLarge(limit_mb)
        yield block


async def _save_upload(upload: UploadFile, local: Path) -> int:
    """Copy an uploaded part to ``local``; returns its size.

    The writes stay on the event loop: a 1 MB block to a local file takes about a millisecond, less than a
    hop to the thread pool costs on a busy machine (measured: a lone POST's p50 doubled with the hops)."""
    size = 0
    with open(local, "wb") as out:  # noqa: ASYNC230
        while block := await upload.read(1 << 20):
            out.write(block)
            size += len(block)
    return size


async def parse_request(request: Request, scratch: Path, limit_mb: float | None = None) -> intake.JobRequest:
    """Read a multipart form (uploads + fields) or a JSON body (references) into a JobRequest.

    ``limit_mb`` is the caller's per-key upload limit, enforced while the body streams in."""
    content_type = request.headers.get("content-type", "")
    parsed = intake.JobRequest()
    if content_type.startswith("application/json"):
        try:
            raw = await limits.read_limited(request.stream())
        except limits.JsonTooLarge:
            raise Problem(413, "body_too_large", f"JSON bodies are at most {limits.MAX_JSON_BYTES // 1024} KB; "
                          "send files as multipart/form-data") from None
        text = raw.decode("utf-8", "replace")
        if limits.nesting_depth(text) > limits.MAX_JSON_DEPTH:
            raise InputError(f"the body nests deeper than {limits.MAX_JSON_DEPTH} levels", code="bad_request")
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):
            raise Problem(400, "bad_request", "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise Problem(400, "bad_request", "the body must be a JSON object")
        fields = {"source_uri": body.pop("sources", None), "target_uri": body.pop("target", None),
                  "reference_face_uri": body.pop("reference_face", None)}
        for name, value in fields.items():
            if value is not None:
                parsed.uris[name] = [str(v) for v in (value if isinstance(value, list) else [value])]
        options = body.pop("options", {})
        parsed.webhook_url, parsed.webhook_secret = body.pop("webhook_url", None), body.pop("webhook_secret", None)
        if body:
            raise InputError(f"unknown field(s): {', '.join(sorted(body))}", code="unknown_field")
        if not isinstance(options, dict):
            raise InputError("'options' must be a JSON object", code="bad_option")
        parsed.options = options
        return parsed
    if not content_type.startswith("multipart/form-data"):
        raise Problem(415, "unsupported_media_type", "send multipart/form-data (uploads) or application/json (references)")
    try:
        body = request.stream() if limit_mb is None else _limited(request.stream(), limit_mb)
        parser = WholeMultiPart(request.headers, body, max_files=intake.MAX_SOURCES + 2, max_fields=200)
        form = await parser.parse()
        if not parser.ended:  # a truncated body would otherwise read as a request missing its later parts
            await form.close()
            raise MultiPartException("the body ends before its closing boundary (truncated)")
    except BodyTooLarge:
        raise
    except Exception as exc:  # the multipart parser's own errors: malformed bodies
        detail = getattr(exc, "detail", None) or getattr(exc, "message", None) or "malformed multipart body"
        raise Problem(400, "malformed_multipart", f"the multipart body could not be read: {detail}") from None
    try:
        option_fields: dict[str, list[str]] = {}
        unknown = sorted({k for k in form if k not in intake.allowed_fields()})
        if unknown:
            raise InputError(f"unknown field(s): {', '.join(unknown)}", code="unknown_field")
        for name, value in form.multi_items():
            if name in intake.FILE_FIELDS:
                if not isinstance(value, UploadFile):
                    raise InputError(f"'{name}' must be a file", code="bad_field")
                intake.check_file_name(value.filename)
                local = scratch / f"upload-{len(parsed.uploads)}"
                size = await _save_upload(value, local)
                parsed.uploads.append(intake.Upload(name, local, size))
            elif isinstance(value, UploadFile):
                raise InputError(f"'{name}' must be a text field, not a file", code="bad_field")
            elif name in intake.URI_FIELDS:
                parsed.uris.setdefault(name, []).append(value)
            elif name == "webhook_url":
                parsed.webhook_url = value or None
            elif name == "webhook_secret":
                parsed.webhook_secret = value or None
            elif name != "options":
                option_fields.setdefault(name, []).append(value)
        parsed.options = intake.option_values(option_fields, form.get("options"))  # type: ignore[arg-type]
    finally:
        await form.close()
    return parsed


def create_job(rt: ServiceRuntime, key: ApiKey, parsed: intake.JobRequest, idempotency_key: str | None,
               scratch: Path) -> tuple[JobRecord, bool, str | None]:
    """Check, store and queue a job (sync: runs in the thread pool). Returns (job, created, new webhook secret)."""
    from swapface.service.webhooks import check_secret, new_secret, validate_webhook_url

    settings = rt.settings
    options = intake.validate_options(parsed.options)
    if parsed.webhook_url:
        validate_webhook_url(parsed.webhook_url, settings)
    if parsed.webhook_secret is not None:
        check_secret(parsed.webhook_secret)
        if not parsed.webhook_url:
            raise InputError("webhook_secret is used only with a webhook_url", code="bad_webhook_secret")

    def owner_of(job_id: str) -> str | None:
        job = rt.store.get(job_id)
        return None if job is None else job.owner

    video_limits = VideoLimits.for_key(settings, key.name)
    intake.check_output_size(options, video_limits)
    inputs = intake.checked_inputs(parsed, settings, key.id, owner_of, scratch, video_limits)
    intake.check_combination(options, inputs)
    digest = intake.request_hash(inputs, options, parsed.webhook_url)
    if idempotency_key:
        existing = rt.store.by_idempotency_key(key.id, idempotency_key)
        if existing is not None:
            if existing.request_hash != digest:
                raise InputError("this Idempotency-Key was already used with a different request",
                                 code="idempotency_mismatch")
            return existing, False, None
    generated = None
    secret = parsed.webhook_secret
    if parsed.webhook_url and not secret:
        secret = generated = new_secret()
    job_id = new_job_id()
    try:
        spec = intake.store_inputs(job_id, inputs, options, settings)
        spec["video_limits"] = limits_to_spec(video_limits)  # the worker checks again what it decodes
    except BaseException:  # a full disk mid-way: nothing of this job may stay behind
        rt.discard_media(job_id)
        raise
    try:
        job, created = rt.store.create(NewJob(owner=key.id, kind=spec.pop("kind"), spec=spec,
                                              idempotency_key=idempotency_key, request_hash=digest,
                                              webhook_url=parsed.webhook_url, job_id=job_id,
                                              webhook_secret=storage.seal_secret(secret, job_id, settings=settings)
                                              if secret else None),
                                       max_active=key.max_concurrent_jobs, per_hour=key.jobs_per_hour)
    except LimitReached as reached:  # a concurrent request took the last slot since check_limits
        rt.discard_media(job_id)
        raise limit_problem(key, reached) from None
    except BaseException:
        rt.discard_media(job_id)
        raise
    if not created:  # a concurrent request with the same key won: drop what this one stored
        rt.discard_media(job_id)
        generated = None
    log.info("job created", extra={"job_id": job.id, "kind": job.kind})
    return job, created, generated


def job_urls(job_id: str) -> dict[str, str]:
    """Where to follow a job (as Replicate's ``urls``): itself, its result, its event stream, its cancel action."""
    base = f"/v1/jobs/{job_id}"
    return {"get": base, "result": f"{base}/result", "events": f"{base}/events", "cancel": f"{base}/cancel"}


def public(job: JobRecord) -> dict[str, Any]:
    """The job as the API shows it, with its ``urls``."""
    return {**job.public(), "urls": job_urls(job.id)}


PREFER_WAIT_MAX_S = 60.0


def prefer_wait(header: str | None) -> float:
    """Seconds asked for by ``Prefer: wait=N`` (RFC 7240), capped at 60; 0 when absent."""
    for part in (header or "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                return min(max(float(value.strip()), 0.0), PREFER_WAIT_MAX_S)
            except ValueError:
                raise Problem(400, "bad_prefer", "Prefer: wait=N needs a number of seconds") from None
    return 0.0


async def wait_for_end(rt: ServiceRuntime, job: JobRecord, seconds: float) -> JobRecord:
    """The job once it has ended, or as it is after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not job.terminal and time.monotonic() < deadline:
        await asyncio.sleep(min(0.1, max(deadline - time.monotonic(), 0.0)))
        fresh: JobRecord | None = await run_in_threadpool(rt.store.get, job.id)
        job = fresh or job
    return job


def _cursor(job: JobRecord) -> str:
    """Where the next page starts: the last job's creation time and id (``openapi.CURSOR_PATTERN``)."""
    return f"{job.created_at!r}_{job.id}"  # repr: the exact float, so the page boundary compares equal


def _parse_cursor(cursor: str) -> tuple[float, str]:
    """(created_at, id) of a cursor; any string of the documented pattern is one (it pages from that point)."""
    if not re.fullmatch(openapi.CURSOR_PATTERN, cursor):
        raise Problem(400, "bad_cursor", "the cursor is not one this API returned")
    created, job_id = cursor.split("_", 1)
    return float(created), job_id


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_DATE_TIME: TypeAdapter[datetime] = TypeAdapter(datetime)


def _timestamp(value: str | None, default: float) -> float:
    """Epoch seconds of an RFC 3339 time (OpenAPI's ``date-time``: a date, a time and an offset)."""
    if value is None:
        return default
    try:
        if not _RFC3339.fullmatch(value):
            raise ValueError(value)
        return _DATE_TIME.validate_python(value.upper()).timestamp()
    except (ValueError, ValidationError):
        raise Problem(400, "bad_time", "times must be RFC 3339, e.g. 2026-11-01T00:00:00Z") from None


async def job_events(job_id: str, request: Request, rt: ServiceRuntime, key: ApiKey,
                     token: str | None) -> AsyncIterator[str]:
    """The events of one stream; it ends when the job does, the client leaves or the key is revoked."""
    last, quiet_since, checked = None, time.monotonic(), time.monotonic()
    while not await request.is_disconnected():
        if token is not None and time.monotonic() - checked > streams.KEY_RECHECK_S:
            checked = time.monotonic()
            if await run_in_threadpool(rt.keys.authenticate, token) is None:
                yield 'event: error\ndata: {"code": "bad_api_key"}\n\n'
                return
        job = await run_in_threadpool(rt.store.get, job_id, key.id)
        if job is None:
            return
        body = public(job)
        snapshot = json.dumps(body, sort_keys=True)
        if snapshot != last:
            last, quiet_since = snapshot, time.monotonic()
            yield f"event: {'end' if job.terminal else 'progress'}\ndata: {snapshot}\n\n"
            if job.terminal:
                return
        elif time.monotonic() - quiet_since > SSE_KEEPALIVE_S:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(SSE_POLL_S)


# --- the application ------------------------------------------------------------------------------

def create_app(settings: Settings | None = None, *, runtime_: ServiceRuntime | None = None, workers: int = 0,
               sweeper: bool = False, executor: str = "local") -> FastAPI:
    """The service. ``workers`` > 0 also runs that many job workers in this process (``serve --workers N``)."""
    rt = runtime_ or ServiceRuntime.from_settings(settings, executor_name=executor)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if workers:
            rt.start_workers(workers)
        if sweeper:
            rt.start_sweeper()
        yield
        await run_in_threadpool(rt.stop)

    app = FastAPI(title="swapface", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Face swapping as a service. Every output is marked as AI-generated.")
    app.state.runtime = rt
    app.state.stream_slots = streams.StreamSlots(rt.settings.max_event_streams_per_key, rt.settings.max_event_streams)
    app.state.workers = workers
    app.state.settings = rt.settings
    app.add_middleware(UploadLimit, limit_mb=rt.settings.max_upload_mb)
    app.add_middleware(SecurityHeaders)
    _install_error_handlers(app)
    install_fault_handlers(app)
    _install_pubsub(app, rt)
    _install_routes(app)
    from swapface.service.pages import install_pages

    install_pages(app)
    from swapface.service.metrics import install_metrics

    install_metrics(app, rt)
    from swapface.live.routes import install_live

    install_live(app)
    openapi.describe_errors(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def problem(_: Request, exc: Problem) -> JSONResponse:
        return JSONResponse({"detail": exc.detail, "code": exc.code}, exc.status_code, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Routing errors (unknown path, wrong method) in the service's error shape; 405 lists every method."""
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"detail": str(exc.detail), "code": code}, exc.status_code, headers=headers)

    @app.exception_handler(CrossSiteRefused)
    async def cross_site(_: Request, exc: CrossSiteRefused) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "code": exc.code}, 403)

    @app.exception_handler(InputError)
    async def bad_input(_: Request, exc: InputError) -> JSONResponse:
        body = {"detail": str(exc), "code": exc.code}
        if getattr(exc, "field", None):
            body["field"] = exc.field  # type: ignore[attr-defined]
        return JSONResponse(body, 422)

    @app.exception_handler(SwapfaceError)
    async def unavailable(_: Request, exc: SwapfaceError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "code": exc.code}, 503)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": f"invalid request: {problems}", "code": "bad_request"}, 422)


def allowed_methods(app: FastAPI, scope: MutableMapping[str, Any]) -> list[str]:
    """Every method some route answers at the request's path (routes of one path are declared separately)."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in app.router.routes:
        for method in getattr(route, "methods", None) or ():
            if route.matches({**scope, "method": method})[0] == Match.FULL:
                methods.add(method)
    return sorted(methods)


def _install_pubsub(app: FastAPI, rt: ServiceRuntime) -> None:
    from swapface.service.pubsub import PubSubJobRequest
    from swapface.service.pubsub import router as pubsub_router

    if rt.settings.pubsub_rules and not rt.settings.pubsub_audience:
        log.warning("Pub/Sub rules are set but SWAPFACE_PUBSUB_AUDIENCE is not: pushes are not authenticated, so "
                    "anyone who can reach /v1/events/pubsub can start jobs the rules allow")
    def create_from_event(req: PubSubJobRequest) -> str:
        from swapface.media.video import is_video_path

        options = intake.validate_options(req.options)
        kind = "video" if (req.content_type or "").startswith("video/") or is_video_path(req.target) else "image"
        job_id = new_job_id()
        locations = intake.job_locations(job_id, kind, req.target.rsplit(".", 1)[-1].lower(), rt.settings)
        if req.output:
            locations["output"] = req.output
        owner = str(req.rule.get("owner") or "pubsub")
        # the object was never seen here: the worker applies the video caps (the owner's overrides) once it probes it
        spec = {"sources": list(req.sources), "target": req.target, "reference_face": None, **locations,
                "options": options.model_dump(mode="json", exclude_defaults=True),
                "video_limits": limits_to_spec(VideoLimits.for_key(rt.settings, owner))}
        job, _ = rt.store.create(NewJob(owner=owner, kind=kind, spec=spec,
                                        idempotency_key=req.idempotency_key, request_hash=req.idempotency_key,
                                        job_id=job_id))
        return job.id

    from swapface.jobs.db import create_tables
    from swapface.service.pubsub import metadata as pubsub_metadata

    create_tables(pubsub_metadata, rt.store.engine)  # the router uses this engine as is: its table must exist
    app.state.pubsub_create_job = create_from_event
    app.state.pubsub_engine = rt.store.engine
    app.include_router(pubsub_router)


def _install_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz(rt: ServiceRuntime = Depends(runtime)) -> JSONResponse:
        """The database and the object store answer."""
        checks = {}
        try:
            rt.store.counts_by_state()
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = type(exc).__name__
        try:
            storage.exists(rt.settings.resolved_storage_url())
            checks["storage"] = "ok"
        except Exception as exc:
            checks["storage"] = type(exc).__name__
        if rt.encryption != "off":
            checks["encryption"] = rt.encryption
        low = rt.disk_low()
        if low is not None:
            checks["disk"] = "ok" if not low else "full"
        workers = rt.worker_health()
        if workers is not None:
            checks["workers"] = workers
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503)

    @app.post("/v1/jobs", status_code=201, tags=["jobs"], openapi_extra=openapi.SUBMIT_BODY,
              responses=openapi.problems(400, *openapi.COMMON, 413, 415, 429, 507))
    async def submit(request: Request, rt: ServiceRuntime = Depends(runtime), key: ApiKey = Depends(caller),
                     idempotency_key: str | None = Header(None, json_schema_extra={
                         "pattern": openapi.IDEMPOTENCY_KEY_PATTERN}),
                     prefer: str | None = Header(None)) -> JSONResponse:
        """Create a job: multipart uploads (``source`` one or more, ``target``, optional ``reference_face``) and
        options as form fields named like the CLI's (``face_selector_mode=many``) or an ``options`` JSON field;
        or a JSON body ``{"sources": [...], "target": ..., "options": {...}}`` referencing stored objects.
        The same ``Idempotency-Key`` with the same request returns the same job. ``Prefer: wait=N`` (up to 60)
        answers once the job has ended or after N seconds, whichever comes first (small images finish in time)."""
        wait_s = prefer_wait(prefer)
        if idempotency_key is not None and not re.fullmatch(openapi.IDEMPOTENCY_KEY_PATTERN, idempotency_key):
            raise Problem(400, "bad_idempotency_key", "Idempotency-Key must be 1-255 visible ASCII characters")
        await run_in_threadpool(check_limits, rt, key, request.headers.get("content-length"), idempotency_key)
        with storage.temp_dir(settings=rt.settings, prefix="swapface-upload-") as tmp:
            parsed = await parse_request(request, tmp, key.max_upload_mb)
            job, created, secret = await run_in_threadpool(create_job, rt, key, parsed, idempotency_key, tmp)
        if wait_s:
            job = await wait_for_end(rt, job, wait_s)
        body = public(job)
        if secret:
            body["webhook_secret"] = secret  # shown once: the caller verifies signatures with it
        headers = {"Location": f"/v1/jobs/{job.id}"}
        if wait_s:
            headers["Preference-Applied"] = f"wait={wait_s:g}"
        return JSONResponse(body, status_code=201 if created else 200, headers=headers)

    @app.get("/v1/jobs", tags=["jobs"], responses=openapi.problems(400, *openapi.COMMON))
    def list_jobs(rt: ServiceRuntime = Depends(runtime), key: ApiKey = Depends(caller),
                  status: JobState | None = Query(None, description="Only jobs in this state"),
                  limit: int = Query(50, ge=1, le=500),
                  cursor: str | None = Query(None, description="``next_cursor`` of the previous page",
                                             json_schema_extra={"pattern": openapi.CURSOR_PATTERN})) -> dict[str, Any]:
        """The caller's jobs, newest first, a page at a time (pass ``next_cursor`` back as ``cursor``)."""
        page = rt.store.list(key.id, status=status, limit=limit + 1,
                             before=_parse_cursor(cursor) if cursor is not None else None)
        more = len(page) > limit
        page = page[:limit]
        return {"jobs": [public(j) for j in page], "next_cursor": _cursor(page[-1]) if more and page else None}

    @app.get("/v1/jobs/{job_id}", tags=["jobs"], responses=openapi.problems(*openapi.COMMON, 404))
    def get_job(job_id: str, rt: ServiceRuntime = Depends(runtime), key: ApiKey = Depends(caller)) -> dict[str, Any]:
        """A job's state, progress, attempts, usage and (on failure) error code and message."""
        return public(own_job(job_id, rt, key))

    @app.post("/v1/jobs/{job_id}/cancel", status_code=202, tags=["jobs"],
              responses=openapi.problems(*openapi.COMMON, 404, 409))
    def cancel_job(job_id: str, rt: ServiceRuntime = Depends(runtime), key: ApiKey = Depends(caller)) -> JSONResponse:
        """Cancel a queued job at once; a running job stops after the frame in hand."""
        job = own_job(job_id, rt, key)
        if job.terminal:
            raise Problem(409, "already_finished", f"the job has already {job.status}")
        job = rt.store.request_cancel(job_id, key.id) or job
        if job.status == "cancelled":
            rt.on_finished(job)
        return JSONResponse(public(job), status_code=202)

    @app.delete("/v1/jobs/{job_id}", status_code=204, tags=["jobs"], responses=openapi.problems(*openapi.COMMON, 404))
    def delete_job(job_id: str, rt: ServiceRuntime = Depends(runtime), key: ApiKey = Depends(caller)) -> Response:
        """Delete the job's media (inputs, intermediates, result) and its data key now; the record stays."""
        job = own_job(job_id, rt, key)
        if not job.terminal:
            cancelled = rt.store.request_cancel(job_id, key.id)
            if cancelled is not None and cancelled.status == "cancelled":  # a queued job ends here: its webhook
                rt.on_finished(cancelled)
        rt.store.mark_purged(job_id)
        rt.purge_media(job_id)
        return Response(status_code=204)

    @app.get("/v1/jobs/{job_id}/result", tags=["jobs"], responses={
        200: {"content": {t: {} for t in sorted(set(MEDIA_TYPES.values()))}, "description": "The output file"},
        206: {"description": "Part of the output file (Range)"},
        **openapi.problems(*openapi.COMMON, 404, 409, 410)})
    def result(job_id: str, rt: ServiceRuntime = Depends(runtime), key: ApiKey = Depends(caller)) -> Response:
        """The output file (Range requests supported)."""
        job = own_job(job_id, rt, key)
        if job.purged_at is not None:
            raise Problem(410, "purged", "the job's media was deleted")
        if job.status != "succeeded":
            raise Problem(409, "not_ready", f"the job is {job.status}; the result exists once it has succeeded")
        output = job.spec["output"]
        ext = output.rsplit(".", 1)[-1].lower()
        stack = contextlib.ExitStack()
        try:
            local = stack.enter_context(storage.fetch(output, job_id=job.id, settings=rt.settings))
        except JobError as exc:
            stack.close()
            if exc.code in ("kek_missing", "kek_mismatch"):  # the service's configuration, not the caller's job
                raise Problem(503, exc.code, "the service cannot decrypt stored results with its configured "
                              "key-encryption key; the operator must set the right SWAPFACE_KEK") from None
            raise Problem(410, "gone", "the job's result is no longer stored") from None
        except (FileNotFoundError, SwapfaceError):
            stack.close()
            raise Problem(410, "gone", "the job's result is no longer stored") from None
        return FileResponse(local, media_type=MEDIA_TYPES.get(ext, "application/octet-stream"),
                            filename=f"swapface-{job.id[:8]}.{ext}", background=BackgroundTask(stack.close))

    @app.get("/v1/jobs/{job_id}/events", tags=["jobs"], responses={
        200: {"content": {"text/event-stream": {}}, "description": "progress events, then end"},
        **openapi.problems(*openapi.COMMON, 404, 429)})
    async def events(job_id: str, request: Request, rt: ServiceRuntime = Depends(runtime),
                     key: ApiKey = Depends(caller)) -> StreamingResponse:
        """Server-sent events: ``progress`` whenever the job changes, then ``end`` with its final state."""
        await run_in_threadpool(own_job, job_id, rt, key)
        slots: streams.StreamSlots = request.app.state.stream_slots
        try:
            slots.acquire(key.id)
        except streams.TooManyStreams as full:
            what = "this API key" if full.scope == "key" else "the service"
            raise Problem(429, "too_many_streams", f"{what} already holds {full.limit} open event streams",
                          {"Retry-After": "5"}) from None
        token = _bearer(request)

        async def stream() -> AsyncIterator[str]:
            with slots.held(key.id):
                async for event in job_events(job_id, request, rt, key, token):
                    yield event

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/v1/usage", tags=["usage"], responses=openapi.problems(400, *openapi.COMMON))
    def usage(rt: ServiceRuntime = Depends(runtime), key: ApiKey = Depends(caller),
              start: str | None = Query(None, description="ISO-8601; default 30 days ago",
                                        json_schema_extra={"format": "date-time"}),
              end: str | None = Query(None, description="ISO-8601, after start; default now",
                                      json_schema_extra={"format": "date-time"})) -> dict[str, Any]:
        """The caller's metered usage (jobs, frames, compute and GPU seconds) of jobs created in [start, end)."""
        now = time.time()
        t0, t1 = _timestamp(start, now - 30 * 86400), _timestamp(end, now + 1)
        if t1 <= t0:  # a reversed window is a mistake worth naming, not an empty answer
            raise Problem(422, "bad_window", "end must be after start")
        from swapface.jobs.store import iso

        return {"key": key.name, "start": iso(t0), "end": iso(t1), **rt.store.usage(key.id, t0, t1)}

