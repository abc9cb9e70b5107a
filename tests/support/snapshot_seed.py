"""A store to snapshot: COCO boxes with captions related by the real pipeline (no depth),
generated samples whose text is their prompt, and a benchmark prompt equal to one caption."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from esplora.db.engine import Store
from esplora.db.enums import Origin, PromptKind, SourceKind, Stage, StageStatus
from esplora.db.images import Image, ImageStage, Sample, Source
from esplora.db.runs import EvaluationRun
from esplora.db.synthetic import Generation, SpatialPrompt, Validation
from esplora.services.ingest import ingest
from esplora.services.pipeline import StageContext, run_inline
from esplora.settings import Settings
from support.datasets import CocoImage, jpeg, write_coco

BENCHMARK_TEXT = "a cat left of a dog"

LAYOUTS: list[tuple[tuple[str, list[float]], tuple[str, list[float]], str]] = [
    (("cat", [4.0, 20.0, 30.0, 30.0]), ("dog", [60.0, 22.0, 30.0, 28.0]), BENCHMARK_TEXT),
    (("car", [2.0, 60.0, 30.0, 15.0]), ("tree", [50.0, 2.0, 30.0, 30.0]), "a car below a tree"),
    (("bench", [5.0, 40.0, 25.0, 20.0]), ("person", [60.0, 10.0, 30.0, 60.0]), "a bench"),
    (("dog", [2.0, 30.0, 25.0, 25.0]), ("cat", [60.0, 30.0, 25.0, 25.0]), "a dog and a cat"),
]


def coco_images(count: int) -> list[CocoImage]:
    """``count`` images cycling through :data:`LAYOUTS` (each a distinct picture)."""
    out = []
    for index in range(count):
        first, second, caption = LAYOUTS[index % len(LAYOUTS)]
        out.append(
            CocoImage(
                index + 1,
                jpeg(100 + index, (96, 80)),
                [first, second],
                captions=[caption, f"{caption}, photo {index}"],
            )
        )
    return out


def seed_snapshot_store(
    store: Store, settings: Settings, workdir: Path, images: Sequence[CocoImage]
) -> None:
    """Ingest ``images``, relate them, add one generated sample and a benchmark prompt."""
    ingest(store, settings, write_coco(workdir / "coco", images), source_format="coco")
    with store.unit_of_work() as session:
        for row in session.scalars(select(ImageStage).where(ImageStage.stage == Stage.DEPTH)):
            row.status = StageStatus.SKIPPED
    run_inline(StageContext(store, settings.model_copy(update={"pair_filter": None})))
    with store.unit_of_work() as session:
        _add_generated(session)
        session.add(SpatialPrompt(text=BENCHMARK_TEXT, kind=PromptKind.SIMPLE, benchmark="urban"))


def _add_generated(session: Session) -> None:
    """Three generated samples on the first images: one re-validated strictly (trains), one
    that failed validation and one made for an evaluation (neither trains)."""
    generated = Source(name="generated", kind=SourceKind.GENERATED)
    evaluation = EvaluationRun(name="eval", benchmark="urban", generator="g", rule="esplora")
    session.add_all([generated, evaluation])
    session.flush()
    images = session.scalars(select(Image).order_by(Image.sha256).limit(3)).all()
    assert all(image.origin is Origin.NATURAL for image in images)
    cases = [("a prompt text for the first image", True, None), ("failed", False, None)]
    cases.append(("made for an evaluation", True, evaluation.id))
    for index, (image, (text, strict, evaluation_id)) in enumerate(zip(images, cases, strict=True)):
        prompt = SpatialPrompt(text=text, kind=PromptKind.SIMPLE)
        session.add(prompt)
        session.flush()
        generation = Generation(
            prompt_id=prompt.id, generator="g", prompt_used=text, seed=index, steps=1,
            guidance=1.0, width=96, height=80, image_id=image.id, evaluation_id=evaluation_id,
        )  # fmt: skip
        session.add(generation)
        session.flush()
        session.add(Validation(
            generation_id=generation.id, rule="esplora", tau=3.0, depth_gap=0.1, producer="v",
            strict=strict, soft=strict, fraction_strict=float(strict),
            fraction_soft=float(strict), per_relation=[],
        ))  # fmt: skip
        session.add(
            Sample(
                image_id=image.id,
                source_id=generated.id,
                source_key=f"generation:{generation.id}",
                caption=text,
                meta={"generation_id": generation.id},
            )
        )
