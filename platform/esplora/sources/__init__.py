"""Reading datasets: one reader per format, image decoding, the caption filter.

No database access here: readers yield :class:`~esplora.sources.items.SourceItem` values lazily
and the ingest service stores them.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from esplora.errors import EsploraError
from esplora.sources.items import SourceItem


class SourceFormat(StrEnum):
    """The formats ``esplora ingest --format`` accepts (also the source's kind in the store)."""

    IMG2DATASET = "img2dataset"
    FOLDER = "folder"
    COCO = "coco"


class Reader(Protocol):
    """A source opened for reading: its layout, a size estimate and its items."""

    layout: str

    def total(self) -> int | None: ...

    def __iter__(self) -> Iterator[SourceItem]: ...


def open_reader(source_format: SourceFormat | str, path: Path) -> Reader:
    """A reader of ``path`` in ``source_format``; :class:`EsploraError` when it is not there."""
    if not path.exists():
        raise EsploraError(f"{path} does not exist")
    try:
        kind = SourceFormat(source_format)
    except ValueError:
        names = ", ".join(f.value for f in SourceFormat)
        raise EsploraError(f"unknown format {source_format!r}; expected one of: {names}") from None
    if kind is SourceFormat.IMG2DATASET:
        from esplora.sources.img2dataset import Img2DatasetReader

        return Img2DatasetReader(path)
    if kind is SourceFormat.FOLDER:
        from esplora.sources.folder import FolderReader

        return FolderReader(path)
    from esplora.sources.coco import CocoReader

    return CocoReader(path)


__all__ = ["Reader", "SourceFormat", "SourceItem", "open_reader"]
