"""What a running service holds: settings, the job store, API keys, and its background threads.

``serve`` and ``worker`` both build a :class:`ServiceRuntime`; ``serve --workers N`` starts N worker
threads (each runs its chunks in its own executor process), the retention sweeper and the webhook
sender beside the HTTP API, so one command runs everything on a laptop.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from swapface.config import Settings, load_settings
from swapface.jobs.store import JobRecord, JobStore, make_engine
from swapface.jobs.worker import Worker, WorkerConfig
from swapface.service.auth import ApiKeys

if TYPE_CHECKING:
    from swapface.service.webhook_dispatch import Delivery, WebhookDispatcher
    from swapface.service.webhooks import WebhookDeliveries

log = logging.getLogger("swapface.service")


@dataclass
class ServiceRuntime:
    """The service's shared objects and background threads."""

    settings: Settings
    store: JobStore
    keys: ApiKeys
    executor_name: str = "local"
    encryption: str = "off"  # ok | off | kek_missing | kek_mismatch, as found at start-up
    _workers: list[Worker] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _webhooks: WebhookDispatcher | None = None
    _deliveries: WebhookDeliveries | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, executor_name: str = "local") -> "ServiceRuntime":
        settings = settings or load_settings()
        from swapface.storage.scratch import sweep

        swept = sweep(settings, include_own=True)  # working copies of killed processes (decrypted media)
        if swept:
            log.info("swept working folders of stopped processes", extra={"count": swept})
        from swapface import storage

        encryption = storage.check_encryption(settings=settings)  # never serve ciphertext or store plaintext beside it
        if encryption not in ("ok", "off"):
            log.error("the configured key-encryption key does not read the stored data keys", extra={"code": encryption})
        engine = make_engine(settings.resolved_database_url())
        store = JobStore(engine, max_attempts=settings.job_max_attempts, retry_backoff_s=settings.retry_backoff_s)
        return cls(settings=settings, store=store, keys=ApiKeys(engine), executor_name=executor_name,
                   encryption=encryption)

    def worker_config(self) -> WorkerConfig:
        s = self.settings
        return WorkerConfig(lease_seconds=s.lease_s, poll_seconds=s.worker_poll_s, job_timeout_seconds=s.job_timeout_s,
                            max_running_jobs=s.max_running_jobs, max_lost_frames_fraction=s.max_lost_frames_fraction)

    def on_finished(self, job: JobRecord) -> None:
        """A job ended: purge it if it was deleted meanwhile, and send its webhook in the background."""
        if job.purged_at is not None:
            self.purge_media(job.id)
        if job.webhook_url:
            from swapface.service.webhook_dispatch import Delivery, WebhookDispatcher

            if self._webhooks is None:
                self._webhooks = WebhookDispatcher(self._webhook_step)
            self._webhooks.submit(Delivery(job.id, job.status, job.webhook_url, job.webhook_secret or ""))

    def purge_media(self, job_id: str, reason: str = "deleted") -> int:
        """Delete a job's media and data key now, recorded in the retention audit; returns the object count."""
        from swapface.jobs.retention import Retention

        return Retention(self.settings, self.store.engine).purge_job(job_id, reason=reason)

    def discard_media(self, job_id: str) -> None:
        """Remove what a refused submission stored, even when the database cannot record it (a full disk)."""
        from swapface import storage

        try:
            self.purge_media(job_id, reason="rejected")
        except Exception as exc:
            log.warning("could not record a refused job's purge", extra={"job_id": job_id, "error": type(exc).__name__})
        try:
            storage.remove(storage.join(self.settings.resolved_storage_url(), job_id), recursive=True)
            storage.shred(job_id, settings=self.settings)
        except Exception as exc:
            log.warning("could not remove a refused job's media", extra={"job_id": job_id, "error": type(exc).__name__})

    def disk_low(self) -> bool | None:
        """Whether the data folder has less free space than ``min_free_disk_mb``; None where not measurable."""
        from swapface.storage.space import free_mb

        free = free_mb(self.settings.data_dir)
        return None if free is None else free < self.settings.min_free_disk_mb

    def worker_health(self) -> str | None:
        """'ok', or the error type of a worker whose database or storage steps fail; None without workers."""
        if not self._workers:
            return None
        failing = [w.failing for w in self._workers if w.failing]
        return failing[0] if failing else "ok"

    def _webhook_step(self, delivery: Delivery) -> float | None:
        """One attempt of a job's webhook; the wait before the next one (None when done)."""
        from swapface import storage
        from swapface.service.webhooks import WebhookDeliveries

        if self._deliveries is None:
            self._deliveries = WebhookDeliveries(self.settings, self.store.engine)
        secret = storage.open_secret(delivery.secret, delivery.job_id, settings=self.settings)
        _, wait = self._deliveries.step(delivery.job_id, delivery.status, delivery.url, secret)
        return wait

    def new_worker(self) -> Worker:
        """A worker bound to this runtime's store, executor kind and finished-job handling; :meth:`stop` ends it."""
        from swapface.executors import get_executor

        worker = Worker(self.store, get_executor(self.executor_name), self.worker_config(), on_finished=self.on_finished)
        self._workers.append(worker)
        return worker

    def start_workers(self, count: int) -> None:
        """Run ``count`` workers in threads (their chunks run in executor processes)."""
        for index in range(count):
            worker = self.new_worker()
            thread = threading.Thread(target=worker.run_forever, name=f"worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def start_sweeper(self) -> None:
        """Run the retention sweeper every ``sweep_interval_s`` (first run at start)."""
        def loop() -> None:
            from swapface.jobs.retention import Retention

            while not self._stop.is_set():
                try:
                    from swapface.storage.scratch import sweep

                    sweep(self.settings)
                    report = Retention(self.settings, self.store.engine).sweep(key_of=self.key_name_of_job)
                    if report.jobs:
                        for job_id in report.jobs:
                            self.store.mark_purged(job_id)
                        log.info("retention sweep", extra={"jobs": len(report.jobs), "objects": report.objects})
                except Exception as exc:
                    log.warning("retention sweep failed", extra={"error": type(exc).__name__})
                self._stop.wait(self.settings.sweep_interval_s)

        thread = threading.Thread(target=loop, name="sweeper", daemon=True)
        thread.start()
        self._threads.append(thread)

    def key_name_of_job(self, job_id: str) -> str | None:
        """The API key name that owns a job (per-key retention)."""
        job = self.store.get(job_id)
        return None if job is None else self.keys.name_of(job.owner)

    def stop(self) -> None:
        """Stop workers after their current chunk, the sweeper, and pending webhooks."""
        self._stop.set()
        for worker in self._workers:
            worker.stop()
        for thread in self._threads:
            thread.join(timeout=30)
        for worker in self._workers:
            worker.executor.close()
        if self._webhooks is not None:
            self._webhooks.close()
