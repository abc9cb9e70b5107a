"""The world's objects: flat-shaded sprites drawn from a few shapes in exact palette colours.

Every label has a silhouette per ``kind`` (shapes in unit coordinates: ``u`` right, ``v`` down,
both spanning ``[0, 1]`` so an unoccluded sprite fills its layout box exactly) and a palette of
parts. The part called ``body`` takes the object's ``colour`` variant. Each (label, part, colour)
is one **material**, and every material's base colour has its own pair of channel differences
``(r - g, g - b)``: adding the same haze offset to all three channels (how depth is written into
the pixels, see :mod:`esplora.scenes.codec`) keeps those differences, so a pixel's material
survives any depth. :func:`materials` checks that no two materials share a pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Literal

__all__ = [
    "BACKGROUND",
    "LABELS",
    "SPRITES",
    "Material",
    "Shape",
    "Sprite",
    "material_index",
    "materials",
]

RGB = tuple[int, int, int]
MAX_BASE = 192  # every channel of a base colour; the haze offset adds up to 63


@dataclass(frozen=True, slots=True)
class Shape:
    """One filled primitive: a rectangle or ellipse ``(u0, v0, u1, v1)`` or a polygon's points."""

    form: Literal["rect", "ellipse", "poly"]
    part: str
    points: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Sprite:
    """How a label looks: width / height, height as a share of the image, parts and kinds."""

    label: str
    aspect: float
    height: float
    parts: Mapping[str, RGB]  # fixed parts (wheels, windows, skin…)
    colours: Mapping[str, RGB]  # variants of the ``body`` part, by name ("red", "blue"…)
    kinds: Mapping[str, tuple[Shape, ...]]


@dataclass(frozen=True, slots=True)
class Material:
    """A base colour and what it belongs to (``label`` is ``None`` for the background)."""

    index: int
    label: str | None
    part: str
    colour: str
    rgb: RGB


def _r(part: str, u0: float, v0: float, u1: float, v1: float) -> Shape:
    return Shape("rect", part, (u0, v0, u1, v1))


def _e(part: str, u0: float, v0: float, u1: float, v1: float) -> Shape:
    return Shape("ellipse", part, (u0, v0, u1, v1))


def _p(part: str, *points: float) -> Shape:
    return Shape("poly", part, points)


