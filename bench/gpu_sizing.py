"""GPU sizing: what the real models cost on a real card, with random weights (no download).

1. LoRA training steps of the real-size FLUX.1-dev transformer (its published configuration,
   written below; 11.9 B parameters built directly in bf16 on the device) with a rank-128 LoRA
   on esplora's targets, fp32 LoRA weights and AdamW, as the engine trains: step time and peak
   memory at 512 and 1024 px, with and without gradient checkpointing. The text encoders and
   the VAE are not loaded: with cached latents and embeddings the engine frees them too.
2. Batch throughput of Grounding DINO tiny and Depth Anything V2 Small (their published
   configurations, random weights) at their processors' input sizes.

Every configuration survives an out-of-memory error (recorded as "OOM"); a time budget skips
what would not finish in time. The summary is one JSON object on stdout (and ``--out``).

    python bench/gpu_sizing.py                 # on a GPU machine: under 8 minutes on an H100
    python bench/gpu_sizing.py --smoke         # CPU, tiny sizes, a few seconds: the code paths
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import torch

# FLUX.1-dev transformer/config.json (diffusers FluxTransformer2DModel), as published.
FLUX_DEV = {
    "patch_size": 1,
    "in_channels": 64,
    "num_layers": 19,
    "num_single_layers": 38,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "pooled_projection_dim": 768,
    "guidance_embeds": True,
    "axes_dims_rope": (16, 56, 56),
}
FLUX_TINY = {
    "patch_size": 1,
    "in_channels": 64,
    "num_layers": 1,
    "num_single_layers": 1,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "joint_attention_dim": 32,
    "pooled_projection_dim": 32,
    "guidance_embeds": True,
    "axes_dims_rope": (4, 4, 8),
}
TEXT_TOKENS = {"real": 512, "smoke": 16}  # T5 tokens: FLUX.1-dev trains with 512


def grounding_dino_config(smoke: bool) -> Any:
    """IDEA-Research/grounding-dino-tiny: Swin-T backbone, BERT-base text, d_model 256, 900
    queries, 6 + 6 layers (transformers' defaults are that checkpoint's values)."""
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    if not smoke:
        backbone = SwinConfig(
            embed_dim=96,
            depths=[2, 2, 6, 2],
            num_heads=[3, 6, 12, 24],
            window_size=7,
            out_indices=[2, 3, 4],
        )
        return GroundingDinoConfig(
            backbone_config=backbone,
            text_config=BertConfig(),
            d_model=256,
            num_queries=900,
            encoder_layers=6,
            decoder_layers=6,
            max_text_len=256,
        )
    backbone = SwinConfig(
        embed_dim=8,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        window_size=4,
        out_indices=[2, 3, 4],
    )
    text = BertConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    return GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=20,
    )


def depth_anything_config(smoke: bool) -> Any:
    """depth-anything/Depth-Anything-V2-Small-hf: DINOv2-S backbone (384 wide, 12 layers)."""
    from transformers import DepthAnythingConfig, Dinov2Config

    if not smoke:
        backbone = Dinov2Config(
            image_size=518,
            patch_size=14,
            hidden_size=384,
            num_hidden_layers=12,
            num_attention_heads=6,
            out_indices=[3, 6, 9, 12],
            reshape_hidden_states=False,
        )
        return DepthAnythingConfig(
            backbone_config=backbone,
            reassemble_hidden_size=384,
            reassemble_factors=[4, 2, 1, 0.5],
            neck_hidden_sizes=[48, 96, 192, 384],
            fusion_hidden_size=64,
            head_hidden_size=32,
            depth_estimation_type="relative",
        )
    backbone = Dinov2Config(
        image_size=56,
        patch_size=14,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
    )
    return DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        depth_estimation_type="relative",
    )


# --- measuring ----------------------------------------------------------------------------


class Budget:
    """Wall-clock budget: configurations that would start after it are skipped."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def peak_gib(device: torch.device) -> float:
    """Peak allocated GPU memory since the last reset; on the CPU, the process's peak RSS."""
    if device.type == "cuda":
        return float(torch.cuda.max_memory_allocated(device)) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


@contextmanager
def peak_window(device: torch.device) -> Iterator[None]:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    yield


