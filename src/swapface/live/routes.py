"""The live API: sessions under ``/v1/live/sessions`` (HTTP, behind the API key) and their frame stream (WebSocket).

A session is its caller's, like a job: its start counts against the key's jobs-per-hour limit and, while
it runs, against its limit of jobs at once (both kept in the job database, see
:mod:`swapface.jobs.live_usage`); another caller's session answers like a missing one. Its id, returned only to its creator, opens the stream
(browsers cannot put an Authorization header on a WebSocket). Frames travel as JPEGs (see :mod:`.frames`);
the stream closes when the session ends and the session ends when the stream closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    File,
    Form,
    Request,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response

from swapface.errors import InputError
from swapface.jobs.store import LimitReached
from swapface.live.frames import Result, unpack_frame
from swapface.live.hub import LiveHub, LiveLimit, LiveSession
from swapface.service.app import Problem, caller, limit_problem, runtime
from swapface.service.auth import ApiKey, is_loopback
from swapface.service.runtime import ServiceRuntime

STATIC = Path(__file__).resolve().parent.parent / "service" / "static"
PAGE_FILES = {"live.html": "text/html", "live.js": "text/javascript", "live.css": "text/css"}

router = APIRouter()


def install_live(app: FastAPI, hub: LiveHub | None = None) -> LiveHub:
    """Add the live page and API to the service app; returns the hub that holds its sessions (by default one
    that ends silent streams after the settings' ``live_idle_timeout_s`` and records sessions in the job store)."""
    rt: ServiceRuntime = app.state.runtime
    app.state.live = hub or LiveHub(idle_timeout_s=rt.settings.live_idle_timeout_s, ledger=rt.store.live)
    app.include_router(router)
    return app.state.live


def live_hub(request: Request) -> LiveHub:
    return request.app.state.live


Caller = Annotated[ApiKey, Depends(caller)]
Runtime = Annotated[ServiceRuntime, Depends(runtime)]
Hub = Annotated[LiveHub, Depends(live_hub)]
SourceFile = Annotated[UploadFile, File(description="a photo of the face to put in")]
OptionsField = Annotated[str, Form(description="swap options as JSON, named like the CLI's")]


def own_session(session_id: str, hub: LiveHub, key: ApiKey) -> LiveSession:
    session = hub.get(session_id, owner=key.id)
    if session is None:
        raise Problem(404, "not_found", "no such live session")
    return session


async def read_source(upload: UploadFile, limit_mb: float) -> np.ndarray:
    """The uploaded source photo as RGB; 413 over the size limit, 422 when it is not an image."""
    data = await upload.read(int(limit_mb * 1024 * 1024) + 1)
    if len(data) > limit_mb * 1024 * 1024:
        raise Problem(413, "upload_too_large", f"the source photo is larger than {limit_mb:g} MB")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if bgr is None:
        raise InputError("the source is not a readable image (JPEG, PNG or WebP)", code="bad_media")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def parse_options_field(text: str) -> dict[str, Any]:
    try:
        values = json.loads(text or "{}")
    except ValueError:
        raise InputError("'options' must be a JSON object", code="bad_option") from None
    if not isinstance(values, dict):
        raise InputError("'options' must be a JSON object", code="bad_option")
    return values


def _upload_limit(rt: ServiceRuntime, key: ApiKey) -> float:
    return min(rt.settings.max_upload_mb, key.max_upload_mb or rt.settings.max_upload_mb)


# --- the page -----------------------------------------------------------------------------------------

@router.get("/live", include_in_schema=False)
def live_page() -> Response:
    return _static("live.html")


@router.get("/live/{name}", include_in_schema=False)
def live_asset(name: str) -> Response:
    return _static(name)


def _static(name: str) -> Response:
    path = STATIC / name
    if name not in PAGE_FILES or not path.is_file():
        return JSONResponse({"detail": "not found", "code": "not_found"}, 404)
    return FileResponse(path, media_type=PAGE_FILES[name], headers={"Cache-Control": "no-cache"})


# --- sessions -----------------------------------------------------------------------------------------

@router.post("/v1/live/sessions", status_code=201, tags=["live"])
async def open_session(request: Request, source: SourceFile, rt: Runtime, key: Caller, hub: Hub,
                       options: OptionsField = "{}") -> JSONResponse:
    """Start a live session: the source is analysed now; then stream camera frames to ``stream`` (WebSocket).

    Live output carries a visible 'AI-generated' label; ``label_output: false`` is for a local user only."""
    limits = (key.max_concurrent_jobs, key.jobs_per_hour)
    try:
        if limits != (None, None):  # early, before the source is analysed; checked again when recorded
            await run_in_threadpool(rt.store.admit, key.id, *limits)
        image = await read_source(source, _upload_limit(rt, key))
        values = parse_options_field(options)
        local = is_loopback(request.client.host if request.client else None)
        session = await run_in_threadpool(hub.open, key.id, image, values, may_unlabel=local,
                                          admit=lambda session_id: rt.store.start_live(session_id, key.id, *limits))
    except LimitReached as reached:
        raise limit_problem(key, reached) from None
    except LiveLimit as limit:
        raise Problem(limit.status, limit.code, str(limit), {"Retry-After": "10"}) from None
    body = {**session.public(), "stream": f"/v1/live/sessions/{session.id}/stream"}
    return JSONResponse(body, 201, headers={"Location": f"/v1/live/sessions/{session.id}"})


@router.get("/v1/live/sessions", tags=["live"])
def list_sessions(key: Caller, hub: Hub) -> dict[str, Any]:
    """The caller's open live sessions with their counters."""
    return {"sessions": [s.public() for s in hub.sessions(key.id)]}


@router.get("/v1/live/sessions/{session_id}", tags=["live"])
def get_session(session_id: str, key: Caller, hub: Hub) -> dict[str, Any]:
    """One live session: options in force, frames received, sent and dropped, frames/s."""
    return own_session(session_id, hub, key).public()


@router.patch("/v1/live/sessions/{session_id}", tags=["live"], openapi_extra={"requestBody": {
    "required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["options"], "additionalProperties": False,
        "properties": {"options": {"type": "object", "description": "options to change, named like the CLI's"}}}}}}})
