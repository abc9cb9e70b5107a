"""Spatial validation of a checkpoint: fixed probe prompts generated with the checkpoint's
adapter, judged by the platform's validator, stored as per-relation accuracy curves.

A loss curve says little about whether a spatial LoRA learns its relations; a strict accuracy
per relation at every checkpoint does. Each probe prompt states one relation; its images go
through the same steps as a generated image in the pipeline (objects from the prompt grammar,
the settings' detector and depth model, SPATIAL.md's image-level verdicts through the validate
stage's own code), but in memory: probe images never enter the curated store.

Memory: the generator is built for this call only and released before the detector and depth
model load, and those are released at the end, so neither a validation nor a training job that
runs next in the same worker process holds a diffusion model beside detector and depth.
"""

from __future__ import annotations

import gc
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageOps

from esplora.backends.base import GenerationRequest
from esplora.backends.registry import BackendOptions
from esplora.core.prompts import render_simple
from esplora.core.relations import Relation
from esplora.core.verdicts import Detection, ImageVerdict
from esplora.db.engine import Store
from esplora.services import runs
from esplora.services.pipeline.context import StageContext
from esplora.settings import Settings

__all__ = [
    "DEFAULT_PAIRS",
    "PROBE_RELATIONS",
    "ProbeSet",
    "accuracy_metrics",
    "default_prompts",
    "probe_set",
    "validate_checkpoint",
]

PROBE_RELATIONS: tuple[Relation, ...] = (
    Relation.LEFT_OF, Relation.RIGHT_OF, Relation.ABOVE,
    Relation.BELOW, Relation.IN_FRONT_OF, Relation.BEHIND,
)  # fmt: skip
# Everyday objects every detector knows, of similar size (so that both can fit side by side).
DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (("cat", "dog"), ("car", "bicycle"))
THUMBNAIL = 192  # grid cell side in pixels
CAPTION = 30  # pixels under each cell for two lines of caption


@dataclass(frozen=True, slots=True)
class ProbeSet:
    """The fixed prompts and sampling of a run's validations (the same at every checkpoint)."""

    prompts: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    steps: int = 28
    guidance: float = 3.5
    width: int = 512
    height: int = 512
    scale: float = 1.0


def default_prompts(pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS) -> tuple[str, ...]:
    """A balanced probe set: every probe relation once per object pair, canonical phrases."""
    return tuple(render_simple(a, r, b) for r in PROBE_RELATIONS for a, b in pairs)


def probe_set(config: Mapping[str, Any]) -> ProbeSet:
    """The probes of a run config (``TrainingConfig`` as stored): ``validation_prompts`` (else
    the default balanced set), ``validation_seed``, ``validation_steps``,
    ``validation_guidance``, square images at the training ``resolution``."""
    size = int(config.get("resolution") or 512)
    return ProbeSet(
        prompts=tuple(config.get("validation_prompts") or default_prompts()),
        seeds=(int(config.get("validation_seed") or 0),),
        steps=int(config.get("validation_steps") or 28),
        guidance=float(config.get("validation_guidance", 3.5)),
        width=size,
        height=size,
    )


def validate_checkpoint(
    store: Store, settings: Settings, run_name: str, step: int
) -> dict[str, float]:
    """Validate the run's adapter at ``step``: store ``accuracy/<relation>`` (strict) and
    ``soft_accuracy/<relation>`` metrics at that step and a sample grid; return the metrics.

    A failure is recorded on the run (``artefacts["validation"][step]["error"]``) before it is
    raised, so that a follower stops waiting for this step; a later success replaces it.
    """
    run = runs.get_run(store, run_name)
    try:
        metrics, entry = _validate(store, settings, run, step)
    except Exception as error:
        failure = {"error": f"{type(error).__name__}: {error}"[:2000]}
        runs.record_artefact(store, run.id, ("validation", str(step)), failure)
        raise
    runs.record_metrics(store, run.id, step, metrics)
    runs.record_artefact(store, run.id, ("validation", str(step)), entry)
    return metrics


def _validate(
    store: Store, settings: Settings, run: runs.RunView, step: int
) -> tuple[dict[str, float], dict[str, Any]]:
    adapter = runs.resolve_adapter(store, f"{run.name}@{step}")
    probes = probe_set(run.config)
    ctx = StageContext(store, settings)
    requests = [
        GenerationRequest(p, s, probes.steps, probes.guidance, probes.width, probes.height)
        for p in probes.prompts
        for s in probes.seeds
    ]
    prompts = [r.prompt for r in requests]
    images = _generate(ctx, run.config, adapter, probes.scale, requests)
    verdicts = _judge(ctx, prompts, images)
    grid = run_grid_path(settings, run.name, step)
    write_grid(grid, prompts, images, verdicts)
    metrics = accuracy_metrics(prompts, verdicts)
    return metrics, {"grid": str(grid), "adapter": adapter, "probes": len(requests)}


def run_grid_path(settings: Settings, run_name: str, step: int) -> Path:
    """Where the sample grid of a validation at ``step`` is written."""
    return runs.run_dir(settings, run_name) / "validation" / f"step-{step:08d}.png"


def generator_backend(config: Mapping[str, Any], models_dir: Path) -> tuple[str, str | None]:
    """The generator backend and model id of a run's base model: ``tiny/<name>`` is the
    tiny twin under ``models_dir``; otherwise the hub id or directory it names."""
    family = str(config.get("family") or "flux")
    base = config.get("base_model")
    if not base:
        return family, None
    base = str(base)
    if base.startswith("tiny/"):
        return family, str(models_dir / base.removeprefix("tiny/"))
    return family, base


