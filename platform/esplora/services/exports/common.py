"""What every export format shares: options, the per-sample item, skips and the writer protocol.

An :class:`ExportItem` is one snapshot member made ready to write: its training text, the image
bytes (the stored original, or a normalised re-encoding when the original would not load the
way its boxes were measured), the distinct labelled boxes of its relations and the relations
themselves pointing at those boxes. Formats only lay items out; they never read the store.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from esplora.errors import EsploraError

Box = tuple[float, float, float, float]
ProgressCallback = Callable[[int, int], None]

# Samples per parquet file / tar shard by default: ~5k small images is a few hundred MB.
DEFAULT_SHARD_SIZE = 5000


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """How the samples are written. ``trigger`` and ``caption_prefix`` shape the training
    text of every format: ``"{trigger}, {caption_prefix}{text}"``."""

    trigger: str | None = None
    caption_prefix: str = ""
    shard_size: int = DEFAULT_SHARD_SIZE
    repeats: int = 1  # kohya's {repeats}_{name} folder
    resolution: int = 1024  # kohya's dataset_config.toml
    batch_size: int = 256  # members read (and images prepared) per step
    threads: int = 4  # image reads and re-encodes in parallel (I/O and zlib release the GIL)

    def __post_init__(self) -> None:
        for name in ("shard_size", "repeats", "resolution", "batch_size", "threads"):
            if getattr(self, name) < 1:
                raise EsploraError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.trigger is not None and (not self.trigger.strip() or "\n" in self.trigger):
            raise EsploraError("--trigger must be a non-empty word on one line")
        if "\n" in self.caption_prefix:
            raise EsploraError("--caption-prefix must be on one line")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, for the job row."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportOptions:
        """Options from a job row (keys this version does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def training_text(self, text: str) -> str:
        """The caption a trainer reads for ``text``."""
        caption = f"{self.caption_prefix}{text}"
        return f"{self.trigger.strip()}, {caption}" if self.trigger else caption


@dataclass(frozen=True, slots=True)
class Member:
    """A frozen snapshot member joined with its image row and provenance (``None`` where gone)."""

    sample_id: int
    image_sha256: str
    text: str
    text_source: str
    relations: list[Any]
    review_state: str
    split: str
    uri: str | None
    width: int | None
    height: int | None
    origin: str | None
    source: str | None
    source_key: str | None


@dataclass(frozen=True, slots=True)
class ExportObject:
    """A labelled box in pixels of the exported image (x0, y0, x1, y1)."""

    label: str
    box: Box


@dataclass(frozen=True, slots=True)
class ExportRelation:
    """A relation between two of the item's objects (indices into ``ExportItem.objects``)."""

    relation: str
    subject: int
    object: int
    soft: bool | None
    strict: bool | None
    margin: float | None
    state: str | None


@dataclass(frozen=True, slots=True)
class Skip:
    """A member that was not exported, and why (``reason`` is a stable code)."""

    sample_id: int
    image_sha256: str
    split: str
    reason: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ExportItem:
    """One sample ready to write. ``key`` is unique in the export and orders it."""

    key: str
    member: Member
    text: str
    image: bytes
    extension: str
    original_format: str
    reencoded: str  # why the bytes differ from the stored original ("" when they do not)
    objects: tuple[ExportObject, ...]
    relations: tuple[ExportRelation, ...]

    @property
    def file_name(self) -> str:
        return f"{self.key}.{self.extension}"

    @property
    def split(self) -> str:
        return self.member.split

    def provenance(self) -> dict[str, Any]:
        """Where the sample came from (JSON-safe)."""
        m = self.member
        return {"sample_id": m.sample_id, "image_sha256": m.image_sha256, "source": m.source,
                "source_key": m.source_key, "origin": m.origin, "text_source": m.text_source,
                "review_state": m.review_state, "original_format": self.original_format,
                "reencoded": self.reencoded}  # fmt: skip

    def object_dicts(self) -> list[dict[str, Any]]:
        return [{"label": o.label, "box": list(o.box)} for o in self.objects]

    def relation_dicts(self) -> list[dict[str, Any]]:
        """Relations with both indices and the boxes themselves, so each reads on its own."""
        rows = []
        for r in self.relations:
            subject, obj = self.objects[r.subject], self.objects[r.object]
            rows.append({"relation": r.relation, "subject": r.subject, "object": r.object,
                         "subject_label": subject.label, "object_label": obj.label,
                         "subject_box": list(subject.box), "object_box": list(obj.box),
                         "soft": r.soft, "strict": r.strict, "margin": r.margin,
                         "state": r.state})  # fmt: skip
        return rows


def parse_relations(raw: list[Any]) -> tuple[tuple[ExportObject, ...], tuple[ExportRelation, ...]]:
    """The frozen relation JSON as distinct objects plus relations pointing at them.

    Raises ``ValueError`` (the member is then skipped as ``malformed``) on a missing key.
    """
    objects: dict[tuple[str, Box], int] = {}

    def index(end: dict[str, Any]) -> int:
        x0, y0, x1, y1 = (float(v) for v in end["box"])
        key = (str(end["label"]), (x0, y0, x1, y1))
        return objects.setdefault(key, len(objects))

    relations = []
    for entry in raw:
        try:
            relations.append(ExportRelation(
                relation=str(entry["relation"]), subject=index(entry["subject"]),
                object=index(entry["object"]), soft=_optional(entry.get("soft"), bool),
                strict=_optional(entry.get("strict"), bool),
                margin=_optional(entry.get("margin"), float),
                state=_optional(entry.get("state"), str)))  # fmt: skip
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"relation {entry!r}: {error!r}") from None
    found = tuple(ExportObject(label, box) for label, box in objects)
    return found, tuple(relations)


