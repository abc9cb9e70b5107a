"""Every model backend end to end on its tiny random twin: written by make_tiny, loaded through
the registry with the tiny profile (the same from_pretrained code as the real ids), run on a
batch of images of different sizes. The outputs are meaningless; their shapes and bounds are not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from esplora.backends import registry
from esplora.backends.base import DetectionResult, ExtractedObject, ExtractionInput
from esplora.backends.registry import BackendOptions
from esplora.backends.tiny import TINY_BUILDERS, make_tiny, tiny_info

SIZES = [(100, 60), (50, 90), (200, 120)]  # (width, height)
REASONS = {"top_k", "below_text_threshold", "outside", "too_small", "non_finite", "inverted"}


@pytest.fixture(scope="module")
def tiny_dir(tiny_models: Path) -> Iterator[Path]:
    """The session's tiny twins (tests/conftest.py writes them once with make_tiny)."""
    yield tiny_models
    registry.clear_cache()


@pytest.fixture
def options(tiny_dir: Path) -> BackendOptions:
    return BackendOptions(profile="tiny", models_dir=tiny_dir, device="cpu", max_objects=3)


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in SIZES]


def test_make_tiny_writes_every_twin_deterministically(tiny_dir: Path, tmp_path: Path) -> None:
    seen: list[str] = []
    again = make_tiny(tmp_path, on_model=lambda name, path, seconds: seen.append(name))
    assert seen == list(TINY_BUILDERS) == sorted(again, key=list(TINY_BUILDERS).index)
    for name, path in again.items():
        assert path == tmp_path / name and tiny_info(path) == tiny_info(tiny_dir / name)
        # Every file byte for byte (a diffusers twin keeps its parts in subdirectories).
        files = sorted(f.relative_to(path) for f in path.rglob("*") if f.is_file())
        assert any(f.suffix == ".safetensors" for f in files)
        for f in files:
            assert (path / f).read_bytes() == (tiny_dir / name / f).read_bytes(), f
        assert sum((path / f).stat().st_size for f in files) < 3_000_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left


QUERIES = [
    [ExtractedObject("cat", "a cat"), ExtractedObject("dog", "a dog")],
    [],
    [ExtractedObject("traffic light", "a traffic light"), ExtractedObject("bus", "red bus")],
]


def _check_result(
    result: DetectionResult, query: list[ExtractedObject], size: tuple[int, int]
) -> None:
    width, height = size
    assert len(result.boxes) <= 3
    assert {b.label for b in result.boxes} <= {o.label for o in query}
    assert {b.phrase for b in result.boxes} <= {o.phrase for o in query}
    for box in result.boxes:
        x0, y0, x1, y1 = box.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert x1 - x0 >= 1 and y1 - y0 >= 1
        assert 0.0 <= box.score <= 1.0
    assert [b.score for b in result.boxes] == sorted((b.score for b in result.boxes), reverse=True)
    assert {d.reason for d in result.dropped} <= REASONS


@pytest.mark.parametrize("name", ["grounding-dino", "owlv2"])
def test_detectors_on_a_batch(
    name: str, options: BackendOptions, images: list[Image.Image]
) -> None:
    detector = registry.create_detector(name, options)
    assert registry.create_detector(name, options) is detector  # loaded once per process
    assert (
        detector.producer.startswith(f"tiny/{name}@") and len(detector.producer.split("@")[1]) == 12
    )
    results = detector.detect(images, QUERIES)
    assert len(results) == 3
    for result, query, size in zip(results, QUERIES, SIZES, strict=True):
        _check_result(result, query, size)
    assert results[1] == DetectionResult(())  # empty query: nothing
    assert results[0].boxes and any(d.reason == "top_k" for d in results[0].dropped)


@pytest.mark.parametrize("name", ["grounding-dino", "owlv2"])
def test_an_empty_query_never_calls_the_model(
    name: str, options: BackendOptions, images: list[Image.Image], monkeypatch: pytest.MonkeyPatch
) -> None:
    detector = registry.create_detector(name, options)

    def fail(*args: object) -> None:
        raise AssertionError("the model was called")

    monkeypatch.setattr(detector, "_run", fail)
    assert detector.detect(images[:2], [[], []]) == [DetectionResult(()), DetectionResult(())]
    assert detector.detect([], []) == []
    with pytest.raises(ValueError, match="one per image"):
        detector.detect(images, [[]])


