"""``esplora ui``: the review UI's entry point (``streamlit run ui/esplora_ui/app.py``).

Runs on every rerun: the reviewer identity (sidebar), then the selected page.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from esplora_ui import data, identity

# Not "pages/": that name turns on Streamlit's legacy auto-discovery, which runs a page
# without this entry script (no reviewer, no navigation).
PAGES = Path(__file__).parent / "views"


def main() -> None:
    """Set up the page, the reviewer and the navigation, and run the chosen page."""
    st.set_page_config(page_title="esplora review", layout="wide")
    who = identity.current_reviewer(data.settings())
    st.session_state[identity.SESSION_KEY] = who
    if not who.can_write:
        st.sidebar.text(who.reason or "read-only")
    navigation = st.navigation(
        [
            st.Page(PAGES / "overview.py", title="Overview", default=True, url_path="overview"),
            st.Page(PAGES / "explore.py", title="Explore", url_path="explore"),
            st.Page(PAGES / "sample.py", title="Sample", url_path="sample"),
            st.Page(PAGES / "review.py", title="Review queue", url_path="review"),
            st.Page(PAGES / "calibration.py", title="Calibration", url_path="calibration"),
            st.Page(PAGES / "snapshots.py", title="Snapshots", url_path="snapshots"),
            st.Page(PAGES / "training.py", title="Training", url_path="training"),
        ]
    )
    navigation.run()


main()
