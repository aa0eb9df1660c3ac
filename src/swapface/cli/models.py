"""Commands ``models list|download|import|verify`` and ``doctor``: the model catalogue and the ONNX providers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from swapface.errors import InputError, ModelError


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def list_models(
    task: Optional[str] = typer.Option(None, "--task", help="Only models of one task (face_swapper, face_enhancer, ...)"),
    wide: bool = typer.Option(False, "--wide", help="Also the file name and sha256 (needs a wide terminal)"),
) -> None:
    """Every model swapface knows: task, size, licence, and whether it is here; and where models go."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from swapface.config import load_settings
    from swapface.models.catalogue import CATALOGUE
    from swapface.models.store import model_path

    console = Console()
    table = Table(box=box.SIMPLE_HEAD, show_lines=False, expand=False, pad_edge=False, padding=(0, 1))
    columns = ["name", "size", "here", "licence"] + (["file", "sha256"] if wide else [])
    for col in columns:
        table.add_column(col, overflow="fold", no_wrap=col != "licence", min_width=20 if col == "licence" else None)
    last_task = None
    for entry in sorted(CATALOGUE.values(), key=lambda e: e.task):
        if task and entry.task != task:
            continue
        if entry.task != last_task:  # models grouped under their task, so no column is spent on it
            table.add_row(f"[bold]{entry.task}[/bold]", *[""] * (len(columns) - 1))
            last_task = entry.task
        try:
            path = model_path(entry.name)
            present = path.is_file()
        except ModelError:
            path, present = None, False
        size = _human(path.stat().st_size) if present and path else "-"
        where = "built in" if entry.builtin else ("yes" if present else "no")
        row = ["  " + entry.name, size, where, entry.licence]
        if wide:
            row += [entry.file, "in package" if entry.builtin else (entry.sha256 or "by signature")[:16]]
        table.add_row(*row)
    console.print(table)
    console.print(f"models are kept in {load_settings().models_dir} (SWAPFACE_MODELS_DIR); "
                  "get one with 'swapface models download NAME'", soft_wrap=False)


def download(
    name: Optional[str] = typer.Argument(None, help="Model name (see `swapface models list`)"),
    all_: bool = typer.Option(False, "--all", help="Every downloadable model that is not here yet"),
    url: Optional[str] = typer.Option(None, "--url", help="Download from this address instead of the published one"),
) -> None:
    """Download published models (resumable; verified before use). Check each model's licence first."""
    from swapface.models.catalogue import CATALOGUE, get_entry
    from swapface.models.store import download as fetch
    from swapface.models.store import model_path

    if all_ == (name is not None):
        raise InputError("name one model or pass --all")
    names = [e.name for e in CATALOGUE.values() if e.downloadable and not model_path(e.name).is_file()] if all_ else [str(name)]
    for n in names:
        entry = get_entry(n)
        typer.echo(f"{n}: downloading ({entry.licence})")
        fetch(n, url=url)
        typer.echo(f"{n}: verified and ready")


def import_models(
    paths: list[Path] = typer.Argument(..., help="Model files you already have"),
    as_name: Optional[str] = typer.Option(None, "--as", help="The catalogue name, when the file's signature is ambiguous"),
) -> None:
    """Add model files you have: each is recognised by its sha256 or its ONNX inputs/outputs and copied in."""
    from swapface.models.store import import_file

    for path in paths:
        entry = import_file(path, as_name=as_name)
        typer.echo(f"{path.name}: imported as {entry.name} ({entry.task}; licence: {entry.licence})")


def verify(name: Optional[str] = typer.Argument(None, help="One model; default: every model present")) -> None:
    """Check the model files present (sha256 where published, else the ONNX signature)."""
    from swapface.models.catalogue import CATALOGUE
    from swapface.models.store import locate, model_path

    names = [name] if name else [e.name for e in CATALOGUE.values() if not e.builtin and model_path(e.name).is_file()]
    bad = 0
    for n in names:
        try:
            locate(n)
            typer.echo(f"{n}: ok")
        except ModelError as exc:
            bad += 1
            typer.secho(f"{n}: FAILED: {exc}", err=True, fg="red")
    if not names:
        typer.echo("no downloaded or imported models yet (built-in models need no verification)")
    if bad:
        raise ModelError(f"{bad} model file(s) failed verification")


GPU_CHECKS = ("GPU", "cuda", "tensorrt")


def doctor() -> None:
    """This installation: version, folders, and which execution providers work here (CPU, CUDA, TensorRT)."""
    from swapface import __version__
    from swapface.config import load_settings
    from swapface.models.doctor import diagnose

    settings = load_settings()
    typer.echo(f"swapface {__version__}")
    typer.echo(f"models folder: {settings.models_dir}")
    typer.echo(f"data folder:   {settings.data_dir}  (service jobs, database and media unless configured)")
    typer.echo(f"cache folder:  {settings.models_dir / '.cache'}  (fp16 models, TensorRT engines)")
    checks = diagnose()
    gpu_here = any(c.name == "GPU" and c.ok for c in checks)
    problems = 0
    for check in checks:
        gpu_only = check.name in GPU_CHECKS or "needed only with a GPU" in check.detail
        if not gpu_here and gpu_only:  # no GPU: nothing to fix
            detail = "no NVIDIA GPU here" if check.name == "GPU" else check.detail
            if "needed only with a GPU" not in detail:
                detail += " (needed only with a GPU)"
            typer.echo(f"-- {check.name}: {detail}")
            continue
        mark = "ok " if check.ok else "!! "
        typer.secho(f"{mark}{check.name}: {check.detail}", fg=None if check.ok else "yellow")
        if not check.ok and check.fix:
            problems += 1
            typer.echo(f"    fix: {check.fix}")
    if problems:
        typer.echo(f"{problems} problem(s); CPU always works")
    elif gpu_here:
        typer.echo("all providers usable")
    else:
        typer.echo("CPU only: everything swapface needs here works (GPU providers need an NVIDIA GPU)")


def register(app: typer.Typer) -> None:
    """Add ``models`` and ``doctor`` to the CLI."""
    models_app = typer.Typer(help="The model catalogue: list, download, import, verify.", no_args_is_help=True)
    models_app.command("list")(list_models)
    models_app.command("download")(download)
    models_app.command("import")(import_models)
    models_app.command("verify")(verify)
    app.add_typer(models_app, name="models")
    app.command()(doctor)
