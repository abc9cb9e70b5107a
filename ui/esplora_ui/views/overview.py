"""Overview: relation statistics, pipeline progress and review progress as charts."""

from __future__ import annotations

from typing import Any

import altair as alt
import streamlit as st

from esplora_ui import data


def _bars(rows: list[dict[str, Any]], x: str, y: str, colour: str, title: str) -> None:
    if not rows:
        st.text(f"{title}: nothing yet")
        return
    chart = (
        alt.Chart(alt.Data(values=rows), title=title)  # type: ignore[no-untyped-call]
        .mark_bar()
        .encode(x=alt.X(f"{x}:N"), y=alt.Y(f"{y}:Q"), color=alt.Color(f"{colour}:N"))
    )
    st.altair_chart(chart, width="stretch")


def _melt(
    rows: list[dict[str, Any]], key: str, columns: list[str], name: str
) -> list[dict[str, Any]]:
    return [{key: r[key], name: c, "count": r.get(c, 0)} for r in rows for c in columns]


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
        _melt(numbers["relations"], "relation", ["soft", "strict"], "kind"),
        "relation", "count", "kind", "Pairs per relation: soft vs strict",
    )  # fmt: skip
    pairs = [
        {"pair": f"{p.get('subject')} / {p.get('object')}", **p} for p in numbers["label_pairs"]
    ]
    st.subheader("Top label pairs")
    st.dataframe(pairs, hide_index=True, width="stretch")
with right:
    _bars(
        _melt(numbers["claims"], "relation", ["confirmed", "contradicted", "unresolved"], "claim"),
        "relation", "count", "claim", "Caption claims: confirmed vs contradicted",
    )  # fmt: skip
    _bars(numbers["stages"], "stage", "images", "status", "Per-stage progress and failures")
if numbers.get("retention"):
    st.subheader("Synthetic retention per relation")
    st.dataframe(numbers["retention"], hide_index=True, width="stretch")
if numbers.get("analytics_error"):
    st.text(numbers["analytics_error"])
if numbers.get("analytics"):
    with st.expander("All statistics (analytics service)"):
        st.json(numbers["analytics"])
