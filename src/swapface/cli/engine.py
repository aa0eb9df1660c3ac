"""Commands ``run``, ``compare`` and ``demo``: thin wrappers that parse, call the engine and print."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from swapface.cli.options import collect_options, with_option_flags
from swapface.errors import InputError
from swapface.options import SwapOptions, parse_options


def _check_output(path: Path) -> None:
    if path.exists() and path.is_dir():
        raise InputError(f"cannot write {path.name!r}: it is a folder")
    if not path.parent.exists():
        raise InputError(f"cannot write {path.name!r}: its folder does not exist")


def swap_image_file(
    sources: list[Path], target: Path, output: Path, options: SwapOptions, reference: Path | None, quiet: bool
) -> None:
    """Swap an image file into an output file, marking it as synthetic unless told not to."""
    from swapface.media.image import read_image, write_image
    from swapface.pipeline import Pipeline
    from swapface.provenance import finalize_output
    from swapface.config import load_settings

    limit = load_settings().max_image_pixels
    started = time.perf_counter()
    pipe = Pipeline(
        [read_image(s, max_pixels=limit) for s in sources],
        options,
        reference=read_image(reference, max_pixels=limit) if reference else None,
    )
    frame = read_image(target, max_pixels=limit)
    result = pipe.process_frame(frame)
    write_image(result, output, quality=options.output_image_quality)
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
    source: list[str] = typer.Option(..., "--source", "-s", help="Photo of the face to put in (repeat for several photos of one person); a path or a gs:// / s3:// URI"),
    target: str = typer.Option(..., "--target", "-t", help="Image, video or folder of frames to change (path or URI)"),
    output: str = typer.Option(..., "--output", "-o", help="Where to write the result (path or URI)"),
    reference_face: Optional[str] = typer.Option(None, "--reference-face", help="Photo of the person to replace (face selector mode 'reference')"),
    executor: str = typer.Option("local", "--executor", help="Where video chunks run: local or ray"),
    progress: str = typer.Option("bar", "--progress", help="Progress display: bar or json"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but warnings and errors"),
    **options: Any,
) -> None:
    """Swap the source person's face into an image or a video."""
    opts = parse_options(collect_options(options))
    if not opts.mark_output and not quiet:
        typer.secho("note: --no-mark leaves the output unmarked; for local, non-distributed use only", err=True)
    from swapface.jobs.local_run import build_uri_spec, run_spec_cli, run_video_cli
    from swapface.storage import is_local

    mode = "quiet" if quiet else progress
    locations = [*source, target, output] + ([reference_face] if reference_face else [])
    if not all(is_local(loc) for loc in locations):  # object storage: the whole job runs on URIs
        run_spec_cli(build_uri_spec(source, target, output, opts, reference_face), executor, mode)
        return
    sources, target_path, output_path = [Path(s) for s in source], Path(target), Path(output)
    reference = Path(reference_face) if reference_face else None
    for path in [*sources, target_path] + ([reference] if reference else []):
        if not path.exists():
            raise InputError(f"cannot read {path.name!r}: no such file")
    from swapface.media.image import is_image_path

    if target_path.is_file() and is_image_path(target_path):
        if not is_image_path(output_path):
            raise InputError(f"the target is an image, so the output must be one too (.jpg, .png, .webp), not {output_path.name!r}")
        _check_output(output_path)
        swap_image_file(sources, target_path, output_path, opts, reference, quiet)
        return
    if output_path.suffix and not target_path.is_dir():
        _check_output(output_path)
    run_video_cli(sources=sources, target=target_path, output=output_path, options=opts, reference=reference,
                  executor_name=executor, progress_mode=mode)


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
    typer.echo(f"{sheet_path}  (source | target | result)")
    typer.echo(f"demo results are in {folder.resolve()}")


def _side_by_side(*images: np.ndarray, height: int = 360) -> np.ndarray:
    import cv2

    scaled = [cv2.resize(i, (round(i.shape[1] * height / i.shape[0]), height), interpolation=cv2.INTER_AREA) for i in images]
    gap = np.full((height, 8, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for s in scaled:
        parts += [s, gap]
    return np.hstack(parts[:-1])


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command(context_settings={"help_option_names": ["-h", "--help"]})(run)
    app.command()(compare)
    app.command()(demo)
