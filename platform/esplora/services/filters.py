"""``ItemFilter``: the one typed filter over relation items (Explore, snapshots, review, CLI).

A **relation item** is one ``relations`` row (a geometric relation between two detected
objects, stored in canonical direction: ``left_of``, ``above`` or ``in_front_of``) seen with its
image, the image's samples and its review state. Every field left at its default matches
everything; set fields are combined with AND. Field by field (the DuckDB translation in
``esplora.analytics`` implements exactly this):

- ``relations``: any of these readings. A canonical name (``left_of``, ``above``,
  ``in_front_of``) matches rows with that ``relation``, read as stored (subject = the row's
  subject). An inverse name (``right_of``, ``below``, ``behind``) matches rows with the
  canonical relation of the same axis, read from the other side: its subject is the row's
  *object*. ``near`` has no rows and is refused.
- ``subject_label`` / ``object_label``: equal to the label of the reading's subject / object
  (with ``relations`` empty, the stored direction). ``relations=("right_of",),
  subject_label="dog"`` therefore matches the row ``cat left_of dog``.
- ``labels``: the subject's or the object's label is one of these (either side, any label).
- ``strict`` / ``soft``: the row's machine ``strict`` / ``soft`` verdict equals the value.
- ``margin_min`` / ``margin_max``: ``margin_min <= margin <= margin_max`` (the row's signed
  margin, inclusive bounds).
- ``score_min`` / ``score_max``: the pair's score, ``min(subject.score, object.score)``, within
  the inclusive bounds; a missing score (dataset annotations, human boxes) counts as 1.0.
- ``origin``: the image's ``origin`` (``natural`` or ``synthetic``).
- ``review_states``: the item's effective review state (``esplora.services.review_state``,
  with the review overlap k) is one of ``unreviewed``, ``accepted``, ``rejected``, ``changed``,
  ``disputed``.
- ``source``: the image has a sample whose source's ``name`` equals this.
- ``excluded``: ``True`` — the image has at least one sample and all of them are excluded;
  ``False`` — the image has a sample that is not excluded, or no sample at all.
- ``image_ids``: the row's ``image_id`` is one of these.

``to_json`` is canonical (sorted keys, defaults left out, list fields sorted and de-duplicated),
so equal filters serialise to equal text, whatever order they were built in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, case, exists, false, func, or_, select
from sqlalchemy.orm import aliased

from esplora.core.errors import SpatialError
from esplora.core.relations import AXIS_OF, CANONICAL, parse_relation
from esplora.db.detections import DetectedObject
from esplora.db.enums import Origin, ReviewTarget
from esplora.db.images import Image, Sample, Source
from esplora.db.relations import GeometricRelation
from esplora.errors import EsploraError
from esplora.services.review_state import DEFAULT_OVERLAP, ReviewStatus, state_sql

_TUPLES = ("relations", "labels", "review_states", "image_ids")
_FLOATS = ("margin_min", "margin_max", "score_min", "score_max")
_BOOLS = ("strict", "soft", "excluded")
_STRINGS = ("subject_label", "object_label", "origin", "source")


@dataclass(frozen=True, slots=True)
class ItemFilter:
    """A filter over relation items; see the module docstring for each field's meaning."""

    relations: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    subject_label: str | None = None
    object_label: str | None = None
    strict: bool | None = None
    soft: bool | None = None
    margin_min: float | None = None
    margin_max: float | None = None
    score_min: float | None = None
    score_max: float | None = None
    origin: str | None = None
    review_states: tuple[str, ...] = ()
    source: str | None = None
    excluded: bool | None = None
    image_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in _TUPLES:
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (tuple, list, set, frozenset)):
                raise EsploraError(f"filter field {name!r} must be a list, not {value!r}")
        for name in _BOOLS:
            _check_type(name, getattr(self, name), bool)
        for name in _STRINGS:
            _check_type(name, getattr(self, name), str)
        for name in _FLOATS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, type(None))):
                raise EsploraError(f"filter field {name!r} must be a number, not {value!r}")
        object.__setattr__(self, "relations", _sorted(_relation_name(r) for r in self.relations))
        object.__setattr__(self, "review_states", _sorted(_state(s) for s in self.review_states))
        object.__setattr__(self, "labels", _sorted(str(x) for x in self.labels))
        object.__setattr__(self, "image_ids", _sorted(_image_id(i) for i in self.image_ids))
        if self.origin is not None and self.origin not in {o.value for o in Origin}:
            raise EsploraError(f"unknown origin {self.origin!r} (natural or synthetic)")
        _check_range("margin", self.margin_min, self.margin_max)
        _check_range("score", self.score_min, self.score_max)

    def to_dict(self) -> dict[str, Any]:
        """The fields that differ from their defaults, lists for tuples."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value in ((), None):
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_json(self) -> str:
        """Canonical JSON: equal filters give identical text."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str | dict[str, Any] | None) -> ItemFilter:
        """Parse ``to_json``'s output (or its dict); unknown fields are an error."""
        if data is None or data == "":
            return cls()
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as error:
                raise EsploraError(f"filter is not valid JSON: {error}") from error
        if not isinstance(data, dict):
            raise EsploraError("a filter is a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise EsploraError(f"unknown filter field(s) {unknown}; known: {sorted(known)}")
        values: dict[str, Any] = {
            k: tuple(v) if k in _TUPLES and isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**values)


def _check_type(name: str, value: Any, kind: type) -> None:
    if value is not None and not isinstance(value, kind):
        raise EsploraError(f"filter field {name!r} must be {kind.__name__}, not {value!r}")


def _check_range(name: str, low: float | None, high: float | None) -> None:
    if low is not None and high is not None and low > high:
        raise EsploraError(f"{name}_min {low} is above {name}_max {high}")


def _sorted(values: Any) -> tuple[Any, ...]:
    return tuple(sorted(set(values)))


def _relation_name(name: Any) -> str:
    try:
        relation = parse_relation(str(name))
    except SpatialError as error:
        raise EsploraError(f"unknown relation {name!r} in filter: {error}") from error
    if relation not in AXIS_OF:
        raise EsploraError(f"relation {name!r} has no relation items (only directional ones)")
    return relation.value


def _state(name: Any) -> str:
    try:
        return ReviewStatus(str(name)).value
    except ValueError:
        known = ", ".join(s.value for s in ReviewStatus)
        raise EsploraError(f"unknown review state {name!r} (one of {known})") from None


def _image_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EsploraError(f"image id {value!r} is not an integer")
    return value


def relation_items() -> Select[tuple[GeometricRelation]]:
    """The base statement the filter narrows: every relation row."""
    return select(GeometricRelation)


S = TypeVar("S", bound=Select[*tuple[Any, ...]])


def apply(statement: S, item_filter: ItemFilter, *, k: int = DEFAULT_OVERLAP) -> S:
    """``statement`` (a select with ``relations`` in its FROM) narrowed to the filter's items.

    Conditions are correlated ``EXISTS``/subqueries on ``GeometricRelation``, so the caller's
    joins and columns are left as they are.
    """
    conditions = _conditions(item_filter, k)
    return statement.where(and_(*conditions)) if conditions else statement


def _conditions(f: ItemFilter, k: int) -> list[ColumnElement[bool]]:
    row = GeometricRelation
    out: list[ColumnElement[bool]] = [_readings(f)] if _has_reading(f) else []
    if f.labels:
        out.append(or_(_label(row.subject_id).in_(f.labels), _label(row.object_id).in_(f.labels)))
    out += [
        getattr(row, name) == getattr(f, name)
        for name in ("strict", "soft")
        if getattr(f, name) is not None
    ]
    if f.margin_min is not None:
        out.append(row.margin >= f.margin_min)
    if f.margin_max is not None:
        out.append(row.margin <= f.margin_max)
    if f.score_min is not None or f.score_max is not None:
        out.append(_score_range(f.score_min, f.score_max))
    if f.origin is not None:
        out.append(exists().where(Image.id == row.image_id, Image.origin == f.origin))
    if f.review_states:
        out.append(state_sql(ReviewTarget.RELATION, row.id, k=k).in_(f.review_states))
    if f.source is not None:
        out.append(
            _has_sample(Sample.source_id.in_(select(Source.id).where(Source.name == f.source)))
        )
    if f.excluded is not None:
        out.append(_excluded(f.excluded))
    if f.image_ids:
        out.append(row.image_id.in_(f.image_ids))
    return out


def _has_reading(f: ItemFilter) -> bool:
    return bool(f.relations) or f.subject_label is not None or f.object_label is not None


def _readings(f: ItemFilter) -> ColumnElement[bool]:
    """Any requested reading: (relation, which side is the subject) with its label checks."""
    row = GeometricRelation
    if not f.relations:
        return and_(*_side_labels(f, row.subject_id, row.object_id))
    options = []
    for name in f.relations:
        relation = parse_relation(name)
        canonical = CANONICAL[AXIS_OF[relation]]
        inverse = relation is not canonical
        subject, obj = (
            (row.object_id, row.subject_id) if inverse else (row.subject_id, row.object_id)
        )
        options.append(and_(row.relation == canonical.value, *_side_labels(f, subject, obj)))
    return or_(false(), *options)


def _side_labels(f: ItemFilter, subject: Any, obj: Any) -> list[ColumnElement[bool]]:
    out = []
    if f.subject_label is not None:
        out.append(_label(subject) == f.subject_label)
    if f.object_label is not None:
        out.append(_label(obj) == f.object_label)
    return out


def _label(object_id: Any) -> Any:
    box = aliased(DetectedObject)
    return select(box.label).where(box.id == object_id).scalar_subquery()


def _score_range(low: float | None, high: float | None) -> ColumnElement[bool]:
    a, b = aliased(DetectedObject), aliased(DetectedObject)
    sa_, sb = func.coalesce(a.score, 1.0), func.coalesce(b.score, 1.0)
    score = case((sa_ < sb, sa_), else_=sb)  # portable min of two values (no LEAST on SQLite)
    bounds = [score >= low] if low is not None else []
    bounds += [score <= high] if high is not None else []
    row = GeometricRelation
    return exists().where(a.id == row.subject_id, b.id == row.object_id, *bounds)


def _has_sample(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(Sample.image_id == GeometricRelation.image_id, condition)


def _excluded(value: bool) -> ColumnElement[bool]:
    usable = _has_sample(Sample.excluded.is_(False))
    if value:
        return and_(_has_sample(Sample.excluded.is_(True)), ~usable)
    return ~_has_sample(Sample.excluded.is_(True)) | usable
