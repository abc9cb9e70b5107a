"""Draw the sample grid of docs/scenes.md from the scene world itself.

    .venv/bin/python docs/figures/scene_figures.py

writes ``scenes_grid.png`` next to this file: 3 × 4 corpus scenes (a fixed seed; 25% of the
captions wrong and 15% vague, as alt-text comes), each with its caption and the caption's kind.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from esplora.scenes.corpus import CorpusOptions, corpus_scene

ROWS, COLUMNS = 3, 4
SEED = 11
CELL_W, CELL_H = 320, 240
TEXT_H = 64
PAD = 8
WRONG, VAGUE = 0.25, 0.15  # shares of wrong and vague captions
KIND_COLOUR = {"true": (20, 110, 40), "wrong": (170, 30, 30), "vague": (110, 110, 110)}


def _cell(index: int, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> Image.Image:
    options = CorpusOptions(width=CELL_W, height=CELL_H)
    _, shown, caption = corpus_scene(index, SEED, options, WRONG, VAGUE)
    cell = Image.new("RGB", (CELL_W, CELL_H + TEXT_H), "white")
    cell.paste(shown.image, (0, 0))
    draw = ImageDraw.Draw(cell)
    kind = caption.kind.value
    draw.text((4, CELL_H + 4), f"[{kind}]", fill=KIND_COLOUR[kind], font=font)
    lines = textwrap.wrap(caption.text, width=46)[:3]
    for k, line in enumerate(lines):
        draw.text((4, CELL_H + 20 + 14 * k), line, fill=(20, 20, 20), font=font)
    return cell


def write_scene_grid(path: Path) -> Path:
    """A ROWS × COLUMNS grid of captioned corpus scenes, written as PNG to ``path``."""
    font = ImageFont.load_default(size=12)
    width = COLUMNS * CELL_W + (COLUMNS + 1) * PAD
    height = ROWS * (CELL_H + TEXT_H) + (ROWS + 1) * PAD
    grid = Image.new("RGB", (width, height), (235, 235, 235))
    for index in range(ROWS * COLUMNS):
        row, column = divmod(index, COLUMNS)
        x = PAD + column * (CELL_W + PAD)
        y = PAD + row * (CELL_H + TEXT_H + PAD)
        grid.paste(_cell(index, font), (x, y))
    grid.save(path, format="PNG", optimize=True)
    return path


if __name__ == "__main__":
    print(f"wrote {write_scene_grid(Path(__file__).resolve().parent / 'scenes_grid.png')}")
