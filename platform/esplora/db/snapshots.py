"""Snapshots: frozen, hashed membership that training and exports read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from esplora.db.base import Base, ChangeTracked, IdType, created_column, id_column, str_enum
from esplora.db.enums import Split


class Snapshot(ChangeTracked, Base):
    """A named subset frozen at creation. ``content_hash`` covers content, never database ids."""

    __tablename__ = "snapshots"

    id: Mapped[int] = id_column()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    filter: Mapped[dict[str, Any]] = mapped_column(default=dict)
    filter_json: Mapped[str] = mapped_column(Text)
    text_source: Mapped[str] = mapped_column(String(32))
    validation_fraction: Mapped[float] = mapped_column(Float, default=0.0)
    caps: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seed: Mapped[int] = mapped_column(default=0)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = created_column()


class SnapshotMember(Base):
    """One sample as it was when the snapshot was made (a later relabel never changes it)."""

    __tablename__ = "snapshot_members"

    snapshot_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    sample_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("samples.id", ondelete="RESTRICT"), primary_key=True
    )
    image_sha256: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    text_source: Mapped[str] = mapped_column(String(32))
    relations: Mapped[list[Any]] = mapped_column(default=list)
    review_state: Mapped[str] = mapped_column(String(32))
    split: Mapped[Split] = mapped_column(str_enum(Split))
