"""Sources, images (one per distinct content), per-stage status, and samples (image-text pairs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from esplora.db.base import (
    Base,
    ChangeTracked,
    IdType,
    Versioned,
    created_column,
    id_column,
    str_enum,
    updated_column,
)
from esplora.db.enums import Origin, SourceKind, Stage, StageStatus


class Source(Base):
    """A dataset the images came from: an img2dataset folder, a COCO file, the scene world…"""

    __tablename__ = "sources"

    id: Mapped[int] = id_column()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[SourceKind] = mapped_column(str_enum(SourceKind))
    uri: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = created_column()


class Image(ChangeTracked, Base):
    """One distinct image content (by SHA-256): processed once however many samples share it.

    ``width``/``height`` are after EXIF orientation; every box refers to that orientation.
    """

    __tablename__ = "images"
    __table_args__ = (CheckConstraint("width > 0 AND height > 0", name="positive_size"),)

    id: Mapped[int] = id_column()
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    uri: Mapped[str] = mapped_column(Text)
    phash: Mapped[str | None] = mapped_column(String(32), index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    origin: Mapped[Origin] = mapped_column(str_enum(Origin), index=True)
    near_duplicate_of: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("images.id", ondelete="SET NULL")
    )
    format: Mapped[str | None] = mapped_column(String(16))
    byte_size: Mapped[int | None] = mapped_column(BigInteger)
    depth_map_uri: Mapped[str | None] = mapped_column(Text)
    depth_producer: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()


class ImageStage(ChangeTracked, Base):
    """An image's progress through one stage: the pipeline's state lives here, not in the broker.

    "Retry failed" and "requeue stale" are queries over this table; ``lease_expires_at`` marks a
    claim that a dead worker will never finish.
    """

    __tablename__ = "image_stages"

    image_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    stage: Mapped[Stage] = mapped_column(str_enum(Stage), primary_key=True)
    status: Mapped[StageStatus] = mapped_column(
        str_enum(StageStatus), default=StageStatus.PENDING, index=True
    )
    producer: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()


class Sample(ChangeTracked, Versioned, Base):
    """An image-text pair as the source gave it (LAION repeats images under other captions)."""

    __tablename__ = "samples"
    __table_args__ = (UniqueConstraint("source_id", "source_key"),)

    id: Mapped[int] = id_column()
    image_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("images.id", ondelete="CASCADE"), index=True
    )
    source_id: Mapped[int] = mapped_column(IdType, ForeignKey("sources.id", ondelete="CASCADE"))
    source_key: Mapped[str] = mapped_column(String(500))
    caption: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    excluded: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    exclusion_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_column()


class IngestFailure(Base):
    """A source item that could not be read (corrupt, truncated, not an image…), with why.

    Keyed like a sample, so a second ingest of the same source records nothing new.
    """

    __tablename__ = "ingest_failures"
    __table_args__ = (UniqueConstraint("source_id", "source_key"),)

    id: Mapped[int] = id_column()
    source_id: Mapped[int] = mapped_column(IdType, ForeignKey("sources.id", ondelete="CASCADE"))
    source_key: Mapped[str] = mapped_column(String(500))
    reason: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = created_column()


class Extraction(ChangeTracked, Base):
    """The objects an image's captions name (or a VLM saw): the detector's text query.

    ``objects`` is a list of ``{"label": canonical, "phrase": as written}``.
    """

    __tablename__ = "extractions"

    image_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    producer: Mapped[str] = mapped_column(String(200), primary_key=True)
    objects: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = created_column()


class ChangeCounter(Base):
    """The single row that hands out ``change_seq`` values (see :mod:`esplora.db.changes`)."""

    __tablename__ = "change_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class WorkerHeartbeat(Base):
    """A worker process announcing itself; the CLI says "no live worker" from this table."""

    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(200))
    queues: Mapped[list[Any]] = mapped_column(default=list)
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = created_column()
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
