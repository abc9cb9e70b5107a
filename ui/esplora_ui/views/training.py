"""Training: launch a LoRA run on a snapshot, and follow the runs (status, loss and
per-relation accuracy curves over steps, checkpoints, the validation sample grids)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from esplora.errors import EsploraError
from esplora_ui import charts, components, data, identity, launch, widgets
from esplora_ui.identity import Identity

ACCURACY = "accuracy/"


def launch_form(who: Identity, snapshots: list[str]) -> None:
    """A new run: its name, the snapshot and a shipped config; queued when a gpu worker is
    live, otherwise the commands to run."""
    cols = st.columns(3)
    name = cols[0].text_input("Run name", key="train_name", max_chars=200).strip()
    snapshot = cols[1].selectbox("Snapshot", snapshots, key="train_snapshot")
    config = cols[2].selectbox("Config", launch.CONFIGS, key="train_config")
    if not who.can_write:
        st.info(who.reason or "read-only")
        return
    if not st.button("Launch", key="train_launch", type="primary", disabled=not snapshots):
        return
    try:
        data.check_run_name(name)
        started = data.launch(launch.GPU, launch.train_args(name, str(snapshot), str(config)))
    except EsploraError as error:
        st.error(str(error))
        return
    widgets.launch_outcome(
        started, "gpu", f"Run {name} queued on the gpu queue.",
        "launch again, or train in a terminal",
    )  # fmt: skip


def _table(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "run": r["name"],
            "snapshot": r["snapshot"],
            "status": r["status"],
            "step": f"{r['step']}/{r['max_steps'] or '?'}",
            "loss": r["latest"].get("loss"),
            "accuracy": r["latest"].get(f"{ACCURACY}all"),
            "adapter": r["adapter"] or "",
            "error": r["error"] or "",
        }
        for r in runs
    ]


def series(metrics: dict[str, list[list[float]]], prefix: str) -> list[dict[str, Any]]:
    """The points of every metric named ``prefix…`` as rows (``series`` is the rest of the
    name, e.g. the relation of ``accuracy/left_of``)."""
    return [
        {"series": name.removeprefix(prefix) or name, "step": int(step), "value": value}
        for name, points in metrics.items()
        if name == prefix or (prefix.endswith("/") and name.startswith(prefix))
        for step, value in points
    ]


def curves(run: dict[str, Any]) -> None:
    """The loss and the strict accuracy per relation over steps."""
    left, right = st.columns(2)
    with left:
        title = "Training loss"
        loss = charts.lines(series(run["metrics"], "loss"), "step", "value", "series", title)
        charts.show(loss, title)
    with right:
        title = "Strict spatial accuracy per relation (validation probes)"
        rows = series(run["metrics"], ACCURACY)
        charts.show(charts.lines(rows, "step", "value", "series", title), title)


def grids(run: dict[str, Any]) -> None:
    """The sample grid of a validated step (or why there is none)."""
    validation: dict[str, Any] = run["artefacts"].get("validation", {})
    if not validation:
        st.text("No validation grids yet.")
        return
    steps = sorted(validation, key=int)
    step = st.select_slider("Validated step", steps, value=steps[-1], key="train_grid_step")
    entry = validation[step]
    if entry.get("error"):
        st.warning(f"Validation at step {step} failed.")
        st.code(str(entry["error"]), language=None)
        return
    path = data.artefact(entry.get("grid"))
    image = components.load_image(path)
    if image is None:
        st.warning("Sample grid file missing or unreadable.")
        st.code(str(path) if path else "no grid recorded", language=None)
        return
    st.image(image, caption=f"{run['name']} at step {step}", width="stretch")


def detail(name: str) -> None:
    """One run in full."""
    try:
        run = data.run(name)
    except EsploraError as error:
        st.error(str(error))
        return
    cols = st.columns(4)
    cols[0].metric("status", run["status"])
    cols[1].metric("step", f"{run['step']}/{run['max_steps'] or '?'}")
    cols[2].metric("loss", _number(run["latest"].get("loss")))
    cols[3].metric("accuracy", _number(run["latest"].get(f"{ACCURACY}all")))
    adapter = run["adapter"] or "—"
    st.text(f"snapshot {run['snapshot']} ({run['snapshot_hash'][:12]}) · adapter {adapter}")
    if run["error"]:
        st.error(f"Run failed: {run['error']}")
    curves(run)
    grids(run)
    if run["checkpoints"]:
        st.text("Checkpoints")
        st.dataframe(run["checkpoints"], hide_index=True, width="stretch")
    if run["evaluations"]:
        st.text("Evaluations of this run's adapter")
        st.dataframe(run["evaluations"], hide_index=True, width="stretch")
    with st.expander("Config"):
        st.json(run["config"])


def _number(value: Any) -> str:
    return "–" if value is None else f"{float(value):.4g}"


who = identity.session_identity()
st.title("Training")
st.subheader("Launch a run")
launch_form(who, [s.name for s in data.snapshots()])
st.subheader("Runs")
st.button("Refresh", key="train_refresh")
runs = data.runs()
if not runs:
    st.info("No training runs yet.")
else:
    st.dataframe(_table(runs), hide_index=True, width="stretch")
    chosen = st.selectbox("Show run", [r["name"] for r in runs], key="train_run")
    if chosen:
        detail(str(chosen))
