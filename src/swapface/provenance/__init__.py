"""Marks that say an output is synthetic (AI-manipulated), and reading them back."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def finalize_output(path: str | Path, options: Any, settings: Any | None = None) -> None:
    """Mark a finished local output file as synthetic in place (metadata, and C2PA when configured)."""
    # Filled in by the provenance module (XMP / container tags / C2PA); see issue 5.
    return None
