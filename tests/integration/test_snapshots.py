"""Snapshots on a real store (SQLite and PostgreSQL): membership frozen at creation, caps and
split deterministic, the hash free of database ids, contamination, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from esplora.db import migrate
from esplora.db.engine import Store
from esplora.db.relations import GeometricRelation
from esplora.db.snapshots import SnapshotMember
from esplora.errors import EsploraError
from esplora.services.filters import ItemFilter
from esplora.services.review import adjudicate
from esplora.services.snapshots import (
    Caps,
    SnapshotRequest,
    create_snapshot,
    diff_snapshots,
    list_snapshots,
    show_snapshot,
    training_examples,
)
from esplora.settings import Settings
from support.snapshot_seed import BENCHMARK_TEXT, coco_images, seed_snapshot_store

ESPLORA = str(Path(sys.executable).parent / "esplora")


@pytest.fixture
def seeded(store: Store, settings: Settings, tmp_path: Path) -> Store:
    seed_snapshot_store(store, settings, tmp_path, coco_images(8))
    return store


def snap(store: Store, name: str, **kwargs: Any) -> dict[str, Any]:
    item_filter = kwargs.pop("item_filter", ItemFilter())
    return create_snapshot(store, SnapshotRequest(name, item_filter, **kwargs)).to_dict()


def members(store: Store, name: str) -> list[tuple[str, str, Any, str, str]]:
    from esplora.db.snapshots import Snapshot

    with store.reader() as session:
        sid = session.scalar(select(Snapshot.id).where(Snapshot.name == name))
        rows = session.execute(
            select(
                SnapshotMember.image_sha256,
                SnapshotMember.text,
                SnapshotMember.relations,
                SnapshotMember.review_state,
                SnapshotMember.split,
            )
            .where(SnapshotMember.snapshot_id == sid)
            .order_by(SnapshotMember.image_sha256, SnapshotMember.text)
        )
        return [(a, b, c, d, e.value) for a, b, c, d, e in rows]


def test_a_snapshot_freezes_every_usable_sample_with_its_relations(seeded: Store) -> None:
    summary = snap(seeded, "all")
    rows = members(seeded, "all")
    assert summary["members"] == len(rows) == 17  # 8 images × 2 captions + 1 generated prompt
    assert summary["images"] == 8 and summary["splits"] == {"train": 17, "validation": 0}
    assert summary["text_sources"] == {"caption": 16, "prompt": 1}
    assert summary["skipped"]["generated image not re-validated strictly"] == 1
    assert summary["skipped"]["benchmark evaluation image"] == 1
    for _, text, relations, state, _ in rows:
        assert text and relations and state == "unreviewed"
        for r in relations:
            assert set(r) == {"relation", "subject", "object", "soft", "strict", "margin", "state"}
            assert len(r["subject"]["box"]) == 4 and r["subject"]["label"]
    assert summary["producers"]["rules"] == ["esplora-strict"]
    assert summary["producers"]["relations"] and summary["producers"]["detectors"]
    assert len(summary["hash"]) == 64


def test_the_filter_and_text_source_narrow_membership(seeded: Store) -> None:
    left = snap(seeded, "left", item_filter=ItemFilter(relations=("left_of",)))
    assert set(left["relations"]) <= {"left_of", "right_of"} and left["members"] > 0
    assert snap(seeded, "prompts", text_source="prompt")["members"] == 1
    assert snap(seeded, "captions", text_source="caption")["members"] == 16
    assert snap(seeded, "nothing", item_filter=ItemFilter(labels=("zebra",)))["members"] == 0


def test_same_request_same_hash_and_caps_pick_by_image_sha(seeded: Store) -> None:
    first = snap(seeded, "a", caps=Caps(pair=4), validation_fraction=0.4, seed=3)
    second = snap(seeded, "b", caps=Caps(pair=4), validation_fraction=0.4, seed=3)
    assert first["hash"] == second["hash"] and members(seeded, "a") == members(seeded, "b")
    assert all(count <= 4 for count in first["pairs"].values())
    assert first["skipped"]["over a cap"] > 0
    rows = members(seeded, "a")
    by_image: dict[str, set[str]] = {}
    for sha, _, _, _, split in rows:
        by_image.setdefault(sha, set()).add(split)
    assert all(len(s) == 1 for s in by_image.values())  # an image never spans both splits
    assert first["splits"]["validation"] > 0


def test_a_later_relabel_never_changes_a_snapshot(seeded: Store) -> None:
    before = snap(seeded, "before")
    frozen = members(seeded, "before")
    with seeded.reader() as session:
        target = session.execute(
            select(GeometricRelation.id, GeometricRelation.version).order_by(GeometricRelation.id)
        ).first()
    assert target is not None
    adjudicate(seeded, "ana", "relation", target[0], "flip", expected_version=target[1])
    assert members(seeded, "before") == frozen
    assert show_snapshot(seeded, "before").hash == before["hash"]
    after = snap(seeded, "after")
    assert after["hash"] != before["hash"]
    # the image's other relations are unreviewed, so the member is too (its least settled)
    assert any(r["state"] == "changed" for m in members(seeded, "after") for r in m[2])
    diff = diff_snapshots(seeded, "before", "after").to_dict()
    assert not diff["same_hash"] and diff["changed"] >= 1 and diff["added"] == diff["removed"] == 0


def test_a_rejected_relation_leaves_the_snapshot(seeded: Store) -> None:
    with seeded.reader() as session:
        rows = session.execute(
            select(GeometricRelation.id, GeometricRelation.version, GeometricRelation.image_id)
        ).all()
    per_image: dict[int, list[tuple[int, int]]] = {}
    for rid, version, image_id in rows:
        per_image.setdefault(image_id, []).append((rid, version))
    image_id, rels = next((i, r) for i, r in sorted(per_image.items()))
    for rid, version in rels:
        adjudicate(seeded, "ana", "relation", rid, "reject", expected_version=version)
    summary = snap(seeded, "no-rejects", item_filter=ItemFilter(image_ids=(image_id,)))
    assert summary["members"] == 0
    assert summary["skipped"]["every matched relation rejected"] >= 2


def test_contamination_is_reported_and_strict_refuses(seeded: Store) -> None:
    summary = snap(seeded, "loose")
    assert [hit["text"] for hit in summary["contamination"]] == [BENCHMARK_TEXT]
    with pytest.raises(EsploraError, match="overlap benchmark prompts"):
        snap(seeded, "tight", strict=True)
    assert [s.name for s in list_snapshots(seeded)] == ["loose"]


def test_bad_requests_are_clear_errors(seeded: Store) -> None:
    snap(seeded, "taken")
    with pytest.raises(EsploraError, match="already exists"):
        snap(seeded, "taken")
    with pytest.raises(EsploraError, match="unknown filter field"):
        ItemFilter.from_json('{"colour": "red"}')
    with pytest.raises(EsploraError, match="must be in"):
        snap(seeded, "bad-split", validation_fraction=1.5)
    with pytest.raises(EsploraError, match="cap"):
        Caps.parse("relations=5")
    with pytest.raises(EsploraError, match="no snapshot named 'missing'; known: taken"):
        show_snapshot(seeded, "missing")


def test_training_examples_point_at_the_image_files(seeded: Store, settings: Settings) -> None:
    snap(seeded, "train", validation_fraction=0.25)
    train = training_examples(seeded, "train", "train", settings=settings)
    everything = training_examples(seeded, "train", None, settings=settings)
    assert 0 < len(train) < len(everything) == 17
    assert all(e.image_path.is_file() and e.width == 96 and e.relations for e in everything)


@pytest.mark.postgres
def test_the_same_data_hashes_the_same_on_sqlite_and_postgresql(
    sqlite_url: str, postgres_url: str, settings: Settings, tmp_path: Path
) -> None:
    images = coco_images(8)
    hashes = []
    for url, order in ((sqlite_url, images), (postgres_url, images[::-1])):  # other ids
        migrate.upgrade(url)
        store = Store.from_url(url)
        seed_snapshot_store(store, settings, tmp_path / url.split(":")[0], order)
        hashes.append(snap(store, "s", caps=Caps(pair=3), validation_fraction=0.3)["hash"])
        with store.reader() as session:
            assert session.scalar(select(func.count()).select_from(SnapshotMember))
        store.dispose()
    assert hashes[0] == hashes[1]


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ESPLORA_DATABASE_URL": url}
    return subprocess.run([ESPLORA, "snapshot", *args], capture_output=True, text=True, env=env)


def test_cli_create_list_show_diff(seeded: Store, store_url: str, tmp_path: Path) -> None:
    spec = tmp_path / "filter.json"
    spec.write_text(json.dumps({"relations": ["left_of"]}))
    made = cli(store_url, "create", "left", "--filter", str(spec), "--split", "0.2", "--json")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["filter"] == {"relations": ["left_of"]}
    plain = cli(store_url, "create", "all", "--caps", "pair=2")
    assert plain.returncode == 0 and "all" in plain.stdout and "benchmark prompt" in plain.stderr
    listed = json.loads(cli(store_url, "list", "--json").stdout)
    assert [row["name"] for row in listed] == ["all", "left"]
    shown = json.loads(cli(store_url, "show", "left", "--json").stdout)
    assert shown["hash"] == created["hash"] and shown["splits"]["validation"] > 0
    diff = cli(store_url, "diff", "left", "all")
    assert diff.returncode == 0 and "different content" in diff.stdout
    for args, message in (
        (("create", "left"), "already exists"),
        (("create", "x", "--filter", '{"colour": 1}'), "unknown filter field"),
        (("create", "x", "--filter", "@nope.json"), "does not exist"),
        (("show", "nope"), "no snapshot named"),
    ):
        result = cli(store_url, *args)
        assert result.returncode == 2 and message in result.stderr
        assert "Traceback" not in result.stderr


def test_a_created_snapshot_exports_and_loads_with_its_relations(
    seeded: Store, settings: Settings, tmp_path: Path
) -> None:
    """The service's frozen JSON is what the exporters read: create, export, load with COCO."""
    from pycocotools.coco import COCO

    from esplora.services.exports import export_snapshot

    summary = snap(seeded, "to-export", validation_fraction=0.25)
    report = export_snapshot(seeded, settings, "to-export", "coco", tmp_path / "export")
    assert report.written == summary["members"] and report.skipped == 0
    assert report.splits == summary["splits"]
    data = json.loads((tmp_path / "export" / "annotations" / "instances.json").read_text())
    coco = COCO(str(tmp_path / "export" / "annotations" / "instances.json"))
    assert len(coco.getImgIds()) == summary["members"]
    relations = sum(len(m[2]) for m in members(seeded, "to-export"))
    assert len(data["relations"]) == relations
    card = (tmp_path / "export" / "README.md").read_text()
    assert summary["hash"] in card and "esplora-strict" in card
