"""The validate stage (the paper's double validation): a generated image's detections and depth
judged against the prompt it was generated from, by SPATIAL.md's image-level verdicts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from esplora.core.prompts import prompt_spec
from esplora.core.verdicts import Detection, ImageVerdict, image_verdict
from esplora.core.vocabulary import load_vocabulary
from esplora.db.enums import Stage
from esplora.db.synthetic import Generation, SpatialPrompt, Validation
from esplora.db.writes import insert_rows
from esplora.services.pipeline.context import StageContext
from esplora.services.pipeline.objects import objects_for
from esplora.services.pipeline.relate import RULE, medians


def validator_name(ctx: StageContext) -> str:
    s = ctx.settings
    return f"{RULE}@tau={s.tau:g},gap={s.depth_gap:.4g}|{s.detector}|{s.depth_model}"


def verdict_row(generation_id: int, verdict: ImageVerdict, base: dict[str, Any]) -> dict[str, Any]:
    """A validations row: image-level verdicts and one JSON entry per prompted relation."""
    return {
        **base,
        "generation_id": generation_id,
        "strict": verdict.strict,
        "soft": verdict.soft,
        "fraction_strict": verdict.strict_fraction,
        "fraction_soft": verdict.soft_fraction,
        "per_relation": [
            {
                "relation": r.relation.value,
                "subject": r.subject,
                "object": r.object,
                "strict": r.strict,
                "soft": r.soft,
                "pairs": r.pairs,
                "margin": r.margin,
            }
            for r in verdict.relations
        ],
        "counts": [asdict(c) for c in verdict.counts],
    }


class ValidateRunner:
    stage = Stage.VALIDATE

    def producer(self, ctx: StageContext) -> str:
        return validator_name(ctx)

    def load(self, ctx: StageContext, image_ids: Sequence[int]) -> dict[int, Any]:
        with ctx.store.reader() as session:
            prompts = session.execute(
                select(Generation.image_id, Generation.id, SpatialPrompt.text)
                .join(SpatialPrompt, SpatialPrompt.id == Generation.prompt_id)
                .where(Generation.image_id.in_(image_ids))
            ).all()
            objects = objects_for(session, image_ids)
            depth = medians(session, image_ids)
        # One image can answer several generations (a prompt TORE left unchanged draws the same
        # image): each is validated against its own prompt.
        out: dict[int, Any] = {}
        for image_id, generation_id, text in prompts:
            if image_id is None:
                continue
            detections = [
                Detection(o.label, o.box, o.score, depth.get(image_id, {}).get(o.id))
                for o in objects[image_id]
            ]
            out.setdefault(image_id, []).append((generation_id, text, detections))
        return out

    def compute(self, ctx: StageContext, inputs: Mapping[int, Any]) -> dict[int, Any]:
        s = ctx.settings
        out: dict[int, Any] = {}
        lexicon = load_vocabulary().lexicon
        for image_id, generations in inputs.items():
            try:
                out[image_id] = [
                    (
                        generation_id,
                        image_verdict(
                            prompt_spec(text, lexicon=lexicon),
                            detections,
                            tau=s.tau,
                            depth_gap=s.depth_gap,
                        ),
                    )
                    for generation_id, text, detections in generations
                ]
            except ValueError as error:  # e.g. a depth relation without depth: fails this image
                out[image_id] = error
        return out

    def write(
        self, session: Session, ctx: StageContext, results: Mapping[int, Any]
    ) -> dict[int, dict[str, Any]]:
        s, producer = ctx.settings, self.producer(ctx)
        base = {"rule": RULE, "tau": s.tau, "depth_gap": s.depth_gap, "producer": producer}
        verdicts = [pair for pairs in results.values() for pair in pairs]
        ids = [generation_id for generation_id, _ in verdicts]
        session.execute(
            delete(Validation).where(
                Validation.generation_id.in_(ids), Validation.producer == producer
            )
        )
        rows = [verdict_row(g, v, base) for g, v in verdicts]
        insert_rows(
            session, Validation, [{k: v for k, v in r.items() if k != "counts"} for r in rows]
        )
        return {
            i: {"generations": len(pairs), "strict": sum(v.strict for _, v in pairs)}
            for i, pairs in results.items()
        }
