"""Snapshots: freeze the Explore filter into a snapshot, list and inspect snapshots, diff two,
and export one (export jobs with their status)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from esplora.errors import EsploraError
from esplora.services.filters import ItemFilter
from esplora.services.snapshot_gather import TEXT_SOURCES
from esplora.services.snapshots import Caps, SnapshotRequest, SnapshotSummary
from esplora_ui import charts, data, identity, launch, widgets
from esplora_ui.identity import Identity

FILTER = "snap_filter"
FILTER_SEEN = "snap_filter_seen"
SHOWN = "snap_show"


def _filter_text() -> str:
    """The filter box's text: the Explore page's filter, until the user edits it here (a new
    Explore filter replaces the text again)."""
    explore = st.session_state.get(widgets.EXPLORE_FILTER) or ItemFilter().to_json()
    if st.session_state.get(FILTER_SEEN) != explore:
        st.session_state[FILTER_SEEN] = explore
        st.session_state[FILTER] = explore
    text: str = st.text_area("Filter (canonical JSON, from the Explore page)", key=FILTER)
    return text


def _request(who: Identity) -> SnapshotRequest:
    """The snapshot request the widgets describe; ``EsploraError`` for a bad value."""
    item_filter = ItemFilter.from_json(_filter_text() or "{}")
    cols = st.columns(3)
    name = cols[0].text_input("Snapshot name", key="snap_name", max_chars=200)
    fraction = cols[1].number_input(
        "Validation fraction", 0.0, 0.95, 0.0, 0.05, key="snap_split", format="%.2f"
    )
    seed = cols[2].number_input("Seed", 0, 2**31 - 1, 0, key="snap_seed")
    cols = st.columns(4)
    per_relation = cols[0].number_input("Cap per relation (0: none)", 0, key="snap_cap_rel")
    per_pair = cols[1].number_input("Cap per label pair (0: none)", 0, key="snap_cap_pair")
    source = cols[2].selectbox(
        "Training text", TEXT_SOURCES, index=TEXT_SOURCES.index("both"), key="snap_text"
    )
    strict = cols[3].checkbox("Refuse benchmark contamination", key="snap_strict")
    return SnapshotRequest(
        name=name.strip(),
        item_filter=item_filter,
        validation_fraction=float(fraction),
        caps=Caps(relation=int(per_relation) or None, pair=int(per_pair) or None),
        seed=int(seed),
        text_source=str(source),
        strict=strict,
        created_by=who.name,
    )


def create(who: Identity) -> None:
    """Freeze what the filter matches (one unit of work in the snapshot service)."""
    try:
        request = _request(who)
    except EsploraError as error:
        st.error(str(error))
        return
    if not who.can_write:
        st.info(who.reason or "read-only")
        return
    if st.button("Create snapshot", key="snap_create", type="primary"):
        try:
            summary = data.create_snapshot(request)
        except EsploraError as error:
            st.error(str(error))
            return
        st.session_state[SHOWN] = summary.name
        st.success(
            f"Snapshot {summary.name} created: {summary.counts.get('members', 0)} member(s), "
            f"hash {summary.hash[:12]}"
        )
        if summary.counts.get("contamination"):
            st.warning("Some training texts equal benchmark prompts: see the snapshot.")


def _rows(summaries: list[SnapshotSummary]) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "members": s.counts.get("members", 0),
            "images": s.counts.get("images", 0),
            "train": (s.counts.get("splits") or {}).get("train", 0),
            "validation": (s.counts.get("splits") or {}).get("validation", 0),
            "hash": s.hash[:12],
            "created by": s.created_by or "",
            "created at": s.created_at.isoformat(timespec="seconds") if s.created_at else "",
        }
        for s in summaries
    ]


def _counts(counts: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
    return [{key: k, "members": v} for k, v in (counts or {}).items()]


def show(summary: SnapshotSummary) -> None:
    """One snapshot: sizes, hash, filter, counts per relation and label pair, skips."""
    facts = summary.to_dict()
    cols = st.columns(4)
    for col, (label, value) in zip(
        cols,
        [
            ("members", facts["members"]),
            ("images", facts["images"]),
            ("train", (facts["splits"] or {}).get("train", 0)),
            ("validation", (facts["splits"] or {}).get("validation", 0)),
        ],
        strict=True,
    ):
        col.metric(label, value or 0)
    st.text(
        f"hash {summary.hash} · text {summary.text_source} · seed {summary.seed} · caps "
        f"{summary.caps or 'none'} · by {summary.created_by or '—'} at {facts['created_at']}"
    )
    st.code(json.dumps(summary.filter, sort_keys=True), language="json")
    left, right = st.columns(2)
    with left:
        relations = _counts(facts["relations"], "relation")
        title = "Members per relation"
        charts.show(charts.bars(relations, "relation", "members", "relation", title), title)
        st.dataframe(_counts(facts["review_states"], "review state"), hide_index=True)
    with right:
        st.text("Members per label pair")
        st.dataframe(_counts(facts["pairs"], "label pair"), hide_index=True, width="stretch")
        if facts["skipped"]:
            st.text("Skipped")
            st.dataframe(_counts(facts["skipped"], "reason"), hide_index=True, width="stretch")
    if facts["contamination"]:
        st.warning(f"{len(facts['contamination'])} training text(s) equal benchmark prompts.")
        st.dataframe(facts["contamination"], hide_index=True, width="stretch")


def browse(summaries: list[SnapshotSummary]) -> None:
    """The list, and the chosen snapshot in full."""
    st.dataframe(_rows(summaries), hide_index=True, width="stretch")
    names = [s.name for s in summaries]
    shown = st.session_state.get(SHOWN)
    index = names.index(shown) if shown in names else 0
    chosen = st.selectbox("Show snapshot", names, index=index, key="snap_pick")
    show(next(s for s in summaries if s.name == chosen))


def diff(names: list[str]) -> None:
    """Members added, removed and changed from one snapshot to another."""
    cols = st.columns(2)
    a = cols[0].selectbox("From", names, index=min(1, len(names) - 1), key="snap_diff_a")
    b = cols[1].selectbox("To", names, index=0, key="snap_diff_b")
    if a is None or b is None:
        return
    try:
        result = data.diff_snapshots(a, b).to_dict()
    except EsploraError as error:
        st.error(str(error))
        return
    st.text("Same content hash." if result["same_hash"] else "The content hashes differ.")
    cols = st.columns(3)
    for col, key in zip(cols, ("added", "removed", "changed"), strict=True):
        col.metric(f"members {key}", result[key])
    deltas = [{"relation": r, "change": d} for r, d in result["relations"].items()]
    st.dataframe(deltas, hide_index=True, width="stretch")
    examples = [
        {"kind": kind, "image sha256": key[0][:12], "text": key[1]}
        for kind, keys in result.get("examples", {}).items()
        for key in keys
    ]
    if examples:
        st.dataframe(examples, hide_index=True, width="stretch")


def export(who: Identity, names: list[str]) -> None:
    """Start an export job (queued when a cpu worker is live), and the jobs with their status."""
    cols = st.columns(3)
    name = cols[0].selectbox("Snapshot", names, key="export_snapshot")
    fmt = cols[1].selectbox("Format", data.export_formats(), key="export_format")
    trigger = cols[2].text_input("Trigger word (optional)", key="export_trigger").strip()
    default = str(data.default_export_dir(str(name), str(fmt))) if name else ""
    out = st.text_input("Output directory (new or empty)", default, key=f"export_out_{name}_{fmt}")
    if not who.can_write:
        st.info(who.reason or "read-only")
    elif name and st.button("Start export", key="export_start", type="primary"):
        _start_export(str(name), str(fmt), Path(out), trigger or None)
    st.subheader("Export jobs")
    st.button("Refresh", key="export_refresh")
    jobs = [job.to_dict() for job in data.export_jobs()]
    columns = ("id", "snapshot", "format", "status", "done", "total", "skipped", "out_dir")
    rows = [{k: job[k] for k in columns} | {"error": job["error"] or ""} for job in jobs]
    st.dataframe(rows, hide_index=True, width="stretch")


def _start_export(name: str, fmt: str, out: Path, trigger: str | None) -> None:
    try:
        target = data.check_export(name, fmt, out)
        started = data.launch(launch.CPU, launch.export_args(name, fmt, target, trigger))
    except EsploraError as error:
        st.error(str(error))
        return
    job = started.answer.get("job") if isinstance(started.answer, dict) else None
    widgets.launch_outcome(
        started, "cpu", f"Export job {job} queued on the cpu queue.",
        "export again, or run the export in a terminal",
    )  # fmt: skip


who = identity.session_identity()
st.title("Snapshots")
tab_create, tab_list, tab_diff, tab_export = st.tabs(["Create", "Snapshots", "Diff", "Export"])
with tab_create:
    create(who)
summaries = data.snapshots()
names = [s.name for s in summaries]
with tab_list:
    if summaries:
        browse(summaries)
    else:
        st.info("No snapshots yet: create one from the Explore filter.")
with tab_diff:
    if len(names) >= 2:
        diff(names)
    else:
        st.info("Diffing needs two snapshots.")
with tab_export:
    if names:
        export(who, names)
    else:
        st.info("Export needs a snapshot.")
