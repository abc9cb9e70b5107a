"""Benchmark prompt sets stored in the platform, and official prompt files read from disk.

- ``urban``: the paper's kind of benchmark — urban-scene objects × all six relations, simple and
  complex prompts, fixed seed, at least 600 prompts.
- ``t2i-compbench``: T2I-CompBench's spatial template ("a A on the left of a B", "on the top
  of", "next to"…) over COCO objects.
- ``geneval``: GenEval's position template, "a photo of a/an A {left of, right of, above,
  below} a/an B".
- ``visor``: VISOR/SR2D's template, "a A to the left of a B" (and right / above / below).
Official prompt files (one prompt per line) are stored with ``benchmark=<protocol>:<file>``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from itertools import permutations
from pathlib import Path
from typing import Any

from esplora.core.grammar import SpatialRelation
from esplora.core.prompts import render_complex, render_simple
from esplora.core.relations import Relation
from esplora.db.engine import Store
from esplora.errors import EsploraError
from esplora.services.prompts import PromptImport, add_prompts

# The urban-scene objects (also the scene world's sprites, so it can draw every prompt).
URBAN = (
    "car", "bus", "bicycle", "person", "dog", "cat", "tree", "bench", "traffic light",
    "street lamp", "building", "fire hydrant", "trash can", "traffic cone",
)  # fmt: skip
COCO = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "bus",
    "truck",
    "boat",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "suitcase",
    "kite",
    "bottle",
    "cup",
    "chair",
    "couch",
    "bed",
    "laptop",
    "book",
    "clock",
    "vase",
    "teddy bear",
)
DIRECTIONS = (
    Relation.LEFT_OF,
    Relation.RIGHT_OF,
    Relation.ABOVE,
    Relation.BELOW,
    Relation.IN_FRONT_OF,
    Relation.BEHIND,
)
PLANAR = DIRECTIONS[:4]
T2I_PHRASES = {
    Relation.LEFT_OF: "on the left of",
    Relation.RIGHT_OF: "on the right of",
    Relation.ABOVE: "on the top of",
    Relation.BELOW: "on the bottom of",
}
GENEVAL_PHRASES = {
    Relation.LEFT_OF: "left of",
    Relation.RIGHT_OF: "right of",
    Relation.ABOVE: "above",
    Relation.BELOW: "below",
}
VISOR_PHRASES = {
    Relation.LEFT_OF: "to the left of",
    Relation.RIGHT_OF: "to the right of",
    Relation.ABOVE: "above",
    Relation.BELOW: "below",
}


def _article(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def urban(seed: int = 0, simple: int = 420, complex_prompts: int = 210) -> list[str]:
    """Urban objects × the six relations: ``simple`` one-relation prompts (balanced across
    relations) and ``complex_prompts`` two-relation ones on four different objects."""
    rng = random.Random(seed)
    facts = [SpatialRelation(a, r, b) for a, b in permutations(URBAN, 2) for r in DIRECTIONS]
    rng.shuffle(facts)
    by_relation = {r: [f for f in facts if f.relation is r] for r in DIRECTIONS}
    texts = [
        render_simple(f.subject, f.relation, f.object)
        for i in range(simple // len(DIRECTIONS))
        for f in (by_relation[r][i] for r in DIRECTIONS)
    ]
    for k in range(complex_prompts):
        first = facts[k]
        mates = [
            f for f in facts if {f.subject, f.object}.isdisjoint({first.subject, first.object})
        ]
        texts.append(render_complex(first, rng.choice(mates)))
    return list(dict.fromkeys(texts))


def _template(phrases: dict[Relation, str], frame: str, seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    pairs = list(permutations(COCO, 2))
    rng.shuffle(pairs)
    out = []
    for k, (a, b) in enumerate(pairs[:n]):
        relation = PLANAR[k % len(PLANAR)]
        out.append(frame.format(a=_article(a), phrase=phrases[relation], b=_article(b)))
    return out


BENCHMARKS: dict[str, Callable[[], list[str]]] = {
    "urban": urban,
    "t2i-compbench": lambda: _template(T2I_PHRASES, "{a} {phrase} {b}", 1, 300),
    "geneval": lambda: _template(GENEVAL_PHRASES, "a photo of {a} {phrase} {b}", 2, 100),
    "visor": lambda: _template(VISOR_PHRASES, "{a} {phrase} {b}", 3, 200),
}


def install(store: Store, name: str) -> PromptImport:
    """Store the prompts of benchmark ``name`` (idempotent)."""
    if name not in BENCHMARKS:
        raise EsploraError(f"unknown benchmark {name!r}; benchmarks are: {', '.join(BENCHMARKS)}")
    return add_prompts(store, BENCHMARKS[name](), origin="benchmark", benchmark=name)


def install_file(store: Store, path: Path, protocol: str) -> tuple[str, PromptImport]:
    """Store an official prompt file (one prompt per line) under ``<protocol>:<file name>``."""
    if protocol not in ("t2i-compbench", "geneval", "visor", "urban"):
        raise EsploraError(
            f"unknown protocol {protocol!r}; protocols: t2i-compbench, geneval, visor"
        )
    if not path.is_file():
        raise EsploraError(f"prompt file {path} does not exist")
    name = f"{protocol}:{path.name}"
    lines = path.read_text(encoding="utf-8").splitlines()
    return name, add_prompts(store, lines, origin="benchmark", benchmark=name)


def prompt_ids_of(session: Any, name: str) -> list[int]:
    """The stored prompts of benchmark ``name``, by its texts for the built-in sets (a prompt
    synthesized or installed by another benchmark with the same text still belongs to it)."""
    from sqlalchemy import select

    from esplora.db.synthetic import SpatialPrompt

    if name in BENCHMARKS:
        texts = BENCHMARKS[name]()
        rows = session.execute(
            select(SpatialPrompt.id, SpatialPrompt.text).where(SpatialPrompt.text.in_(texts))
        )
        order = {text: i for i, text in enumerate(texts)}
        return [pid for pid, text in sorted(rows, key=lambda r: order[r[1]])]
    query = (
        select(SpatialPrompt.id).where(SpatialPrompt.benchmark == name).order_by(SpatialPrompt.id)
    )
    return list(session.scalars(query))
