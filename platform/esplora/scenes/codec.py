"""How a rendered pixel carries its material and its depth, and how both are read back.

Every pixel is ``base colour of its material + haze`` with the same haze added to all three
channels, ``haze = (LEVELS - 1) - level``: far things are lighter, as in aerial perspective, and
the sky (level 0) is the lightest. Adding one number to every channel keeps the channel
differences ``(r - g, g - b)``, which are unique per material (:func:`sprites.materials`), so

- the material (hence the label) is the pixel's channel differences, and
- the depth level is ``LEVELS - 1 - (r - base_r)``.

Decoding is exact on lossless images (PNG); a pixel that fits no material decodes as unknown.
Instances are the pixels of one label at one depth level: the world gives every object of a
scene its own level, so an object cut in two by an occluder is still one instance, and its box
is the bounding box of the pixels that are visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from esplora.scenes.model import LEVELS, Box
from esplora.scenes.sprites import materials

__all__ = [
    "UNKNOWN",
    "Decoded",
    "Instance",
    "box_filled_disparity",
    "decode",
    "encode",
    "instances",
    "label_names",
]

UNKNOWN = -1
_SPAN = 511  # channel differences range over [-255, 255]

IntArray = NDArray[np.int16]


@lru_cache(maxsize=1)
def _tables() -> tuple[NDArray[np.int16], NDArray[np.int16], NDArray[np.bool_], tuple[str, ...]]:
    """Lookup by channel differences, base colours, which materials are objects, their labels."""
    lookup = np.full((_SPAN, _SPAN), UNKNOWN, dtype=np.int16)
    found = materials()
    base = np.array([m.rgb for m in found], dtype=np.int16)
    for m in found:
        lookup[m.rgb[0] - m.rgb[1] + 255, m.rgb[1] - m.rgb[2] + 255] = m.index
    labels = tuple(sorted({m.label for m in found if m.label is not None}))
    is_object = np.array([m.label is not None for m in found], dtype=np.bool_)
    return lookup, base, is_object, labels


def label_names() -> tuple[str, ...]:
    """The labels the codec knows, in the order of :attr:`Decoded.label` indices."""
    return _tables()[3]


def encode(material: NDArray[np.integer], level: NDArray[np.integer]) -> NDArray[np.uint8]:
    """The RGB image of per-pixel material indices and depth levels (both ``(H, W)``)."""
    base = _tables()[1]
    haze = (LEVELS - 1) - level.astype(np.int16)
    rgb: NDArray[np.uint8] = (base[material] + haze[..., None]).astype(np.uint8)
    return rgb


@dataclass(frozen=True, slots=True)
class Decoded:
    """Per pixel: material index, depth level and label index (``UNKNOWN`` where none)."""

    material: IntArray
    level: IntArray
    label: IntArray  # index into label_names(); UNKNOWN for background and unknown pixels


def decode(rgb: NDArray[np.uint8]) -> Decoded:
    """Read materials, depth levels and labels back from an ``(H, W, 3)`` RGB array."""
    lookup, base, is_object, _ = _tables()
    pixels = rgb.astype(np.int16)
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    material = lookup[r - g + 255, g - b + 255]
    known = material != UNKNOWN
    safe = np.where(known, material, 0)
    haze = r - base[safe, 0]
    known &= (haze >= 0) & (haze < LEVELS)
    material = np.where(known, material, UNKNOWN).astype(np.int16)
    level = np.where(known, (LEVELS - 1) - haze, UNKNOWN).astype(np.int16)
    label_of = _label_index_of_material()
    label = np.where(known & is_object[safe], label_of[safe], UNKNOWN).astype(np.int16)
    return Decoded(material, level, label)


@lru_cache(maxsize=1)
def _label_index_of_material() -> NDArray[np.int16]:
    names = label_names()
    return np.array(
        [names.index(m.label) if m.label is not None else UNKNOWN for m in materials()],
        dtype=np.int16,
    )


@dataclass(frozen=True, slots=True)
class Instance:
    """One object found in the pixels: label, depth level, visible box and pixel count."""

    label: str
    level: int
    box: Box
    pixels: int


def instances(decoded: Decoded) -> list[Instance]:
    """Every (label, level) group of object pixels, largest first (ties: label, then level)."""
    names = label_names()
    key = np.where(decoded.label != UNKNOWN, decoded.label.astype(np.int32) * LEVELS, -1)
    key = np.where(key >= 0, key + decoded.level, -1)
    out: list[Instance] = []
    for value in np.unique(key[key >= 0]).tolist():
        rows, cols = np.nonzero(key == value)
        box = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
        out.append(Instance(names[value // LEVELS], value % LEVELS, box, int(rows.size)))
    out.sort(key=lambda i: (-i.pixels, i.label, i.level))
    return out


def box_filled_disparity(
    background: NDArray[np.integer], boxes: list[Box], levels: list[int]
) -> NDArray[np.float64]:
    """A disparity map: ``background`` levels, each box filled with its level, nearest on top.

    The platform reads an object's depth as the median disparity inside its *box*; a thin
    sprite (a lamp post) covers little of its box, so a map of sprite pixels alone would give
    it the background's depth. Filling each visible box with its object's level (far to near,
    so occluders win where boxes overlap) keeps every box's median at its object's own depth
    as long as nearer boxes cover less than half of it, which the composer guarantees.
    """
    out = background.astype(np.int16, copy=True)
    for index in sorted(range(len(boxes)), key=lambda i: levels[i]):
        x0, y0, x1, y1 = boxes[index]
        out[y0:y1, x0:x1] = levels[index]
    result: NDArray[np.float64] = out.astype(np.float64) / (LEVELS - 1)
    return result
