"""Generating images from stored spatial prompts, each stored as a synthetic image that the
pipeline then detects, measures and validates against its prompt like any other image.

A generated image gets a sample whose caption is the prompt (so the extract stage queries the
detector for the prompt's objects) and a pending row for every stage including ``validate``.
Generations are keyed by (prompt, generator, adapter, scale, TORE mode, seed): asking again for
what exists generates nothing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from esplora.backends.base import GenerationRequest
from esplora.core import tore as tore_core
from esplora.db.engine import Store
from esplora.db.enums import Origin, SourceKind, Stage, StageStatus
from esplora.db.images import Image, ImageStage, Sample, Source
from esplora.db.synthetic import Generation, SpatialPrompt
from esplora.settings import Settings
from esplora.sources.images import sha256_hex, store_original

SOURCE = "generated"


@dataclass(frozen=True, slots=True)
class GenerationPlan:
    """What to generate: prompts × images per prompt, with one generator configuration."""

    prompt_ids: tuple[int, ...]
    images_per_prompt: int = 1
    seed: int = 0
    steps: int = 4
    guidance: float = 3.5
    width: int = 256
    height: int = 256
    tore: str = "off"  # off | static | adaptive
    weak: frozenset[str] = field(default_factory=lambda: frozenset(tore_core.DEFAULT_WEAK))


@dataclass(frozen=True, slots=True)
class Job:
    prompt_id: int
    text: str
    used: str
    seed: int


def plan_jobs(session: Session, plan: GenerationPlan, key: dict[str, Any]) -> list[Job]:
    """The (prompt, seed) pairs of ``plan`` not generated yet with this configuration."""
    texts = dict(
        session.execute(
            select(SpatialPrompt.id, SpatialPrompt.text).where(
                SpatialPrompt.id.in_(plan.prompt_ids)
            )
        ).all()
    )
    done = set(
        session.execute(
            select(Generation.prompt_id, Generation.seed)
            .filter_by(**key)
            .where(Generation.prompt_id.in_(plan.prompt_ids))
        ).all()
    )
    jobs = []
    for prompt_id in plan.prompt_ids:
        for k in range(plan.images_per_prompt):
            seed = plan.seed + k
            if prompt_id in texts and (prompt_id, seed) not in done:
                used = texts[prompt_id]
                if plan.tore != "off":
                    used = tore_core.rewrite(used, weak=plan.weak)
                jobs.append(Job(prompt_id, texts[prompt_id], used, seed))
    return jobs


def generation_key(
    generator: Any, plan: GenerationPlan, adapter: str, scale: float
) -> dict[str, Any]:
    """The identity of a generator configuration, as stored on each generation."""
    return {
        "generator": str(generator.producer),
        "adapter": adapter,
        "adapter_scale": scale,
        "tore": plan.tore,
    }


def generate(
    store: Store,
    settings: Settings,
    generator: Any,
    plan: GenerationPlan,
    *,
    adapter: str = "",
    adapter_scale: float = 1.0,
    batch_size: int = 4,
) -> list[int]:
    """Generate what ``plan`` asks for that does not exist yet; return the new generation ids."""
    key = generation_key(generator, plan, adapter, adapter_scale)
    with store.reader() as session:
        jobs = plan_jobs(session, plan, key)
    created: list[int] = []
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start : start + batch_size]
        requests = [
            GenerationRequest(j.used, j.seed, plan.steps, plan.guidance, plan.width, plan.height)
            for j in batch
        ]
        images = generator.generate(requests)
        with store.unit_of_work() as session:
            source_id = _source(session)
            for job, image in zip(batch, images, strict=True):
                created.append(_store_one(session, settings, source_id, job, image, plan, key))
    return created


def _source(session: Session) -> int:
    source = session.scalars(select(Source).where(Source.name == SOURCE)).one_or_none()
    if source is None:
        source = Source(name=SOURCE, kind=SourceKind.GENERATED, meta={})
        session.add(source)
        session.flush()
    return source.id


def _store_one(
    session: Session,
    settings: Settings,
    source_id: int,
    job: Job,
    picture: Any,
    plan: GenerationPlan,
    key: dict[str, Any],
) -> int:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    data = buffer.getvalue()
    sha = sha256_hex(data)
    image = session.scalars(select(Image).where(Image.sha256 == sha)).one_or_none()
    if image is None:
        uri = store_original(data, sha, "png", settings.artefacts_dir)
        image = Image(
            sha256=sha,
            uri=uri,
            width=picture.width,
            height=picture.height,
            origin=Origin.SYNTHETIC,
            format="PNG",
            byte_size=len(data),
        )
        session.add(image)
        session.flush()
        session.add_all(
            ImageStage(image_id=image.id, stage=s, status=StageStatus.PENDING, attempts=0)
            for s in Stage
        )
    else:  # the same picture again (e.g. TORE left the prompt unchanged): validate it anew
        stage = session.get(ImageStage, (image.id, Stage.VALIDATE))
        if stage is not None and stage.status is not StageStatus.PENDING:
            stage.status = StageStatus.PENDING
    generation = Generation(
        prompt_id=job.prompt_id,
        prompt_used=job.used,
        seed=job.seed,
        steps=plan.steps,
        guidance=plan.guidance,
        width=plan.width,
        height=plan.height,
        image_id=image.id,
        **key,
    )
    session.add(generation)
    session.flush()
    session.add(
        Sample(
            image_id=image.id,
            source_id=source_id,
            source_key=f"generation:{generation.id}",
            caption=job.text,
            meta={"generation_id": generation.id},
        )
    )
    return generation.id


def prompt_ids(
    session: Session,
    *,
    kind: str | None = None,
    benchmark: str | None = None,
    origin: str | None = None,
    limit: int | None = None,
) -> list[int]:
    """Stored prompts matching a simple filter, oldest first."""
    query = select(SpatialPrompt.id).order_by(SpatialPrompt.id)
    for column, value in (("kind", kind), ("benchmark", benchmark), ("origin", origin)):
        if value is not None:
            query = query.where(getattr(SpatialPrompt, column) == value)
    return list(session.scalars(query.limit(limit)))


def retention(session: Session) -> list[dict[str, Any]]:
    """Per prompted relation: generated images validated, and the share kept (strict pass)."""
    from esplora.db.synthetic import Validation

    rows = session.execute(select(Validation.per_relation, Validation.strict)).all()
    table: dict[str, list[int]] = {}
    for per_relation, strict in rows:
        for relation in {r["relation"] for r in per_relation}:
            kept = table.setdefault(relation, [0, 0])
            kept[0] += 1
            kept[1] += int(strict)
    return [
        {"relation": r, "validated": n, "kept": k, "retention": k / n if n else 0.0}
        for r, (n, k) in sorted(table.items())
    ]


def generation_progress(
    session: Session, plan: GenerationPlan, adapter: str, scale: float
) -> tuple[int, int, int]:
    """(generated, images, images validated) for a plan's (prompt, seed) pairs with this
    adapter, scale and TORE mode — what a follower of queued generation polls. Two seeds can
    give the same picture (one image), and a validate stage that failed counts as finished
    (its error is on the stage row)."""
    seeds = [plan.seed + k for k in range(plan.images_per_prompt)]
    mine = (
        Generation.prompt_id.in_(plan.prompt_ids),
        Generation.seed.in_(seeds),
        Generation.adapter == adapter,
        Generation.adapter_scale == scale,
        Generation.tore == plan.tore,
    )
    pairs = select(Generation.prompt_id, Generation.seed).where(*mine).distinct().subquery()
    generated = session.scalar(select(func.count()).select_from(pairs))
    images = session.scalar(select(func.count(func.distinct(Generation.image_id))).where(*mine))
    finished = session.scalar(
        select(func.count(func.distinct(Generation.image_id)))
        .join(ImageStage, ImageStage.image_id == Generation.image_id)
        .where(
            *mine,
            ImageStage.stage == Stage.VALIDATE,
            ImageStage.status.in_((StageStatus.DONE, StageStatus.FAILED, StageStatus.SKIPPED)),
        )
    )
    return int(generated or 0), int(images or 0), int(finished or 0)


__all__ = ["GenerationPlan", "generate", "generation_progress", "prompt_ids", "retention"]


def image_ids_of(store: Store, generation_ids: list[int]) -> list[int]:
    """The (deduplicated) images of these generations, for the stages that follow."""
    with store.reader() as session:
        ids = session.scalars(
            select(Generation.image_id).where(Generation.id.in_(generation_ids)).distinct()
        )
        return sorted(i for i in ids if i is not None)


def parse_filter(text: str) -> dict[str, Any]:
    """``"benchmark=urban,kind=simple,limit=50"`` (or ``all``) → :func:`prompt_ids` arguments."""
    from esplora.errors import EsploraError

    allowed = {"kind", "benchmark", "origin", "limit"}
    out: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        if item == "all":
            continue
        key, sep, value = item.partition("=")
        if not sep or key not in allowed:
            raise EsploraError(f"prompt filter {item!r}: use key=value with keys {sorted(allowed)}")
        out[key] = int(value) if key == "limit" else value
    return out
