"""Altair charts of the pages (bars, histograms, line series), from plain rows of dicts.

Each builder returns ``None`` when there is nothing to draw, so a page can say so in text.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import streamlit as st

Rows = list[dict[str, Any]]


def _data(rows: Rows) -> Any:
    return alt.Data(values=rows)  # type: ignore[no-untyped-call]


def bars(rows: Rows, x: str, y: str, colour: str, title: str) -> alt.Chart | None:
    """Bars of ``y`` per ``x``, stacked by ``colour``."""
    if not rows:
        return None
    chart: alt.Chart = (
        alt.Chart(_data(rows), title=title)
        .mark_bar()
        .encode(x=alt.X(f"{x}:N"), y=alt.Y(f"{y}:Q"), color=alt.Color(f"{colour}:N"))
    )
    return chart


def histogram(rows: Rows, colour: str, title: str, x_title: str) -> alt.Chart | None:
    """A histogram of pre-binned rows (``lo``, ``hi``, ``count``), stacked by ``colour``."""
    if not rows:
        return None
    chart: alt.Chart = (
        alt.Chart(_data(rows), title=title)
        .mark_bar()
        .encode(
            x=alt.X("lo:Q", bin="binned", title=x_title),
            x2=alt.X2("hi:Q"),
            y=alt.Y("count:Q", title="pairs", stack=True),
            color=alt.Color(f"{colour}:N"),
            tooltip=[f"{colour}:N", "lo:Q", "hi:Q", "count:Q"],
        )
    )
    return chart


def lines(rows: Rows, x: str, y: str, colour: str, title: str) -> alt.Chart | None:
    """One line of ``y`` over ``x`` per ``colour`` (e.g. a metric over training steps)."""
    if not rows:
        return None
    chart: alt.Chart = (
        alt.Chart(_data(rows), title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X(f"{x}:Q"),
            y=alt.Y(f"{y}:Q"),
            color=alt.Color(f"{colour}:N"),
            tooltip=[f"{colour}:N", f"{x}:Q", f"{y}:Q"],
        )
    )
    return chart


def melt(rows: Rows, key: str, columns: list[str], name: str) -> Rows:
    """Wide rows to long ones: one ``{key, name: column, count}`` per row and column."""
    return [{key: r[key], name: c, "count": r.get(c, 0)} for r in rows for c in columns]


def margin_rows(bins: Rows) -> Rows:
    """Margin bins labelled ``axis: relation`` (each relation's own histogram, one colour)."""
    return [{**b, "relation": f"{b.get('axis')}: {b.get('relation')}"} for b in bins]


def depth_gap_rows(bins: Rows) -> Rows:
    """Depth-gap bins split into strict and soft-only pairs, labelled per relation."""
    out: Rows = []
    for b in bins:
        strict = int(b.get("strict", 0))
        for kind, count in (("strict", strict), ("soft only", int(b["count"]) - strict)):
            out.append({**b, "count": count, "pairs": f"{b.get('relation', 'depth')} {kind}"})
    return out


def show(chart: alt.Chart | None, title: str) -> None:
    """Draw ``chart`` full width, or say there is nothing yet."""
    if chart is None:
        st.text(f"{title}: nothing yet")
        return
    st.altair_chart(chart, width="stretch")
