"""What can be reviewed, and what a verdict may propose for it.

Proposals (``ReviewVote.proposal`` and ``Override.values``) are stored with sorted keys:

- ``accept`` / ``reject``: ``{}``.
- ``flip`` (relations and claims): ``{}`` — the subject and the object swap.
- ``relabel``: ``{"relation": NAME}`` for relations and claims (any directional relation),
  ``{"label": LABEL}`` for objects.
- ``choose_detection``: ``{"object_id": ID, "side": "subject"|"object"}`` for relations (the
  side whose box is replaced), ``{"object_id": ID}`` for objects; the object must be on the
  same image.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from esplora.core.errors import SpatialError
from esplora.core.relations import AXIS_OF, parse_relation
from esplora.db.base import Base
from esplora.db.detections import DetectedObject
from esplora.db.enums import ReviewTarget, VoteVerdict
from esplora.db.images import Sample
from esplora.db.relations import CaptionClaim, GeometricRelation
from esplora.db.synthetic import Validation
from esplora.errors import EsploraError

MODELS: dict[ReviewTarget, type[Base]] = {
    ReviewTarget.SAMPLE: Sample,
    ReviewTarget.OBJECT: DetectedObject,
    ReviewTarget.RELATION: GeometricRelation,
    ReviewTarget.CLAIM: CaptionClaim,
    ReviewTarget.VALIDATION: Validation,
}
_DIRECTED = (ReviewTarget.RELATION, ReviewTarget.CLAIM)


def reviewer_name(name: str) -> str:
    """A reviewer's name, stripped; empty or over-long names are refused."""
    clean = (name or "").strip()
    if not clean or len(clean) > 100:
        raise EsploraError("a reviewer name is needed (1 to 100 characters)")
    return clean


def target_type_of(value: str | ReviewTarget) -> ReviewTarget:
    try:
        return ReviewTarget(value)
    except ValueError:
        known = ", ".join(t.value for t in ReviewTarget)
        raise EsploraError(f"unknown review target {value!r} (one of {known})") from None


def verdict_of(value: str | VoteVerdict) -> VoteVerdict:
    try:
        return VoteVerdict(value)
    except ValueError:
        known = ", ".join(v.value for v in VoteVerdict)
        raise EsploraError(f"unknown verdict {value!r} (one of {known})") from None


def load_target(session: Session, target_type: ReviewTarget, target_id: int) -> Any:
    """The reviewed row, or an error naming what is missing."""
    row = session.get(MODELS[target_type], target_id)
    if row is None:
        raise EsploraError(f"there is no {target_type.value} {target_id}")
    return row


def image_of(session: Session, target_type: ReviewTarget, row: Any) -> int | None:
    """The image a reviewed row is on (None for validations)."""
    if target_type is ReviewTarget.CLAIM:
        sample = session.get(Sample, row.sample_id)
        return None if sample is None else sample.image_id
    return getattr(row, "image_id", None)


def check_proposal(
    session: Session,
    target_type: ReviewTarget,
    row: Any,
    verdict: VoteVerdict,
    proposal: dict[str, Any] | None,
) -> dict[str, Any]:
    """The proposal, validated for this verdict and target, with sorted keys."""
    given = dict(proposal or {})
    if verdict in (VoteVerdict.ACCEPT, VoteVerdict.REJECT):
        return _empty(verdict, given)
    if verdict is VoteVerdict.FLIP:
        if target_type not in _DIRECTED:
            raise EsploraError(f"only relations and claims can be flipped, not a {target_type}")
        return _empty(verdict, given)
    if verdict is VoteVerdict.RELABEL:
        return _relabel(target_type, given)
    return _chosen_detection(session, target_type, row, given)


def _empty(verdict: VoteVerdict, given: dict[str, Any]) -> dict[str, Any]:
    if given:
        raise EsploraError(f"{verdict.value} takes no proposal, got {sorted(given)}")
    return {}


def _relabel(target_type: ReviewTarget, given: dict[str, Any]) -> dict[str, Any]:
    if target_type in _DIRECTED and set(given) == {"relation"}:
        try:
            relation = parse_relation(str(given["relation"]))
        except SpatialError as error:
            raise EsploraError(f"cannot relabel to {given['relation']!r}: {error}") from error
        if relation not in AXIS_OF:
            raise EsploraError(f"cannot relabel to {relation.value!r}: not a directional relation")
        return {"relation": relation.value}
    if target_type is ReviewTarget.OBJECT and set(given) == {"label"}:
        label = str(given["label"]).strip()
        if not label:
            raise EsploraError("relabel needs a non-empty label")
        return {"label": label}
    need = '{"label": …}' if target_type is ReviewTarget.OBJECT else '{"relation": …}'
    raise EsploraError(f"relabel of a {target_type.value} needs {need}, got {given}")


def _chosen_detection(
    session: Session, target_type: ReviewTarget, row: Any, given: dict[str, Any]
) -> dict[str, Any]:
    if target_type not in (ReviewTarget.RELATION, ReviewTarget.OBJECT):
        raise EsploraError(
            f"choose_detection applies to relations and objects, not a {target_type}"
        )
    keys = {"object_id", "side"} if target_type is ReviewTarget.RELATION else {"object_id"}
    if set(given) != keys:
        raise EsploraError(f"choose_detection of a {target_type.value} needs {sorted(keys)}")
    if target_type is ReviewTarget.RELATION and given["side"] not in ("subject", "object"):
        raise EsploraError(f"side must be 'subject' or 'object', not {given['side']!r}")
    chosen = given["object_id"]
    box = session.get(DetectedObject, chosen) if isinstance(chosen, int) else None
    if box is None or box.image_id != row.image_id:
        raise EsploraError(f"object {chosen!r} is not a detection on image {row.image_id}")
    return dict(sorted(given.items()))
