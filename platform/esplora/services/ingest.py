"""Ingest: read a dataset and store each image once and each image-text pair as a sample.

One unit of work per batch of items. Before it opens, the batch's known keys and images are
read, new images are decoded and their originals written (content-addressed, so a crash leaves
at most an unreferenced file that the next run reuses); the write transaction only inserts.

- An image is identified by the SHA-256 of its bytes: seen bytes add a sample, never an image.
- Every new image gets one stage row per stage: ``pending`` when at least one of its samples
  passes the caption filter, else ``skipped`` (producer ``ingest:filter``); a later kept sample
  of the image turns those back to ``pending``. Images with dataset boxes (COCO) skip
  ``detect`` (producer ``coco:<source>``): later stages use the annotations.
- Near-duplicates: a new image whose pHash is within ``near_duplicate_distance`` bits of an
  earlier image's gets ``near_duplicate_of`` = the smallest such id (it is still processed).
- Failures are stored once per (source, key); an item that later reads fine replaces its failure.
- Idempotent: keys already stored are skipped before decoding, so a second run over the same
  input writes no row and no file. One ingest per source at a time (keys are checked, then
  inserted: a concurrent run of the same source would hit the unique constraints).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import select

from esplora.db.engine import Store
from esplora.db.enums import SourceKind
from esplora.db.images import Source
from esplora.errors import EsploraError
from esplora.services.ingest_rows import (
    BatchPlan,
    KnownImage,
    KnownState,
    NewImage,
    NewSample,
    fit_key,
    load_phash_index,
    read_known,
    write_plan,
)
from esplora.settings import Settings
from esplora.sources import SourceFormat, open_reader
from esplora.sources.filters import DEFAULT_FILTER, FilterParams, exclusion_reason
from esplora.sources.images import (
    DEFAULT_MAX_PIXELS,
    DecodedImage,
    ImageReadError,
    decode_image,
    oriented_boxes,
    sha256_hex,
    store_original,
)
from esplora.sources.items import NOT_DOWNLOADED, ItemError, SourceItem
from esplora.sources.phash import PhashIndex

EXAMPLES_PER_REASON = 3

ProgressCallback = Callable[[int, int | None], None]
# A decoded image with its original's URI (None when it was not stored), or why it failed.
_Decoded = tuple[DecodedImage, str | None] | ImageReadError


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """How ingest reads and marks: batch size, pixel limit, near-duplicate distance, filter."""

    batch_size: int = 256
    max_pixels: int = DEFAULT_MAX_PIXELS
    near_duplicate_distance: int = 4  # pHash bits; a resized or recompressed copy moves 0–4
    filters: FilterParams = DEFAULT_FILTER
    # Threads decoding images and writing originals (Pillow and file writes release the GIL).
    workers: int = field(default_factory=lambda: min(8, os.cpu_count() or 1))


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What one run read and wrote. ``failed`` counts the input's bad items, including those
    an earlier run already recorded; ``new_failures`` counts the rows this run added."""

    source: str
    layout: str
    read: int
    imported_images: int
    imported_samples: int
    imported_objects: int
    already_present: int
    duplicate_images: int
    near_duplicates: int
    excluded: dict[str, int]
    not_downloaded: int
    failed: dict[str, int]
    failure_examples: dict[str, list[str]]
    new_failures: int
    decode_notes: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class _Tally:
    counts: Counter[str] = field(default_factory=Counter)  # the report's integer fields
    excluded: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    notes: Counter[str] = field(default_factory=Counter)

    def fail(self, key: str, reason: str) -> None:
        self.failed[reason] += 1
        if len(self.examples[reason]) < EXAMPLES_PER_REASON:
            self.examples[reason].append(key)

    def report(self, source: str, layout: str) -> IngestReport:
        names = ("read", "imported_images", "imported_samples", "imported_objects",
                 "already_present", "duplicate_images", "near_duplicates", "not_downloaded",
                 "new_failures")  # fmt: skip
        return IngestReport(
            source=source,
            layout=layout,
            excluded=dict(sorted(self.excluded.items())),
            failed=dict(sorted(self.failed.items())),
            failure_examples={k: list(v) for k, v in sorted(self.examples.items())},
            decode_notes=dict(sorted(self.notes.items())),
            **{name: self.counts[name] for name in names},
        )


@dataclass
class _Run:
    store: Store
    artefacts_dir: Path
    source_id: int
    producer: str  # of annotation objects: "coco:<source name>"
    options: IngestOptions
    index: PhashIndex
    pool: Executor | None = None
    tally: _Tally = field(default_factory=_Tally)


