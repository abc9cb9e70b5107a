"""Maintained Overview aggregates: small tables over ``store.relations`` kept up to date from the
mirror's deltas, so the Overview of a large store reads a few thousand rows instead of scanning
every relation.

Method (mirror path only; small stores recompute the Overview, :mod:`esplora.analytics.overview`):

1. **Tables** (schema ``store``): ``agg_relations`` (axis × relation × soft × strict: count and
   the exact margin sum), ``agg_label_pairs`` (unordered label pair × axis × relation: pairs,
   forward, backward, strict), ``agg_margin_bins`` (axis × relation × margin bin: count, strict,
   with the bin edges in ``agg_margin_edges``) and ``agg_depth_gaps`` (relation × depth-gap bin).
2. **Scope.** A refresh whose deltas touch ``relations``, ``objects`` or ``object_depths``
   collects the *affected* relations: ids in the relations delta, or rows whose subject or object
   is in the objects / depths delta (a relabel or a new depth moves all of their pairs).
3. **Subtract, apply, add.** Before the deltas are applied, the affected rows are copied (one
   scan) and their contributions (the old state) stored negated; after the upsert (and
   ``depth_medians``), the same predicate copies the new rows, whose contributions are added;
   groups that reach zero are dropped. Unchanged rows are in neither set, so the sums equal a
   full recomputation exactly: counts are integers and the margin sum is a ``DECIMAL`` (every
   margin rounded to 1e-12 first).
4. **Margin edges.** The histogram's edges are the smallest and largest margin of all rows. When
   a new margin falls outside them or an old one sat on one, they are read again (one min/max
   scan); when they moved, the bins are rebuilt.
5. **Rebuild** from scratch when the aggregates are new, after a restart (the mirror restores
   the tables, not the aggregates) and when an input table was re-read in full (deletes).

Explore's per-relation labels and scores (:mod:`esplora.analytics.pairs`) are kept with the
same scope: built with the aggregates, updated from the same affected rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from esplora.analytics import overview as overview_queries
from esplora.analytics import pairs
from esplora.analytics.overview import (
    DEPTH_GAP_BIN,
    HISTOGRAM_BINS,
    MARGIN_DECIMAL,
    TOP_LABEL_PAIRS,
    records,
)

INPUTS = frozenset({"relations", "objects", "object_depths"})
_RELATION_KEYS = "_agg_relation_keys"
_OBJECT_KEYS = "_agg_object_keys"
_OLD_ROWS, _NEW_ROWS = "_agg_old_rows", "_agg_new_rows"


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One maintained table: key and value columns (the first value is the row count), and the
    grouped ``SELECT`` of its contributions over the relation rows ``{relations} r``."""

    name: str
    keys: tuple[str, ...]
    values: tuple[str, ...]
    sql: str

    def select(self, relations: str = "store.relations") -> str:
        return self.sql.format(relations=relations, decimal=MARGIN_DECIMAL)

    def params(self, edges: tuple[float, float] | None) -> list[Any]:
        if self.name == "agg_margin_bins":
            lo, hi = edges or (0.0, 0.0)
            return [lo, margin_width(lo, hi), HISTOGRAM_BINS]
        return [DEPTH_GAP_BIN] if self.name == "agg_depth_gaps" else []


AGGREGATES = [
    Aggregate(
        "agg_relations", ("axis", "relation", "soft", "strict"), ("n", "margin_sum"),
        "SELECT r.axis, r.relation, r.soft, r.strict, count(*) AS n, "
        "sum(CAST(r.margin AS {decimal})) AS margin_sum "
        "FROM {relations} r GROUP BY ALL",
    ),
    Aggregate(
        "agg_label_pairs", ("label_a", "label_b", "axis", "relation"),
        ("pairs", "forward", "backward", "strict"),
        "SELECT least(s.label, o.label) AS label_a, greatest(s.label, o.label) AS label_b, "
        "r.axis, r.relation, count(*) AS pairs, count(*) FILTER (s.label <= o.label) AS forward, "
        "count(*) FILTER (s.label > o.label) AS backward, count(*) FILTER (r.strict) AS strict "
        "FROM {relations} r JOIN store.objects s ON s.id = r.subject_id "
        "JOIN store.objects o ON o.id = r.object_id GROUP BY ALL",
    ),
    Aggregate(
        "agg_margin_bins", ("axis", "relation", "bin"), ("count", "strict"),
        "SELECT r.axis, r.relation, "
        "least(CAST(floor((r.margin - ?) / ?) AS INTEGER), ? - 1) AS bin, count(*) AS count, "
        "count(*) FILTER (r.strict) AS strict FROM {relations} r GROUP BY ALL",
    ),
    Aggregate(
        "agg_depth_gaps", ("relation", "bin"), ("count", "strict"),
        "SELECT r.relation, CAST(floor(abs(ds.depth_median - dobj.depth_median) / ?) AS INTEGER)"
        " AS bin, count(*) AS count, count(*) FILTER (r.strict) AS strict "
        "FROM {relations} r JOIN store.depth_medians ds ON ds.object_id = r.subject_id "
        "JOIN store.depth_medians dobj ON dobj.object_id = r.object_id "
        "WHERE r.axis = 'depth' GROUP BY ALL",
    ),
]  # fmt: skip
_MARGIN_BINS = AGGREGATES[2]


