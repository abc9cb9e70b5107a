"""The documented, versioned DuckDB views that the Overview, Explore, the SQL box and
``esplora query`` read. Raw store tables sit in the DuckDB schema ``store``; the views are in
``main``. ``docs/views.md`` is generated from these definitions (:func:`write_reference`).

Bump :data:`VIEWS_VERSION` whenever a view loses or renames a column or changes a meaning;
adding a column is compatible. The version is queryable: ``SELECT * FROM esplora_views``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esplora.core.relations import INVERSE

VIEWS_VERSION = 2
# Votes needed before a majority decides (esplora.services.review_state.DEFAULT_OVERLAP).
REVIEW_OVERLAP = 2
STORE_SCHEMA = "store"


@dataclass(frozen=True, slots=True)
class View:
    """A view: its name, what a row is, its columns (name → meaning) and its SQL."""

    name: str
    row: str
    columns: dict[str, str]
    sql: str

    def create_sql(self) -> str:
        return f"CREATE OR REPLACE VIEW {self.name} AS {self.sql}"


def _inverse_case(column: str) -> str:
    whens = " ".join(f"WHEN '{r.value}' THEN '{i.value}'" for r, i in INVERSE.items())
    return f"CASE {column} {whens} ELSE {column} END"


_REVIEW_STATES = View(
    "review_states",
    "one reviewed item (any target type): its current decision and its votes",
    {
        "target_type": "sample, object, relation, claim or validation",
        "target_id": "the reviewed row's id",
        "decision": "the current (not superseded) override's decision, else NULL",
        "votes": "number of votes",
        "accepts": "votes that accept",
        "rejects": "votes that reject, flip or relabel (the machine value is wrong)",
        "review_state": "unreviewed, accepted, rejected, changed or disputed: the rule of "
        "esplora.services.review_state.effective_state (an active decision wins; else with at "
        f"least {REVIEW_OVERLAP} votes a strict majority of one verdict and proposal decides, "
        "otherwise disputed; fewer votes: unreviewed)",
        "human_ok": "TRUE/FALSE: the decision, else the vote majority; NULL on a tie",
    },
    f"""
    WITH decided AS (
        SELECT target_type, target_id, arg_max(decision, id) AS decision
        FROM store.overrides WHERE superseded_by IS NULL GROUP BY ALL
    ), choices AS (
        SELECT target_type, target_id, verdict, CAST(proposal AS VARCHAR) AS proposal,
               count(*) AS n
        FROM store.votes GROUP BY ALL
    ), voted AS (
        SELECT target_type, target_id, sum(n) AS votes,
               coalesce(sum(n) FILTER (verdict = 'accept'), 0) AS accepts,
               coalesce(sum(n) FILTER (verdict IN ('reject', 'flip', 'relabel')), 0) AS rejects,
               arg_max(verdict, n) AS top_verdict, max(n) AS top_n
        FROM choices GROUP BY ALL
    )
    SELECT target_type, target_id, d.decision,
           coalesce(v.votes, 0) AS votes, coalesce(v.accepts, 0) AS accepts,
           coalesce(v.rejects, 0) AS rejects,
           CASE WHEN d.decision = 'accept' THEN 'accepted'
                WHEN d.decision = 'reject' THEN 'rejected'
                WHEN d.decision IS NOT NULL THEN 'changed'
                WHEN coalesce(v.votes, 0) < {REVIEW_OVERLAP} THEN 'unreviewed'
                WHEN v.top_n * 2 > v.votes THEN
                    CASE v.top_verdict WHEN 'accept' THEN 'accepted'
                                       WHEN 'reject' THEN 'rejected' ELSE 'changed' END
                ELSE 'disputed' END AS review_state,
           CASE WHEN d.decision = 'accept' THEN TRUE
                WHEN d.decision IN ('reject', 'flip', 'relabel') THEN FALSE
                WHEN v.accepts > v.rejects THEN TRUE
                WHEN v.rejects > v.accepts THEN FALSE END AS human_ok
    FROM decided d FULL OUTER JOIN voted v USING (target_type, target_id)
    """,
)

_IMAGES = View(
    "images",
    "one distinct image content",
    {
        "id": "image id",
        "uri": "where the image file is",
        "width": "pixels after EXIF orientation",
        "height": "pixels after EXIF orientation",
        "origin": "natural or synthetic",
        "near_duplicate_of": "id of the image this one nearly duplicates, else NULL",
        "depth_map_uri": "the stored depth map, else NULL",
        "samples": "number of samples (image-text pairs) of this image",
        "excluded": "TRUE when the image has samples and every one is excluded",
    },
    """
    SELECT i.id, i.uri, i.width, i.height, i.origin, i.near_duplicate_of, i.depth_map_uri,
           coalesce(s.samples, 0) AS samples, coalesce(s.excluded, FALSE) AS excluded
    FROM store.images i LEFT JOIN store.image_samples s ON s.image_id = i.id
    """,
)

_SAMPLES = View(
    "samples",
    "one image-text pair as its source gave it",
    {
        "id": "sample id",
        "image_id": "its image",
        "source": "the source's name",
        "source_key": "the item's key in its source",
        "caption": "the caption (plain text: render it inert)",
        "excluded": "excluded from training",
        "exclusion_reason": "why, else NULL",
        "review_state": "unreviewed, accepted, rejected, changed or disputed (see review_states)",
    },
    """
    SELECT s.id, s.image_id, src.name AS source, s.source_key, s.caption, s.excluded,
           s.exclusion_reason, coalesce(r.review_state, 'unreviewed') AS review_state
    FROM store.samples s
    LEFT JOIN store.sources src ON src.id = s.source_id
    LEFT JOIN review_states r ON r.target_type = 'sample' AND r.target_id = s.id
    """,
)

_OBJECTS = View(
    "objects",
    "one box on an image",
    {
        "id": "object id",
        "image_id": "its image",
        "label": "canonical label",
        "phrase": "the text the detector was queried with",
        "x0": "box left (pixels)",
        "y0": "box top",
        "x1": "box right",
        "y1": "box bottom",
        "score": "detector confidence; NULL for annotations and human boxes",
        "producer_kind": "model, annotation or human",
        "producer": "model id + version, dataset, or reviewer",
        "depth_median": "median normalised disparity in the box (larger = closer), else NULL",
    },
    """
    SELECT o.id, o.image_id, o.label, o.phrase, o.x0, o.y0, o.x1, o.y1, o.score,
           o.producer_kind, o.producer, d.depth_median
    FROM store.objects o LEFT JOIN store.depth_medians d ON d.object_id = o.id
    """,
)

_RELATION_COLUMNS = {
    "id": "relation row id (both readings of a pair share it)",
    "image_id": "its image",
    "subject_id": "subject object id (canonical: the box that is left, above or nearer)",
    "object_id": "object object id",
    "subject_label": "subject's label",
    "object_label": "object's label",
    "axis": "horizontal, vertical or depth",
    "relation": "left_of, above or in_front_of (canonical direction)",
    "soft": "the direction holds",
    "strict": "the ESPLoRA τ-strict rule holds",
    "margin": "signed distance to the strict boundary",
    "rule": "the rule that produced the row",
    "tau": "τ used",
    "depth_gap": "depth gap g used",
    "producer": "the relate stage's producer",
    "subject_score": "subject's detector score (NULL: annotation/human)",
    "object_score": "object's detector score",
    "score": "pair score: the smaller score, an annotation counting as 1",
    "observed_depth_gap": "|subject − object| median disparity when both are known",
    "origin": "the image's origin",
    "excluded": "the image is excluded (see images.excluded)",
    "votes": "votes on this relation",
    "review_state": "unreviewed, accepted, rejected, changed or disputed (see review_states)",
    "human_ok": "TRUE/FALSE from the decision or vote majority, else NULL",
}

_RELATIONS = View(
    "relations",
    "one object pair on one axis, in canonical direction (the inverse is relations_both)",
    _RELATION_COLUMNS,
    """
    SELECT r.id, r.image_id, r.subject_id, r.object_id, s.label AS subject_label,
           o.label AS object_label, r.axis, r.relation, r.soft, r.strict, r.margin, r.rule,
           r.tau, r.depth_gap, r.producer, s.score AS subject_score, o.score AS object_score,
           least(coalesce(s.score, 1.0), coalesce(o.score, 1.0)) AS score,
           abs(s.depth_median - o.depth_median) AS observed_depth_gap,
           i.origin, i.excluded, coalesce(rs.votes, 0) AS votes,
           coalesce(rs.review_state, 'unreviewed') AS review_state, rs.human_ok
    FROM store.relations r
    JOIN objects s ON s.id = r.subject_id
    JOIN objects o ON o.id = r.object_id
    JOIN images i ON i.id = r.image_id
    LEFT JOIN review_states rs ON rs.target_type = 'relation' AND rs.target_id = r.id
    """,
)

INVERSE_COLUMNS = (
    "id, image_id, object_id AS subject_id, subject_id AS object_id, "
    "object_label AS subject_label, subject_label AS object_label, axis, "
    f"{_inverse_case('relation')} AS relation, soft, strict, margin, rule, tau, depth_gap, "
    "producer, object_score AS subject_score, subject_score AS object_score, score, "
    "observed_depth_gap, origin, excluded, votes, review_state, human_ok"
)
_RELATIONS_BOTH = View(
    "relations_both",
    "each relation row twice: as stored and in its inverse reading (B right_of A)",
    {**_RELATION_COLUMNS, "reading": "'canonical' or 'inverse'"},
    f"""
    SELECT *, 'canonical' AS reading FROM relations
    UNION ALL
    SELECT {INVERSE_COLUMNS}, 'inverse' AS reading FROM relations
    """,
)

_CLAIMS = View(
    "claims",
    "one relation a caption states, in the caption's direction",
    {
        "id": "claim id",
        "sample_id": "its sample",
        "image_id": "the sample's image",
        "clause_index": "which clause of the caption",
        "clause_text": "the clause (plain text)",
        "relation": "the claimed relation",
        "phrase": "how the caption says it",
        "subject_label": "claimed subject label",
        "object_label": "claimed object label",
        "geometric_relation_id": "the relation row that judges it, else NULL",
        "agreement": "confirmed, contradicted or unresolved",
        "review_state": "unreviewed, accepted, rejected, changed or disputed (see review_states)",
    },
    """
    SELECT c.id, c.sample_id, s.image_id, c.clause_index, c.clause_text, c.relation, c.phrase,
           c.subject_label, c.object_label, c.geometric_relation_id, c.agreement,
           coalesce(r.review_state, 'unreviewed') AS review_state
    FROM store.claims c JOIN store.samples s ON s.id = c.sample_id
    LEFT JOIN review_states r ON r.target_type = 'claim' AND r.target_id = c.id
    """,
)

_VOTES = View(
    "votes",
    "one reviewer's verdict on one item (append-only)",
    {
        "id": "vote id (increases with time)",
        "reviewer": "who voted",
        "target_type": "sample, object, relation, claim or validation",
        "target_id": "the item's id",
        "verdict": "accept, reject, flip, relabel or choose_detection",
        "proposal": "the proposed change (JSON text)",
        "note": "free text, else NULL",
    },
    "SELECT id, reviewer, target_type, target_id, verdict, proposal, note FROM store.votes",
)

# Aggregates kept as tables, rebuilt by the engine when their input table changed.
DERIVED: dict[str, tuple[str, str]] = {
    "image_samples": (
        "samples",
        "SELECT image_id, count(*) AS samples, bool_and(excluded) AS excluded "
        "FROM store.samples GROUP BY image_id",
    ),
    "depth_medians": (
        "object_depths",
        "SELECT object_id, avg(median) AS depth_median FROM store.object_depths GROUP BY object_id",
    ),
}


def create_derived(connection: Any, changed: set[str]) -> None:
    """(Re)build the derived aggregate tables whose input is in ``changed``."""
    for name, (source, sql) in DERIVED.items():
        if source in changed:
            connection.execute(f"CREATE OR REPLACE TABLE {STORE_SCHEMA}.{name} AS {sql}")


VIEWS: list[View] = [
    _REVIEW_STATES,
    _IMAGES,
    _SAMPLES,
    _OBJECTS,
    _RELATIONS,
    _RELATIONS_BOTH,
    _CLAIMS,
    _VOTES,
]  # in dependency order


def create_views(connection: Any) -> None:
    """Create (or replace) every view and the ``esplora_views`` catalogue on ``connection``."""
    for view in VIEWS:
        connection.execute(view.create_sql())
    rows = ", ".join(
        f"('{v.name}', {VIEWS_VERSION}, '{v.row.replace(chr(39), chr(39) * 2)}')" for v in VIEWS
    )
    connection.execute(
        "CREATE OR REPLACE VIEW esplora_views AS SELECT * FROM "
        f"(VALUES {rows}) AS t(name, version, row_is)"
    )


def _view_markdown(view: View) -> list[str]:
    lines = [f"## `{view.name}`", "", f"One row: {view.row}.", "", "| column | meaning |"]
    lines.append("|---|---|")
    lines += [f"| `{c}` | {m} |" for c, m in view.columns.items()]
    sql = "\n".join(
        line[4:] if line.startswith("    ") else line for line in view.sql.strip("\n").splitlines()
    )
    return [*lines, "", "```sql", sql.strip(), "```", ""]


def reference_markdown() -> str:
    """``docs/views.md``: every view, its columns and its SQL."""
    lines = [
        "# Analytics views",
        "",
        "<!-- Generated by esplora.analytics.views.write_reference(); do not edit. -->",
        "",
        f"Views version **{VIEWS_VERSION}** (`SELECT * FROM esplora_views`). The SQL box and",
        "`esplora query` accept one read-only `SELECT`/`WITH`/`EXPLAIN` over these views",
        "(raw mirrored tables are in the `store` schema, with the aggregates `image_samples` and",
        "`depth_medians`; on the mirror path also the Overview's maintained aggregates",
        "`agg_relations`, `agg_label_pairs`, `agg_margin_bins`, `agg_margin_edges` and",
        "`agg_depth_gaps`, see `esplora.analytics.aggregates`, and Explore's per-relation labels",
        "`relation_pairs`, see `esplora.analytics.pairs`). Booleans are `TRUE`/`FALSE`.",
        "",
    ]
    for view in VIEWS:
        lines += _view_markdown(view)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_reference(path: Path) -> None:
    """Write :func:`reference_markdown` to ``path`` (``docs/views.md``)."""
    path.write_text(reference_markdown(), encoding="utf-8")
