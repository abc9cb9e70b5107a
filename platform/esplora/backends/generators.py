"""Text-to-image generators through diffusers: FLUX.1 (dev, schnell) and SDXL, with LoRA.

One pipeline per process, loaded with ``from_pretrained`` from a hub id, a local directory or
the tiny twin (``esplora models make-tiny``), in bf16 on CUDA (fp16 where bf16 is missing) and
fp32 on the CPU; ``cpu_offload`` and ``vae_tiling`` are the memory options real GPUs need.

Requests are grouped by (steps, guidance, size) and run ``batch_size`` at a time. Each request
draws its initial noise from its own CPU ``torch.Generator`` seeded with its seed, so an image
depends on its prompt, seed and knobs only, not on its batch neighbours: bit for bit at a given
batch size; another batch size may round a float differently (a pixel level, rarely). The noise
is the same on every device. A LoRA adapter (``options.adapter``) is loaded as the peft adapter
``esplora`` at ``options.adapter_scale``; the producer string then names it:
``<model>@<version>+lora:<adapter dir>@<weights sha256[:12]>:<scale>``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from esplora.backends._hf import batched, resolve_device, resolve_dtype
from esplora.backends.base import GenerationRequest, PhaseClock
from esplora.backends.lora import ADAPTER_NAME, AdapterRef, InvalidAdapter, adapter_ref
from esplora.backends.registry import (
    FLUX_DEV_ID,
    SDXL_ID,
    BackendError,
    BackendOptions,
    ModelUnavailable,
    model_source,
    producer,
    unavailable,
)

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["SIZE_MULTIPLE", "FluxGenerator", "InvalidRequest", "SdxlGenerator", "check_request"]

# Width and height must be multiples of these (Flux packs 2×2 latent patches of an 8× VAE).
SIZE_MULTIPLE: Mapping[str, int] = {"flux": 16, "sdxl": 8}
MAX_SEED = 2**63 - 1
_UNVERSIONED = ("dtype", "torch_dtype")


class InvalidRequest(BackendError, ValueError):
    """A generation request the model cannot honour (size, steps, seed)."""


def check_request(request: GenerationRequest, multiple: int, model: str) -> None:
    """Raise :class:`InvalidRequest` unless ``request`` suits a model with sides of ``multiple``."""
    if request.width <= 0 or request.height <= 0:
        raise InvalidRequest(f"image size must be positive, got {request.width}×{request.height}")
    if request.width % multiple or request.height % multiple:
        raise InvalidRequest(
            f"{model} needs width and height divisible by {multiple}, "
            f"got {request.width}×{request.height}"
        )
    if request.steps < 1:
        raise InvalidRequest(f"steps must be at least 1, got {request.steps}")
    if not 0 <= request.seed <= MAX_SEED:
        raise InvalidRequest(f"seed must lie in [0, 2**63 - 1], got {request.seed}")


def pipeline_configs(pipe: Any) -> dict[str, Any]:
    """The configs of a pipeline's components (models and scheduler), for the version digest."""
    configs: dict[str, Any] = {"pipeline": type(pipe).__name__}
    for name in sorted(pipe.components):
        config = getattr(pipe.components[name], "config", None)
        if config is None:
            continue
        values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        configs[name] = {
            k: v for k, v in values.items() if not k.startswith("_") and k not in _UNVERSIONED
        }
    return configs


@contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars, and only errors from diffusers' logger (hub retries, LoRA notes)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(level)


