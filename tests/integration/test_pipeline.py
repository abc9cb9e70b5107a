"""The data engine in one process: ingest → extract → detect → depth → relate, on the tiny
models (real architectures, random weights) and on annotation boxes with known geometry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from esplora.db.detections import DetectedObject, ObjectDepth
from esplora.db.engine import Store
from esplora.db.enums import Agreement, Stage, StageStatus
from esplora.db.images import Extraction, Image, ImageStage
from esplora.db.models import metadata
from esplora.db.relations import CaptionClaim, GeometricRelation
from esplora.services import stages
from esplora.services.ingest import ingest
from esplora.services.pipeline import DATA_ENGINE, StageContext, run_inline
from esplora.services.pipeline.depth import decode_depth_png
from esplora.settings import Settings
from support.datasets import CocoImage, jpeg, write_coco, write_folder

CAPTIONS = {
    "a.jpg": "a cat to the left of a dog, on a sunny lawn",
    "b.jpg": "a red car parked behind a bicycle and a person beside a tree",
    "c.jpg": "two people under an umbrella next to a bench",
    "d.jpg": "a close-up",  # names fewer than two objects: excluded by the caption filter
}


@pytest.fixture
def tiny_settings(settings: Settings, tiny_models: Path, store_url: str) -> Settings:
    # Random weights give low scores: thresholds at 0 so boxes (and pairs) exist to store.
    return settings.model_copy(
        update={
            "profile": "tiny",
            "models_dir": tiny_models,
            "database_url": store_url,
            "box_threshold": 0.0,
            "text_threshold": 0.0,
            "max_objects": 4,
            "batch_size": 2,
        }
    )


def _ingest_folder(store: Store, settings: Settings, root: Path) -> None:
    files = {
        name: (jpeg(i, (96 + 16 * i, 80)), caption)
        for i, (name, caption) in enumerate(CAPTIONS.items())
    }
    ingest(store, settings, write_folder(root, files), source_format="folder")


def _snapshot(store: Store) -> dict[str, tuple[int, int]]:
    """Row count and highest change number of every table."""
    out = {}
    with store.reader() as session:
        for table in metadata.sorted_tables:
            count = session.scalar(select(func.count()).select_from(table)) or 0
            seq = (
                session.scalar(select(func.max(table.c.change_seq)))
                if "change_seq" in table.c
                else 0
            )
            out[table.name] = (count, seq or 0)
    return out


def test_every_stage_runs_once_per_image_and_a_rerun_writes_nothing(
    store: Store, tiny_settings: Settings, tmp_path: Path
) -> None:
    _ingest_folder(store, tiny_settings, tmp_path / "data")
    report = run_inline(StageContext(store, tiny_settings))
    assert report.done == {s.value: 3 for s in DATA_ENGINE}, report.failed
    with store.reader() as session:
        status = session.execute(
            select(ImageStage.stage, ImageStage.status, func.count()).group_by(
                ImageStage.stage, ImageStage.status
            )
        ).all()
        assert {(s.value, st.value) for s, st, _ in status if s in DATA_ENGINE} == {
            (s.value, v) for s in DATA_ENGINE for v in ("done", "skipped")
        }
        assert session.scalar(select(func.count()).select_from(Extraction)) == 3
        objects = session.scalars(select(DetectedObject)).all()
        images = {i.id: i for i in session.scalars(select(Image))}
        depths = {d.object_id: d for d in session.scalars(select(ObjectDepth))}
        relations = session.scalars(select(GeometricRelation)).all()
    assert objects and all(o.producer.startswith("tiny/") for o in objects)
    for o in objects:  # clipped to the image, at most max_objects per image
        image = images[o.image_id]
        assert 0 <= o.x0 < o.x1 <= image.width and 0 <= o.y0 < o.y1 <= image.height
        assert 0 <= depths[o.id].p10 <= depths[o.id].median <= depths[o.id].p90 <= 1
    per_image = {i: sum(o.image_id == i for o in objects) for i in images}
    assert max(per_image.values()) <= 4
    _assert_canonical(relations, {o.id: o for o in objects}, depths)
    for image in images.values():
        if image.depth_map_uri:
            depth_map = decode_depth_png(tiny_settings.artefacts_dir / image.depth_map_uri)
            assert depth_map.shape == (image.height, image.width)
            assert float(depth_map.min()) == 0.0 and float(depth_map.max()) == pytest.approx(1.0)
    before = _snapshot(store)
    again = run_inline(StageContext(store, tiny_settings))
    assert sum(again.done.values()) == 0
    assert _snapshot(store) == before


def _assert_canonical(relations: list[GeometricRelation], objects: dict, depths: dict) -> None:  # type: ignore[type-arg]
    seen = set()
    for r in relations:
        s, o = objects[r.subject_id], objects[r.object_id]
        key = (frozenset((r.subject_id, r.object_id)), r.axis)
        assert key not in seen  # one row per pair and axis
        seen.add(key)
        if r.axis == "horizontal":
            assert r.relation == "left_of" and (s.x0 + s.x1) / 2 < (o.x0 + o.x1) / 2
        elif r.axis == "vertical":
            assert r.relation == "above" and (s.y0 + s.y1) / 2 < (o.y0 + o.y1) / 2
        else:
            assert r.relation == "in_front_of" and depths[s.id].median > depths[o.id].median
        assert r.soft and r.strict == (r.margin >= 0)


def test_claims_are_confirmed_or_contradicted_by_annotation_geometry(
    store: Store, tiny_settings: Settings, tmp_path: Path
) -> None:
    # Annotation boxes: the cat clearly left of the dog; the detector does not run on COCO.
    boxes = [("cat", [4.0, 20.0, 30.0, 30.0]), ("dog", [60.0, 22.0, 30.0, 28.0])]
    captions = ["a cat to the left of a dog", "a cat to the right of a dog", "a cat near a dog"]
    root = write_coco(tmp_path / "coco", [CocoImage(1, jpeg(7, (96, 80)), boxes, captions)])
    ingest(store, tiny_settings, root, source_format="coco")
    run_inline(StageContext(store, tiny_settings), [Stage.EXTRACT, Stage.DEPTH, Stage.RELATE])
    with store.reader() as session:
        claims = {c.clause_text: c for c in session.scalars(select(CaptionClaim))}
        rows = session.scalars(
            select(GeometricRelation).where(GeometricRelation.axis == "horizontal")
        ).all()
    assert claims["a cat to the left of a dog"].agreement is Agreement.CONFIRMED
    assert claims["a cat to the right of a dog"].agreement is Agreement.CONTRADICTED
    assert claims["a cat near a dog"].agreement is Agreement.UNRESOLVED
    assert len(rows) == 1 and rows[0].strict and rows[0].margin > 0
    assert claims["a cat to the left of a dog"].geometric_relation_id == rows[0].id


def test_an_unreadable_image_fails_alone_with_its_reason_and_can_be_retried(
    store: Store, tiny_settings: Settings, tmp_path: Path
) -> None:
    _ingest_folder(store, tiny_settings, tmp_path / "data")
    with store.reader() as session:
        victim = session.scalars(select(Image).order_by(Image.id)).first()
    assert victim is not None
    (tiny_settings.artefacts_dir / victim.uri).unlink()
    report = run_inline(StageContext(store, tiny_settings))
    assert list(report.failed["detect"]) == [victim.id]
    assert "FileNotFoundError" in report.failed["detect"][victim.id]
    assert report.done["relate"] == 2
    with store.unit_of_work() as session:
        assert stages.retry_failed(session) == 1
    again = run_inline(StageContext(store, tiny_settings))
    with store.reader() as session:
        row = session.get(ImageStage, (victim.id, Stage.DETECT))
    assert row is not None and row.status is StageStatus.FAILED and row.attempts == 2
    assert again.done == {"detect": 0, "depth": 0, "relate": 0} or sum(again.done.values()) == 0


def test_a_dead_workers_claims_come_back_with_requeue_stale(
    store: Store, tiny_settings: Settings, tmp_path: Path
) -> None:
    _ingest_folder(store, tiny_settings, tmp_path / "data")
    with store.unit_of_work() as session:
        claimed = stages.claim(session, Stage.EXTRACT, limit=10, worker="dead:1")
    assert len(claimed) == 3
    assert sum(run_inline(StageContext(store, tiny_settings)).done.values()) == 0
    with store.unit_of_work() as session:
        assert stages.requeue_stale(session, older_than=__import__("datetime").timedelta(0)) == 3
    assert run_inline(StageContext(store, tiny_settings)).done["relate"] == 3


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_pipeline_cli_runs_inline_and_reports_status(
    tiny_settings: Settings, tmp_path: Path, store: Store
) -> None:
    _ingest_folder(store, tiny_settings, tmp_path / "data")
    env = {
        **os.environ,
        "ESPLORA_DATABASE_URL": tiny_settings.resolved_database_url,
        "HF_HUB_OFFLINE": "1",
    }
    esplora = str(Path(sys.executable).parent / "esplora")
    models = str(tiny_settings.models_dir)
    command = [esplora, "pipeline", "run", "--inline", "--profile", "tiny", "--models-dir", models]
    env_run = {**env, "ESPLORA_BOX_THRESHOLD": "0"}
    run = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env_run)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["done"] == {s.value: 3 for s in DATA_ENGINE}
    status = json.loads(
        subprocess.run(
            [esplora, "pipeline", "status", "--json"], capture_output=True, text=True, env=env
        ).stdout
    )
    assert status["stages"]["relate"]["done"] == 3 and status["failures"] == []
    bad = subprocess.run(
        [esplora, "pipeline", "run", "--inline", "--stages", "paint"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert (
        bad.returncode == 2
        and "unknown stage 'paint'" in bad.stderr
        and "Traceback" not in bad.stderr
    )


def test_the_compass_pair_filter_keeps_only_pairs_it_accepts(
    store: Store, tiny_settings: Settings, tmp_path: Path
) -> None:
    # CoMPaSS's SCOP filter needs boxes of at least 32×32 px covering 20 % of the image together.
    small = [("cat", [4.0, 20.0, 20.0, 20.0]), ("dog", [60.0, 22.0, 20.0, 20.0])]
    large = [("cat", [0.0, 10.0, 60.0, 60.0]), ("dog", [100.0, 12.0, 60.0, 60.0])]
    images = [CocoImage(1, jpeg(7, (96, 80)), small), CocoImage(2, jpeg(8, (200, 100)), large)]
    ingest(
        store,
        tiny_settings,
        write_coco(tmp_path / "coco", images, with_captions=False),
        source_format="coco",
    )
    config = tiny_settings.model_copy(update={"pair_filter": "compass-scop"})
    run_inline(StageContext(store, config), [Stage.EXTRACT, Stage.DEPTH, Stage.RELATE])
    with store.reader() as session:
        rows = session.scalars(select(GeometricRelation)).all()
    assert {r.image_id for r in rows} == {2}
    assert all(r.producer.endswith("+compass-scop") for r in rows)
