"""The synthetic loop: spatial prompts, generations from them, and their re-validation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from esplora.db.base import Base, ChangeTracked, IdType, created_column, id_column, str_enum
from esplora.db.enums import PromptKind


class SpatialPrompt(ChangeTracked, Base):
    """A prompt whose relations are known: ``relations`` is a list of
    ``{"subject": label, "relation": name, "object": label}``."""

    __tablename__ = "prompts"

    id: Mapped[int] = id_column()
    text: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[PromptKind] = mapped_column(str_enum(PromptKind), index=True)
    relations: Mapped[list[Any]] = mapped_column(default=list)
    origin: Mapped[str] = mapped_column(String(32), default="synthesized")
    origin_image_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("images.id", ondelete="SET NULL")
    )
    benchmark: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = created_column()


class Generation(ChangeTracked, Base):
    """One image generated from a prompt; ``prompt_used`` is the TORE rewrite when TORE was on."""

    __tablename__ = "generations"
    __table_args__ = (
        UniqueConstraint("prompt_id", "generator", "adapter", "adapter_scale", "tore", "seed"),
    )

    id: Mapped[int] = id_column()
    prompt_id: Mapped[int] = mapped_column(IdType, ForeignKey("prompts.id", ondelete="CASCADE"))
    generator: Mapped[str] = mapped_column(String(200))
    adapter: Mapped[str] = mapped_column(String(500), default="")
    adapter_scale: Mapped[float] = mapped_column(Float, default=1.0)
    tore: Mapped[str] = mapped_column(String(16), default="off")
    prompt_used: Mapped[str] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(Integer)
    steps: Mapped[int] = mapped_column(Integer)
    guidance: Mapped[float] = mapped_column(Float)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    image_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("images.id", ondelete="SET NULL")
    )
    evaluation_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("evaluation_runs.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = created_column()


class Validation(ChangeTracked, Base):
    """A generated image's verdicts against its prompt (SPATIAL.md, image-level verdicts)."""

    __tablename__ = "validations"
    __table_args__ = (UniqueConstraint("generation_id", "rule", "tau", "depth_gap", "producer"),)

    id: Mapped[int] = id_column()
    generation_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("generations.id", ondelete="CASCADE")
    )
    rule: Mapped[str] = mapped_column(String(32))
    tau: Mapped[float] = mapped_column(Float)
    depth_gap: Mapped[float] = mapped_column(Float)
    producer: Mapped[str] = mapped_column(String(400))
    strict: Mapped[bool] = mapped_column(Boolean, index=True)
    soft: Mapped[bool] = mapped_column(Boolean)
    fraction_strict: Mapped[float] = mapped_column(Float)
    fraction_soft: Mapped[float] = mapped_column(Float)
    per_relation: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = created_column()
