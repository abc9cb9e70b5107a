"""Calibration: machine strict against reviewers' votes per relation, and the τ / depth-gap
sweep over stored detections (yield and precision per value)."""

from __future__ import annotations

from typing import Any

import altair as alt
import streamlit as st

from esplora.errors import EsploraError
from esplora_ui import data


def _numbers(text: str) -> list[float]:
    return [float(part) for part in text.replace(";", ",").split(",") if part.strip()]


def _rows(result: Any) -> list[dict[str, Any]]:
    if hasattr(result, "to_pylist"):
        return list(result.to_pylist())
    if isinstance(result, dict):
        return [
            {"parameter": name, **row} for name, rows in result.items() for row in list(rows or [])
        ]
    return [r if isinstance(r, dict) else dict(vars(r)) for r in result or []]


st.title("Calibration")
st.subheader("Machine strict vs reviewers' votes")
confusion = data.confusion()
if confusion:
    chart = (
        alt.Chart(alt.Data(values=confusion))  # type: ignore[no-untyped-call]
        .mark_rect()
        .encode(
            x=alt.X("vote:N"),
            y=alt.Y("machine:N"),
            color=alt.Color("count:Q"),
            column=alt.Column("relation:N"),
        )
    )
    st.altair_chart(chart)
    st.dataframe(confusion, hide_index=True, width="stretch")
else:
    st.text("No votes yet.")
st.subheader("Agreement per relation")
try:
    st.dataframe(_rows(data.agreement()), hide_index=True, width="stretch")
except (EsploraError, ImportError) as error:
    st.text(f"Agreement unavailable: {error}")
st.subheader("τ / depth-gap sweep")
cols = st.columns(2)
taus = _numbers(cols[0].text_input("τ values", "1.5, 2, 3, 4, 6", key="cal_taus"))
gaps = _numbers(cols[1].text_input("Depth gaps", "0.1, 0.2, 0.33, 0.5", key="cal_gaps"))
try:
    sweep = _rows(data.calibration(taus, gaps))
except (EsploraError, ImportError) as error:
    st.text(f"Sweep unavailable: {error}")
    sweep = []
st.dataframe(sweep, hide_index=True, width="stretch")
