"""``/metrics`` in Prometheus text format, computed from the job store (jobs and live sessions) at scrape time.

Reading the database (not in-process counters) means every worker process, on any machine, is
counted, and a restart loses nothing. GPU utilisation and memory come from NVML where a GPU is visible.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

LATENCY_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 12 * 3600.0)


def gpu_readings() -> list[dict[str, float]]:
    """Utilisation (%) and memory (bytes) of each visible NVIDIA GPU; empty without NVML or a GPU."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:
        return []
    try:
        out = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            util = pynvml.nvmlDeviceGetUtilizationRates(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            out.append({"index": index, "utilization": float(util.gpu), "memory_used": float(memory.used),
                        "memory_total": float(memory.total)})
        return out
    finally:
        pynvml.nvmlShutdown()


class StoreCollector(Collector):
    """Job metrics from the store, one query batch per scrape."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        snap = self.store.metrics_snapshot(LATENCY_BUCKETS)
        states = GaugeMetricFamily("swapface_jobs", "Jobs by state", labels=["state"])
        for state, count in snap["states"].items():
            states.add_metric([state], count)
        yield states
        yield GaugeMetricFamily("swapface_queue_depth", "Queued jobs ready to run", value=snap["queue_depth"])
        yield GaugeMetricFamily("swapface_frames_per_second", "Frames per compute second of jobs finished in the "
                                "last 5 minutes", value=snap["recent_fps"])
        buckets = [(str(b), c) for b, c in zip(LATENCY_BUCKETS, snap["latency_buckets"])]
        buckets.append(("+Inf", snap["latency_count"]))
        yield HistogramMetricFamily("swapface_job_latency_seconds", "Submission to final state, finished jobs",
                                    buckets=buckets, sum_value=snap["latency_sum"])
        retries = CounterMetricFamily("swapface_job_retries", "Failed attempts that were retried")
        retries.add_metric([], snap["retries"])
        yield retries
        failed = CounterMetricFamily("swapface_job_failures", "Failed attempts by error code", labels=["code"])
        for code, count in sorted(snap["failures_by_code"].items()):
            failed.add_metric([code], count)
        yield failed
        for name, key, text in (("swapface_frames", "frames_total", "Frames output by finished jobs"),
                                ("swapface_compute_seconds", "compute_seconds_total", "Worker seconds spent on jobs"),
                                ("swapface_gpu_seconds", "gpu_seconds_total", "GPU seconds spent on jobs")):
            counter = CounterMetricFamily(name, text)
            counter.add_metric([], snap[key])
            yield counter
        yield from live_metrics(snap)
        gpus = gpu_readings()
        if gpus:
            util = GaugeMetricFamily("swapface_gpu_utilization_percent", "GPU utilisation", labels=["gpu"])
            used = GaugeMetricFamily("swapface_gpu_memory_used_bytes", "GPU memory in use", labels=["gpu"])
            for gpu in gpus:
                util.add_metric([str(gpu["index"])], gpu["utilization"])
                used.add_metric([str(gpu["index"])], gpu["memory_used"])
            yield util
            yield used


def live_metrics(snap: dict[str, Any]) -> Iterator[Any]:
    """Live sessions, from the same store snapshot: open now, started, ended by reason, frames and CPU."""
    yield GaugeMetricFamily("swapface_live_sessions", "Live sessions open now", value=snap["live_open"])
    started = CounterMetricFamily("swapface_live_sessions_started", "Live sessions started")
    started.add_metric([], snap["live_started_total"])
    yield started
    ended = CounterMetricFamily("swapface_live_sessions_ended", "Live sessions ended, by reason "
                                "(stopped, disconnected, idle, unconnected, error, shutdown)", labels=["reason"])
    for reason, count in sorted(snap["live_ended_by_reason"].items()):
        ended.add_metric([reason], count)
    yield ended
    frames = CounterMetricFamily("swapface_live_frames", "Camera frames of live sessions: received, sent back "
                                 "swapped, dropped for newer ones", labels=["outcome"])
    for outcome in ("received", "sent", "dropped"):
        frames.add_metric([outcome], snap[f"live_frames_{outcome}_total"])
    yield frames
    cpu = CounterMetricFamily("swapface_live_compute_seconds", "CPU seconds spent swapping live frames")
    cpu.add_metric([], snap["live_cpu_seconds_total"])
    yield cpu


def install_metrics(app: FastAPI, runtime: Any) -> None:
    """Add ``GET /metrics`` to the app, reading ``runtime.store``."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(runtime.store))

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if runtime.settings.metrics_require_key:
            value = request.headers.get("authorization", "")
            token = value.split(" ", 1)[1].strip() if value.lower().startswith("bearer ") else ""
            if not token or await run_in_threadpool(runtime.keys.authenticate, token) is None:
                return JSONResponse({"detail": "send 'Authorization: Bearer <API key>' to read the metrics",
                                     "code": "api_key_required"}, 401, headers={"WWW-Authenticate": "Bearer"})
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
