"""The small protocols every model backend implements, and the values they exchange.

Backends take decoded RGB images (PIL, already EXIF-transposed) and return plain values; they
never touch the store. Heavy imports (torch, transformers) happen inside their constructors, so
importing this package stays cheap. A backend is loaded once per process and called in batches.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image


class PhaseClock:
    """Seconds spent per phase (preprocess, forward, postprocess…), for the per-image breakdown.

    Backends time their own phases; the pipeline drains the clock after each batch.
    """

    def __init__(self) -> None:
        self._seconds: defaultdict[str, float] = defaultdict(float)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the time spent inside the ``with`` block to ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[name] += time.perf_counter() - start

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to ``name`` (phases split by timestamps, not by a ``with`` block)."""
        self._seconds[name] += seconds

    def drain(self) -> dict[str, float]:
        """The totals since the last drain, and start again from zero."""
        totals = dict(self._seconds)
        self._seconds.clear()
        return totals


@dataclass(frozen=True, slots=True)
class ExtractedObject:
    """An object an image's captions (or a VLM) name: canonical label and the words used."""

    label: str
    phrase: str


@dataclass(frozen=True, slots=True)
class ExtractionInput:
    """What the extract stage knows about one image: its captions, and the image if needed."""

    captions: tuple[str, ...]
    image: Image | None = None


@dataclass(frozen=True, slots=True)
class DetectedBox:
    """A detection in pixels of the (EXIF-transposed) image, clipped to it."""

    label: str
    phrase: str
    box: tuple[float, float, float, float]
    score: float


@dataclass(frozen=True, slots=True)
class DroppedBox:
    """A raw detection discarded before storage, and why (e.g. ``too_small``, ``outside``)."""

    phrase: str
    box: tuple[float, float, float, float]
    reason: str


@dataclass(frozen=True, slots=True)
class DetectionResult:
    """One image's detections: the kept boxes (top-K by score) and the dropped ones."""

    boxes: tuple[DetectedBox, ...]
    dropped: tuple[DroppedBox, ...] = field(default=())


@runtime_checkable
class Extractor(Protocol):
    """Names the objects to look for in each image."""

    producer: str  # model id + version, stored with every row it produces
    needs_image: bool

    def extract(self, items: Sequence[ExtractionInput]) -> list[tuple[ExtractedObject, ...]]: ...


@runtime_checkable
class Detector(Protocol):
    """Open-vocabulary detection: boxes for the queried objects."""

    producer: str

    def detect(
        self, images: Sequence[Image], queries: Sequence[Sequence[ExtractedObject]]
    ) -> list[DetectionResult]: ...


@runtime_checkable
class DepthEstimator(Protocol):
    """Relative inverse depth (disparity, larger = closer) at each image's own size."""

    producer: str

    def estimate(self, images: Sequence[Image]) -> list[np.ndarray]: ...


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One image to generate: the prompt as the model will read it, and the sampling knobs."""

    prompt: str
    seed: int
    steps: int = 28
    guidance: float = 3.5
    width: int = 512
    height: int = 512


@runtime_checkable
class Generator(Protocol):
    """Text-to-image: one RGB image per request, deterministic for a seed on a given device."""

    producer: str  # model id + version (+ adapter and scale when one is loaded)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Image]: ...
