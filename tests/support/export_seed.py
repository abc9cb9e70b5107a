"""A small frozen snapshot for the export tests: real ingested images (JPEGs of several sizes,
a PNG, an EXIF-rotated JPEG, one image shared by two samples) and member rows whose relation
JSON has the shape the snapshot service freezes, boxes in pixels of each stored image."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from esplora.core.snapshots import relation
from esplora.db.engine import Store
from esplora.db.enums import Split
from esplora.db.images import Image, Sample, Source
from esplora.db.snapshots import Snapshot, SnapshotMember
from esplora.db.writes import insert_rows
from esplora.services.ingest import ingest
from esplora.settings import Settings
from support.datasets import encode, exif_rotated_jpeg, jpeg, photo, write_folder

FILES: dict[str, bytes] = {
    "a.jpg": jpeg(11, (96, 80)),
    "b.jpg": jpeg(12, (120, 90)),
    "c.png": encode(photo(13, (80, 64)), "PNG"),
    "d.jpg": exif_rotated_jpeg(14, (120, 80), 6),  # stored 120×80, shown 80×120
    "e.jpg": jpeg(15, (64, 64)),
    "f.jpg": jpeg(16, (100, 70)),
}
VALIDATION = {"f.jpg", "e.jpg"}
NO_RELATIONS = {"e.jpg"}  # a member may carry none: every format must still take it
# As the snapshot service records them (lists: a snapshot may mix producers).
PRODUCERS = {"relations": ["esplora-relate@1"], "rules": ["esplora"], "tau": [0.15],
             "depth_gap": [0.1], "detectors": ["tiny-grounding-dino@1"],
             "depth": ["tiny-depth-anything@1"]}  # fmt: skip


@dataclass(frozen=True)
class Seeded:
    """The snapshot's name and its members as inserted (``relations`` as frozen JSON)."""

    name: str
    members: list[dict[str, Any]]

    def by_sample(self) -> dict[int, dict[str, Any]]:
        return {m["sample_id"]: m for m in self.members}


def relations_for(width: int, height: int, shared: bool) -> list[dict[str, Any]]:
    """A cat left of a dog, and (every other image) a lamp above the cat, frozen by the same
    function the snapshot service uses."""
    cat = ("cat", [0.05 * width, 0.4 * height, 0.35 * width, 0.9 * height])
    dog = ("dog", [0.6 * width, 0.35 * height, 0.95 * width, 0.95 * height])
    lamp = ("lamp", [0.1 * width, 0.02 * height, 0.3 * width, 0.3 * height])
    rows = [relation("left_of", cat, dog, soft=True, strict=True, margin=0.25, state="accepted")]
    if shared:
        rows.append(
            relation("above", lamp, cat, soft=True, strict=False, margin=-0.0125, state="changed")
        )
    return rows


def seed_snapshot(store: Store, settings: Settings, workdir: Path, name: str = "spatial") -> Seeded:
    """Ingest :data:`FILES` (``a.jpg`` twice, under two sources) and freeze them as ``name``."""
    one = {f: (data, f"a cat to the left of a dog ({f})") for f, data in FILES.items()}
    two = {"a.jpg": (FILES["a.jpg"], "the same photo, another caption")}
    for source, files in (("one", one), ("two", two)):
        folder = write_folder(workdir / source, dict(files))
        ingest(store, settings, folder, source_format="folder", source_name=source)
    with store.unit_of_work() as session:
        rows = session.execute(
            select(Sample.id, Sample.source_key, Sample.caption, Image.sha256, Image.width,
                   Image.height, Source.name).join(Image, Image.id == Sample.image_id)
            .join(Source, Source.id == Sample.source_id)
        ).all()  # fmt: skip
        members = [_member(row) for row in rows]
        snapshot = Snapshot(name=name, filter={"relations": ["left_of", "above"]},
                            filter_json=json.dumps({"relations": ["left_of", "above"]}),
                            text_source="caption", validation_fraction=0.25, caps={}, seed=7,
                            content_hash="ab" * 32, counts=_counts(members),
                            created_by="tests")  # fmt: skip
        session.add(snapshot)
        session.flush()
        insert_rows(session, SnapshotMember, [{**m, "snapshot_id": snapshot.id} for m in members])
    return Seeded(name, members)


def _member(row: Any) -> dict[str, Any]:
    file = Path(row.source_key).name
    relations = (
        [] if file in NO_RELATIONS else relations_for(row.width, row.height, row.id % 2 == 0)
    )
    return {
        "sample_id": row.id,
        "image_sha256": row.sha256,
        "text": row.caption,
        "text_source": "caption",
        "relations": relations,
        "review_state": "accepted" if row.name == "one" else "machine",
        "split": Split.VALIDATION if file in VALIDATION else Split.TRAIN,
    }


def _counts(members: list[dict[str, Any]]) -> dict[str, Any]:
    relations: dict[str, int] = {}
    for m in members:
        for r in m["relations"]:
            relations[r["relation"]] = relations.get(r["relation"], 0) + 1
    splits = {"train": 0, "validation": 0}
    for m in members:
        splits[str(m["split"].value)] += 1
    return {"members": len(members), "images": len({m["image_sha256"] for m in members}),
            "splits": splits, "relations": relations, "pairs": sum(relations.values()),
            "review_states": {"accepted": len(members) - 1, "machine": 1},
            "producers": PRODUCERS}  # fmt: skip
