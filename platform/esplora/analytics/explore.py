"""Explore: the typed filter (``services.filters``' ``to_dict()``) as SQL, one page at a time.

Two phases, so a page never costs the full views:

1. **Match** on the raw mirrored tables, joining only what the filter and the order need
   (labels and scores → ``objects``; origin/excluded → ``images``; review state →
   ``review_states``). On the mirror path labels and scores are read from the maintained
   ``store.relation_pairs`` (:mod:`esplora.analytics.pairs`) instead: one scan, no join of
   ``objects`` (twice) per candidate relation; the small-store path keeps the join. With a
   ``relations`` filter each requested name becomes a reading of the canonical rows
   (``right_of`` = the inverse reading of ``left_of``), one ``SELECT`` per reading with subject
   and object swapped for the inverse. ``COUNT(*)`` of the matches, and
   ``ORDER BY … LIMIT/OFFSET`` for the page's ``(id, reading)`` keys.
2. **Fetch** the page's rows from the ``relations_both`` view, joined on those keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from esplora.analytics import pairs as pair_table
from esplora.analytics.overview import records
from esplora.analytics.views import INVERSE_COLUMNS
from esplora.core.relations import CANONICAL, INVERSE

MAX_PAGE_SIZE = 500
ORDERS = {"id", "image_id", "margin", "score", "relation", "subject_label", "object_label"}
Clause = tuple[str, list[Any]]
Columns = dict[str, str]
_CANONICAL = {r.value for r in CANONICAL.values()}
_NEEDS = {  # filter field or order column → the join it needs
    **dict.fromkeys(
        ["labels", "subject_label", "object_label", "score_min", "score_max", "score"], "objects"
    ),
    "origin": "images",
    "excluded": "images",
    "review_states": "review",
}
_JOINS = {
    "objects": "JOIN store.objects s ON s.id = r.subject_id "
    "JOIN store.objects o ON o.id = r.object_id",
    "images": "JOIN store.images i ON i.id = r.image_id "
    "LEFT JOIN store.image_samples im ON im.image_id = r.image_id",
    "review": "LEFT JOIN review_states rs ON rs.target_type = 'relation' AND rs.target_id = r.id",
}


def _columns(reading: str, pairs: bool) -> Columns:
    subject, obj = ("subject", "object") if reading == "canonical" else ("object", "subject")
    whens = " ".join(f"WHEN '{r.value}' THEN '{i.value}'" for r, i in INVERSE.items())
    return {
        "relation": "r.relation" if reading == "canonical" else f"CASE r.relation {whens} END",
        "subject_label": f"r.{subject}_label" if pairs else f"{subject[0]}.label",
        "object_label": f"r.{obj}_label" if pairs else f"{obj[0]}.label",
        "score": "r.score" if pairs else pair_table.SCORE,
        "origin": "i.origin",
        "excluded": "coalesce(im.excluded, FALSE)",
        "review_state": "coalesce(rs.review_state, 'unreviewed')",
        **{c: f"r.{c}" for c in ("id", "image_id", "margin", "strict", "soft")},
    }


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple | set | frozenset) else [value]


def _in(column: str, cast: str) -> Callable[[Any, Columns], Clause]:
    return lambda v, c: (f"list_contains(CAST(? AS {cast}[]), {c[column]})", [_as_list(v)])


def _cmp(column: str, op: str) -> Callable[[Any, Columns], Clause]:
    return lambda v, c: (f"{c[column]} {op} ?", [v])


def _labels(value: Any, c: Columns) -> Clause:
    labels = _as_list(value)
    sql = f"list_contains(CAST(? AS VARCHAR[]), {c['subject_label']})"
    return f"({sql} OR list_contains(CAST(? AS VARCHAR[]), {c['object_label']}))", [labels] * 2


def _source(value: Any, c: Columns) -> Clause:
    sql = (
        f"{c['image_id']} IN (SELECT s2.image_id FROM store.samples s2 JOIN store.sources n "
        "ON n.id = s2.source_id WHERE list_contains(CAST(? AS VARCHAR[]), n.name))"
    )
    return sql, [_as_list(value)]


FIELDS: dict[str, Callable[[Any, Columns], Clause]] = {
    "relations": _in("relation", "VARCHAR"),
    "labels": _labels,
    "subject_label": _cmp("subject_label", "="),
    "object_label": _cmp("object_label", "="),
    "strict": _cmp("strict", "="),
    "soft": _cmp("soft", "="),
    "margin_min": _cmp("margin", ">="),
    "margin_max": _cmp("margin", "<="),
    "score_min": _cmp("score", ">="),
    "score_max": _cmp("score", "<="),
    "origin": _in("origin", "VARCHAR"),
    "review_states": _in("review_state", "VARCHAR"),
    "source": _source,
    "excluded": _cmp("excluded", "="),
    "image_ids": _in("image_id", "BIGINT"),
}


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, list | tuple | set | frozenset) and not value)


def active(filter_dict: dict[str, Any]) -> dict[str, Any]:
    """The fields that filter something; unknown fields are refused."""
    unknown = sorted(k for k, v in filter_dict.items() if k not in FIELDS and not _empty(v))
    if unknown:
        raise ValueError(f"unknown filter fields {unknown}; known: {sorted(FIELDS)}")
    return {k: v for k, v in filter_dict.items() if k in FIELDS and not _empty(v)}


def parse_order(order: str) -> tuple[str, str]:
    """``(column, ASC|DESC)`` for ``order`` ('margin', '-score'…)."""
    column = order.removeprefix("-")
    if column not in ORDERS:
        raise ValueError(f"cannot order by {order!r}; choose one of {sorted(ORDERS)} (or -name)")
    return column, "DESC" if order.startswith("-") else "ASC"


def readings(filters: dict[str, Any]) -> list[str]:
    """Which readings can match: the inverse one only when a non-canonical name is asked for."""
    if "relations" not in filters:
        return ["canonical"]
    names = {str(n) for n in _as_list(filters["relations"])}
    wanted = ["canonical"] if names & _CANONICAL else []
    return wanted + (["inverse"] if names - _CANONICAL else [])


def match_sql(filters: dict[str, Any], order_column: str, pairs: bool = False) -> Clause:
    """The phase-1 query: ``(id, reading, sort_key)`` of every matching row; with ``pairs``,
    labels and scores come from ``store.relation_pairs`` (the mirror path maintains it)."""
    needs = {_NEEDS[f] for f in [*filters, order_column] if f in _NEEDS}
    pairs = pairs and "objects" in needs
    table = pair_table.TABLE if pairs else "store.relations"
    joins = " ".join(_JOINS[n] for n in sorted(needs - ({"objects"} if pairs else set())))
    parts, params = [], []
    for reading in readings(filters):
        cols = _columns(reading, pairs)
        clauses = [FIELDS[name](value, cols) for name, value in filters.items()]
        where = " AND ".join(sql for sql, _ in clauses) or "TRUE"
        params += [p for _, values in clauses for p in values]
        parts.append(
            f"SELECT r.id, '{reading}' AS reading, {cols[order_column]} AS sort_key "
            f"FROM {table} r {joins} WHERE {where}"
        )
    return " UNION ALL ".join(parts), params


# Phase 2: the page's rows with every relations_both column, each join cut to the page's keys.
_FETCH = f"""
pr AS (SELECT r.*, p.reading, p.sort_key FROM store.relations r JOIN page p ON p.id = r.id),
ob AS (
    SELECT o.id, o.label, o.score, d.depth_median FROM store.objects o
    LEFT JOIN store.depth_medians d ON d.object_id = o.id
    WHERE o.id IN (SELECT subject_id FROM pr UNION ALL SELECT object_id FROM pr)
),
im AS (
    SELECT i.id, i.origin, coalesce(x.excluded, FALSE) AS excluded FROM store.images i
    LEFT JOIN store.image_samples x ON x.image_id = i.id
    WHERE i.id IN (SELECT image_id FROM pr)
),
rv AS (
    SELECT * FROM review_states
    WHERE target_type = 'relation' AND target_id IN (SELECT id FROM pr)
),
canon AS (
    SELECT pr.id, pr.image_id, pr.subject_id, pr.object_id, s.label AS subject_label,
           o.label AS object_label, pr.axis, pr.relation, pr.soft, pr.strict, pr.margin,
           pr.rule, pr.tau, pr.depth_gap, pr.producer, s.score AS subject_score,
           o.score AS object_score,
           least(coalesce(s.score, 1.0), coalesce(o.score, 1.0)) AS score,
           abs(s.depth_median - o.depth_median) AS observed_depth_gap, im.origin, im.excluded,
           coalesce(rv.votes, 0) AS votes, coalesce(rv.review_state, 'unreviewed') AS review_state,
           rv.human_ok, pr.reading, pr.sort_key
    FROM pr JOIN ob s ON s.id = pr.subject_id JOIN ob o ON o.id = pr.object_id
    JOIN im ON im.id = pr.image_id LEFT JOIN rv ON rv.target_id = pr.id
)
SELECT * EXCLUDE (sort_key), sort_key FROM canon WHERE reading = 'canonical'
UNION ALL
SELECT {INVERSE_COLUMNS}, reading, sort_key FROM canon WHERE reading = 'inverse'
"""


def explore(
    cursor: Any,
    filter_dict: dict[str, Any],
    *,
    page: int,
    page_size: int,
    order: str,
    pairs: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """``(rows of page ``page``, total matches)``; pages count from 0. ``pairs``: match labels
    and scores on ``store.relation_pairs`` (only where it is maintained: the mirror path)."""
    if page < 0 or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page must be ≥ 0 and page_size in 1..{MAX_PAGE_SIZE}")
    filters = active(filter_dict)
    column, direction = parse_order(order)
    matches, params = match_sql(filters, column, pairs)
    total = int(cursor.execute(f"SELECT count(*) FROM ({matches})", params).fetchall()[0][0])
    sql = f"""
        WITH page AS (
            SELECT id, reading, sort_key FROM ({matches})
            ORDER BY sort_key {direction} NULLS LAST, id, reading LIMIT ? OFFSET ?
        ), {_FETCH}
        ORDER BY sort_key {direction} NULLS LAST, id, reading
    """
    rows = records(cursor, sql, [*params, page_size, page * page_size])
    for row in rows:
        del row["sort_key"]
    return rows, total
