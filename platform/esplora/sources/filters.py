"""The LAION-style caption filter: which samples the later stages process.

A pure function of a sample's caption, metadata and image size. It **marks** samples excluded
with a reason; it never drops them, so changing the filter later is a query over the stored
samples, not a re-download. A sample is kept when the image is large enough, not flagged as
watermarked or unsafe (where the source has those columns), and its caption names at least two
different objects or holds a spatial phrase (the prompt grammar's phrase table).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from esplora.core.grammar import parse
from esplora.core.lexicon import DEFAULT_LEXICON, Lexicon
from esplora.core.vocabulary import Vocabulary, load_vocabulary

# Exclusion reasons, stored in ``samples.exclusion_reason``. Values are part of the schema.
TOO_SMALL = "too_small"
UNSAFE = "unsafe"
WATERMARK = "watermark"
FEW_OBJECTS = "few_objects"  # fewer than two different objects and no spatial phrase


@dataclass(frozen=True, slots=True)
class FilterParams:
    """The filter's knobs. ``enabled=False`` keeps every sample."""

    enabled: bool = True
    min_side: int = 64  # pixels, shorter side after EXIF orientation
    max_watermark: float = 0.8  # excluded when pwatermark >= this
    max_unsafe: float = 0.5  # excluded when punsafe >= this
    min_objects: int = 2  # different object labels the caption (or annotations) name
    # COCO, LVIS and urban-scene nouns with plurals and synonyms (esplora.core.vocabulary).
    vocabulary: Vocabulary = field(default_factory=load_vocabulary)


DEFAULT_FILTER = FilterParams()


def exclusion_reason(
    caption: str,
    meta: Mapping[str, Any],
    size: tuple[int, int],
    params: FilterParams = DEFAULT_FILTER,
    *,
    annotated_labels: Collection[str] = (),
) -> str | None:
    """Why the sample should be excluded (one of the reason constants), or ``None`` to keep it.

    ``annotated_labels`` are object labels the dataset itself gives (COCO boxes): they count
    as named objects, so an annotated image without captions can still be kept.
    """
    if not params.enabled:
        return None
    if min(size) < params.min_side:
        return TOO_SMALL
    if _flagged(meta, "punsafe", params.max_unsafe) or meta.get("NSFW") == "NSFW":
        return UNSAFE
    if _flagged(meta, "pwatermark", params.max_watermark):
        return WATERMARK
    labels = object_labels(caption, params) | set(annotated_labels)
    if len(labels) >= params.min_objects or has_spatial_phrase(caption, params.vocabulary.lexicon):
        return None
    return FEW_OBJECTS


def _flagged(meta: Mapping[str, Any], column: str, threshold: float) -> bool:
    value = meta.get(column)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False  # absent, null or not a number: the source has no opinion
    return math.isfinite(value) and value >= threshold


def has_spatial_phrase(caption: str, lexicon: Lexicon = DEFAULT_LEXICON) -> bool:
    """Whether the grammar finds a relation phrase ("to the left of", "above"…) in ``caption``."""
    return bool(parse(caption, lexicon=lexicon).clauses)


def object_labels(caption: str, params: FilterParams = DEFAULT_FILTER) -> set[str]:
    """The vocabulary's object labels the caption names (multi-word terms first)."""
    return {match.label for match in params.vocabulary.find(caption)}
