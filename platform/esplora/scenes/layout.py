"""Composing scenes: depth levels, sizes and positions that make the asked relations hold.

A seeded rejection sampler. Depth levels are drawn first (the depth relations depend on nothing
else), then objects are placed one by one, each at the first of a batch of random positions that
keeps every requirement (and, for clean scenes, every pair on every axis) at least
:data:`LAYOUT_MARGIN` away from the ESPLoRA rule's boundary on the *layout* boxes. The result is
then rendered and checked again on the *visible* boxes, which occlusion can shrink, with the
final margin :data:`CLEAN_MARGIN`; a scene that fails is drawn again.

Checked on every scene: each requirement holds strictly (or, when ``wrong``, its inverse does)
with margin ≥ 0.05; every object keeps at least :data:`MIN_VISIBLE` of its pixels; two objects of
one label overlap little (detectors' non-maximum suppression would merge them); and the median of
the depth reader's map in each box is the object's own depth. Clean scenes also have every pair of
objects at ``|margin| ≥ 0.05`` on all three axes, so no relation sits on a boundary.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from esplora.core.boxes import iou_many
from esplora.core.depth import box_depth_array
from esplora.core.relations import DEPTH_RELATIONS, PLANAR, Relation, parse_relation
from esplora.core.rules import DEFAULT_DEPTH_GAP, DEFAULT_TAU, canonical_relations
from esplora.core.rules.canonical import canonical_relations_many
from esplora.core.rules.esplora import depth_result, evaluate, evaluate_many
from esplora.scenes.codec import box_filled_disparity
from esplora.scenes.model import (
    LEVELS,
    Background,
    Box,
    Requirement,
    Scene,
    SceneError,
    SceneObject,
)
from esplora.scenes.render import Rendering, horizon_row, render
from esplora.scenes.sprites import LABELS, SPRITES

__all__ = [
    "CLEAN_MARGIN",
    "LAYOUT_MARGIN",
    "MIN_VISIBLE",
    "ComposeOptions",
    "compose",
    "compose_objects",
    "random_scene",
]

BORDER = 2  # pixels kept free at every edge: the sky's top row and the road's bottom row show
CLEAN_MARGIN = 0.05  # |margin| every checked relation keeps from the rule's boundary
LAYOUT_MARGIN = 0.1  # the same on layout boxes, with room for occlusion to eat into them
MIN_VISIBLE = 0.35  # share of its own pixels every object keeps visible
MAX_SAME_LABEL_IOU = 0.3
MAX_COVER = 0.3  # share of a layout box that nearer layout boxes may cover
LEVEL_RANGE = (8, 60)  # object depth levels; sky is 0, the road 10 to 63
CANDIDATES = 160
LEVEL_TRIES = 400
FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ComposeOptions:
    """The frame and the checks of composed scenes.

    ``clean`` asks that every pair of objects sits at ``|margin| >= 0.05`` on all three axes;
    ``attempts`` is how many full draws to try before giving up.
    """

    width: int = 320
    height: int = 240
    clean: bool = True
    attempts: int = 60
    tau: float = DEFAULT_TAU
    depth_gap: float = DEFAULT_DEPTH_GAP


@dataclass(frozen=True, slots=True)
class _Plan:
    labels: tuple[str, ...]
    requirements: tuple[Requirement, ...]
    width: int
    height: int
    clean: bool
    tau: float
    depth_gap: float


def _check_requirements(n: int, requirements: Sequence[Requirement]) -> None:
    for r in requirements:
        if not (0 <= r.subject < n and 0 <= r.object < n) or r.subject == r.object:
            raise SceneError(f"requirement {r} needs two distinct objects among {n}")


def _depth_margin(near: int, far: int, gap: float) -> float:
    return depth_result(Relation.IN_FRONT_OF, near / (LEVELS - 1), far / (LEVELS - 1), gap).margin


def _levels_ok(levels: Sequence[int], plan: _Plan) -> bool:
    for r in plan.requirements:
        if r.rendered in DEPTH_RELATIONS:
            s, o = levels[r.subject], levels[r.object]
            near, far = (s, o) if r.rendered is Relation.IN_FRONT_OF else (o, s)
            if _depth_margin(near, far, plan.depth_gap) < CLEAN_MARGIN:
                return False
    if plan.clean:
        ordered = sorted(levels, reverse=True)
        for i, near in enumerate(ordered):
            if any(
                abs(_depth_margin(near, far, plan.depth_gap)) < CLEAN_MARGIN
                for far in ordered[i + 1 :]
            ):
                return False
    return True


def _levels(plan: _Plan, rng: np.random.Generator) -> list[int] | None:
    """Distinct depth levels (one per object, so instances stay apart in the pixels)."""
    lo, hi = LEVEL_RANGE
    n = len(plan.labels)
    for _ in range(LEVEL_TRIES):
        levels = [int(v) for v in rng.choice(np.arange(lo, hi + 1), size=n, replace=False)]
        if _levels_ok(levels, plan):
            return levels
    return None


def _size(label: str, level: int, plan: _Plan, rng: np.random.Generator) -> tuple[int, int]:
    """Width and height: nearer objects drawn larger, capped to fit the frame."""
    sprite = SPRITES[label]
    h = sprite.height * plan.height * (0.6 + 0.6 * level / (LEVELS - 1)) * rng.uniform(0.85, 1.15)
    w = h * sprite.aspect
    shrink = min(1.0, 0.45 * plan.width / w, 0.7 * plan.height / h)
    return max(6, round(w * shrink)), max(6, round(h * shrink))


def _candidates(
    size: tuple[int, int], ground: int | None, plan: _Plan, rng: np.random.Generator
) -> FloatArray:
    """Random layout boxes ``(CANDIDATES, 4)``, standing below row ``ground`` when it is given."""
    w, h = size
    x0 = rng.integers(BORDER, plan.width - BORDER - w + 1, CANDIDATES)
    lowest = plan.height - BORDER
    top = BORDER + h if ground is None else max(BORDER + h, ground)
    y1 = rng.integers(min(top, lowest), lowest + 1, CANDIDATES)
    return np.stack([x0, y1 - h, x0 + w, y1], axis=1).astype(np.float64)


def _intersection(a: FloatArray, b: FloatArray) -> FloatArray:
    dx = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    dy = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    result: FloatArray = dx * dy
    return result


def _area(a: FloatArray) -> FloatArray:
    result: FloatArray = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    return result


def _pair_ok(
    i: int, cands: FloatArray, j: int, box_j: FloatArray, plan: _Plan
) -> NDArray[np.bool_]:
    """Which candidate boxes of object ``i`` keep the 2D constraints with placed object ``j``."""
    other = np.repeat(box_j[None, :], len(cands), axis=0)
    ok = np.ones(len(cands), dtype=np.bool_)
    for r in plan.requirements:
        if {r.subject, r.object} == {i, j} and r.rendered in PLANAR:
            subj, obj = (cands, other) if r.subject == i else (other, cands)
            ok &= evaluate_many(r.rendered, subj, obj, tau=plan.tau).margin >= LAYOUT_MARGIN
    if plan.clean:
        for axis in canonical_relations_many(cands, other, tau=plan.tau):
            ok &= axis.present & (np.abs(axis.margin) >= LAYOUT_MARGIN)
    if plan.labels[i] == plan.labels[j]:
        ok &= iou_many(cands, other) <= MAX_SAME_LABEL_IOU
    return ok


def _place_one(
    i: int, cands: FloatArray, placed: dict[int, FloatArray], cover: dict[int, float],
    levels: Sequence[int], plan: _Plan,
) -> int | None:  # fmt: skip
    """The first candidate keeping every constraint with the objects placed so far, or None."""
    ok = np.ones(len(cands), dtype=np.bool_)
    own_cover = np.zeros(len(cands))
    area = _area(cands)
    for j, box_j in placed.items():
        ok &= _pair_ok(i, cands, j, box_j, plan)
        shared = _intersection(cands, box_j[None, :])
        if levels[j] > levels[i]:  # j is nearer: it covers the candidate
            own_cover += shared / area
        else:
            ok &= cover[j] + shared / _area(box_j[None, :]) <= MAX_COVER
    ok &= own_cover <= MAX_COVER
    hits = np.flatnonzero(ok)
    return int(hits[0]) if hits.size else None


def _shared(a: FloatArray, b: FloatArray) -> float:
    """The share of box ``b``'s area that box ``a`` covers."""
    return float(_intersection(a[None, :], b[None, :])[0] / _area(b[None, :])[0])