_CAR = (
    _r("body", 0.0, 0.42, 1.0, 0.84),
    _p("body", 0.18, 0.44, 0.3, 0.0, 0.72, 0.0, 0.86, 0.44),
    _p("window", 0.26, 0.42, 0.35, 0.1, 0.49, 0.1, 0.49, 0.42),
    _p("window", 0.53, 0.42, 0.53, 0.1, 0.68, 0.1, 0.78, 0.42),
    _e("wheel", 0.1, 0.62, 0.3, 1.0),
    _e("wheel", 0.7, 0.62, 0.9, 1.0),
)
_VAN = (
    _r("body", 0.0, 0.0, 1.0, 0.84),
    _r("window", 0.06, 0.1, 0.3, 0.42),
    _r("window", 0.36, 0.1, 0.62, 0.42),
    _p("window", 0.7, 0.1, 0.86, 0.1, 0.96, 0.42, 0.7, 0.42),
    _e("wheel", 0.1, 0.62, 0.3, 1.0),
    _e("wheel", 0.7, 0.62, 0.9, 1.0),
)
_BUS = (
    _r("body", 0.0, 0.0, 1.0, 0.86),
    *(_r("window", 0.04 + 0.16 * k, 0.1, 0.16 + 0.16 * k, 0.42) for k in range(5)),
    _r("window", 0.86, 0.1, 0.97, 0.8),
    _e("wheel", 0.1, 0.7, 0.24, 1.0),
    _e("wheel", 0.7, 0.7, 0.84, 1.0),
)
_BICYCLE = (
    _e("wheel", 0.0, 0.45, 0.4, 1.0),
    _e("wheel", 0.6, 0.45, 1.0, 1.0),
    _p("body", 0.2, 0.74, 0.48, 0.3, 0.54, 0.3, 0.26, 0.78),
    _p("body", 0.45, 0.32, 0.82, 0.3, 0.82, 0.36, 0.45, 0.38),
    _p("body", 0.48, 0.72, 0.78, 0.32, 0.84, 0.34, 0.54, 0.76),
    _p("body", 0.76, 0.3, 0.82, 0.04, 0.86, 0.04, 0.84, 0.74, 0.78, 0.74),
    _r("saddle", 0.36, 0.18, 0.6, 0.28),
    _r("saddle", 0.76, 0.0, 0.96, 0.08),
)
_PERSON = (
    _e("skin", 0.3, 0.0, 0.7, 0.18),
    _p("body", 0.12, 0.2, 0.88, 0.2, 1.0, 0.5, 0.86, 0.52, 0.8, 0.58, 0.2, 0.58, 0.14, 0.52, 0.0,
       0.5),
    _r("trousers", 0.2, 0.56, 0.46, 1.0),
    _r("trousers", 0.54, 0.56, 0.8, 1.0),
)  # fmt: skip
_TREE = (_r("trunk", 0.42, 0.55, 0.58, 1.0), _e("body", 0.0, 0.0, 1.0, 0.7))
_PINE = (
    _r("trunk", 0.42, 0.78, 0.58, 1.0),
    _p("body", 0.5, 0.0, 0.8, 0.4, 0.68, 0.4, 1.0, 0.82, 0.0, 0.82, 0.32, 0.4, 0.2, 0.4),
)
_BENCH = (
    _r("body", 0.0, 0.0, 1.0, 0.2),
    _r("body", 0.0, 0.38, 1.0, 0.52),
    _r("legs", 0.12, 0.2, 0.18, 0.38),
    _r("legs", 0.82, 0.2, 0.88, 0.38),
    _r("legs", 0.06, 0.52, 0.14, 1.0),
    _r("legs", 0.86, 0.52, 0.94, 1.0),
)
_LAMP = (
    _r("body", 0.4, 0.1, 0.6, 1.0),
    _r("body", 0.2, 0.94, 0.8, 1.0),
    _p("light", 0.0, 0.14, 0.2, 0.0, 0.8, 0.0, 1.0, 0.14),
)
_TRAFFIC_LIGHT = (
    _r("body", 0.42, 0.45, 0.58, 1.0),
    _r("body", 0.0, 0.0, 1.0, 0.48),
    _e("red", 0.22, 0.03, 0.78, 0.15),
    _e("amber", 0.22, 0.18, 0.78, 0.3),
    _e("green", 0.22, 0.33, 0.78, 0.45),
)
_BUILDING = (
    _r("body", 0.0, 0.0, 1.0, 1.0),
    *(
        _r("window", 0.1 + 0.3 * c, 0.06 + 0.2 * r, 0.3 + 0.3 * c, 0.18 + 0.2 * r)
        for r in range(4)
        for c in range(3)
    ),
    _r("door", 0.4, 0.84, 0.6, 1.0),
)
_DOG = (
    _e("body", 0.12, 0.3, 0.84, 0.72),
    _e("body", 0.66, 0.06, 1.0, 0.46),
    _p("dark", 0.7, 0.1, 0.78, 0.0, 0.84, 0.14),
    _r("body", 0.2, 0.6, 0.3, 1.0),
    _r("body", 0.64, 0.6, 0.74, 1.0),
    _p("body", 0.16, 0.44, 0.0, 0.16, 0.05, 0.12, 0.22, 0.38),
    _e("dark", 0.94, 0.22, 1.0, 0.3),
)
_CAT = (
    _e("body", 0.1, 0.42, 0.78, 0.86),
    _e("body", 0.62, 0.14, 1.0, 0.5),
    _p("body", 0.62, 0.24, 0.66, 0.0, 0.76, 0.18),
    _p("body", 0.84, 0.18, 0.92, 0.0, 0.98, 0.26),
    _p("body", 0.14, 0.62, 0.0, 0.12, 0.06, 0.1, 0.22, 0.56),
    _r("body", 0.2, 0.76, 0.3, 1.0),
    _r("body", 0.56, 0.76, 0.66, 1.0),
    _r("dark", 0.3, 0.46, 0.34, 0.8),
    _r("dark", 0.42, 0.44, 0.46, 0.84),
)
_HYDRANT = (
    _e("cap", 0.2, 0.0, 0.8, 0.24),
    _r("body", 0.2, 0.12, 0.8, 0.9),
    _r("body", 0.0, 0.34, 1.0, 0.5),
    _r("cap", 0.1, 0.88, 0.9, 1.0),
)
_TRASH_CAN = (
    _p("body", 0.06, 0.12, 0.94, 0.12, 0.84, 1.0, 0.16, 1.0),
    _r("lid", 0.0, 0.0, 1.0, 0.12),
    _r("lid", 0.4, 0.3, 0.48, 0.9),
)
_CONE = (
    _p("body", 0.5, 0.0, 0.88, 0.9, 0.12, 0.9),
    _p("stripe", 0.33, 0.42, 0.67, 0.42, 0.74, 0.58, 0.26, 0.58),
    _r("body", 0.0, 0.88, 1.0, 1.0),
)
_BIRD = (
    _e("body", 0.1, 0.36, 0.8, 0.84),
    _e("body", 0.6, 0.18, 0.94, 0.52),
    _p("dark", 0.24, 0.56, 0.5, 0.0, 0.62, 0.56),
    _p("beak", 0.92, 0.3, 1.0, 0.38, 0.92, 0.44),
    _p("body", 0.14, 0.56, 0.0, 0.38, 0.0, 0.8),
    _r("dark", 0.4, 0.82, 0.44, 1.0),
    _r("dark", 0.52, 0.82, 0.56, 1.0),
)


