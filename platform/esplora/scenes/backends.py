"""The scene world as backends: a pixel detector, a depth reader and a generator.

The detector and the depth reader see only pixels (the pipeline hands them the stored PNGs) and
decode them with :mod:`esplora.scenes.codec`; they never ask the renderer. The generator renders
a prompt's objects and relations, and renders each relation wrong (its inverse) with the
probability ``BackendOptions.error_rates`` gives that relation, which imitates a real model's
directional bias (the bias TORE exploits). Registered by :mod:`esplora.backends.registry` as
``scenes`` for the detector, depth and generator kinds.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from esplora.backends.base import (
    DetectedBox,
    DetectionResult,
    DroppedBox,
    ExtractedObject,
    GenerationRequest,
    PhaseClock,
)
from esplora.backends.registry import BackendOptions, InvalidBackendOptions
from esplora.core.lexicon import words
from esplora.core.prompts import PromptSpec, prompt_spec
from esplora.core.relations import DIRECTIONAL, Relation, parse_relation
from esplora.core.vocabulary import Vocabulary, load_vocabulary
from esplora.scenes.codec import UNKNOWN, Instance, box_filled_disparity, decode, instances
from esplora.scenes.layout import ComposeOptions, compose_objects
from esplora.scenes.model import Requirement, Scene, SceneError
from esplora.scenes.render import render
from esplora.scenes.sprites import SPRITES

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "DEPTH_PRODUCER",
    "DETECTOR_PRODUCER",
    "GENERATOR_PRODUCER",
    "GenerationPlan",
    "SceneDepth",
    "SceneDetector",
    "SceneGenerator",
    "error_rates",
]

DETECTOR_PRODUCER = "scenes/pixel-detector@1"
DEPTH_PRODUCER = "scenes/depth-reader@1"
GENERATOR_PRODUCER = "scenes/generator@1"
TOP_K = "top_k"
OPEN_COUNT = 2  # instances drawn for an open count ("cars", "some dogs")


def _pixels(image: Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _result(
    found: Sequence[Instance], query: Sequence[ExtractedObject], top: int
) -> DetectionResult:
    """Instances of the queried labels, largest first, the first ``top`` kept."""
    wanted: dict[str, ExtractedObject] = {}
    for obj in query:
        wanted.setdefault(obj.label, obj)
    kept: list[DetectedBox] = []
    dropped: list[DroppedBox] = []
    for inst in found:
        target = wanted.get(inst.label)
        if target is None:
            continue
        x0, y0, x1, y1 = inst.box
        box = (float(x0), float(y0), float(x1), float(y1))
        if len(kept) < top:
            kept.append(DetectedBox(inst.label, target.phrase, box, 1.0))
        else:
            dropped.append(DroppedBox(target.phrase, box, TOP_K))
    return DetectionResult(tuple(kept), tuple(dropped))


class SceneDetector:
    """Finds rendered objects by their palette colours; one box per (label, depth level).

    Boxes are the bounding boxes of the visible pixels, score 1.0 (the colours are exact); only
    the queried labels are returned, at most ``options.max_objects`` of them, largest first.
    """

    producer = DETECTOR_PRODUCER

    def __init__(
        self,
        options: BackendOptions | None = None,
        *,
        name: str = "scenes",
        real_id: str | None = None,
    ) -> None:
        self.options = options or BackendOptions()
        self.clock = PhaseClock()

    def detect(
        self, images: Sequence[Image], queries: Sequence[Sequence[ExtractedObject]]
    ) -> list[DetectionResult]:
        """One result per image for its query's labels."""
        if len(images) != len(queries):
            raise ValueError(f"{len(images)} images but {len(queries)} queries: need one per image")
        out = []
        for image, query in zip(images, queries, strict=True):
            with self.clock.phase("forward"):
                found = instances(decode(_pixels(image)))
            with self.clock.phase("postprocess"):
                out.append(_result(found, query, self.options.max_objects))
        return out


class SceneDepth:
    """Reads disparity back from the pixels' haze and fills each object's visible box with it.

    Background pixels keep their own decoded depth (sky 0, road 10/63 to 1); each object's box is
    filled with its depth, nearest on top (see :func:`esplora.scenes.codec.box_filled_disparity`
    for why boxes, not sprite pixels). Pixels no material explains read as 0.
    """

    producer = DEPTH_PRODUCER

    def __init__(
        self,
        options: BackendOptions | None = None,
        *,
        name: str = "scenes",
        real_id: str | None = None,
    ) -> None:
        self.options = options or BackendOptions()
        self.clock = PhaseClock()

    def estimate(self, images: Sequence[Image]) -> list[np.ndarray]:
        """A disparity map per image, at the image's size (larger = closer)."""
        out = []
        for image in images:
            with self.clock.phase("forward"):
                decoded = decode(_pixels(image))
                found = instances(decoded)
                background = np.where(decoded.level == UNKNOWN, 0, decoded.level)
                boxes, levels = [i.box for i in found], [i.level for i in found]
                out.append(box_filled_disparity(background, boxes, levels))
        return out