def margin_width(lo: float, hi: float) -> float:
    """The histogram's bin width (as :func:`esplora.analytics.overview.margin_histogram`)."""
    return (hi - lo) / HISTOGRAM_BINS or 1.0


def edges(connection: Any) -> tuple[float, float] | None:
    """The stored margin edges ``(lo, hi)``, or None when there are no relations."""
    rows = connection.execute("SELECT lo, hi FROM store.agg_margin_edges").fetchall()
    return (float(rows[0][0]), float(rows[0][1])) if rows else None


def _current_edges(connection: Any) -> tuple[float, float] | None:
    row = connection.execute("SELECT min(margin), max(margin) FROM store.relations").fetchall()[0]
    return None if row[0] is None else (float(row[0]), float(row[1]))


def _build(connection: Any, aggregate: Aggregate, bounds: tuple[float, float] | None) -> None:
    connection.execute(
        f"CREATE OR REPLACE TABLE store.{aggregate.name} AS {aggregate.select()}",
        aggregate.params(bounds),
    )


def _save_edges(connection: Any, bounds: tuple[float, float] | None) -> None:
    connection.execute("CREATE OR REPLACE TABLE store.agg_margin_edges (lo DOUBLE, hi DOUBLE)")
    if bounds is not None:
        connection.execute("INSERT INTO store.agg_margin_edges VALUES (?, ?)", list(bounds))


def rebuild(connection: Any) -> None:
    """Compute every aggregate from all rows (a full scan of ``store.relations``)."""
    bounds = _current_edges(connection)
    _save_edges(connection, bounds)
    for aggregate in AGGREGATES:
        _build(connection, aggregate, bounds)
    pairs.build(connection)
    discard(connection)


def drop(connection: Any) -> None:
    """Remove the aggregate tables (the store fell below the mirror threshold)."""
    for name in [*(a.name for a in AGGREGATES), "agg_margin_edges"]:
        connection.execute(f"DROP TABLE IF EXISTS store.{name}")
    pairs.drop(connection)
    discard(connection)


def _rows(connection: Any, name: str) -> None:
    """Temp table ``name``: the relation rows the delta keys touch, in the current state."""
    parts = [f"id IN (SELECT id FROM {_RELATION_KEYS})"]
    objects = f"(SELECT id FROM {_OBJECT_KEYS})"
    if connection.execute(f"SELECT count(*) FROM {_OBJECT_KEYS}").fetchall()[0][0]:
        parts += [f"subject_id IN {objects}", f"object_id IN {objects}"]
    connection.execute(
        f"CREATE OR REPLACE TEMP TABLE {name} AS "
        f"SELECT * FROM store.relations WHERE {' OR '.join(parts)}"
    )


def _keys(deltas: dict[str, pa.Table], table: str, column: str) -> pa.Array:
    if table not in deltas:
        return pa.array([], pa.int64())
    return deltas[table][column].combine_chunks().cast(pa.int64())


def begin(connection: Any, deltas: dict[str, pa.Table]) -> None:
    """Store the negated contributions of the relations ``deltas`` touch, before they apply."""
    objects = pa.concat_arrays(
        [_keys(deltas, "objects", "id"), _keys(deltas, "object_depths", "object_id")]
    )
    connection.register(_RELATION_KEYS, pa.table({"id": _keys(deltas, "relations", "id")}))
    connection.register(_OBJECT_KEYS, pa.table({"id": objects}))
    _rows(connection, _OLD_ROWS)
    bounds = edges(connection)
    for aggregate in AGGREGATES:
        columns = [*aggregate.keys, *(f"-{v} AS {v}" for v in aggregate.values)]
        connection.execute(
            f"CREATE OR REPLACE TEMP TABLE _old_{aggregate.name} AS "
            f"SELECT {', '.join(columns)} FROM ({aggregate.select(_OLD_ROWS)})",
            aggregate.params(bounds),
        )


def _merge_sql(aggregate: Aggregate) -> str:
    keys = ", ".join(aggregate.keys)
    kinds = {v: MARGIN_DECIMAL if v == "margin_sum" else "BIGINT" for v in aggregate.values}
    sums = ", ".join(f"CAST(sum({v}) AS {kind}) AS {v}" for v, kind in kinds.items())
    new = aggregate.select(_NEW_ROWS)
    return (
        f"CREATE OR REPLACE TABLE store.{aggregate.name} AS SELECT {keys}, {sums} FROM ("
        f"SELECT * FROM store.{aggregate.name} UNION ALL SELECT * FROM _old_{aggregate.name} "
        f"UNION ALL SELECT * FROM ({new})) GROUP BY {keys} HAVING sum({aggregate.values[0]}) <> 0"
    )


