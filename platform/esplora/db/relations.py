"""Geometric relations (what the image shows) and caption claims (what the text says)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
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
)
from esplora.db.enums import Agreement


class GeometricRelation(ChangeTracked, Versioned, Base):
    """One row per object pair and axis, in canonical direction (SPATIAL.md).

    Subject is the object that is left, above or nearer; ``relation`` is ``left_of``, ``above``
    or ``in_front_of``. The inverse reading is a view, never a second row.
    """

    __tablename__ = "relations"
    __table_args__ = (
        UniqueConstraint("subject_id", "object_id", "axis", "rule", "tau", "depth_gap"),
        Index(None, "image_id", "relation"),
        # The review queue hands out the most ambiguous item first (ORDER BY |margin|, id
        # LIMIT 1): with these the database walks an index in that order (per relation when the
        # filter names one) and stops at the first free item instead of sorting millions of
        # rows (8 s → a few ms at 10 M relations). They replace plain indexes on ``relation``
        # and on the boolean ``strict``, which lured SQLite's planner into that sort.
        Index("ix_relations_ambiguity", text("abs(margin)"), "id"),
        Index("ix_relations_relation_ambiguity", "relation", text("abs(margin)"), "id"),
    )

    id: Mapped[int] = id_column()
    image_id: Mapped[int] = mapped_column(IdType, ForeignKey("images.id", ondelete="CASCADE"))
    subject_id: Mapped[int] = mapped_column(IdType, ForeignKey("objects.id", ondelete="CASCADE"))
    object_id: Mapped[int] = mapped_column(IdType, ForeignKey("objects.id", ondelete="CASCADE"))
    axis: Mapped[str] = mapped_column(String(16))
    relation: Mapped[str] = mapped_column(String(16))
    soft: Mapped[bool] = mapped_column(Boolean)
    strict: Mapped[bool] = mapped_column(Boolean)
    margin: Mapped[float] = mapped_column(Float)
    rule: Mapped[str] = mapped_column(String(32))
    tau: Mapped[float] = mapped_column(Float)
    depth_gap: Mapped[float] = mapped_column(Float)
    producer: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_column()


class CaptionClaim(ChangeTracked, Versioned, Base):
    """A relation a sample's caption states, in the caption's own direction.

    Linked to the geometric row that confirms or contradicts it: the claim measures the language
    (and its bias), the geometric row the world.
    """

    __tablename__ = "claims"
    # A coordinated clause ("a cat and a dog left of a tree") claims one relation per pair.
    __table_args__ = (
        UniqueConstraint("sample_id", "clause_index", "subject_label", "object_label"),
    )

    id: Mapped[int] = id_column()
    sample_id: Mapped[int] = mapped_column(IdType, ForeignKey("samples.id", ondelete="CASCADE"))
    clause_index: Mapped[int] = mapped_column(Integer)
    clause_text: Mapped[str] = mapped_column(Text)
    relation: Mapped[str] = mapped_column(String(16), index=True)
    phrase: Mapped[str] = mapped_column(String(64))
    subject_text: Mapped[str] = mapped_column(Text)
    object_text: Mapped[str] = mapped_column(Text)
    subject_label: Mapped[str] = mapped_column(String(100))
    object_label: Mapped[str] = mapped_column(String(100))
    subject_object_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("objects.id", ondelete="SET NULL")
    )
    object_object_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("objects.id", ondelete="SET NULL")
    )
    geometric_relation_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("relations.id", ondelete="SET NULL")
    )
    agreement: Mapped[Agreement] = mapped_column(
        str_enum(Agreement), default=Agreement.UNRESOLVED, index=True
    )
    created_at: Mapped[datetime] = created_column()