def _place(
    levels: Sequence[int], horizon: int, plan: _Plan, rng: np.random.Generator
) -> list[Box] | None:
    """Layout boxes for every object, or None when one of them finds no room.

    Objects stand on the road (their bottom below the horizon), except birds and objects in an
    above/below requirement, which may be anywhere: the rule reads boxes, not physics.
    """
    vertical = {x for r in plan.requirements if r.relation in (Relation.ABOVE, Relation.BELOW)
                for x in (r.subject, r.object)}  # fmt: skip
    placed: dict[int, FloatArray] = {}
    cover: dict[int, float] = {}  # per placed object: share of its box nearer boxes cover
    for i, label in enumerate(plan.labels):
        size = _size(label, levels[i], plan, rng)
        free = i in vertical or label == "bird"
        cands = _candidates(size, None if free else horizon + 2, plan, rng)
        k = _place_one(i, cands, placed, cover, levels, plan)
        if k is None:
            return None
        box = cands[k]
        cover[i] = 0.0
        for j, box_j in placed.items():
            if levels[j] < levels[i]:
                cover[j] += _shared(box, box_j)
            else:
                cover[i] += _shared(box_j, box)
        placed[i] = box
    return [(int(b[0]), int(b[1]), int(b[2]), int(b[3])) for _, b in sorted(placed.items())]


