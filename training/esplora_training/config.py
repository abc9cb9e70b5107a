"""The training configuration: one validated pydantic object, read from YAML, stored with the run.

A config comes from a shipped name (``flux``, ``sdxl``, ``tiny-flux``, ``tiny-sdxl``: YAML files
in ``esplora_training/configs``, package data) or a YAML path, plus overrides. Unknown keys and
bad values raise :class:`~esplora.errors.EsploraError` naming the key. Values left out take the
family's defaults (base model, LoRA targets); ``alpha`` left out equals ``rank``.

Only the paper's rank (128) comes from ESPLoRA; alpha = rank, learning rate 1e-4, 10% caption
dropout and complex prompts are this project's defaults, the rest diffusers' example defaults.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml  # type: ignore[import-untyped]  # no stubs installed (types-PyYAML)
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from esplora.backends.registry import (
    FLUX_DEV_ID,
    SDXL_ID,
    BackendOptions,
    ModelSource,
    model_source,
)
from esplora.errors import EsploraError

__all__ = [
    "DEFAULT_ASPECT_RATIOS",
    "DEFAULT_CONFIG",
    "RUN_CONTROL_FIELDS",
    "SIZE_MULTIPLE",
    "TrainingConfig",
    "config_digest",
    "dump_config",
    "load_config",
    "parse_overrides",
    "resolve_model",
    "shipped_configs",
]

DEFAULT_CONFIG = "flux"
TINY_PREFIX = "tiny/"
BASE_MODELS: Mapping[str, str] = {"flux": FLUX_DEV_ID, "sdxl": SDXL_ID}
# Image sides must be multiples of these (Flux packs 2×2 patches of an 8× VAE latent).
SIZE_MULTIPLE: Mapping[str, int] = {"flux": 16, "sdxl": 8}
# Width / height of the aspect buckets (ours): square, 4:3, 3:2, 16:9, 2:1 and their portraits.
DEFAULT_ASPECT_RATIOS = (0.5, 0.5625, 0.6667, 0.75, 1.0, 1.3333, 1.5, 1.7778, 2.0)
# Fields a resumed run may change: they steer the run, not the trajectory of the weights.
RUN_CONTROL_FIELDS = frozenset(
    {"max_steps", "checkpoint_every", "keep_last", "probe_every", "snapshot", "split",
     "cache_memory_mib",
     "validation_prompts", "validation_every", "validation_steps", "validation_guidance",
     "validation_seed"}
)  # fmt: skip


class TrainingConfig(BaseModel):
    """Everything a LoRA training run needs; see docs/training.md for each field."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    # Model
    family: Literal["flux", "sdxl"] = "flux"
    base_model: str | None = Field(
        default=None, description="hub id, directory, or tiny/<name> under the models dir"
    )
    # Data (the job reads `snapshot`/`split`/`prompt_style`; the engine trains on example texts)
    snapshot: str | None = None
    split: str = "train"
    prompt_style: Literal["complex", "simple"] = "complex"
    resolution: int = Field(default=1024, ge=16, description="buckets hold about resolution²")
    bucket_step: int = Field(default=64, ge=8)
    aspect_ratios: list[float] = Field(default=list(DEFAULT_ASPECT_RATIOS), min_length=1)
    buckets: list[tuple[int, int]] | None = Field(default=None, description="(width, height)")
    caption_dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    # LoRA
    rank: int = Field(default=128, ge=1)
    alpha: float | None = Field(default=None, gt=0)
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    targets: list[str] | None = None
    # Optimisation
    learning_rate: float = Field(default=1e-4, gt=0)
    adam_beta1: float = Field(default=0.9, ge=0, lt=1)
    adam_beta2: float = Field(default=0.999, ge=0, lt=1)
    adam_epsilon: float = Field(default=1e-8, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "constant"
    lr_warmup_steps: int = Field(default=0, ge=0)
    batch_size: int = Field(default=1, ge=1)
    gradient_accumulation: int = Field(default=1, ge=1)
    max_steps: int = Field(default=2000, ge=1)
    seed: int = Field(default=0, ge=0, lt=2**32)
    # Loss
    guidance_scale: float = Field(default=3.5, ge=0, description="Flux-dev's guidance input")
    timestep_sampling: Literal["uniform", "logit_normal"] = "uniform"
    logit_mean: float = 0.0
    logit_std: float = Field(default=1.0, gt=0)
    max_sequence_length: int = Field(default=512, ge=1, description="T5 tokens (Flux)")
    # Memory and speed
    mixed_precision: Literal["no", "fp16", "bf16"] = "bf16"
    gradient_checkpointing: bool = True
    cache_latents: bool = True
    cache_text: bool = True
    cache_batch_size: int = Field(default=8, ge=1)
    cache_memory_mib: int = Field(default=1024, ge=0, description="cached tensors kept in RAM")
    # Checkpoints and monitoring
    checkpoint_every: int = Field(default=250, ge=1)
    keep_last: int = Field(default=3, ge=1)
    probe_every: int = Field(default=0, ge=0, description="fixed-noise probe loss; 0 = off")
    validation_prompts: list[str] = Field(default_factory=list)
    validation_every: int | None = Field(default=None, ge=1)
    validation_steps: int = Field(default=28, ge=1)
    validation_guidance: float = Field(default=3.5, ge=0)
    validation_seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _fill_and_check(self) -> TrainingConfig:
        multiple = SIZE_MULTIPLE[self.family]
        self.base_model = self.base_model or BASE_MODELS[self.family]
        self.alpha = float(self.alpha if self.alpha is not None else self.rank)
        self.targets = list(self.targets) if self.targets is not None else _targets(self.family)
        self.validation_every = self.validation_every or self.checkpoint_every
        _require(bool(self.targets), "targets", "name at least one module")
        _require(self.resolution % multiple == 0, "resolution", f"must be a multiple of {multiple}")
        _require(
            self.bucket_step % multiple == 0, "bucket_step", f"must be a multiple of {multiple}"
        )
        _require(all(r > 0 for r in self.aspect_ratios), "aspect_ratios", "must be positive")
        for width, height in self.buckets or []:
            ok = width > 0 and height > 0 and width % multiple == 0 and height % multiple == 0
            _require(ok, "buckets", f"sides must be positive multiples of {multiple}")
        _require(self.lr_warmup_steps <= self.max_steps, "lr_warmup_steps", "exceeds max_steps")
        _require(
            self.validation_every % self.checkpoint_every == 0,
            "validation_every",
            "must be a multiple of checkpoint_every (validation runs on checkpoint adapters)",
        )
        return self

    @property
    def lora_alpha(self) -> float:
        """``alpha`` after defaulting (always set once validated)."""
        return float(self.alpha if self.alpha is not None else self.rank)

    @property
    def lora_targets(self) -> list[str]:
        """``targets`` after defaulting."""
        return list(self.targets) if self.targets is not None else _targets(self.family)

    @property
    def model_name(self) -> str:
        """``base_model`` after defaulting."""
        return self.base_model or BASE_MODELS[self.family]


def _targets(family: str) -> list[str]:
    from esplora.backends.lora import FLUX_TARGETS, SDXL_TARGETS

    return list(FLUX_TARGETS if family == "flux" else SDXL_TARGETS)


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ValueError(f"{key}: {message}")


# --- loading ------------------------------------------------------------------------------


def shipped_configs() -> list[str]:
    """The names of the configs shipped as package data (``flux``, ``sdxl``, ``tiny-flux``…)."""
    folder = resources.files("esplora_training") / "configs"
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def _read_yaml(text: str, label: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise EsploraError(f"training config {label} is not valid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise EsploraError(f"training config {label} must be a mapping of keys to values")
    return {str(k): v for k, v in data.items()}


def _read_source(source: str | Path | None) -> tuple[dict[str, Any], str]:
    """The raw mapping of a shipped name or a YAML file, and a label for messages."""
    name = DEFAULT_CONFIG if source is None else str(source)
    shipped = name.removesuffix(".yaml")
    path = Path(name).expanduser()
    if path.is_file():
        return _read_yaml(path.read_text(encoding="utf-8"), str(path)), str(path)
    if isinstance(source, Path) or (shipped not in shipped_configs() and path.suffix):
        raise EsploraError(f"no training config file at {path}")
    if shipped not in shipped_configs():
        known = ", ".join(shipped_configs())
        raise EsploraError(f"unknown training config {name!r}: give a YAML path or one of {known}")
    text = (resources.files("esplora_training") / "configs" / f"{shipped}.yaml").read_text("utf-8")
    return _read_yaml(text, shipped), shipped


def _explain(error: ValidationError, label: str) -> EsploraError:
    known = sorted(TrainingConfig.model_fields)
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "config"
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown key {key!r} (known keys: {', '.join(known)})")
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
            problems.append(message if not item["loc"] else f"{key}: {message}")
    return EsploraError(f"invalid training config {label}: " + "; ".join(problems))


def load_config(
    source: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> TrainingConfig:
    """The validated config of ``source`` (a shipped name or a YAML path; ``None``: ``flux``),
    with ``overrides`` applied on top (keys as in the YAML). Raises :class:`EsploraError`."""
    data, label = _read_source(source)
    merged = {**data, **dict(overrides or {})}
    try:
        return TrainingConfig.model_validate(merged)
    except ValidationError as error:
        raise _explain(error, label) from None


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["rank=64", "buckets=[[512, 512]]"]`` → a mapping; each value is read as YAML."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise EsploraError(f"override {item!r} is not KEY=VALUE")
        try:
            parsed[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as error:
            raise EsploraError(f"override {item!r}: the value is not valid YAML") from error
    return parsed


def dump_config(config: TrainingConfig) -> str:
    """The config as YAML (every field, defaults filled in), as stored with a run."""
    data = config.model_dump(mode="json")
    text: str = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    return text


def config_digest(config: TrainingConfig, *, exclude: frozenset[str] = RUN_CONTROL_FIELDS) -> str:
    """A short digest of the fields that shape the trained weights."""
    data = config.model_dump(mode="json", exclude=set(exclude))
    text = json.dumps(data, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def resolve_model(config: TrainingConfig, models_dir: Path | None = None) -> ModelSource:
    """Where the base model comes from: ``tiny/<name>`` is ``<models_dir>/<name>`` (default
    ``ESPLORA_MODELS_DIR``, else ``ESPLORA_HOME/models``); a directory; or a hub id."""
    name = config.model_name
    if name.startswith(TINY_PREFIX):
        if models_dir is None:
            from esplora.settings import get_settings

            models_dir = get_settings().resolved_models_dir
        options = BackendOptions(profile="tiny", models_dir=models_dir)
        return model_source(options, name.removeprefix(TINY_PREFIX), real_id=name)
    return model_source(BackendOptions(model_id=name), config.family, name)
