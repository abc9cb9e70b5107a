"""``esplora review``: vote, take the next item, agreement, adjudication queue, adjudicate."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from esplora.cli._common import JsonOption, console, emit, opened_store
from esplora.errors import EsploraError

if TYPE_CHECKING:
    pass

app = typer.Typer(help="Human review: votes, queue, agreement, adjudication.", no_args_is_help=True)

Reviewer = Annotated[str, typer.Option("--reviewer", help="Who is reviewing (a plain name).")]
Target = Annotated[
    str, typer.Option("--target", help="relation, object, claim, sample or validation.")
]
Overlap = Annotated[int, typer.Option("--k", min=1, help="Reviewers per item (overlap).")]


def _proposal(to: str | None, label: str | None, object_id: int | None, side: str | None) -> Any:
    proposal: dict[str, Any] = {}
    if to is not None:
        proposal["relation"] = to
    if label is not None:
        proposal["label"] = label
    if object_id is not None:
        proposal["object_id"] = object_id
    if side is not None:
        proposal["side"] = side
    return proposal or None


To = Annotated[str | None, typer.Option("--to", help="relabel: the new relation.")]
Label = Annotated[str | None, typer.Option("--label", help="relabel of an object: new label.")]
ObjectId = Annotated[int | None, typer.Option("--object-id", help="choose_detection: the box.")]
Side = Annotated[str | None, typer.Option("--side", help="choose_detection: subject|object.")]


@app.command("vote")
def vote(
    target_id: Annotated[int, typer.Argument(help="The reviewed item's id.")],
    reviewer: Reviewer,
    verdict: Annotated[str, typer.Option("--verdict", help="accept, reject, flip, relabel…")],
    to: To = None,
    label: Label = None,
    object_id: ObjectId = None,
    side: Side = None,
    note: Annotated[str | None, typer.Option("--note", help="A free-text note.")] = None,
    target: Target = "relation",
    as_json: JsonOption = False,
) -> None:
    """Record a vote (append-only)."""
    from esplora.services.review import vote as record

    with opened_store() as store:
        vote_id = record(
            store,
            reviewer,
            target,
            target_id,
            verdict,
            proposal=_proposal(to, label, object_id, side),
            note=note,
        )
    data = {"vote_id": vote_id, "target": target, "target_id": target_id, "verdict": verdict}
    emit(data, as_json, lambda: console.print(f"vote {vote_id}: {verdict} on {target} {target_id}"))


@app.command("next")
def next_item(
    reviewer: Reviewer,
    filter_json: Annotated[
        str | None, typer.Option("--filter", help="An ItemFilter as JSON.")
    ] = None,
    k: Overlap = 2,
    as_json: JsonOption = False,
) -> None:
    """Assign the next relation item to the reviewer and show it."""
    from esplora.services.filters import ItemFilter
    from esplora.services.review import assign_next
    from esplora.services.review_state import effective_relation

    item_filter = ItemFilter.from_json(filter_json)
    with opened_store() as store:
        item = assign_next(store, reviewer, item_filter, k=k)
        details = None
        if item is not None:
            with store.reader() as session:
                details = _describe(effective_relation(session, [item], k=k)[item])
    data = {"target": "relation", "target_id": item, "item": details}
    emit(
        data, as_json, lambda: console.print("nothing left to review" if item is None else details)
    )


def _describe(relation: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "machine": asdict(relation.machine),
        "effective": None if relation.effective is None else asdict(relation.effective),
        "state": relation.state.to_dict(),
    }


@app.command("agreement")
def agreement(k: Overlap = 2, as_json: JsonOption = False) -> None:
    """Agreement between reviewers per relation type (Fleiss' κ, Krippendorff's α)."""
    from esplora.services.agreement import agreement_by_relation

    with opened_store() as store:
        data = agreement_by_relation(store, k=k)

    def render() -> None:
        if not data:
            console.print("no votes yet")
        for name, row in data.items():
            console.print(
                f"{name:<12} items {row['items']:>6}  votes {row['votes']:>6}  "
                f"κ {_fmt(row['fleiss_kappa'])}  α {_fmt(row['krippendorff_alpha'])}"
            )

    emit(data, as_json, render)


def _fmt(value: float | None) -> str:
    return "  n/a" if value is None else f"{value:5.3f}"


@app.command("queue")
def queue(
    k: Overlap = 2,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    as_json: JsonOption = False,
) -> None:
    """The adjudication queue: disputed items, most ambiguous first."""
    from esplora.services.review import adjudication_queue

    with opened_store() as store:
        items = adjudication_queue(store, k=k, limit=limit)
    emit(items, as_json, _render_rows(items, "no disputed items"))


def _render_rows(rows: list[dict[str, Any]], empty: str) -> Callable[[], None]:
    def render() -> None:
        if not rows:
            console.print(empty)
        for row in rows:
            console.print(json.dumps(row, sort_keys=True, default=str), highlight=False)

    return render


@app.command("adjudicate")
def adjudicate(
    target_id: Annotated[int, typer.Argument(help="The item's id.")],
    reviewer: Reviewer,
    decision: Annotated[str, typer.Option("--decision", help="accept, reject, flip, relabel…")],
    expected_version: Annotated[
        int, typer.Option("--expected-version", help="The item version you decided on.")
    ],
    to: To = None,
    label: Label = None,
    object_id: ObjectId = None,
    side: Side = None,
    reason: Annotated[str | None, typer.Option("--reason")] = None,
    target: Target = "relation",
    as_json: JsonOption = False,
) -> None:
    """Store the canonical decision on an item (refused if it changed since you read it)."""
    from esplora.services.review import adjudicate as decide

    with opened_store() as store:
        override_id = decide(
            store,
            reviewer,
            target,
            target_id,
            decision,
            values=_proposal(to, label, object_id, side),
            reason=reason,
            expected_version=expected_version,
        )
    data = {"override_id": override_id, "target": target, "target_id": target_id}
    emit(
        data,
        as_json,
        lambda: console.print(f"{target} {target_id}: {decision} (override {override_id})"),
    )


@app.command("bulk")
def bulk(
    reviewer: Reviewer,
    decision: Annotated[str, typer.Option("--decision", help="accept or reject.")],
    filter_json: Annotated[str, typer.Option("--filter", help="An ItemFilter as JSON.")],
    yes: Annotated[
        int | None, typer.Option("--yes", help="Do it: the count the dry run showed.")
    ] = None,
    k: Overlap = 2,
    as_json: JsonOption = False,
) -> None:
    """Accept or reject everything a filter matches: first shows the count, then `--yes N`."""
    from esplora.services.filters import ItemFilter
    from esplora.services.review import bulk_decide

    item_filter = ItemFilter.from_json(filter_json)
    if yes is not None and yes < 0:
        raise EsploraError("--yes takes the count the dry run showed")
    with opened_store() as store:
        count = bulk_decide(
            store, reviewer, item_filter, decision, dry_run=yes is None, expected=yes, k=k
        )
    done = yes is not None
    data = {"count": count, "done": done, "decision": decision, "filter": item_filter.to_dict()}
    message = (
        f"{decision}: {count} items"
        if done
        else f"{count} items would be {decision}ed; run again with --yes {count}"
    )
    emit(data, as_json, lambda: console.print(message))
