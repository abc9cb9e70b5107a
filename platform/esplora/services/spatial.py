"""Spatial questions answered by the core, shaped for the CLI, the demo and the UI."""

from __future__ import annotations

from typing import Any

import numpy as np

from esplora.core.relations import PLANAR, Relation
from esplora.core.rules import RULE_NAMES, EsploraRule, get_rule

BoxTuple = tuple[float, float, float, float]


def score_pair(
    relation: Relation,
    subject: BoxTuple,
    object_: BoxTuple,
    *,
    tau: float,
    depth_gap: float,
    disparity: tuple[float, float] | None = None,
) -> list[dict[str, Any]]:
    """A row per rule supporting ``relation``: its score; for ESPLoRA also soft/strict/margin."""
    rows: list[dict[str, Any]] = []
    for name in RULE_NAMES:
        params = {"tau": tau, "depth_gap": depth_gap} if name.startswith("esplora") else {}
        rule = get_rule(name, **params)
        if relation not in rule.relations:
            continue
        row: dict[str, Any] = {
            "rule": name,
            "score": rule.score(relation, subject, object_, disparity=disparity),
        }
        if isinstance(rule, EsploraRule):
            result = rule.evaluate(relation, subject, object_, disparity=disparity)
            row.update(soft=result.soft, strict=result.strict, margin=round(result.margin, 6))
        rows.append(row)
    return rows


def random_box_pairs(n: int, *, seed: int, frame: float = 512.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random (subject, object) box pairs in a square frame, sides 5–60 % of it."""
    rng = np.random.default_rng(seed)

    def boxes() -> np.ndarray:
        size = rng.uniform(0.05, 0.6, size=(n, 2)) * frame
        corner = rng.uniform(0.0, 1.0, size=(n, 2)) * (frame - size)
        return np.concatenate([corner, corner + size], axis=1)

    return boxes(), boxes()


def tau_sweep(
    taus: tuple[float, ...], *, pairs: int = 100_000, seed: int = 0
) -> list[dict[str, Any]]:
    """Per 2D relation, the share of random pairs that hold softly and strictly at each τ."""
    subjects, objects = random_box_pairs(pairs, seed=seed)
    rows = []
    for relation in sorted(PLANAR):
        row: dict[str, Any] = {"relation": relation.value}
        soft = get_rule("esplora-soft").score_many(relation, subjects, objects)
        row["soft"] = float(soft.mean())
        for tau in taus:
            strict = get_rule("esplora-strict", tau=tau).score_many(relation, subjects, objects)
            row[f"strict@{tau:g}"] = float(strict.mean())
        rows.append(row)
    return rows
