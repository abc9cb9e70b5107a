"""Keyboard shortcuts: a small key bridge, no third-party component.

Streamlit gives every keyed widget the CSS class ``st-key-<key>``. :func:`key_bridge` renders a
zero-height ``components.v1.html`` frame (same origin as the app) whose script listens for key
presses on the parent page and clicks the button bound to the key, so a shortcut runs exactly
the code path a click runs. Keys typed into text fields are left alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import streamlit.components.v1 as components

REVIEW_KEYS: dict[str, str] = {
    "a": "review_accept",
    "r": "review_reject",
    "f": "review_flip",
    "n": "review_next",
}

_SCRIPT = """
<script>
(function () {
  const doc = window.parent.document;
  const bindings = %s;
  if (doc.__esploraKeys) { doc.removeEventListener("keydown", doc.__esploraKeys); }
  doc.__esploraKeys = function (event) {
    const target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) { return; }
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA"
        || target.isContentEditable)) { return; }
    const key = bindings[(event.key || "").toLowerCase()];
    if (!key) { return; }
    const button = doc.querySelector(".st-key-" + key + " button");
    if (button && !button.disabled) { event.preventDefault(); button.click(); }
  };
  doc.addEventListener("keydown", doc.__esploraKeys);
})();
</script>
"""

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def bridge_html(bindings: Mapping[str, str]) -> str:
    """The bridge's HTML for ``{key: widget key}`` (widget keys restricted to a safe alphabet)."""
    for key, widget in bindings.items():
        if len(key) != 1 or not _SAFE_KEY.match(widget):
            raise ValueError(f"bad shortcut binding {key!r} -> {widget!r}")
    return _SCRIPT % json.dumps({k.lower(): v for k, v in bindings.items()})


def key_bridge(bindings: Mapping[str, str] = REVIEW_KEYS) -> None:
    """Install the shortcuts on this page (rendered as an invisible frame)."""
    components.html(bridge_html(bindings), height=0)


def legend(bindings: Mapping[str, str] = REVIEW_KEYS) -> str:
    """A one-line description of the shortcuts, e.g. ``a accept · r reject``."""
    return " · ".join(f"{k} {v.removeprefix('review_')}" for k, v in bindings.items())
