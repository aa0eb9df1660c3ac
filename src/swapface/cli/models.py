"""Commands ``models list|download|import|verify|check`` and ``doctor``: the model catalogue and the ONNX providers."""

from __future__ import annotations

from pathlib import Path

import typer

from swapface.errors import InputError, ModelError


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def list_models(
    task: str | None = typer.Option(None, "--task", help="Only models of one task (face_swapper, face_enhancer, ...)"),
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
    names: list[str] | None = typer.Argument(None, help="Model names (see `swapface models list`)"),
    all_: bool = typer.Option(False, "--all", help="Every downloadable model that is not here yet"),
    url: str | None = typer.Option(None, "--url", help="Download one model from this address instead of the published one"),
    mirror: str | None = typer.Option(
        None, "--mirror", help="Base URL of a mirror of the published files: each model is fetched from BASE/{release}/{file}"),
) -> None:
    """Download published models with the models they need (resumable; checked against the publisher's CRC32
    .hash and the ONNX signature before use). Check each model's licence first."""
    from swapface.models.catalogue import CATALOGUE, get_entry
    from swapface.models.store import download as fetch
    from swapface.models.store import model_path, with_companions

    if all_ == bool(names):
        raise InputError("name the models to download or pass --all")
    if url and (all_ or len(names or []) != 1):
        raise InputError("--url fetches one file: name exactly one model (use --mirror for several)")
    if url and mirror:
        raise InputError("give --url or --mirror, not both")
    if all_:
        wanted = [e.name for e in CATALOGUE.values() if e.downloadable]
    else:
        for n in names or []:
            get_entry(n)
        wanted = [n for name in names or [] for n in ([name] if url else with_companions(name))]
    todo = list(dict.fromkeys(n for n in wanted if not get_entry(n).builtin))
    for n in todo:
        entry = get_entry(n)
        if model_path(n).is_file() and not (url or (names and n in names)):
            typer.echo(f"{n}: already here")
            continue
        typer.echo(f"{n}: downloading ({entry.licence})")
        fetch(n, url=url, mirror=mirror)  # with --url the one named model is all there is to fetch
        typer.echo(f"{n}: verified and ready")


def import_models(
    paths: list[Path] = typer.Argument(..., help="Model files you already have"),
    as_name: str | None = typer.Option(None, "--as", help="The catalogue name, when the file's signature is ambiguous"),
) -> None:
    """Add model files you have: each is recognised by its sha256 or its ONNX inputs/outputs and copied in."""
    from swapface.models.store import import_file

    for path in paths:
        entry = import_file(path, as_name=as_name)
        typer.echo(f"{path.name}: imported as {entry.name} ({entry.task}; licence: {entry.licence})")


def verify(name: str | None = typer.Argument(None, help="One model; default: every model present")) -> None:
    """Check the model files present: SHA-256 against the digest recorded when each was verified, then the signature."""
    from swapface.models.catalogue import CATALOGUE, get_entry
    from swapface.models.store import locate, model_path, verify_file

    names = [name] if name else [e.name for e in CATALOGUE.values() if not e.builtin and model_path(e.name).is_file()]
    bad = 0
    for n in names:
        try:
            _, path = locate(n, verify=False)
            verify_file(get_entry(n), path, full=True)
            typer.echo(f"{n}: ok")
        except ModelError as exc:
            bad += 1
            typer.secho(f"{n}: FAILED: {exc}", err=True, fg="red")
    if not names:
        typer.echo("no downloaded or imported models yet (built-in models need no verification)")
    if bad:
        raise ModelError(f"{bad} model file(s) failed verification")


def check(names: list[str] | None = typer.Argument(None, help="Models to check; default: every model present")) -> None:
    """Run installed models on built-in pictures and say whether each output is plausible (catches a wrong contract)."""
    from swapface.models.selfcheck import run_checks

    results = run_checks(list(names or []))
    if not results:
        typer.echo("no checkable model present; download one with `swapface models download NAME`")
        return
    failed = 0
    for r in results:
        mark = "ok " if r.ok else "!! "
        typer.secho(f"{mark}{r.name}: {r.detail}", fg=None if r.ok else "red", err=not r.ok)
        failed += not r.ok
    if failed:
        raise ModelError(f"{failed} model(s) gave implausible output; their files or contracts are wrong")
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
    typer.echo(f"cache folder:  {settings.models_dir / '.cache'}  (fp16 models, TensorRT engines, the built-in models' faster graphs)")
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
    models_app = typer.Typer(help="The model catalogue: list, download, import, verify, check.", no_args_is_help=True)
    models_app.command("list")(list_models)
    models_app.command("download")(download)
    models_app.command("import")(import_models)
    models_app.command("verify")(verify)
    models_app.command("check")(check)
    app.add_typer(models_app, name="models")
    app.command()(doctor)