def _optional(value: Any, kind: Callable[[Any], Any]) -> Any:
    return None if value is None else kind(value)


class Writer(Protocol):
    """A format's output: items in member order, then ``close`` once (returns notes for the
    card, e.g. file counts)."""

    def write(self, item: ExportItem) -> None: ...

    def close(self) -> dict[str, Any]: ...


class FileSink:
    """Writes many small files on a few threads, at most ``limit`` in flight.

    Creating a file costs the kernel far more than the Python around it (~0.3–0.5 ms each on
    the benchmark machine), and it runs in parallel: formats with one file per image hand
    their files here. Leaving the ``with`` block waits for every write (so a failed export's
    directory is removed only once nothing writes into it any more) and raises the first
    write error.
    """

    def __init__(self, threads: int, limit: int = 64) -> None:
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="export-files")
        self.slots = threading.BoundedSemaphore(limit)  # bounds the bytes held in memory
        self.errors: list[BaseException] = []

    def write(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` soon."""
        self.slots.acquire()
        self.pool.submit(path.write_bytes, data).add_done_callback(self._done)

    def _done(self, future: Future[int]) -> None:
        self.slots.release()
        error = future.exception()
        if error is not None:
            self.errors.append(error)

    def __enter__(self) -> FileSink:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: TracebackType | None
    ) -> None:
        self.pool.shutdown(wait=True)
        if kind is None and self.errors:
            raise self.errors[0]


@dataclass(frozen=True, slots=True)
class WriteTarget:
    """Where a writer writes (``root``, a temporary sibling) and where the export will be
    once complete (``final``: configs that name paths must name this one). ``files`` writes
    one-file-per-sample formats' files in parallel."""

    root: Path
    final: Path
    snapshot: str
    options: ExportOptions
    files: FileSink
    mtime: int = 0  # tar member times: the snapshot's creation, so exports are reproducible
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FormatSpec:
    """A registered export format."""

    name: str
    summary: str
    layout: str  # the directory tree, for the card
    usage: str  # how to load it, for the card (``{out}`` is the export directory)
    jpeg_only: bool  # every image re-encoded to JPEG unless it already is one
    open: Callable[[WriteTarget], Writer]


def safe_name(text: str) -> str:
    """``text`` usable as one path segment (kohya folder names, spool files)."""
    cleaned = re.sub(r"[^\w .+-]+", "_", text).strip(" .")
    return cleaned or "dataset"
