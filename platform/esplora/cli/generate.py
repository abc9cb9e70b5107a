"""``esplora generate``: one image from a prompt with a generator backend (Flux, SDXL, scenes).

``--tore`` rewrites the prompt with TORE (static weak set) first: the rewrite is what the model
reads, and both prompts are printed. The image is written to ``--out`` (PNG files carry the
prompt, seed and producer as text chunks). The prompt argument is optional so that a batch
mode over stored prompts can join this command as another option.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from esplora.cli._common import JsonOption, console, emit, err_console, settings
from esplora.errors import EsploraError

if TYPE_CHECKING:
    from PIL.Image import Image

    from esplora.backends.base import GenerationRequest
    from esplora.backends.registry import BackendOptions

# Sampling defaults per generator when --steps / --guidance are not given: (steps, guidance).
DEFAULTS: dict[str, tuple[int, float]] = {"flux": (28, 3.5), "sdxl": (30, 5.0)}
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


PromptArg = Annotated[str | None, typer.Argument(help="The prompt.")]
OutOption = Annotated[Path | None, typer.Option("--out", help="Image file to write.")]
GeneratorOption = Annotated[
    str | None, typer.Option(help="Generator backend: flux, sdxl or scenes (default: flux).")
]
ModelIdOption = Annotated[
    str | None, typer.Option("--model-id", help="Hub id or local pipeline directory.")
]
AdapterOption = Annotated[
    str | None,
    typer.Option(
        help="LoRA adapter: a training run (RUN, or RUN@STEP for a checkpoint) or a directory "
        "or .safetensors file (diffusers format)."
    ),
]
ScaleOption = Annotated[float, typer.Option(help="LoRA adapter scale.")]
SeedOption = Annotated[int, typer.Option(help="Random seed.")]
StepsOption = Annotated[int | None, typer.Option(help="Denoising steps (default per model).")]
GuidanceOption = Annotated[float | None, typer.Option(help="Guidance scale (default per model).")]
WidthOption = Annotated[int, typer.Option(help="Image width in pixels.")]
HeightOption = Annotated[int, typer.Option(help="Image height in pixels.")]
ToreOption = Annotated[bool, typer.Option("--tore", help="Rewrite the prompt with TORE first.")]
ProfileOption = Annotated[str | None, typer.Option(help="real or tiny (default: ESPLORA_PROFILE).")]
ModelsDirOption = Annotated[
    Path | None, typer.Option("--models-dir", help="Where the tiny models are.")
]
OffloadOption = Annotated[
    bool, typer.Option("--cpu-offload", help="Offload idle model parts to the CPU (GPU only).")
]
TilingOption = Annotated[bool, typer.Option("--vae-tiling", help="Decode in tiles (large images).")]


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """Which generator runs, and how it is loaded."""

    generator: str
    model_id: str | None
    adapter: Path | None
    scale: float
    profile: str | None
    models_dir: Path | None
    cpu_offload: bool
    vae_tiling: bool


def generator_options(choice: ModelChoice) -> BackendOptions:
    """The backend options for ``choice``; unset values come from the settings."""
    from esplora.backends.registry import BackendOptions

    config = settings()
    return BackendOptions(
        profile=choice.profile or config.profile,
        models_dir=(choice.models_dir or config.resolved_models_dir).expanduser().resolve(),
        device=config.device,
        batch_size=config.batch_size,
        model_id=choice.model_id,
        adapter=str(choice.adapter.expanduser().resolve()) if choice.adapter else None,
        adapter_scale=choice.scale,
        cpu_offload=choice.cpu_offload,
        vae_tiling=choice.vae_tiling,
    )


def build_request(
    generator: str,
    prompt: str,
    *,
    seed: int,
    steps: int | None,
    guidance: float | None,
    width: int,
    height: int,
) -> GenerationRequest:
    """The request, with the generator's default steps and guidance; sizes checked up front."""
    from esplora.backends.base import GenerationRequest
    from esplora.backends.generators import SIZE_MULTIPLE, check_request

    base = GenerationRequest(prompt, seed, width=width, height=height)
    default_steps, default_guidance = DEFAULTS.get(generator, (base.steps, base.guidance))
    request = GenerationRequest(
        prompt,
        seed,
        steps=default_steps if steps is None else steps,
        guidance=default_guidance if guidance is None else guidance,
        width=width,
        height=height,
    )
    check_request(request, SIZE_MULTIPLE.get(generator, 1), generator)
    return request


def _load(choice: ModelChoice) -> Any:
    from esplora.backends.registry import create_generator

    try:
        return create_generator(choice.generator, generator_options(choice))
    except ImportError as error:  # a registered backend whose module is not installed
        raise EsploraError(f"generator {choice.generator!r} is not available: {error}") from None


