"""What every reader yields: one :class:`SourceItem` per image-text pair (or per bad item).

Readers never raise for bad data: a corrupt member, a missing caption or a dangling id becomes an
item with :attr:`SourceItem.error` set, so one bad item never stops the rest of a dataset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Box = tuple[float, float, float, float]

# An img2dataset row whose download failed: counted and reported, never stored as a failure
# (img2dataset's own parquet already keeps its error message).
NOT_DOWNLOADED = "not_downloaded"


@dataclass(frozen=True, slots=True)
class ItemError:
    """Why an item could not be read: a stable reason code and a human-readable detail."""

    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Annotation:
    """A dataset box ``(x0, y0, x1, y1)`` in the pixel grid the dataset declared (see ``size``)."""

    key: str  # names the annotation in failure reports, e.g. "annotation:42"
    label: str  # canonical label (lexicon)
    phrase: str  # the dataset's own category name
    box: Box


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One item of a source: an image-text pair with its metadata, or an error.

    ``data`` holds the original file bytes (``None`` for errors). ``annotation_size`` is the
    ``(width, height)`` the annotations' boxes refer to, when the dataset says so.
    """

    key: str
    caption: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    data: bytes | None = None
    error: ItemError | None = None
    annotations: tuple[Annotation, ...] = ()
    annotation_size: tuple[int, int] | None = None

    @classmethod
    def failed(
        cls, key: str, reason: str, detail: str = "", meta: Mapping[str, Any] | None = None
    ) -> SourceItem:
        """An item that could not be read, and why (with what metadata the source had)."""
        return cls(key=key, meta=json_safe(meta or {}), error=ItemError(reason, detail))


def clean_text(text: str) -> str:
    """``text`` without NUL characters (PostgreSQL text and JSONB refuse them)."""
    return text.replace("\x00", "")


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON: NaN/inf → None, bytes dropped, tuples → lists, keys → str.

    Both stores accept the result (PostgreSQL's JSONB refuses NaN and NUL characters).
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {
            clean_text(str(k)): json_safe(v)
            for k, v in value.items()
            if not isinstance(v, bytes | bytearray)
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return json_safe(value.item())
    if hasattr(value, "isoformat"):  # dates and times from parquet
        return str(value.isoformat())
    return clean_text(str(value))