def timed(step: Callable[[], None], device: torch.device, warmup: int, steps: int) -> float:
    """Median seconds per call of ``step`` after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    sync(device)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def guarded(
    device: torch.device, budget: Budget, need_s: float, run: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """``run()``'s figures, or what stopped it: OOM, another error, or the time budget."""
    if budget.left() < need_s:
        return {"status": "skipped (time budget)"}
    try:
        with peak_window(device):
            return {"status": "ok", **run()}
    except torch.OutOfMemoryError:
        return {"status": "OOM"}
    except RuntimeError as error:  # e.g. a kernel missing for this dtype
        return {"status": f"error: {str(error).splitlines()[0][:200]}"}
    finally:
        release(device)


# --- Flux LoRA training -------------------------------------------------------------------


def build_flux(
    config: dict[str, Any], rank: int, device: torch.device, dtype: torch.dtype
) -> tuple[Any, list[torch.nn.Parameter], Any]:
    """The transformer built in ``dtype`` on ``device`` (random weights), a rank-``rank`` LoRA
    on the targets in fp32, and AdamW over the LoRA weights."""
    from diffusers import FluxTransformer2DModel

    from esplora.backends.lora import FLUX_TARGETS, add_lora

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = FluxTransformer2DModel(**config)
            model.requires_grad_(False)
            add_lora(model, rank, float(rank), FLUX_TARGETS)
    finally:
        torch.set_default_dtype(previous)
    params = [p for p in model.parameters() if p.requires_grad]
    for param in params:
        param.data = param.data.float()
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-4)
    return model, params, optimizer


def flux_inputs(
    model: Any, size: int, tokens: int, device: torch.device, dtype: torch.dtype
) -> dict[str, Any]:
    """Random inputs of one 1-image batch at ``size`` px, shaped as the engine feeds them."""
    from diffusers import FluxPipeline

    side = size // 16  # 8× VAE, then 2×2 packing
    config = model.config
    return {
        "hidden_states": torch.randn(
            1, side * side, config.in_channels, device=device, dtype=dtype
        ),
        "encoder_hidden_states": torch.randn(
            1, tokens, config.joint_attention_dim, device=device, dtype=dtype
        ),
        "pooled_projections": torch.randn(
            1, config.pooled_projection_dim, device=device, dtype=dtype
        ),
        "timestep": torch.full((1,), 0.5, device=device, dtype=dtype),
        "guidance": torch.full((1,), 3.5, device=device),
        "txt_ids": torch.zeros(tokens, 3, device=device, dtype=dtype),
        "img_ids": FluxPipeline._prepare_latent_image_ids(1, side, side, device, dtype),
    }


