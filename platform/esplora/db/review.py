"""Human review: append-only votes, and adjudicated overrides kept beside the machine values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from esplora.db.base import Base, ChangeTracked, IdType, created_column, id_column, str_enum
from esplora.db.enums import ReviewTarget, VoteVerdict


class ReviewVote(ChangeTracked, Base):
    """One reviewer's verdict on one item. Never updated or deleted, so votes never conflict."""

    __tablename__ = "votes"
    __table_args__ = (Index(None, "target_type", "target_id"),)

    id: Mapped[int] = id_column()
    reviewer: Mapped[str] = mapped_column(String(100), index=True)
    target_type: Mapped[ReviewTarget] = mapped_column(str_enum(ReviewTarget))
    target_id: Mapped[int] = mapped_column(IdType)
    verdict: Mapped[VoteVerdict] = mapped_column(str_enum(VoteVerdict, length=24))
    proposal: Mapped[dict[str, Any]] = mapped_column(default=dict)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_column()


class Override(ChangeTracked, Base):
    """The canonical human decision on an item; the machine row it overrides stays untouched.

    A newer decision supersedes an older one (``superseded_by``), so the history is kept and the
    effective value is the machine value unless an override without successor exists. Writing
    one bumps the target row's ``version`` (optimistic concurrency).
    """

    __tablename__ = "overrides"
    __table_args__ = (Index(None, "target_type", "target_id"),)

    id: Mapped[int] = id_column()
    target_type: Mapped[ReviewTarget] = mapped_column(str_enum(ReviewTarget))
    target_id: Mapped[int] = mapped_column(IdType)
    decision: Mapped[VoteVerdict] = mapped_column(str_enum(VoteVerdict, length=24))
    values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    decided_by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)
    superseded_by: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("overrides.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = created_column()


class ReviewAssignment(Base):
    """An item handed to one reviewer by the queue; ``done_at`` is set when they vote.

    The unique key means an item is never given to the same reviewer twice; the number of rows
    per item is the overlap k the queue fills up to.
    """

    __tablename__ = "review_assignments"
    __table_args__ = (UniqueConstraint("target_type", "target_id", "reviewer"),)

    id: Mapped[int] = id_column()
    target_type: Mapped[ReviewTarget] = mapped_column(str_enum(ReviewTarget))
    target_id: Mapped[int] = mapped_column(IdType)
    reviewer: Mapped[str] = mapped_column(String(100), index=True)
    assigned_at: Mapped[datetime] = created_column()
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
