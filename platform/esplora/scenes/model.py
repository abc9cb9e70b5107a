"""What a scene is: typed objects on a street background, and the relations that hold in it.

A :class:`Scene` is a plain description (labels, layout boxes, depths, colours, silhouettes); the
renderer turns it into pixels and the boxes that are actually visible after occlusion. Depth is a
disparity in ``[0, 1]`` (larger = closer, SPATIAL.md) quantised to :data:`LEVELS` steps, because
it is written into the pixels (:mod:`esplora.scenes.codec`) and must come back exactly.

Ground truth is :func:`strict_relations`: the ESPLoRA rule over **all** pairs of objects, on
their visible-pixel boxes and exact disparities, in the canonical direction the store uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

from esplora.core.relations import INVERSE, Relation
from esplora.core.rules import DEFAULT_DEPTH_GAP, DEFAULT_TAU, canonical_relations

__all__ = [
    "LEVELS",
    "Background",
    "Box",
    "Requirement",
    "Scene",
    "SceneError",
    "SceneObject",
    "TruthRelation",
    "depth_of_level",
    "strict_relations",
]

LEVELS = 64  # depth steps: level k has disparity k / (LEVELS - 1); 0 is the sky, 63 the nearest
Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in pixels, x1 and y1 exclusive


class SceneError(ValueError):
    """A scene that cannot be composed (contradictory relations, too many objects…)."""


def depth_of_level(level: int) -> float:
    """The disparity of a depth level, computed one way everywhere (so it matches bit for bit)."""
    if not 0 <= level < LEVELS:
        raise SceneError(f"depth level must be in [0, {LEVELS - 1}], got {level}")
    return level / (LEVELS - 1)


@dataclass(frozen=True, slots=True)
class SceneObject:
    """One sprite: its label, layout box, disparity level, palette variant and silhouette."""

    label: str
    box: Box
    level: int
    colour: str
    kind: str

    def __post_init__(self) -> None:
        x0, y0, x1, y1 = self.box
        if not (x0 < x1 and y0 < y1):
            raise SceneError(f"empty layout box {self.box} for {self.label}")
        depth_of_level(self.level)  # validates the level

    @property
    def depth(self) -> float:
        """Disparity in [0, 1], larger = closer."""
        return depth_of_level(self.level)


@dataclass(frozen=True, slots=True)
class Background:
    """The street behind the objects: horizon row share and where the lane dashes start."""

    horizon: float = 0.38
    dash_offset: int = 0


@dataclass(frozen=True, slots=True)
class Requirement:
    """A relation the scene was asked to show between objects ``subject`` and ``object``.

    ``wrong`` means the scene shows the inverse instead (the generator's error knob).
    """

    subject: int
    relation: Relation
    object: int
    wrong: bool = False

    @property
    def rendered(self) -> Relation:
        """The relation the pixels actually show."""
        return INVERSE[self.relation] if self.wrong else self.relation


@dataclass(frozen=True, slots=True)
class Scene:
    """A complete scene description, deterministic to render."""

    width: int
    height: int
    objects: tuple[SceneObject, ...]
    background: Background = field(default_factory=Background)
    requirements: tuple[Requirement, ...] = ()

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16:
            raise SceneError(f"a scene needs at least 16x16 pixels, got {self.width}x{self.height}")
        if len(self.objects) > 250:  # object ids live in an 8-bit map while rendering
            raise SceneError(f"at most 250 objects per scene, got {len(self.objects)}")


@dataclass(frozen=True, slots=True)
class TruthRelation:
    """A relation that holds strictly: ``subject`` <relation> ``object`` (object indices)."""

    subject: int
    relation: Relation
    object: int
    margin: float

    def as_dict(self) -> dict[str, int | float | str]:
        """JSON-safe form."""
        return {
            "subject": self.subject,
            "relation": self.relation.value,
            "object": self.object,
            "margin": self.margin,
        }


def strict_relations(
    boxes: Sequence[Box | None],
    depths: Sequence[float],
    *,
    tau: float = DEFAULT_TAU,
    depth_gap: float = DEFAULT_DEPTH_GAP,
) -> list[TruthRelation]:
    """Every relation that holds strictly between two visible objects, canonical direction.

    ``boxes`` are visible-pixel boxes (``None`` for an object hidden entirely: it has no
    relations); ``depths`` the exact disparities. One row at most per pair and axis
    (``left_of``, ``above``, ``in_front_of``), as the relate stage stores them.
    """
    out: list[TruthRelation] = []
    visible = [i for i, b in enumerate(boxes) if b is not None]
    for i, j in combinations(visible, 2):
        box_i, box_j = boxes[i], boxes[j]
        assert box_i is not None and box_j is not None
        rows = canonical_relations(
            box_i, box_j, disparity=(depths[i], depths[j]), tau=tau, depth_gap=depth_gap
        )
        for row in rows:
            if row.strict:
                s, o = (i, j) if row.subject_index == 0 else (j, i)
                out.append(TruthRelation(s, row.relation, o, row.margin))
    return out
