"""Figures of the relation rules, drawn from the rules themselves (deterministic, Agg backend).

Used by ``docs/figures/relation_figures.py`` (the figures of docs/relations.md) and by
``esplora demo``. matplotlib comes with the ``ui`` extra.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch, Rectangle

from esplora.core.relations import Relation
from esplora.core.rules.esplora import evaluate_many

COLOURS = ["#e6e6e6", "#f4b860", "#2c7fb8"]  # none, soft only, strict
CMAP = ListedColormap(COLOURS)
PLANAR = [Relation.LEFT_OF, Relation.RIGHT_OF, Relation.ABOVE, Relation.BELOW]
TAUS = [2.0, 3.0, 5.0]
CANVAS = (400.0, 300.0)
OBJECT = np.array([150.0, 110.0, 250.0, 190.0])  # 100 x 80, centred
SUBJECT_SIZE = (80.0, 60.0)
SAVE = {"dpi": 130, "metadata": {"Software": None}}  # no version stamp: byte-stable output


def _classes(soft: np.ndarray, strict: np.ndarray) -> np.ndarray:
    return soft.astype(np.int8) + strict.astype(np.int8)  # 0 none, 1 soft only, 2 strict


def sweep_2d(relation: Relation, tau: float, step: float = 2.0) -> tuple[np.ndarray, ...]:
    """Class of each subject-centre position for a fixed-size subject against OBJECT."""
    xs = np.arange(0.0, CANVAS[0] + step, step)
    ys = np.arange(0.0, CANVAS[1] + step, step)
    cx, cy = np.meshgrid(xs, ys)
    w, h = SUBJECT_SIZE
    subjects = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1).reshape(-1, 4)
    objects = np.broadcast_to(OBJECT, subjects.shape)
    result = evaluate_many(relation, subjects, objects, tau=tau)
    return xs, ys, _classes(result.soft, result.strict).reshape(cx.shape)


def boundary_subject(relation: Relation, tau: float) -> tuple[float, float, float, float]:
    """The subject box sitting exactly on the strict boundary (overlap = min size / τ)."""
    w, h = SUBJECT_SIZE
    x0, y0, x1, y1 = OBJECT
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    mx, my = min(w, x1 - x0) / tau, min(h, y1 - y0) / tau
    left = {
        Relation.LEFT_OF: (x0 + mx - w, cy - h / 2),
        Relation.RIGHT_OF: (x1 - mx, cy - h / 2),
        Relation.ABOVE: (cx - w / 2, y0 + my - h),
        Relation.BELOW: (cx - w / 2, y1 - my),
    }[relation]
    return (left[0], left[1], w, h)


def _draw_panel(ax: plt.Axes, relation: Relation, tau: float) -> None:
    xs, ys, classes = sweep_2d(relation, tau)
    extent = (xs[0], xs[-1], ys[-1], ys[0])  # image coordinates: y grows downwards
    ax.imshow(classes, cmap=CMAP, vmin=0, vmax=2, extent=extent, interpolation="nearest")
    x0, y0, x1, y1 = OBJECT
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.6, ec="black"))
    ax.plot((x0 + x1) / 2, (y0 + y1) / 2, "k+", ms=8)
    bx, by, bw, bh = boundary_subject(relation, tau)
    ax.add_patch(Rectangle((bx, by), bw, bh, fill=False, lw=1.2, ls="--", ec="#b2182b"))
    ax.set_title(f"A {relation.value} B, τ = {tau:g}", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_2d(path: Path) -> None:
    """One panel per 2D relation (rows) and τ (columns)."""
    fig, axes = plt.subplots(len(PLANAR), len(TAUS), figsize=(10, 10.5))
    for row, relation in enumerate(PLANAR):
        for col, tau in enumerate(TAUS):
            _draw_panel(axes[row][col], relation, tau)
    handles = [
        Patch(color=COLOURS[0], label="neither"),
        Patch(color=COLOURS[1], label="soft only"),
        Patch(color=COLOURS[2], label="soft and strict"),
        Patch(fill=False, ec="black", label="object box B (100 × 80)"),
        Patch(fill=False, ec="#b2182b", ls="--", label="A on the strict boundary"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=5, frameon=False)
    fig.suptitle(
        "ESPLoRA rule: colour at each position of the subject A's centre (A is 80 × 60 px)",
        fontsize=12,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    fig.savefig(path, **SAVE)
    plt.close(fig)


def draw_depth(path: Path, depth_gap: float = 1 / 3, n: int = 401) -> None:
    """The depth rule over (d_A, d_B) in [0, 1]²: classes, and the in_front_of margin."""
    grid = np.linspace(0.0, 1.0, n)
    d_a, d_b = np.meshgrid(grid, grid)
    disparity = np.stack([d_a.ravel(), d_b.ravel()], axis=1)
    boxes = np.broadcast_to(np.array([0.0, 0.0, 1.0, 1.0]), (disparity.shape[0], 4))
    front = evaluate_many(
        Relation.IN_FRONT_OF, boxes, boxes, disparity=disparity, depth_gap=depth_gap
    )
    behind = evaluate_many(Relation.BEHIND, boxes, boxes, disparity=disparity, depth_gap=depth_gap)
    # 0 behind strict, 1 behind soft, 2 neither, 3 in front soft, 4 in front strict
    classes = 2 + _classes(front.soft, front.strict) - _classes(behind.soft, behind.strict)
    colours = ["#7b3294", "#c2a5cf", "#e6e6e6", "#f4b860", "#2c7fb8"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5))
    left.imshow(classes.reshape(d_a.shape), cmap=ListedColormap(colours), vmin=0, vmax=4,
                origin="lower", extent=(0, 1, 0, 1), interpolation="nearest")  # fmt: skip
    left.set(xlabel="d_A (subject disparity; larger = closer)", ylabel="d_B (object disparity)")
    left.set_title(f"A in_front_of B / A behind B, depth_gap g = {depth_gap:.3g}", fontsize=10)
    labels = ["behind, strict", "behind, soft only", "neither", "in front, soft only",
              "in front, strict"]  # fmt: skip
    left.legend(handles=[Patch(color=c, label=t) for c, t in zip(colours, labels, strict=True)],
                loc="upper left", fontsize=8)  # fmt: skip
    margin = front.margin.reshape(d_a.shape)
    image = right.imshow(margin, cmap="RdBu", vmin=-1.4, vmax=1.4, origin="lower",
                         extent=(0, 1, 0, 1))  # fmt: skip
    right.contour(grid, grid, margin, levels=[0.0], colors="black", linewidths=1.2)
    right.set(xlabel="d_A", ylabel="d_B")
    right.set_title("margin of A in_front_of B: (d_A − d_B) / max − g (0 on the line)", fontsize=10)
    fig.colorbar(image, ax=right, shrink=0.85)
    fig.tight_layout()
    fig.savefig(path, **SAVE)
    plt.close(fig)


def write_relation_figures(out_dir: Path) -> list[Path]:
    """Write ``relations_2d.png`` and ``relation_depth.png`` into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "relations_2d.png", out_dir / "relation_depth.png"]
    draw_2d(paths[0])
    draw_depth(paths[1])
    return paths
