"""Sample: one image with boxes, depth, arrows, the caption's clauses, every relation and the
item's full review history."""

from __future__ import annotations

import streamlit as st

from esplora.services.items import ItemView
from esplora_ui import components, data, widgets

st.title("Sample")
image_id = int(
    st.number_input(
        "Image id", min_value=1, step=1, value=int(st.session_state.get("sample_image_id", 1))
    )
)


def render(view: ItemView) -> None:
    """The whole item."""
    left, right = st.columns([3, 2])
    with left:
        widgets.show_item(view, key="sample")
        widgets.failed_stages(view)
    with right:
        st.subheader("Caption")
        components.show_caption(view.caption)
        if view.excluded:
            st.text("This sample is excluded.")
        st.subheader("Claims")
        st.dataframe(view.claims, hide_index=True, width="stretch")
    st.subheader("Relations (machine, human, effective)")
    st.dataframe(widgets.relation_table(view.relations), hide_index=True, width="stretch")
    st.subheader("Objects")
    st.dataframe(widgets.object_table(view), hide_index=True, width="stretch")
    st.subheader("Review history")
    if view.history:
        st.dataframe(view.history, hide_index=True, width="stretch")
    else:
        st.text("No votes or decisions yet.")
    st.subheader("Pipeline stages")
    st.dataframe(view.stages, hide_index=True, width="stretch")


view = data.item(image_id)
if view is None:
    st.info("No image with this id.")
else:
    render(view)
