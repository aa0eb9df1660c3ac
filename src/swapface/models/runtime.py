"""A catalogue model opened lazily: located and verified on first use, one session per owner object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from swapface.models.catalogue import ModelEntry, get_entry
from swapface.models.session import SessionSpec, create_session, primary_provider, record_run
from swapface.models.store import default_models_dir, locate


class LazyModel:
    """A catalogue model whose file is checked and whose session is created on first use (never at import)."""

    def __init__(self, name: str, options: Any = None, models_dir: Path | None = None, task: str | None = None) -> None:
        self.entry: ModelEntry = get_entry(name, task)
        self.models_dir = Path(models_dir) if models_dir is not None else default_models_dir()
        self.spec = SessionSpec.from_options(options, self.models_dir, name) if options is not None else SessionSpec(
            cache_dir=self.models_dir / ".cache"
        )
        self._session: Any = None
        self._provider = "cpu"
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        """The verified model file (ModelError when missing or failing verification)."""
        if self._path is None:
            _, self._path = locate(self.entry.name, self.models_dir)
        return self._path

    @property
    def session(self) -> Any:
        """The ONNX Runtime session, created once; every use is counted against the provider it runs on
        (usage metering)."""
        if self._session is None:
            self._session = create_session(self.path, self.spec)
            self._provider = primary_provider(self._session)
        record_run(self._provider)
        return self._session

    @property
    def contract(self):
        return self.entry.contract
