"""Parquet shards as the Hugging Face Hub lays them out: ``data/{split}-NNNNN-of-MMMMM.parquet``.

The ``image`` column is the ``datasets`` Image feature's storage, a struct of ``bytes`` and
``path``, and the schema's ``huggingface`` metadata declares it so: ``load_dataset`` hands back
PIL images with no extra argument. Rows are written a row group at a time (images make rows
large; small row groups keep memory flat and random access cheap).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from esplora.services.exports.common import ExportItem, FormatSpec, WriteTarget

ROW_GROUP = 100  # rows per row group: the Hub's advice for image datasets

_BOX = pa.list_(pa.float64())
_OBJECT = pa.struct([("label", pa.string()), ("box", _BOX)])
_RELATION = pa.struct([
    ("relation", pa.string()), ("subject", pa.int32()), ("object", pa.int32()),
    ("subject_label", pa.string()), ("object_label", pa.string()),
    ("subject_box", _BOX), ("object_box", _BOX), ("soft", pa.bool_()), ("strict", pa.bool_()),
    ("margin", pa.float64()), ("state", pa.string()),
])  # fmt: skip
_FEATURES = {"info": {"features": {"image": {"_type": "Image"}}}}
SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("text", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("objects", pa.list_(_OBJECT)),
        ("relations", pa.list_(_RELATION)),
        ("sample_id", pa.int64()),
        ("image_sha256", pa.string()),
        ("source", pa.string()),
        ("source_key", pa.string()),
        ("origin", pa.string()),
        ("text_source", pa.string()),
        ("review_state", pa.string()),
        ("original_format", pa.string()),
        ("reencoded", pa.string()),
    ],
    metadata={"huggingface": json.dumps(_FEATURES)},
)


class _Split:
    """One split's shard files: a new file every ``shard_size`` rows."""

    def __init__(self, folder: Path, split: str, shard_size: int) -> None:
        self.folder, self.split, self.shard_size = folder, split, shard_size
        self.rows: list[dict[str, Any]] = []
        self.files: list[Path] = []
        self.in_shard = 0
        self.writer: pq.ParquetWriter | None = None

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        while self.rows:
            if self.writer is None or self.in_shard >= self.shard_size:
                self._next_file()
            assert self.writer is not None
            take = min(len(self.rows), self.shard_size - self.in_shard)
            chunk, self.rows = self.rows[:take], self.rows[take:]
            self.writer.write_table(pa.Table.from_pylist(chunk, schema=SCHEMA))
            self.in_shard += take

    def _next_file(self) -> None:
        if self.writer is not None:
            self.writer.close()
        path = self.folder / f"{self.split}-{len(self.files):05d}.parquet"
        self.files.append(path)
        self.writer = pq.ParquetWriter(path, SCHEMA, compression="zstd")
        self.in_shard = 0

    def close(self) -> list[str]:
        """Close the last file and give every file its Hub name (``-of-`` the shard count)."""
        self.flush()
        if self.writer is not None:
            self.writer.close()
        names = []
        for index, path in enumerate(self.files):
            name = f"{self.split}-{index:05d}-of-{len(self.files):05d}.parquet"
            path.rename(path.with_name(name))
            names.append(f"data/{name}")
        return names


class ParquetWriter:
    """Writes ``data/{split}-*.parquet``."""

    def __init__(self, target: WriteTarget) -> None:
        self.folder = target.root / "data"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard_size = target.options.shard_size
        self.splits: dict[str, _Split] = {}

    def write(self, item: ExportItem) -> None:
        split = self.splits.get(item.split)
        if split is None:
            split = self.splits[item.split] = _Split(self.folder, item.split, self.shard_size)
        split.add(_row(item))

    def close(self) -> dict[str, Any]:
        files = {name: split.close() for name, split in self.splits.items()}
        return {"files": files, "data_files": {name: f"data/{name}-*" for name in files}}


def _row(item: ExportItem) -> dict[str, Any]:
    provenance = item.provenance()
    return {
        "key": item.key,
        "image": {"bytes": item.image, "path": item.file_name},
        "text": item.text,
        "width": item.member.width,
        "height": item.member.height,
        "objects": item.object_dicts(),
        "relations": item.relation_dicts(),
        **{k: provenance[k] for k in SCHEMA.names if k in provenance},
    }


SPEC = FormatSpec(
    name="parquet",
    summary="Parquet shards with the image bytes, text, boxes and relations (Hugging Face layout)",
    layout="data/train-00000-of-0000N.parquet, data/validation-00000-of-0000N.parquet",
    usage=(
        "```python\nfrom datasets import load_dataset\n\n"
        'ds = load_dataset("{out}")\n'
        '# or: load_dataset("parquet", data_files={"train": "{out}/data/train-*.parquet"})\n'
        'example = ds["train"][0]\n'
        'example["image"], example["text"], example["relations"]\n```'
    ),
    jpeg_only=False,
    open=ParquetWriter,
)