def _check_local_class(location: Path, expected: str) -> None:
    """A local directory holding another pipeline fails here, with the class it does hold."""
    try:
        index = json.loads((location / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # from_pretrained explains what is missing
    found = index.get("_class_name") if isinstance(index, dict) else None
    if isinstance(found, str) and found != expected:
        raise ModelUnavailable(
            str(location), f"{location} holds a {found}, not a {expected} (wrong --generator?)"
        )


class _DiffusersGenerator:
    """What both generators share: loading, placement, the adapter, batching and timing."""

    pipeline_class: ClassVar[str]
    family: ClassVar[str]  # "flux" / "sdxl": SIZE_MULTIPLE's key
    load_kwargs: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, options: BackendOptions, *, name: str, real_id: str) -> None:
        self.options = options
        self.adapter: AdapterRef | None = adapter_ref(options.adapter) if options.adapter else None
        self.source = model_source(options, name, real_id)
        self.device = resolve_device(options.device)
        self.dtype = resolve_dtype(self.device)
        self.pipe = self._load()
        if self.adapter is not None:
            self._load_adapter(self.adapter, options.adapter_scale)
        self._place()
        self.base_producer = producer(self.source, pipeline_configs(self.pipe))
        suffix = "" if self.adapter is None else self.adapter.label(options.adapter_scale)
        self.producer = self.base_producer + suffix
        self.multiple = SIZE_MULTIPLE[self.family]
        self.clock = PhaseClock()

    def _load(self) -> Any:
        import diffusers

        cls = getattr(diffusers, self.pipeline_class)
        if self.source.local:
            _check_local_class(Path(self.source.location), self.pipeline_class)
        try:
            with _quiet():
                return cls.from_pretrained(self.source.location, dtype=self.dtype,
                                           **self.load_kwargs)  # fmt: skip
        except OSError as error:
            raise unavailable(self.source, error) from error
        except (ValueError, TypeError, KeyError) as error:  # incomplete or foreign files
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise ModelUnavailable(
                self.source.label,
                f"cannot load {self.source.location} as a {self.pipeline_class}: {reason}",
            ) from error

    def _load_adapter(self, adapter: AdapterRef, scale: float) -> None:
        try:
            with _quiet():
                self.pipe.load_lora_weights(
                    str(adapter.directory),
                    weight_name=adapter.weights.name,
                    adapter_name=ADAPTER_NAME,
                )
        except (ValueError, KeyError, RuntimeError) as error:
            raise InvalidAdapter(f"cannot load LoRA adapter {adapter.weights}: {error}") from error
        loaded = {n for names in self.pipe.get_list_adapters().values() for n in names}
        if ADAPTER_NAME not in loaded:
            raise InvalidAdapter(
                f"LoRA adapter {adapter.weights} has no weights for this "
                f"{self.pipeline_class} (made for another model?)"
            )
        self.pipe.set_adapters([ADAPTER_NAME], adapter_weights=[scale])

    def _place(self) -> None:
        if self.options.cpu_offload and self.device.type == "cuda":
            self.pipe.enable_model_cpu_offload(device=self.device)
        else:  # offloading to the CPU from the CPU means nothing
            self.pipe.to(self.device)
        if self.options.vae_tiling:
            self.pipe.vae.enable_tiling()
        self.pipe.set_progress_bar_config(disable=True)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Image]:
        """One RGB image per request, in order, each at its request's width × height."""
        for request in requests:
            check_request(request, self.multiple, self.source.label)
        groups: dict[tuple[int, float, int, int], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.steps, r.guidance, r.width, r.height), []).append(i)
        images: dict[int, Image] = {}
        for indices in groups.values():
            for chunk in batched(indices, self.options.batch_size):
                done = self._batch([requests[i] for i in chunk])
                images.update(zip(chunk, done, strict=True))
        return [images[i] for i in range(len(requests))]

    def _batch(self, batch: Sequence[GenerationRequest]) -> list[Image]:
        """Requests that share steps, guidance and size, in one pipeline call."""
        import torch

        first = batch[0]
        generators = [torch.Generator("cpu").manual_seed(r.seed) for r in batch]
        marks: list[float] = []

        def step_end(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> Any:
            marks.append(time.perf_counter())
            return kwargs

        with torch.inference_mode():
            with self.clock.phase("encode"):
                embeds = self._encode([r.prompt for r in batch], first.guidance)
            started = time.perf_counter()
            output = self.pipe(
                **embeds, **self._sampling(first), generator=generators,
                callback_on_step_end=step_end, output_type="pil",
            )  # fmt: skip
            ended = time.perf_counter()
        split = marks[-1] if marks else ended  # the denoising loop ends at the last step
        self.clock.add("forward", split - started)
        self.clock.add("decode", ended - split)
        return [_rgb(image, first) for image in output.images]

    def _sampling(self, request: GenerationRequest) -> dict[str, Any]:
        return {
            "num_inference_steps": request.steps,
            "guidance_scale": request.guidance,
            "width": request.width,
            "height": request.height,
        }

    def _encode(self, prompts: list[str], guidance: float) -> dict[str, Any]:
        raise NotImplementedError


def _rgb(image: Image, request: GenerationRequest) -> Image:
    """The pipeline's image as RGB at the requested size (it already is; this guarantees it)."""
    from PIL import Image as PILImage

    image = image if image.mode == "RGB" else image.convert("RGB")
    if image.size != (request.width, request.height):
        image = image.resize((request.width, request.height), PILImage.Resampling.LANCZOS)
    return image


class FluxGenerator(_DiffusersGenerator):
    """FLUX.1 through ``FluxPipeline``: dev (guidance-distilled) by default, schnell likewise."""

    pipeline_class = "FluxPipeline"
    family = "flux"

    def __init__(
        self, options: BackendOptions, *, name: str = "flux", real_id: str | None = FLUX_DEV_ID
    ) -> None:
        super().__init__(options, name=name, real_id=real_id or FLUX_DEV_ID)
        # T5 context: 512 tokens for dev, 256 for schnell (no guidance embedding), and never
        # more than the tokenizer's own limit (64 for the tiny twin).
        limit = 512 if self.pipe.transformer.config.guidance_embeds else 256
        self.max_sequence_length = min(limit, int(self.pipe.tokenizer_2.model_max_length))

    def _encode(self, prompts: list[str], guidance: float) -> dict[str, Any]:
        embeds, pooled, _ = self.pipe.encode_prompt(
            prompt=prompts, prompt_2=None, max_sequence_length=self.max_sequence_length
        )
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}

    def _sampling(self, request: GenerationRequest) -> dict[str, Any]:
        return {**super()._sampling(request), "max_sequence_length": self.max_sequence_length}


class SdxlGenerator(_DiffusersGenerator):
    """Stable Diffusion XL through ``StableDiffusionXLPipeline`` (no invisible watermark)."""

    pipeline_class = "StableDiffusionXLPipeline"
    family = "sdxl"
    load_kwargs: ClassVar[Mapping[str, Any]] = {"add_watermarker": False}

    def __init__(
        self, options: BackendOptions, *, name: str = "sdxl", real_id: str | None = SDXL_ID
    ) -> None:
        super().__init__(options, name=name, real_id=real_id or SDXL_ID)

    def _encode(self, prompts: list[str], guidance: float) -> dict[str, Any]:
        guided = guidance > 1 and self.pipe.unet.config.time_cond_proj_dim is None
        embeds, negative, pooled, negative_pooled = self.pipe.encode_prompt(
            prompt=prompts, do_classifier_free_guidance=guided
        )
        encoded = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
        if guided:
            encoded |= {
                "negative_prompt_embeds": negative,
                "negative_pooled_prompt_embeds": negative_pooled,
            }
        return encoded
