"""One settings object, read from the environment (prefix ``SWAPFACE_``) and an optional ``.env`` file."""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_cache_dir, user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration. Every field can be set as ``SWAPFACE_<NAME>``; defaults need nothing installed."""

    model_config = SettingsConfigDict(env_prefix="SWAPFACE_", env_file=".env", extra="ignore")

    # engine
    models_dir: Path = Field(default_factory=lambda: Path(user_cache_dir("swapface")) / "models")
    max_image_pixels: int = Field(40_000_000, ge=1, description="Images larger than this are refused (decompression bombs)")
    # service (embedded defaults: SQLite + a local directory)
    data_dir: Path = Field(default_factory=lambda: Path(user_data_dir("swapface")))
    database_url: str | None = None
    storage_url: str | None = None

    def resolved_database_url(self) -> str:
        """The job store URL: the configured one, else SQLite in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'swapface.db'}"

    def resolved_storage_url(self) -> str:
        """The object store URL: the configured one, else a folder in the data directory."""
        return self.storage_url or (self.data_dir / "objects").as_uri()


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (tests and embedding callers use these)."""
    return Settings(**overrides)  # type: ignore[arg-type]
