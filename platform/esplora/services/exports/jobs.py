"""Export jobs: the row that a background export reports into, and the functions around it.

``start_export`` checks everything a user can get wrong (format, snapshot, target directory)
before anything is queued, then records a queued job. ``run_export_job`` runs it, inline or on
a worker, writing progress into the row as it goes. A broker may deliver the same task twice
(Redis, after its visibility timeout): a job that already succeeded is not run again, nor one
that is running elsewhere (its row moved within :data:`LIVE_WITHIN`); a running job whose row
stopped moving was left by a dead worker and runs again from the start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from esplora.db.engine import Store
from esplora.db.enums import RunStatus
from esplora.db.exports import ExportJob
from esplora.errors import EsploraError
from esplora.services.exports.common import ExportOptions, ProgressCallback
from esplora.services.exports.members import load_snapshot
from esplora.services.exports.runner import (
    ExportReport,
    check_target,
    export_snapshot,
    format_spec,
)
from esplora.settings import Settings

PROGRESS_EVERY_S = 0.5  # how often a running job writes its progress into the store
# A page of images takes seconds: a running job's row that has not moved for this long was left
# by a dead worker.
LIVE_WITHIN = timedelta(minutes=10)
FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


@dataclass(frozen=True, slots=True)
class ExportJobInfo:
    """An export job as the store has it."""

    id: int
    snapshot: str
    format: str
    out_dir: str
    options: dict[str, Any]
    status: RunStatus
    done: int
    total: int
    skipped: int
    error: str | None
    report: dict[str, Any]
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    stale: bool = False  # "running", but its row stopped moving: the worker is gone

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (times as ISO 8601)."""
        data = {name: getattr(self, name) for name in self.__slots__}
        data["status"] = self.status.value
        for name in ("created_at", "started_at", "finished_at"):
            data[name] = data[name].isoformat() if data[name] else None
        return data


def start_export(
    store: Store, *, snapshot: str, fmt: str, out: Path, options: ExportOptions | None = None
) -> int:
    """Check the request and record a queued export job; returns its id."""
    spec = format_spec(fmt)
    target = check_target(out)
    info = load_snapshot(store, snapshot)
    row = ExportJob(snapshot_id=info.id, snapshot_name=info.name, format=spec.name,
                    out_dir=str(target), options=(options or ExportOptions()).to_dict(),
                    status=RunStatus.QUEUED, total=int(info.counts.get("members") or 0),
                    report={})  # fmt: skip
    with store.unit_of_work() as session:
        session.add(row)
        session.flush()
        return row.id


def run_export_job(
    store: Store, settings: Settings, job_id: int, progress: ProgressCallback | None = None
) -> ExportJobInfo:
    """Run job ``job_id``: running → succeeded, or failed (cancelled on Ctrl-C) with the error
    text in the row, and the error raised again."""
    job, claimed = _claim(store, job_id)
    if not claimed:  # done already, or running in another process
        return job
    out = Path(job.out_dir)
    report_progress = _Follower(store, job_id, progress)
    try:
        report = export_snapshot(store, settings, job.snapshot, job.format, out,
                                 ExportOptions.from_dict(job.options), report_progress,
                                 partial_name=f".{out.name}.partial-job{job_id}")  # fmt: skip
    except BaseException as error:
        cancelled = isinstance(error, KeyboardInterrupt)
        text = str(error) if isinstance(error, EsploraError) else f"{type(error).__name__}: {error}"
        _finish(store, job_id, RunStatus.CANCELLED if cancelled else RunStatus.FAILED,
                error="interrupted" if cancelled else text)  # fmt: skip
        raise
    _finish(store, job_id, RunStatus.SUCCEEDED, report=report)
    return export_job(store, job_id)


def export_job(store: Store, job_id: int) -> ExportJobInfo:
    """Job ``job_id``; a clear error when there is none."""
    with store.reader() as session:
        row = session.get(ExportJob, job_id)
        if row is None:
            raise EsploraError(f"no export job {job_id}")
        return _info(row)


def export_jobs(store: Store, *, limit: int = 50) -> list[ExportJobInfo]:
    """The latest ``limit`` export jobs, newest first."""
    with store.reader() as session:
        rows = session.scalars(select(ExportJob).order_by(ExportJob.id.desc()).limit(limit))
        return [_info(row) for row in rows]


def _claim(store: Store, job_id: int) -> tuple[ExportJobInfo, bool]:
    """Mark the job running here, unless it succeeded or runs elsewhere: (job, claimed)."""
    with store.unit_of_work() as session:
        row = session.get(ExportJob, job_id)
        if row is None:
            raise EsploraError(f"no export job {job_id}")
        if row.status is RunStatus.SUCCEEDED or _live(row):
            return _info(row), False
        row.status, row.started_at, row.finished_at = RunStatus.RUNNING, _now(), None
        row.error, row.done = None, 0
        session.flush()
        return _info(row), True


def _finish(
    store: Store,
    job_id: int,
    status: RunStatus,
    *,
    error: str | None = None,
    report: ExportReport | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "error": error, "finished_at": _now()}
    if report is not None:
        values |= {"done": report.total, "total": report.total, "skipped": report.skipped,
                   "report": report.to_dict()}  # fmt: skip
    with store.unit_of_work() as session:
        session.execute(update(ExportJob).where(ExportJob.id == job_id).values(values))


class _Follower:
    """The progress callback of a job: into the row (at most every ``PROGRESS_EVERY_S``) and on
    to the caller's own callback."""

    def __init__(self, store: Store, job_id: int, then: ProgressCallback | None) -> None:
        self.store, self.job_id, self.then = store, job_id, then
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S or done >= total:
            self.last = now
            with self.store.unit_of_work() as session:
                session.execute(
                    update(ExportJob)
                    .where(ExportJob.id == self.job_id)
                    .values(done=done, total=total)
                )
        if self.then is not None:
            self.then(done, total)


def _live(row: ExportJob) -> bool:
    """Running, and its row moved within :data:`LIVE_WITHIN` (so its worker is alive)."""
    moved = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
    return row.status is RunStatus.RUNNING and _now() - moved < LIVE_WITHIN


def _info(row: ExportJob) -> ExportJobInfo:
    stale = row.status is RunStatus.RUNNING and not _live(row)
    return ExportJobInfo(row.id, row.snapshot_name, row.format, row.out_dir, dict(row.options),
                         RunStatus(row.status), row.done, row.total, row.skipped, row.error,
                         dict(row.report or {}), row.created_at, row.started_at,
                         row.finished_at, stale)  # fmt: skip


def _now() -> datetime:
    return datetime.now(UTC)
