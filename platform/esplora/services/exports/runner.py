"""Writing a snapshot in one format: validate, stream members, write, publish atomically.

The export is written into a hidden sibling directory (``.NAME.partial-…``) and renamed onto
``out`` only once complete, card included: a crash or an error never leaves a half-written export
where a trainer would take it for a finished one, and an error removes the partial directory.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any
from uuid import uuid4

from esplora.db.engine import Store
from esplora.errors import EsploraError
from esplora.services.exports import to_coco, to_imagefolder, to_kohya, to_parquet, to_webdataset
from esplora.services.exports.card import CardFacts, render_card
from esplora.services.exports.common import (
    ExportItem,
    ExportOptions,
    FileSink,
    FormatSpec,
    ProgressCallback,
    Skip,
    WriteTarget,
)
from esplora.services.exports.members import (
    SnapshotInfo,
    count_members,
    iter_member_pages,
    load_snapshot,
)
from esplora.services.exports.prepare import prepare
from esplora.settings import Settings

_SPECS = (to_parquet.SPEC, to_webdataset.SPEC, to_imagefolder.SPEC, to_kohya.SPEC, to_coco.SPEC)
FORMATS: dict[str, FormatSpec] = {spec.name: spec for spec in _SPECS}
REPORT_SKIPS = 20  # skipped members named in the report (the card names more, the file all)


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What an export wrote: samples per split, and what it skipped and why."""

    snapshot: str
    content_hash: str
    format: str
    out_dir: str
    total: int
    written: int
    splits: dict[str, int]
    skipped: int
    skip_reasons: dict[str, int]
    skips: tuple[Skip, ...]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (the CLI's ``--json`` and the job row's ``report``)."""
        return {**asdict(self), "skips": [s.to_dict() for s in self.skips]}


def format_spec(name: str) -> FormatSpec:
    """The registered format ``name``; a clear error naming the others."""
    spec = FORMATS.get(name.lower())
    if spec is None:
        raise EsploraError(f"unknown export format {name!r}; formats are: {', '.join(FORMATS)}")
    return spec


def check_target(out: Path) -> Path:
    """``out`` made absolute; an error when it exists and is not an empty directory."""
    out = out.expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise EsploraError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise EsploraError(f"{out} exists and is not empty: choose another --out or empty it")
    return out


def export_snapshot(
    store: Store,
    settings: Settings,
    snapshot: str,
    fmt: str,
    out: Path,
    options: ExportOptions | None = None,
    progress: ProgressCallback | None = None,
    *,
    partial_name: str | None = None,
) -> ExportReport:
    """Write snapshot ``snapshot`` as ``fmt`` into the new directory ``out``.

    ``progress(done, total)`` follows the members. ``partial_name`` fixes the temporary
    directory's name (a job that runs again after a crash removes its own leftovers).
    """
    started = time.monotonic()
    spec, options = format_spec(fmt), options or ExportOptions()
    out = check_target(out)
    info = load_snapshot(store, snapshot)
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.parent / (partial_name or f".{out.name}.partial-{uuid4().hex[:12]}")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    try:
        mtime = int(info.created_at.timestamp()) if info.created_at else 0
        with FileSink(options.threads) as files:
            target = WriteTarget(temp, out, info.name, options, files, mtime)
            facts = _write(store, settings, info, spec, target, progress)
        card = render_card(info, spec, options, facts, str(out))
        (temp / "README.md").write_text(card, encoding="utf-8")
        _publish(temp, out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    skipped = sum(facts.skip_reasons.values())
    return ExportReport(info.name, info.content_hash, spec.name, str(out), facts.total,
                        sum(facts.splits.values()), dict(facts.splits), skipped,
                        dict(facts.skip_reasons), facts.skips[:REPORT_SKIPS],
                        round(time.monotonic() - started, 3))  # fmt: skip


class _Tally:
    """Counts per split and skips; every skip goes to ``skipped.jsonl`` (opened on the first)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.splits: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.first: list[Skip] = []
        self.file: IO[str] | None = None

    def add(self, result: ExportItem | Skip) -> ExportItem | None:
        if isinstance(result, ExportItem):
            self.splits[result.split] += 1
            return result
        self.reasons[result.reason] += 1
        if len(self.first) < 100:
            self.first.append(result)
        if self.file is None:
            self.file = (self.root / "skipped.jsonl").open("w", encoding="utf-8")
        self.file.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        return None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _write(
    store: Store,
    settings: Settings,
    info: SnapshotInfo,
    spec: FormatSpec,
    target: WriteTarget,
    progress: ProgressCallback | None,
) -> CardFacts:
    total, options = count_members(store, info.id), target.options
    writer, tally, done = spec.open(target), _Tally(target.root), 0
    if progress:
        progress(0, total)

    def ready(member_key: tuple[Any, str]) -> ExportItem | Skip:
        member, key = member_key
        return prepare(member, key, settings.artefacts_dir, options, jpeg_only=spec.jpeg_only)

    try:
        # Threads read, hash and re-encode a page's images (all release the GIL); the writer
        # then takes the items in member order, so the output does not depend on timing.
        with ThreadPoolExecutor(options.threads) as pool:
            for page in iter_member_pages(store, info.id, options.batch_size):
                keys = [f"{done + i:08d}" for i in range(len(page))]
                for result in pool.map(ready, zip(page, keys, strict=True)):
                    item = tally.add(result)
                    if item is not None:
                        writer.write(item)
                done += len(page)
                if progress:
                    progress(done, total)
        notes = writer.close()
    finally:
        tally.close()
    return CardFacts(total, dict(tally.splits), dict(tally.reasons), tuple(tally.first), notes)


def _publish(temp: Path, out: Path) -> None:
    """Rename the finished export onto ``out`` (an empty directory there is replaced)."""
    check_target(out)  # something may have appeared there while we wrote
    try:
        temp.replace(out)
    except OSError as error:
        raise EsploraError(f"cannot move the export into {out}: {error.strerror}") from None
