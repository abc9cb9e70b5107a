"""Review queue: one relation at a time with shortcuts, bulk decisions, and adjudication."""

from __future__ import annotations

import streamlit as st

from esplora.db.enums import VoteVerdict
from esplora.errors import EsploraError
from esplora.services.items import ItemView, RelationRow
from esplora_ui import components, data, identity, keys, widgets
from esplora_ui.identity import Identity

CURRENT = "review_current"


def _assign(who: Identity) -> int | None:
    if who.name is None:
        return None
    if st.session_state.get(CURRENT) is None:
        item_filter = data.filter_from({"relations": st.session_state.get("queue_relations", [])})
        st.session_state[CURRENT] = data.next_item(who.name, item_filter)
    found = st.session_state.get(CURRENT)
    return int(found) if found is not None else None


def _vote(
    who: Identity, relation: RelationRow, verdict: VoteVerdict, proposal: dict[str, object]
) -> None:
    assert who.name is not None
    try:
        data.vote(who.name, relation.id, verdict, proposal=proposal or None)
    except EsploraError as error:
        st.error(str(error))
        return
    st.session_state[CURRENT] = None
    st.session_state["review_flash"] = f"{verdict.value} recorded for relation {relation.id}"
    st.rerun()


def _actions(who: Identity, view: ItemView, relation: RelationRow) -> None:
    disabled = not who.can_write
    cols = st.columns(4)
    if cols[0].button("Accept (a)", key="review_accept", disabled=disabled, type="primary"):
        _vote(who, relation, VoteVerdict.ACCEPT, {})
    if cols[1].button("Reject (r)", key="review_reject", disabled=disabled):
        _vote(who, relation, VoteVerdict.REJECT, {})
    if cols[2].button("Flip (f)", key="review_flip", disabled=disabled):
        _vote(who, relation, VoteVerdict.FLIP, {})
    if cols[3].button("Next (n)", key="review_next"):
        st.session_state[CURRENT] = None
    cols = st.columns(2)
    with cols[0]:
        other = st.selectbox("Relabel as", widgets.RELATIONS, key="review_relabel_value")
        if st.button("Relabel", key="review_relabel", disabled=disabled):
            _vote(who, relation, VoteVerdict.RELABEL, {"relation": other})
    with cols[1]:
        options = {f"{o.label} #{o.id}": o.id for o in view.objects}
        side = st.radio("Replace", ["subject", "object"], horizontal=True, key="review_side")
        chosen = st.selectbox("with detection", list(options), key="review_detection")
        if st.button("Choose detection", key="review_choose", disabled=disabled) and chosen:
            _vote(
                who,
                relation,
                VoteVerdict.CHOOSE_DETECTION,
                {"object_id": options[chosen], "side": side},
            )


def queue(who: Identity) -> None:
    """The one-at-a-time queue."""
    st.multiselect("Only these relations", widgets.RELATIONS, key="queue_relations")
    if flash := st.session_state.pop("review_flash", None):
        st.success(flash)
    if not who.can_write:
        st.info(who.reason or "read-only")
        return
    target = _assign(who)
    if target is None:
        st.info("Nothing left to review for you in this queue.")
        return
    view = data.item_of("relation", target)
    if view is None:
        st.session_state[CURRENT] = None
        st.rerun()
    assert view is not None
    relation = next(r for r in view.relations if r.id == target)
    st.subheader(f"{relation.subject_label} {relation.relation} {relation.object_label}")
    st.text(f"relation {relation.id} · margin {relation.margin:.3f} · strict {relation.strict}")
    left, right = st.columns([3, 2])
    with left:
        widgets.show_item(view, focus=relation.id, key="review")
    with right:
        components.show_caption(view.caption)
        _actions(who, view, relation)
    keys.key_bridge()
    st.caption(keys.legend())


def bulk(who: Identity) -> None:
    """Accept or reject everything a filter matches, after a count and a confirmation."""
    try:
        item_filter = data.filter_from(widgets.filter_widgets("bulk"))
    except EsploraError as error:
        st.error(str(error))
        return
    st.code(item_filter.to_json(), language="json")
    decision = VoteVerdict(
        st.radio("Decision", ["accept", "reject"], horizontal=True, key="bulk_d")
    )
    if not who.can_write or who.name is None:
        st.info(who.reason or "read-only")
        return
    count = data.bulk(who.name, item_filter, decision, dry_run=True)
    st.text(f"{count} item(s) would change.")
    confirm = st.checkbox(f"Yes, {decision.value} all {count} of them", key="bulk_confirm")
    if st.button("Apply", key="bulk_apply", disabled=not confirm or count == 0):
        try:
            done = data.bulk(who.name, item_filter, decision, dry_run=False, expected=count)
        except EsploraError as error:
            st.error(str(error))
        else:
            st.success(f"{decision.value}: {done} item(s) decided.")


def adjudication(who: Identity) -> None:
    """Disputed items: a canonical decision, checked against the version that was shown."""
    ids = data.disputed()
    loaded = st.session_state.get("adj_loaded")
    if loaded and loaded[0] not in ids:  # decided by someone else meanwhile: keep it on screen
        ids.insert(0, loaded[0])
    if not ids:
        st.info("No disputed items.")
        return
    target = int(st.selectbox("Disputed relation", ids, key="adj_target"))
    view = data.item_of("relation", target)
    if view is None:
        st.info("This item no longer exists.")
        return
    relation = next(r for r in view.relations if r.id == target)
    if not loaded or loaded[0] != target:  # the version this reviewer saw, kept across reruns
        st.session_state["adj_loaded"] = loaded = (target, relation.version)
    widgets.show_item(view, focus=target, key="adj")
    st.dataframe([h for h in view.history if h["target"] == f"relation {target}"], hide_index=True)
    decision = VoteVerdict(
        st.radio("Decision", ["accept", "reject", "flip"], horizontal=True, key="adj_decision")
    )
    reason = st.text_input("Reason", key="adj_reason") or None
    if st.button("Decide", key="adj_decide", disabled=not who.can_write) and who.name:
        try:
            data.adjudicate(who.name, target, decision, expected_version=loaded[1], reason=reason)
        except EsploraError as error:
            st.error(f"Conflict: {error}")
            if st.button("Reload the current version", key="adj_reload"):
                st.session_state.pop("adj_loaded", None)
        else:
            st.session_state.pop("adj_loaded", None)
            st.success(f"Decided: {decision.value} on relation {target}")


who = identity.session_identity()
st.title("Review queue")
tab_queue, tab_bulk, tab_adjudicate = st.tabs(["Queue", "Bulk", "Adjudication"])
with tab_queue:
    queue(who)
with tab_bulk:
    bulk(who)
with tab_adjudicate:
    adjudication(who)
