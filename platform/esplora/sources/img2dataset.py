"""img2dataset output folders: webdataset shards, the ``files`` layout and the ``parquet`` layout.

img2dataset writes, per shard ``NNNNN``:

- ``webdataset``: ``NNNNN.tar`` holding ``<key>.jpg``, ``<key>.txt`` and ``<key>.json`` for each
  downloaded sample, and ``NNNNN.parquet`` with one metadata row per input row, downloaded or not;
- ``files``: a folder ``NNNNN/`` with the same three files per sample, and ``NNNNN.parquet``;
- ``parquet``: ``NNNNN.parquet`` with the image bytes in a ``jpg`` column, the caption in ``txt``.

The layout is detected from what the folder holds. Shards are streamed: one sample's bytes are in
memory at a time. Rows whose ``status`` is not ``success`` become ``not_downloaded`` items; a
``success`` row whose sample is absent from its shard becomes a ``missing_from_shard`` failure.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator, Mapping
from itertools import groupby
from pathlib import Path
from typing import Any

from esplora.errors import EsploraError
from esplora.sources.items import NOT_DOWNLOADED, SourceItem, clean_text, json_safe

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
CAPTION_COLUMNS = ("txt", "caption")
_BATCH_ROWS = 64


def _parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow ships with the ui extra
        raise EsploraError("reading parquet needs pyarrow: pip install 'esplora[ui]'") from None
    return pq


class Img2DatasetReader:
    """Reads one img2dataset output folder (or a single ``.tar`` / ``.parquet`` shard)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.layout, self._shards = _detect(path)

    def total(self) -> int | None:
        """Rows across the shards' parquet files (cheap: footers only), or ``None``."""
        parquets = [_metadata_path(s) if self.layout != "parquet" else s for s in self._shards]
        if not parquets or not all(p.is_file() for p in parquets):
            return None
        try:
            return sum(int(_parquet().ParquetFile(p).metadata.num_rows) for p in parquets)
        except Exception:  # a damaged footer is reported per shard while reading
            return None

    def __iter__(self) -> Iterator[SourceItem]:
        read = {"webdataset": _read_tar_shard, "files": _read_files_shard}
        reader = read.get(self.layout, _read_parquet_shard)
        for shard in self._shards:
            yield from reader(shard)


def _detect(path: Path) -> tuple[str, list[Path]]:
    if path.is_file():
        if path.suffix == ".tar":
            return "webdataset", [path]
        if path.suffix == ".parquet":
            return "parquet", [path]
        raise EsploraError(f"{path} is neither an img2dataset .tar shard nor a .parquet file")
    if tars := sorted(path.glob("*.tar")):
        return "webdataset", tars
    if folders := sorted(p for p in path.iterdir() if p.is_dir() and p.name.isdigit()):
        return "files", folders
    if parquets := sorted(path.glob("*.parquet")):
        return "parquet", parquets
    raise EsploraError(f"no img2dataset output (.tar shards, NNNNN/ folders, .parquet) in {path}")


def _metadata_path(shard: Path) -> Path:
    return shard.with_name(shard.name.removesuffix(".tar") + ".parquet")


# --- metadata rows (webdataset and files layouts) --------------------------------------------


def _metadata_rows(parquet: Path) -> tuple[dict[str, dict[str, Any]], list[SourceItem]]:
    """The shard's parquet rows by key, and failures describing an unusable parquet."""
    if not parquet.is_file():
        return {}, []
    try:
        rows = _parquet().read_table(parquet).to_pylist()
    except Exception as error:  # pyarrow raises several types for damaged files
        return {}, [SourceItem.failed(parquet.name, "bad_parquet", str(error))]
    if rows and "key" not in rows[0]:
        detail = "no 'key' column: the samples keep their .json metadata only"
        return {}, [SourceItem.failed(parquet.name, "missing_column", detail)]
    return {str(row["key"]): row for row in rows}, []


def _leftovers(
    rows: Mapping[str, Mapping[str, Any]], seen: set[str], where: str
) -> Iterator[SourceItem]:
    """Rows without a sample: not downloaded, or downloaded but missing from the shard."""
    for key, row in rows.items():
        if key in seen:
            continue
        status = str(row.get("status") or "success")
        if status == "success":
            yield SourceItem.failed(key, "missing_from_shard", f"listed as downloaded in {where}")
        else:
            detail = f"{status}: {row.get('error_message') or ''}".strip()
            yield SourceItem.failed(key, NOT_DOWNLOADED, detail, row)


