"""Who is reviewing: a name chosen at start on one machine, or a trusted proxy header for a team.

With ``ESPLORA_UI_AUTH_HEADER`` set (e.g. ``X-Forwarded-User``) the name comes only from that
request header, which an authenticating reverse proxy sets; a request without it is read-only.
The header is trusted, so the UI must be reachable only through the proxy (``ESPLORA_UI_HOST``
stays 127.0.0.1 unless the proxy runs on another host).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import streamlit as st

from esplora.settings import Settings

NAME_KEY = "reviewer_name"
SESSION_KEY = "esplora_identity"
MAX_NAME = 100


@dataclass(frozen=True, slots=True)
class Identity:
    """The reviewer of this session, and whether they may write (with the reason when not)."""

    name: str | None
    source: str  # "header", "name" or "none"
    reason: str | None = None

    @property
    def can_write(self) -> bool:
        return self.name is not None


def auth_header(settings: Settings) -> str | None:
    """The configured trusted header name, or ``None`` (one-machine mode)."""
    configured = getattr(settings, "ui_auth_header", None) or os.environ.get(
        "ESPLORA_UI_AUTH_HEADER"
    )
    return str(configured).strip() or None if configured else None


def clean_name(raw: str | None) -> str | None:
    """A reviewer name as stored: stripped, at most 100 characters, ``None`` when empty."""
    name = (raw or "").strip()[:MAX_NAME]
    return name or None


def from_headers(header: str, headers: dict[str, str]) -> Identity:
    """The identity a proxy header gives (header names are case-insensitive)."""
    wanted = header.lower()
    value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    name = clean_name(value)
    if name is None:
        reason = f"read-only: the request has no {header} header (open the UI through the proxy)"
        return Identity(None, "none", reason)
    return Identity(name, "header")


def current_reviewer(settings: Settings) -> Identity:
    """This session's reviewer; draws the sidebar name box in one-machine mode."""
    header = auth_header(settings)
    if header is not None:
        identity = from_headers(header, dict(st.context.headers.items()))
        st.sidebar.text(f"Reviewer: {identity.name or '—'} (from {header})")
        return identity
    st.sidebar.text_input("Reviewer name", key=NAME_KEY, max_chars=MAX_NAME)
    name = clean_name(st.session_state.get(NAME_KEY))
    if name is None:
        return Identity(None, "none", "read-only: enter your reviewer name in the sidebar")
    return Identity(name, "name")


def session_identity() -> Identity:
    """The identity ``app.py`` resolved for this run (read-only when none)."""
    found = st.session_state.get(SESSION_KEY)
    return found if isinstance(found, Identity) else Identity(None, "none", "read-only")