def flux_case(
    model: Any,
    params: list[Any],
    optimizer: Any,
    size: int,
    checkpointing: bool,
    tokens: int,
    device: torch.device,
    warmup: int,
    steps: int,
) -> dict[str, Any]:
    """Median step time and peak memory of LoRA training steps at one size and setting."""
    if checkpointing:
        model.enable_gradient_checkpointing()
    else:
        model.disable_gradient_checkpointing()
    dtype = model.time_text_embed.timestep_embedder.linear_1.weight.dtype  # the frozen weights
    inputs = flux_inputs(model, size, tokens, device, dtype)
    target = torch.randn_like(inputs["hidden_states"], dtype=torch.float32)

    def step() -> None:
        prediction = model(**inputs, return_dict=False)[0]
        loss = torch.nn.functional.mse_loss(prediction.float(), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    try:
        seconds = timed(step, device, warmup, steps)
    finally:
        optimizer.zero_grad(set_to_none=True)
    return {"step_s": round(seconds, 4), "peak_gib": round(peak_gib(device), 2)}


def flux_section(smoke: bool, device: torch.device, budget: Budget, steps: int) -> dict[str, Any]:
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    config, rank = (FLUX_TINY, 8) if smoke else (FLUX_DEV, 128)
    started = time.perf_counter()
    model, params, optimizer = build_flux(config, rank, device, dtype)
    section: dict[str, Any] = {
        "config": "tiny" if smoke else "FLUX.1-dev",
        "rank": rank,
        "dtype": str(dtype),
        "params": sum(p.numel() for p in model.parameters()),
        "lora_params": sum(p.numel() for p in params),
        "build_s": round(time.perf_counter() - started, 1),
        "static_gib": round(peak_gib(device), 2),
        "cases": [],
    }
    sizes = (64, 128) if smoke else (512, 1024)
    order = [(sizes[0], False), (sizes[0], True), (sizes[1], True), (sizes[1], False)]
    for size, checkpointing in order:  # the likeliest OOM last
        need = 5.0 if smoke else (25.0 if size == 512 else 60.0)
        figures = guarded(
            device,
            budget,
            need,
            partial(
                flux_case,
                model,
                params,
                optimizer,
                size,
                checkpointing,
                TEXT_TOKENS["smoke" if smoke else "real"],
                device,
                warmup=1 if smoke else 2,
                steps=steps,
            ),
        )
        section["cases"].append({"size": size, "gradient_checkpointing": checkpointing, **figures})
    return section  # the model goes with this frame; main() releases the memory


# --- detection and depth throughput -------------------------------------------------------


def throughput(
    model: Any, make: Callable[[int], dict[str, Any]], batch: int, device: torch.device, steps: int
) -> dict[str, Any]:
    inputs = make(batch)

    def step() -> None:
        with torch.inference_mode():
            model(**inputs)

    seconds = timed(step, device, warmup=1, steps=steps)
    return {
        "batch": batch,
        "images_per_s": round(batch / seconds, 2),
        "peak_gib": round(peak_gib(device), 2),
    }


def detector_section(
    smoke: bool, device: torch.device, budget: Budget, steps: int
) -> dict[str, Any]:
    from transformers import GroundingDinoForObjectDetection

    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    model = GroundingDinoForObjectDetection(grounding_dino_config(smoke)).to(device, dtype).eval()
    height, width = (64, 96) if smoke else (800, 1066)  # a 480×640 photo after the processor
    tokens = 12  # "a cat . a dog . a car ." with [CLS]/[SEP]

    def make(batch: int) -> dict[str, Any]:
        return {
            "pixel_values": torch.randn(batch, 3, height, width, device=device, dtype=dtype),
            "pixel_mask": torch.ones(batch, height, width, device=device, dtype=torch.long),
            "input_ids": torch.randint(1000, 2000, (batch, tokens), device=device)
            % (model.config.text_config.vocab_size),
            "attention_mask": torch.ones(batch, tokens, device=device, dtype=torch.long),
        }

    cases = [
        guarded(device, budget, 10.0, partial(throughput, model, make, b, device, steps))
        for b in ((1, 2) if smoke else (1, 8, 32))
    ]
    section = {
        "config": "tiny" if smoke else "grounding-dino-tiny",
        "input": [height, width],
        "params": sum(p.numel() for p in model.parameters()),
        "cases": cases,
    }
    return section


def depth_section(smoke: bool, device: torch.device, budget: Budget, steps: int) -> dict[str, Any]:
    from transformers import DepthAnythingForDepthEstimation

    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    model = DepthAnythingForDepthEstimation(depth_anything_config(smoke)).to(device, dtype).eval()
    side = 56 if smoke else 518

    def make(batch: int) -> dict[str, Any]:
        return {"pixel_values": torch.randn(batch, 3, side, side, device=device, dtype=dtype)}

    cases = [
        guarded(device, budget, 10.0, partial(throughput, model, make, b, device, steps))
        for b in ((1, 2) if smoke else (1, 16, 64))
    ]
    section = {
        "config": "tiny" if smoke else "Depth-Anything-V2-Small",
        "input": [side, side],
        "params": sum(p.numel() for p in model.parameters()),
        "cases": cases,
    }
    return section


# --- main ---------------------------------------------------------------------------------


def machine(device: torch.device) -> dict[str, Any]:
    import diffusers
    import transformers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {
        "device": str(device),
        "name": name or platform.machine(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes: the code paths")
    parser.add_argument("--budget-s", type=float, default=420.0, help="skip what starts later")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per case")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    device = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda:0")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    else:  # tiny CPU models: a second thread only adds synchronisation
        torch.set_num_threads(1)
    steps = args.steps or (2 if args.smoke else 5)
    budget, started = Budget(args.budget_s), time.perf_counter()
    torch.manual_seed(0)
    summary: dict[str, Any] = {"mode": "smoke" if args.smoke else "real", **machine(device)}
    sections = {
        "flux_lora_training": flux_section,
        "grounding_dino": detector_section,
        "depth_anything": depth_section,
    }
    for name, section in sections.items():
        summary[name] = section(args.smoke, device, budget, steps)
        release(device)
    summary["total_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
