"""CLI flags generated from :class:`swapface.options.SwapOptions`, so each option is defined exactly once."""

from __future__ import annotations

import inspect
import typing
from typing import Any, Literal, get_args, get_origin

import typer

from swapface.options import SwapOptions, option_choices

# Flags spelled differently on the command line (the field keeps its one name everywhere else).
RENAMED = {"mark_output": "--mark/--no-mark"}
HELP_SUFFIX = {"mark_output": " (--no-mark only for local, non-distributed use)"}
METAVARS = {int: "INT", float: "NUMBER", str: "TEXT"}
NAMED_METAVARS = {"output_video_resolution": "WxH", "output_video_fps": "FPS"}


def _scalar(annotation: Any) -> tuple[type, tuple[str, ...] | None, bool]:
    """(python type, choices, is_list) for a field annotation."""
    origin = get_origin(annotation)
    args = [a for a in get_args(annotation) if a is not type(None)]
    if origin is tuple:
        inner, choices, _ = _scalar(args[0])
        return inner, choices, True
    if origin is Literal:
        return str, tuple(str(a) for a in get_args(annotation)), False
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        return _scalar(args[0])
    return annotation, None, False


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def list_option_flags() -> list[str]:
    """The flags that take several values (space- or comma-separated, or repeated)."""
    return [_flag(name) for name, field in SwapOptions.model_fields.items() if _scalar(field.annotation)[2]]


def _shown_default(default: Any) -> str:
    if isinstance(default, tuple):
        return " ".join(map(str, default))
    return "auto" if default is None else str(default)


def option_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per SwapOptions field, defaulting to None (meaning: the model's default)."""
    params = []
    for name, field in SwapOptions.model_fields.items():
        kind, choices, is_list = _scalar(field.annotation)
        choices = choices or option_choices(name)
        default = field.default
        help_text = (field.description or "") + HELP_SUFFIX.get(name, "")
        if choices and len(choices) <= 4 and not is_list and kind is str:
            metavar = "[" + "|".join(choices) + "]"
        else:
            metavar = "NAME" if choices and kind is str else NAMED_METAVARS.get(name, METAVARS.get(kind, "TEXT"))
            if choices:
                help_text += f"; choices: {', '.join(choices)}"
        if is_list:
            metavar += "..."
        if kind is bool:
            flag = RENAMED.get(name, f"{_flag(name)}/--no-{name.replace('_', '-')}")
            help_text += f" (default: {'on' if default else 'off'})"
            opt = typer.Option(None, flag, help=help_text, show_default=False)
            annotation: Any = typing.Optional[bool]
        else:
            if "default:" not in help_text:
                help_text += f" (default: {_shown_default(default)})"
            opt = typer.Option(None, _flag(name), help=help_text, show_default=False, metavar=metavar)
            # lists are taken as text: repeated flags, space- or comma-separated, converted by the options model
            annotation = typing.Optional[list[str]] if is_list else typing.Optional[kind]
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=annotation))
    return params


def collect_options(values: dict[str, Any]) -> dict[str, Any]:
    """The SwapOptions values the user actually gave (None and empty lists mean 'not given')."""
    out = {}
    for name in SwapOptions.model_fields:
        value = values.get(name)
        if value is None or (isinstance(value, list) and not value):
            continue
        if isinstance(value, list):  # repeated flags and comma-separated lists both work
            value = tuple(part.strip() if isinstance(part, str) else part for item in value for part in _split(item))
        out[name] = value
    return out


def _split(item: Any) -> list[Any]:
    return [p for p in item.split(",") if p.strip()] if isinstance(item, str) else [item]


def with_option_flags(func: Any) -> Any:
    """Give ``func`` (which takes ``**options``) a signature with every SwapOptions flag appended."""
    sig = inspect.signature(func)
    own = [p for p in sig.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    func.__signature__ = sig.replace(parameters=own + option_parameters())
    return func
