"""Turning committed segments into the final output: concat + audio for videos, frames for folders, a copy for images."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from swapface import storage
from swapface.jobs.spec import JobSpec, Segment
from swapface.media.video import VideoInfo


@dataclass
class MergeResult:
    """Frames written to the output and how the audio streams were carried over."""

    frames: int
    audio_copied: int = 0
    audio_reencoded: int = 0


def merge_segments(spec: JobSpec, segments: Sequence[Segment], local_output: Path, *, source: Path | None,
                   info: VideoInfo | None) -> MergeResult:
    """Write the output locally from ordered segments: a video, a folder of PNG frames, or the one image."""
    written = [s for s in segments if s.uri]
    with contextlib.ExitStack() as stack:
        paths = [stack.enter_context(storage.fetch(s.uri, job_id=spec.job_id)) for s in written]
        if info is None:  # an image: the one segment is the output
            shutil.copyfile(paths[0], local_output)
            return MergeResult(frames=1)
        if local_output.suffix == "":
            return MergeResult(frames=_frames_to_folder(paths, local_output))
        from swapface.media.mux import concat_segments

        first, end = segments[0].chunk.frame_start, segments[-1].chunk.frame_end
        if spec.options.output_video_fps:  # the segments hold the output timeline's frames, not the input's
            from swapface.media.retime import retime

            timeline = retime(info, spec.options.output_video_fps)
            (first, _), (_, end) = timeline.output_range(first, first), timeline.output_range(end, end)
            info = timeline.info
        report = concat_segments(paths, local_output, info, source, first_frame=first, end_frame=end,
                                 skip_audio=spec.options.skip_audio)
        return MergeResult(report.frames, report.audio_copied, report.audio_reencoded)


def _frames_to_folder(paths: Sequence[Path], folder: Path) -> int:
    """Decode lossless segments into numbered PNG frames."""
    import av

    from swapface.media.sequence import write_sequence_frame

    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in paths:
        with av.open(str(path)) as seg:
            for frame in seg.decode(video=0):
                write_sequence_frame(folder, count, frame.to_ndarray(format="rgb24"))
                count += 1
    return count
