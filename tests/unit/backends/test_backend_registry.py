"""The backend registry: names, caching, options, model sources and producer strings."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from esplora.backends import registry
from esplora.backends.registry import (
    BackendKind,
    BackendOptions,
    InvalidBackendOptions,
    ModelSource,
    ModelUnavailable,
    UnknownBackend,
)


class _Counter:
    built = 0

    def __init__(self, options: BackendOptions) -> None:
        type(self).built += 1
        self.options = options


@pytest.fixture
def counter() -> Iterator[type[_Counter]]:
    _Counter.built = 0
    registry.register("detector", "counter-test", _Counter, real_id="org/counter")
    yield _Counter
    registry.unregister("detector", "counter-test")
    assert "counter-test" not in registry.names("detector")


def test_builtins_are_registered_per_kind() -> None:
    assert registry.names("extractor") == ("grammar", "vlm")
    assert registry.names(BackendKind.DETECTOR) == ("grounding-dino", "owlv2", "scenes")
    assert registry.names("depth") == ("depth-anything", "scenes")
    assert registry.names("generator") == ("flux", "scenes", "sdxl")
    ids = {s.name: s.real_id for s in registry.specs()}
    assert ids["grounding-dino"] == "IDEA-Research/grounding-dino-tiny"
    assert ids["owlv2"] == "google/owlv2-base-patch16-ensemble"
    assert ids["depth-anything"] == "depth-anything/Depth-Anything-V2-Small-hf"
    assert ids["grammar"] is None
    assert ids["flux"] == "black-forest-labs/FLUX.1-dev"


def test_create_builds_once_per_options(counter: type[_Counter]) -> None:
    options = BackendOptions(profile="tiny", models_dir=Path("/nowhere"))
    first = registry.create("detector", "counter-test", options)
    assert registry.create(BackendKind.DETECTOR, "counter-test", options) is first
    assert registry.create("detector", "counter-test", BackendOptions(profile="tiny",
        models_dir=Path("/nowhere"))) is first  # equal options, same instance  # fmt: skip
    other = registry.create("detector", "counter-test", BackendOptions(max_objects=3))
    assert other is not first and counter.built == 2
    registry.clear_cache()
    assert registry.create("detector", "counter-test", options) is not first


def test_grammar_extractor_through_the_registry() -> None:
    extractor = registry.create_extractor("grammar", BackendOptions())
    assert extractor is registry.create_extractor("grammar", BackendOptions())
    assert extractor.producer.startswith("grammar+vocabulary@")


def test_unknown_names_list_the_registered_ones() -> None:
    with pytest.raises(UnknownBackend, match=r"unknown detector backend 'yolo'.*grounding-dino"):
        registry.create("detector", "yolo", BackendOptions())
    with pytest.raises(ValueError, match="unknown backend kind 'segmenter'"):
        registry.spec("segmenter", "sam")


@pytest.mark.parametrize(
    "kwargs",
    [{"profile": "huge"}, {"box_threshold": 1.5}, {"text_threshold": -0.1}, {"max_objects": 0},
     {"batch_size": 0}],
)  # fmt: skip
def test_invalid_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidBackendOptions):
        BackendOptions(**kwargs)  # type: ignore[arg-type]


def test_model_source(tmp_path: Path) -> None:
    real = registry.model_source(BackendOptions(), "owlv2", "google/owlv2")
    assert real == ModelSource("google/owlv2", "google/owlv2", local=False)
    (tmp_path / "owlv2").mkdir()
    (tmp_path / "owlv2" / "config.json").write_text("{}")
    tiny = registry.model_source(BackendOptions(profile="tiny", models_dir=tmp_path), "owlv2", "x")
    assert tiny == ModelSource(str((tmp_path / "owlv2").resolve()), "tiny/owlv2", local=True)
    local = registry.model_source(BackendOptions(model_id=str(tmp_path / "owlv2")), "owlv2", "x")
    assert local.local and local.label == "owlv2"
    hub = registry.model_source(BackendOptions(model_id="org/other"), "owlv2", "x")
    assert hub == ModelSource("org/other", "org/other", local=False)


def test_a_missing_tiny_model_says_how_to_make_it(tmp_path: Path) -> None:
    options = BackendOptions(profile="tiny", models_dir=tmp_path)
    with pytest.raises(ModelUnavailable, match="esplora models make-tiny") as caught:
        registry.create("depth", "depth-anything", options)
    assert isinstance(caught.value, OSError)


def test_producer_strings() -> None:
    config = {"model_type": "owlv2", "hidden_size": 16}
    tiny = ModelSource("/m/owlv2", "tiny/owlv2", local=True)
    hub = ModelSource("google/owlv2", "google/owlv2", local=False)
    digest = registry.config_digest(config)
    assert len(digest) == 12
    assert registry.producer(tiny, config) == f"tiny/owlv2@{digest}"
    assert registry.producer(tiny, config, "abc") == f"tiny/owlv2@{digest}"  # local: no revision
    assert registry.producer(hub, config, "0123456789abcdef") == "google/owlv2@0123456789ab"
    assert registry.producer(hub, config) == f"google/owlv2@{digest}"
    noisy = {**config, "transformers_version": "9.9", "_name_or_path": "/elsewhere"}
    assert registry.config_digest(noisy) == digest


@pytest.mark.parametrize(
    ("kind", "name"),
    [("detector", "grounding-dino"), ("detector", "owlv2"), ("depth", "depth-anything"),
     ("extractor", "vlm")],
)  # fmt: skip
def test_real_ids_fail_fast_offline_with_a_clear_message(
    kind: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import try_to_load_from_cache

    real_id = registry.spec(kind, name).real_id
    assert real_id is not None
    if isinstance(try_to_load_from_cache(real_id, "config.json"), str):
        pytest.skip(f"{real_id} is in this machine's Hugging Face cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(ModelUnavailable) as caught:
        registry.create(kind, name, BackendOptions())
    assert time.perf_counter() - started < 20
    message = str(caught.value)
    assert repr(real_id) in message
    assert "--profile tiny" in message and "esplora models make-tiny" in message
    assert isinstance(caught.value, OSError) and isinstance(caught.value.__cause__, OSError)


def test_importing_and_listing_backends_does_not_import_torch() -> None:
    code = (
        "import sys, esplora.backends as b; b.names('detector'); b.specs();"
        "b.create_extractor('grammar', b.BackendOptions());"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
