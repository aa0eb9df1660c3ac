"""Executors run chunks: ``local`` (a process pool on this machine) and ``ray`` (a cluster), one interface."""

from __future__ import annotations

import importlib
from typing import Any

from swapface.errors import InputError
from swapface.executors.base import Executor

EXECUTORS = {
    "local": "swapface.executors.local:LocalExecutor",
    "ray": "swapface.executors.ray:RayExecutor",
}


def get_executor(name: str, **kwargs: Any) -> Executor:
    """Build the executor called ``name`` ("local" or "ray") with its keyword settings."""
    target = EXECUTORS.get(name)
    if target is None:
        raise InputError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")
    module_name, cls = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name not in (module_name, "ray"):
            raise
        raise InputError(f"executor {name!r} is not available in this installation (pip install 'swapface[ray]')") from None
    return getattr(module, cls)(**kwargs)