def options_from(settings: Settings) -> IngestOptions:
    """The ingest options the settings ask for (``ESPLORA_INGEST_*``)."""
    filters = FilterParams(
        min_side=settings.ingest_min_side,
        max_watermark=settings.ingest_max_watermark,
        max_unsafe=settings.ingest_max_unsafe,
    )
    return IngestOptions(
        max_pixels=settings.ingest_max_pixels,
        near_duplicate_distance=settings.ingest_near_duplicate_distance,
        filters=filters,
        workers=settings.ingest_workers or min(8, os.cpu_count() or 1),
    )


def ingest(
    store: Store,
    settings: Settings,
    path: Path,
    *,
    source_format: SourceFormat | str,
    source_name: str | None = None,
    limit: int | None = None,
    options: IngestOptions | None = None,
    progress: ProgressCallback | None = None,
) -> IngestReport:
    """Read at most ``limit`` items of ``path`` (in ``source_format``) into the store.

    The source is created on first use, named ``source_name`` or after the path. Originals are
    written under ``settings.artefacts_dir``. ``progress(read, expected)`` follows each batch.
    """
    if limit is not None and limit < 0:
        raise EsploraError(f"--limit must be at least 0, got {limit}")
    options = options or options_from(settings)
    reader = open_reader(source_format, path)
    name = source_name or (path.name if path.is_dir() else path.stem)
    kind = SourceKind(SourceFormat(source_format).value)
    source_id = _ensure_source(store, name, kind, str(path.resolve()), reader.layout)
    with store.reader() as session:
        index = load_phash_index(session)
    run = _Run(store, settings.artefacts_dir, source_id, f"coco:{name}", options, index)
    expected = _expected(reader.total(), limit)
    threads = ThreadPoolExecutor(options.workers) if options.workers > 1 else nullcontext(None)
    with threads as run.pool:
        for batch in _batches(islice(reader, limit), options.batch_size):
            _ingest_batch(run, batch)
            if progress is not None:
                progress(run.tally.counts["read"], expected)
    return run.tally.report(name, reader.layout)


def _expected(total: int | None, limit: int | None) -> int | None:
    if total is None or limit is None:
        return total if limit is None else limit
    return min(total, limit)