def _sample(key: str, members: Mapping[str, bytes], row: Mapping[str, Any] | None) -> SourceItem:
    """One sample from its members (extension → bytes) and its parquet row."""
    image_ext = next((ext for ext in IMAGE_EXTENSIONS if ext in members), None)
    if image_ext is None:
        return SourceItem.failed(key, "missing_image", f"members: {sorted(members)}")
    if "txt" not in members:
        return SourceItem.failed(key, "missing_caption", f"no {key}.txt beside {key}.{image_ext}")
    meta: dict[str, Any] = dict(row or {})
    if "json" in members:
        try:
            meta.update(json.loads(members["json"]))
        except (ValueError, TypeError) as error:
            return SourceItem.failed(key, "bad_metadata", f"{key}.json: {error}")
    caption = clean_text(members["txt"].decode("utf-8", errors="replace")).strip()
    return SourceItem(key=key, caption=caption, meta=json_safe(meta), data=members[image_ext])


# --- webdataset -------------------------------------------------------------------------------


def _tar_groups(shard: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Consecutive members sharing a key (webdataset keeps a sample's members together).

    Raises :class:`tarfile.ReadError` when the shard does not end cleanly; the sample being
    read when it broke off is then not yielded (its members may be incomplete).
    """
    with tarfile.open(shard, mode="r|") as tar:
        key: str | None = None
        members: dict[str, bytes] = {}
        for member in tar:
            if not member.isfile():
                continue
            name_key, _, ext = member.name.rsplit("/", 1)[-1].partition(".")
            if key is not None and name_key != key:
                yield key, members
                members = {}
            key = name_key
            handle = tar.extractfile(member)
            members[ext.lower()] = handle.read() if handle else b""
        end = tar.offset
    _check_end(shard, end)
    if key is not None:
        yield key, members


def _check_end(shard: Path, offset: int) -> None:
    """tarfile stops silently at a damaged header past the first: look at what it stopped on."""
    with shard.open("rb") as handle:
        handle.seek(offset)
        block = handle.read(512)
    if block.strip(b"\0"):
        raise tarfile.ReadError(f"invalid tar header at byte {offset}")


def _read_tar_shard(shard: Path) -> Iterator[SourceItem]:
    rows, problems = _metadata_rows(_metadata_path(shard))
    yield from problems
    seen: set[str] = set()
    try:
        for key, members in _tar_groups(shard):
            seen.add(key)
            yield _sample(key, members, rows.get(key))
    except (tarfile.TarError, OSError, EOFError) as error:
        # The rest of the shard cannot be read; its listed samples follow as missing.
        yield SourceItem.failed(shard.name, "corrupt_shard", str(error) or type(error).__name__)
    yield from _leftovers(rows, seen, shard.name)


# --- files ------------------------------------------------------------------------------------


def _read_files_shard(folder: Path) -> Iterator[SourceItem]:
    rows, problems = _metadata_rows(folder.with_name(folder.name + ".parquet"))
    yield from problems
    seen: set[str] = set()
    files = sorted(p for p in folder.iterdir() if p.is_file())
    for key, group in groupby(files, key=lambda p: p.name.partition(".")[0]):
        seen.add(key)
        members = {p.name.partition(".")[2].lower(): p.read_bytes() for p in group}
        yield _sample(key, members, rows.get(key))
    yield from _leftovers(rows, seen, folder.name)


# --- parquet ----------------------------------------------------------------------------------


def _read_parquet_shard(path: Path) -> Iterator[SourceItem]:
    try:
        file = _parquet().ParquetFile(path)
        names = list(file.schema_arrow.names)
    except Exception as error:  # not a parquet file, or a damaged footer
        yield SourceItem.failed(path.name, "bad_parquet", str(error))
        return
    image_column = next((c for c in IMAGE_EXTENSIONS if c in names), None)
    caption_column = next((c for c in CAPTION_COLUMNS if c in names), None)
    index = 0
    for batch in file.iter_batches(batch_size=_BATCH_ROWS):
        for row in batch.to_pylist():
            key = str(row["key"]) if row.get("key") is not None else f"{path.name}#{index}"
            index += 1
            yield _parquet_row(key, row, image_column, caption_column)


def _parquet_row(
    key: str, row: dict[str, Any], image_column: str | None, caption_column: str | None
) -> SourceItem:
    status = str(row.get("status") or "success")
    if status != "success":
        detail = f"{status}: {row.get('error_message') or ''}".strip()
        return SourceItem.failed(key, NOT_DOWNLOADED, detail, _without(row, image_column))
    if image_column is None:
        return SourceItem.failed(key, "missing_column", "no image column (jpg, png or webp)")
    if caption_column is None:
        return SourceItem.failed(key, "missing_column", "no caption column (txt or caption)")
    data = row.get(image_column)
    if not data:
        return SourceItem.failed(key, "missing_image", f"empty {image_column} column")
    caption = clean_text(str(row.get(caption_column) or "")).strip()
    meta = _without(row, image_column)
    return SourceItem(key=key, caption=caption, meta=json_safe(meta), data=bytes(data))


def _without(row: Mapping[str, Any], column: str | None) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != column}
