"""LoRA training step time and peak memory: the engine against a minimal hand-written loop.

    .venv/bin/python bench/bench_train.py [--steps 40] [--rounds 5] [--families flux,sdxl]

On the tiny random Flux and SDXL pipelines (make_tiny), in one process, over the same images
(64×64 PNGs, one bucket) and captions, with the same recipe (rank, batch, learning rate, AdamW,
gradient clipping, gradient checkpointing, 10% caption dropout): ``esplora_training.train``
against a minimal loop written directly on diffusers + peft, the way their examples train (no
checkpoints, no resume, no metrics file). Each pair runs with cached latents and text
embeddings (the loop keeps them in memory; the engine keeps them on disk and, within
``cache_memory_mib``, in memory) and without (both load, resize and encode every batch).
Variants are interleaved over ``--rounds`` rounds after an untimed warm-up round; a figure is
the best over rounds of the median time between consecutive steps (the first ``--warmup``
steps dropped), so everything a step costs counts, callbacks included. Peak memory: each variant
once more in a fresh process, its peak resident set (``ru_maxrss``; GPU: peak allocated)
minus its resident set after imports: loading the pipeline included. Target: engine ≤ 1.05×
the loop's step time.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil  # type: ignore[import-untyped]  # no stubs installed
import torch
from PIL import Image

from esplora.backends.lora import FLUX_TARGETS, SDXL_TARGETS
from esplora.backends.tiny import make_tiny
from esplora_training.config import TrainingConfig, load_config
from esplora_training.data import Example
from esplora_training.engine import train

CAPTIONS = [
    "a red car to the left of a dog",
    "a cat above a bicycle",
    "a bus below a bird",
    "a dog to the right of a tree",
    "a horse in front of a car",
]
TARGET = 1.05
Marks = list[float]


def write_images(folder: Path, count: int) -> list[Example]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    examples = []
    for i in range(count):
        coarse = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
        path = folder / f"{i:03d}.png"
        Image.fromarray(coarse).resize((64, 64), Image.Resampling.BICUBIC).save(path)
        examples.append(Example(path, CAPTIONS[i % len(CAPTIONS)], width=64, height=64))
    return examples


def memory_now() -> float:
    """Bytes in use: allocated GPU memory, else the process's resident set."""
    if torch.cuda.is_available():
        return float(torch.cuda.memory_allocated())
    return float(psutil.Process().memory_info().rss)


def memory_peak() -> float:
    """Peak bytes so far: peak allocated GPU memory, else the peak resident set."""
    if torch.cuda.is_available():
        return float(torch.cuda.max_memory_allocated())
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # KiB on Linux


def step_time(marks: Marks, warmup: int) -> float:
    gaps = [b - a for a, b in zip(marks[warmup:], marks[warmup + 1 :], strict=False)]
    return statistics.median(gaps)


# --- the engine ---------------------------------------------------------------------------


def run_engine(config: TrainingConfig, examples: list[Example], work: Path) -> Marks:
    marks: Marks = []
    with tempfile.TemporaryDirectory(dir=work) as run_dir:
        train(
            config, examples, Path(run_dir), on_step=lambda s, m: marks.append(time.perf_counter())
        )
    return marks


# --- the minimal loop: diffusers + peft, as their examples write it -------------------------


def load_batch(paths: list[Path]) -> torch.Tensor:
    arrays = [
        np.asarray(Image.open(p).convert("RGB").resize((64, 64)), dtype=np.float32) for p in paths
    ]
    return torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2) / 127.5 - 1.0)


def lora_model(model: Any, config: TrainingConfig, targets: tuple[str, ...]) -> list[Any]:
    from peft import LoraConfig

    model.requires_grad_(False)
    model.add_adapter(
        LoraConfig(
            r=config.rank,
            lora_alpha=config.lora_alpha,
            target_modules=list(targets),
            init_lora_weights=True,
        )
    )
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    model.train()  # as diffusers' examples do before their loop
    return params


