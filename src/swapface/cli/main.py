"""Entry point: assembles the command modules and turns swapface errors into one-line messages.

Each command module exposes ``register(app)``; a module owns its commands and nothing else.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

from swapface.cli.arguments import regroup_list_values
from swapface.errors import InputError, SwapfaceError

COMMAND_MODULES = (
    "swapface.cli.engine",  # run, compare, demo
    "swapface.cli.evaluate",  # eval
    "swapface.cli.service",  # serve, worker, jobs, keys
    "swapface.cli.trust",  # sweep, inspect
    "swapface.cli.models",  # models, doctor
    "swapface.cli.live",  # live
)
INTERRUPTED = 130  # the shell's code for "stopped by SIGINT"
INTERRUPT_MESSAGE = "interrupted; finished chunks are kept and the same command resumes from them"
HELP_FLAGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _version(value: bool) -> None:
    if value:
        from swapface import __version__

        typer.echo(f"swapface {__version__}")
        raise typer.Exit()


def _root(
    version: bool | None = typer.Option(None, "--version", "-V", callback=_version, is_eager=True,
                                           help="Print the version and exit"),
) -> None:
    """Face swapping for images and videos. Outputs are marked as AI-generated."""


def build_app() -> typer.Typer:
    """The full command tree; a command module that is not there yet is simply left out.

    Help is click's plain layout (no boxes), so every flag's whole name stays readable at 80 columns."""
    app = typer.Typer(
        name="swapface",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings=HELP_FLAGS,
    )
    app.callback()(_root)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(app)
    return app


def _interruptible() -> None:
    """Ctrl-C and ``kill -INT`` stop the command even where SIGINT came in ignored (a job started with ``&``)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


BARE_TYPES = {"int": "INT", "float": "NUMBER", "str": "TEXT", "path": "PATH", "bool": "BOOL"}


def plain_metavars(command: Any) -> Any:
    """Value placeholders a user reads (INT, NUMBER, PATH, TEXT) instead of ``<list[str]>``-style type names."""
    for param in command.params:
        desc = getattr(param, "type_descriptor", None)
        if getattr(param, "param_type_name", "") != "option" or getattr(param, "is_flag", False) or desc is None:
            continue
        if param.metavar is None:
            if desc.is_choice:
                name = "[" + "|".join(map(str, desc.choices or ())) + "]"
            elif desc.is_path:
                name = "PATH"
            else:
                name = BARE_TYPES.get(param.bare_type(), "TEXT")
            param.metavar = name + ("..." if desc.is_list else "")
    for sub in getattr(command, "commands", {}).values():
        plain_metavars(sub)
    return command


def usage_line(exc: Any) -> str:
    """A usage error in one line, with where to read more (click prints a usage block and a blank line)."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    return f"{message} (see '{ctx.command_path} -h')" if ctx is not None else message


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; swapface errors print one line on stderr and exit 2 (bad input) or 1 (other); Ctrl-C exits 130."""
    _interruptible()
    app = build_app()
    args = regroup_list_values(sys.argv[1:] if argv is None else list(argv))
    try:
        command = plain_metavars(typer.main.get_command(app))
        code = command.main(args=args, prog_name="swapface", standalone_mode=False)
    except SwapfaceError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        return 2 if isinstance(exc, InputError) else 1
    except KeyboardInterrupt:  # raised outside Typer's own handler (it turns the rest into exit code 130)
        code = INTERRUPTED
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        return 1
    except Exception as exc:  # Typer's (click's) usage errors: one line, as every other error
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare command: its help, as asked
            exc.show()  # type: ignore[attr-defined]
            return int(exc.exit_code)  # type: ignore[attr-defined]
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            typer.secho(f"error: {usage_line(exc)}", err=True, fg=typer.colors.RED)
            return int(exc.exit_code)
        raise
    if code == INTERRUPTED:
        typer.secho(INTERRUPT_MESSAGE, err=True)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