def _sprite(
    label: str,
    aspect: float,
    height: float,
    parts: dict[str, RGB],
    colours: dict[str, RGB],
    kinds: dict[str, tuple[Shape, ...]],
) -> Sprite:
    return Sprite(label, aspect, height, MappingProxyType(parts), MappingProxyType(colours),
                  MappingProxyType(kinds))  # fmt: skip


# Base colours: each channel ≤ MAX_BASE, each (r - g, g - b) pair used once (checked below).
SPRITES: Mapping[str, Sprite] = MappingProxyType({s.label: s for s in (
    _sprite("car", 2.0, 0.2, {"window": (90, 130, 160), "wheel": (25, 25, 30)},
            {"red": (170, 30, 40), "blue": (40, 70, 150), "white": (176, 178, 174)},
            {"sedan": _CAR, "van": _VAN}),
    _sprite("bus", 2.6, 0.26, {"window": (60, 105, 135), "wheel": (30, 28, 28)},
            {"yellow": (190, 150, 20), "red": (160, 20, 24)}, {"city": _BUS}),
    _sprite("bicycle", 1.6, 0.18, {"wheel": (40, 40, 40), "saddle": (50, 32, 20)},
            {"teal": (20, 120, 170), "orange": (186, 96, 34)}, {"road": _BICYCLE}),
    _sprite("person", 0.42, 0.3, {"skin": (180, 130, 100), "trousers": (50, 50, 90)},
            {"blue": (40, 80, 160), "green": (60, 140, 70), "red": (176, 46, 56)},
            {"standing": _PERSON}),
    _sprite("tree", 0.72, 0.42, {"trunk": (110, 70, 40)},
            {"green": (40, 130, 50), "olive": (90, 120, 40)}, {"round": _TREE, "pine": _PINE}),
    _sprite("bench", 2.0, 0.15, {"legs": (60, 60, 70)}, {"brown": (150, 95, 50)},
            {"park": _BENCH}),
    _sprite("street lamp", 0.32, 0.45, {"light": (190, 185, 100)}, {"grey": (70, 75, 80)},
            {"post": _LAMP}),
    _sprite("traffic light", 0.34, 0.4,
            {"red": (190, 20, 20), "amber": (190, 140, 0), "green": (20, 170, 60)},
            {"black": (35, 40, 35)}, {"pole": _TRAFFIC_LIGHT}),
    _sprite("building", 0.8, 0.5, {"window": (80, 100, 120), "door": (95, 60, 45)},
            {"brick": (150, 80, 64), "stone": (150, 120, 110)}, {"block": _BUILDING}),
    _sprite("dog", 1.4, 0.15, {"dark": (60, 40, 30)},
            {"brown": (140, 100, 60), "grey": (120, 116, 104)}, {"standing": _DOG}),
    _sprite("cat", 1.2, 0.12, {"dark": (130, 70, 30)},
            {"ginger": (190, 120, 50), "black": (44, 40, 48)}, {"sitting": _CAT}),
    _sprite("fire hydrant", 0.6, 0.13, {"cap": (150, 150, 40)}, {"red": (180, 40, 30)},
            {"street": _HYDRANT}),
    _sprite("trash can", 0.7, 0.15, {"lid": (45, 80, 65)}, {"green": (60, 110, 90)},
            {"bin": _TRASH_CAN}),
    _sprite("traffic cone", 0.7, 0.12, {"stripe": (185, 185, 180)}, {"orange": (190, 90, 20)},
            {"cone": _CONE}),
    _sprite("bird", 1.3, 0.08, {"beak": (190, 160, 30), "dark": (30, 30, 50)},
            {"blue": (60, 60, 110), "brown": (120, 90, 70)}, {"flying": _BIRD}),
)})  # fmt: skip

