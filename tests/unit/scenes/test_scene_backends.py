"""The scene backends on pixels only: the detector finds the visible boxes exactly, the depth
reader gives every box its object's depth, and the generator honours objects, counts and
relations, rendering exactly the seeded share of them wrong."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from esplora.backends import registry
from esplora.backends.base import (
    DepthEstimator,
    Detector,
    ExtractedObject,
    GenerationRequest,
    Generator,
)
from esplora.backends.registry import BackendOptions, InvalidBackendOptions
from esplora.core.boxes import as_box, iou
from esplora.core.depth import box_depth_stats, normalise_disparity
from esplora.core.relations import Relation
from esplora.core.rules.esplora import evaluate
from esplora.scenes.backends import SceneDepth, SceneDetector, SceneGenerator
from esplora.scenes.layout import random_scene
from esplora.scenes.render import Rendering, render
from esplora.scenes.sprites import LABELS


def _png(image: Image.Image) -> Image.Image:
    """What the pipeline sees: the image written as PNG and read back."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _everything() -> list[ExtractedObject]:
    return [ExtractedObject(label, f"a {label}") for label in LABELS]


@pytest.fixture(scope="module")
def shown() -> list[Rendering]:
    rng = np.random.default_rng(21)
    return [render(random_scene(rng, int(rng.integers(2, 8)))) for _ in range(12)]


def test_the_registry_builds_the_scene_backends() -> None:
    options = BackendOptions()
    assert isinstance(registry.create_detector("scenes", options), Detector)
    assert isinstance(registry.create_depth("scenes", options), DepthEstimator)
    generator = registry.create("generator", "scenes", options)
    assert isinstance(generator, Generator) and generator.producer == "scenes/generator@1"


def test_the_detector_recovers_every_visible_box_exactly(shown: list[Rendering]) -> None:
    detector = SceneDetector()
    results = detector.detect([_png(s.image) for s in shown], [_everything()] * len(shown))
    for s, result in zip(shown, results, strict=True):
        truth = sorted((lab, box) for lab, box in zip(s.labels, s.boxes, strict=True))
        found = sorted((b.label, tuple(int(v) for v in b.box)) for b in result.boxes)
        assert found == truth
        for b in result.boxes:
            match = max(iou(as_box(b.box), as_box(t)) for lab, t in truth if lab == b.label)
            assert match == 1.0 and b.score == 1.0 and b.phrase == f"a {b.label}"
    assert detector.producer == "scenes/pixel-detector@1" and "forward" in detector.clock.drain()


def test_the_detector_answers_only_its_query_and_keeps_the_largest(shown: list[Rendering]) -> None:
    s = max(shown, key=lambda r: len(r.boxes))
    labels = Counter(s.labels)
    asked = next(iter(labels))
    (result,) = SceneDetector().detect([s.image], [[ExtractedObject(asked, asked)]])
    assert {b.label for b in result.boxes} == {asked} and len(result.boxes) == labels[asked]
    (top,) = SceneDetector(BackendOptions(max_objects=2)).detect([s.image], [_everything()])
    sizes = sorted(s.pixels, reverse=True)
    assert len(top.boxes) == 2 and len(top.dropped) == len(s.boxes) - 2
    assert {d.reason for d in top.dropped} == {"top_k"}
    kept = {s.boxes[i] for i, n in enumerate(s.pixels) if n >= sizes[1]}
    assert {tuple(int(v) for v in b.box) for b in top.boxes} == kept
    with pytest.raises(ValueError, match="one per image"):
        SceneDetector().detect([s.image], [])


def test_the_depth_reader_gives_each_box_its_objects_depth(shown: list[Rendering]) -> None:
    maps = SceneDepth().estimate([_png(s.image) for s in shown])
    for s, raw in zip(shown, maps, strict=True):
        assert raw.shape == s.disparity.shape
        normalised = normalise_disparity(raw)
        assert np.array_equal(normalised, raw)  # sky 0 and the road's last row 1: already [0, 1]
        boxes = np.array(s.boxes, dtype=np.float64)
        medians = [st.median for st in box_depth_stats(normalised, boxes)]
        assert medians == list(s.depths)
        assert np.argsort(medians).tolist() == np.argsort(s.depths).tolist()


def _requests(prompt: str, n: int, size: int = 192) -> list[GenerationRequest]:
    return [GenerationRequest(prompt, seed, width=size, height=size) for seed in range(n)]


def _show(image: Image.Image) -> tuple[dict[str, list[tuple[int, ...]]], list[float]]:
    (result,) = SceneDetector().detect([image], [_everything()])
    depth = normalise_disparity(SceneDepth().estimate([image])[0])
    boxes: dict[str, list[tuple[int, ...]]] = {}
    for b in result.boxes:
        boxes.setdefault(b.label, []).append(tuple(int(v) for v in b.box))
    medians = [st.median for st in box_depth_stats(depth, np.array([b.box for b in result.boxes]))]
    return boxes, medians


def test_the_generator_honours_counts_and_relations() -> None:
    generator = SceneGenerator()
    for request in _requests("two red cars to the left of three trees", 4):
        image = generator.generate([request])[0]
        assert image.size == (192, 192)
        boxes, _ = _show(_png(image))
        assert len(boxes["car"]) == 2 and len(boxes["tree"]) == 3 and set(boxes) == {"car", "tree"}
        for car in boxes["car"]:
            for tree in boxes["tree"]:
                assert evaluate(Relation.LEFT_OF, car, tree).strict
        assert {o.colour for o in generator.plan(request).scene.objects if o.label == "car"} == {
            "red"
        }


def test_the_generator_is_seeded_and_wrong_exactly_at_its_rates() -> None:
    prompt = "a dog to the right of a bench and a cat below a street lamp"
    always = SceneGenerator(BackendOptions(error_rates=(("right_of", 1.0),)))
    never = SceneGenerator()
    for request in _requests(prompt, 3):
        assert always.plan(request).wrong == (True, False)
        assert never.plan(request).wrong == (False, False)
        assert (
            _png(always.generate([request])[0]).tobytes()
            == _png(always.generate([request])[0]).tobytes()
        )
    half = SceneGenerator(BackendOptions(error_rates=(("right_of", 0.5), ("below", 0.25))))
    draws = np.array([half.plan(r).wrong for r in _requests(prompt, 200, 64)])
    assert 0.4 < draws[:, 0].mean() < 0.6 and 0.15 < draws[:, 1].mean() < 0.35
    assert half.producer == "scenes/generator@1+errors(below=0.25,right_of=0.5)"


def test_the_generator_skips_what_it_cannot_draw_and_refuses_bad_rates() -> None:
    plan = SceneGenerator().plan(
        GenerationRequest("a unicorn to the left of a car", 0, width=96, height=96)
    )
    assert [o.label for o in plan.scene.objects] == ["car"]
    contradiction = "a car to the left of a tree, and the car to the right of the tree"
    plan = SceneGenerator().plan(GenerationRequest(contradiction, 0, width=96, height=96))
    assert not plan.rendered and sorted(o.label for o in plan.scene.objects) == ["car", "tree"]
    for rates in ((("sideways", 0.1),), (("near", 0.1),), (("left_of", 1.5),)):
        with pytest.raises(InvalidBackendOptions):
            SceneGenerator(BackendOptions(error_rates=rates))
