"""What ``run`` checks about its paths before any work, and FaceFusion-style batches of targets.

Every message names the path the way it was given, so the user sees which of several paths is wrong.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from swapface.errors import InputError
from swapface.media.image import IMAGE_SUFFIXES, OUTPUT_IMAGE_SUFFIXES

BATCH_FIELDS = ("{name}", "{index}")


def has_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


@dataclass(frozen=True)
class Task:
    """One target and where its result goes."""

    target: Path
    output: Path


def expand_batch(target: str, output: str) -> list[Task]:
    """``-t 'clips/*.mp4' -o 'out/{name}-swapped.mp4'``: one task per matching file (sorted), else the one pair."""
    if not has_glob(target) or Path(target).exists():
        if any(field in output for field in BATCH_FIELDS):
            name = Path(target).stem
            output = output.replace("{name}", name).replace("{index}", "0")
        return [Task(Path(target), Path(output))]
    matches = sorted(p for p in glob.glob(target) if Path(p).is_file())
    if not matches:
        raise InputError(f"no file matches '{target}'")
    if len(matches) > 1 and not any(field in output for field in BATCH_FIELDS):
        raise InputError(f"'{target}' matches {len(matches)} files, so the output needs {{name}} or {{index}} "
                         f"to tell them apart, e.g. 'out/{{name}}-swapped{Path(output).suffix or '.mp4'}'")
    tasks = []
    for index, match in enumerate(matches):
        out = output.replace("{name}", Path(match).stem).replace("{index}", str(index))
        tasks.append(Task(Path(match), Path(out)))
    outputs = [t.output.resolve() for t in tasks]
    if len(set(outputs)) != len(outputs):
        raise InputError(f"several targets would be written to the same output; use {{name}} or {{index}} in '{output}'")
    return tasks


def check_paths(sources: list[Path], task: Task, reference: Path | None) -> str:
    """Every input exists, the output type suits the target and overwrites no input; returns 'image' or 'video'."""
    from swapface.media.video import VIDEO_SUFFIXES

    for path in [*sources, task.target] + ([reference] if reference else []):
        if not path.exists():
            raise InputError(f"cannot read '{path}': no such file")
    output, target = task.output, task.target
    inputs = {p.resolve(): p for p in [*sources, target] + ([reference] if reference else [])}
    if output.resolve() in inputs:
        raise InputError(f"the output '{output}' is one of the inputs; writing it would overwrite the original: "
                         "choose another output path")
    suffix = output.suffix.lower()
    if target.is_file() and target.suffix.lower() in IMAGE_SUFFIXES:
        if suffix not in OUTPUT_IMAGE_SUFFIXES:
            raise InputError(f"the target '{target}' is an image, so the output must be one too "
                             f"({', '.join(OUTPUT_IMAGE_SUFFIXES)}), not '{output}'")
        kind = "image"
    else:
        if suffix and suffix not in VIDEO_SUFFIXES:
            what = "a video" if target.suffix.lower() in VIDEO_SUFFIXES or target.is_dir() else "not a photo swapface reads"
            raise InputError(f"the target '{target}' is {what}, so the output must be a video "
                             f"({', '.join(sorted(VIDEO_SUFFIXES))}) or a folder for frames, not '{output}'")
        kind = "video"
    if output.is_dir() and suffix:
        raise InputError(f"cannot write '{output}': it is a folder")
    if kind == "image" and output.is_dir():
        raise InputError(f"cannot write '{output}': it is a folder")
    parent = output.parent
    if not parent.exists():
        raise InputError(f"cannot write '{output}': its folder does not exist ('{parent}')")
    return kind
