"""A worker: claims jobs from the store and runs them to the end, one at a time.

While a job runs, a heartbeat thread renews its lease and writes progress; if the lease is lost (the
job was taken over), a cancel is requested or the per-job timeout passes, the run stops at the next
frame. Committed chunks stay in the job's work folder, so whoever runs it next resumes from them.
A failure is recorded and retried with backoff while attempts remain; an error in the user's input
(no face in the source, a damaged video) fails at once. Finished jobs are handed to ``on_finished``
(the service sends webhooks from there).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from swapface import storage
from swapface.errors import InputError, ModelError, SwapfaceError
from swapface.executors.base import Executor
from swapface.jobs.runner import JobResult, Progress, run_job
from swapface.jobs.spec import JobSpec
from swapface.jobs.store import TERMINAL, JobRecord, JobStore
from swapface.media.video_limits import limits_from_spec
from swapface.models.session import ACCELERATOR_PROVIDERS
from swapface.options import SwapOptions
from swapface.storage.space import is_disk_full

log = logging.getLogger("swapface.worker")

FinishedCallback = Callable[[JobRecord], None]
CANCEL_POLL_S = 0.5


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker behaves: lease length, polling, limits."""

    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    job_timeout_seconds: float = 6 * 3600.0
    max_running_jobs: int | None = None  # global cap across all workers (cost control)
    max_backoff_seconds: float = 30.0  # longest wait between tries while the database or storage fails
    max_lost_frames_fraction: float = 0.05  # a video that lost more of its frames than this fails


def job_spec(job: JobRecord) -> JobSpec:
    """The engine's job description for a stored job (its work folder is its checkpoint)."""
    spec = job.spec
    return JobSpec(
        job_id=job.id, sources=tuple(spec["sources"]), target=spec["target"], output=spec["output"],
        work_dir=spec["work_dir"], options=SwapOptions.model_validate(spec.get("options", {})),
        reference_face=spec.get("reference_face"), video_limits=limits_from_spec(spec.get("video_limits")),
    )


class _Heartbeat(threading.Thread):
    """Renews the lease, stores the latest progress and meters the compute used so far, every third of the
    lease (a worker killed mid-job has billed its attempt up to its last beat).

    GPU seconds follow what ONNX Runtime actually ran, not what was asked for: chunks report, from their first
    frames, the providers their sessions ran on (``session.get_providers()``), and once one of them is an
    accelerator the whole attempt so far, and from then on, is billed as GPU time. Built-in models always run
    on the CPU."""

    def __init__(self, store: JobStore, job: JobRecord, worker_id: str, config: WorkerConfig) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{job.id[:8]}")
        self.store, self.job, self.worker_id, self.config = store, job, worker_id, config
        self.progress: Progress | None = None
        self.lost = threading.Event()
        self.cancelled = threading.Event()
        self._stop_event = threading.Event()
        self.providers: set[str] = set()  # what this attempt's models ran on, as its chunks report it
        self._metered = time.monotonic()
        self._billed = 0.0  # compute seconds of this attempt already added to the job
        self._gpu_billed = 0.0
        self._meter_lock = threading.Lock()

    def saw(self, providers: tuple[str, ...]) -> None:
        """Note providers the attempt's chunks ran on (called from the executor's progress thread)."""
        if providers:
            with self._meter_lock:
                self.providers.update(providers)

    def meter(self) -> None:
        """Add the compute time since the last call to the job's usage (and GPU time, see the class)."""
        with self._meter_lock:
            now = time.monotonic()
            seconds = now - self._metered
            providers = set(self.providers)
            gpu = self._billed + seconds - self._gpu_billed if providers & ACCELERATOR_PROVIDERS else 0.0
            self.store.add_usage(self.job.id, compute_seconds=seconds, gpu_seconds=gpu, providers=providers)
            self._metered, self._billed, self._gpu_billed = now, self._billed + seconds, self._gpu_billed + gpu

    def beat(self) -> None:
        values = {}
        if self.progress is not None:
            p = self.progress
            values = {"frames_done": p.frames_done, "frames_total": p.frames_total, "chunks_done": p.chunks_done,
                      "chunks_total": p.chunks_total}
        lease = self.store.heartbeat(self.job.id, self.worker_id, lease_seconds=self.config.lease_seconds, **values)
        if not lease.held:
            self.lost.set()
        if lease.cancel_requested:
            self.cancelled.set()

    def run(self) -> None:
        interval = max(0.2, self.config.lease_seconds / 3)
        while not self._stop_event.wait(interval):
            try:
                self.beat()
                self.meter()
            except Exception as exc:  # a database hiccup: the lease has slack for the next beat
                log.warning("heartbeat failed", extra={"job_id": self.job.id, "error": type(exc).__name__})

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