LABELS: tuple[str, ...] = tuple(SPRITES)

# Background materials (no label): sky above the horizon, kerb, road and lane markings below.
BACKGROUND: Mapping[str, RGB] = MappingProxyType(
    {
        "sky": (120, 160, 192),
        "kerb": (140, 135, 128),
        "road": (100, 98, 96),
        "lane": (185, 180, 150),
    }
)


def _difference(rgb: RGB) -> tuple[int, int]:
    return (rgb[0] - rgb[1], rgb[1] - rgb[2])


@lru_cache(maxsize=1)
def materials() -> tuple[Material, ...]:
    """Every material: the background's first (in :data:`BACKGROUND` order), then each label's.

    Raises ``ValueError`` when two materials share channel differences or a base colour leaves
    no room for the haze offset (a palette edit that would make pixels ambiguous).
    """
    out = [Material(i, None, name, "", rgb) for i, (name, rgb) in enumerate(BACKGROUND.items())]
    for sprite in SPRITES.values():
        for part, rgb in sprite.parts.items():
            out.append(Material(len(out), sprite.label, part, "", rgb))
        for colour, rgb in sprite.colours.items():
            out.append(Material(len(out), sprite.label, "body", colour, rgb))
    seen: dict[tuple[int, int], Material] = {}
    for m in out:
        if not all(0 <= c <= MAX_BASE for c in m.rgb):
            raise ValueError(f"material {m} has a channel outside [0, {MAX_BASE}]")
        clash = seen.setdefault(_difference(m.rgb), m)
        if clash is not m:
            raise ValueError(f"materials {clash} and {m} share channel differences")
    return tuple(out)


def material_index(label: str, part: str, colour: str) -> int:
    """The material of one part of a sprite (``body`` takes the colour variant)."""
    key = (label, part, colour if part == "body" else "")
    for m in materials():
        if (m.label, m.part, m.colour) == key:
            return m.index
    raise KeyError(f"no material for {key}")