def _requirements_hold(scene: Scene, shown: Rendering, plan: _Plan) -> bool:
    for r in plan.requirements:
        a, b = shown.boxes[r.subject], shown.boxes[r.object]
        assert a is not None and b is not None
        d = (shown.depths[r.subject], shown.depths[r.object])
        result = evaluate(r.rendered, a, b, disparity=d, tau=plan.tau, depth_gap=plan.depth_gap)
        if not result.strict or result.margin < CLEAN_MARGIN:
            return False
    return True


def _clean(shown: Rendering, plan: _Plan) -> bool:
    """Every pair has a row on each axis, each at least CLEAN_MARGIN from the boundary."""
    boxes = shown.boxes
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i], boxes[j]
            assert a is not None and b is not None
            d = (shown.depths[i], shown.depths[j])
            rows = canonical_relations(a, b, disparity=d, tau=plan.tau, depth_gap=plan.depth_gap)
            if len(rows) < 3 or any(abs(row.margin) < CLEAN_MARGIN for row in rows):
                return False
    return True


def _depth_readable(scene: Scene, shown: Rendering) -> bool:
    """The depth reader's box-filled map gives every box its own depth, from 0 to 1."""
    boxes = [b for b in shown.boxes if b is not None]
    levels = [o.level for o in scene.objects]
    filled = box_filled_disparity(shown.background_levels, boxes, levels)
    if filled.min() != 0.0 or filled.max() != 1.0:
        return False
    medians = box_depth_array(filled, np.array(boxes, dtype=np.float64))[:, 0]
    return bool(np.array_equal(medians, np.array(shown.depths)))


def _same_labels_apart(scene: Scene, shown: Rendering) -> bool:
    for i, a in enumerate(scene.objects):
        for j in range(i + 1, len(scene.objects)):
            if scene.objects[j].label == a.label:
                bi, bj = shown.boxes[i], shown.boxes[j]
                assert bi is not None and bj is not None
                pair = np.array([bi], dtype=np.float64), np.array([bj], dtype=np.float64)
                if float(iou_many(*pair)[0]) > MAX_SAME_LABEL_IOU:
                    return False
    return True


