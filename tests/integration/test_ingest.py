"""Ingest end to end on a real SQLite file and a real PostgreSQL: every format, dedup,
near-duplicates, the filter's marks, every bad input recorded, and a second run that writes
nothing anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import esplora.db.models as models
from esplora.db.engine import Store
from esplora.db.enums import ProducerKind, SourceKind, Stage, StageStatus
from esplora.services.ingest import IngestOptions, IngestReport, ingest
from esplora.settings import Settings
from esplora.sources.images import resolve_uri
from support import datasets
from support.datasets import CocoImage, Pair, key_of

ESPLORA = str(Path(sys.executable).parent / "esplora")
TABLES = models.metadata.sorted_tables


def snapshot(store: Store) -> dict[str, tuple[int, Any]]:
    """Rows and the highest change number (or counter value) of every table."""
    state = {}
    with store.reader() as session:
        for table in TABLES:
            count = session.scalar(select(func.count()).select_from(table)) or 0
            marker = next((c for c in ("change_seq", "value") if c in table.c), None)
            top = session.scalar(select(func.max(table.c[marker]))) if marker else None
            state[table.name] = (count, top)
    return state


def files(settings: Settings) -> dict[str, int]:
    root = settings.artefacts_dir
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def rows(store: Store, model: Any, *where: Any) -> list[Any]:
    with store.reader() as session:
        return list(session.scalars(select(model).where(*where)))


def assert_second_run_writes_nothing(
    store: Store, settings: Settings, path: Path, fmt: str, first: IngestReport
) -> IngestReport:
    before, before_files = snapshot(store), files(settings)
    again = ingest(store, settings, path, source_format=fmt, source_name=first.source)
    assert snapshot(store) == before and files(settings) == before_files
    assert again.imported_images == again.imported_samples == again.new_failures == 0
    assert again.already_present == first.imported_samples + first.already_present
    assert again.failed == first.failed and again.not_downloaded == first.not_downloaded
    return again


# --- img2dataset ------------------------------------------------------------------------------


def laion_like(root: Path) -> Path:
    """Two webdataset shards with every case the ingest must tell apart."""
    near = datasets.photo(7, (256, 256))
    shard0 = [
        Pair(key_of(0, 0), "a cat left of a dog", datasets.jpeg(1), extra={"similarity": 0.3}),
        Pair(key_of(0, 1), "a dog and a cat", datasets.jpeg(1)),  # same bytes, another caption
        Pair(key_of(0, 2), "a dog", datasets.jpeg(2)),  # one object: excluded
        Pair(key_of(0, 3), "a horse above a car", datasets.encode(near, "JPEG", quality=95)),
        Pair(key_of(0, 4), "a car below a horse", datasets.encode(near.resize((128, 128)))),
        Pair(key_of(0, 5), "a cat above a dog", datasets.jpeg(3, (40, 40))),  # too small
        Pair(key_of(0, 6), "a cat above a dog", datasets.jpeg(4), extra={"pwatermark": 0.95}),
        Pair(key_of(0, 7), "never fetched", status="failed_to_download", error_message="HTTP 404"),
        Pair(key_of(0, 8), "a cat left of a dog", datasets.truncated_jpeg()),
        Pair(key_of(0, 9), "a cat left of a dog", b""),
        Pair(key_of(0, 10), "a cat left of a dog", datasets.text_as_jpg()),
        Pair(key_of(0, 11), "a cat left of a dog", datasets.bomb_png()),
        Pair(key_of(0, 12), "lost caption", datasets.jpeg(5), members=("jpg", "json")),
    ]  # fmt: skip
    shard1 = [Pair(key_of(1, i), "a bird over a boat", datasets.jpeg(20 + i)) for i in range(2)]
    return datasets.write_webdataset(root, [shard0, shard1])


@pytest.mark.parametrize("batch_size", [256, 4])  # one batch on threads; many, one thread
def test_img2dataset_shards_end_to_end(
    store: Store, settings: Settings, tmp_path: Path, batch_size: int
) -> None:
    path = laion_like(tmp_path / "laion")
    seen: list[tuple[int, int | None]] = []
    report = ingest(
        store, settings, path, source_format="img2dataset",
        options=IngestOptions(batch_size=batch_size, workers=1 if batch_size == 4 else 3),
        progress=lambda r, t: seen.append((r, t)),
    )  # fmt: skip
    assert (report.source, report.layout, report.read) == ("laion", "webdataset", 15)
    assert report.imported_images == 8 and report.imported_samples == 9
    assert report.duplicate_images == 1 and report.near_duplicates == 1
    assert report.excluded == {"few_objects": 1, "too_small": 1, "watermark": 1}
    assert report.not_downloaded == 1
    assert report.failed == {
        "empty": 1, "missing_caption": 1, "not_an_image": 1, "too_large": 1, "truncated": 1,
    }  # fmt: skip
    assert report.failure_examples["truncated"] == [key_of(0, 8)] and report.new_failures == 5
    assert seen[-1] == (15, 15)

    (source,) = rows(store, models.Source)
    assert source.kind == SourceKind.IMG2DATASET and source.meta == {"layout": "webdataset"}
    samples = {s.source_key: s for s in rows(store, models.Sample)}
    images = {i.id: i for i in rows(store, models.Image)}
    assert len(images) == 8 and len(samples) == 9
    # One image, two samples; the image-text pairs keep their own captions and metadata.
    assert samples[key_of(0, 0)].image_id == samples[key_of(0, 1)].image_id
    assert samples[key_of(0, 0)].meta["similarity"] == 0.3
    assert samples[key_of(0, 0)].meta["url"].endswith(".jpg")
    # Near-duplicate: the resized copy points at the earlier image.
    original, copy = (images[samples[key_of(0, k)].image_id] for k in (3, 4))
    assert copy.near_duplicate_of == original.id and original.near_duplicate_of is None
    # Exclusions are marks with reasons.
    excluded = {k: s.exclusion_reason for k, s in samples.items() if s.excluded}
    assert excluded == {key_of(0, 2): "few_objects", key_of(0, 5): "too_small",
                        key_of(0, 6): "watermark"}  # fmt: skip
    # Stages: pending for kept images, skipped for images whose every sample is excluded.
    stages = rows(store, models.ImageStage)
    assert len(stages) == 8 * len(Stage)
    # Ingested images are natural: only generated ones are validated against a prompt.
    assert {(s.status, s.producer) for s in stages if s.stage is Stage.VALIDATE} == {
        (StageStatus.SKIPPED, "ingest:natural")
    }
    stages = [s for s in stages if s.stage is not Stage.VALIDATE]
    skipped = {s.image_id for s in stages if s.status == StageStatus.SKIPPED}
    assert skipped == {samples[key_of(0, k)].image_id for k in (2, 5, 6)}
    assert {s.status for s in stages if s.image_id not in skipped} == {StageStatus.PENDING}
    # Failures, one row each, with reasons and details.
    failures = {f.source_key: f.reason for f in rows(store, models.IngestFailure)}
    assert failures == {key_of(0, 8): "truncated", key_of(0, 9): "empty",
                        key_of(0, 10): "not_an_image", key_of(0, 11): "too_large",
                        key_of(0, 12): "missing_caption"}  # fmt: skip
    # Originals stored by content, sizes after orientation.
    for image in images.values():
        stored = resolve_uri(image.uri, settings.artefacts_dir)
        assert image.uri.startswith(f"images/{image.sha256[:2]}/") and stored.is_file()
        assert image.byte_size == stored.stat().st_size and image.phash
    assert_second_run_writes_nothing(store, settings, path, "img2dataset", report)


def test_files_and_parquet_layouts(store: Store, settings: Settings, tmp_path: Path) -> None:
    pairs = [
        Pair(key_of(0, 0), "a cat left of a dog", datasets.jpeg(1), extra={"punsafe": 0.9}),
        Pair(key_of(0, 1), "a cat right of a dog", datasets.jpeg(2), extra={"punsafe": 0.1}),
        Pair(key_of(0, 2), "x", status="failed_to_download"),
    ]
    files_root = datasets.write_files_layout(tmp_path / "files", [pairs])
    first = ingest(store, settings, files_root, source_format="img2dataset")
    assert first.layout == "files" and first.imported_samples == 2
    assert first.excluded == {"unsafe": 1} and first.not_downloaded == 1
    parquet_root = datasets.write_parquet_layout(tmp_path / "pq", [pairs], drop_columns=["url"])
    second = ingest(store, settings, parquet_root, source_format="img2dataset")
    # Same bytes under another source: new samples, no new images.
    assert second.layout == "parquet" and second.imported_samples == 2
    assert second.imported_images == 0 and second.duplicate_images == 2
    assert len(rows(store, models.Source)) == 2 and len(rows(store, models.Image)) == 2
    assert_second_run_writes_nothing(store, settings, parquet_root, "img2dataset", second)


def test_a_parquet_with_missing_columns_records_each_item(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    pairs = [Pair(key_of(0, i), "a cat left of a dog", datasets.jpeg(i)) for i in range(3)]
    root = datasets.write_parquet_layout(tmp_path / "pq", [pairs], drop_columns=["jpg"])
    report = ingest(store, settings, root, source_format="img2dataset")
    assert report.failed == {"missing_column": 3} and report.imported_samples == 0
    assert len(rows(store, models.IngestFailure)) == 3
    assert_second_run_writes_nothing(store, settings, root, "img2dataset", report)


def test_a_corrupt_shard_is_recorded_and_the_other_shards_import(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    shards = [[Pair(key_of(s, i), "a cat left of a dog", datasets.jpeg(10 * s + i))
               for i in range(3)] for s in range(2)]  # fmt: skip
    root = datasets.write_webdataset(tmp_path / "w", shards)
    datasets.corrupt_tar_after(root / "00000.tar", keep_members=4)
    report = ingest(store, settings, root, source_format="img2dataset")
    assert report.failed == {"corrupt_shard": 1, "missing_from_shard": 2}
    assert report.imported_samples == 4
    assert_second_run_writes_nothing(store, settings, root, "img2dataset", report)


def test_limit_then_the_rest(store: Store, settings: Settings, tmp_path: Path) -> None:
    path = laion_like(tmp_path / "laion")
    first = ingest(store, settings, path, source_format="img2dataset", limit=3)
    assert first.read == 3 and first.imported_samples == 3 and first.imported_images == 2
    rest = ingest(store, settings, path, source_format="img2dataset")
    assert rest.already_present == 3 and rest.imported_samples == 6
    assert len(rows(store, models.Sample)) == 9


# --- folders ----------------------------------------------------------------------------------


def test_a_folder_of_odd_images(store: Store, settings: Settings, tmp_path: Path) -> None:
    caption = "a cat to the left of a dog"
    root = datasets.write_folder(
        tmp_path / "odd",
        {
            "cmyk.jpg": (datasets.cmyk_jpeg(), caption),
            "deep.png": (datasets.png16(), caption),
            "palette.png": (datasets.palette_png(), caption),
            "alpha.png": (datasets.rgba_png(), caption),
            "anim.gif": (datasets.animated_gif(), caption),
            "rotated.jpg": (datasets.exif_rotated_jpeg(size=(120, 80)), caption),
            "broken/zero.jpg": (b"", caption),
            "broken/page.jpg": (datasets.text_as_jpg(), caption),
        },
    )
    report = ingest(store, settings, root, source_format="folder")
    assert report.imported_images == 6 and report.excluded == {}
    assert report.failed == {"empty": 1, "not_an_image": 1}
    assert report.decode_notes == {
        "alpha": 1, "animated": 1, "cmyk": 1, "exif_orientation": 1, "scaled": 1,
        "transparency": 1,
    }  # fmt: skip
    samples = {s.source_key: s for s in rows(store, models.Sample)}
    images = {i.id: i for i in rows(store, models.Image)}
    rotated = images[samples["rotated.jpg"].image_id]
    assert (rotated.width, rotated.height, rotated.format) == (80, 120, "jpeg")
    assert samples["rotated.jpg"].meta["_esplora"] == {"decode": ["exif_orientation: 6"]}
    assert images[samples["anim.gif"].image_id].uri.endswith(".gif")
    assert_second_run_writes_nothing(store, settings, root, "folder", report)


def test_an_imagefolder(store: Store, settings: Settings, tmp_path: Path) -> None:
    root = datasets.write_imagefolder(
        tmp_path / "hf",
        {"0.jpg": (datasets.jpeg(1), "two dogs and a cat"), "1.jpg": (datasets.jpeg(2), "a dog")},
        extra_rows=["{oops", json.dumps({"file_name": "gone.jpg", "text": "?"})],
    )
    report = ingest(store, settings, root, source_format="folder", source_name="hf-sample")
    assert report.source == "hf-sample" and report.imported_samples == 2
    assert report.excluded == {"few_objects": 1}
    assert report.failed == {"bad_metadata": 1, "missing_file": 1}
    (source,) = rows(store, models.Source)
    assert source.kind == SourceKind.FOLDER
    assert_second_run_writes_nothing(store, settings, root, "folder", report)


def test_long_keys_nul_characters_and_nan_metadata_fit_both_stores(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    name = f"{'a' * 200}/{'b' * 200}/{'c' * 150}.jpg"  # a 555-character key
    root = datasets.write_folder(
        tmp_path / "d", {name: (datasets.jpeg(1), "a cat\x00 left of a dog")}
    )
    (root / name).with_suffix(".json").write_text('{"score": NaN, "note": "x\\u0000y"}')
    report = ingest(store, settings, root, source_format="folder")
    assert report.imported_samples == 1
    (sample,) = rows(store, models.Sample)
    assert len(sample.source_key) == 500 and sample.source_key.startswith("a" * 200)
    assert sample.caption == "a cat left of a dog"
    assert sample.meta == {"score": None, "note": "xy"}
    assert_second_run_writes_nothing(store, settings, root, "folder", report)


def test_an_excluded_image_is_revived_by_a_kept_sample(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    data = datasets.jpeg(3)
    first = datasets.write_folder(tmp_path / "a", {"x.jpg": (data, "a dog")})
    ingest(store, settings, first, source_format="folder")
    assert {s.status for s in rows(store, models.ImageStage)} == {StageStatus.SKIPPED}
    second = datasets.write_folder(tmp_path / "b", {"y.jpg": (data, "a dog left of a cat")})
    report = ingest(store, settings, second, source_format="folder")
    assert report.duplicate_images == 1 and report.imported_images == 0
    stages = rows(store, models.ImageStage)
    assert {(s.status, s.producer) for s in stages if s.stage is not Stage.VALIDATE} == {
        (StageStatus.PENDING, None)
    }


def test_a_fixed_file_replaces_its_failure(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    root = datasets.write_folder(tmp_path / "d", {"a.jpg": (datasets.text_as_jpg(), "a cat")})
    assert ingest(store, settings, root, source_format="folder").new_failures == 1
    (root / "a.jpg").write_bytes(datasets.jpeg(1))
    report = ingest(store, settings, root, source_format="folder")
    assert report.imported_samples == 1 and report.failed == {}
    assert rows(store, models.IngestFailure) == []


# --- COCO -------------------------------------------------------------------------------------


def test_coco_boxes_become_annotation_objects(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    images = [
        CocoImage(1, datasets.jpeg(1), [("dog", [10, 20, 30, 40]), ("dining table", [0, 0, 50, 60])],  # noqa: E501
                  ["a dog on a table", "a dog next to a table"]),
        CocoImage(2, datasets.exif_rotated_jpeg(size=(120, 80)), [("cat", [10, 20, 30, 40]),
                  ("dog", [100, 70, 100, 20])]),
        CocoImage(3, datasets.jpeg(3), [("cat", [5, 5, 10, 10])]),
    ]  # fmt: skip
    datasets.write_coco(tmp_path / "coco", images, dangling=True)
    report = ingest(store, settings, tmp_path / "coco", source_format="coco")
    assert report.imported_images == 3 and report.imported_samples == 4
    assert report.duplicate_images == 1  # the second caption of image 1
    assert report.imported_objects == 5
    assert report.failed == {"dangling_category_id": 1, "dangling_image_id": 2}
    assert report.excluded == {"few_objects": 1}  # image 3: one cat, no caption
    samples = {s.source_key: s for s in rows(store, models.Sample)}
    objects = rows(store, models.DetectedObject)
    assert {(o.producer, o.producer_kind) for o in objects} == {
        ("coco:coco", ProducerKind.ANNOTATION)
    }
    mine = [o for o in objects if o.image_id == samples["1:1000"].image_id]
    first = sorted((o.label, o.phrase, o.x0, o.y0, o.x1, o.y1) for o in mine)
    assert first == [("dog", "dog", 10, 20, 40, 60), ("table", "dining table", 0, 0, 50, 60)]
    rotated = {
        o.label: (o.x0, o.y0, o.x1, o.y1) for o in objects if o.image_id == samples["2"].image_id
    }
    # Stored grid 120×80 with orientation 6: shown 80×120, boxes rotated with the pixels.
    assert rotated == {"cat": (20, 10, 60, 40), "dog": (0, 100, 10, 120)}
    # Images with dataset boxes skip detection for good; image 3 is excluded besides.
    stages = {(s.image_id, s.stage): (s.status, s.producer) for s in rows(store, models.ImageStage)}
    for key in ("1:1000", "2"):
        image_id = samples[key].image_id
        assert stages[image_id, Stage.DETECT] == (StageStatus.SKIPPED, "coco:coco")
        assert stages[image_id, Stage.DEPTH] == (StageStatus.PENDING, None)
    excluded_id = samples["3"].image_id
    assert stages[excluded_id, Stage.DETECT] == (StageStatus.SKIPPED, "coco:coco")
    assert stages[excluded_id, Stage.EXTRACT] == (StageStatus.SKIPPED, "ingest:filter")
    assert_second_run_writes_nothing(store, settings, tmp_path / "coco", "coco", report)


def test_coco_boxes_on_an_image_another_source_brought(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    data = datasets.exif_rotated_jpeg(size=(120, 80))
    folder = datasets.write_folder(tmp_path / "photos", {"r.jpg": (data, "a cat and a dog")})
    ingest(store, settings, folder, source_format="folder")
    path = datasets.write_coco(
        tmp_path / "coco", [CocoImage(9, data, [("cat", [10, 20, 30, 40])], ["a cat"])]
    )
    report = ingest(store, settings, path, source_format="coco", source_name="c")
    assert report.imported_images == 0 and report.duplicate_images == 1
    assert report.imported_objects == 1
    (obj,) = rows(store, models.DetectedObject)
    assert (obj.x0, obj.y0, obj.x1, obj.y1, obj.producer) == (20, 10, 60, 40, "coco:c")
    detect = rows(store, models.ImageStage, models.ImageStage.stage == Stage.DETECT)
    assert [(s.status, s.producer) for s in detect] == [(StageStatus.SKIPPED, "coco:c")]
    assert_second_run_writes_nothing(store, settings, path, "coco", report)


# --- the command line -------------------------------------------------------------------------


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ESPLORA, *args], capture_output=True, text=True, env=dict(os.environ))


def test_the_cli(tmp_path: Path) -> None:
    root = datasets.write_folder(
        tmp_path / "photos",
        {"a.jpg": (datasets.jpeg(1), "a cat left of a dog"),
         "b.jpg": (datasets.jpeg(2), "a dog"), "c.jpg": (b"", "x")},
    )  # fmt: skip
    assert run("db", "upgrade").returncode == 0
    result = run("ingest", str(root), "--format", "folder", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["imported_images"] == 2 and report["excluded"] == {"few_objects": 1}
    assert report["failed"] == {"empty": 1} and report["failure_examples"] == {"empty": ["c.jpg"]}
    again = run("ingest", str(root), "--format", "folder", "--source", "photos")
    assert again.returncode == 0, again.stderr
    assert "already present" in again.stdout and "failed: empty" in again.stdout
    limited = run("ingest", str(root), "--format", "folder", "--source", "other", "--limit", "1",
                  "--json")  # fmt: skip
    assert json.loads(limited.stdout)["read"] == 1
    missing = run("ingest", str(tmp_path / "nope"), "--format", "folder")
    assert missing.returncode == 2 and "error:" in missing.stderr
    assert "Traceback" not in missing.stderr
