"""A Hugging Face imagefolder: ``{split}/KEY.ext`` with one ``metadata.jsonl`` per split.

This is what diffusers' training scripts read (``load_dataset("imagefolder", data_dir=…)``, image
column ``image``, caption column ``text``). ``datasets`` infers the metadata's types from the
first block of each file, and a block whose rows all have an empty relation list reads as a list
of nulls that the later rows cannot be cast to. So rows go to a spool first and the file starts
with a row that has relations (the rows' order in the file does not matter: each names its image).
"""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import IO, Any

from esplora.services.exports.common import ExportItem, FileSink, FormatSpec, WriteTarget


class _Split:
    def __init__(self, folder: Path, files: FileSink) -> None:
        self.folder, self.files = folder, files
        folder.mkdir(parents=True, exist_ok=True)
        self.spool_path = folder / ".metadata.spool"
        self.spool: IO[str] = self.spool_path.open("w", encoding="utf-8")
        self.rows = 0
        self.exemplar: int | None = None  # the row (line number) written first

    def add(self, item: ExportItem) -> None:
        self.files.write(self.folder / item.file_name, item.image)
        if self.exemplar is None and item.relations:
            self.exemplar = self.rows
        self.spool.write(json.dumps(_row(item), ensure_ascii=False) + "\n")
        self.rows += 1

    def close(self) -> None:
        self.spool.close()
        first = self.exemplar or 0
        # Two passes over the spool: the exemplar row, then every other row (memory stays flat
        # however far down the exemplar is).
        with (self.folder / "metadata.jsonl").open("w", encoding="utf-8") as out:
            with self.spool_path.open(encoding="utf-8") as spool:
                out.writelines(islice(spool, first, first + 1))
            with self.spool_path.open(encoding="utf-8") as spool:
                out.writelines(line for index, line in enumerate(spool) if index != first)
        self.spool_path.unlink()


def _row(item: ExportItem) -> dict[str, Any]:
    # No nulls: a block of rows where a field is always null reads as type null, which the
    # other split's file (or a later block) then contradicts. Missing provenance is "".
    provenance = {k: "" if v is None else v for k, v in item.provenance().items()}
    return {
        "file_name": item.file_name,
        "text": item.text,
        "key": item.key,
        "width": item.member.width,
        "height": item.member.height,
        "objects": item.object_dicts(),
        "relations": item.relation_dicts(),
        **provenance,
    }


class ImageFolderWriter:
    """Writes ``train/`` and ``validation/`` folders of images plus ``metadata.jsonl``."""

    def __init__(self, target: WriteTarget) -> None:
        self.root, self.files = target.root, target.files
        self.splits: dict[str, _Split] = {}

    def write(self, item: ExportItem) -> None:
        split = self.splits.get(item.split)
        if split is None:
            split = self.splits[item.split] = _Split(self.root / item.split, self.files)
        split.add(item)

    def close(self) -> dict[str, Any]:
        for split in self.splits.values():
            split.close()
        bare = sorted(name for name, s in self.splits.items() if s.exemplar is None)
        warnings = []
        if bare and len(bare) < len(self.splits):
            warnings.append(
                f"no sample of {', '.join(bare)} has a relation: `datasets` reads its relation "
                "column as a list of nulls and refuses to load it together with the other "
                "split; load each split folder on its own (data_dir=…/SPLIT) or use parquet"
            )
        return {"folders": sorted(self.splits), "warnings": warnings}


SPEC = FormatSpec(
    name="imagefolder",
    summary="Hugging Face imagefolder: images + metadata.jsonl (text, boxes, relations) per split",
    layout="train/KEY.jpg …, train/metadata.jsonl, validation/…",
    usage=(
        "```python\nfrom datasets import load_dataset\n\n"
        'ds = load_dataset("imagefolder", data_dir="{out}")\n'
        'ds["train"][0]["image"], ds["train"][0]["text"], ds["train"][0]["relations"]\n```\n\n'
        "diffusers' `train_text_to_image_lora.py`: `--train_data_dir {out} --caption_column text`."
    ),
    jpeg_only=False,
    open=ImageFolderWriter,
)
