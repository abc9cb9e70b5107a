"""Which objects of an image the later stages use.

The detector's boxes when the detect stage ran (the producer recorded on its stage row), the
dataset's annotation boxes when it was skipped (COCO): never a mix, which would duplicate
objects and their pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from esplora.db.detections import DetectedObject
from esplora.db.enums import ProducerKind, Stage, StageStatus
from esplora.db.images import ImageStage


@dataclass(frozen=True, slots=True)
class ObjectRow:
    id: int
    label: str
    box: tuple[float, float, float, float]
    score: float


def objects_for(session: Session, image_ids: Sequence[int]) -> dict[int, list[ObjectRow]]:
    """Image id → its objects for relation work, by descending score then id."""
    detect = (
        select(ImageStage.image_id, ImageStage.status, ImageStage.producer)
        .where(ImageStage.image_id.in_(image_ids), ImageStage.stage == Stage.DETECT)
        .subquery()
    )
    query = (
        select(DetectedObject)
        .join(detect, detect.c.image_id == DetectedObject.image_id)
        .where(
            or_(
                and_(
                    detect.c.status == StageStatus.DONE,
                    DetectedObject.producer == detect.c.producer,
                ),
                and_(
                    detect.c.status == StageStatus.SKIPPED,
                    DetectedObject.producer_kind == ProducerKind.ANNOTATION,
                ),
            )
        )
        .order_by(DetectedObject.image_id, DetectedObject.score.desc(), DetectedObject.id)
    )
    out: dict[int, list[ObjectRow]] = {i: [] for i in image_ids}
    for o in session.scalars(query):
        out[o.image_id].append(ObjectRow(o.id, o.label, (o.x0, o.y0, o.x1, o.y1), o.score or 1.0))
    return out
