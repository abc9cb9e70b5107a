"""The training config (validation, shipped YAML, overrides) and the data plumbing (buckets,
crops, the deterministic order, caption dropout): no models, milliseconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from esplora.backends.lora import FLUX_TARGETS, SDXL_TARGETS
from esplora.errors import EsploraError
from esplora_training.config import (
    TrainingConfig,
    config_digest,
    dump_config,
    load_config,
    parse_overrides,
    resolve_model,
    shipped_configs,
)
from esplora_training.data import (
    BatchPlan,
    Example,
    Item,
    crop_geometry,
    drop_captions,
    epoch_batches,
    file_sha256,
    load_pixels,
    make_buckets,
    nearest_bucket,
    prepare_items,
)


def test_shipped_configs_load_with_the_recipe_defaults() -> None:
    assert {"flux", "sdxl", "tiny-flux", "tiny-sdxl"} <= set(shipped_configs())
    flux = load_config(None)  # the default is flux
    assert flux.family == "flux" and flux.base_model == "black-forest-labs/FLUX.1-dev"
    assert (flux.rank, flux.alpha, flux.learning_rate) == (128, 128.0, 1e-4)  # paper + ours
    assert flux.caption_dropout == 0.1 and flux.prompt_style == "complex"
    assert flux.targets == list(FLUX_TARGETS) and flux.mixed_precision == "bf16"
    sdxl = load_config("sdxl.yaml")
    assert sdxl.base_model == "stabilityai/stable-diffusion-xl-base-1.0"
    assert sdxl.targets == list(SDXL_TARGETS)
    for name in shipped_configs():  # every shipped file is complete and valid
        loaded = load_config(name)
        assert (loaded.validation_every or 0) % loaded.checkpoint_every == 0


def test_defaults_follow_the_family_and_alpha_follows_the_rank() -> None:
    config = TrainingConfig(family="sdxl", rank=16)
    assert config.alpha == 16.0 and config.base_model == "stabilityai/stable-diffusion-xl-base-1.0"
    assert TrainingConfig(rank=8, alpha=4).alpha == 4.0
    assert config.validation_every == config.checkpoint_every


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"rnak": 64}, "unknown key 'rnak'"),
        ({"rank": 0}, "rank:"),
        ({"learning_rate": "fast"}, "learning_rate:"),
        ({"mixed_precision": "fp8"}, "mixed_precision:"),
        ({"family": "sd15"}, "family:"),
        ({"resolution": 1000}, "resolution: must be a multiple of 16"),
        ({"buckets": [[1024, 1000]]}, "buckets: sides must be positive multiples of 16"),
        ({"caption_dropout": 1.0}, "caption_dropout:"),
        ({"checkpoint_every": 100, "validation_every": 150}, "validation_every:"),
        ({"max_steps": 10, "lr_warmup_steps": 20}, "lr_warmup_steps:"),
        ({"targets": []}, "targets:"),
    ],
)
def test_bad_keys_and_values_are_named(overrides: dict[str, object], named: str) -> None:
    with pytest.raises(EsploraError, match="invalid training config flux") as raised:
        load_config("flux", overrides)
    assert named in str(raised.value)


def test_yaml_files_are_read_and_their_errors_explained(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text("family: sdxl\nrank: 32\nbatch_size: 2\n")
    config = load_config(good, {"rank": 16})  # overrides win
    assert (config.family, config.rank, config.alpha, config.batch_size) == ("sdxl", 16, 16.0, 2)
    assert load_config(str(good)).rank == 32
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "broken.yaml").write_text("rank: [1,\n")
    (tmp_path / "typo.yaml").write_text("rnak: 3\n")
    for name, message in [
        ("list.yaml", "must be a mapping"),
        ("broken.yaml", "not valid YAML"),
        ("typo.yaml", "unknown key 'rnak'"),
        ("none.yaml", "no training config"),
    ]:
        with pytest.raises(EsploraError, match=message):
            load_config(tmp_path / name)
    with pytest.raises(EsploraError, match=r"unknown training config 'fluxx'.*tiny-flux"):
        load_config("fluxx")


def test_a_stored_config_reloads_to_the_same_config(tmp_path: Path) -> None:
    config = load_config("tiny-flux", {"rank": 8, "buckets": [[64, 48], [48, 64]]})
    stored = tmp_path / "config.yaml"
    stored.write_text(dump_config(config))
    again = load_config(stored)
    assert again == config and config_digest(again) == config_digest(config)
    assert config_digest(
        load_config("tiny-flux", {"rank": 8, "buckets": [[64, 48], [48, 64]], "max_steps": 99})
    ) == config_digest(config)
    assert config_digest(load_config("tiny-flux", {"rank": 9})) != config_digest(config)


def test_overrides_parse_as_yaml_values() -> None:
    parsed = parse_overrides(["rank=64", "cache_latents=false", "buckets=[[512, 512]]", "x="])
    assert parsed == {"rank": 64, "cache_latents": False, "buckets": [[512, 512]], "x": None}
    with pytest.raises(EsploraError, match="KEY=VALUE"):
        parse_overrides(["rank"])


def test_tiny_names_resolve_under_the_models_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from esplora.backends.registry import ModelUnavailable
    from esplora.settings import get_settings

    config = load_config("tiny-flux")
    (tmp_path / "flux").mkdir()
    (tmp_path / "flux" / "model_index.json").write_text("{}")
    assert resolve_model(config, tmp_path).location == str((tmp_path / "flux").resolve())
    monkeypatch.setenv("ESPLORA_MODELS_DIR", str(tmp_path))
    get_settings.cache_clear()
    source = resolve_model(config)
    assert source.local and source.label == "tiny/flux"
    with pytest.raises(ModelUnavailable, match="make-tiny"):
        resolve_model(load_config("tiny-sdxl"))
    assert resolve_model(load_config("flux")).location == "black-forest-labs/FLUX.1-dev"
    by_path = resolve_model(load_config("flux", {"base_model": str(tmp_path / "flux")}))
    assert by_path.local


# --- data --------------------------------------------------------------------------------


def test_buckets_keep_the_area_and_cover_the_aspect_ratios() -> None:
    buckets = make_buckets(1024, 64, [0.5, 0.75, 1.0, 4 / 3, 2.0])
    assert buckets == [(704, 1472), (896, 1152), (1024, 1024), (1152, 896), (1472, 704)]
    assert all(abs(w * h / 1024**2 - 1) < 0.02 for w, h in buckets)
    assert nearest_bucket(1400, 1000, buckets) == (1152, 896)  # 1.4 → 4:3 (9:7 after rounding)
    assert nearest_bucket(1920, 1080, buckets) == (1472, 704)  # 16:9 → the 2:1 bucket (2.09)
    assert nearest_bucket(1000, 1000, buckets) == (1024, 1024)
    assert nearest_bucket(500, 2000, buckets) == (704, 1472)
    assert make_buckets(64, 16, [1.0, 1.0]) == [(64, 64)]  # duplicates go
    with pytest.raises(ValueError):
        nearest_bucket(0, 10, buckets)


def test_images_are_resized_to_cover_and_centre_cropped(tmp_path: Path) -> None:
    assert crop_geometry((200, 100), (64, 64)) == ((128, 64), 0, 32)
    assert crop_geometry((100, 300), (48, 64)) == ((48, 144), 40, 0)
    # A 2:1 image: left half red, right half blue. The crop keeps the middle, both colours.
    pixels = np.zeros((100, 200, 3), dtype=np.uint8)
    pixels[:, :100, 0], pixels[:, 100:, 2] = 255, 255
    path = tmp_path / "halves.png"
    Image.fromarray(pixels).save(path)
    tensor = load_pixels(path, (64, 64))
    assert tuple(tensor.shape) == (3, 64, 64) and float(tensor.min()) >= -1.0
    assert float(tensor[0, :, :8].mean()) > 0.9 and float(tensor[2, :, -8:].mean()) > 0.9
    assert float(tensor[2, :, :8].mean()) < -0.9  # not flipped: red stays on the left


def _items(buckets: list[tuple[int, int]]) -> list[Item]:
    return [Item(i, Path(f"{i}.png"), f"t{i}", f"{i:064x}", b, b) for i, b in enumerate(buckets)]


def test_epoch_order_is_a_pure_function_of_seed_and_epoch() -> None:
    buckets = [(64, 64)] * 5 + [(80, 48)] * 3
    first = epoch_batches(buckets, 2, seed=7, epoch=0)
    assert first == epoch_batches(buckets, 2, seed=7, epoch=0)
    assert first != epoch_batches(buckets, 2, seed=7, epoch=1)
    assert first != epoch_batches(buckets, 2, seed=8, epoch=0)
    assert sorted(i for batch in first for i in batch) == list(range(8))  # each item once
    assert all(len({buckets[i] for i in batch}) == 1 for batch in first)  # one bucket a batch
    plan = BatchPlan(_items(buckets), batch_size=2, seed=7)
    assert plan.per_epoch == 5  # 3 + 2 batches
    assert [plan.batch(k) for k in range(5)] == first
    assert plan.position(12) == (2, 2)
    fresh = BatchPlan(_items(buckets), batch_size=2, seed=7)  # a resumed run
    assert fresh.batch(12) == plan.batch(12)
    two = [plan.batch(3, process=p, processes=2) for p in range(2)]  # two GPUs split the data
    assert two == [plan.batch(6), plan.batch(7)]


def test_caption_dropout_is_seeded_per_micro_step() -> None:
    texts = [f"caption {i}" for i in range(2000)]
    dropped = drop_captions(texts, 0.1, seed=3, micro_step=5)
    assert dropped == drop_captions(texts, 0.1, seed=3, micro_step=5)
    assert dropped != drop_captions(texts, 0.1, seed=3, micro_step=6)
    rate = dropped.count("") / len(texts)
    assert 0.08 < rate < 0.12
    assert all(d in ("", t) for d, t in zip(dropped, texts, strict=True))
    assert drop_captions(texts[:3], 0.0, seed=3, micro_step=5) == texts[:3]


def test_items_read_missing_sizes_and_hashes(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.new("RGB", (96, 48)).save(path)
    known = Example(path, "a", width=48, height=96, image_sha256="ab" * 32)
    items = prepare_items([Example(path, "a cat"), known], [(64, 64), (80, 48), (48, 80)])
    assert items[0].size == (96, 48) and items[0].bucket == (80, 48)
    assert items[0].image_sha256 == file_sha256(path) and items[0].latent_key.endswith("-80x48")
    assert items[1].bucket == (48, 80) and items[1].image_sha256 == "ab" * 32
    with pytest.raises(FileNotFoundError):
        prepare_items([Example(tmp_path / "none.png", "x")], [(64, 64)])
