"""What differs between Flux and SDXL training: loading, text and image encoding, and the loss.

The losses follow diffusers' LoRA training examples (``train_dreambooth_lora_flux.py``,
``train_text_to_image_lora_sdxl.py``): Flux learns the flow-matching velocity ``noise − x₀`` on
packed latents with latent image ids and the guidance input; SDXL predicts the noise (or the
velocity, per its scheduler) with ``add_time_ids`` and the pooled text embedding.

Every random draw of a step (the latent sample, timesteps, noise) comes from the ``generator``
passed in, a CPU generator the engine seeds per micro-step: the same numbers on any device and
after a resume. The VAE runs in fp32 (SDXL's overflows in fp16); latents are cached as the
VAE's distribution parameters, so a cached and an uncached run sample the same latents.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from esplora.backends.registry import ModelSource, ModelUnavailable, unavailable
from esplora_training.config import TrainingConfig
from esplora_training.data import Item, crop_geometry

__all__ = ["Family", "FluxFamily", "SdxlFamily", "load_family"]

Tensors = dict[str, Any]  # name → torch.Tensor (batch first)


class Family:
    """A loaded pipeline and the family's encoding and loss; subclasses fill in the details."""

    pipeline_class: ClassVar[str]
    role: ClassVar[str]  # the denoiser's attribute: "transformer" or "unet"
    load_kwargs: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, config: TrainingConfig, pipe: Any, device: Any, dtype: Any) -> None:
        import torch

        self.config, self.pipe, self.device, self.dtype = config, pipe, device, dtype
        for component in pipe.components.values():
            if isinstance(component, torch.nn.Module):
                component.requires_grad_(False)
        pipe.vae.to(device)  # loaded in fp32 (load_family)
        vae = pipe.vae.config
        self.vae_factor = 2 ** (len(vae.block_out_channels) - 1)
        self.latent_scale = float(vae.scaling_factor)
        self.latent_shift = float(getattr(vae, "shift_factor", None) or 0.0)

    @property
    def denoiser(self) -> Any:
        """The model the LoRA trains (Flux transformer, SDXL UNet)."""
        return getattr(self.pipe, self.role)

    @property
    def text_encoders(self) -> list[str]:
        return [n for n in ("text_encoder", "text_encoder_2") if getattr(self.pipe, n, None)]

    def encoders_to_device(self) -> None:
        """Put the text encoders on the training device (they run there when not cached)."""
        for name in self.text_encoders:
            getattr(self.pipe, name).to(self.device)

    def free(self, *, text: bool, vae: bool) -> None:
        """Drop the text encoders and/or the VAE once their outputs are cached."""
        names = (self.text_encoders if text else []) + (["vae"] if vae else [])
        for name in names:
            setattr(self.pipe, name, None)
        gc.collect()
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()

    def encode_images(self, pixels: Any) -> Any:
        """The VAE's latent distribution parameters (mean ‖ logvar) of a pixel batch, fp32."""
        import torch

        with torch.no_grad():
            moments = self.pipe.vae.encode(pixels.to(self.device, torch.float32)).latent_dist
        return moments.parameters.float()

    def encode_text(self, texts: Sequence[str]) -> Tensors:
        raise NotImplementedError

    def conditions(self, items: Sequence[Item]) -> Tensors:
        """Per-item inputs that are neither text nor image (SDXL's ``add_time_ids``)."""
        return {}

    def loss(self, model: Any, batch: Tensors, generator: Any) -> Any:
        raise NotImplementedError

    def sample_latents(self, batch: Tensors, generator: Any) -> Any:
        """x₀: a draw from the cached distribution, shifted and scaled as the pipeline does."""
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        params = batch["latent_params"].to(self.device, non_blocking=True)
        latents = DiagonalGaussianDistribution(params).sample(generator=generator)
        return ((latents - self.latent_shift) * self.latent_scale).to(self.dtype)

    def noise_like(self, latents: Any, generator: Any) -> Any:
        from diffusers.utils.torch_utils import randn_tensor

        return randn_tensor(latents.shape, generator=generator, device=self.device,
                            dtype=latents.dtype)  # fmt: skip