async def change_options(session_id: str, request: Request, key: Caller, hub: Hub) -> dict[str, Any]:
    """Change options while running (``{"options": {...}}``): they apply from the next frame."""
    session = own_session(session_id, hub, key)
    try:
        body = await request.json()
    except ValueError:
        raise Problem(400, "bad_request", "the body is not valid JSON") from None
    if not isinstance(body, dict) or set(body) != {"options"} or not isinstance(body["options"], dict):
        raise InputError('send {"options": {...}}', code="bad_option")
    values = body["options"]
    if values.get("label_output") is False and not is_loopback(request.client.host if request.client else None):
        raise InputError("live output keeps its 'AI-generated' label here; only a local user may turn it off",
                         code="label_required")
    await run_in_threadpool(session.engine.set_options, values)
    return session.public()


@router.put("/v1/live/sessions/{session_id}/source", tags=["live"])
async def change_source(session_id: str, source: SourceFile, rt: Runtime, key: Caller, hub: Hub) -> dict[str, Any]:
    """Put a different person in from the next frame (a photo without a face is refused; the old one stays)."""
    session = own_session(session_id, hub, key)
    image = await read_source(source, _upload_limit(rt, key))
    await run_in_threadpool(session.engine.set_source, image)
    return session.public()


@router.delete("/v1/live/sessions/{session_id}", status_code=204, tags=["live"])
def stop_session(session_id: str, key: Caller, hub: Hub) -> Response:
    """Stop: the stream closes and the session's resources are let go."""
    hub.close(own_session(session_id, hub, key))
    return Response(status_code=204)


# --- the frame stream ---------------------------------------------------------------------------------

@router.websocket("/v1/live/sessions/{session_id}/stream")
async def stream(websocket: WebSocket, session_id: str) -> None:
    """Binary messages both ways: camera frames in, swapped frames out, newest first (see :mod:`.frames`)."""
    hub: LiveHub = websocket.app.state.live
    session = hub.get(session_id)
    if session is None or not hub.connect(session):
        await websocket.close(code=4404, reason="no such live session")
        return
    await websocket.accept()
    outbox = _Outbox(asyncio.get_running_loop())
    session.deliver = outbox.put
    session.on_close.append(lambda: outbox.close(*_close_code(hub, session)))
    sender = asyncio.create_task(_send(websocket, outbox))
    receiver = asyncio.create_task(_receive(websocket, hub, session))
    try:  # the session ends when the viewer leaves; the stream ends when the session does (the sender closes it)
        await asyncio.wait((sender, receiver), return_when=asyncio.FIRST_COMPLETED)
    finally:
        session.deliver = None
        await run_in_threadpool(hub.close, session, "disconnected")
        outbox.close()
        receiver.cancel()  # a viewer that never answers the close is not waited for
        with contextlib.suppress(BaseException):
            await sender
        with contextlib.suppress(BaseException):
            await receiver


async def _receive(websocket: WebSocket, hub: LiveHub, session: LiveSession) -> None:
    """Camera frames into the hub until the viewer leaves."""
    try:
        while not session.closed.is_set():
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                continue  # text messages (keep-alives) carry nothing, and do not keep a session alive
            try:
                clock, jpeg = unpack_frame(data)
            except InputError:
                session.stats.bad += 1
                continue
            hub.submit(session, clock, jpeg)
    except (WebSocketDisconnect, RuntimeError):
        pass


def _close_code(hub: LiveHub, session: LiveSession) -> tuple[int, str]:
    """The WebSocket close code and reason a viewer sees when its session ends."""
    if session.end_reason == "idle":
        return 4408, f"no camera frame for {hub.idle_timeout_s:g} s: live session ended"
    if session.end_reason == "error":
        return 1011, "the live session failed"
    return 1000, "live session ended"


class _Outbox:
    """The newest swapped frame not yet sent (older unsent ones are replaced), fed from engine threads."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.latest: Result | None = None
        self.ready = asyncio.Event()
        self.closed = False
        self.close_code, self.close_reason = 1000, "live session ended"

    def put(self, result: Result) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has ended: nobody is listening
            self.loop.call_soon_threadsafe(self._set, result)

    def _set(self, result: Result) -> None:
        self.latest = result
        self.ready.set()

    def close(self, code: int = 1000, reason: str = "live session ended") -> None:
        """End the stream (from any thread): the sender closes it with ``code`` (the first close decides)."""
        def end() -> None:
            if not self.closed:
                self.closed = True
                self.close_code, self.close_reason = code, reason
            self.ready.set()

        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(end)


async def _send(websocket: WebSocket, outbox: _Outbox) -> None:
    while True:
        await outbox.ready.wait()
        outbox.ready.clear()
        if outbox.closed:
            break
        result, outbox.latest = outbox.latest, None
        if result is not None:
            try:
                await websocket.send_bytes(result.encode())
            except (WebSocketDisconnect, RuntimeError, OSError):
                break
    with contextlib.suppress(Exception):
        await websocket.close(code=outbox.close_code, reason=outbox.close_reason)
