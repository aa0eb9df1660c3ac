"""Commands ``run``, ``compare`` and ``demo``: thin wrappers that parse, call the engine and print."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from swapface.cli.options import collect_options, with_option_flags
from swapface.cli.targets import Task, check_paths, expand_batch
from swapface.errors import InputError
from swapface.options import BUILTIN_SWAPPERS, VIDEO_ONLY_OPTIONS, SwapOptions, parse_options


def swap_image_file(
    sources: list[Path], target: Path, output: Path, options: SwapOptions, reference: Path | None, quiet: bool,
    reference_image: np.ndarray | None = None,
) -> None:
    """Swap an image file into an output file, marking it as synthetic unless told not to."""
    from swapface.config import load_settings
    from swapface.media.image import read_image, write_image
    from swapface.pipeline import Pipeline
    from swapface.provenance import finalize_output

    limit = load_settings().max_image_pixels
    started = time.perf_counter()
    if reference_image is None and reference is not None:
        reference_image = read_image(reference, max_pixels=limit)
    pipe = Pipeline([read_image(s, max_pixels=limit) for s in sources], options, reference=reference_image)
    frame = read_image(target, max_pixels=limit)
    result = pipe.process_frame(frame)
    try:
        write_image(result, output, quality=options.output_image_quality)
    except OSError as exc:
        raise InputError(f"cannot write '{output}': {exc.strerror or exc}") from None
    finalize_output(output, options)
    for notice in pipe.notices:
        typer.secho(f"warning: {notice}", err=True, fg="yellow")
    if pipe.stats.faces_processed == 0:
        typer.secho("warning: no face to swap in the target; it was written through unchanged", err=True, fg="yellow")
    elif not quiet:
        typer.echo(
            f"swapped {pipe.stats.faces_processed} face(s) in {time.perf_counter() - started:.2f}s → {output}"
        )


@with_option_flags
def run(
    source: list[str] = typer.Option(..., "--source", "-s", metavar="PATH...", help="Photo(s) of the face to put in "
                                     "(several photos of one person: space-separated or repeated); a path or a "
                                     "gs:// / s3:// URI"),
    target: str = typer.Option(..., "--target", "-t", metavar="PATH", help="Image, video or folder of frames to "
                               "change (path or URI); a pattern like 'clips/*.mp4' runs a batch"),
    output: str = typer.Option(..., "--output", "-o", metavar="PATH", help="Where to write the result (path or URI); "
                               "in a batch, {name} and {index} stand for each target"),
    reference_face: Optional[str] = typer.Option(None, "--reference-face", metavar="PATH",
                                                 help="Photo of the person to replace (implies --face-selector-mode "
                                                 "reference)"),
    executor: str = typer.Option("local", "--executor", metavar="[local|ray]", help="Where video chunks run"),
    progress: str = typer.Option("bar", "--progress", metavar="[bar|json]", help="Progress display"),
    keep_temp: bool = typer.Option(False, "--keep-temp", help="Keep the video's work folder (chunks, manifest) "
                                   "after the output is written"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but warnings and errors"),
    **options: Any,
) -> None:
    """Swap the source person's face into an image or a video."""
    given = collect_options(options)
    given = _selector_mode(given, reference_face)
    opts = parse_options(given)
    if not opts.mark_output and not quiet:
        typer.secho("note: --no-mark leaves the output unmarked; for local, non-distributed use only", err=True)
    if executor not in ("local", "ray"):
        raise InputError(f"--executor must be local or ray, not {executor!r}")
    if executor == "local":  # Ray workers have their own providers and models folders
        opts = usable_providers(opts)
        check_models(opts)
    from swapface.storage import is_local

    mode = "quiet" if quiet else progress
    if mode not in ("bar", "json", "quiet"):
        raise InputError(f"--progress must be bar or json, not {progress!r}")
    locations = [*source, target, output] + ([reference_face] if reference_face else [])
    if not all(is_local(loc) for loc in locations):  # object storage: the whole job runs on URIs
        from swapface.jobs.local_run import build_uri_spec

        spec = build_uri_spec(source, target, output, opts, reference_face)
        run_job_cli(spec, executor, mode, shown_output=output, keep_temp=keep_temp)
        return
    sources = [Path(s) for s in source]
    reference = Path(reference_face) if reference_face else None
    tasks = expand_batch(target, output)
    kinds = [check_paths(sources, task, reference) for task in tasks]  # every pair checked before any work
    for task, kind in zip(tasks, kinds):
        if kind == "image":
            _refuse_video_flags(opts, task)
    for task, kind in zip(tasks, kinds):
        if len(tasks) > 1 and mode == "bar":
            typer.echo(f"{task.target} → {task.output}", err=True)
        run_one(sources, task, kind, opts, given, reference, executor, mode, keep_temp)


