"""Command ``live``: the camera swapped in real time, in the browser's Live view or into a virtual camera."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import webbrowser
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from swapface.errors import InputError
from swapface.options import option_help


def live(
    source: Annotated[Path, typer.Option("--source", "-s", help="Photo of the face to put in")],
    camera: Annotated[str | None, typer.Option("--camera", help="Swap this local camera (index such as 0, or a "
                                               "video file) here instead of the browser's camera")] = None,
    virtual_camera: Annotated[bool, typer.Option("--virtual-camera", help="With --camera: send the swapped stream to "
                              "a virtual camera (v4l2loopback, OBS or Unity Capture) for video calls")] = False,
    record: Annotated[Path | None, typer.Option("--record", help="Also record the swapped stream to this MP4 "
                                                "(marked as AI-generated like any output)")] = None,
    size: Annotated[str, typer.Option("--size", help="Camera size, WIDTHxHEIGHT")] = "640x480",
    fps: Annotated[float, typer.Option("--fps", min=1.0, max=120.0, help="Camera frames per second asked for")] = 30.0,
    face_selector_mode: Annotated[str, typer.Option("--face-selector-mode", help="one = the largest face, "
                                                    "many = every face [one|many]")] = "one",
    face_swapper_model: Annotated[str, typer.Option("--face-swapper-model", help="mesh3d (the live default: "
                                                    "3D-aware, about 14 ms a face) or mesh (about 3 ms; a plain warp "
                                                    "that keeps the source's light)")] = "mesh3d",
    face_mask_blur: Annotated[float | None, typer.Option("--face-mask-blur", help=option_help("face_mask_blur"))] = None,
    color_transfer: Annotated[str | None, typer.Option("--color-transfer",
                                                       help=option_help("color_transfer") + " [on|off]")] = None,
    label: Annotated[bool, typer.Option("--label/--no-label",
                                        help="Draw the visible 'AI-generated' label on the output")] = True,
    port: Annotated[int, typer.Option("--port", help="Port of the local service (used when one runs, else started)")] = 8000,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="SWAPFACE_API_KEY",
                                                help="API key for a service that has keys")] = None,
    open_page: Annotated[bool, typer.Option("--open/--no-open", help="Open the Live view in the default browser")] = True,
    frames: Annotated[int | None, typer.Option("--frames", min=1,
                                               help="Stop after this many swapped frames (--camera)")] = None,
) -> None:
    """Swap a camera in real time on this machine's CPU: the browser's Live view, or --camera into a virtual camera."""
    from swapface.live.engine import live_options
    from swapface.options import BUILTIN_SWAPPERS

    if not source.is_file():
        raise InputError(f"cannot read {source.name!r}: no such file")
    if face_swapper_model not in BUILTIN_SWAPPERS:
        raise InputError(f"--face-swapper-model live is one of {', '.join(BUILTIN_SWAPPERS)} (built in, no model to load)")
    values: dict[str, Any] = {"face_selector_mode": face_selector_mode, "label_output": label,
                              "face_swapper_model": face_swapper_model}
    if face_mask_blur is not None:
        values["face_mask_blur"] = face_mask_blur
    if color_transfer is not None:
        values["color_transfer"] = color_transfer
    options = live_options(values)
    width, height = _size(size)
    if camera is not None:
        _camera_mode(source, camera, options, width, height, fps, virtual_camera, record, frames)
        return
    if virtual_camera:
        raise InputError("--virtual-camera reads a local camera: add --camera 0 (or another camera index)")
    if frames is not None:
        raise InputError("--frames applies to --camera; in the browser, press Stop")
    if fps != 30.0:
        raise InputError("--fps applies to --camera; the browser's camera runs at its own rate")
    _browser_mode(source, values, options, port, api_key, open_page, record, f"{width}x{height}")


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError("--size is WIDTHxHEIGHT, e.g. 640x480") from None
    if not (16 <= width <= 1920 and 16 <= height <= 1920):
        raise InputError("--size must be between 16x16 and 1920x1920")
    return width, height


def _camera_mode(source: Path, camera: str, options: Any, width: int, height: int, fps: float,
                 virtual_camera: bool, record: Path | None, frames: int | None) -> None:
    from swapface.live.camera import (
        NewestFrame,
        open_camera,
        open_virtual_camera,
        run_camera,
    )
    from swapface.live.engine import AnalysisModels, LiveEngine
    from swapface.live.recorder import Recorder
    from swapface.media.image import read_image

    if not virtual_camera and record is None:
        raise InputError("--camera needs --virtual-camera and/or --record (there is no window to show it in)")
    image = read_image(source)
    capture = open_camera(camera, width, height, fps)  # before the models load: a missing camera fails fast
    stack = contextlib.ExitStack()
    with stack:
        stack.callback(capture.release)
        engine = LiveEngine(image, options, AnalysisModels.for_options(options))  # models load before streaming
        newest = NewestFrame(capture, paced_fps=None if camera.isdigit() else fps)
        stack.callback(newest.stop)
        first = newest.take(timeout=10.0)
        if first is None:
            raise InputError(f"camera {camera!r} gives no frames")
        h, w = first[1].shape[:2]
        outputs = []
        if virtual_camera:
            cam = open_virtual_camera(w, h, fps)
            stack.callback(cam.close)
            typer.echo(f"virtual camera: {cam.device} ({w}x{h})", err=True)

            def to_virtual(rgb: Any) -> None:
                cam.send(rgb)

            outputs.append(to_virtual)
        recorder = None
        if record is not None:
            recorder = Recorder(record, options)
            outputs.append(recorder.write)
        typer.echo("swapping the camera; Ctrl-C stops", err=True)
        stop = threading.Event()
        try:
            stats = run_camera(engine, newest, outputs, max_frames=frames, stop=stop)
        except KeyboardInterrupt:
            stats = None
        if recorder is not None:
            written = recorder.close()
            typer.echo(f"recorded {written} frame(s) to {record}", err=True)
        if stats is not None:
            typer.echo(f"{stats.swapped} frames swapped in {stats.seconds:.1f} s ({stats.fps:.1f} frames/s), "
                       f"camera-to-output latency p50 {stats.latency_ms_p50:.0f} ms, p90 {stats.latency_ms_p90:.0f} ms",
                       err=True)


def _browser_mode(source: Path, values: dict[str, Any], options: Any, port: int, api_key: str | None,
                  open_page: bool, record: Path | None, size: str) -> None:
    import httpx

    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with _service(url, port, record is not None) as hub, httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        with open(source, "rb") as photo:
            res = http.post("/v1/live/sessions", files={"source": (source.name, photo, "image/jpeg")},
                            data={"options": json.dumps(values)})
        if res.status_code >= 400:
            body = _json(res)
            message = str(body.get("detail") or f"the service answered {res.status_code}")
            if res.status_code == 401:
                message += " (give it with --api-key or SWAPFACE_API_KEY)"
            raise InputError(message, code=body.get("code"))
        session = res.json()
        recorder = None
        if record is not None and hub is not None:
            from swapface.live.recorder import Recorder

            recorder = Recorder(record, options)
            hub.get(session["id"]).on_frame = recorder.write
        page = f"{url}/live?session={session['id']}&size={size}"
        typer.echo(f"Live view: {page}  (Stop on the page, or Ctrl-C here, ends it)", err=True)
        if open_page and not os.environ.get("SWAPFACE_NO_BROWSER"):
            webbrowser.open(page)
        try:
            while http.get(f"/v1/live/sessions/{session['id']}").status_code == 200:
                time.sleep(0.5)
        except KeyboardInterrupt:
            http.delete(f"/v1/live/sessions/{session['id']}")
        finally:
            if recorder is not None:
                written = recorder.close()
                typer.echo(f"recorded {written} frame(s) to {record}", err=True)
        typer.echo("live session ended", err=True)


def _json(res: Any) -> dict[str, Any]:
    try:
        body = res.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@contextlib.contextmanager
def _service(url: str, port: int, need_own: bool) -> Iterator[Any]:
    """The local service at ``url``: a running one (yields None), or one started here until the block ends (its hub)."""
    import httpx

    try:
        running = httpx.get(f"{url}/live", timeout=1.0)
    except httpx.HTTPError:
        running = None
    if running is not None:
        if running.status_code != 200:
            raise InputError(f"the service on port {port} has no Live view: update and restart it, or use --port")
        if need_own:
            raise InputError(f"--record with the browser view needs this command to run the service itself: stop the "
                             f"service on port {port} or pick another --port (or record from --camera)")
        yield None
        return
    import uvicorn

    from swapface.service.app import create_app
    from swapface.service.runtime import ServiceRuntime

    app = create_app(runtime_=ServiceRuntime.from_settings())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, name="live-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise InputError(f"could not start the local service on port {port} (is the port in use?)")
        time.sleep(0.05)
    try:
        yield app.state.live
    finally:
        app.state.live.close_all()
        server.should_exit = True
        thread.join(timeout=30)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command()(live)