def error_rates(pairs: Sequence[tuple[str, float]]) -> Mapping[Relation, float]:
    """Validated per-relation error rates (directional relations only, each in [0, 1])."""
    rates: dict[Relation, float] = {}
    for name, rate in pairs:
        try:
            relation = parse_relation(name)
        except ValueError as error:
            raise InvalidBackendOptions(str(error)) from None
        if relation not in DIRECTIONAL or not 0.0 <= float(rate) <= 1.0:
            raise InvalidBackendOptions(
                f"error rate {name}={rate!r}: needs a directional relation and a rate in [0, 1]"
            )
        rates[relation] = float(rate)
    return MappingProxyType(rates)


@dataclass(frozen=True, slots=True)
class GenerationPlan:
    """What the generator decided for one request, before drawing it.

    ``wrong[k]`` says whether the prompt's ``k``-th relation (``spec.relations[k]``) is rendered
    as its inverse; ``rendered`` is ``False`` when the relations could not all be placed (the
    scene then shows the objects without them).
    """

    spec: PromptSpec
    wrong: tuple[bool, ...]
    scene: Scene
    rendered: bool


def _instances(spec: PromptSpec) -> tuple[list[str], list[str | None], list[list[int]]]:
    """Labels and colour words of the objects to draw, and which of them stand for each prompt
    object (a label the world has no sprite for gets none: like a model that cannot draw it)."""
    labels: list[str] = []
    colours: list[str | None] = []
    members: list[list[int]] = []
    for obj in spec.objects:
        sprite = SPRITES.get(obj.label)
        n = 0 if sprite is None else (obj.count.exact or max(obj.count.at_least, OPEN_COUNT))
        colour = next((w for w in words(obj.mention) if sprite and w in sprite.colours), None)
        members.append(list(range(len(labels), len(labels) + n)))
        labels += [obj.label] * n
        colours += [colour] * n
    return labels, colours, members


def _fallback(
    labels: list[str], colours: list[str | None], rng: np.random.Generator, options: ComposeOptions
) -> Scene:
    """The objects without their relations (contradictory prompts), else the empty street."""
    try:
        return compose_objects(labels, [], rng, options=options, colours=colours)
    except SceneError:
        return compose_objects([], [], rng, options=options)


class SceneGenerator:
    """Renders the objects and relations a prompt asks for, wrong at a configured rate."""

    def __init__(
        self,
        options: BackendOptions | None = None,
        *,
        name: str = "scenes",
        real_id: str | None = None,
        vocabulary: Vocabulary | None = None,
    ) -> None:
        self.options = options or BackendOptions()
        self.rates = error_rates(self.options.error_rates)
        self.vocabulary = vocabulary or load_vocabulary()
        biased = {r: v for r, v in self.rates.items() if v > 0}
        listed = ",".join(f"{r.value}={v:g}" for r, v in sorted(biased.items()))
        self.producer = f"{GENERATOR_PRODUCER}+errors({listed})" if biased else GENERATOR_PRODUCER

    def _streams(
        self, request: GenerationRequest
    ) -> tuple[np.random.Generator, np.random.Generator]:
        # Seeded by the request's seed *and* prompt: one seed shared by every prompt of a
        # benchmark must not make all of their first relations wrong (or right) together.
        key = zlib.crc32(request.prompt.encode("utf-8"))
        return np.random.default_rng([request.seed, key, 0]), np.random.default_rng(
            [request.seed, key, 1]
        )

    def plan(self, request: GenerationRequest) -> GenerationPlan:
        """The scene for one request, and which of the prompt's relations it renders wrong."""
        spec = prompt_spec(request.prompt, lexicon=self.vocabulary.lexicon)
        errors, layout = self._streams(request)
        # One draw per relation, in order, so a relation's fate depends on nothing after it.
        wrong = tuple(
            bool(errors.random() < self.rates.get(r.relation, 0.0)) for r in spec.relations
        )
        labels, colours, members = _instances(spec)
        requirements = [
            Requirement(i, r.relation, j, flip)
            for r, flip in zip(spec.relations, wrong, strict=True)
            if r.relation in DIRECTIONAL
            for i in members[r.subject]
            for j in members[r.object]
            if i != j
        ]
        options = ComposeOptions(width=request.width, height=request.height, clean=False)
        try:
            scene = compose_objects(labels, requirements, layout, options=options, colours=colours)
        except SceneError:
            return GenerationPlan(spec, wrong, _fallback(labels, colours, layout, options), False)
        return GenerationPlan(spec, wrong, scene, rendered=True)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Image]:
        """One RGB image per request (deterministic for its seed and prompt)."""
        return [render(self.plan(request).scene).image for request in requests]
