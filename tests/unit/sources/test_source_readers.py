"""Readers: each format yields its items lazily, bad items as errors, and keeps the metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esplora.errors import EsploraError
from esplora.sources import SourceFormat, open_reader
from esplora.sources.items import NOT_DOWNLOADED, SourceItem, json_safe
from support import datasets
from support.datasets import CocoImage, Pair, key_of


def _errors(items: list[SourceItem]) -> dict[str, str]:
    return {i.key: i.error.reason for i in items if i.error is not None}


def _ok(items: list[SourceItem]) -> dict[str, SourceItem]:
    return {i.key: i for i in items if i.error is None}


def _pairs(shard: int, n: int, **extra: object) -> list[Pair]:
    return [
        Pair(
            key_of(shard, i),
            f"a cat left of dog {i}",
            datasets.jpeg(shard * 100 + i),
            extra=dict(extra),
        )
        for i in range(n)
    ]


def test_webdataset_shards_keep_img2dataset_metadata(tmp_path: Path) -> None:
    first = _pairs(0, 3, similarity=0.31, pwatermark=0.1, LICENSE="?")
    first.append(Pair(key_of(0, 3), "never fetched", status="failed_to_download",
                      error_message="HTTP 404"))  # fmt: skip
    root = datasets.write_webdataset(tmp_path / "laion", [first, _pairs(1, 2)])
    reader = open_reader(SourceFormat.IMG2DATASET, root)
    assert reader.layout == "webdataset" and reader.total() == 6
    items = list(reader)
    ok = _ok(items)
    assert sorted(ok) == [key_of(0, 0), key_of(0, 1), key_of(0, 2), key_of(1, 0), key_of(1, 1)]
    item = ok[key_of(0, 1)]
    assert item.caption == "a cat left of dog 1" and item.data == datasets.jpeg(1)
    assert item.meta["url"].endswith(".jpg") and item.meta["similarity"] == 0.31
    assert item.meta["LICENSE"] == "?" and item.meta["sha256"] and item.meta["width"] == 96
    assert item.meta["original_width"] == 192 and item.meta["status"] == "success"
    skipped = [i for i in items if i.error and i.error.reason == NOT_DOWNLOADED]
    assert [i.key for i in skipped] == [key_of(0, 3)] and "HTTP 404" in skipped[0].error.detail


def test_a_shard_with_a_missing_caption_and_a_corrupt_member(tmp_path: Path) -> None:
    pairs = _pairs(0, 4)
    pairs[1].members = ("jpg", "json")  # no caption member
    pairs[2].data = datasets.truncated_jpeg()  # read fine here, refused when decoded
    pairs[3].members = ("txt", "json")  # no image member
    root = datasets.write_webdataset(tmp_path / "w", [pairs])
    items = list(open_reader("img2dataset", root))
    assert _errors(items) == {key_of(0, 1): "missing_caption", key_of(0, 3): "missing_image"}
    assert set(_ok(items)) == {key_of(0, 0), key_of(0, 2)}


def test_a_corrupt_tar_header_reports_the_shard_and_the_samples_it_lost(tmp_path: Path) -> None:
    root = datasets.write_webdataset(tmp_path / "w", [_pairs(0, 3), _pairs(1, 1)])
    datasets.corrupt_tar_after(root / "00000.tar", keep_members=4)  # mid-way through sample 1
    items = list(open_reader("img2dataset", root))
    assert _errors(items) == {
        "00000.tar": "corrupt_shard",
        key_of(0, 1): "missing_from_shard",  # its members were cut off: not half-imported
        key_of(0, 2): "missing_from_shard",
    }
    assert set(_ok(items)) == {key_of(0, 0), key_of(1, 0)}  # the rest goes on


def test_a_truncated_tar_is_a_corrupt_shard(tmp_path: Path) -> None:
    root = datasets.write_webdataset(tmp_path / "w", [_pairs(0, 3)])
    shard = root / "00000.tar"
    shard.write_bytes(shard.read_bytes()[:3000])
    items = list(open_reader("img2dataset", root))
    assert _errors(items)["00000.tar"] == "corrupt_shard"
    assert _errors(items)[key_of(0, 2)] == "missing_from_shard"


def test_a_metadata_parquet_without_keys_is_reported_and_the_shard_still_reads(
    tmp_path: Path,
) -> None:
    root = datasets.write_webdataset(tmp_path / "w", [_pairs(0, 2)])
    datasets._write_parquet(root / "00000.parquet", [p.meta() for p in _pairs(0, 2)], ["key"])
    items = list(open_reader("img2dataset", root))
    assert _errors(items) == {"00000.parquet": "missing_column"}
    assert len(_ok(items)) == 2 and _ok(items)[key_of(0, 0)].meta["url"]  # from the .json


def test_the_files_layout(tmp_path: Path) -> None:
    pairs = [*_pairs(0, 2), Pair(key_of(0, 2), "x", status="failed_to_download")]
    pairs[1].members = ("jpg", "json")
    root = datasets.write_files_layout(tmp_path / "f", [pairs])
    reader = open_reader("img2dataset", root)
    items = list(reader)
    assert reader.layout == "files" and reader.total() == 3
    assert _errors(items) == {key_of(0, 1): "missing_caption", key_of(0, 2): NOT_DOWNLOADED}
    assert _ok(items)[key_of(0, 0)].meta["height"] == 80


def test_the_parquet_layout(tmp_path: Path) -> None:
    pairs = [*_pairs(0, 2, punsafe=0.01), Pair(key_of(0, 2), "x", status="failed_to_download")]
    root = datasets.write_parquet_layout(tmp_path / "p", [pairs])
    reader = open_reader("img2dataset", root)
    items = list(reader)
    assert reader.layout == "parquet" and reader.total() == 3
    assert _errors(items) == {key_of(0, 2): NOT_DOWNLOADED}
    item = _ok(items)[key_of(0, 0)]
    assert item.data == datasets.jpeg(0) and item.caption == "a cat left of dog 0"
    assert item.meta["punsafe"] == 0.01 and "jpg" not in item.meta


@pytest.mark.parametrize("dropped", [("jpg",), ("txt", "caption")])
def test_a_parquet_with_missing_columns_fails_per_item(
    tmp_path: Path, dropped: tuple[str, ...]
) -> None:
    root = datasets.write_parquet_layout(tmp_path / "p", [_pairs(0, 3)], drop_columns=dropped)
    items = list(open_reader("img2dataset", root))
    assert _errors(items) == dict.fromkeys([key_of(0, i) for i in range(3)], "missing_column")


def test_a_file_that_is_not_parquet(tmp_path: Path) -> None:
    (tmp_path / "00000.parquet").write_bytes(b"not parquet at all")
    items = list(open_reader("img2dataset", tmp_path))
    assert _errors(items) == {"00000.parquet": "bad_parquet"}


def test_readers_are_lazy(tmp_path: Path) -> None:
    root = datasets.write_webdataset(tmp_path / "w", [_pairs(0, 3)])
    iterator = iter(open_reader("img2dataset", root))
    assert next(iterator).key == key_of(0, 0)  # one sample read, the shard still open


def test_a_folder_with_sidecars(tmp_path: Path) -> None:
    root = datasets.write_folder(
        tmp_path / "d",
        {
            "a.jpg": (datasets.jpeg(1), "a cat left of a dog"),
            "sub/b.PNG": (datasets.encode(datasets.photo(2), "PNG"), None),
            "bad.jpg": (datasets.text_as_jpg(), "text"),
        },
    )
    (root / "notes.txt").write_text("not an image")
    (root / "a.json").write_text(json.dumps({"license": "cc-by"}))
    reader = open_reader("folder", root)
    items = list(reader)
    assert reader.total() == 3 and [i.key for i in items] == ["a.jpg", "bad.jpg", "sub/b.PNG"]
    by_key = _ok(items)
    assert by_key["a.jpg"].caption == "a cat left of a dog"
    assert by_key["a.jpg"].meta == {"license": "cc-by"}
    assert by_key["sub/b.PNG"].caption == ""
    assert by_key["bad.jpg"].data == datasets.text_as_jpg()  # refused when decoded


def test_an_imagefolder_metadata_jsonl(tmp_path: Path) -> None:
    root = datasets.write_imagefolder(
        tmp_path / "hf",
        {"0.jpg": (datasets.jpeg(1), "a dog above a cat"), "1.jpg": (datasets.jpeg(2), "x")},
        extra_rows=["{not json", json.dumps({"file_name": "gone.jpg", "text": "?"})],
    )
    items = list(open_reader("folder", root))
    assert _errors(items) == {
        "train/metadata.jsonl:3": "bad_metadata",
        "train/gone.jpg": "missing_file",
    }
    item = _ok(items)["train/0.jpg"]
    assert item.caption == "a dog above a cat"
    assert item.meta == {"file_name": "train/0.jpg", "source": "test"}


def test_coco_boxes_captions_and_dangling_ids(tmp_path: Path) -> None:
    images = [
        CocoImage(1, datasets.jpeg(1), [("dog", [10, 20, 30, 40]), ("dining table", [0, 0, 5, 5])],
                  ["a dog by a table", "a dog left of a table"]),
        CocoImage(2, datasets.jpeg(2), [("dog", [1, 1, 0, 4])]),
    ]  # fmt: skip
    path = datasets.write_coco(tmp_path / "coco", images, dangling=True)
    reader = open_reader("coco", tmp_path / "coco")
    items = list(reader)
    assert reader.total() == 2 + 5
    assert _errors(items) == {
        "annotation:3": "degenerate_box",
        "annotation:9001": "dangling_image_id",
        "annotation:9002": "dangling_category_id",
        "caption:9003": "dangling_image_id",
    }
    ok = _ok(items)
    assert sorted(ok) == ["1:1000", "1:1001", "2"]
    first = ok["1:1000"]
    assert first.caption == "a dog by a table" and first.annotation_size == (96, 80)
    assert [(a.label, a.phrase, a.box) for a in first.annotations] == [
        ("dog", "dog", (10.0, 20.0, 40.0, 60.0)),
        ("table", "dining table", (0.0, 0.0, 5.0, 5.0)),
    ]
    assert first.meta["coco_image_id"] == 1 and first.meta["file_name"] == "000000000001.jpg"
    assert ok["2"].caption == "" and ok["2"].annotations == ()
    assert open_reader("coco", path).total() == 7  # the file itself works too


def test_coco_image_file_missing(tmp_path: Path) -> None:
    path = datasets.write_coco(
        tmp_path / "c", [CocoImage(5, datasets.jpeg(5))], with_captions=False
    )
    (tmp_path / "c" / "val2017" / "000000000005.jpg").unlink()
    assert _errors(list(open_reader("coco", path))) == {"5": "missing_file"}


def test_unknown_paths_and_formats_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(EsploraError, match="does not exist"):
        open_reader("folder", tmp_path / "nope")
    with pytest.raises(EsploraError, match="unknown format 'tsv'"):
        open_reader("tsv", tmp_path)
    with pytest.raises(EsploraError, match="no img2dataset output"):
        open_reader("img2dataset", tmp_path)
    with pytest.raises(EsploraError, match="instances"):
        open_reader("coco", tmp_path)


def test_json_safe() -> None:
    value = {"a": float("nan"), "b": b"raw", "c": ("x\x00y", 1), 3: float("inf"), "d": True}
    assert json_safe(value) == {"a": None, "c": ["xy", 1], "3": None, "d": True}
