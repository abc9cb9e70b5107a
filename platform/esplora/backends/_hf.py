"""Shared plumbing for the transformers backends: device and dtype, loading, batching.

torch and transformers are imported inside the functions, never at module import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from esplora.backends.registry import (
    BackendOptions,
    ModelSource,
    model_source,
    producer,
    unavailable,
)

if TYPE_CHECKING:
    from PIL.Image import Image

_T = TypeVar("_T")


def resolve_device(device: str) -> Any:
    """``auto`` → the first CUDA device when there is one, else the CPU; anything else as given."""
    import torch

    if device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(device: Any) -> Any:
    """bf16 on a CUDA device that supports it, fp16 on other CUDA devices, fp32 on the CPU."""
    import torch

    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def load(source: ModelSource, loader: Callable[..., _T], **kwargs: Any) -> _T:
    """``loader(source.location, **kwargs)``; a missing model becomes :class:`ModelUnavailable`."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per load would drown the pipeline's own progress
    try:
        return loader(source.location, **kwargs)
    except OSError as error:
        raise unavailable(source, error) from error


class LoadedModel:
    """A processor and a model in eval mode on the chosen device, with its producer string."""

    def __init__(
        self,
        options: BackendOptions,
        name: str,
        real_id: str,
        model_loader: Callable[..., Any],
        processor_loader: Callable[..., Any],
    ) -> None:
        self.source = model_source(options, name, real_id)
        self.device = resolve_device(options.device)
        self.dtype = resolve_dtype(self.device)
        self.processor = load(self.source, processor_loader)
        model = load(self.source, model_loader, dtype=self.dtype)
        self.model = model.to(self.device).eval()
        config = self.model.config
        revision = getattr(config, "_commit_hash", None)
        self.producer = producer(self.source, config.to_dict(), revision)

    def inputs(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Move a processor's output to the device; floating tensors take the model's dtype."""
        moved = {}
        for key, value in batch.items():
            if hasattr(value, "to"):
                is_float = value.is_floating_point()
                value = (
                    value.to(self.device, dtype=self.dtype) if is_float else value.to(self.device)
                )
            moved[key] = value
        return moved


def rgb(images: Iterable[Image]) -> list[Image]:
    """The images as RGB (the stages pass RGB already; a stray grey or RGBA one is converted)."""
    return [image if image.mode == "RGB" else image.convert("RGB") for image in images]


def batched(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
