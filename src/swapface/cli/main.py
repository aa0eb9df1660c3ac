"""Entry point: assembles the command modules and turns swapface errors into one-line messages.

Each command module exposes ``register(app)``; a module owns its commands and nothing else.
"""

from __future__ import annotations

import importlib
import sys

import typer

from swapface.errors import InputError, SwapfaceError

COMMAND_MODULES = (
    "swapface.cli.engine",  # run, compare, demo
    "swapface.cli.evaluate",  # eval
    "swapface.cli.service",  # serve, worker, jobs, keys
    "swapface.cli.trust",  # sweep, inspect
    "swapface.cli.models",  # models, doctor
    "swapface.cli.live",  # live
)


def build_app() -> typer.Typer:
    """The full command tree; a command module that is not there yet is simply left out."""
    app = typer.Typer(
        name="swapface",
        help="Face swapping for images and videos. Outputs are marked as AI-generated.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; swapface errors print one line on stderr and exit 2 (bad input) or 1 (other)."""
    app = build_app()
    try:
        app(args=argv, prog_name="swapface", standalone_mode=False)
    except SwapfaceError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        return 2 if isinstance(exc, InputError) else 1
    except KeyboardInterrupt:
        typer.secho("interrupted; finished chunks are kept and a re-run resumes from them", err=True)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return 1
    except Exception as exc:  # Typer's (click's) usage errors carry their own message and exit code
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            return int(exc.exit_code)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
