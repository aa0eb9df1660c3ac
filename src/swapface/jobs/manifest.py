"""The job's checkpoint: a JSON manifest in ``work_dir`` listing the planned chunks and the committed segments.

Written atomically after every commit, so a run killed at any moment leaves either the old or the
new manifest, never half of one. A manifest made for other inputs or options (its fingerprint
differs) is ignored, so a changed command line never splices stale segments in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from swapface import storage
from swapface.jobs.spec import Chunk, JobSpec, Segment

VERSION = 1
MANIFEST_NAME = "manifest.json"


def fingerprint(spec: JobSpec, chunks: list[Chunk], target_signature: str = "") -> str:
    """A hash of what decides a segment's pixels: inputs, options and the chunk plan."""
    doc = {
        "sources": list(spec.sources),
        "target": spec.target,
        "target_signature": target_signature,
        "reference": spec.reference_face,
        "options": spec.options.model_dump(mode="json"),
        "chunks": [[c.index, c.frame_start, c.frame_end] for c in chunks],
        "output_kind": storage_suffix(spec.output),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def storage_suffix(uri: str) -> str:
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def manifest_uri(spec: JobSpec) -> str:
    return storage.join(spec.work_dir, MANIFEST_NAME)


@dataclass
class Manifest:
    """Planned chunks and committed segments of one job."""

    job_id: str
    fingerprint: str
    chunks: list[Chunk]
    segments: dict[int, Segment] = field(default_factory=dict)

    @classmethod
    def open(cls, spec: JobSpec, chunks: list[Chunk], fp: str) -> "Manifest":
        """The stored manifest when it matches ``fp`` (segments whose file is gone are dropped), else a new one."""
        doc = storage.read_json(manifest_uri(spec), job_id=spec.job_id)
        manifest = cls(job_id=spec.job_id, fingerprint=fp, chunks=list(chunks))
        if not isinstance(doc, dict) or doc.get("version") != VERSION or doc.get("fingerprint") != fp:
            manifest.save(spec)
            return manifest
        by_index = {c.index: c for c in chunks}
        for key, seg in (doc.get("segments") or {}).items():
            chunk = by_index.get(int(key))
            if chunk is None or (seg["uri"] and not storage.exists(seg["uri"])):
                continue
            manifest.segments[chunk.index] = Segment(chunk, seg["uri"], int(seg["frames"]), int(seg.get("lost_frames", 0)))
        return manifest

    def pending(self) -> list[Chunk]:
        """Chunks without a committed segment, in order."""
        return [c for c in self.chunks if c.index not in self.segments]

    def commit(self, spec: JobSpec, segment: Segment) -> None:
        """Record a finished segment and write the manifest atomically."""
        self.segments[segment.chunk.index] = segment
        self.save(spec)

    def ordered(self) -> list[Segment]:
        return [self.segments[c.index] for c in self.chunks if c.index in self.segments]

    def to_json(self) -> dict:
        return {
            "version": VERSION,
            "job_id": self.job_id,
            "fingerprint": self.fingerprint,
            "chunks": [[c.index, c.frame_start, c.frame_end] for c in self.chunks],
            "segments": {
                str(i): {"uri": s.uri, "frames": s.frames, "lost_frames": s.lost_frames}
                for i, s in sorted(self.segments.items())
            },
        }

    def save(self, spec: JobSpec) -> None:
        storage.write_json(manifest_uri(spec), self.to_json(), job_id=spec.job_id)
