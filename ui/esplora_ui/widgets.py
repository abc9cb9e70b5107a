"""Shared page pieces: an item (image + caption + relations) and the filter widgets."""

from __future__ import annotations

from typing import Any

import streamlit as st

from esplora.services.items import ItemView, RelationRow
from esplora_ui import components, data

RELATIONS = ["left_of", "right_of", "above", "below", "in_front_of", "behind"]
STATES = ["unreviewed", "accepted", "rejected", "changed", "disputed"]
# The Explore page's current filter as canonical JSON, kept outside its widgets' state (which
# Streamlit drops on other pages) so the Snapshots page can freeze exactly what Explore shows.
EXPLORE_FILTER = "explore_filter_json"


def show_item(view: ItemView, *, focus: int | None = None, key: str = "item") -> None:
    """The image with boxes, arrows (only ``focus`` when given) and the depth toggle."""
    depth = st.toggle("Depth overlay", key=f"{key}_depth")
    relations = [r for r in view.relations if focus is None or r.id == focus]
    components.show_image(
        data.artefact(view.image_uri),
        [components.Box(o.id, o.label, o.x0, o.y0, o.x1, o.y1) for o in view.objects],
        [
            components.Arrow(r.subject_id, r.object_id, r.effective_relation, r.effective_strict)
            for r in relations
        ],
        depth_path=data.artefact(view.depth_uri),
        show_depth=depth,
    )


def relation_table(relations: list[RelationRow]) -> list[dict[str, Any]]:
    """Rows for a dataframe: machine, human and effective values of each relation."""
    return [
        {
            "id": r.id,
            "subject": f"{r.subject_label} #{r.subject_id}",
            "relation": r.relation,
            "object": f"{r.object_label} #{r.object_id}",
            "soft": r.soft,
            "strict": r.strict,
            "margin": round(r.margin, 3),
            "human": r.human or "",
            "effective": f"{r.effective_relation} ({'strict' if r.effective_strict else 'soft'})",
            "review state": r.review_state,
            "version": r.version,
        }
        for r in relations
    ]


def object_table(view: ItemView) -> list[dict[str, Any]]:
    """Rows for a dataframe: the item's boxes."""
    return [
        {
            "id": o.id,
            "label": o.label,
            "box": f"{o.x0:.0f},{o.y0:.0f},{o.x1:.0f},{o.y1:.0f}",
            "score": o.score,
            "producer": o.producer,
        }
        for o in view.objects
    ]


def failed_stages(view: ItemView) -> None:
    """A placeholder line for every failed stage of the item."""
    for stage in view.stages:
        if stage["status"] == "failed":
            st.warning(f"Stage {stage['stage']} failed after {stage['attempts']} attempt(s).")
            st.code(str(stage["error"]) or "(no error recorded)", language=None)


def filter_widgets(key: str) -> dict[str, Any]:
    """The typed filter's fields as widgets; returns the raw values."""
    cols = st.columns(4)
    values: dict[str, Any] = {
        "relations": cols[0].multiselect("Relations", RELATIONS, key=f"{key}_relations"),
        "labels": _split(cols[1].text_input("Labels (comma-separated)", key=f"{key}_labels")),
        "review_states": cols[2].multiselect("Review state", STATES, key=f"{key}_states"),
        "source": cols[3].text_input("Source name", key=f"{key}_source") or None,
    }
    cols = st.columns(4)
    values["strict"] = _tristate(cols[0], "Strict", f"{key}_strict")
    values["soft"] = _tristate(cols[1], "Soft", f"{key}_soft")
    values["excluded"] = _tristate(cols[2], "Excluded", f"{key}_excluded")
    origin = cols[3].selectbox("Origin", ["any", "natural", "synthetic"], key=f"{key}_origin")
    values["origin"] = None if origin == "any" else origin
    cols = st.columns(2)
    margin = cols[0].slider("Margin", -1.0, 1.0, (-1.0, 1.0), 0.05, key=f"{key}_margin")
    score = cols[1].slider("Score", 0.0, 1.0, (0.0, 1.0), 0.05, key=f"{key}_score")
    if margin != (-1.0, 1.0):
        values["margin_min"], values["margin_max"] = margin
    if score != (0.0, 1.0):
        values["score_min"], values["score_max"] = score
    return values


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _tristate(column: Any, label: str, key: str) -> bool | None:
    choice = column.selectbox(label, ["any", "yes", "no"], key=key)
    return None if choice == "any" else choice == "yes"


def launch_outcome(started: Any, queue: str, queued: str, instead: str) -> None:
    """What a launch did: ``queued`` when a worker took it, else the commands to run it."""
    if started.queued:
        st.success(queued)
        return
    st.info(
        f"No live worker consumes the {queue} queue, so nothing was queued. Start one and "
        f"{instead}:"
    )
    st.code(f"{started.worker_command}\n{started.command}", language="bash")