def minimal_flux(
    config: TrainingConfig, model_dir: Path, examples: list[Example], cached: bool, steps: int
) -> Marks:
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(model_dir)
    for part in (pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        part.requires_grad_(False)
    model, vae = pipe.transformer, pipe.vae
    params = lora_model(model, config, FLUX_TARGETS)
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=1e-4)
    texts = [e.text for e in examples]

    def encode(captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        embeds, pooled, _ = pipe.encode_prompt(captions, None, max_sequence_length=64)
        return embeds, pooled

    with torch.no_grad():
        if cached:
            moments = vae.encode(load_batch([e.image_path for e in examples])).latent_dist
            cache_e, cache_p = encode([*texts, ""])
    schedule = pipe.scheduler.sigmas.clone()
    marks: Marks = []
    for _ in range(steps):
        idx = torch.randperm(len(examples))[: config.batch_size].tolist()
        drop = [random.random() < config.caption_dropout for _ in idx]
        with torch.no_grad():
            if cached:
                params_ = moments.parameters[idx]
                rows = [len(texts) if d else i for i, d in zip(idx, drop, strict=True)]
                embeds, pooled = cache_e[rows], cache_p[rows]
            else:
                params_ = vae.encode(
                    load_batch([examples[i].image_path for i in idx])
                ).latent_dist.parameters
                embeds, pooled = encode(
                    ["" if d else texts[i] for i, d in zip(idx, drop, strict=True)]
                )
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        x0 = (
            DiagonalGaussianDistribution(params_).sample() - vae.config.shift_factor
        ) * vae.config.scaling_factor
        b, c, h, w = x0.shape
        sigmas = schedule[(torch.rand(b) * 1000).long()].view(b, 1, 1, 1)
        noise = torch.randn_like(x0)
        noisy = (1 - sigmas) * x0 + sigmas * noise
        pred = model(
            hidden_states=FluxPipeline._pack_latents(noisy, b, c, h, w),
            timestep=sigmas.flatten(),
            guidance=torch.full((b,), 3.5),
            pooled_projections=pooled,
            encoder_hidden_states=embeds,
            txt_ids=torch.zeros(embeds.shape[1], 3),
            img_ids=FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, "cpu", x0.dtype),
            return_dict=False,
        )[0]
        pred = FluxPipeline._unpack_latents(pred, h * 8, w * 8, 8)
        loss = torch.nn.functional.mse_loss(pred.float(), (noise - x0).float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        marks.append(time.perf_counter())
    return marks


def minimal_sdxl(
    config: TrainingConfig, model_dir: Path, examples: list[Example], cached: bool, steps: int
) -> Marks:
    from diffusers import DDPMScheduler, StableDiffusionXLPipeline
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    pipe = StableDiffusionXLPipeline.from_pretrained(model_dir, add_watermarker=False)
    for part in (pipe.vae, pipe.text_encoder, pipe.text_encoder_2):
        part.requires_grad_(False)
    model, vae = pipe.unet, pipe.vae
    params = lora_model(model, config, SDXL_TARGETS)
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=1e-4)
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    texts = [e.text for e in examples]

    def encode(captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        embeds, _, pooled, _ = pipe.encode_prompt(captions, do_classifier_free_guidance=False)
        return embeds, pooled

    with torch.no_grad():
        if cached:
            moments = vae.encode(load_batch([e.image_path for e in examples])).latent_dist
            cache_e, cache_p = encode([*texts, ""])
    marks: Marks = []
    time_ids = torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]] * config.batch_size)
    for _ in range(steps):
        idx = torch.randperm(len(examples))[: config.batch_size].tolist()
        drop = [random.random() < config.caption_dropout for _ in idx]
        with torch.no_grad():
            if cached:
                params_ = moments.parameters[idx]
                rows = [len(texts) if d else i for i, d in zip(idx, drop, strict=True)]
                embeds, pooled = cache_e[rows], cache_p[rows]
            else:
                params_ = vae.encode(
                    load_batch([examples[i].image_path for i in idx])
                ).latent_dist.parameters
                embeds, pooled = encode(
                    ["" if d else texts[i] for i, d in zip(idx, drop, strict=True)]
                )
        x0 = DiagonalGaussianDistribution(params_).sample() * vae.config.scaling_factor
        noise = torch.randn_like(x0)
        t = torch.randint(0, 1000, (x0.shape[0],))
        pred = model(
            scheduler.add_noise(x0, noise, t),
            t,
            encoder_hidden_states=embeds,
            added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids},
            return_dict=False,
        )[0]
        loss = torch.nn.functional.mse_loss(pred.float(), noise.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        marks.append(time.perf_counter())
    return marks


# --- main ---------------------------------------------------------------------------------

MINIMAL: dict[str, Callable[..., Marks]] = {"flux": minimal_flux, "sdxl": minimal_sdxl}


def config_for(family: str, args: argparse.Namespace, models: Path, cached: bool) -> Any:
    overrides = {
        "base_model": str(models / family),
        "rank": args.rank,
        "batch_size": args.batch,
        "max_steps": args.steps,
        "checkpoint_every": 10 * args.steps,
        "cache_latents": cached,
        "cache_text": cached,
        "gradient_checkpointing": True,
    }
    return load_config(f"tiny-{family}", overrides)


def run_variant(
    family: str, name: str, cached: bool, args: argparse.Namespace, work: Path
) -> Marks:
    config = config_for(family, args, work / "models", cached)
    examples = write_images(work / "images", args.images)  # the same files, rewritten
    if name == "engine":
        return run_engine(config, examples, work)
    return MINIMAL[family](config, work / "models" / family, examples, cached, args.steps)


def measure(family: str, args: argparse.Namespace, work: Path) -> dict[str, dict[str, list[float]]]:
    """Step times in this process, interleaved; peak memory from one fresh process each."""
    figures: dict[str, dict[str, list[float]]] = {}
    for round_ in range(args.rounds + 1):  # round 0 warms up (one-time kernel set-up)
        for cached, name in [(c, n) for c in (True, False) for n in ("engine", "minimal")]:
            gc.collect()
            marks = run_variant(family, name, cached, args, work)
            slot = figures.setdefault(variant_key(name, cached), {"step_ms": [], "peak_mib": []})
            if round_ > 0:
                slot["step_ms"].append(1000 * step_time(marks, args.warmup))
    for cached, name in [(c, n) for c in (True, False) for n in ("engine", "minimal")]:
        figures[variant_key(name, cached)]["peak_mib"].append(
            peak_in_child(family, name, cached, args, work)
        )
    return figures


def variant_key(name: str, cached: bool) -> str:
    return f"{name}/{'cached' if cached else 'uncached'}"


def peak_in_child(
    family: str, name: str, cached: bool, args: argparse.Namespace, work: Path
) -> float:
    """Peak memory growth (MiB) of one run in a fresh process, over its state after imports."""
    command = [
        sys.executable,
        __file__,
        "--child",
        f"{family},{name},{int(cached)}",
        "--work",
        str(work),
        "--steps",
        str(args.steps),
        "--images",
        str(args.images),
        "--batch",
        str(args.batch),
        "--rank",
        str(args.rank),
        "--threads",
        str(args.threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"])


def child(args: argparse.Namespace) -> int:
    import accelerate  # noqa: F401 - everything a run imports, before the baseline
    import diffusers
    import peft  # noqa: F401
    import transformers

    from esplora_training import cache, checkpoints, engine, families  # noqa: F401

    family, name, cached = args.child.split(",")
    for module, names in (
        (
            diffusers,
            ("FluxPipeline", "StableDiffusionXLPipeline", "DDPMScheduler", "AutoencoderKL"),
        ),
        (
            transformers,
            (
                "CLIPTextModel",
                "CLIPTextModelWithProjection",
                "T5EncoderModel",
                "CLIPTokenizer",
                "T5Tokenizer",
            ),
        ),
    ):
        for attribute in names:
            getattr(module, attribute)  # their lazy imports
    write_images(args.work / "images", args.images)
    before = memory_now()
    run_variant(family, name, bool(int(cached)), args, args.work)
    print(json.dumps({"peak_mib": (memory_peak() - before) / 2**20}))
    return 0


def report(family: str, figures: dict[str, dict[str, list[float]]]) -> bool:
    ok = True
    print(f"\n{family}: step time (ms), best round's median; peak memory growth (MiB), own process")
    for caching in ("cached", "uncached"):
        engine, loop = figures[f"engine/{caching}"], figures[f"minimal/{caching}"]
        e_ms, l_ms = min(engine["step_ms"]), min(loop["step_ms"])  # best round: least disturbed
        e_mem, l_mem = statistics.median(engine["peak_mib"]), statistics.median(loop["peak_mib"])
        ratio = e_ms / l_ms
        ok &= ratio <= TARGET
        print(
            f"  {caching:9s} engine {e_ms:7.2f} ms {e_mem:7.1f} MiB | minimal {l_ms:7.2f} ms "
            f"{l_mem:7.1f} MiB | ratio {ratio:.3f}x {'PASS' if ratio <= TARGET else 'MISS'} "
            f"(rounds: engine {[round(x, 1) for x in engine['step_ms']]}, "
            f"minimal {[round(x, 1) for x in loop['step_ms']]})"
        )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="flux,sdxl")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rank", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tiny models)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # family,variant,cached: one run
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        return child(args)
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{args.threads} thread(s), batch {args.batch}, rank {args.rank}, {args.steps} steps "
        f"(first {args.warmup} dropped), {args.rounds} rounds, {args.images} images"
    )
    ok = True
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        families = args.families.split(",")
        make_tiny(work / "models", names=families)
        for family in families:
            ok &= report(family, measure(family, args, work))
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
