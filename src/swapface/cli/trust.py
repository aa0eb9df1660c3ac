"""Commands ``inspect`` (marks a file carries), ``sweep`` (retention) and ``storage rotate-kek``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from swapface.errors import InputError


def inspect(
    file: Path = typer.Argument(..., help="Image or video to examine"),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON"),
) -> None:
    """Report the marks that say a file is AI-generated: XMP digital source type, container tag, C2PA manifest."""
    from swapface.provenance.inspect import inspect_file

    if not file.is_file():
        raise InputError(f"cannot read '{file}': no such file")
    report = inspect_file(file)
    if as_json:
        typer.echo(json.dumps(report, indent=1, sort_keys=True))
        return
    c2pa = report["c2pa"]
    typer.echo(f"kind:                {report['kind']}")
    typer.echo(f"XMP source type:     {report['xmp_digital_source_type'] or 'none'}")
    if report["kind"] == "video":
        typer.echo(f"container tag:       {report['container_tag'] or 'none'}")
    if c2pa and c2pa.get("present") is None:  # the c2pa package is not installed: nothing could be read
        typer.echo("C2PA manifest:       not checked (pip install 'swapface[c2pa]' to read C2PA manifests)")
    elif c2pa:
        problems = [s for s in c2pa.get("validation_status", []) if s]
        extra = f" ({', '.join(problems)})" if problems else ""
        signer = f", signed by {c2pa['signer']}" if c2pa.get("signer") else ""
        typer.echo(f"C2PA manifest:       {c2pa.get('validation_state')}{extra}{signer}")
    else:
        typer.echo("C2PA manifest:       none")
    typer.echo(f"marked as synthetic: {'yes' if report['synthetic'] else 'NO'}")


def sweep() -> None:
    """Delete job media older than the retention period (SWAPFACE_RETENTION_DAYS) and record it in the audit table."""
    from swapface.jobs.retention import sweep as run_sweep

    report = run_sweep()
    typer.echo(f"deleted {report.objects} object(s) of {len(report.jobs)} expired job(s); {report.kept_jobs} job(s) kept")


def rotate_kek() -> None:
    """Re-wrap every job's data key under the first key in SWAPFACE_KEK; media is not rewritten."""
    from swapface.storage import rotate_kek as rotate

    changed = rotate()
    typer.echo(f"re-wrapped {changed} data key(s) under the active key-encryption key")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command()(inspect)
    app.command()(sweep)
    storage_app = typer.Typer(help="Encrypted storage maintenance.", no_args_is_help=True)
    storage_app.command("rotate-kek")(rotate_kek)
    app.add_typer(storage_app, name="storage")
