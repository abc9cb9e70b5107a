"""A small seeded store for the review UI tests: COCO-style annotated boxes, captions (one of
them hostile: ``<script>`` and markdown that must stay inert), relations computed by the real
pipeline, a depth map for one image and a missing image file for another."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import select

from esplora.db.engine import Store
from esplora.db.enums import Stage, StageStatus
from esplora.db.images import Image, ImageStage
from esplora.services.ingest import ingest
from esplora.services.pipeline import StageContext, run_inline
from esplora.services.pipeline.depth import encode_depth_png
from esplora.settings import Settings
from support.datasets import CocoImage, jpeg, write_coco

HOSTILE_CAPTION = "<script>alert(1)</script> **bold** a cat left of a dog"

IMAGES = [
    CocoImage(
        1,
        jpeg(1, (96, 80)),
        [("cat", [4.0, 20.0, 30.0, 30.0]), ("dog", [60.0, 22.0, 30.0, 28.0])],
        captions=[HOSTILE_CAPTION],
    ),
    CocoImage(
        2,
        jpeg(2, (220, 130)),
        [("car", [2.0, 100.0, 30.0, 20.0]), ("tree", [110.0, 10.0, 30.0, 60.0])],
        captions=["a car below a tree"],
    ),
    CocoImage(
        3,
        jpeg(3, (120, 90)),
        [("bench", [5.0, 40.0, 40.0, 20.0]), ("person", [70.0, 10.0, 30.0, 70.0])],
        captions=["a bench right of a person"],
    ),
]


def seed_store(store: Store, settings: Settings, workdir: Path) -> None:
    """Ingest :data:`IMAGES`, relate them (no depth stage), give image 1 a depth map and remove
    image 3's file (the UI must show a placeholder)."""
    ingest(store, settings, write_coco(workdir / "coco", IMAGES), source_format="coco")
    with store.unit_of_work() as session:
        for row in session.scalars(select(ImageStage).where(ImageStage.stage == Stage.DEPTH)):
            row.status = StageStatus.SKIPPED
    run_inline(StageContext(store, settings.model_copy(update={"pair_filter": None})))
    depth = np.tile(np.linspace(0.0, 1.0, 96, dtype=np.float32), (80, 1))
    depth_path = settings.artefacts_dir / "depth" / "seed-1.png"
    depth_path.parent.mkdir(parents=True, exist_ok=True)
    depth_path.write_bytes(encode_depth_png(depth))
    with store.unit_of_work() as session:
        images = {i.id: i for i in session.scalars(select(Image))}
        first, third = images[min(images)], images[max(images)]
        first.depth_map_uri = "depth/seed-1.png"
        uri = third.uri
    from esplora.sources.images import resolve_uri

    resolve_uri(uri, settings.artefacts_dir).unlink(missing_ok=True)
