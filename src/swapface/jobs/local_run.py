"""``swapface run`` as a job: a video or folder of frames on local files, or anything on object-store URIs.

The job's work folder sits beside the output and its name holds a hash of the arguments, so running the
same command again after an interruption resumes from the finished chunks, while a different command
starts afresh.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import typer

from swapface.errors import InputError
from swapface.jobs.runner import JobResult, run_job
from swapface.jobs.spec import JobSpec
from swapface.options import SwapOptions


def _file_sig(path: Path) -> list[object]:
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def job_key(sources: Sequence[Path], target: Path, output: Path, options: SwapOptions, reference: Path | None) -> str:
    """A stable hash of everything that decides the result (files by path, size and modification time)."""
    doc = {
        "sources": [_file_sig(s) for s in sources],
        "target": _file_sig(target) if target.is_file() else [str(target.resolve())],
        "output": str(output.resolve()),
        "reference": _file_sig(reference) if reference else None,
        "options": options.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def work_dir_for(output: Path, key: str) -> Path:
    """``<output>.swapface-work-<hash>`` beside the output (hidden)."""
    return output.resolve().parent / f".{output.name}.swapface-work-{key[:12]}"


def build_spec(sources: Sequence[Path], target: Path, output: Path, options: SwapOptions,
               reference: Path | None) -> JobSpec:
    """The local job for a command line: deterministic id and work folder."""
    key = job_key(sources, target, output, options, reference)
    return JobSpec(
        job_id=f"local-{key[:16]}", sources=tuple(str(s.resolve()) for s in sources), target=str(target.resolve()),
        output=str(output.resolve()), work_dir=str(work_dir_for(output, key)), options=options,
        reference_face=str(reference.resolve()) if reference else None,
    )


def build_uri_spec(sources: Sequence[str], target: str, output: str, options: SwapOptions,
                   reference: str | None) -> JobSpec:
    """A job on object-store URIs: deterministic id, work folder beside the output in the same store."""
    from swapface import storage

    for uri in [*sources, target] + ([reference] if reference else []):
        if not storage.exists(uri):
            raise InputError(f"cannot read {uri.rsplit('/', 1)[-1]!r}: no such object")
    doc = {"sources": list(sources), "target": target, "output": output, "reference": reference,
           "options": options.model_dump(mode="json")}
    key = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    parent, name = output.rstrip("/").rsplit("/", 1)
    return JobSpec(job_id=f"cli-{key[:16]}", sources=tuple(sources), target=target, output=output,
                   work_dir=f"{parent}/.{name}.swapface-work-{key[:12]}", options=options, reference_face=reference)


def lost_frames_warning(result: JobResult, target: str) -> str:
    """The one-line warning for input frames left out of the output: for a folder of frames, those unreadable or
    of another size than the first (a folder is read as one clip; separate photos go through a glob instead)."""
    if Path(target).is_dir():
        return (f"warning: {result.lost_frames} frame(s) of the folder could not be read or differ in size from its "
                f"first frame; the output has the other {result.frames} — for separate photos of any size use "
                "-t 'folder/*' -o 'out/{name}.png'")
    return (f"warning: {result.lost_frames} frame(s) of the input could not be decoded (damaged or truncated file); "
            f"the output has the {result.frames} decodable frame(s)")


def run_spec_cli(spec: JobSpec, executor_name: str = "local", progress_mode: str = "bar") -> JobResult:
    """Run (or resume) a job with a progress display; warns about lost frames."""
    from swapface.cli.progress import ProgressReporter
    from swapface.executors import get_executor

    reporter = ProgressReporter(progress_mode)
    executor = get_executor(executor_name)
    try:
        with reporter:
            result = run_job(spec, executor=executor, on_progress=reporter.update)
    finally:
        executor.close()
    name = spec.output.rstrip("/").rsplit("/", 1)[-1]
    summary = asdict(result)
    summary["output"] = name
    reporter.result(summary)
    if result.lost_frames:
        typer.secho(lost_frames_warning(result, spec.target), err=True, fg="yellow")
    if progress_mode == "bar":
        reused = f", {result.chunks_reused} chunk(s) reused" if result.chunks_reused else ""
        typer.echo(f"{result.frames} frame(s) in {result.seconds:.1f}s{reused} → {name}")
    return result


def run_video_cli(sources: Sequence[Path], target: Path, output: Path, options: SwapOptions, reference: Path | None,
                  executor_name: str = "local", progress_mode: str = "bar") -> JobResult:
    """Run (or resume) a video / frame-folder swap on local files, its work folder beside the output."""
    if not target.exists():
        raise InputError(f"cannot read {target.name!r}: no such file")
    if output.exists() and output.is_dir() and output.suffix:
        raise InputError(f"cannot write {output.name!r}: it is a folder")
    if not output.resolve().parent.exists():
        raise InputError(f"cannot write {output.name!r}: its folder does not exist")
    return run_spec_cli(build_spec(sources, target, output, options, reference), executor_name, progress_mode)