def _save(image: Image, out: Path, text: dict[str, str]) -> None:
    from PIL.PngImagePlugin import PngInfo

    out.parent.mkdir(parents=True, exist_ok=True)
    image_format = FORMATS[out.suffix.lower()]
    if image_format == "PNG":
        info = PngInfo()
        for key, value in text.items():
            info.add_itxt(key, value)
        image.save(out, format="PNG", pnginfo=info)
    else:
        image.save(out, format=image_format)


def _adapter(text: str | None) -> Path | None:
    """``--adapter``: a run name resolves to its adapter through the store, a path is itself."""
    if not text:
        return None
    from esplora.cli.train import resolve_adapter_option

    return Path(resolve_adapter_option(text)[0])


def _apply_tore(prompt: str, tore: bool) -> str:
    if not tore:
        return prompt
    from esplora.core.tore import rewrite

    return rewrite(prompt)


def _check_out(prompt: str | None, out: Path | None) -> tuple[str, Path]:
    if prompt is None or not prompt.strip():
        raise EsploraError('give a PROMPT to generate from, e.g. `esplora generate "a cat" ...`')
    if out is None:
        raise EsploraError("give --out FILE for the image (.png, .jpg or .webp)")
    if out.suffix.lower() not in FORMATS:
        raise EsploraError(f"--out {out}: unknown image format; use one of {', '.join(FORMATS)}")
    return prompt, out.expanduser().resolve()


def _render(result: dict[str, Any]) -> None:
    if result["tore"]:
        console.print(f"TORE: {result['original_prompt']} → {result['prompt']}", highlight=False)
    console.print(
        f"wrote {result['out']} ({result['width']}×{result['height']}) "
        f"in {result['seconds']:.2f} s",
        highlight=False,
        soft_wrap=True,
    )
    for key in ("producer", "seed", "steps", "guidance", "prompt"):
        console.print(f"  {key:<9} {result[key]}", highlight=False, soft_wrap=True)


def generate(
    prompt: PromptArg = None,
    out: OutOption = None,
    generator: GeneratorOption = None,
    model_id: ModelIdOption = None,
    adapter: AdapterOption = None,
    scale: ScaleOption = 1.0,
    seed: SeedOption = 0,
    steps: StepsOption = None,
    guidance: GuidanceOption = None,
    width: WidthOption = 512,
    height: HeightOption = 512,
    tore: ToreOption = False,
    profile: ProfileOption = None,
    models_dir: ModelsDirOption = None,
    cpu_offload: OffloadOption = False,
    vae_tiling: TilingOption = False,
    prompts: Annotated[
        str | None,
        typer.Option(
            "--prompts", help="Stored prompts instead: all, or kind=…,benchmark=…,limit=N."
        ),
    ] = None,
    images_per_prompt: Annotated[int, typer.Option(min=1, help="With --prompts.")] = 1,
    inline: Annotated[
        bool, typer.Option("--inline", help="With --prompts: in this process.")
    ] = False,
    detach: Annotated[bool, typer.Option("--detach", help="With --prompts: enqueue only.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Generate one image from PROMPT and write it to --out; or, with --prompts, images for
    stored prompts, validated against them (queued on the gpu queue by default)."""
    adapter_path = _adapter(adapter)
    if prompts is not None:
        from esplora.cli.generate_batch import run_batch

        run_batch(
            prompts,
            generator=generator,
            images_per_prompt=images_per_prompt,
            seed=seed,
            steps=steps,
            guidance=guidance,
            size=width,
            tore=tore,
            adapter=str(adapter_path or ""),
            scale=scale,
            inline=inline,
            detach=detach,
            as_json=as_json,
        )
        return
    text, target = _check_out(prompt, out)
    # ESPLORA_GENERATOR once the settings carry a ``generator`` field; flux until then.
    generator = generator or getattr(settings(), "generator", None) or "flux"
    read = _apply_tore(text, tore)
    request = build_request(
        generator, read, seed=seed, steps=steps, guidance=guidance, width=width, height=height
    )
    choice = ModelChoice(
        generator, model_id, adapter_path, scale, profile, models_dir, cpu_offload, vae_tiling
    )
    if not as_json:
        err_console.print(f"loading generator {generator!r}…", highlight=False)
    backend = _load(choice)
    started = time.perf_counter()
    image = backend.generate([request])[0]
    seconds = time.perf_counter() - started
    result = {
        "generator": generator,
        "producer": backend.producer,
        "seed": request.seed,
        "steps": request.steps,
        "guidance": request.guidance,
        "width": image.width,
        "height": image.height,
        "prompt": read,
        "original_prompt": text,
        "tore": tore,
        "adapter": str(adapter_path or ""),
        "out": str(target),
        "seconds": round(seconds, 4),
    }
    keys = ("prompt", "original_prompt", "producer", "seed", "steps", "guidance", "adapter")
    _save(image, target, {k: str(result[k]) for k in keys})
    emit(result, as_json, lambda: _render(result))


def register(app: typer.Typer) -> None:
    """Add ``esplora generate`` to ``app``."""
    app.command("generate")(generate)
