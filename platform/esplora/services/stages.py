"""Pipeline bookkeeping: every image's stage status lives in the store, not in the broker.

A stage's work for an image is *claimed* (with a lease) before it runs and marked *done* or
*failed* in the same transaction that writes its results, so a crash before commit leaves the
claim to expire and nothing half-written; "retry failed" and "requeue stale" are plain updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from esplora.db.changes import next_change_seq
from esplora.db.enums import Stage, StageStatus
from esplora.db.images import ImageStage

# What must be done (or skipped) before a stage may run on an image.
PREREQUISITES: dict[Stage, tuple[Stage, ...]] = {
    Stage.EXTRACT: (),
    Stage.DETECT: (Stage.EXTRACT,),
    Stage.DEPTH: (Stage.DETECT,),
    Stage.RELATE: (Stage.DETECT, Stage.DEPTH),
    Stage.VALIDATE: (Stage.RELATE,),
}
FINISHED = (StageStatus.DONE, StageStatus.SKIPPED)
DEFAULT_LEASE = timedelta(minutes=30)
MAX_ERROR_CHARS = 2000


def now() -> datetime:
    return datetime.now(UTC)


def _ready(stage: Stage) -> Any:
    """SQL condition: every prerequisite of ``stage`` is finished for the row's image."""
    conditions = []
    for needed in PREREQUISITES[stage]:
        other = aliased(ImageStage)
        conditions.append(
            exists().where(
                other.image_id == ImageStage.image_id,
                other.stage == needed,
                other.status.in_(FINISHED),
            )
        )
    return and_(True, *conditions)


def claim(
    session: Session,
    stage: Stage,
    *,
    limit: int,
    worker: str,
    image_ids: Sequence[int] | None = None,
    lease: timedelta = DEFAULT_LEASE,
    reclaim: bool = False,
    dead: Sequence[str] = (),
) -> list[int]:
    """Claim up to ``limit`` pending images whose prerequisites are finished; return their ids.

    With ``reclaim``, also images this worker already holds, claims whose lease expired, and
    claims of the ``dead`` workers: a task redelivered after its worker died (or retried after a
    lost connection) takes its batch back. Run inside a write transaction (``BEGIN IMMEDIATE``
    on SQLite, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two workers never claim the same
    image.
    """
    claimable = ImageStage.status == StageStatus.PENDING
    if reclaim:
        stale = (ImageStage.claimed_by.in_([worker, *dead])) | (ImageStage.lease_expires_at < now())
        claimable = claimable | ((ImageStage.status == StageStatus.CLAIMED) & stale)
    query = (
        select(ImageStage.image_id)
        .where(ImageStage.stage == stage, claimable, _ready(stage))
        .order_by(ImageStage.image_id)
        .limit(limit)
    )
    if image_ids is not None:
        query = query.where(ImageStage.image_id.in_(image_ids))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(ImageStage)
            .where(ImageStage.stage == stage, ImageStage.image_id.in_(ids))
            .values(
                status=StageStatus.CLAIMED,
                claimed_by=worker,
                lease_expires_at=now() + lease,
                change_seq=next_change_seq(session),
            )
            .execution_options(synchronize_session=False)
        )
    return ids


def holders(session: Session, stage: Stage, image_ids: Sequence[int]) -> set[str]:
    """The workers holding claims on any of these images."""
    names = session.scalars(
        select(ImageStage.claimed_by).where(
            ImageStage.stage == stage,
            ImageStage.image_id.in_(image_ids),
            ImageStage.status == StageStatus.CLAIMED,
        )
    )
    return {name for name in names if name is not None}


def held_elsewhere(
    session: Session, stage: Stage, image_ids: Sequence[int], worker: str
) -> datetime | None:
    """When the last live claim of another worker on these images expires (``None``: none)."""
    return session.scalar(
        select(func.max(ImageStage.lease_expires_at)).where(
            ImageStage.stage == stage,
            ImageStage.image_id.in_(image_ids),
            ImageStage.status == StageStatus.CLAIMED,
            ImageStage.claimed_by != worker,
            ImageStage.lease_expires_at >= now(),
        )
    )


def ready_pending(
    session: Session,
    stage: Stage,
    *,
    after: int = 0,
    limit: int = 1000,
    image_ids: Sequence[int] | None = None,
) -> list[int]:
    """Ids of pending images whose prerequisites are finished (what a dispatcher enqueues),
    among ``image_ids`` if given."""
    query = (
        select(ImageStage.image_id)
        .where(
            ImageStage.stage == stage,
            ImageStage.status == StageStatus.PENDING,
            ImageStage.image_id > after,
            _ready(stage),
        )
        .order_by(ImageStage.image_id)
        .limit(limit)
    )
    if image_ids is not None:
        query = query.where(ImageStage.image_id.in_(image_ids))
    return list(session.scalars(query))


