"""Explore: the typed filter (shown as canonical JSON) and the read-only SQL box, results as a
paginated thumbnail grid and a table. Only one page of rows is ever loaded."""

from __future__ import annotations

from typing import Any

import streamlit as st

from esplora.errors import EsploraError
from esplora_ui import components, data, widgets


def grid(rows: list[dict[str, Any]]) -> None:
    """Thumbnails, six per row, each with its relation as text and a button to open it."""
    columns = st.columns(6)
    for index, row in enumerate(rows):
        with columns[index % 6]:
            st.image(components.thumbnail(data.artefact(row.get("image_uri") or row.get("uri"))))
            st.text(_describe(row))
            image_id = row.get("image_id")
            if image_id is not None and st.button("Open", key=f"open_{index}_{image_id}"):
                st.session_state["sample_image_id"] = int(image_id)
                st.switch_page("views/sample.py")


def _describe(row: dict[str, Any]) -> str:
    parts = [row.get("subject_label"), row.get("relation"), row.get("object_label")]
    return " ".join(str(p) for p in parts if p) or f"image {row.get('image_id')}"


st.title("Explore")
with st.expander("Filter", expanded=True):
    try:
        item_filter = data.filter_from(widgets.filter_widgets("explore"))
    except EsploraError as error:
        st.error(str(error))
        st.stop()
    st.session_state[widgets.EXPLORE_FILTER] = item_filter.to_json()
    st.text("Filter as canonical JSON (the Snapshots page and the CLI take the same text):")
    st.code(item_filter.to_json(), language="json")
page = int(st.number_input("Page", min_value=1, step=1, key="explore_page")) - 1
try:
    rows, total = data.explore(item_filter, page)
except EsploraError as error:
    st.error(str(error))
    rows, total = [], 0
pages = max(1, -(-total // data.PAGE_SIZE))
st.text(f"{total} matching item(s); page {page + 1} of {pages}, {data.PAGE_SIZE} per page")
grid(rows)
st.dataframe(rows, hide_index=True, width="stretch")

st.subheader("SQL (read-only, over the views images, samples, objects, relations, claims, votes)")
query = st.text_area("One SELECT", "SELECT relation, count(*) AS n FROM relations GROUP BY 1")
if st.button("Run", key="sql_run"):
    try:
        st.dataframe(data.sql(query), hide_index=True, width="stretch")
    except EsploraError as error:
        st.error(str(error))
