"""Overview: relation statistics, pipeline progress and review progress as charts."""

from __future__ import annotations

from typing import Any

import streamlit as st

from esplora_ui import charts, data

CLAIMS = ("confirmed", "contradicted", "unresolved")


def _bars(rows: list[dict[str, Any]], x: str, y: str, colour: str, title: str) -> None:
    charts.show(charts.bars(rows, x, y, colour, title), title)


def distributions(analytics: dict[str, Any]) -> None:
    """The margin histogram per relation and the observed depth gaps (strict vs soft only)."""
    left, right = st.columns(2)
    with left:
        title = "Margin per relation (signed distance to the strict boundary)"
        bins = charts.margin_rows(analytics.get("margin_histogram") or [])
        charts.show(charts.histogram(bins, "relation", title, "margin"), title)
    with right:
        title = "Observed depth gap |d_subject − d_object| of depth pairs"
        bins = charts.depth_gap_rows(analytics.get("depth_gaps") or [])
        charts.show(charts.histogram(bins, "pairs", title, "disparity gap"), title)


numbers = data.overview()
review = numbers["review"]
st.title("Overview")
cols = st.columns(5)
for col, (label, value) in zip(
    cols,
    [
        ("relations", review["relations"]),
        ("votes", review["votes"]),
        ("relations voted on", review["voted"]),
        ("reviewers", review["reviewers"]),
        ("adjudicated", review["decided"]),
    ],
    strict=True,
):
    col.metric(label, value)
left, right = st.columns(2)
with left:
    _bars(
        charts.melt(numbers["relations"], "relation", ["soft", "strict"], "kind"),
        "relation", "count", "kind", "Pairs per relation: soft vs strict",
    )  # fmt: skip
    pairs = [
        {"pair": f"{p.get('subject')} / {p.get('object')}", **p} for p in numbers["label_pairs"]
    ]
    st.subheader("Top label pairs")
    st.dataframe(pairs, hide_index=True, width="stretch")
with right:
    claims = charts.melt(numbers["claims"], "relation", list(CLAIMS), "claim")
    _bars(claims, "relation", "count", "claim", "Caption claims: confirmed vs contradicted")
    _bars(numbers["stages"], "stage", "images", "status", "Per-stage progress and failures")
if numbers.get("retention"):
    st.subheader("Synthetic retention per relation")
    st.dataframe(numbers["retention"], hide_index=True, width="stretch")
if numbers.get("analytics_error"):
    st.text(numbers["analytics_error"])
if numbers.get("analytics"):
    distributions(numbers["analytics"])
    with st.expander("All statistics (analytics service)"):
        st.json(numbers["analytics"])
