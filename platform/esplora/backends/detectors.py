"""Open-vocabulary detectors: Grounding DINO and OWLv2 through transformers, batched.

Each image is queried with the phrases its extractor found; every box is mapped back to the
query object it answers, clipped to the image (:func:`esplora.core.boxes.clip_box`), and the
top ``max_objects`` by score are kept. Everything else that passed the score threshold comes
back as a :class:`DroppedBox` with its reason, so the store can say why a box is missing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from esplora.backends._hf import LoadedModel, batched, rgb
from esplora.backends.base import (
    DetectedBox,
    DetectionResult,
    DroppedBox,
    ExtractedObject,
    PhaseClock,
)
from esplora.backends.registry import GROUNDING_DINO_ID, OWLV2_ID, BackendOptions
from esplora.core.boxes import clip_box

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["GroundingDinoDetector", "Owlv2Detector", "finalise", "query_phrase"]

TOP_K = "top_k"
BELOW_TEXT_THRESHOLD = "below_text_threshold"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A raw detection above the score threshold, before clipping and top-K."""

    target: ExtractedObject
    box: tuple[float, float, float, float]
    score: float
    drop_reason: str | None = None  # set when the detector itself rejects the box


@dataclass(frozen=True, slots=True)
class _Row:
    """One forward-pass row: an image and (part of) its query."""

    image_index: int
    objects: tuple[ExtractedObject, ...]


def query_phrase(obj: ExtractedObject) -> str:
    """The text a detector is asked for: the phrase as written (else the label), lower case.

    Periods separate phrases in a Grounding DINO query, so they never appear inside one.
    """
    text = re.sub(r"[.\s]+", " ", obj.phrase or obj.label).strip().lower()
    return text or obj.label.lower()


def _unique_objects(query: Sequence[ExtractedObject]) -> tuple[ExtractedObject, ...]:
    seen: dict[str, ExtractedObject] = {}
    for obj in query:
        seen.setdefault(query_phrase(obj), obj)
    return tuple(seen.values())


def finalise(
    candidates: Sequence[Candidate], width: int, height: int, max_objects: int
) -> DetectionResult:
    """Clip every candidate to the image, drop degenerate ones, keep the top ``max_objects``."""
    kept: list[DetectedBox] = []
    dropped: list[DroppedBox] = []
    for c in sorted(candidates, key=lambda c: -c.score):
        if c.drop_reason is not None:
            dropped.append(DroppedBox(c.target.phrase, c.box, c.drop_reason))
            continue
        clipped = clip_box(c.box, float(width), float(height))
        if clipped.box is None:
            dropped.append(DroppedBox(c.target.phrase, c.box, clipped.reason.value))
            continue
        box = clipped.box.as_tuple()
        if len(kept) >= max_objects:
            dropped.append(DroppedBox(c.target.phrase, box, TOP_K))
            continue
        score = min(max(c.score, 0.0), 1.0)
        kept.append(DetectedBox(c.target.label, c.target.phrase, box, score))
    return DetectionResult(tuple(kept), tuple(dropped))


def _check_lengths(images: Sequence[Image], queries: Sequence[Sequence[ExtractedObject]]) -> None:
    if len(images) != len(queries):
        raise ValueError(f"{len(images)} images but {len(queries)} queries: need one per image")


def _as_box(values: Any) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in values)
    return (x0, y0, x1, y1)


class _Detector:
    """What both detectors share: rows, batching, and turning candidates into results."""

    def __init__(self, options: BackendOptions, loaded: LoadedModel) -> None:
        self.options = options
        self._loaded = loaded
        self.producer = loaded.producer
        self.clock = PhaseClock()

    def detect(
        self, images: Sequence[Image], queries: Sequence[Sequence[ExtractedObject]]
    ) -> list[DetectionResult]:
        """Detect each image's queried objects; an image with an empty query costs nothing."""
        _check_lengths(images, queries)
        found: list[list[Candidate]] = [[] for _ in images]
        rows = [r for i, q in enumerate(queries) for r in self._rows(i, _unique_objects(q))]
        for chunk in batched(rows, self.options.batch_size):
            chunk_images = [images[row.image_index] for row in chunk]
            for row, candidates in zip(chunk, self._run(chunk_images, chunk), strict=True):
                found[row.image_index].extend(candidates)
        with self.clock.phase("postprocess"):
            return [
                finalise(c, image.width, image.height, self.options.max_objects)
                for c, image in zip(found, images, strict=True)
            ]

    def _rows(self, index: int, objects: tuple[ExtractedObject, ...]) -> list[_Row]:
        return [_Row(index, objects)] if objects else []

    def _run(self, images: Sequence[Image], rows: Sequence[_Row]) -> list[list[Candidate]]:
        raise NotImplementedError