def _refuse_video_flags(opts: SwapOptions, task: Task) -> None:
    """The video output flags on an image target are refused, never ignored."""
    for name in VIDEO_ONLY_OPTIONS:
        if getattr(opts, name) is not None:
            raise InputError(f"--{name.replace('_', '-')} applies to video outputs only, and the target "
                             f"'{task.target}' is an image")


def _selector_mode(given: dict[str, Any], reference_face: str | None) -> dict[str, Any]:
    """A reference photo or frame means reference mode; asking for another mode beside one is refused."""
    wants_reference = reference_face is not None or given.get("reference_frame_number") is not None
    if reference_face is not None and given.get("reference_frame_number") is not None:
        raise InputError("give either --reference-face or --reference-frame-number, not both")
    mode = given.get("face_selector_mode")
    if wants_reference and mode is None:
        return {**given, "face_selector_mode": "reference"}
    if wants_reference and mode != "reference":
        flag = "--reference-face" if reference_face is not None else "--reference-frame-number"
        raise InputError(f"{flag} chooses the person to replace, but --face-selector-mode is {mode!r}; "
                         "drop one of them")
    if "reference_face_position" in given and given.get("reference_frame_number") is None:
        raise InputError("--reference-face-position counts faces in --reference-frame-number's frame; give that too")
    return given


def models_needed(opts: SwapOptions) -> list[tuple[str, str]]:
    """(option, model name) of every catalogue model these options will load (built-in ones excluded)."""
    needed = []
    if "face_swapper" in opts.processors and opts.face_swapper_model not in BUILTIN_SWAPPERS:
        needed.append(("--face-swapper-model", opts.face_swapper_model))
    if "face_enhancer" in opts.processors:
        needed.append(("--face-enhancer-model", opts.face_enhancer_model))
    if "frame_enhancer" in opts.processors:
        needed.append(("--frame-enhancer-model", opts.frame_enhancer_model))
    if opts.face_detector_model != "mediapipe":
        needed.append(("--face-detector-model", opts.face_detector_model))
    if opts.face_recognizer_model != "dlib":
        needed.append(("--face-recognizer-model", opts.face_recognizer_model))
    if "occlusion" in opts.face_mask_types:
        needed.append(("--face-mask-types occlusion", opts.face_occluder_model))
    if "region" in opts.face_mask_types and opts.face_swapper_model != "mesh3d":  # mesh3d's regions are its mesh's
        needed.append(("--face-mask-types region", opts.face_parser_model))
    return needed


def check_models(opts: SwapOptions) -> None:
    """Every model the run needs is here, checked before any work (a missing one is not worth a retry)."""
    from swapface.models.store import model_path

    for flag, name in models_needed(opts):
        if not model_path(name).is_file():  # an unknown name raises its own InputError listing the choices
            raise InputError(f"{flag} needs the model {name!r}, which is not installed: "
                             f"'swapface models download {name}' (or 'swapface models import FILE')",
                             code="model_missing")


def usable_providers(opts: SwapOptions) -> SwapOptions:
    """The execution providers this machine has; a missing one is named in a one-line warning and dropped."""
    from swapface.models.session import available_providers

    unknown = [p for p in opts.execution_providers if p not in ("cpu", "cuda", "tensorrt")]
    if unknown:
        raise InputError(f"unknown execution provider(s) {', '.join(unknown)}; choose from cpu, cuda, tensorrt")
    offered = available_providers()
    kept = tuple(p for p in opts.execution_providers if p in offered) or ("cpu",)
    missing = [p for p in opts.execution_providers if p not in offered]
    if missing:
        typer.secho(f"warning: execution provider {', '.join(missing)} is not available here "
                    f"(see 'swapface doctor'); running on {', '.join(kept)}", err=True, fg="yellow")
        return opts.model_copy(update={"execution_providers": kept})
    return opts


def run_one(sources: list[Path], task: Task, kind: str, opts: SwapOptions, given: dict[str, Any],
            reference: Path | None, executor: str, mode: str, keep_temp: bool) -> None:
    """One target: an image in this process, a video (or frames folder) as a resumable chunked job."""
    if kind == "image":
        reference_image = None
        if opts.reference_frame_number is not None:
            from swapface.reference import reference_from_target

            reference_image = reference_from_target(task.target, opts)
        swap_image_file(sources, task.target, task.output, opts, reference, mode == "quiet",
                        reference_image=reference_image)
        return
    from swapface.jobs.local_run import build_spec
    from swapface.media.video import probe

    info = probe(task.target)
    if opts.reference_frame_number is not None and opts.reference_frame_number >= info.frames:
        raise InputError(f"--reference-frame-number {opts.reference_frame_number}: the target '{task.target}' "
                         f"has {info.frames} frame(s)")
    if "chunk_seconds" not in given and executor == "local":
        opts = opts.model_copy(update={"chunk_seconds": short_clip_chunk_seconds(info.frames, info.fps,
                                                                                  opts.chunk_seconds)})
    spec = build_spec(sources, task.target, task.output, opts, reference)
    run_job_cli(spec, executor, mode, shown_output=str(task.output), keep_temp=keep_temp)


