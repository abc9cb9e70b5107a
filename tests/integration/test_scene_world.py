"""The scene world end to end: a corpus of clean scenes through ingest and the data engine on
the pixel backends, compared with the renderer's exact ground truth; and re-validation of the
scene generator's images against their prompts."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from esplora.backends.base import ExtractedObject, GenerationRequest
from esplora.backends.registry import BackendOptions
from esplora.core.depth import box_depth_stats, normalise_disparity
from esplora.core.prompts import prompt_spec
from esplora.core.verdicts import Detection, image_verdict
from esplora.core.vocabulary import load_vocabulary
from esplora.db.detections import DetectedObject, ObjectDepth
from esplora.db.engine import Store
from esplora.db.images import Sample
from esplora.db.relations import GeometricRelation
from esplora.scenes.backends import SceneDepth, SceneDetector, SceneGenerator
from esplora.scenes.corpus import read_ground_truth, write_corpus
from esplora.services.ingest import ingest
from esplora.services.pipeline import DATA_ENGINE, StageContext, run_inline
from esplora.settings import Settings

N_IMAGES = 60
Key = tuple[str, int, str, int]  # (file, subject index, relation, object index)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("scenes"), N_IMAGES, seed=2025)


def _gt_index(records: list[dict[str, Any]]) -> dict[tuple[str, str, tuple[float, ...]], int]:
    """(file, label, visible box) → the object's index in its ground-truth record."""
    return {
        (r["file"], o["label"], tuple(float(v) for v in o["box"])): o["index"]
        for r in records
        for o in r["objects"]
    }


def _stored(store: Store) -> tuple[list[Any], list[Any], dict[int, str]]:
    with store.reader() as session:
        objects = session.execute(
            select(DetectedObject, ObjectDepth.median).join(
                ObjectDepth, ObjectDepth.object_id == DetectedObject.id
            )
        ).all()
        relations = session.scalars(select(GeometricRelation)).all()
        files = {i: key for i, key in session.execute(select(Sample.image_id, Sample.source_key))}
    return list(objects), list(relations), files


def _strict_rows(store: Store, records: list[dict[str, Any]]) -> tuple[set[Key], int]:
    """The stored strict relations in ground-truth indices, and how many rows matched nothing."""
    objects, relations, files = _stored(store)
    index = _gt_index(records)
    truth_depth = {(r["file"], o["index"]): o["depth"] for r in records for o in r["objects"]}
    by_id: dict[int, tuple[str, int]] = {}
    for obj, median in objects:
        file = files[obj.image_id]
        key = index.get((file, obj.label, (obj.x0, obj.y0, obj.x1, obj.y1)))
        if key is not None:
            by_id[obj.id] = (file, key)
            assert median == truth_depth[(file, key)]  # the depth reader gives exact depths
    assert len(by_id) == len(index)  # every visible object detected, with its exact box
    rows, unmatched = set(), 0
    for row in relations:
        if not row.strict:
            continue
        subject, obj = by_id.get(row.subject_id), by_id.get(row.object_id)
        if subject is None or obj is None:
            unmatched += 1
            continue
        rows.add((subject[0], subject[1], row.relation, obj[1]))
    return rows, unmatched


def test_pipeline_on_clean_scenes_recovers_the_ground_truth(
    store: Store, settings: Settings, corpus: Path
) -> None:
    scene_settings = settings.model_copy(update={"detector": "scenes", "depth_model": "scenes"})
    report = ingest(store, scene_settings, corpus, source_format="folder")
    assert report.imported_images == N_IMAGES and not report.excluded
    run = run_inline(StageContext(store, scene_settings))
    assert run.done == {s.value: N_IMAGES for s in DATA_ENGINE}, run.failed
    records = list(read_ground_truth(corpus))
    truth = {
        (r["file"], t["subject"], t["relation"], t["object"])
        for r in records
        for t in r["relations"]
    }
    stored, unmatched = _strict_rows(store, records)
    hits = len(stored & truth)
    precision = hits / (len(stored) + unmatched)
    recall = hits / len(truth)
    print(
        f"\nscene world, {N_IMAGES} clean scenes: {len(truth)} true strict relations, "
        f"{len(stored) + unmatched} stored; precision {precision:.4f}, recall {recall:.4f}"
    )
    assert precision >= 0.99 and recall >= 0.99


PROMPTS = (
    "a car to the right of a tree",
    "a dog below a bench",
    "two cars to the left of a street lamp",
    "a person in front of a building, and the building to the right of a bus",
    "a cat behind a trash can",
    "a bird above a traffic light and a bicycle to the left of a fire hydrant",
)


def _png_roundtrip(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _detections(image: Image.Image, spec: Any) -> list[Detection]:
    """The scene detector and depth reader on one image, as the validate stage combines them."""
    query = [ExtractedObject(o.label, o.mention) for o in spec.objects]
    result = SceneDetector().detect([image], [query])[0]
    if not result.boxes:
        return []
    depth = normalise_disparity(SceneDepth().estimate([image])[0])
    stats = box_depth_stats(depth, np.array([b.box for b in result.boxes]))
    return [
        Detection(b.label, b.box, b.score, s.median)
        for b, s in zip(result.boxes, stats, strict=True)
    ]


def test_revalidation_rejects_exactly_the_images_rendered_wrong() -> None:
    rates = (("right_of", 0.6), ("below", 0.5), ("behind", 0.5), ("left_of", 0.2), ("above", 0.2))
    generator = SceneGenerator(BackendOptions(error_rates=rates))
    lexicon = load_vocabulary().lexicon
    rejected = expected = 0
    for prompt in PROMPTS:
        spec = prompt_spec(prompt, lexicon=lexicon)
        for seed in range(6):
            request = GenerationRequest(prompt, seed, width=256, height=192)
            plan = generator.plan(request)
            assert plan.rendered
            image = _png_roundtrip(generator.generate([request])[0])
            verdict = image_verdict(spec, _detections(image, spec))
            assert verdict.strict == (not any(plan.wrong)), (prompt, seed, plan.wrong)
            for rel, flipped in zip(verdict.relations, plan.wrong, strict=True):
                assert rel.strict == (not flipped) and rel.soft == (not flipped)
            rejected += not verdict.strict
            expected += any(plan.wrong)
    print(
        f"\nre-validation: {rejected} of {len(PROMPTS) * 6} generated images rejected, as rendered"
    )
    assert rejected == expected > 0
