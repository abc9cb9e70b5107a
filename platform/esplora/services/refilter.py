"""Re-apply the caption filter to stored samples: changing the filter is a query, not a
re-download. Samples are marked or unmarked; images gain or lose their pending stages."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from esplora.db.changes import next_change_seq
from esplora.db.detections import DetectedObject
from esplora.db.engine import Store
from esplora.db.enums import ProducerKind, StageStatus
from esplora.db.images import Image, ImageStage, Sample
from esplora.db.writes import update_rows
from esplora.services.ingest_rows import FILTER_PRODUCER, revive_stages
from esplora.sources.filters import FilterParams, exclusion_reason

BATCH = 2000


@dataclass
class RefilterReport:
    """How many samples changed, and the exclusion reasons after the run."""

    examined: int = 0
    newly_excluded: int = 0
    newly_kept: int = 0
    excluded: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "excluded": dict(sorted(self.excluded.items()))}


def refilter(store: Store, params: FilterParams) -> RefilterReport:
    """Re-evaluate every sample under ``params``, one unit of work per batch of samples."""
    report = RefilterReport()
    last = 0
    while True:
        with store.unit_of_work() as session:
            rows = _batch(session, last)
            if not rows:
                return report
            last = rows[-1].id
            _apply(session, rows, params, report)


def _batch(session: Session, after: int) -> Sequence[Row[Any]]:
    return session.execute(
        select(
            Sample.id,
            Sample.image_id,
            Sample.caption,
            Sample.meta,
            Sample.exclusion_reason,
            Image.width,
            Image.height,
        )
        .join(Image, Image.id == Sample.image_id)
        .where(Sample.id > after)
        .order_by(Sample.id)
        .limit(BATCH)
    ).all()


def _annotated_labels(session: Session, image_ids: set[int]) -> dict[int, set[str]]:
    labels: dict[int, set[str]] = defaultdict(set)
    rows = session.execute(
        select(DetectedObject.image_id, DetectedObject.label).where(
            DetectedObject.image_id.in_(image_ids),
            DetectedObject.producer_kind == ProducerKind.ANNOTATION,
        )
    )
    for image_id, label in rows:
        labels[image_id].add(label)
    return labels


def _apply(
    session: Session, rows: Sequence[Row[Any]], params: FilterParams, report: RefilterReport
) -> None:
    annotated = _annotated_labels(session, {r.image_id for r in rows})
    changes, touched = [], set()
    for r in rows:
        reason = exclusion_reason(
            r.caption,
            r.meta,
            (r.width, r.height),
            params,
            annotated_labels=annotated.get(r.image_id, set()),
        )
        report.examined += 1
        report.excluded[reason or "kept"] += 1
        if reason != r.exclusion_reason:
            changes.append({"id": r.id, "excluded": reason is not None, "exclusion_reason": reason})
            report.newly_excluded += reason is not None and r.exclusion_reason is None
            report.newly_kept += reason is None
            touched.add(r.image_id)
    if changes:
        update_rows(session, Sample, changes)
        _sync_stages(session, touched)


def _sync_stages(session: Session, image_ids: set[int]) -> None:
    """An image with a kept sample has its filter-skipped stages back; one without loses the
    stages that have not started (work already done stays, and is simply not queried)."""
    kept = set(
        session.scalars(
            select(Sample.image_id).where(
                Sample.image_id.in_(image_ids), Sample.excluded.is_(False)
            )
        )
    )
    revive_stages(session, kept)
    dropped = image_ids - kept
    if dropped:
        session.execute(
            update(ImageStage)
            .where(ImageStage.image_id.in_(dropped), ImageStage.status == StageStatus.PENDING)
            .values(
                status=StageStatus.SKIPPED,
                producer=FILTER_PRODUCER,
                change_seq=next_change_seq(session),
            )
            .execution_options(synchronize_session=False)
        )