def _build(kind: str, name: str, options: BackendOptions) -> Any:
    """A backend built for this call only (the registry's cache would keep it for the life of
    the process: one diffusion pipeline per checkpoint validated)."""
    from esplora.backends.registry import spec

    return spec(kind, name).factory(options)


def release_memory() -> None:
    """Free what a released model held (Python objects, then CUDA's cached blocks)."""
    gc.collect()
    try:
        import torch
    except ImportError:  # pragma: no cover - the training extra always has torch
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _generate(
    ctx: StageContext,
    config: Mapping[str, Any],
    adapter: str,
    scale: float,
    requests: Sequence[GenerationRequest],
) -> list[Image.Image]:
    name, model_id = generator_backend(config, ctx.settings.resolved_models_dir)
    options = replace(ctx.backend_options, model_id=model_id, adapter=adapter, adapter_scale=scale)
    generator = _build("generator", name, options)
    try:
        images: list[Image.Image] = generator.generate(list(requests))
    finally:
        del generator
        release_memory()
    return images


def _judge(
    ctx: StageContext, prompts: Sequence[str], images: Sequence[Image.Image]
) -> list[ImageVerdict | None]:
    """Detect the prompt's objects, measure their depth, and apply the validate stage's verdict
    (``None`` where an image cannot be judged, e.g. a depth relation without depth)."""
    from esplora.services.pipeline.validate import ValidateRunner

    detections = _detections(ctx, prompts, images)
    inputs = {i: [(i, p, d)] for i, (p, d) in enumerate(zip(prompts, detections, strict=True))}
    judged = ValidateRunner().compute(ctx, inputs)
    return [None if isinstance(v, BaseException) else v[0][1] for _, v in sorted(judged.items())]


def _detections(
    ctx: StageContext, prompts: Sequence[str], images: Sequence[Image.Image]
) -> list[list[Detection]]:
    """Per image: the detector's boxes for the prompt's objects, with median disparity."""
    import numpy as np

    from esplora.backends.extractors import caption_objects
    from esplora.core.depth import box_depth_stats, normalise_disparity

    detector = _build("detector", ctx.settings.detector, ctx.backend_options)
    depth = _build("depth", ctx.settings.depth_model, ctx.backend_options)
    try:
        found = detector.detect(list(images), [caption_objects((p,)) for p in prompts])
        maps = depth.estimate(list(images))
    finally:
        del detector, depth
        release_memory()
    out: list[list[Detection]] = []
    for result, raw in zip(found, maps, strict=True):
        boxes = np.array([b.box for b in result.boxes], dtype=np.float64).reshape(-1, 4)
        stats = box_depth_stats(normalise_disparity(raw), boxes) if len(boxes) else []
        out.append(
            [
                Detection(b.label, b.box, b.score, s.median)
                for b, s in zip(result.boxes, stats, strict=True)
            ]
        )
    return out


def accuracy_metrics(
    prompts: Sequence[str], verdicts: Sequence[ImageVerdict | None]
) -> dict[str, float]:
    """Strict and soft accuracy per prompted relation and over all probes (``…/all``)."""
    from esplora.core.prompts import prompt_spec

    tally: dict[str, list[tuple[bool, bool]]] = {}
    for prompt, verdict in zip(prompts, verdicts, strict=True):
        outcome = (False, False) if verdict is None else (verdict.strict, verdict.soft)
        for relation in {r.relation.value for r in prompt_spec(prompt).relations}:
            tally.setdefault(relation, []).append(outcome)
        tally.setdefault("all", []).append(outcome)
    metrics: dict[str, float] = {}
    for relation, outcomes in sorted(tally.items()):
        metrics[f"accuracy/{relation}"] = sum(strict for strict, _ in outcomes) / len(outcomes)
        metrics[f"soft_accuracy/{relation}"] = sum(soft for _, soft in outcomes) / len(outcomes)
    return metrics


def write_grid(
    path: Path,
    prompts: Sequence[str],
    images: Sequence[Image.Image],
    verdicts: Sequence[ImageVerdict | None],
) -> None:
    """A PNG grid of the probe images, each captioned with its strict verdict and prompt (users
    judge a LoRA's progress by such grids). The default probes give one row per relation."""
    count = len(images)
    rows = len(PROBE_RELATIONS) if count >= 6 and count % 6 == 0 else math.isqrt(count - 1) + 1
    columns = max(1, -(-count // rows))
    grid = Image.new("RGB", (columns * THUMBNAIL, rows * (THUMBNAIL + CAPTION)), "white")
    draw = ImageDraw.Draw(grid)
    for k, (prompt, image, verdict) in enumerate(zip(prompts, images, verdicts, strict=True)):
        x, y = (k % columns) * THUMBNAIL, (k // columns) * (THUMBNAIL + CAPTION)
        thumb = ImageOps.contain(image.convert("RGB"), (THUMBNAIL, THUMBNAIL))  # up or down
        grid.paste(thumb, (x + (THUMBNAIL - thumb.width) // 2, y))
        mark = "?" if verdict is None else ("PASS" if verdict.strict else "fail")
        lines = textwrap.wrap(f"[{mark}] {prompt}", 30)[:2]
        draw.multiline_text((x + 3, y + THUMBNAIL + 2), "\n".join(lines), fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".tmp-{path.name}")
    grid.save(temp, format="PNG")
    temp.replace(path)  # atomic: a reader never sees half a grid