class GroundingDinoDetector(_Detector):
    """Grounding DINO: one text query per image ("a cat. a dog."), box and text thresholds."""

    def __init__(
        self,
        options: BackendOptions,
        *,
        name: str = "grounding-dino",
        real_id: str | None = GROUNDING_DINO_ID,
    ) -> None:
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        loaded = LoadedModel(
            options,
            name,
            real_id or GROUNDING_DINO_ID,
            AutoModelForZeroShotObjectDetection.from_pretrained,
            AutoProcessor.from_pretrained,
        )
        super().__init__(options, loaded)
        tokenizer = loaded.processor.tokenizer
        self._separator = int(tokenizer.convert_tokens_to_ids("."))
        self._max_tokens = int(getattr(loaded.model.config, "max_text_len", 256))
        self._tokenizer = tokenizer

    def _rows(self, index: int, objects: tuple[ExtractedObject, ...]) -> list[_Row]:
        """Split a long query so each row fits the model's text length (256 tokens)."""
        rows: list[_Row] = []
        current: list[ExtractedObject] = []
        used = 2  # [CLS] and [SEP]
        for obj in objects:
            cost = len(self._tokenizer.tokenize(query_phrase(obj))) + 1  # the phrase and "."
            if current and used + cost > self._max_tokens:
                rows.append(_Row(index, tuple(current)))
                current, used = [], 2
            current.append(obj)
            used += cost
        if current:
            rows.append(_Row(index, tuple(current)))
        return rows

    def _run(self, images: Sequence[Image], rows: Sequence[_Row]) -> list[list[Candidate]]:
        import torch

        texts = [". ".join(query_phrase(o) for o in row.objects) + "." for row in rows]
        processor = self._loaded.processor
        with self.clock.phase("preprocess"):
            batch = processor(
                images=rgb(images),
                text=texts,
                padding="longest",
                truncation=True,
                max_length=self._max_tokens,
                return_tensors="pt",
            )
        with self.clock.phase("forward"), torch.inference_mode():
            outputs = self._loaded.model(**self._loaded.inputs(batch))
        with self.clock.phase("postprocess"):
            return self._post(outputs, batch, images, rows)

    def _post(
        self, outputs: Any, batch: Any, images: Sequence[Image], rows: Sequence[_Row]
    ) -> list[list[Candidate]]:
        processor = self._loaded.processor
        outputs.logits = outputs.logits.float()
        outputs.pred_boxes = outputs.pred_boxes.float()
        sizes = [(image.height, image.width) for image in images]
        results = processor.post_process_grounded_object_detection(
            outputs,
            batch["input_ids"],
            threshold=self.options.box_threshold,
            text_threshold=self.options.text_threshold,
            target_sizes=sizes,
        )
        probs = outputs.logits.sigmoid().cpu()
        return [
            self._candidates(row, result, probs[i], batch["input_ids"][i])
            for i, (row, result) in enumerate(zip(rows, results, strict=True))
        ]

    def _candidates(
        self, row: _Row, result: dict[str, Any], probs: Any, input_ids: Any
    ) -> list[Candidate]:
        """Map each box to the query phrase whose tokens it scores highest."""
        keep = probs.max(dim=-1).values > self.options.box_threshold
        kept = probs[keep]  # the boxes post-processing returned, in its order
        if len(kept) != len(result["boxes"]):
            raise RuntimeError("Grounding DINO post-processing and token scores disagree")
        spans = self._phrase_spans(input_ids.tolist(), len(row.objects))
        out = []
        for token_probs, box, score in zip(kept, result["boxes"], result["scores"], strict=True):
            best, best_prob = 0, -1.0
            for k, (start, end) in enumerate(spans):
                prob = float(token_probs[start:end].max()) if end > start else 0.0
                if prob > best_prob:
                    best, best_prob = k, prob
            reason = BELOW_TEXT_THRESHOLD if best_prob <= self.options.text_threshold else None
            out.append(Candidate(row.objects[best], _as_box(box.tolist()), float(score), reason))
        return out

    def _phrase_spans(self, ids: list[int], count: int) -> list[tuple[int, int]]:
        """Token ranges ``[start, end)`` of each phrase: between [CLS] and the periods."""
        spans: list[tuple[int, int]] = []
        start = 1
        for position, token in enumerate(ids[1:], start=1):
            if token == self._separator and len(spans) < count:
                spans.append((start, position))
                start = position + 1
        while len(spans) < count:  # a phrase cut off by truncation scores nothing
            spans.append((start, start))
        return spans


class Owlv2Detector(_Detector):
    """OWLv2: one text query per object; images are padded to a square before resizing."""

    def __init__(
        self, options: BackendOptions, *, name: str = "owlv2", real_id: str | None = OWLV2_ID
    ) -> None:
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        loaded = LoadedModel(
            options,
            name,
            real_id or OWLV2_ID,
            AutoModelForZeroShotObjectDetection.from_pretrained,
            AutoProcessor.from_pretrained,
        )
        super().__init__(options, loaded)

    def _run(self, images: Sequence[Image], rows: Sequence[_Row]) -> list[list[Candidate]]:
        import torch

        processor = self._loaded.processor
        texts = [[query_phrase(o) for o in row.objects] for row in rows]
        with self.clock.phase("preprocess"):
            batch = processor(images=rgb(images), text=texts, truncation=True, return_tensors="pt")
        with self.clock.phase("forward"), torch.inference_mode():
            outputs = self._loaded.model(**self._loaded.inputs(batch))
        with self.clock.phase("postprocess"):
            return self._post(outputs, images, rows)

    def _post(
        self, outputs: Any, images: Sequence[Image], rows: Sequence[_Row]
    ) -> list[list[Candidate]]:
        processor = self._loaded.processor
        outputs.logits = outputs.logits.float()
        outputs.pred_boxes = outputs.pred_boxes.float()
        # Boxes are relative to the padded square: scale both axes by the longer side.
        sizes = [(max(i.height, i.width), max(i.height, i.width)) for i in images]
        results = processor.image_processor.post_process_object_detection(
            outputs, threshold=self.options.box_threshold, target_sizes=sizes
        )
        out = []
        for row, result in zip(rows, results, strict=True):
            triples = zip(result["labels"].tolist(), result["boxes"], result["scores"], strict=True)
            out.append(
                [  # labels past this row's queries answer the batch's padding queries
                    Candidate(row.objects[label], _as_box(box.tolist()), float(score))
                    for label, box, score in triples
                    if label < len(row.objects)
                ]
            )
        return out