class Worker:
    """Claims and runs jobs until stopped; one job at a time, chunks through ``executor``."""

    def __init__(self, store: JobStore, executor: Executor, config: WorkerConfig | None = None,
                 on_finished: FinishedCallback | None = None, worker_id: str | None = None) -> None:
        self.store = store
        self.executor = executor
        self.config = config or WorkerConfig()
        self.on_finished = on_finished
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.failing: str | None = None  # the error type while the database or storage fails (readiness)
        self._stop = threading.Event()

    def stop(self) -> None:
        """Finish the current job's chunk, then stop claiming."""
        self._stop.set()

    def run_forever(self) -> None:
        """Claim and run jobs until :meth:`stop`; a database or storage error (a full disk) never ends the loop.

        While steps fail the worker reports itself as failing (``/readyz``) and tries again with exponential
        backoff; the first step that works clears it. A job caught mid-way stays leased and is taken over
        once its lease expires, so it resumes from its committed chunks."""
        backoff = self.config.poll_seconds
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception as exc:
                self.failing = type(exc).__name__
                log.warning("worker step failed; retrying", exc_info=True,
                            extra={"error": type(exc).__name__, "retry_in_s": round(backoff, 2)})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.config.max_backoff_seconds)
                continue
            self.failing, backoff = None, self.config.poll_seconds
            if not busy:
                self._stop.wait(self.config.poll_seconds)

    def run_once(self) -> bool:
        """Claim one job and run it; False when there was nothing to do."""
        job = self.store.claim(self.worker_id, lease_seconds=self.config.lease_seconds,
                               max_running=self.config.max_running_jobs)
        if job is None:
            return False
        self._run(job)
        return True

    def _run(self, job: JobRecord) -> None:
        log.info("job claimed", extra={"job_id": job.id, "attempt": job.attempts})
        heartbeat = _Heartbeat(self.store, job, self.worker_id, self.config)
        deadline = time.monotonic() + self.config.job_timeout_seconds
        started = time.monotonic()
        timed_out = threading.Event()

        def on_progress(progress: Progress) -> None:
            heartbeat.progress = progress
            heartbeat.saw(progress.providers)

        last_look = [time.monotonic()]

        def should_stop() -> bool:
            now = time.monotonic()
            if now > deadline:
                timed_out.set()
            if now - last_look[0] >= CANCEL_POLL_S:  # a cancel takes effect at the next frame, not the next beat
                last_look[0] = now
                try:
                    if self.store.cancel_requested(job.id):
                        heartbeat.cancelled.set()
                except Exception as exc:  # the heartbeat looks again
                    log.debug("cancel check failed", extra={"job_id": job.id, "error": type(exc).__name__})
            return heartbeat.lost.is_set() or heartbeat.cancelled.is_set() or timed_out.is_set() or self._stop.is_set()

        heartbeat.beat()
        heartbeat.start()
        error: BaseException | None = None
        state, values = "lost", {}
        try:
            if heartbeat.cancelled.is_set():
                state = "cancelled"
            else:
                result = run_job(job_spec(job), executor=self.executor, on_progress=on_progress, should_stop=should_stop)
                heartbeat.saw(result.providers)
                heartbeat.beat()
                if result.status == "done" and self._too_damaged(result):
                    state, error = "failed", InputError(
                        f"{result.lost_frames} of {result.frames_total} frames of the target could not be decoded: "
                        "the video is damaged", code="damaged_video")
                    values = {"lost_frames": result.lost_frames}
                elif result.status == "done":
                    state = "succeeded"
                    values = {"frames": result.frames, "frames_done": result.frames, "frames_total": result.frames,
                              "chunks_done": result.chunks, "chunks_total": result.chunks,
                              "chunks_reused": result.chunks_reused, "lost_frames": result.lost_frames}
                elif heartbeat.cancelled.is_set():
                    state = "cancelled"
                elif timed_out.is_set():
                    state, error = "failed", InputError("the job ran past its time limit", code="timeout")
                else:
                    state = "lost" if heartbeat.lost.is_set() else "stopped"
        except SwapfaceError as exc:
            state, error = "failed", exc
        except Exception as exc:  # an unexpected bug or environment fault: retry, never show internals
            if is_disk_full(exc):  # not the job's fault: it goes back without using up an attempt
                heartbeat.stop()
                self._hand_back(job)
                raise
            log.exception("job attempt crashed", extra={"job_id": job.id})
            state, error = "failed", exc
        finally:
            heartbeat.stop()
        seconds = time.monotonic() - started
        heartbeat.meter()  # the rest of the attempt (the heartbeat metered up to its last beat)
        final = self._settle(job, state, error, values)
        if final in TERMINAL:
            self._cleanup(job)
            record = self.store.get(job.id)
            if record is not None and self.on_finished is not None:
                try:
                    self.on_finished(record)
                except Exception as exc:
                    log.warning("finished-job callback failed", extra={"job_id": job.id, "error": type(exc).__name__})
        log.info("job attempt ended", extra={"job_id": job.id, "state": final, "seconds": round(seconds, 2)})

    def _too_damaged(self, result: JobResult) -> bool:
        """Whether the target lost more frames to damage than the configured share."""
        total = max(result.frames_total, result.frames + result.lost_frames, 1)
        return result.lost_frames > self.config.max_lost_frames_fraction * total

    def _settle(self, job: JobRecord, state: str, error: BaseException | None, values: dict) -> str:
        """Write the attempt's outcome; returns the job's state afterwards."""
        if state == "failed" and self.store.cancel_requested(job.id):
            state = "cancelled"  # a deleted job's inputs vanish under it: that is the cancel, not a failure
        if state == "succeeded":
            if self.store.finish(job.id, self.worker_id, "succeeded", unless_cancelled=True, **values):
                return "succeeded"
            state = "cancelled" if self.store.cancel_requested(job.id) else "lost"
        if state == "cancelled":
            return "cancelled" if self.store.finish(job.id, self.worker_id, "cancelled") else "lost"
        if state == "failed":
            if isinstance(error, SwapfaceError):
                code, message = error.code, str(error)
            else:
                code, message = "internal", f"an internal error stopped the job ({type(error).__name__})"
            retryable = not isinstance(error, (InputError, ModelError))  # neither changes on a retry
            return self.store.fail_attempt(job.id, self.worker_id, code, message, retryable=retryable, **values)
        if state == "stopped":  # this worker is shutting down: hand the job back at once
            self.store.fail_attempt(job.id, self.worker_id, "worker_stopped", "the worker shut down; the job resumes",
                                    retryable=True)
            return "queued"
        return "lost"

    def _hand_back(self, job: JobRecord) -> None:
        """Re-queue a job whose attempt the machine broke (a full disk); if even that fails, its lease runs out."""
        try:
            self.store.release(job.id, self.worker_id, delay_s=self.config.poll_seconds)
        except Exception as exc:
            log.warning("could not hand a job back", extra={"job_id": job.id, "error": type(exc).__name__})

    @staticmethod
    def _cleanup(job: JobRecord) -> None:
        """Intermediates go as soon as a job ends (the runner already removes them on success)."""
        work_dir = job.spec.get("work_dir")
        if work_dir:
            try:
                storage.remove(work_dir, recursive=True)
            except Exception as exc:  # storage hiccup: the retention sweeper gets them later
                log.warning("could not remove intermediates", extra={"job_id": job.id, "error": type(exc).__name__})
