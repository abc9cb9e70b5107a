"""LoRA adapters for the generators: add them to a model, save them, and name them.

An adapter is a directory in diffusers' LoRA format (``pytorch_lora_weights.safetensors``, the
peft adapter config stored in the file's metadata so that ``lora_alpha != r`` survives a reload:
without it diffusers silently reloads with alpha = r) plus ``esplora_adapter.json`` (base model,
rank, alpha, targets). Any diffusers LoRA directory or ``.safetensors`` file loads; the JSON is
ours and optional. torch, peft and diffusers are imported inside the functions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esplora.backends.registry import InvalidBackendOptions, ModelUnavailable

__all__ = [
    "ADAPTER_INFO",
    "ADAPTER_NAME",
    "ADAPTER_WEIGHTS",
    "FLUX_TARGETS",
    "SDXL_TARGETS",
    "AdapterRef",
    "InvalidAdapter",
    "adapter_info",
    "adapter_ref",
    "add_lora",
    "file_sha256",
    "save_adapter",
]

ADAPTER_NAME = "esplora"
ADAPTER_WEIGHTS = "pytorch_lora_weights.safetensors"  # diffusers' default weight name
ADAPTER_INFO = "esplora_adapter.json"
ADAPTER_FORMAT = 1

# Attention and feed-forward projections of the Flux transformer's double-stream blocks.
FLUX_TARGETS: tuple[str, ...] = (
    "to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
    "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2",
)  # fmt: skip
# Self- and cross-attention and feed-forward projections of the SDXL UNet's transformer blocks.
SDXL_TARGETS: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2")


class InvalidAdapter(InvalidBackendOptions):
    """An adapter that does not fit (bad rank or alpha, no LoRA weights for this model)."""


@dataclass(frozen=True, slots=True)
class AdapterRef:
    """A LoRA adapter on disk: its directory, weights file and identity."""

    directory: Path
    weights: Path
    name: str  # the directory name (the file's stem for a bare file)
    digest: str  # first 12 hex digits of the weights file's SHA-256

    def label(self, scale: float) -> str:
        """What producer strings append: ``+lora:<name>@<digest>:<scale>``."""
        return f"+lora:{self.name}@{self.digest}:{scale:g}"


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _weights_in(directory: Path) -> Path:
    default = directory / ADAPTER_WEIGHTS
    if default.is_file():
        return default
    found = sorted(directory.glob("*.safetensors"))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise ModelUnavailable(
            str(directory),
            f"adapter directory {directory} has {what} .safetensors files: expected "
            f"{ADAPTER_WEIGHTS} (diffusers' LoRA format)",
        )
    return found[0]


def adapter_ref(path: str | Path) -> AdapterRef:
    """The adapter at ``path`` (a directory, or a ``.safetensors`` file), hashed.

    Raises :class:`ModelUnavailable` when there is nothing to load there.
    """
    location = Path(path).expanduser().resolve()
    if location.is_dir():
        weights, name = _weights_in(location), location.name
    elif location.is_file() and location.suffix == ".safetensors":
        weights, name = location, location.stem
    else:
        raise ModelUnavailable(
            str(location),
            f"no LoRA adapter at {location}: give a directory written by save_lora_weights "
            f"(with {ADAPTER_WEIGHTS}) or a .safetensors file",
        )
    return AdapterRef(weights.parent, weights, name, file_sha256(weights)[:12])


def adapter_info(directory: Path) -> dict[str, Any] | None:
    """The ``esplora_adapter.json`` of an adapter directory, or ``None`` without one."""
    try:
        info: dict[str, Any] = json.loads((directory / ADAPTER_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info


def add_lora(
    model: Any,
    rank: int,
    alpha: float,
    targets: Sequence[str] = FLUX_TARGETS,
    *,
    name: str = ADAPTER_NAME,
    dropout: float = 0.0,
) -> Any:
    """Add a LoRA adapter ``name`` (peft ``LoraConfig``) to a diffusers model; returns the config.

    Only the LoRA weights are trainable afterwards; the B matrices start at zero, as usual.
    """
    from peft import LoraConfig

    if rank < 1 or not alpha > 0:
        raise InvalidAdapter(f"LoRA rank must be >= 1 and alpha > 0, got rank={rank}, {alpha=}")
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(targets),
        init_lora_weights=True,
    )
    model.add_adapter(config, adapter_name=name)
    return config


def _role(pipeline_class: Any) -> str:
    """``unet`` or ``transformer``: the denoiser's name in the pipeline's LoRA save arguments."""
    loadable: Sequence[str] = getattr(pipeline_class, "_lora_loadable_modules", ())
    for role in ("transformer", "unet"):
        if role in loadable:
            return role
    raise InvalidAdapter(f"{getattr(pipeline_class, '__name__', pipeline_class)} has no LoRA")


def save_adapter(
    pipeline_class: Any,
    model: Any,
    out_dir: Path,
    *,
    name: str = ADAPTER_NAME,
    base: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> AdapterRef:
    """Write ``model``'s adapter ``name`` in diffusers' LoRA format, with its peft metadata.

    ``pipeline_class`` (``FluxPipeline``, ``StableDiffusionXLPipeline``) decides the key prefix;
    ``base`` (the base model's id or producer) and ``extra`` go to ``esplora_adapter.json``.
    """
    from peft.utils import get_peft_model_state_dict

    if name not in getattr(model, "peft_config", {}):
        raise InvalidAdapter(f"the model has no LoRA adapter named {name!r}")
    config = model.peft_config[name]
    role = _role(pipeline_class)
    out_dir.mkdir(parents=True, exist_ok=True)
    pipeline_class.save_lora_weights(
        str(out_dir),
        **{
            f"{role}_lora_layers": get_peft_model_state_dict(model, adapter_name=name),
            f"{role}_lora_adapter_metadata": config.to_dict(),
        },
        weight_name=ADAPTER_WEIGHTS,
    )
    ref = adapter_ref(out_dir)
    info = {
        "format": ADAPTER_FORMAT,
        "pipeline": getattr(pipeline_class, "__name__", str(pipeline_class)),
        "base": base,
        "rank": int(config.r),
        "alpha": float(config.lora_alpha),
        "targets": sorted(config.target_modules),
        "weights": ref.weights.name,
        "sha256": ref.digest,
        **dict(extra or {}),
    }
    text = json.dumps(info, indent=2, sort_keys=True, default=str) + "\n"
    (out_dir / ADAPTER_INFO).write_text(text, encoding="utf-8")
    return ref