def outstanding(session: Session, stage_list: Sequence[Stage]) -> int:
    """(image, stage) pairs of ``stage_list`` still to run: claimed, or pending and ready.

    Pending rows whose prerequisites failed are not counted: they wait for a retry.
    """
    total = 0
    for stage in stage_list:
        claimed = ImageStage.status == StageStatus.CLAIMED
        ready = (ImageStage.status == StageStatus.PENDING) & _ready(stage)
        total += (
            session.scalar(select(func.count()).where(ImageStage.stage == stage, claimed | ready))
            or 0
        )
    return total


def finished(session: Session, stage_list: Sequence[Stage]) -> int:
    """(image, stage) pairs of ``stage_list`` done or failed."""
    return (
        session.scalar(
            select(func.count()).where(
                ImageStage.stage.in_(stage_list),
                ImageStage.status.in_([StageStatus.DONE, StageStatus.FAILED]),
            )
        )
        or 0
    )


def still_claimed(
    session: Session, stage: Stage, image_ids: Sequence[int], worker: str
) -> list[int]:
    """The images of ``image_ids`` this worker still holds (a requeue may have taken some back)."""
    return list(
        session.scalars(
            select(ImageStage.image_id).where(
                ImageStage.stage == stage,
                ImageStage.image_id.in_(image_ids),
                ImageStage.status == StageStatus.CLAIMED,
                ImageStage.claimed_by == worker,
            )
        )
    )


def finish(
    session: Session,
    stage: Stage,
    image_id: int,
    *,
    producer: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Mark one image's stage done by ``producer`` (in the transaction that wrote its results)."""
    session.execute(
        update(ImageStage)
        .where(ImageStage.stage == stage, ImageStage.image_id == image_id)
        .values(
            status=StageStatus.DONE,
            producer=producer,
            details=details or {},
            attempts=ImageStage.attempts + 1,
            last_error=None,
            lease_expires_at=None,
            change_seq=next_change_seq(session),
        )
        .execution_options(synchronize_session=False)
    )


def fail(session: Session, stage: Stage, image_id: int, error: str) -> None:
    """Mark one image's stage failed with the reason (the rest of its batch goes on)."""
    session.execute(
        update(ImageStage)
        .where(ImageStage.stage == stage, ImageStage.image_id == image_id)
        .values(
            status=StageStatus.FAILED,
            attempts=ImageStage.attempts + 1,
            last_error=error[:MAX_ERROR_CHARS],
            lease_expires_at=None,
            change_seq=next_change_seq(session),
        )
        .execution_options(synchronize_session=False)
    )


def release(session: Session, stage: Stage, image_ids: Sequence[int], worker: str) -> int:
    """Give claims back (pending) without counting an attempt, e.g. on a clean shutdown."""
    return _back_to_pending(
        session,
        ImageStage.stage == stage,
        ImageStage.image_id.in_(image_ids),
        ImageStage.status == StageStatus.CLAIMED,
        ImageStage.claimed_by == worker,
    )


def retry_failed(session: Session, stages: Sequence[Stage] | None = None) -> int:
    """Failed work becomes pending again; returns how many (image, stage) rows."""
    condition = ImageStage.status == StageStatus.FAILED
    if stages:
        condition = and_(condition, ImageStage.stage.in_(stages))
    return _back_to_pending(session, condition)


def requeue_stale(session: Session, *, older_than: timedelta | None = None) -> int:
    """Claims whose lease expired (or older than ``older_than``) become pending again."""
    cutoff = now() if older_than is None else now() - older_than
    column = ImageStage.lease_expires_at if older_than is None else ImageStage.updated_at
    return _back_to_pending(session, ImageStage.status == StageStatus.CLAIMED, column < cutoff)


def _back_to_pending(session: Session, *conditions: Any) -> int:
    """Rows matching ``conditions`` become pending and unclaimed; returns how many."""
    result = session.execute(
        update(ImageStage)
        .where(*conditions)
        .values(
            status=StageStatus.PENDING,
            claimed_by=None,
            lease_expires_at=None,
            change_seq=next_change_seq(session),
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class StageFailure:
    image_id: int
    stage: str
    attempts: int
    error: str


def counts(session: Session) -> dict[str, dict[str, int]]:
    """Per stage, how many images are in each status."""
    rows = session.execute(
        select(ImageStage.stage, ImageStage.status, func.count()).group_by(
            ImageStage.stage, ImageStage.status
        )
    )
    table: dict[str, dict[str, int]] = {s.value: {t.value: 0 for t in StageStatus} for s in Stage}
    for stage, status, n in rows:
        table[Stage(stage).value][StageStatus(status).value] = int(n)
    return table


def failures(session: Session, *, limit: int = 20) -> list[StageFailure]:
    """The most recent failures with their reasons."""
    rows = session.scalars(
        select(ImageStage)
        .where(ImageStage.status == StageStatus.FAILED)
        .order_by(ImageStage.updated_at.desc(), ImageStage.image_id)
        .limit(limit)
    )
    return [StageFailure(r.image_id, r.stage.value, r.attempts, r.last_error or "") for r in rows]
