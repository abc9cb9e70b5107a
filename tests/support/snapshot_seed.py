"""A store to snapshot: COCO boxes with captions related by the real pipeline (no depth), a
generated image whose text is its prompt, and a benchmark prompt equal to one caption."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select

from esplora.db.engine import Store
from esplora.db.enums import Origin, PromptKind, SourceKind, Stage, StageStatus
from esplora.db.images import Image, ImageStage, Sample, Source
from esplora.db.synthetic import SpatialPrompt
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
        generated = Source(name="generated", kind=SourceKind.GENERATED)
        session.add(generated)
        session.flush()
        first = session.scalars(select(Image).order_by(Image.sha256)).first()
        assert first is not None and first.origin is Origin.NATURAL
        session.add(
            Sample(
                image_id=first.id,
                source_id=generated.id,
                source_key="generation:1",
                caption="a prompt text for the first image",
            )
        )
        session.add(SpatialPrompt(text=BENCHMARK_TEXT, kind=PromptKind.SIMPLE, benchmark="urban"))
