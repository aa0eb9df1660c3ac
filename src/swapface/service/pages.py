"""What the web page needs besides the job API: the page, offline API docs, the service's facts, face boxes.

Swagger UI's files come from the ``fastapi-offline`` package (Swagger UI 5, which reads FastAPI's OpenAPI 3.1),
so ``/docs`` works without the internet and no page of the service asks another host for anything.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from swapface.errors import InputError

STATIC = Path(__file__).parent / "static"
DOCS_ASSETS = "/docs-assets"
FACES_MAX_MB = 32.0
_ANALYSER_LOCK = threading.Lock()
PAGE_MODELS = {"face_swapper_model": "face_swapper", "face_enhancer_model": "face_enhancer"}


def swagger_assets() -> Path | None:
    """Swagger UI's files as the ``fastapi-offline`` package ships them (None when it is not installed)."""
    try:
        import fastapi_offline
    except ModuleNotFoundError:
        return None
    folder = Path(fastapi_offline.__file__).parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def installed_models() -> dict[str, list[str]]:
    """Per model option, the choices usable here: built-in ones and the model files present."""
    from swapface.models.catalogue import CATALOGUE, OCCLUDER_MODEL, PARSER_MODEL
    from swapface.models.store import model_path

    out: dict[str, list[str]] = {"face_swapper_model": ["mesh3d", "mesh"], "face_enhancer_model": [], "face_mask_types": ["box"]}
    for mask, name in (("occlusion", OCCLUDER_MODEL), ("region", PARSER_MODEL)):
        try:
            if model_path(name).is_file():
                out["face_mask_types"].append(mask)
        except Exception:
            continue
    for option, task in PAGE_MODELS.items():
        for entry in CATALOGUE.values():
            if entry.task == task and not entry.builtin:
                try:
                    if model_path(entry.name).is_file():
                        out[option].append(entry.name)
                except Exception:
                    continue
    return out


def install_pages(app: FastAPI) -> None:
    """Add ``/``, ``/docs`` (offline), ``/v1/info`` and ``/v1/faces`` to the app."""
    from swapface.service.app import Problem, caller

    assets = swagger_assets()
    if assets is not None:
        app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        index = STATIC / "index.html"
        if not index.is_file():
            return JSONResponse({"detail": "the web page is not installed", "code": "not_installed"}, 404)
        return FileResponse(index, media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if assets is None:
            return HTMLResponse("<!doctype html><title>swapface API</title><p>The interactive docs need the "
                                "<code>fastapi-offline</code> package; the API description is at "
                                "<a href='/openapi.json'>/openapi.json</a>.</p>")
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title="swapface API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png")

    @app.get("/v1/info", tags=["health"])
    def info(request: Request) -> dict[str, Any]:
        """What this server offers: its version, the job workers it runs itself, the models installed."""
        from swapface import __version__

        return {"version": __version__, "workers": int(getattr(request.app.state, "workers", 0)),
                "models": installed_models()}

    @app.post("/v1/faces", tags=["faces"], dependencies=[Depends(caller)], openapi_extra={"requestBody": {
        "required": True, "content": {"image/*": {"schema": {"type": "string", "format": "binary", "minLength": 1}}}}})
    async def faces(request: Request) -> dict[str, Any]:
        """The faces of one uploaded image (the raw body), largest first: boxes in pixels, for choosing a reference."""
        limit = int(FACES_MAX_MB * 1024 * 1024)
        body = bytearray()
        async for block in request.stream():
            body += block
            if len(body) > limit:
                raise Problem(413, "upload_too_large", f"the image is larger than {FACES_MAX_MB:g} MB")
        if not body:
            raise InputError("send the image as the request body", code="bad_media")
        boxes = await run_in_threadpool(_face_boxes, bytes(body), request.app)
        return {"faces": boxes}


def _face_boxes(data: bytes, app: FastAPI) -> list[dict[str, Any]]:
    from swapface.faces.analyser import FaceAnalyser
    from swapface.media.image import read_image
    from swapface.options import SwapOptions
    from swapface.reference import order_faces

    with tempfile.TemporaryDirectory(prefix="swapface-faces-") as tmp:
        path = Path(tmp) / "image"
        path.write_bytes(data)
        image = read_image(path, max_pixels=app.state.settings.max_image_pixels)
    with _ANALYSER_LOCK:  # one analyser per app, used by one request at a time
        analyser = getattr(app.state, "page_analyser", None)
        if analyser is None:
            analyser = app.state.page_analyser = FaceAnalyser.from_options(SwapOptions())
        found = order_faces(analyser.analyse_still(image))
    return [{"box": [round(float(v), 1) for v in f.box], "score": round(float(f.score), 3)} for f in found]
