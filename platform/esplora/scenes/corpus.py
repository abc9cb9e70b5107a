"""A corpus of rendered scenes with captions and exact ground truth, ready to ingest.

Layout (what ``esplora ingest --format folder`` reads, :mod:`esplora.sources.folder`)::

    out_dir/
      000000.png        the scene (lossless: the pixels carry the depth)
      000000.txt        its caption
      ...
      ground_truth.jsonl  one line per image (keyed by ``file``, the ingest source key)

Each ground-truth line holds the caption, its kind and claims, every object (label, palette
colour, silhouette, layout box, **visible-pixel box**, depth level and disparity) and the
relations that hold strictly by the ESPLoRA rule over all pairs, in the canonical direction the
relate stage stores (``left_of``, ``above``, ``in_front_of``). Image ``i`` depends only on
``(seed, i)``, so a larger corpus starts with the smaller one's images.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from esplora.core.rules import DEFAULT_DEPTH_GAP, DEFAULT_TAU
from esplora.scenes.captions import Caption, caption_scene
from esplora.scenes.layout import ComposeOptions, random_scene
from esplora.scenes.model import Scene, strict_relations
from esplora.scenes.render import Rendering, render

__all__ = [
    "GROUND_TRUTH",
    "CorpusOptions",
    "corpus_scene",
    "read_ground_truth",
    "scene_record",
    "write_corpus",
]

GROUND_TRUTH = "ground_truth.jsonl"


@dataclass(frozen=True, slots=True)
class CorpusOptions:
    """Scene sizes and object counts of a corpus (captions' rates are arguments of their own)."""

    width: int = 320
    height: int = 240
    min_objects: int = 2
    max_objects: int = 6
    clean: bool = True
    complex_rate: float = 0.3  # captions stating two relations


def scene_record(name: str, scene: Scene, shown: Rendering, caption: Caption) -> dict[str, Any]:
    """The ground-truth line of one image (JSON-safe)."""
    truth = strict_relations(
        shown.boxes, shown.depths, tau=DEFAULT_TAU, depth_gap=DEFAULT_DEPTH_GAP
    )
    objects = [
        {
            "index": i,
            "label": o.label,
            "colour": o.colour,
            "kind": o.kind,
            "layout_box": list(o.box),
            "box": list(box) if box is not None else None,
            "level": o.level,
            "depth": o.depth,
            "visible_pixels": seen,
        }
        for i, (o, box, seen) in enumerate(
            zip(scene.objects, shown.boxes, shown.pixels, strict=True)
        )
    ]
    return {
        "file": name,
        "width": scene.width,
        "height": scene.height,
        "caption": caption.text,
        "caption_kind": caption.kind.value,
        "claims": [c.as_dict() for c in caption.claims],
        "objects": objects,
        "relations": [t.as_dict() for t in truth],
        "tau": DEFAULT_TAU,
        "depth_gap": DEFAULT_DEPTH_GAP,
    }


def corpus_scene(
    index: int, seed: int, options: CorpusOptions, wrong: float, vague: float
) -> tuple[Scene, Rendering, Caption]:
    """Image ``index`` of the corpus of ``seed``: its scene, rendering and caption."""
    rng = np.random.default_rng([seed, index])
    n = int(rng.integers(options.min_objects, options.max_objects + 1))
    frame = ComposeOptions(width=options.width, height=options.height, clean=options.clean)
    scene = random_scene(rng, n, options=frame)
    shown = render(scene)
    truth = strict_relations(shown.boxes, shown.depths)
    caption = caption_scene(
        scene, truth, rng, wrong_rate=wrong, vague_rate=vague, complex_rate=options.complex_rate
    )
    return scene, shown, caption


def write_corpus(
    out_dir: Path,
    n: int,
    seed: int,
    *,
    wrong_caption_rate: float = 0.0,
    vague_caption_rate: float = 0.0,
    options: CorpusOptions = CorpusOptions(),
) -> Path:
    """Write ``n`` scenes with sidecar captions and ``ground_truth.jsonl`` under ``out_dir``.

    Captions are wrong (a stated relation inverted) or vague (no relation) at the given rates.
    Returns ``out_dir``. Deterministic for ``seed``; existing files of the same names are replaced.
    """
    if n < 0:
        raise ValueError(f"a corpus needs n >= 0 images, got {n}")
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(n):
        scene, shown, caption = corpus_scene(
            index, seed, options, wrong_caption_rate, vague_caption_rate
        )
        name = f"{index:06d}.png"
        shown.image.save(out_dir / name, format="PNG")
        (out_dir / f"{index:06d}.txt").write_text(caption.text + "\n", encoding="utf-8")
        lines.append(json.dumps(scene_record(name, scene, shown, caption), sort_keys=True))
    (out_dir / GROUND_TRUTH).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return out_dir


def read_ground_truth(out_dir: Path) -> Iterator[dict[str, Any]]:
    """The ground-truth records of a corpus written by :func:`write_corpus`, in image order."""
    with (out_dir / GROUND_TRUTH).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
