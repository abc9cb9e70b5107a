"""Export jobs: a snapshot written to disk in a training format, run in the background.

The job's progress and outcome live here (not in the broker), so ``esplora snapshot export``
follows the row and ``export-jobs`` lists every export, whether it ran inline or on a worker.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from esplora.db.base import Base, IdType, created_column, id_column, str_enum, updated_column
from esplora.db.enums import RunStatus


class ExportJob(Base):
    """One export of a snapshot: format, target directory, options, progress and outcome.

    ``snapshot_name`` is kept beside the id so the listing still says what was exported after
    the snapshot is deleted (the id is then set to NULL). ``report`` is the finished export's
    summary (written and skipped counts, skip reasons).
    """

    __tablename__ = "export_jobs"

    id: Mapped[int] = id_column()
    snapshot_id: Mapped[int | None] = mapped_column(
        IdType, ForeignKey("snapshots.id", ondelete="SET NULL"), index=True
    )
    snapshot_name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(32))
    out_dir: Mapped[str] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[RunStatus] = mapped_column(
        str_enum(RunStatus), default=RunStatus.QUEUED, index=True
    )
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_column()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Moves with every progress write: a running job whose row has not moved for a while was
    # left by a dead worker, and only then may a redelivered task run it again.
    updated_at: Mapped[datetime] = updated_column()
