"""The detect stage: boxes for the extracted objects, clipped, top-K, stored with their producer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from esplora.backends.base import DetectionResult, ExtractedObject
from esplora.db.detections import DetectedObject
from esplora.db.enums import ProducerKind, Stage
from esplora.db.images import Extraction, Image, ImageStage
from esplora.db.writes import insert_rows
from esplora.services.pipeline.context import StageContext
from esplora.services.pipeline.images import load_images


def _queries(session: Session, image_ids: Sequence[int]) -> dict[int, tuple[ExtractedObject, ...]]:
    """Each image's extracted objects, from the producer that did its extract stage."""
    rows = session.execute(
        select(Extraction.image_id, Extraction.objects)
        .join(
            ImageStage,
            (ImageStage.image_id == Extraction.image_id)
            & (ImageStage.stage == Stage.EXTRACT)
            & (ImageStage.producer == Extraction.producer),
        )
        .where(Extraction.image_id.in_(image_ids))
    )
    return {i: tuple(ExtractedObject(o["label"], o["phrase"]) for o in objs) for i, objs in rows}


class DetectRunner:
    stage = Stage.DETECT

    def producer(self, ctx: StageContext) -> str:
        return str(ctx.detector.producer)

    def load(self, ctx: StageContext, image_ids: Sequence[int]) -> dict[int, Any]:
        with ctx.store.reader() as session:
            queries = _queries(session, image_ids)
            uris = {
                k: v
                for k, v in session.execute(
                    select(Image.id, Image.uri).where(Image.id.in_(image_ids))
                )
            }
        images = load_images(ctx, uris)
        return {
            i: images[i]
            if isinstance(images[i], BaseException)
            else (images[i], queries.get(i, ()))
            for i in images
        }

    def compute(self, ctx: StageContext, inputs: Mapping[int, Any]) -> dict[int, Any]:
        ids = list(inputs)
        results = ctx.detector.detect([inputs[i][0] for i in ids], [inputs[i][1] for i in ids])
        return dict(zip(ids, results, strict=True))

    def write(
        self, session: Session, ctx: StageContext, results: Mapping[int, Any]
    ) -> dict[int, dict[str, Any]]:
        producer = self.producer(ctx)
        session.execute(
            delete(DetectedObject).where(
                DetectedObject.image_id.in_(list(results)), DetectedObject.producer == producer
            )
        )
        rows = [
            {
                "image_id": image_id,
                "label": b.label,
                "phrase": b.phrase,
                "x0": b.box[0],
                "y0": b.box[1],
                "x1": b.box[2],
                "y1": b.box[3],
                "score": b.score,
                "producer_kind": ProducerKind.MODEL.value,
                "producer": producer,
                "version": 1,
            }
            for image_id, result in results.items()
            for b in result.boxes
        ]
        insert_rows(session, DetectedObject, rows)
        return {i: _details(r) for i, r in results.items()}


def _details(result: DetectionResult) -> dict[str, Any]:
    dropped = Counter(d.reason for d in result.dropped)
    return {"kept": len(result.boxes), "dropped": dict(sorted(dropped.items()))}