def _batches(items: Iterable[SourceItem], size: int) -> Iterator[list[SourceItem]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _ensure_source(store: Store, name: str, kind: SourceKind, uri: str, layout: str) -> int:
    """The source's id, creating the row only when it does not exist yet."""
    with store.reader() as session:
        existing = session.scalars(select(Source).where(Source.name == name)).one_or_none()
    if existing is not None:
        if existing.kind != kind:
            raise EsploraError(f"source {name!r} exists as {existing.kind}, not {kind}")
        return existing.id
    with store.unit_of_work() as session:
        source = Source(name=name, kind=kind, uri=uri, meta={"layout": layout})
        session.add(source)
        session.flush()
        return source.id


# --- one batch: what the store knows, the plan, the write -------------------------------------


def _ingest_batch(run: _Run, items: list[SourceItem]) -> None:
    run.tally.counts["read"] += len(items)
    digests = {id(item): sha256_hex(item.data) for item in items if item.data is not None}
    with run.store.reader() as session:
        known = read_known(
            session,
            source_id=run.source_id,
            producer=run.producer,
            keys={fit_key(item.key) for item in items},
            shas=set(digests.values()),
            with_annotations=any(item.annotations for item in items),
        )
    decoded = _decode_new(run, known, items, digests)
    plan = BatchPlan()
    for item in items:
        _plan_item(run, known, plan, item, digests.get(id(item)), decoded)
    if plan.empty():
        return
    with run.store.unit_of_work() as session:
        written = write_plan(
            session,
            plan,
            known,
            source_id=run.source_id,
            producer=run.producer,
            index=run.index,
            distance=run.options.near_duplicate_distance,
        )
    run.tally.counts.update(asdict(written))


def _decode_new(
    run: _Run, known: KnownState, items: list[SourceItem], digests: dict[int, str]
) -> dict[str, _Decoded]:
    """Decode the batch's new images and store their originals, on the thread pool.

    Decoding is most of an ingest's time; the plan that follows stays sequential (it decides
    duplicates in order), so this takes each new SHA-256's first item only.
    """
    todo: dict[str, SourceItem] = {}
    keys: set[str] = set()
    for item in items:
        sha, key = digests.get(id(item)), fit_key(item.key)
        fresh = key not in known.sample_keys and key not in keys
        if sha and item.error is None and fresh and sha not in known.images:
            todo.setdefault(sha, item)
        keys.add(key)

    def job(sha: str) -> _Decoded:
        return _decode(run, todo[sha], sha, store=True)

    results = run.pool.map(job, todo) if run.pool else map(job, todo)
    return dict(zip(todo, results, strict=True))


def _decode(run: _Run, item: SourceItem, sha: str, *, store: bool) -> _Decoded:
    """Decode one item's bytes; with ``store``, write its original (content-addressed)."""
    assert item.data is not None  # an item without an error carries its bytes
    try:
        decoded = decode_image(
            item.data, name=item.key, max_pixels=run.options.max_pixels, digest=sha
        )
    except ImageReadError as error:
        return error
    if not store:
        return decoded, None
    return decoded, store_original(item.data, sha, decoded.extension, run.artefacts_dir)


def _plan_item(
    run: _Run,
    known: KnownState,
    plan: BatchPlan,
    item: SourceItem,
    sha: str | None,
    decoded: dict[str, _Decoded],
) -> None:
    key = fit_key(item.key)
    if key in known.sample_keys:
        run.tally.counts["already_present"] += 1
        return
    if item.error is None and key in plan.keys:
        item = SourceItem.failed(item.key, "duplicate_key", "the source lists this key twice")
    if item.error is not None or sha is None:
        _plan_failure(run, known, plan, key, item.error or ItemError("missing_image"))
        return
    image = _decoded(run, known, plan, item, sha, decoded)
    if isinstance(image, ImageReadError):
        _plan_failure(run, known, plan, key, ItemError(image.reason, image.detail))
        return
    plan.keys.add(key)
    _plan_sample(run, known, plan, item, key, sha)
    if item.annotations and image is not None and sha not in plan.objects:
        _plan_objects(run, known, plan, item, sha, image)


def _plan_failure(
    run: _Run, known: KnownState, plan: BatchPlan, key: str, error: ItemError
) -> None:
    if error.reason == NOT_DOWNLOADED:
        run.tally.counts["not_downloaded"] += 1
        return
    run.tally.fail(key, error.reason)
    if key not in known.failure_keys and key not in plan.failures:
        plan.failures[key] = error


def _decoded(
    run: _Run,
    known: KnownState,
    plan: BatchPlan,
    item: SourceItem,
    sha: str,
    decoded: dict[str, _Decoded],
) -> DecodedImage | ImageReadError | None:
    """The item's decoded image when the plan needs it: new bytes, or stored bytes whose
    annotations still need orienting (decoded here, rare); ``None`` for a stored image."""
    if sha in plan.images:
        return plan.images[sha].decoded
    stored = known.images.get(sha)
    needs_boxes = bool(item.annotations) and sha not in plan.objects
    if stored is not None and not (needs_boxes and stored.id not in known.annotated):
        return None
    result = decoded.get(sha) or _decode(run, item, sha, store=stored is None)
    if isinstance(result, ImageReadError):
        return result
    image, uri = result
    if uri is not None:
        plan.images[sha] = NewImage(image, uri)
        run.tally.notes.update(note.split(":", 1)[0] for note in image.notes)
    return image


def _plan_sample(
    run: _Run, known: KnownState, plan: BatchPlan, item: SourceItem, key: str, sha: str
) -> None:
    stored, new = known.images.get(sha), plan.images.get(sha)
    reason = exclusion_reason(
        item.caption,
        item.meta,
        _size(new, stored),
        run.options.filters,
        annotated_labels={a.label for a in item.annotations},
    )
    if new is not None and reason is None:
        new.keep = True
    elif stored is not None and reason is None:
        plan.revive.add(stored.id)
    first_of_new_image = new is not None and sha not in plan.sample_shas
    run.tally.counts["duplicate_images"] += not first_of_new_image
    meta = dict(item.meta)
    if first_of_new_image and new is not None and new.decoded.notes:
        meta["_esplora"] = {"decode": list(new.decoded.notes)}
    plan.samples.append(NewSample(key, sha, item.caption, meta, reason))
    plan.sample_shas.add(sha)
    if reason is not None:
        run.tally.excluded[reason] += 1
    if key in known.failure_keys:
        plan.stale_failures.add(key)


def _size(new: NewImage | None, stored: KnownImage | None) -> tuple[int, int]:
    if new is not None:
        return new.decoded.width, new.decoded.height
    assert stored is not None  # an image is either new in this batch or already stored
    return stored.width, stored.height


def _plan_objects(
    run: _Run,
    known: KnownState,
    plan: BatchPlan,
    item: SourceItem,
    sha: str,
    decoded: DecodedImage,
) -> None:
    """The item's boxes in the stored orientation; boxes left with no area become failures."""
    boxes = oriented_boxes([a.box for a in item.annotations], item.annotation_size, decoded)
    kept = []
    for annotation, box in zip(item.annotations, boxes, strict=True):
        if box is None:
            error = ItemError("degenerate_box", f"{annotation.box} is outside the image")
            _plan_failure(run, known, plan, fit_key(annotation.key), error)
        else:
            kept.append((annotation, box))
    plan.objects[sha] = kept
