"""Driving the UI's pages with Streamlit's AppTest, and reading what they show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pyarrow import ipc
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "ui" / "esplora_ui" / "app.py"


def open_page(page: str, reviewer: str | None = "alice", **state: Any) -> AppTest:
    """The app on ``views/<page>.py`` (as ``reviewer``; ``state`` preset in session state)."""
    app = AppTest.from_file(str(APP), default_timeout=60)
    if reviewer:
        app.session_state["reviewer_name"] = reviewer
    for key, value in state.items():
        app.session_state[key] = value
    app.run()
    if page != "overview":
        app.switch_page(f"views/{page}.py").run()
    assert_clean(app)
    return app


def assert_clean(app: AppTest) -> None:
    """No exception was raised by the page."""
    assert not app.exception, [e.value for e in app.exception]


def texts(app: AppTest) -> str:
    """Every text and code block of the page, one per line."""
    parts = [t.value for t in app.text] + [c.value for c in app.code]
    return "\n".join(str(p) for p in parts)


def messages(app: AppTest, kind: str) -> list[str]:
    """The bodies of the page's ``success`` / ``info`` / ``warning`` / ``error`` messages."""
    return [str(m.value) for m in getattr(app, kind)]


def chart_rows(app: AppTest, title: str) -> list[dict[str, Any]]:
    """The rows of the chart titled ``title`` (Streamlit ships them as Arrow IPC)."""
    for element in app.get("vega_lite_chart"):
        if title in json.dumps(json.loads(element.proto.spec).get("title", "")):
            table = ipc.open_stream(element.proto.data.data).read_all()
            rows: list[dict[str, Any]] = table.to_pylist()
            return rows
    raise AssertionError(f"no chart titled {title!r}")
