"""The Flux and SDXL generators end to end on their tiny random twins (make_tiny), through the
registry with the tiny profile: the same from_pretrained and pipeline code as the real models.
The images are noise; their determinism, sizes, adapters and producers are not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from esplora.backends import registry
from esplora.backends.base import GenerationRequest, Generator
from esplora.backends.generators import FluxGenerator
from esplora.backends.lora import (
    ADAPTER_INFO,
    FLUX_TARGETS,
    SDXL_TARGETS,
    InvalidAdapter,
    add_lora,
    save_adapter,
)
from esplora.backends.registry import BackendOptions, ModelUnavailable

PROMPT = "a red car to the left of a dog"
ROLE = {"flux": ("FluxPipeline", "transformer", FLUX_TARGETS),
        "sdxl": ("StableDiffusionXLPipeline", "unet", SDXL_TARGETS)}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_dir(tiny_models: Path) -> Iterator[Path]:
    yield tiny_models
    registry.clear_cache()


def _options(tiny_dir: Path, **changes: Any) -> BackendOptions:
    return BackendOptions(profile="tiny", models_dir=tiny_dir, device="cpu", **changes)


def _gen(name: str, tiny_dir: Path, **changes: Any) -> Generator:
    return registry.create_generator(name, _options(tiny_dir, **changes))


def _req(seed: int, prompt: str = PROMPT, **changes: Any) -> GenerationRequest:
    values: dict[str, Any] = {"steps": 3, "width": 64, "height": 64, **changes}
    return GenerationRequest(prompt, seed, **values)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


@pytest.mark.parametrize("name", ["flux", "sdxl"])
def test_an_image_depends_on_its_seed_not_on_its_batch(name: str, tiny_dir: Path) -> None:
    generator = _gen(name, tiny_dir, batch_size=4)
    assert registry.create_generator(name, _options(tiny_dir, batch_size=4)) is generator
    assert generator.producer.startswith(f"tiny/{name}@") and "+lora" not in generator.producer
    requests = [_req(1), _req(2), _req(3, "a bus above a tree")]
    batch = generator.generate(requests)
    alone = [generator.generate([r])[0] for r in requests]
    neighbours = generator.generate([_req(9, "a dog"), requests[1], _req(7)])
    # Same batch shape, other neighbours: bit for bit. Another batch size may round a float
    # differently in the matrix products, so a pixel can move by a level or two, no more.
    assert np.array_equal(_pixels(neighbours[1]), _pixels(batch[1]))
    for a, b in zip(batch, alone, strict=True):
        assert a.mode == "RGB" and a.size == (64, 64)
        assert np.abs(_pixels(a) - _pixels(b)).max() <= 2
    assert not np.array_equal(_pixels(batch[0]), _pixels(batch[1]))  # seeds matter
    assert not np.array_equal(_pixels(batch[0]), _pixels(generator.generate([_req(1, "a bus")])[0]))
    phases = generator.clock.drain()  # type: ignore[attr-defined]
    assert set(phases) == {"encode", "forward", "decode"} and all(v > 0 for v in phases.values())


@pytest.mark.parametrize("name", ["flux", "sdxl"])
def test_mixed_sizes_and_knobs_come_back_in_order(name: str, tiny_dir: Path) -> None:
    generator = _gen(name, tiny_dir, batch_size=2)
    requests = [
        _req(1, width=96, height=48), _req(2), _req(3, width=48, height=96, guidance=1.0),
        _req(4, width=96, height=48), _req(5, steps=2),
    ]  # fmt: skip
    images = generator.generate(requests)
    assert [i.size for i in images] == [(r.width, r.height) for r in requests]
    again = generator.generate([requests[2], requests[0], requests[3]])  # same shapes as before
    assert np.array_equal(_pixels(images[3]), _pixels(again[2]))
    assert generator.generate([]) == []


def _adapted_pipeline(name: str, tiny_dir: Path, rank: int, alpha: float) -> Any:
    """The tiny pipeline with a LoRA of random (non-zero) weights, in memory."""
    import diffusers
    import torch

    cls_name, role, targets = ROLE[name]
    kwargs = {"add_watermarker": False} if name == "sdxl" else {}
    pipe = getattr(diffusers, cls_name).from_pretrained(tiny_dir / name, **kwargs)
    pipe.set_progress_bar_config(disable=True)
    model = getattr(pipe, role)
    add_lora(model, rank, alpha, targets)
    noise = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if "lora_" in param_name:
                param.copy_(torch.randn(param.shape, generator=noise) * 0.3)
    return pipe


def _pipeline_image(pipe: Any, request: GenerationRequest, **extra: Any) -> Image.Image:
    import torch

    image: Image.Image = pipe(
        request.prompt, num_inference_steps=request.steps, guidance_scale=request.guidance,
        width=request.width, height=request.height,
        generator=[torch.Generator().manual_seed(request.seed)], **extra,
    ).images[0]  # fmt: skip
    return image


def test_flux_adapter_round_trip_is_exact(tiny_dir: Path, tmp_path: Path) -> None:
    import diffusers

    pipe = _adapted_pipeline("flux", tiny_dir, rank=4, alpha=12.0)  # alpha != r on purpose
    request = _req(5)
    in_memory = _pixels(_pipeline_image(pipe, request, max_sequence_length=64))
    ref = save_adapter(diffusers.FluxPipeline, pipe.transformer, tmp_path / "spatial",
                       base="tiny/flux")  # fmt: skip
    info = json.loads((tmp_path / "spatial" / ADAPTER_INFO).read_text())
    assert (info["rank"], info["alpha"], info["base"]) == (4, 12.0, "tiny/flux")
    assert info["targets"] == sorted(FLUX_TARGETS) and info["sha256"] == ref.digest

    fresh = diffusers.FluxPipeline.from_pretrained(tiny_dir / "flux")  # stock diffusers loading
    fresh.set_progress_bar_config(disable=True)
    fresh.load_lora_weights(str(ref.directory), adapter_name="esplora")
    reloaded = _pixels(_pipeline_image(fresh, request, max_sequence_length=64))
    assert np.array_equal(reloaded, in_memory)

    base = _gen("flux", tiny_dir)
    adapted = _gen("flux", tiny_dir, adapter=str(ref.directory))
    off = _gen("flux", tiny_dir, adapter=str(ref.directory), adapter_scale=0.0)
    half = _gen("flux", tiny_dir, adapter=str(ref.directory), adapter_scale=0.5)
    images = {g: _pixels(g.generate([request])[0]) for g in (base, adapted, off, half)}
    assert np.array_equal(images[adapted], in_memory)
    assert np.array_equal(images[off], images[base])  # scale 0 is the base model
    assert not np.array_equal(images[adapted], images[base])
    assert not np.array_equal(images[half], images[base])
    assert not np.array_equal(images[half], images[adapted])

    assert adapted.producer == f"{base.producer}+lora:spatial@{ref.digest}:1"
    assert half.producer.endswith(":0.5") and off.producer.endswith(":0")
    assert len({g.producer for g in images}) == 4


def test_sdxl_generator_with_an_adapter_matches_the_adapted_pipeline(
    tiny_dir: Path, tmp_path: Path
) -> None:
    import diffusers

    pipe = _adapted_pipeline("sdxl", tiny_dir, rank=2, alpha=5.0)
    request = _req(8, guidance=5.0)
    in_memory = _pixels(_pipeline_image(pipe, request))
    ref = save_adapter(diffusers.StableDiffusionXLPipeline, pipe.unet, tmp_path / "sdxl-lora")
    adapted = _gen("sdxl", tiny_dir, adapter=str(ref.directory))
    assert np.array_equal(_pixels(adapted.generate([request])[0]), in_memory)
    assert adapted.producer.startswith("tiny/sdxl@") and "+lora:sdxl-lora@" in adapted.producer

    with pytest.raises(InvalidAdapter, match="no weights for this FluxPipeline"):
        FluxGenerator(_options(tiny_dir, adapter=str(ref.directory)))  # an SDXL LoRA


def test_memory_options_run_on_the_cpu(tiny_dir: Path) -> None:
    generator = _gen("flux", tiny_dir, cpu_offload=True, vae_tiling=True)
    assert generator.pipe.vae.use_tiling  # type: ignore[attr-defined]
    image = generator.generate([_req(1, width=128, height=96)])[0]  # larger than a tile
    assert image.size == (128, 96)


@pytest.mark.parametrize("name", ["flux", "sdxl"])
def test_real_ids_fail_fast_and_clearly_offline(name: str, tiny_dir: Path) -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    started = time.perf_counter()
    with pytest.raises(ModelUnavailable, match="esplora models make-tiny") as raised:
        registry.create_generator(name, BackendOptions(device="cpu"))
    assert time.perf_counter() - started < 10
    assert str(registry.spec("generator", name).real_id) in str(raised.value)


def test_producers_name_the_model_not_its_path(tiny_dir: Path) -> None:
    tiny = _gen("sdxl", tiny_dir).producer
    by_path = registry.create_generator("sdxl", BackendOptions(model_id=str(tiny_dir / "sdxl")))
    assert by_path.producer == "sdxl@" + tiny.split("@")[1] and tiny.startswith("tiny/sdxl@")


def test_a_directory_of_another_pipeline_is_refused(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="holds a StableDiffusionXLPipeline, not a Flux"):
        registry.create_generator("flux", BackendOptions(model_id=str(tiny_dir / "sdxl")))
    with pytest.raises(ModelUnavailable, match="no tiny 'sdxl' model"):
        registry.create_generator("sdxl", _options(tmp_path))
    with pytest.raises(ModelUnavailable, match="no LoRA adapter"):
        registry.create_generator("sdxl", _options(tiny_dir, adapter=str(tmp_path / "none")))


def test_cli_generates_a_png_with_tore(tiny_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "images" / "one.png"
    command = [
        str(Path(sys.executable).parent / "esplora"), "generate",
        "a cat to the right of a dog", "--out", str(out), "--tore", "--seed", "4",
        "--steps", "2", "--width", "64", "--height", "48", "--profile", "tiny",
        "--models-dir", str(tiny_dir), "--json",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["prompt"] == "a dog to the left of a cat"  # what the model read
    assert data["original_prompt"] == "a cat to the right of a dog" and data["tore"] is True
    assert data["producer"].startswith("tiny/flux@") and data["seed"] == 4
    assert data["out"] == str(out)
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (64, 48) and image.mode == "RGB"
        assert image.text["producer"] == data["producer"]  # type: ignore[attr-defined]
        assert image.text["prompt"] == data["prompt"]  # type: ignore[attr-defined]
    expected = _gen("flux", tiny_dir).generate(
        [_req(4, data["prompt"], steps=2, width=64, height=48, guidance=3.5)]
    )[0]
    with Image.open(out) as image:
        assert np.array_equal(_pixels(image.convert("RGB")), _pixels(expected))
