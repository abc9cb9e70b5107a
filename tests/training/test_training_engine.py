"""The training engine end to end on the tiny random Flux and SDXL pipelines (make_tiny):
the real diffusers, peft and accelerate code paths on a CPU, a few seconds per run.

What is checked: an interrupted and resumed run ends with the very adapter of an uninterrupted
one; checkpoints rotate; caching changes nothing; the loss on fixed noise goes down; and stock
diffusers ``load_lora_weights`` reproduces the trained model's images exactly."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from esplora.backends.lora import ADAPTER_INFO, ADAPTER_WEIGHTS
from esplora.errors import EsploraError
from esplora_training.config import TrainingConfig, load_config
from esplora_training.data import Example
from esplora_training.engine import Trainer, train

CAPTIONS = [
    "a red car to the left of a dog", "a cat above a bicycle", "a dog to the right of a tree",
    "a bus below a bird", "a horse in front of a car",
]  # fmt: skip
SIZES = [(64, 64), (96, 64), (64, 96), (64, 64), (80, 64), (64, 64), (64, 80), (96, 64)]


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> list[Example]:
    """Eight images of three aspect ratios: a coloured box on a gradient, one caption each."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    found = []
    for i, (width, height) in enumerate(SIZES):
        pixels = np.zeros((height, width, 3), dtype=np.uint8)
        pixels[..., 1] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
        x, y = rng.integers(0, width // 2), rng.integers(0, height // 2)
        pixels[y : y + height // 3, x : x + width // 3] = rng.integers(0, 255, 3)
        path = folder / f"{i}.png"
        Image.fromarray(pixels).save(path)
        found.append(Example(path, CAPTIONS[i % len(CAPTIONS)], width=width, height=height))
    return found


@pytest.fixture(scope="module")
def models(tiny_models: Path) -> Iterator[Path]:
    """The tiny twins, trained with one torch thread: at these sizes a second thread only adds
    synchronisation (5× slower on a busy 2-core machine). Restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tiny_models
    torch.set_num_threads(threads)


def _config(models: Path, family: str = "flux", **overrides: Any) -> TrainingConfig:
    values = {"base_model": str(models / family), "rank": 4, "alpha": 8, **overrides}
    return load_config(f"tiny-{family}", values)


def _weights(adapter_dir: Path | None) -> dict[str, Any]:
    from safetensors.torch import load_file

    assert adapter_dir is not None
    return dict(load_file(str(adapter_dir / ADAPTER_WEIGHTS)))


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Crash(Exception):
    """A worker dying mid-run."""


def test_an_interrupted_run_resumes_to_the_uninterrupted_adapter(
    models: Path, examples: list[Example], tmp_path: Path
) -> None:
    # Accumulation, warm-up + cosine, LoRA dropout (global RNG) and caption dropout: all state.
    config = _config(models, max_steps=6, checkpoint_every=2, keep_last=2, batch_size=2,
                     gradient_accumulation=2, lr_scheduler="cosine", lr_warmup_steps=2,
                     lora_dropout=0.1, learning_rate=1e-3, caption_dropout=0.3,
                     probe_every=2)  # fmt: skip
    whole = train(config, examples, tmp_path / "whole")
    assert whole.steps == 6 and not whole.stopped and whole.resumed_from is None
    assert whole.adapter_dir == tmp_path / "whole" / "adapter"

    run, seen, saved = tmp_path / "parts", [], []
    first = train(config, examples, run, on_step=lambda s, m: seen.append(s),
                  should_stop=lambda: len(seen) >= 3,
                  on_checkpoint=lambda s, p: saved.append((s, p.name)))  # fmt: skip
    assert first.stopped and first.steps == 3 and first.adapter_dir is None
    assert saved == [(2, "step-00000002"), (3, "step-00000003")]  # a stop checkpoints first

    def crash(step: int, metrics: dict[str, float]) -> None:
        if step == 5:  # after step 4's checkpoint, before step 5's would be written
            raise Crash

    with pytest.raises(Crash):
        train(config, examples, run, on_step=crash)
    resumed = train(config, examples, run)
    assert resumed.resumed_from == 4 and resumed.steps == 6
    assert _same(_weights(whole.adapter_dir), _weights(resumed.adapter_dir))
    assert resumed.metrics["loss"] == whole.metrics["loss"]

    # Keep the last K; metrics.jsonl has each step once (the crashed step 5 was rewritten).
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step-00000004", "step-00000006"]  # fmt: skip
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert resumed.adapter_dir is not None
    info = json.loads((resumed.adapter_dir / ADAPTER_INFO).read_text())
    assert (info["rank"], info["alpha"], info["step"], info["examples"]) == (4, 8.0, 6, 8)
    checkpoint = json.loads((run / "checkpoints" / "step-00000004" / "checkpoint.json").read_text())
    assert checkpoint["data_position"] == {"epoch": 1, "batch": 3, "per_epoch": 5}

    # Finished: training again loads nothing and returns the same adapter.
    again = train(config, examples, run)
    assert again.steps == 6 and _same(_weights(again.adapter_dir), _weights(whole.adapter_dir))


def test_a_resume_refuses_other_data_or_recipe_but_may_run_longer(
    models: Path, examples: list[Example], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    config = _config(models, max_steps=2, checkpoint_every=1, keep_last=1)
    train(config, examples, run)
    assert (run / "config.yaml").is_file() and json.loads((run / "run.json").read_text())[
        "buckets"] == {"48x80": 1, "64x64": 5, "80x48": 2}  # fmt: skip
    with pytest.raises(EsploraError, match=r"another config \(changed: learning_rate, rank\)"):
        train(_config(models, max_steps=2, rank=8, learning_rate=1e-3), examples, run)
    with pytest.raises(EsploraError, match="other training data"):
        train(config, examples[::-1], run)
    longer = train(config.model_copy(update={"max_steps": 3}), examples, run)
    assert longer.resumed_from == 2 and longer.steps == 3
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-00000003"]
    with pytest.raises(EsploraError, match="no training examples"):
        train(config, [], tmp_path / "empty")


def test_models_that_cannot_load_fail_fast_and_clearly(
    models: Path, examples: list[Example], tmp_path: Path
) -> None:
    from esplora.backends.registry import ModelUnavailable

    started = time.perf_counter()
    with pytest.raises(ModelUnavailable, match=r"black-forest-labs/FLUX\.1-dev.*make-tiny"):
        train(load_config("flux", {"max_steps": 1}), examples, tmp_path / "real")  # offline
    assert time.perf_counter() - started < 10
    wrong = _config(models, "flux", base_model=str(models / "sdxl"))
    with pytest.raises(ModelUnavailable, match="holds a StableDiffusionXLPipeline, not a Flux"):
        train(wrong, examples, tmp_path / "wrong")
    missing = [*examples[:1], Example(tmp_path / "gone.png", "a cat")]
    with pytest.raises(EsploraError, match=r"cannot read the training images.*gone\.png"):
        train(_config(models), missing, tmp_path / "missing")


@pytest.mark.parametrize("family", ["flux", "sdxl"])
def test_cached_latents_and_text_train_the_same_adapter(
    family: str, models: Path, examples: list[Example], tmp_path: Path
) -> None:
    # Batch 1 with cache batches of 1: the encoders see the same shapes either way, so the
    # runs agree bit for bit (batched CPU kernels may round differently: docs/training.md).
    adapters = []
    for cached in (True, False):
        config = _config(models, family, max_steps=3, batch_size=1, cache_batch_size=1,
                         cache_latents=cached, cache_text=cached, learning_rate=1e-2)  # fmt: skip
        adapters.append(_weights(train(config, examples, tmp_path / str(cached)).adapter_dir))
    assert _same(*adapters)
    assert len(list((tmp_path / "True" / "cache").rglob("*.safetensors"))) == 8 + 5 + 1  # +""
    assert not (tmp_path / "False" / "cache").exists() or not list(
        (tmp_path / "False" / "cache").rglob("*.safetensors"))  # fmt: skip


def test_the_loss_on_fixed_noise_goes_down(
    models: Path, examples: list[Example], tmp_path: Path
) -> None:
    probes: list[float] = []
    config = _config(models, max_steps=20, checkpoint_every=20, probe_every=5, rank=16,
                     alpha=16, learning_rate=1e-2, batch_size=2, caption_dropout=0.0)  # fmt: skip
    result = train(config, examples, tmp_path / "run",
                   on_step=lambda s, m: probes.append(m["probe_loss"]) if "probe_loss" in m
                   else None)  # fmt: skip
    assert len(probes) == 4 and result.metrics["probe_loss"] == probes[-1]
    assert probes[-1] < 0.9 * probes[0], probes
    assert all(np.isfinite(probes))


def _flux_image(pipe: Any, seed: int) -> np.ndarray:
    import torch

    image = pipe("a red car to the left of a dog", num_inference_steps=3, guidance_scale=3.5,
                 width=64, height=64, max_sequence_length=64,
                 generator=torch.Generator().manual_seed(seed)).images[0]  # fmt: skip
    return np.asarray(image)


def _sdxl_image(pipe: Any, seed: int) -> np.ndarray:
    import torch

    image = pipe("a cat above a bicycle", num_inference_steps=3, guidance_scale=5.0, width=64,
                 height=64, generator=torch.Generator().manual_seed(seed)).images[0]  # fmt: skip
    return np.asarray(image)


@pytest.mark.parametrize(
    ("family", "pipeline", "role", "render"),
    [("flux", "FluxPipeline", "transformer", _flux_image),
     ("sdxl", "StableDiffusionXLPipeline", "unet", _sdxl_image)],
)  # fmt: skip
def test_stock_load_lora_weights_gives_the_trained_model_exactly(
    family: str, pipeline: str, role: str, render: Any, models: Path,
    examples: list[Example], tmp_path: Path,
) -> None:  # fmt: skip
    import diffusers

    # The paper's rank 128 with alpha != rank: a reload without the metadata would differ.
    config = _config(models, family, max_steps=4, rank=128, alpha=64, learning_rate=5e-3)
    trainer = Trainer(config, examples, tmp_path / "run")
    result = trainer.run()
    assert result.adapter_dir is not None
    cls = getattr(diffusers, pipeline)
    extra = {"add_watermarker": False} if family == "sdxl" else {}
    trained_model = trainer.unwrapped.eval()
    trained = cls.from_pretrained(models / family, **{role: trained_model}, **extra)
    stock = cls.from_pretrained(models / family, **extra)
    base = render(stock, 3)
    stock.load_lora_weights(str(result.adapter_dir))  # stock diffusers, nothing of ours
    for pipe in (trained, stock):
        pipe.set_progress_bar_config(disable=True)
    assert np.array_equal(render(stock, 3), render(trained, 3))
    assert not np.array_equal(render(stock, 3), base)  # the adapter does something
    checkpoint = result.checkpoint
    assert checkpoint is not None and (checkpoint / ADAPTER_WEIGHTS).is_file()


def test_mixed_precision_runs_on_the_cpu(
    models: Path, examples: list[Example], tmp_path: Path
) -> None:
    config = _config(models, max_steps=2, mixed_precision="bf16", gradient_checkpointing=True)
    result = train(config, examples, tmp_path / "bf16")
    assert np.isfinite(result.metrics["loss"]) and result.metrics["grad_norm"] > 0
    weights = _weights(result.adapter_dir)
    assert {str(w.dtype) for w in weights.values()} == {"torch.float32"}  # LoRA trains in fp32


def test_the_tiny_config_trains_from_the_models_dir(
    models: Path, examples: list[Example], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from esplora.settings import get_settings

    monkeypatch.setenv("ESPLORA_MODELS_DIR", str(models))
    get_settings.cache_clear()
    config = load_config("tiny-sdxl", {"max_steps": 2, "checkpoint_every": 1})
    result = train(config, examples[:3], tmp_path / "run")
    info = json.loads((result.adapter_dir / ADAPTER_INFO).read_text())  # type: ignore[operator]
    assert info["base"] == "tiny/sdxl" and info["pipeline"] == "StableDiffusionXLPipeline"
    assert info["rank"] == 128 and info["alpha"] == 128.0
    shutil.rmtree(tmp_path / "run")
