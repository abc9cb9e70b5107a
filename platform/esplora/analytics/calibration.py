"""Calibration: how strictness would change with τ and the depth gap, and how it agrees with
reviewers — recomputed from stored boxes and depth medians, no model re-run.

The sweep takes each stored pair (one per subject, object and axis; a deterministic sample of at
most ``max_pairs``), recomputes its canonical rows with
:func:`esplora.core.rules.canonical.canonical_relations_many` for every value, and reports per
relation the yield (strict / pairs) and, where reviewers judged the pair, the precision
(judged correct / judged strict). τ moves the planar axes, the depth gap the depth axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from esplora.analytics.overview import records
from esplora.core.relations import Axis
from esplora.core.rules.canonical import canonical_relations_many
from esplora.core.rules.esplora import DEFAULT_DEPTH_GAP, DEFAULT_TAU

_PAIRS_SQL = """
WITH d AS (SELECT object_id, depth_median AS m FROM store.depth_medians),
pairs AS (
    SELECT r.subject_id, r.object_id, r.axis, any_value(r.relation) AS relation,
           bool_or(rs.human_ok) FILTER (rs.human_ok IS NOT NULL) AS human_ok,
           min(r.id) AS first_id
    FROM store.relations r
    LEFT JOIN review_states rs ON rs.target_type = 'relation' AND rs.target_id = r.id
    WHERE r.axis = ? GROUP BY ALL
)
SELECT p.relation, p.human_ok, s.x0 AS sx0, s.y0 AS sy0, s.x1 AS sx1, s.y1 AS sy1,
       o.x0 AS ox0, o.y0 AS oy0, o.x1 AS ox1, o.y1 AS oy1, ds.m AS sd, dob.m AS od
FROM pairs p JOIN store.objects s ON s.id = p.subject_id JOIN store.objects o ON o.id = p.object_id
LEFT JOIN d ds ON ds.object_id = p.subject_id LEFT JOIN d dob ON dob.object_id = p.object_id
WHERE ? OR (ds.m IS NOT NULL AND dob.m IS NOT NULL)
ORDER BY hash(p.first_id) LIMIT ?
"""


def _pairs(cursor: Any, axis: Axis, max_pairs: int) -> pa.Table:
    planar = axis is not Axis.DEPTH
    return cursor.sql(_PAIRS_SQL, params=[axis.value, planar, max_pairs]).to_arrow_table()


def _column(table: pa.Table, *names: str) -> np.ndarray:
    return np.column_stack([table.column(n).to_numpy(zero_copy_only=False) for n in names])


def _strict(table: pa.Table, axis: Axis, tau: float, depth_gap: float) -> np.ndarray:
    a = _column(table, "sx0", "sy0", "sx1", "sy1").astype(np.float64)
    b = _column(table, "ox0", "oy0", "ox1", "oy1").astype(np.float64)
    disparity = _column(table, "sd", "od").astype(np.float64) if axis is Axis.DEPTH else None
    for rows in canonical_relations_many(a, b, disparity=disparity, tau=tau, depth_gap=depth_gap):
        if rows.axis is axis:
            return np.asarray(rows.present & rows.subject_is_a & rows.strict)
    raise AssertionError(f"no rows for axis {axis}")


def _summaries(table: pa.Table, strict: np.ndarray, base: dict[str, Any]) -> list[dict[str, Any]]:
    relation = np.asarray(table.column("relation").to_pylist(), dtype=object)
    human = table.column("human_ok").to_pylist()
    judged = np.array([h is not None for h in human], dtype=bool)
    correct = np.array([bool(h) for h in human], dtype=bool)
    out = []
    for name in sorted(set(relation.tolist())):
        mask = relation == name
        strict_judged = int((mask & strict & judged).sum())
        out.append(
            {
                **base,
                "relation": name,
                "pairs": int(mask.sum()),
                "strict": int((mask & strict).sum()),
                "yield": float((mask & strict).sum() / max(int(mask.sum()), 1)),
                "judged": strict_judged,
                "precision": (
                    float((mask & strict & correct).sum() / strict_judged)
                    if strict_judged
                    else None
                ),
            }
        )
    return out


def sweep(
    cursor: Any, taus: list[float], depth_gaps: list[float], *, max_pairs: int
) -> list[dict[str, Any]]:
    """Yield and precision per relation for every τ (planar) and depth gap (depth)."""
    rows: list[dict[str, Any]] = []
    for axis in (Axis.HORIZONTAL, Axis.VERTICAL):
        table = _pairs(cursor, axis, max_pairs)
        for tau in taus if table.num_rows else []:
            strict = _strict(table, axis, tau, DEFAULT_DEPTH_GAP)
            rows += _summaries(table, strict, {"parameter": "tau", "value": tau})
    table = _pairs(cursor, Axis.DEPTH, max_pairs)
    for gap in depth_gaps if table.num_rows else []:
        strict = _strict(table, Axis.DEPTH, DEFAULT_TAU, gap)
        rows += _summaries(table, strict, {"parameter": "depth_gap", "value": gap})
    return rows


def confusion(cursor: Any) -> list[dict[str, Any]]:
    """Per relation, the machine's strict verdict against reviewers' judgement (judged rows)."""
    return records(
        cursor,
        "SELECT relation, count(*) FILTER (strict AND human_ok) AS strict_accepted, "
        "count(*) FILTER (strict AND NOT human_ok) AS strict_rejected, "
        "count(*) FILTER (NOT strict AND human_ok) AS loose_accepted, "
        "count(*) FILTER (NOT strict AND NOT human_ok) AS loose_rejected "
        "FROM relations WHERE human_ok IS NOT NULL GROUP BY relation ORDER BY relation",
    )


def calibration(
    cursor: Any, taus: list[float], depth_gaps: list[float], *, max_pairs: int
) -> dict[str, list[dict[str, Any]]]:
    """``{"sweep": [...], "confusion": [...]}``."""
    return {
        "sweep": sweep(cursor, taus, depth_gaps, max_pairs=max_pairs),
        "confusion": confusion(cursor),
    }
