"""Runtime settings: one pydantic-settings object, prefix ``ESPLORA_``, behind :func:`get_settings`.

Nothing is read at import time; the composition roots (CLI commands, the Celery app factory,
the Streamlit app) call :func:`get_settings`. Every variable is documented in ``.env.example``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    """The per-user data directory, absolute, so every command finds the same store."""
    return Path(platformdirs.user_data_dir("esplora", appauthor=False)).resolve()


class Settings(BaseSettings):
    """Where the store, broker and artefacts live, and how the platform runs."""

    model_config = SettingsConfigDict(env_prefix="ESPLORA_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="Data directory.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: a SQLite file under home."
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker; default: the filesystem broker under home."
    )
    profile: str = Field(default="embedded", description="'embedded' or 'scaled' (informational).")
    sqlite_busy_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        """The database URL in use: the explicit one, else ``sqlite:///<home>/esplora.db``."""
        return self.database_url or f"sqlite:///{self.home / 'esplora.db'}"

    @property
    def resolved_broker_url(self) -> str:
        """The broker URL in use: the explicit one, else Celery's filesystem transport."""
        return self.broker_url or "filesystem://"

    @property
    def artefacts_dir(self) -> Path:
        """Where images, depth maps, adapters and exports are written."""
        return self.home / "artefacts"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
