"""Command ``eval``: how well a swap worked (identity in/out, pose kept, added flicker), per clip and per frame."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from swapface.errors import InputError
from swapface.evaluation import EvalSummary, FrameMetrics, identity_distance, landmark_error, summarize
from swapface.faces.face import Face
from swapface.jitter import JitterMeter


def _frames(path: Path) -> Iterator[np.ndarray]:
    from swapface.media.image import is_image_path, read_image

    if path.is_file() and is_image_path(path):
        yield read_image(path)
        return
    from swapface.media.video import decode_frames, probe

    info = probe(path)
    for _, _, rgb in decode_frames(path, info, 0, info.frames):
        yield rgb


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, float(x2 - x1)) * max(0.0, float(y2 - y1))
    union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
    return inter / union if union > 0 else 0.0


def frame_count(path: Path) -> int:
    """Frames in an image (1) or a clip, for the progress bar."""
    from swapface.media.image import is_image_path

    if path.is_file() and is_image_path(path):
        return 1
    from swapface.media.video import probe

    return probe(path).frames


def _compare_faces(faces_out: list[Face], main: Face, source_embedding: np.ndarray
                   ) -> tuple[float | None, float | None, float | None]:
    """Identity distances to the source and the original, and landmark error, of the output face over ``main``."""
    match = max(faces_out, key=lambda f: _box_iou(f.box, main.box), default=None)
    if match is None or _box_iou(match.box, main.box) <= 0.3:
        return None, None, None
    to_source = to_original = None
    if match.embedding is not None and main.embedding is not None:
        to_source = identity_distance(match.embedding, source_embedding)
        to_original = identity_distance(match.embedding, main.embedding)
    if match.landmarks is not None and main.landmarks is not None:
        error = landmark_error(match.landmarks, main.landmarks, main.interocular)
    else:
        error = landmark_error(match.keypoints, main.keypoints, main.interocular)
    return to_source, to_original, error


def evaluate_files(source: Path, original: Path, output: Path, *, analyser=None,
                   every: int = 1, on_frame: Callable[[int], None] | None = None
                   ) -> tuple[EvalSummary, list[FrameMetrics]]:
    """Compare an output with its input and the source photo, frame by frame (faces analysed every ``every`` frames).

    ``on_frame(n)`` is told how many frames are done so far."""
    from swapface.faces.analyser import FaceAnalyser
    from swapface.media.image import read_image
    from swapface.options import SwapOptions

    for p in (source, original, output):
        if not p.exists():
            raise InputError(f"cannot read '{p}': no such file")
    analyser = analyser or FaceAnalyser.from_options(SwapOptions(), video=False)
    found = analyser.analyse_still(read_image(source))
    if not found or found[0].embedding is None:
        raise InputError("no face found in the source image")
    source_embedding = found[0].embedding
    metrics: list[FrameMetrics] = []
    meter = JitterMeter(every_frame_change=True)
    count = 0
    for index, (inp, out) in enumerate(zip(_frames(original), _frames(output))):
        count += 1
        if inp.shape != out.shape:
            raise InputError("the output's frames do not have the input's size")
        analysed = index % every == 0
        faces_in = analyser.analyse_still(inp) if analysed else []
        main = faces_in[0] if faces_in else None
        step = meter.add(inp, out, None if main is None else main.box, analysed)
        to_source = to_original = error = None
        if main is not None:
            to_source, to_original, error = _compare_faces(analyser.analyse_still(out), main, source_embedding)
        metrics.append(FrameMetrics(index, to_source, to_original, error, step.change_output, step.change_input, step.jitter))
        if on_frame is not None:
            on_frame(count)
    if count == 0:
        raise InputError("no frames to compare")
    return summarize(metrics), metrics


def still_quality(original: Path, output: Path) -> dict[str, float | None] | None:
    """Seam, cheek ΔE and sharpness ratio of a swapped still against its original (dlib judges); None for video."""
    from swapface.media.image import is_image_path, read_image
    from swapface.quality import DlibScorer, image_quality

    if not (is_image_path(original) and is_image_path(output)):
        return None
    found = image_quality(read_image(output), read_image(original), DlibScorer())
    return {"seam": found.seam, "cheek_delta_e": found.cheek_delta_e, "sharpness_ratio": found.sharpness_ratio}


def plot_metrics(metrics: list[FrameMetrics], path: Path) -> Path:
    """Draw identity distances, landmark error and face-region change per frame into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(name: str) -> list[float]:
        return [np.nan if getattr(m, name) is None else getattr(m, name) for m in metrics]

    x = [m.index for m in metrics]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    axes[0].plot(x, series("to_source"), ".-", label="to source")
    axes[0].plot(x, series("to_original"), ".-", label="to original")
    axes[0].set_ylabel("identity distance")
    axes[0].legend()
    axes[1].plot(x, series("landmark_error_pct"), ".-", color="tab:green")
    axes[1].set_ylabel("landmark error (% IOD)")
    axes[2].plot(x, series("change_input"), ".-", label="input")
    axes[2].plot(x, series("change_output"), ".-", label="output")
    axes[2].set_ylabel("face-region change")
    axes[2].set_xlabel("frame")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _fmt(value: float | None, pattern: str = "{:.3f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def evaluate(
    source: Path = typer.Option(..., "--source", "-s", help="Photo of the face that was put in"),
    target: Path = typer.Option(..., "--target", "-t", help="The original image or video (as given to "
                                "'run -t')"),
    output: Path = typer.Option(..., "--output", "-o", help="The swapped image or video"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write per-frame plots to this PNG (needs matplotlib: "
                                        "pip install 'swapface[plot]')"),
    every: int = typer.Option(1, "--every", min=1, help="Analyse faces every N frames (faster on long clips)"),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar"),
) -> None:
    """Score a swap: identity distance to the source and to the original, landmark error, temporal change ratio."""
    if plot is not None:
        try:
            import matplotlib  # noqa: F401 - checked before the analysis, which may take minutes
        except ModuleNotFoundError:
            raise InputError("--plot needs matplotlib: pip install 'swapface[plot]'") from None
        if not plot.resolve().parent.is_dir():
            raise InputError(f"cannot write '{plot}': its folder does not exist")
    for p in (source, target, output):
        if not p.exists():
            raise InputError(f"cannot read '{p}': no such file")
    with eval_progress(frame_count(target), quiet) as on_frame:
        summary, metrics = evaluate_files(source, target, output, every=every, on_frame=on_frame)
    still = still_quality(target, output)
    if as_json:
        typer.echo(json.dumps({**summary.to_dict(), **(still or {})}))
    else:
        typer.echo(f"frames                         {summary.frames} ({summary.frames_with_face} with a face analysed)")
        typer.echo(f"identity distance to source    {_fmt(summary.identity_to_source)}  (lower = more like the source)")
        typer.echo(f"identity distance to original  {_fmt(summary.identity_to_original)}  (higher = less like the original)")
        typer.echo(f"landmark error                 {_fmt(summary.landmark_error_pct, '{:.1f}')} % of inter-ocular distance")
        typer.echo(f"temporal change ratio          {_fmt(summary.temporal_change_ratio, '{:.2f}')}  (1.00 = no added flicker)")
        typer.echo(f"landmark jitter                {_fmt(summary.landmark_jitter)}  of inter-ocular distance per frame "
                   "(0 = moves as the original)")
        if still is not None:
            typer.echo(f"seam                           {_fmt(still['seam'], '{:.2f}')}  (over 1.00 = a hard pasted edge)")
            typer.echo(f"cheek colour ΔE                {_fmt(still['cheek_delta_e'], '{:.1f}')}  (CIELAB; over 10 = another skin tone)")
            typer.echo(f"sharpness ratio                {_fmt(still['sharpness_ratio'], '{:.2f}')}  (1.00 = as sharp as the original)")
    if plot is not None:
        plot_metrics(metrics, plot)
        if not as_json:
            typer.echo(f"plot → {plot}")


@contextlib.contextmanager
def eval_progress(total: int, quiet: bool) -> Iterator[Callable[[int], None] | None]:
    """A bar on stderr counting the frames compared (nothing when quiet)."""
    if quiet:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("comparing frames"), BarColumn(bar_width=24), MofNCompleteColumn(), TextColumn("ETA"),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("eval", total=total)
        yield lambda done: bar.update(task, completed=done)


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command."""
    app.command("eval")(evaluate)
