"""Detected objects and their depth statistics."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from esplora.db.base import (
    Base,
    ChangeTracked,
    IdType,
    Versioned,
    created_column,
    id_column,
    str_enum,
)
from esplora.db.enums import ProducerKind


class DetectedObject(ChangeTracked, Versioned, Base):
    """A box on an image, in pixels after EXIF orientation, ``(x0, y0, x1, y1)``.

    ``producer`` is the model id + version for detections, the dataset for annotations, the
    reviewer for human boxes. ``label`` is canonical (synonyms resolved), ``phrase`` the text
    the detector was queried with.
    """

    __tablename__ = "objects"
    __table_args__ = (
        Index(None, "image_id", "producer"),
        # The core never sees degenerate boxes: detectors clip and drop them first.
        CheckConstraint("x0 < x1 AND y0 < y1", name="ordered_box"),
    )

    id: Mapped[int] = id_column()
    image_id: Mapped[int] = mapped_column(IdType, ForeignKey("images.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(100), index=True)
    phrase: Mapped[str | None] = mapped_column(String(300))
    x0: Mapped[float] = mapped_column(Float)
    y0: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)
    producer_kind: Mapped[ProducerKind] = mapped_column(str_enum(ProducerKind))
    producer: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_column()


class ObjectDepth(ChangeTracked, Base):
    """Statistics of the min–max normalised disparity (larger = closer) inside an object's box."""

    __tablename__ = "object_depths"

    object_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("objects.id", ondelete="CASCADE"), primary_key=True
    )
    producer: Mapped[str] = mapped_column(String(200), primary_key=True)
    median: Mapped[float] = mapped_column(Float)
    mean: Mapped[float] = mapped_column(Float)
    p10: Mapped[float] = mapped_column(Float)
    p90: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = created_column()
