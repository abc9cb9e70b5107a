"""The Overview numbers: SQL over the mirrored tables (``store.*``) and the views."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

HISTOGRAM_BINS = 20
# The mean margin sums margins as exact decimals (each rounded to 1e-12): a float sum depends on
# the order DuckDB's threads add in, and the maintained aggregates must equal a recomputation.
MARGIN_DECIMAL = "DECIMAL(38,12)"
DEPTH_GAP_BIN = 0.05
TOP_LABEL_PAIRS = 20


def records(cursor: Any, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """Run ``sql`` and return its rows as dicts."""
    result = cursor.execute(sql, params or [])
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def totals(cursor: Any) -> dict[str, int]:
    tables = ["images", "samples", "objects", "relations", "claims", "votes"]
    sql = " UNION ALL ".join(f"SELECT '{t}' AS t, count(*) AS n FROM store.{t}" for t in tables)
    return {r["t"]: int(r["n"]) for r in records(cursor, sql)}


def axes(cursor: Any) -> list[dict[str, Any]]:
    return records(
        cursor,
        "SELECT axis, count(*) AS pairs, count(*) FILTER (strict) AS strict "
        "FROM store.relations GROUP BY axis ORDER BY axis",
    )


def soft_vs_strict(cursor: Any) -> list[dict[str, Any]]:
    return records(
        cursor,
        "SELECT relation, count(*) FILTER (soft) AS soft, count(*) FILTER (strict) AS strict, "
        "count(*) FILTER (soft AND NOT strict) AS soft_only, "
        f"CAST(sum(CAST(margin AS {MARGIN_DECIMAL})) AS DOUBLE) / count(*) AS mean_margin "
        "FROM store.relations GROUP BY relation ORDER BY relation",
    )


def label_pairs(cursor: Any, top: int = TOP_LABEL_PAIRS) -> list[dict[str, Any]]:
    """The most frequent label pairs per axis; ``forward`` rows have ``label_a`` as subject."""
    return records(
        cursor,
        """
        WITH pairs AS (
            SELECT r.axis, r.relation, r.strict, s.label AS sl, o.label AS ol
            FROM store.relations r
            JOIN store.objects s ON s.id = r.subject_id
            JOIN store.objects o ON o.id = r.object_id
        )
        SELECT least(sl, ol) AS label_a, greatest(sl, ol) AS label_b, axis,
               min(relation) AS relation, count(*) AS pairs,
               count(*) FILTER (sl <= ol) AS forward, count(*) FILTER (sl > ol) AS backward,
               count(*) FILTER (strict) AS strict
        FROM pairs GROUP BY ALL ORDER BY pairs DESC, label_a, label_b, axis LIMIT ?
        """,
        [top],
    )


def claims(cursor: Any) -> list[dict[str, Any]]:
    return records(
        cursor,
        "SELECT relation, count(*) FILTER (agreement = 'confirmed') AS confirmed, "
        "count(*) FILTER (agreement = 'contradicted') AS contradicted, "
        "count(*) FILTER (agreement = 'unresolved') AS unresolved "
        "FROM store.claims GROUP BY relation ORDER BY relation",
    )


def margin_histogram(cursor: Any, bins: int = HISTOGRAM_BINS) -> list[dict[str, Any]]:
    """Per axis and relation, ``bins`` equal-width bins ``[lo, hi)`` between the smallest and
    largest margin (the same edges for every relation, so their histograms line up)."""
    edges = cursor.execute("SELECT min(margin), max(margin) FROM store.relations").fetchall()[0]
    if edges[0] is None:
        return []
    lo, hi = float(edges[0]), float(edges[1])
    width = (hi - lo) / bins or 1.0
    rows = records(
        cursor,
        """
        SELECT axis, relation, least(CAST(floor((margin - ?) / ?) AS INTEGER), ? - 1) AS bin,
               count(*) AS count, count(*) FILTER (strict) AS strict
        FROM store.relations GROUP BY ALL ORDER BY axis, relation, bin
        """,
        [lo, width, bins],
    )
    return [{**r, "lo": lo + r["bin"] * width, "hi": lo + (r["bin"] + 1) * width} for r in rows]


def depth_gaps(cursor: Any, width: float = DEPTH_GAP_BIN) -> list[dict[str, Any]]:
    """Observed |subject − object| disparity gaps of depth-axis rows, per relation, in bins
    ``[lo, hi)`` of ``width``."""
    rows = records(
        cursor,
        """
        WITH d AS (SELECT object_id, depth_median AS m FROM store.depth_medians)
        SELECT r.relation, CAST(floor(abs(ds.m - dobj.m) / ?) AS INTEGER) * ? AS lo,
               count(*) AS count, count(*) FILTER (r.strict) AS strict
        FROM store.relations r JOIN d ds ON ds.object_id = r.subject_id
        JOIN d dobj ON dobj.object_id = r.object_id
        WHERE r.axis = 'depth' GROUP BY ALL ORDER BY r.relation, lo
        """,
        [width, width],
    )
    return [{**r, "hi": r["lo"] + width} for r in rows]


def stages(cursor: Any) -> list[dict[str, Any]]:
    return records(
        cursor,
        "SELECT stage, count(*) FILTER (status = 'pending') AS pending, "
        "count(*) FILTER (status = 'claimed') AS claimed, "
        "count(*) FILTER (status = 'done') AS done, "
        "count(*) FILTER (status = 'failed') AS failed, "
        "count(*) FILTER (status = 'skipped') AS skipped "
        "FROM store.image_stages GROUP BY stage ORDER BY stage",
    )


def failures(cursor: Any, top: int = 10) -> list[dict[str, Any]]:
    return records(
        cursor,
        "SELECT stage, coalesce(last_error, '') AS error, count(*) AS images "
        "FROM store.image_stages WHERE status = 'failed' "
        "GROUP BY ALL ORDER BY images DESC, stage, error LIMIT ?",
        [top],
    )


def review(cursor: Any) -> dict[str, Any]:
    """Relations per review state, votes per verdict, reviewers."""
    states = records(
        cursor,
        "SELECT review_state, count(*) AS n FROM review_states "
        "WHERE target_type = 'relation' GROUP BY ALL ORDER BY review_state",
    )
    by_state = {r["review_state"]: int(r["n"]) for r in states}
    total = totals_of(cursor, "store.relations")
    # Items without votes or decisions have no review_states row: they are unreviewed too.
    by_state["unreviewed"] = total - sum(n for s, n in by_state.items() if s != "unreviewed")
    verdicts = records(
        cursor, "SELECT verdict, count(*) AS n FROM store.votes GROUP BY ALL ORDER BY verdict"
    )
    reviewers = totals_of(cursor, "(SELECT DISTINCT reviewer FROM store.votes)")
    return {
        "relations_by_state": by_state,
        "votes_by_verdict": {r["verdict"]: int(r["n"]) for r in verdicts},
        "reviewers": reviewers,
    }


def totals_of(cursor: Any, relation: str) -> int:
    return int(cursor.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0])


def retention(cursor: Any) -> list[dict[str, Any]]:
    """Per relation a prompt asks for: validations of its generations, and how many are strict."""
    return records(
        cursor,
        """
        WITH asked AS (
            SELECT id, unnest(from_json(relations, '[{"relation": "VARCHAR"}]')) AS r
            FROM store.prompts WHERE relations <> ''
        )
        SELECT a.r.relation AS relation, count(*) AS validations,
               count(*) FILTER (v.strict) AS retained,
               count(*) FILTER (v.strict) / count(*) AS retention
        FROM store.validations v JOIN store.generations g ON g.id = v.generation_id
        JOIN asked a ON a.id = g.prompt_id GROUP BY ALL ORDER BY relation
        """,
    )


Section = Callable[[Any], Any]


def overview(cursor: Any, served: Mapping[str, Section] | None = None) -> dict[str, Any]:
    """Every Overview number, as plain JSON-ready values; ``served`` replaces sections by name
    (the maintained aggregates, :mod:`esplora.analytics.aggregates`)."""
    sections: dict[str, Section] = {
        "totals": totals,
        "axes": axes,
        "relations": soft_vs_strict,
        "label_pairs": label_pairs,
        "claims": claims,
        "margin_histogram": margin_histogram,
        "depth_gaps": depth_gaps,
        "stages": stages,
        "failures": failures,
        "review": review,
        "retention": retention,
    }
    sections.update(served or {})
    return {name: section(cursor) for name, section in sections.items()}
