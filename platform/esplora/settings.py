"""Runtime settings: one pydantic-settings object, prefix ``ESPLORA_``, behind :func:`get_settings`.

Nothing is read at import time; the composition roots (CLI commands, the Celery app factory,
the Streamlit app) call :func:`get_settings`. Every variable is documented in ``.env.example``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    """The per-user data directory, absolute, so every command finds the same store."""
    return Path(platformdirs.user_data_dir("esplora", appauthor=False)).resolve()


class Settings(BaseSettings):
    """Where the store, broker and artefacts live, and how the platform runs."""

    model_config = SettingsConfigDict(env_prefix="ESPLORA_", extra="ignore", env_ignore_empty=True)

    home: Path = Field(default_factory=default_home, description="Data directory.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: a SQLite file under home."
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker; default: the filesystem broker under home."
    )
    profile: Literal["real", "tiny"] = Field(
        default="real",
        description="Model profile: the real model ids, or tiny random twins under models_dir.",
    )
    models_dir: Path | None = Field(
        default=None, description="Tiny models (`esplora models make-tiny`); default home/models."
    )
    device: str = Field(default="auto", description="'auto' (CUDA when present), 'cpu', 'cuda:0'…")
    batch_size: int = Field(default=8, ge=1)
    detector: str = Field(default="grounding-dino", description="Detector backend name.")
    depth_model: str = Field(default="depth-anything", description="Depth backend name.")
    extractor: str = Field(default="grammar", description="Object extraction backend name.")
    generator: str = Field(default="flux", description="Text-to-image backend name.")
    generator_model_id: str | None = Field(
        default=None, description="Override the generator's model id (e.g. FLUX.1-schnell)."
    )
    scene_error_rates: str = Field(
        default="",
        description="Scene generator: per-relation error rates, e.g. 'right_of=0.5,below=0.3'.",
    )
    box_threshold: float = Field(default=0.35, ge=0, le=1)
    text_threshold: float = Field(default=0.25, ge=0, le=1)
    max_objects: int = Field(default=16, ge=1, description="Top-K detections kept per image.")
    tau: float = Field(default=3.0, ge=1)
    depth_gap: float = Field(default=1 / 3, gt=0, lt=1)
    pair_filter: str | None = Field(default=None, description="e.g. 'compass-scop'.")
    broker_visibility_timeout_s: int = Field(
        default=7200, ge=1, description="Redis: redeliver an unacknowledged task after this."
    )
    stage_lease_s: int = Field(
        default=1800, ge=1, description="A claimed batch not finished by then may be reclaimed."
    )
    ingest_min_side: int = Field(default=64, ge=1, description="Caption filter: shorter side.")
    ingest_max_watermark: float = Field(default=0.8, ge=0, le=1)
    ingest_max_unsafe: float = Field(default=0.5, ge=0, le=1)
    ingest_max_pixels: int = Field(default=89_478_485, ge=1, description="Decompression guard.")
    ingest_near_duplicate_distance: int = Field(default=4, ge=0, le=64)
    ingest_workers: int = Field(default=0, ge=0, description="Decode threads; 0 = automatic.")
    ui_host: str = Field(default="127.0.0.1", description="Where `esplora ui` listens.")
    ui_port: int = Field(default=8501, ge=1, le=65535)
    ui_auth_header: str | None = Field(
        default=None,
        description="A trusted header set by an authenticating proxy naming the reviewer.",
    )
    sqlite_busy_timeout_s: float = Field(default=30.0, gt=0)
    analytics_mirror_dir: Path | None = Field(
        default=None,
        description="The analytics' Parquet mirror; default home/analytics-mirror.",
    )
    analytics_mirror_rows: int = Field(
        default=2_000_000,
        ge=0,
        description="Stores with at least this many rows refresh analytics through the mirror.",
    )

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("models_dir", "analytics_mirror_dir")
    @classmethod
    def _absolute_optional_dir(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @property
    def resolved_database_url(self) -> str:
        """The database URL in use: the explicit one, else ``sqlite:///<home>/esplora.db``."""
        return self.database_url or f"sqlite:///{self.home / 'esplora.db'}"

    @property
    def resolved_broker_url(self) -> str:
        """The broker URL in use: the explicit one, else Celery's filesystem transport."""
        return self.broker_url or "filesystem://"

    @property
    def broker_dir(self) -> Path:
        """Where the filesystem broker keeps its messages (embedded default)."""
        return self.home / "broker"

    @property
    def error_rates(self) -> tuple[tuple[str, float], ...]:
        """``scene_error_rates`` parsed into (relation, rate) pairs."""
        pairs = []
        for item in filter(None, (p.strip() for p in self.scene_error_rates.split(","))):
            relation, _, rate = item.partition("=")
            pairs.append((relation.strip(), float(rate)))
        return tuple(pairs)

    @property
    def deployment(self) -> str:
        """'embedded' (SQLite and the filesystem broker, one machine) or 'scaled'."""
        embedded = self.resolved_database_url.startswith("sqlite") and self.broker_url is None
        return "embedded" if embedded else "scaled"

    @property
    def resolved_models_dir(self) -> Path:
        """Where the tiny models live."""
        return self.models_dir or self.home / "models"

    @property
    def resolved_analytics_mirror_dir(self) -> Path:
        """Where the analytics mirror keeps its Parquet partitions."""
        return self.analytics_mirror_dir or self.home / "analytics-mirror"

    @property
    def artefacts_dir(self) -> Path:
        """Where images, depth maps, adapters and exports are written."""
        return self.home / "artefacts"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