MIN_CHUNK_SECONDS = 2.0
CHUNKS_OF_A_SHORT_CLIP = 4


def short_clip_chunk_seconds(frames: int, fps: float, default: float) -> float:
    """Chunks for a short clip: about a quarter of it (at least 2 s), so an interrupt keeps finished work."""
    seconds = frames / max(fps, 1e-3)
    return round(min(default, max(MIN_CHUNK_SECONDS, seconds / CHUNKS_OF_A_SHORT_CLIP)), 3)


def run_job_cli(spec: Any, executor_name: str, mode: str, *, shown_output: str, keep_temp: bool = False) -> None:
    """Run (or resume) a chunked job with progress; the summary names the output as the user wrote it."""
    from dataclasses import asdict

    from swapface.cli.progress import ProgressReporter
    from swapface.executors import get_executor
    from swapface.jobs.runner import run_job

    reporter = ProgressReporter(mode)
    executor = get_executor(executor_name)
    try:
        with reporter:
            result = run_job(spec, executor=executor, on_progress=reporter.update, keep_work_dir=keep_temp)
    finally:
        executor.close()
    reporter.result({**asdict(result), "output": shown_output})
    if result.lost_frames:
        from swapface.jobs.local_run import lost_frames_warning

        typer.secho(lost_frames_warning(result, spec.target), err=True, fg="yellow")
    if keep_temp and mode != "quiet":
        typer.echo(f"work folder kept: {spec.work_dir}", err=True)
    if mode == "bar":
        reused = f", {result.chunks_reused} chunk(s) reused" if result.chunks_reused else ""
        typer.echo(f"{result.frames} frame(s) in {result.seconds:.1f}s{reused} → {shown_output}")


def compare(
    first: Path = typer.Argument(..., help="First image"),
    second: Path = typer.Argument(..., help="Second image"),
) -> None:
    """Print the identity distance between the main faces of two images and whether they look like one person."""
    from swapface.api import compare_faces

    result = compare_faces(first, second)
    verdict = "same person" if result.same_person else "different people"
    typer.echo(f"distance {result.distance:.3f} (threshold {result.threshold:.2f}): {verdict}")


def demo(
    folder: Path = typer.Option(Path("swapface-demo"), "--output-dir", "-o", help="Folder for the demo's results"),
) -> None:
    """Swap faces between sample images that installed packages ship; writes the results and a side-by-side PNG."""
    from swapface.demo_media import sample_faces
    from swapface.media.image import write_image
    from swapface.pipeline import Pipeline
    from swapface.provenance import finalize_output

    folder.mkdir(parents=True, exist_ok=True)
    astronaut, driver = sample_faces()
    options = SwapOptions()
    rows = []
    for name, src, tgt in (("driver-as-astronaut", driver, astronaut), ("astronaut-as-driver", astronaut, driver)):
        started = time.perf_counter()
        result = Pipeline([src], options).process_frame(tgt)
        path = folder / f"{name}.jpg"
        write_image(result, path)
        finalize_output(path, options)
        typer.echo(f"{path}  ({time.perf_counter() - started:.2f}s)")
        rows.append(_side_by_side(src, tgt, result))
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    sheet_path = folder / "side-by-side.png"
    write_image(sheet, sheet_path)
    finalize_output(sheet_path, options)
    typer.echo(f"{sheet_path}  (columns: {' | '.join(DEMO_COLUMNS)})")
    typer.echo(f"demo results are in {folder.resolve()}")


DEMO_COLUMNS = ("source (face put in)", "target", "result (marked AI-generated)")


def _side_by_side(*images: np.ndarray, height: int = 360, labels: tuple[str, ...] = DEMO_COLUMNS) -> np.ndarray:
    """The images scaled to one height in a row, each with its label in a white band above it."""
    import cv2

    band = 34
    parts: list[np.ndarray] = []
    for image, label in zip(images, labels):
        scaled = cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height), interpolation=cv2.INTER_AREA)
        column = np.full((height + band, scaled.shape[1], 3), 255, np.uint8)
        column[band:] = scaled
        font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.6
        while scale > 0.3 and cv2.getTextSize(label, font, scale, 1)[0][0] > scaled.shape[1] - 8:
            scale -= 0.05
        cv2.putText(column, label, (4, band - 11), font, scale, (30, 34, 48), 1, cv2.LINE_AA)
        parts += [column, np.full((height + band, 8, 3), 255, np.uint8)]
    return np.hstack(parts[:-1])


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command(context_settings={"help_option_names": ["-h", "--help"]})(run)
    app.command()(compare)
    app.command()(demo)