def _verify(scene: Scene, plan: _Plan) -> bool:
    shown = render(scene)
    visible = all(
        box is not None and seen >= MIN_VISIBLE * full
        for box, seen, full in zip(shown.boxes, shown.pixels, shown.full_pixels, strict=True)
    )
    return (
        visible
        and _requirements_hold(scene, shown, plan)
        and (not plan.clean or _clean(shown, plan))
        and _same_labels_apart(scene, shown)
        and _depth_readable(scene, shown)
    )


def _attempt(plan: _Plan, rng: np.random.Generator, colours: Sequence[str | None]) -> Scene | None:
    background = Background(float(rng.uniform(0.3, 0.45)), int(rng.integers(0, 64)))
    horizon = horizon_row(plan.height, background)
    levels = _levels(plan, rng)
    boxes = _place(levels, horizon, plan, rng) if levels is not None else None
    if levels is None or boxes is None:
        return None
    objects = []
    for label, box, level, colour in zip(plan.labels, boxes, levels, colours, strict=True):
        sprite = SPRITES[label]
        chosen = str(rng.choice(list(sprite.colours)))
        chosen = colour if colour is not None and colour in sprite.colours else chosen
        kind = str(rng.choice(list(sprite.kinds)))
        objects.append(SceneObject(label, box, level, chosen, kind))
    scene = Scene(plan.width, plan.height, tuple(objects), background, plan.requirements)
    return scene if _verify(scene, plan) else None


def compose_objects(
    labels: Sequence[str],
    requirements: Sequence[Requirement],
    rng: np.random.Generator,
    *,
    options: ComposeOptions = ComposeOptions(),
    colours: Sequence[str | None] | None = None,
) -> Scene:
    """A scene with one object per label (repeats allowed) showing every requirement.

    ``colours`` picks palette variants by name where the sprite has them (else random).
    Raises :class:`SceneError` for an unknown label, a bad requirement, or when all
    ``options.attempts`` draws fail (contradictory or crowded requirements).
    """
    unknown = sorted({lab for lab in labels if lab not in SPRITES})
    if unknown:
        raise SceneError(f"the scene world has no sprite for {', '.join(unknown)}")
    _check_requirements(len(labels), requirements)
    if len(labels) > LEVEL_RANGE[1] - LEVEL_RANGE[0] + 1:  # every object needs its own level
        raise SceneError(
            f"at most {LEVEL_RANGE[1] - LEVEL_RANGE[0] + 1} objects, got {len(labels)}"
        )
    o = options
    plan = _Plan(tuple(labels), tuple(requirements), o.width, o.height, o.clean, o.tau, o.depth_gap)
    chosen = list(colours) if colours is not None else [None] * len(labels)
    for _ in range(options.attempts):
        scene = _attempt(plan, rng, chosen)
        if scene is not None:
            return scene
    raise SceneError(f"no scene of {list(labels)} shows {list(requirements)} in {o.attempts} draws")


def compose(
    relations: Sequence[tuple[str, str | Relation, str]],
    rng: np.random.Generator,
    *,
    wrong: Collection[int] = (),
    extra: Sequence[str] = (),
    options: ComposeOptions = ComposeOptions(),
) -> Scene:
    """A scene with one object per distinct label of ``relations`` (then ``extra`` objects).

    Each ``(subject label, relation, object label)`` holds strictly with margin ≥ 0.05, except
    those whose index is in ``wrong``, which show the inverse relation instead.
    """
    labels = list(dict.fromkeys(lab for s, _, o in relations for lab in (s, o)))
    index = {lab: i for i, lab in enumerate(labels)}
    requirements = [
        Requirement(index[s], parse_relation(r), index[o], k in wrong)
        for k, (s, r, o) in enumerate(relations)
    ]
    return compose_objects(labels + list(extra), requirements, rng, options=options)


def random_scene(
    rng: np.random.Generator,
    n_objects: int,
    *,
    labels: Sequence[str] = LABELS,
    options: ComposeOptions = ComposeOptions(),
) -> Scene:
    """A scene of ``n_objects`` random labels (a label may repeat) and no asked relation."""
    chosen = [str(v) for v in rng.choice(list(labels), size=n_objects)]
    return compose_objects(chosen, [], rng, options=options)
