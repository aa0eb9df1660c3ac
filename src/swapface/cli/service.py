"""Commands ``serve``, ``worker``, ``jobs failures`` and ``keys create|list|revoke``."""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Optional

import typer

from swapface.errors import InputError


def _runtime(executor: str = "local"):
    from swapface.service.runtime import ServiceRuntime

    return ServiceRuntime.from_settings(executor_name=executor)


def settings_help() -> str:
    """Every SWAPFACE_* setting with its meaning, for ``serve --help`` (click keeps this block's lines)."""
    import textwrap

    from swapface.config import Settings

    lines = ["Settings (environment variables or a .env file):", "", "\b"]
    for name, field in Settings.model_fields.items():
        lines.append(f"  SWAPFACE_{name.upper()}")
        if field.description:
            lines += textwrap.wrap(field.description, 72, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(8000, help="Port to listen on"),
    workers: int = typer.Option(1, "--workers", min=0, max=64,
                                help="Job workers run in this process; 0 for an API-only node whose jobs "
                                "'swapface worker' processes run"),
    executor: str = typer.Option("local", "--executor", metavar="[local|ray]", help="Where workers run chunks"),
    sweep: bool = typer.Option(True, "--sweep/--no-sweep", help="Run the retention sweeper periodically"),
) -> None:
    """Run the HTTP API and its job workers (one by default): SQLite and a local folder unless configured."""
    import uvicorn

    from swapface.service.app import create_app
    from swapface.service.logging import configure_logging

    runtime = _runtime(executor)
    if runtime.settings.auth == "auto" and not runtime.keys.any_active() and not _loopback_bind(host):
        raise InputError("no API key exists yet, so only this machine may call the service: create one with "
                         "'swapface keys create --name NAME' before listening on a public address")
    configure_logging()
    app = create_app(runtime_=runtime, workers=workers, sweeper=sweep)
    running = f"{workers} worker(s)" if workers else "no worker: jobs wait for 'swapface worker'"
    typer.echo(f"swapface on http://{host}:{port}/ (API docs at /docs; {running})", err=True)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=30)


def _loopback_bind(host: str) -> bool:
    from swapface.service.auth import is_loopback

    return host == "localhost" or is_loopback(host)


def worker(
    executor: str = typer.Option("local", "--executor", help="Where chunks run: local or ray"),
    once: bool = typer.Option(False, "--once", help="Run jobs until none is waiting, then exit"),
) -> None:
    """Claim and run jobs from the job store until stopped (SIGTERM / Ctrl-C finish the chunk in hand)."""
    from swapface.service.logging import configure_logging

    configure_logging()
    runtime = _runtime(executor)
    job_worker = runtime.new_worker()

    def stop(*_: object) -> None:
        job_worker.stop()

    signal.signal(signal.SIGTERM, stop)
    try:
        if once:
            while job_worker.run_once():
                pass
        else:
            job_worker.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        runtime.stop()


def failures(
    hours: float = typer.Option(24.0, "--hours", min=0.0, help="Look back this many hours"),
    fmt: str = typer.Option("table", "--format", help="table (summary by code) or jsonl (one failure a line)"),
) -> None:
    """Failure modes by error code over a time window; --format jsonl exports every failure for a warehouse."""
    if fmt not in ("table", "jsonl"):
        raise InputError("--format must be table or jsonl")
    store = _runtime().store
    since = time.time() - hours * 3600
    if fmt == "jsonl":
        for row in store.failure_rows(since):
            sys.stdout.write(json.dumps(row, sort_keys=True) + "\n")
        return
    summary = store.failure_summary(since)
    if not summary:
        typer.echo(f"no failures in the last {hours:g} hour(s)")
        return
    typer.echo(f"{'code':<24} {'failures':>8} {'jobs':>6} {'retried':>8}  last seen             example")
    for item in summary:
        typer.echo(f"{item['code']:<24} {item['count']:>8} {item['jobs']:>6} {item['retried']:>8}  "
                   f"{item['last_at'][:19]:<20}  {item['example'][:60]}")


def keys_create(
    name: str = typer.Option(..., "--name", help="Who the key is for (shown by 'keys list', used by 'keys revoke')"),
    max_concurrent_jobs: Optional[int] = typer.Option(None, "--max-concurrent-jobs", min=1,
                                                      help="Queued or running jobs this key may have at once "
                                                      "(default: no limit)"),
    max_upload_mb: Optional[float] = typer.Option(None, "--max-upload-mb", min=0.001,
                                                  help="Largest upload per job, in MB (default: the service's limit)"),
    jobs_per_hour: Optional[int] = typer.Option(None, "--jobs-per-hour", min=1,
                                                help="Jobs this key may create per hour (default: no limit)"),
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    record, key = _runtime().keys.create(name, max_concurrent_jobs=max_concurrent_jobs, max_upload_mb=max_upload_mb,
                                         jobs_per_hour=jobs_per_hour)
    typer.echo(f"created {record.id} ({record.name}); the key is shown only now:", err=True)
    typer.echo(key)


def keys_list() -> None:
    """List API keys (never the keys themselves)."""
    from swapface.jobs.store import iso

    rows = _runtime().keys.list()
    if not rows:
        typer.echo("no API keys; the service answers only this machine until one is created")
        return
    for k in rows:
        state = f"revoked {iso(k.revoked_at)}" if k.revoked_at else "active"
        limits = ", ".join(f"{n}={v:g}" for n, v in (("concurrent", k.max_concurrent_jobs), ("upload_mb", k.max_upload_mb),
                                                    ("per_hour", k.jobs_per_hour)) if v is not None) or "no limits"
        typer.echo(f"{k.id}  {k.hint}…  {k.name:<20} {state:<32} {limits}")


def keys_revoke(key: str = typer.Argument(..., help="Key id or name")) -> None:
    """Revoke a key (by id or name): its requests are refused from now on."""
    if not _runtime().keys.revoke(key):
        raise InputError("no active key with that id or name")
    typer.echo("revoked")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command(epilog=settings_help())(serve)
    app.command()(worker)
    jobs_app = typer.Typer(help="Job store reports.", no_args_is_help=True)
    jobs_app.command("failures")(failures)
    app.add_typer(jobs_app, name="jobs")
    keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
    keys_app.command("create")(keys_create)
    keys_app.command("list")(keys_list)
    keys_app.command("revoke")(keys_revoke)
    app.add_typer(keys_app, name="keys")
