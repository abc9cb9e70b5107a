"""WebDataset tar shards: ``{split}-NNNNNN.tar`` holding ``KEY.jpg``, ``KEY.txt``, ``KEY.json``.

Every image is a JPEG (webdataset pipelines decode ``.jpg`` by extension); originals in other
formats are re-encoded and the JSON says so. A sample's three files are written together, in key
order, with fixed owners and times, so the same snapshot always gives the same bytes.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

from esplora.services.exports.common import ExportItem, FormatSpec, WriteTarget


class WebDatasetWriter:
    """Writes ``{split}-NNNNNN.tar``, a new shard every ``shard_size`` samples."""

    def __init__(self, target: WriteTarget) -> None:
        self.root, self.mtime = target.root, target.mtime
        self.shard_size = target.options.shard_size
        self.tars: dict[str, tarfile.TarFile] = {}
        self.counts: dict[str, int] = {}
        self.files: dict[str, list[str]] = {}

    def write(self, item: ExportItem) -> None:
        tar = self._tar(item.split)
        metadata = {
            "key": item.key,
            "text": item.text,
            "width": item.member.width,
            "height": item.member.height,
            "split": item.split,
            "objects": item.object_dicts(),
            "relations": item.relation_dicts(),
            **item.provenance(),
        }
        self._add(tar, f"{item.key}.jpg", item.image)
        self._add(tar, f"{item.key}.txt", item.text.encode())
        self._add(tar, f"{item.key}.json", json.dumps(metadata, ensure_ascii=False).encode())
        self.counts[item.split] = self.counts.get(item.split, 0) + 1

    def _tar(self, split: str) -> tarfile.TarFile:
        done = self.counts.get(split, 0)
        tar = self.tars.get(split)
        if tar is None or (done and done % self.shard_size == 0):
            if tar is not None:
                tar.close()
            names = self.files.setdefault(split, [])
            name = f"{split}-{len(names):06d}.tar"
            names.append(name)
            # Closed in close() or when the next shard opens: a shard outlives one call.
            tar = tarfile.open(self.root / name, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
            self.tars[split] = tar
        return tar

    def _add(self, tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), self.mtime, 0o644
        tar.addfile(info, io.BytesIO(data))

    def close(self) -> dict[str, Any]:
        for tar in self.tars.values():
            tar.close()
        return {"files": self.files}


SPEC = FormatSpec(
    name="webdataset",
    summary="WebDataset tar shards of KEY.jpg + KEY.txt + KEY.json (boxes, relations, provenance)",
    layout="train-000000.tar, train-000001.tar, …, validation-000000.tar",
    usage=(
        "```python\nimport glob\nimport webdataset as wds\n\n"
        'shards = sorted(glob.glob("{out}/train-*.tar"))\n'
        'ds = wds.WebDataset(shards, shardshuffle=False).decode("pil")\n'
        'ds = ds.to_tuple("jpg", "txt", "json")\n'
        "for image, text, meta in ds:\n"
        '    meta["relations"]  # subject/object boxes, soft, strict, margin\n```'
    ),
    jpeg_only=True,
    open=WebDatasetWriter,
)