def finish(connection: Any) -> None:
    """Add the touched relations' contributions in the new state (after :func:`begin` and the
    upserts); rebuild the margin bins when the margin edges moved. Update Explore's pairs."""
    _rows(connection, _NEW_ROWS)
    pairs.update(connection, _OLD_ROWS, _NEW_ROWS)
    bounds = edges(connection)
    for aggregate in AGGREGATES:
        connection.execute(_merge_sql(aggregate), aggregate.params(bounds))
    current = bounds if _edges_kept(connection, bounds) else _current_edges(connection)
    if current != bounds:
        _save_edges(connection, current)
        _build(connection, _MARGIN_BINS, current)
    discard(connection)


def _edges_kept(connection: Any, bounds: tuple[float, float] | None) -> bool:
    """True when the margin edges cannot have moved: every new margin lies within them and no
    old row sat on one (else they are read again)."""
    if bounds is None:
        return False
    new = connection.execute(f"SELECT min(margin), max(margin) FROM {_NEW_ROWS}").fetchall()[0]
    on_edge = connection.execute(
        f"SELECT count(*) FROM {_OLD_ROWS} WHERE margin IN (?, ?)", list(bounds)
    ).fetchall()[0][0]
    return (new[0] is None or bounds[0] <= new[0] <= new[1] <= bounds[1]) and not on_edge


def discard(connection: Any) -> None:
    """Forget the delta keys and the stored old contributions."""
    for name in (_RELATION_KEYS, _OBJECT_KEYS):
        connection.unregister(name)
    for name in [_OLD_ROWS, _NEW_ROWS, *(f"_old_{a.name}" for a in AGGREGATES)]:
        connection.execute(f"DROP TABLE IF EXISTS temp.main.{name}")


# -- the Overview's relation sections, read from the aggregates ---------------------------------


def axes(cursor: Any) -> list[dict[str, Any]]:
    return records(
        cursor,
        "SELECT axis, CAST(sum(n) AS BIGINT) AS pairs, "
        "CAST(coalesce(sum(n) FILTER (strict), 0) AS BIGINT) AS strict "
        "FROM store.agg_relations GROUP BY axis ORDER BY axis",
    )


def soft_vs_strict(cursor: Any) -> list[dict[str, Any]]:
    def n(condition: str) -> str:
        return f"CAST(coalesce(sum(n) FILTER ({condition}), 0) AS BIGINT)"

    return records(
        cursor,
        f"SELECT relation, {n('soft')} AS soft, {n('strict')} AS strict, "
        f"{n('soft AND NOT strict')} AS soft_only, "
        "CAST(sum(margin_sum) AS DOUBLE) / CAST(sum(n) AS BIGINT) AS mean_margin "
        "FROM store.agg_relations GROUP BY relation ORDER BY relation",
    )


def label_pairs(cursor: Any, top: int = TOP_LABEL_PAIRS) -> list[dict[str, Any]]:
    return records(
        cursor,
        "SELECT * FROM (SELECT label_a, label_b, axis, min(relation) AS relation, "
        + ", ".join(f"CAST(sum({v}) AS BIGINT) AS {v}" for v in AGGREGATES[1].values)
        + " FROM store.agg_label_pairs GROUP BY label_a, label_b, axis) "
        "ORDER BY pairs DESC, label_a, label_b, axis LIMIT ?",
        [top],
    )


def margin_histogram(cursor: Any) -> list[dict[str, Any]]:
    bounds = edges(cursor)
    if bounds is None:
        return []
    lo, width = bounds[0], margin_width(*bounds)
    rows = records(
        cursor,
        "SELECT axis, relation, bin, count, strict FROM store.agg_margin_bins "
        "ORDER BY axis, relation, bin",
    )
    return [{**r, "lo": lo + r["bin"] * width, "hi": lo + (r["bin"] + 1) * width} for r in rows]


def depth_gaps(cursor: Any) -> list[dict[str, Any]]:
    rows = records(
        cursor,
        "SELECT relation, bin * ? AS lo, count, strict FROM store.agg_depth_gaps "
        "ORDER BY relation, bin",
        [DEPTH_GAP_BIN],
    )
    return [{**r, "hi": r["lo"] + DEPTH_GAP_BIN} for r in rows]


SERVED = {
    "axes": axes,
    "relations": soft_vs_strict,
    "label_pairs": label_pairs,
    "margin_histogram": margin_histogram,
    "depth_gaps": depth_gaps,
}


def overview(cursor: Any) -> dict[str, Any]:
    """The Overview with its relation sections read from the aggregates (the rest as usual)."""
    return overview_queries.overview(cursor, SERVED)
