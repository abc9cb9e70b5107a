"""A folder of images with captions: sidecar ``.txt`` files or a Hugging Face ``metadata.jsonl``.

Every file with an image extension under the folder (recursively, hidden folders skipped) is one
item keyed by its path relative to the folder. Its caption comes from the ``metadata.jsonl`` of
its folder or any folder above (Hugging Face imagefolder: ``file_name`` relative to the metadata
file, caption in ``text`` or ``caption``), else from ``<stem>.txt`` beside it, else it is empty
(the caption filter then marks it excluded). A ``<stem>.json`` beside it adds metadata.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esplora.errors import EsploraError
from esplora.sources.items import SourceItem, clean_text, json_safe

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
CAPTION_FIELDS = ("text", "caption")
METADATA_FILE = "metadata.jsonl"


@dataclass(frozen=True, slots=True)
class _Metadata:
    rows: dict[Path, dict[str, Any]]  # image path (resolved) → its row
    problems: list[SourceItem]


class FolderReader:
    """Reads images plus captions from a folder tree."""

    layout = "folder"

    def __init__(self, path: Path) -> None:
        if not path.is_dir():
            raise EsploraError(f"{path} is not a folder")
        self.path = path
        self._images: list[Path] | None = None

    def images(self) -> list[Path]:
        """The image files, sorted by relative path (listed once, read lazily)."""
        if self._images is None:
            self._images = sorted(p for p in _walk(self.path) if p.suffix.lower() in IMAGE_SUFFIXES)
        return self._images

    def total(self) -> int | None:
        """How many image files the folder holds."""
        return len(self.images())

    def __iter__(self) -> Iterator[SourceItem]:
        metadata = _read_metadata(self.path)
        yield from metadata.problems
        for path in self.images():
            yield _item(path, self.path, metadata.rows.pop(path.resolve(), None))
        for missing in metadata.rows.values():  # rows naming files that are not there
            yield SourceItem.failed(str(missing["file_name"]), "missing_file", "listed in metadata")


def _walk(root: Path) -> Iterator[Path]:
    for path in root.iterdir():
        if path.name.startswith("."):
            continue
        if path.is_dir():
            yield from _walk(path)
        elif path.is_file():
            yield path


def _read_metadata(root: Path) -> _Metadata:
    rows: dict[Path, dict[str, Any]] = {}
    problems: list[SourceItem] = []
    for jsonl in sorted(p for p in _walk(root) if p.name == METADATA_FILE):
        relative = jsonl.relative_to(root).as_posix()
        with jsonl.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                row, problem = _metadata_row(line, f"{relative}:{number}")
                if problem is not None:
                    problems.append(problem)
                elif row is not None:
                    target = jsonl.parent / str(row["file_name"])
                    name = (
                        target.relative_to(root).as_posix()
                        if target.is_relative_to(root)
                        else str(target)
                    )
                    rows[target.resolve()] = {**row, "file_name": name}
    return _Metadata(rows, problems)


def _metadata_row(line: str, where: str) -> tuple[dict[str, Any] | None, SourceItem | None]:
    if not line.strip():
        return None, None
    try:
        row = json.loads(line)
    except ValueError as error:
        return None, SourceItem.failed(where, "bad_metadata", str(error))
    if not isinstance(row, dict) or "file_name" not in row:
        return None, SourceItem.failed(where, "bad_metadata", "a row needs a 'file_name'")
    return row, None


def _item(path: Path, root: Path, row: dict[str, Any] | None) -> SourceItem:
    key = path.relative_to(root).as_posix()
    meta: dict[str, Any] = dict(row or {})
    sidecar_json = path.with_suffix(".json")
    if sidecar_json.is_file():
        try:
            meta = {**json.loads(sidecar_json.read_text(encoding="utf-8")), **meta}
        except (ValueError, TypeError) as error:
            return SourceItem.failed(key, "bad_metadata", f"{sidecar_json.name}: {error}")
    caption = _caption(path, meta)
    meta = {k: v for k, v in meta.items() if k not in CAPTION_FIELDS}
    try:
        data = path.read_bytes()
    except OSError as error:
        return SourceItem.failed(key, "unreadable", str(error))
    return SourceItem(key=key, caption=caption, meta=json_safe(meta), data=data)


def _caption(path: Path, meta: dict[str, Any]) -> str:
    for name in CAPTION_FIELDS:
        if isinstance(meta.get(name), str):
            return clean_text(meta[name]).strip()
    sidecar = path.with_suffix(".txt")
    if sidecar.is_file():
        return clean_text(sidecar.read_text(encoding="utf-8", errors="replace")).strip()
    return ""
