"""``store.relation_pairs``: every relation with its subject's and object's labels and the pair
score, kept on the mirror path so that Explore's label and score filters scan one table instead
of joining ``objects`` twice per candidate relation.

Method (maintained beside the Overview aggregates, :mod:`esplora.analytics.aggregates`):

1. **Rows.** One per relation whose subject and object exist (the inner join Explore's match
   phase used): the relation's filter columns (``id, image_id, relation, soft, strict,
   margin``), ``subject_label``, ``object_label`` and ``score`` (the smaller object score, a
   missing one counting 1.0), computed with the same expressions as the join.
2. **Built** in full when the aggregates are (first load, restart, a re-read input table).
3. **Updated** from each delta with the aggregates' *affected* relations (ids in the relations
   delta, rows whose subject or object is in the objects delta): the rows of those ids, in the
   old or the new state, are deleted and the new-state rows are inserted. Unaffected rows cannot
   have moved, so the table equals a rebuild exactly.
"""

from __future__ import annotations

from typing import Any

TABLE = "store.relation_pairs"
COLUMNS = ("id", "image_id", "relation", "soft", "strict", "margin")
SCORE = "least(coalesce(s.score, 1.0), coalesce(o.score, 1.0))"


def select(relations: str = "store.relations") -> str:
    """The rows of ``relation_pairs`` for the relation rows ``relations``."""
    columns = ", ".join(f"r.{c}" for c in COLUMNS)
    return (
        f"SELECT {columns}, s.label AS subject_label, o.label AS object_label, {SCORE} AS score "
        f"FROM {relations} r JOIN store.objects s ON s.id = r.subject_id "
        "JOIN store.objects o ON o.id = r.object_id"
    )


def build(connection: Any) -> None:
    """Compute the table from all relations."""
    connection.execute(f"CREATE OR REPLACE TABLE {TABLE} AS {select()}")


def update(connection: Any, old_rows: str, new_rows: str) -> None:
    """Replace the rows of the affected relations (``old_rows`` before the delta applied,
    ``new_rows`` after) with their new state."""
    connection.execute("BEGIN")
    try:
        connection.execute(
            f"DELETE FROM {TABLE} WHERE id IN "
            f"(SELECT id FROM {old_rows} UNION SELECT id FROM {new_rows})"
        )
        connection.execute(f"INSERT INTO {TABLE} {select(new_rows)}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def drop(connection: Any) -> None:
    """Remove the table (the store fell below the mirror threshold)."""
    connection.execute(f"DROP TABLE IF EXISTS {TABLE}")
