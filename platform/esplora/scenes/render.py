"""Draw a :class:`Scene`: a street background, then sprites back to front (painter's order).

The renderer draws two small integer maps, the material of every pixel and the object it
belongs to, then writes depth into the colours (:func:`esplora.scenes.codec.encode`). Nothing is
anti-aliased and nothing is random, so a scene always renders to the same bytes. What it
returns besides the image is the ground truth: the exact per-pixel disparity and every object's
**visible-pixel box** (the bounding box of the pixels it still owns after nearer objects were
drawn over it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from esplora.scenes.codec import encode
from esplora.scenes.model import LEVELS, Background, Box, Scene, SceneObject, depth_of_level
from esplora.scenes.sprites import BACKGROUND, SPRITES, Shape, material_index

__all__ = [
    "GROUND_FAR_LEVEL",
    "Rendering",
    "background_maps",
    "horizon_row",
    "render",
    "sprite_mask",
]

GROUND_FAR_LEVEL = 10  # the road's disparity level at the horizon; it reaches 63 at the bottom
_SKY, _KERB, _ROAD, _LANE = (list(BACKGROUND).index(n) for n in ("sky", "kerb", "road", "lane"))


@dataclass(frozen=True, slots=True, eq=False)
class Rendering:
    """A rendered scene and its exact answers.

    ``disparity`` is ``level / 63`` per pixel (sky 0, the road's nearest row 1); ``object_map``
    holds each pixel's object index or -1; ``boxes[i]`` is object ``i``'s visible-pixel box
    (``None`` when it is hidden entirely), ``pixels[i]`` its visible pixel count and
    ``full_pixels[i]`` the count it would have unoccluded.
    """

    image: Image.Image
    disparity: NDArray[np.float64]
    object_map: NDArray[np.int16]
    background_levels: NDArray[np.int16]
    boxes: tuple[Box | None, ...]
    pixels: tuple[int, ...]
    full_pixels: tuple[int, ...]
    depths: tuple[float, ...]  # every object's exact disparity, in object order
    labels: tuple[str, ...]  # every object's label, in object order


def horizon_row(height: int, background: Background) -> int:
    """The first row of road: at least two rows of sky and of road always stay visible."""
    return min(max(round(background.horizon * height), 2), height - 3)


def background_maps(scene: Scene) -> tuple[NDArray[np.uint8], NDArray[np.int16]]:
    """Material indices and depth levels of the empty street, both ``(height, width)``."""
    w, h, hy = scene.width, scene.height, horizon_row(scene.height, scene.background)
    rows = np.arange(h)
    ground = GROUND_FAR_LEVEL + np.round(
        (LEVELS - 1 - GROUND_FAR_LEVEL) * (rows - hy) / (h - 1 - hy)
    )
    levels = np.where(rows < hy, 0, ground).astype(np.int16)
    material = np.full((h, w), _ROAD, dtype=np.uint8)
    material[:hy] = _SKY
    material[hy : hy + max(2, (h - hy) // 8)] = _KERB
    lane_top = hy + round(0.55 * (h - hy))
    dash = max(4, w // 12)
    columns = (np.arange(w) + scene.background.dash_offset) % (2 * dash) < dash
    material[lane_top : lane_top + max(2, h // 80), columns] = _LANE
    return material, np.repeat(levels[:, None], w, axis=1)


def _pixel_shape(shape: Shape, box: Box) -> list[tuple[int, int]]:
    """A shape's points in pixels: unit 0 and 1 land on the box's first and last pixel."""
    x0, y0, x1, y1 = box
    sx, sy = x1 - 1 - x0, y1 - 1 - y0
    pts = shape.points
    return [
        (round(x0 + u * sx), round(y0 + v * sy)) for u, v in zip(pts[::2], pts[1::2], strict=True)
    ]


def _draw(draw: ImageDraw.ImageDraw, shape: Shape, box: Box, fill: int) -> None:
    points = _pixel_shape(shape, box)
    if shape.form == "rect":
        draw.rectangle([points[0], points[1]], fill=fill)
    elif shape.form == "ellipse":
        draw.ellipse([points[0], points[1]], fill=fill)
    else:
        draw.polygon(points, fill=fill)


def _shapes(obj: SceneObject) -> tuple[Shape, ...]:
    return SPRITES[obj.label].kinds[obj.kind]


def sprite_mask(obj: SceneObject) -> NDArray[np.bool_]:
    """The pixels an object covers on its own, over its layout box (``(h, w)``)."""
    x0, y0, x1, y1 = obj.box
    canvas = Image.new("L", (x1 - x0, y1 - y0), 0)
    draw = ImageDraw.Draw(canvas)
    local = (0, 0, x1 - x0, y1 - y0)
    for shape in _shapes(obj):
        _draw(draw, shape, local, 1)
    return np.asarray(canvas, dtype=np.uint8) > 0


def _draw_objects(scene: Scene, material: NDArray[np.uint8]) -> tuple[Image.Image, Image.Image]:
    """Material and object-id images with every sprite drawn, far to near (ids start at 1)."""
    mat_img = Image.fromarray(material)
    obj_img = Image.new("L", (scene.width, scene.height), 0)
    draw_mat, draw_obj = ImageDraw.Draw(mat_img), ImageDraw.Draw(obj_img)
    # Painter's order: far first; equal levels (never in composed scenes) by index.
    for index in sorted(range(len(scene.objects)), key=lambda i: (scene.objects[i].level, i)):
        obj = scene.objects[index]
        for shape in _shapes(obj):
            fill = material_index(obj.label, shape.part, obj.colour)
            _draw(draw_mat, shape, obj.box, fill)
            _draw(draw_obj, shape, obj.box, index + 1)
    return mat_img, obj_img


def _visible(object_map: NDArray[np.int16], n: int) -> tuple[list[Box | None], list[int]]:
    boxes: list[Box | None] = []
    counts: list[int] = []
    for index in range(n):
        rows, cols = np.nonzero(object_map == index)
        counts.append(int(rows.size))
        if rows.size == 0:
            boxes.append(None)
            continue
        boxes.append((int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1))
    return boxes, counts


def render(scene: Scene) -> Rendering:
    """Draw ``scene``: the RGB image, exact disparity, object map and visible boxes."""
    material, background_levels = background_maps(scene)
    mat_img, obj_img = _draw_objects(scene, material)
    object_map = np.asarray(obj_img, dtype=np.int16) - 1
    levels = background_levels.copy()
    object_levels = np.array([o.level for o in scene.objects] + [0], dtype=np.int16)
    drawn = object_map >= 0
    levels[drawn] = object_levels[object_map[drawn]]
    rgb = encode(np.asarray(mat_img, dtype=np.int16), levels)
    boxes, counts = _visible(object_map, len(scene.objects))
    return Rendering(
        image=Image.fromarray(rgb),
        disparity=levels.astype(np.float64) / (LEVELS - 1),
        object_map=object_map,
        background_levels=background_levels,
        boxes=tuple(boxes),
        pixels=tuple(counts),
        full_pixels=tuple(int(sprite_mask(o).sum()) for o in scene.objects),
        depths=tuple(depth_of_level(o.level) for o in scene.objects),
        labels=tuple(o.label for o in scene.objects),
    )
