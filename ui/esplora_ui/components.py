"""Drawing and safe text: images with boxes, labels and relation arrows (Pillow), the depth
overlay, captions with their clauses marked, placeholders for missing files.

Captions and labels always go through ``st.text``, ``st.code`` or a dataframe (text, never
markdown or HTML), or are drawn into pixels, so ``<script>`` or ``**x**`` stays inert.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw, UnidentifiedImageError

from esplora.core.grammar import parse
from esplora.services.pipeline.depth import decode_depth_png

PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6"]
STRICT_COLOUR, SOFT_COLOUR = "#00c853", "#ffab00"


@dataclass(frozen=True, slots=True)
class Box:
    """An object box to draw (pixels)."""

    id: int
    label: str
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)


@dataclass(frozen=True, slots=True)
class Arrow:
    """A relation from subject to object, drawn strict (green) or soft only (amber)."""

    subject_id: int
    object_id: int
    relation: str
    strict: bool


def load_image(path: Path | None) -> Image.Image | None:
    """The image at ``path`` as RGB, or ``None`` when it is missing or unreadable."""
    if path is None or not path.is_file():
        return None
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError):
        return None


def depth_overlay(image: Image.Image, depth_path: Path | None) -> Image.Image | None:
    """``image`` blended with its depth map (near = bright), or ``None`` without a map."""
    if depth_path is None or not depth_path.is_file():
        return None
    try:
        depth = decode_depth_png(depth_path)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    heat = np.stack([depth, depth**2, 1.0 - depth], axis=-1) * 255.0
    layer = Image.fromarray(heat.astype(np.uint8), "RGB").resize(image.size)
    return Image.blend(image, layer, 0.55)


def annotate(image: Image.Image, boxes: Sequence[Box], arrows: Sequence[Arrow]) -> Image.Image:
    """A copy of ``image`` with boxes, labels and relation arrows drawn in."""
    scale = max(1, round(max(image.size) / 320))
    canvas = image.resize((image.width * scale, image.height * scale))
    draw = ImageDraw.Draw(canvas)
    by_id = {b.id: b for b in boxes}
    for index, box in enumerate(boxes):
        colour = PALETTE[index % len(PALETTE)]
        corners = [box.x0 * scale, box.y0 * scale, box.x1 * scale, box.y1 * scale]
        draw.rectangle(corners, outline=colour, width=2)
        draw.text((corners[0] + 2, corners[1] + 1), f"{box.label} #{box.id}", fill=colour)
    for offset, arrow in enumerate(arrows):
        if arrow.subject_id in by_id and arrow.object_id in by_id:
            start = _scaled(by_id[arrow.subject_id].centre, scale)
            end = _scaled(by_id[arrow.object_id].centre, scale)
            _arrow(draw, start, end, STRICT_COLOUR if arrow.strict else SOFT_COLOUR)
            middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 12 * offset)
            draw.text(middle, arrow.relation, fill="white")
    return canvas


def _scaled(point: tuple[float, float], scale: int) -> tuple[float, float]:
    return (point[0] * scale, point[1] * scale)


def _arrow(
    draw: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float], colour: str
) -> None:
    draw.line([start, end], fill=colour, width=2)
    angle = math.atan2(end[1] - start[1], end[0] - start[0])
    head = [
        (end[0] - 9 * math.cos(angle - s * 0.45), end[1] - 9 * math.sin(angle - s * 0.45))
        for s in (1, -1)
    ]
    draw.polygon([end, *head], fill=colour)


def show_image(
    image_path: Path | None,
    boxes: Sequence[Box],
    arrows: Sequence[Arrow],
    *,
    depth_path: Path | None = None,
    show_depth: bool = False,
) -> None:
    """The annotated image, or a placeholder saying which file is missing."""
    image = load_image(image_path)
    if image is None:
        st.warning("Image file missing or unreadable; the stored rows are shown below.")
        st.code(str(image_path) if image_path else "no image URI", language=None)
        return
    if show_depth:
        overlay = depth_overlay(image, depth_path)
        if overlay is None:
            st.info("No depth map for this image (depth stage not run, failed, or file missing).")
        else:
            image = overlay
    st.image(annotate(image, boxes, arrows), width="stretch")


def thumbnail(image_path: Path | None, size: int = 160) -> Image.Image:
    """A small preview, or a grey placeholder tile when the file is missing."""
    image = load_image(image_path)
    if image is None:
        tile = Image.new("RGB", (size, size), "#9e9e9e")
        ImageDraw.Draw(tile).text((8, size // 2 - 6), "image missing", fill="white")
        return tile
    image.thumbnail((size, size))
    return image


def clause_marks(caption: str) -> str:
    """A line under ``caption`` marking each clause (``─``) and its relation phrase (``^``)."""
    marks = [" "] * len(caption)
    for clause in parse(caption).clauses:
        for i in range(clause.span.start, min(clause.span.end, len(caption))):
            marks[i] = "─"
        for span in clause.phrase_spans:
            for i in range(span.start, min(span.end, len(caption))):
                marks[i] = "^"
    return "".join(marks).rstrip()


def show_caption(caption: str) -> None:
    """The caption as plain text, its clauses marked beneath and listed (all inert text)."""
    if not caption:
        st.text("(no caption)")
        return
    marks = clause_marks(caption)
    st.code(f"{caption}\n{marks}" if marks else caption, language=None, wrap_lines=False)
    clauses = parse(caption).clauses
    if clauses:
        st.dataframe(
            [
                {
                    "clause": c.text,
                    "subject": c.subject_label,
                    "relation": c.relation.value,
                    "object": c.object_label,
                    "ambiguous": c.ambiguous.value if c.ambiguous else "",
                }
                for c in clauses
            ],
            hide_index=True,
            width="stretch",
        )
