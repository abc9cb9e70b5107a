"""The extract stage: the objects an image's captions name (the detector's query) and the
relations its captions claim."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from esplora.backends.base import ExtractedObject, ExtractionInput
from esplora.core.grammar import parse
from esplora.core.vocabulary import load_vocabulary
from esplora.db.enums import Agreement, Stage
from esplora.db.images import Extraction, Image, Sample
from esplora.db.relations import CaptionClaim
from esplora.db.writes import insert_rows
from esplora.services.pipeline.context import StageContext
from esplora.services.pipeline.images import load_images


@dataclass(frozen=True, slots=True)
class ExtractInput:
    samples: tuple[tuple[int, str], ...]  # (sample id, caption) of non-excluded samples
    item: ExtractionInput


@dataclass(frozen=True, slots=True)
class ExtractResult:
    objects: tuple[ExtractedObject, ...]
    sample_ids: tuple[int, ...]
    claims: tuple[dict[str, Any], ...]


def caption_claims(sample_id: int, caption: str) -> list[dict[str, Any]]:
    """One claim row per unambiguous clause and pair of its mentions, in the caption's direction."""
    rows: list[dict[str, Any]] = []
    # The vocabulary's lexicon, so that "street lamp" is the label the detector reports.
    for index, clause in enumerate(parse(caption, lexicon=load_vocabulary().lexicon).clauses):
        if clause.ambiguous is not None:
            continue
        pairs = {
            (s.label, o.label): (s.text, o.text)
            for s in clause.subject_mentions
            for o in clause.object_mentions
        }
        for (subject_label, object_label), (subject_text, object_text) in pairs.items():
            rows.append(
                {
                    "sample_id": sample_id,
                    "clause_index": index,
                    "clause_text": clause.text,
                    "relation": clause.relation.value,
                    "phrase": clause.phrase.text,
                    "subject_text": subject_text,
                    "object_text": object_text,
                    "subject_label": subject_label,
                    "object_label": object_label,
                    "agreement": Agreement.UNRESOLVED.value,
                }
            )
    return rows


class ExtractRunner:
    stage = Stage.EXTRACT

    def producer(self, ctx: StageContext) -> str:
        return str(ctx.extractor.producer)

    def load(self, ctx: StageContext, image_ids: Sequence[int]) -> dict[int, Any]:
        with ctx.store.reader() as session:
            rows = session.execute(
                select(Sample.image_id, Sample.id, Sample.caption)
                .where(Sample.image_id.in_(image_ids), Sample.excluded.is_(False))
                .order_by(Sample.id)
            ).all()
            uris = {
                k: v
                for k, v in session.execute(
                    select(Image.id, Image.uri).where(Image.id.in_(image_ids))
                )
            }
        captions: dict[int, list[tuple[int, str]]] = {i: [] for i in image_ids}
        for image_id, sample_id, caption in rows:
            captions[image_id].append((sample_id, caption))
        images = load_images(ctx, uris) if ctx.extractor.needs_image else {}
        out: dict[int, Any] = {}
        for image_id, samples in captions.items():
            image = images.get(image_id)
            if isinstance(image, BaseException):
                out[image_id] = image
                continue
            item = ExtractionInput(tuple(c for _, c in samples), image)
            out[image_id] = ExtractInput(tuple(samples), item)
        return out

    def compute(self, ctx: StageContext, inputs: Mapping[int, Any]) -> dict[int, Any]:
        ids = list(inputs)
        objects = ctx.extractor.extract([inputs[i].item for i in ids])
        return {
            image_id: ExtractResult(
                tuple(found),
                tuple(sid for sid, _ in inputs[image_id].samples),
                tuple(
                    claim
                    for sid, caption in inputs[image_id].samples
                    for claim in caption_claims(sid, caption)
                ),
            )
            for image_id, found in zip(ids, objects, strict=True)
        }

    def write(
        self, session: Session, ctx: StageContext, results: Mapping[int, Any]
    ) -> dict[int, dict[str, Any]]:
        producer = self.producer(ctx)
        ids = list(results)
        # Idempotent per (image, stage, producer): a rerun replaces, never duplicates.
        session.execute(
            delete(Extraction).where(Extraction.image_id.in_(ids), Extraction.producer == producer)
        )
        sample_ids = [sid for r in results.values() for sid in r.sample_ids]
        session.execute(delete(CaptionClaim).where(CaptionClaim.sample_id.in_(sample_ids)))
        insert_rows(
            session,
            Extraction,
            [
                {
                    "image_id": i,
                    "producer": producer,
                    "objects": [{"label": o.label, "phrase": o.phrase} for o in r.objects],
                }
                for i, r in results.items()
            ],
        )
        insert_rows(session, CaptionClaim, [c for r in results.values() for c in r.claims])
        return {i: {"objects": len(r.objects), "claims": len(r.claims)} for i, r in results.items()}