class FluxFamily(Family):
    """FLUX.1 (dev or schnell): flow matching, as in diffusers' Flux LoRA example."""

    pipeline_class = "FluxPipeline"
    role = "transformer"

    def __init__(self, config: TrainingConfig, pipe: Any, device: Any, dtype: Any) -> None:
        import copy

        super().__init__(config, pipe, device, dtype)
        scheduler = copy.deepcopy(pipe.scheduler)  # its timesteps and sigmas as initialised
        self.timesteps, self.sigmas = scheduler.timesteps.clone(), scheduler.sigmas.clone()
        self.train_timesteps = int(scheduler.config.num_train_timesteps)
        limit = int(getattr(pipe.tokenizer_2, "model_max_length", config.max_sequence_length))
        self.max_sequence_length = min(config.max_sequence_length, limit)
        self.guidance = bool(pipe.transformer.config.guidance_embeds)

    def encode_text(self, texts: Sequence[str]) -> Tensors:
        import torch

        with torch.no_grad():
            embeds, pooled, _ = self.pipe.encode_prompt(
                prompt=list(texts), prompt_2=None, device=self.device,
                max_sequence_length=self.max_sequence_length,
            )  # fmt: skip
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}

    def _sigmas(self, size: int, generator: Any) -> tuple[Any, Any]:
        """Timesteps and sigmas for a batch: uniform or logit-normal density, as diffusers."""
        import torch

        if self.config.timestep_sampling == "logit_normal":
            normal = torch.randn(size, generator=generator)
            u = torch.sigmoid(normal * self.config.logit_std + self.config.logit_mean)
        else:
            u = torch.rand(size, generator=generator)
        indices = (u * self.train_timesteps).long().clamp(max=self.train_timesteps - 1)
        return self.timesteps[indices], self.sigmas[indices]

    def loss(self, model: Any, batch: Tensors, generator: Any) -> Any:
        import torch
        from diffusers import FluxPipeline

        x0 = self.sample_latents(batch, generator)
        b, c, h, w = x0.shape
        timesteps, sigmas = self._sigmas(b, generator)
        noise = self.noise_like(x0, generator)
        sigmas = sigmas.to(self.device, x0.dtype).view(b, 1, 1, 1)
        noisy = (1.0 - sigmas) * x0 + sigmas * noise
        embeds = batch["prompt_embeds"].to(self.device, self.dtype)
        guidance = torch.full((b,), self.config.guidance_scale, device=self.device)
        prediction = model(
            hidden_states=FluxPipeline._pack_latents(noisy, b, c, h, w),
            timestep=(timesteps / 1000).to(self.device, self.dtype),
            guidance=guidance if self.guidance else None,
            pooled_projections=batch["pooled_prompt_embeds"].to(self.device, self.dtype),
            encoder_hidden_states=embeds,
            txt_ids=torch.zeros(embeds.shape[1], 3, device=self.device, dtype=self.dtype),
            img_ids=FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, self.device,
                                                           self.dtype),
            return_dict=False,
        )[0]  # fmt: skip
        prediction = FluxPipeline._unpack_latents(
            prediction, h * self.vae_factor, w * self.vae_factor, self.vae_factor
        )
        target = noise - x0
        return ((prediction.float() - target.float()) ** 2).reshape(b, -1).mean(1).mean()


class SdxlFamily(Family):
    """Stable Diffusion XL: noise (or velocity) prediction with ``add_time_ids``."""

    pipeline_class = "StableDiffusionXLPipeline"
    role = "unet"
    load_kwargs: ClassVar[Mapping[str, Any]] = {"add_watermarker": False}

    def __init__(self, config: TrainingConfig, pipe: Any, device: Any, dtype: Any) -> None:
        from diffusers import DDPMScheduler

        super().__init__(config, pipe, device, dtype)
        self.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        self.train_timesteps = int(self.scheduler.config.num_train_timesteps)

    def encode_text(self, texts: Sequence[str]) -> Tensors:
        import torch

        with torch.no_grad():
            embeds, _, pooled, _ = self.pipe.encode_prompt(
                prompt=list(texts), device=self.device, do_classifier_free_guidance=False
            )
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}

    def conditions(self, items: Sequence[Item]) -> Tensors:
        """(original height, width, crop top, left, target height, width) per item."""
        import torch

        rows = []
        for item in items:
            _, top, left = crop_geometry(item.size, item.bucket)
            rows.append([item.size[1], item.size[0], top, left, item.bucket[1], item.bucket[0]])
        return {"time_ids": torch.tensor(rows, dtype=torch.float32)}

    def loss(self, model: Any, batch: Tensors, generator: Any) -> Any:
        import torch
        import torch.nn.functional as functional

        x0 = self.sample_latents(batch, generator)
        noise = self.noise_like(x0, generator)
        timesteps = torch.randint(0, self.train_timesteps, (x0.shape[0],), generator=generator)
        timesteps = timesteps.to(self.device)
        noisy = self.scheduler.add_noise(x0, noise, timesteps)
        conditions = {
            "text_embeds": batch["pooled_prompt_embeds"].to(self.device, self.dtype),
            "time_ids": batch["time_ids"].to(self.device, self.dtype),
        }
        prediction = model(
            noisy, timesteps, encoder_hidden_states=batch["prompt_embeds"].to(self.device,
                                                                              self.dtype),
            added_cond_kwargs=conditions, return_dict=False,
        )[0]  # fmt: skip
        if self.scheduler.config.prediction_type == "v_prediction":
            target = self.scheduler.get_velocity(x0, noise, timesteps)
        else:
            target = noise
        return functional.mse_loss(prediction.float(), target.float())


FAMILIES: Mapping[str, type[Family]] = {"flux": FluxFamily, "sdxl": SdxlFamily}


def _check_class(source: ModelSource, expected: str) -> None:
    try:
        index = json.loads((Path(source.location) / "model_index.json").read_text("utf-8"))
    except (OSError, ValueError):
        return
    found = index.get("_class_name") if isinstance(index, dict) else None
    if isinstance(found, str) and found != expected:
        raise ModelUnavailable(source.label, f"{source.location} holds a {found}, not a {expected}")


@contextmanager
def _quiet() -> Iterator[None]:
    """No per-file progress bars or dtype notes from diffusers and transformers while loading."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    level = diffusers_logging.get_verbosity()
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(level)
        diffusers_logging.enable_progress_bar()
        transformers_logging.enable_progress_bar()


def load_family(config: TrainingConfig, source: ModelSource, device: Any, dtype: Any) -> Family:
    """The family's pipeline loaded with ``from_pretrained`` (weights in ``dtype``, VAE fp32)."""
    import diffusers
    import torch

    family = FAMILIES[config.family]
    if source.local:
        _check_class(source, family.pipeline_class)
    cls = getattr(diffusers, family.pipeline_class)
    dtypes = {"default": dtype, "vae": torch.float32}
    try:
        with _quiet():
            pipe = cls.from_pretrained(source.location, dtype=dtypes, **family.load_kwargs)
    except OSError as error:
        raise unavailable(source, error) from error
    except (ValueError, TypeError, KeyError) as error:  # incomplete or foreign files
        raise ModelUnavailable(source.label, f"cannot load {source.location}: {error}") from error
    pipe.set_progress_bar_config(disable=True)
    return family(config, pipe, device, dtype)
