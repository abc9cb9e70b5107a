"""Corpora on disk: the folder layout ingest reads, and ground truth that matches the pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from esplora.scenes.codec import decode, instances
from esplora.scenes.corpus import GROUND_TRUTH, read_ground_truth, write_corpus
from esplora.scenes.model import strict_relations
from esplora.sources.folder import FolderReader


def test_a_corpus_is_a_captioned_folder_with_exact_ground_truth(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "c", 8, seed=5, wrong_caption_rate=0.3, vague_caption_rate=0.3)
    records = list(read_ground_truth(root))
    items = list(FolderReader(root))
    assert (
        [i.key for i in items] == [r["file"] for r in records] == [f"{k:06d}.png" for k in range(8)]
    )
    assert [i.caption for i in items] == [r["caption"] for r in records]
    for record in records:
        with Image.open(root / record["file"]) as image:
            assert image.format == "PNG" and image.size == (record["width"], record["height"])
            found = instances(decode(np.asarray(image.convert("RGB"))))
        objects = record["objects"]
        assert sorted((i.label, list(i.box), i.level) for i in found) == sorted(
            (o["label"], o["box"], o["level"]) for o in objects
        )
        truth = strict_relations([tuple(o["box"]) for o in objects], [o["depth"] for o in objects])
        assert [t.as_dict() for t in truth] == record["relations"]
        assert record["caption_kind"] in ("true", "wrong", "vague")


def test_corpora_are_deterministic_and_prefix_stable(tmp_path: Path) -> None:
    small = write_corpus(tmp_path / "a", 3, seed=9)
    large = write_corpus(tmp_path / "b", 5, seed=9)
    for k in range(3):
        name = f"{k:06d}.png"
        assert (small / name).read_bytes() == (large / name).read_bytes()
    lines = (small / GROUND_TRUTH).read_text().splitlines()
    assert lines == (large / GROUND_TRUTH).read_text().splitlines()[:3]
    assert write_corpus(tmp_path / "empty", 0, seed=1).joinpath(GROUND_TRUTH).read_text() == ""
