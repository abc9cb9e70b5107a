"""Training runs (lineage: snapshot → run → evaluations) and evaluation runs with their results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from esplora.db.base import Base, ChangeTracked, IdType, created_column, id_column, str_enum
from esplora.db.enums import RunStatus


class TrainingRun(ChangeTracked, Base):
    """A LoRA training job on a snapshot; ``config`` is the validated config as run."""

    __tablename__ = "training_runs"

    id: Mapped[int] = id_column()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    snapshot_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("snapshots.id", ondelete="RESTRICT")
    )
    snapshot_hash: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[RunStatus] = mapped_column(str_enum(RunStatus), default=RunStatus.QUEUED)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artefacts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    adapter_uri: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_column()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RunMetric(Base):
    """A metric value of a run at a step (loss, per-relation probe accuracy…)."""

    __tablename__ = "run_metrics"

    run_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("training_runs.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class Checkpoint(Base):
    """A saved training state a run can resume from (the last K are kept)."""

    __tablename__ = "checkpoints"

    run_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("training_runs.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_column()


class EvaluationRun(ChangeTracked, Base):
    """A benchmark run of a generator (optionally with an adapter and TORE) under one rule."""

    __tablename__ = "evaluation_runs"

    id: Mapped[int] = id_column()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    benchmark: Mapped[str] = mapped_column(String(64))
    generator: Mapped[str] = mapped_column(String(200))
    training_run_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("training_runs.id", ondelete="SET NULL")
    )
    adapter: Mapped[str] = mapped_column(String(500), default="")
    tore: Mapped[str] = mapped_column(String(16), default="off")
    rule: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Headline figures: ESPLoRA soft/strict accuracy and each peer's score (see evaluation).
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[RunStatus] = mapped_column(str_enum(RunStatus), default=RunStatus.QUEUED)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EvaluationResult(Base):
    """Per-relation accuracy of an evaluation run (``relation = "all"`` for the total)."""

    __tablename__ = "evaluation_results"

    evaluation_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("evaluation_runs.id", ondelete="CASCADE"), primary_key=True
    )
    relation: Mapped[str] = mapped_column(String(16), primary_key=True)
    images: Mapped[int] = mapped_column(Integer)
    soft_accuracy: Mapped[float] = mapped_column(Float)
    strict_accuracy: Mapped[float] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)