def test_grounding_dino_splits_a_query_longer_than_its_text_length(
    options: BackendOptions, images: list[Image.Image]
) -> None:
    detector = registry.create_detector("grounding-dino", options)
    many = [ExtractedObject(f"thing{i}", f"a red double-decker bus number {i}") for i in range(40)]
    rows = detector._rows(0, tuple(many))  # type: ignore[attr-defined]
    assert len(rows) > 1 and sum(len(r.objects) for r in rows) == 40
    results = detector.detect(images[:1], [many])
    _check_result(results[0], many, SIZES[0])


def test_batch_size_does_not_change_results(tiny_dir: Path, images: list[Image.Image]) -> None:
    one = BackendOptions(profile="tiny", models_dir=tiny_dir, device="cpu", batch_size=1)
    three = BackendOptions(profile="tiny", models_dir=tiny_dir, device="cpu", batch_size=3)
    a = registry.create_detector("owlv2", one).detect(images, QUERIES)
    b = registry.create_detector("owlv2", three).detect(images, QUERIES)
    assert [len(r.boxes) for r in a] == [len(r.boxes) for r in b]
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra.boxes, rb.boxes, strict=True):
            assert x.label == y.label and np.allclose(x.box, y.box, atol=1e-3)


def test_depth_maps_have_each_images_size(
    options: BackendOptions, images: list[Image.Image]
) -> None:
    depth = registry.create_depth("depth-anything", options)
    assert depth.producer.startswith("tiny/depth-anything@")
    maps = depth.estimate(images)
    assert [m.shape for m in maps] == [(h, w) for w, h in SIZES]
    assert all(m.dtype == np.float32 and np.isfinite(m).all() for m in maps)
    single = depth.estimate(images[2:])  # padding in a batch leaves each map unchanged in shape
    assert single[0].shape == maps[2].shape


def test_vlm_extractor_runs_and_returns_objects(
    options: BackendOptions, images: list[Image.Image]
) -> None:
    extractor = registry.create_extractor("vlm", options)
    assert extractor.needs_image and extractor.producer.startswith("tiny/vlm@")
    items = [ExtractionInput(("a caption",), image) for image in images]
    answers = extractor.answers(images)  # type: ignore[attr-defined]
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    results = extractor.extract(items)
    assert len(results) == 3
    for objects in results:
        assert isinstance(objects, tuple)
        assert all(isinstance(o, ExtractedObject) and o.label for o in objects)
        assert len({o.label for o in objects}) == len(objects)
    with pytest.raises(ValueError, match="needs images"):
        extractor.extract([ExtractionInput(("no image",))])


def test_producers_do_not_depend_on_the_path(tiny_dir: Path, tmp_path: Path) -> None:
    make_tiny(tmp_path, names=["depth-anything"])
    moved = BackendOptions(model_id=str(tmp_path / "depth-anything"), device="cpu")
    tiny = BackendOptions(profile="tiny", models_dir=tiny_dir, device="cpu")
    a = registry.create_depth("depth-anything", tiny).producer
    b = registry.create_depth("depth-anything", moved).producer
    assert a.split("@")[1] == b.split("@")[1] and b.startswith("depth-anything@")


def _esplora(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "esplora"), *args]
    env = {**os.environ, "ESPLORA_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env)


def test_cli_make_tiny_and_list(tmp_path: Path) -> None:
    before = json.loads(_esplora("models", "list", "--json", home=tmp_path).stdout)
    assert before["models_dir"] == str(tmp_path / "models")
    started = time.perf_counter()
    made = _esplora("models", "make-tiny", "--only", "depth-anything", home=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "depth-anything" in made.stdout and time.perf_counter() - started < 60
    after = json.loads(_esplora("models", "list", "--json", home=tmp_path).stdout)
    present = {row["name"]: row["tiny_present"] for row in after["backends"]}
    assert present == {
        "grammar": False, "vlm": False, "grounding-dino": False, "owlv2": False,
        "depth-anything": True, "flux": False, "sdxl": False, "scenes": False,
    }  # fmt: skip
    selected = {row["kind"]: row["name"] for row in after["backends"] if row["selected"]}
    assert selected == {
        "extractor": "grammar",
        "detector": "grounding-dino",
        "depth": "depth-anything",
    }
    bad = _esplora("models", "make-tiny", "--only", "yolo", home=tmp_path)
    assert bad.returncode == 2 and "no tiny model named yolo" in bad.stderr
