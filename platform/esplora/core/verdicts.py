"""Image-level verdicts: does a generated image show what its prompt asks for?

SPATIAL.md, "Image-level verdicts". Counts first (strict: exactly the prompt's count of every
object, soft: at least it), then every prompted relation through the ESPLoRA rule: **strict**
when it holds strictly for every pair of distinct detected instances of its subject and object
(the duplication cheat, two copies of A with one on the right side, fails it), **soft** when it
holds softly for at least one pair.

A label named by several objects of the prompt ("a dog to the left of a dog") splits its
instances one-to-one between them; every split is tried and the best is kept. The search is
brute force over the splits of the label's highest-scoring instances: at most
:data:`MAX_GROUP_INSTANCES` of them (or as many as the prompt asks for, if more), fewer when the
splits of all such labels together would exceed :data:`MAX_SPLITS`; the rest still count.
Verdicts never depend on the order of the detections: they are put in a canonical order first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations, product

from esplora.core.boxes import BoxLike, as_box, as_disparity, iou
from esplora.core.errors import InvalidDisparity, InvalidParameter
from esplora.core.lexicon import Count
from esplora.core.prompts import IndexedRelation, PromptSpec, prompt_spec
from esplora.core.relations import DEPTH_RELATIONS, Relation
from esplora.core.rules import DEFAULT_DEPTH_GAP, DEFAULT_TAU, EsploraRule, RelationResult, get_rule

__all__ = [
    "MAX_GROUP_INSTANCES",
    "CountVerdict",
    "Detection",
    "ImageVerdict",
    "RelationVerdict",
    "accuracy",
    "assign_labels",
    "image_verdict",
]

MAX_GROUP_INSTANCES = 6
MAX_SPLITS = 5_000

Coords = tuple[float, float, float, float]
Groups = tuple[tuple[int, ...], ...]  # per prompt object: indices of the instances standing for it


@dataclass(frozen=True, slots=True, init=False)
class Detection:
    """One detected box with its canonical label, confidence and median disparity (if known)."""

    label: str
    box: Coords
    score: float
    disparity: float | None = None

    def __init__(
        self, label: str, box: BoxLike, score: float, disparity: float | None = None
    ) -> None:
        if not math.isfinite(score):
            raise InvalidParameter(f"detection score must be finite, got {score!r}")
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "box", as_box(box).as_tuple())
        object.__setattr__(self, "score", float(score))
        object.__setattr__(
            self, "disparity", None if disparity is None else as_disparity(disparity)
        )

    def sort_key(self) -> tuple[str, Coords, float, float]:
        """A total order on detections, so that results never depend on input order."""
        return (
            self.label,
            self.box,
            -self.score,
            -1.0 if self.disparity is None else self.disparity,
        )


def _iou(a: Detection, b: Detection) -> float:
    return iou(as_box(a.box), as_box(b.box))


def _check_threshold(name: str, value: float) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InvalidParameter(f"{name} must lie in [0, 1], got {value!r}")


def _greedy(detections: Iterable[Detection], clash: float, same_label: bool) -> list[Detection]:
    """Keep detections best first, dropping one whose IoU with a kept rival exceeds ``clash``."""
    kept: list[Detection] = []
    for d in sorted(detections, key=lambda d: (-d.score, d.sort_key())):
        rivals = (k for k in kept if (k.label == d.label) == same_label)
        if all(_iou(d, k) <= clash for k in rivals):
            kept.append(d)
    return kept


def assign_labels(
    detections: Iterable[Detection], *, iou_threshold: float = 0.5, same_box_iou: float = 0.9
) -> tuple[Detection, ...]:
    """Per-label non-maximum suppression, then one label per box: the best-scoring phrase.

    Within a label, a box whose IoU with a better one exceeds ``iou_threshold`` is dropped. A
    box reported under several labels (IoU above ``same_box_iou`` across labels: a detector
    queried with several phrases finds the same object under each) keeps only its best label.
    The result is in canonical order.
    """
    _check_threshold("iou_threshold", iou_threshold)
    _check_threshold("same_box_iou", same_box_iou)
    items = list(detections)
    survivors: list[Detection] = []
    for label in sorted({d.label for d in items}):
        survivors += _greedy((d for d in items if d.label == label), iou_threshold, True)
    return tuple(sorted(_greedy(survivors, same_box_iou, False), key=Detection.sort_key))


@dataclass(frozen=True, slots=True)
class RelationVerdict:
    """One prompted relation checked on an image."""

    relation: Relation
    subject: str
    object: str
    subject_index: int  # into PromptSpec.objects
    object_index: int
    strict: bool
    soft: bool
    pairs: int  # instance pairs checked
    margin: float | None  # the smallest ESPLoRA margin over those pairs; None without pairs


@dataclass(frozen=True, slots=True)
class CountVerdict:
    """How many instances of a label the prompt asks for and how many were detected."""

    label: str
    expected: Count
    detected: int
    strict: bool
    soft: bool


@dataclass(frozen=True, slots=True)
class ImageVerdict:
    """The verdict on one image. Fractions are over checked relations (1.0 when there are none).

    ``skipped`` lists prompted relations the ESPLoRA rule does not validate (``near``).
    """

    strict: bool
    soft: bool
    relations: tuple[RelationVerdict, ...]
    counts: tuple[CountVerdict, ...]
    strict_fraction: float
    soft_fraction: float
    skipped: tuple[IndexedRelation, ...] = ()


@lru_cache(maxsize=64)
def _rule(tau: float, depth_gap: float) -> EsploraRule:
    rule = get_rule("esplora-strict", tau=tau, depth_gap=depth_gap)
    if not isinstance(rule, EsploraRule):  # pragma: no cover - the registry's own contract
        raise TypeError(f"esplora-strict resolved to {type(rule).__name__}")
    return rule


class _Pairs:
    """Evaluates (relation, subject instance, object instance) once, however many splits ask."""

    def __init__(self, rule: EsploraRule, instances: Sequence[Detection]) -> None:
        self._rule, self._instances = rule, instances
        self._memo: dict[tuple[Relation, int, int], RelationResult] = {}

    def __call__(self, relation: Relation, i: int, j: int) -> RelationResult:
        key = (relation, i, j)
        if key not in self._memo:
            a, b = self._instances[i], self._instances[j]
            disparity = _disparity(relation, a, b) if relation in DEPTH_RELATIONS else None
            self._memo[key] = self._rule.evaluate(relation, a.box, b.box, disparity=disparity)
        return self._memo[key]


def _disparity(relation: Relation, a: Detection, b: Detection) -> tuple[float, float]:
    d_a, d_b = a.disparity, b.disparity
    if d_a is None or d_b is None:
        missing = a if d_a is None else b
        raise InvalidDisparity(
            f"{relation} needs the disparity of {missing.label} at {missing.box}"
        )
    return (d_a, d_b)


def _splits(pool: tuple[int, ...], needs: Sequence[int]) -> Iterator[Groups]:
    """Every way to give each object of one label its own ``needs[k]`` distinct instances."""
    if not needs:
        yield ()
        return
    for group in combinations(pool, min(needs[0], len(pool))):
        rest = tuple(i for i in pool if i not in group)
        for tail in _splits(rest, needs[1:]):
            yield (group, *tail)


def _n_splits(n: int, needs: Sequence[int]) -> int:
    total = 1
    for need in needs:
        take = min(need, n)
        total, n = total * math.comb(n, take), n - take
    return total


def _pool(
    mine: list[int], instances: Sequence[Detection], needs: list[int], budget: float
) -> tuple[int, ...]:
    """The highest-scoring instances of one label that the split search may use.

    At most :data:`MAX_GROUP_INSTANCES` (or the number the prompt asks for, if larger), and fewer
    while the label's splits would exceed its share ``budget`` of :data:`MAX_SPLITS`.
    """
    ranked = sorted(mine, key=lambda i: (-instances[i].score, i))
    ranked = ranked[: max(MAX_GROUP_INSTANCES, sum(needs))]
    while len(ranked) > sum(needs) and _n_splits(len(ranked), needs) > budget:
        ranked.pop()
    return tuple(sorted(ranked))


def _assignments(spec: PromptSpec, instances: Sequence[Detection]) -> Iterator[Groups]:
    """Per prompt object, the instances standing for it, for every one-to-one split."""
    per_label: dict[str, list[int]] = {}
    for k, obj in enumerate(spec.objects):
        per_label.setdefault(obj.label, []).append(k)
    shared = sum(len(objects) > 1 for objects in per_label.values())
    budget = MAX_SPLITS ** (1 / max(shared, 1))  # the labels' split counts multiply
    options: list[tuple[list[int], list[Groups]]] = []
    for label, objects in per_label.items():
        mine = [i for i, d in enumerate(instances) if d.label == label]
        if len(objects) == 1:  # a label named once stands for all its instances
            options.append((objects, [(tuple(mine),)]))
            continue
        needs = [spec.objects[k].count.at_least for k in objects]
        options.append((objects, list(_splits(_pool(mine, instances, needs, budget), needs))))
    for choice in product(*(splits for _, splits in options)):
        groups: list[tuple[int, ...]] = [()] * len(spec.objects)
        for (objects, _), split in zip(options, choice, strict=True):
            for k, group in zip(objects, split, strict=True):
                groups[k] = group
        yield tuple(groups)


def _judge(
    spec: PromptSpec, rel: IndexedRelation, groups: Groups, pairs: _Pairs
) -> RelationVerdict:
    results = [
        pairs(rel.relation, i, j)
        for i in groups[rel.subject]
        for j in groups[rel.object]
        if i != j  # distinct instances only
    ]
    return RelationVerdict(
        relation=rel.relation,
        subject=spec.objects[rel.subject].label,
        object=spec.objects[rel.object].label,
        subject_index=rel.subject,
        object_index=rel.object,
        strict=bool(results) and all(r.strict for r in results),
        soft=any(r.soft for r in results),
        pairs=len(results),
        margin=min((r.margin for r in results), default=None),
    )


def _rank(verdicts: tuple[RelationVerdict, ...]) -> tuple[bool, bool, int, int, float]:
    """Best split: all strict, then all soft, then the most strict, most soft, widest margins."""
    return (
        all(v.strict for v in verdicts),
        all(v.soft for v in verdicts),
        sum(v.strict for v in verdicts),
        sum(v.soft for v in verdicts),
        sum(v.margin for v in verdicts if v.margin is not None),
    )


def _counts(spec: PromptSpec, instances: Sequence[Detection]) -> tuple[CountVerdict, ...]:
    out = []
    for label, expected in sorted(spec.label_counts().items()):
        n = sum(d.label == label for d in instances)
        out.append(CountVerdict(label, expected, n, expected.strict_ok(n), expected.soft_ok(n)))
    return tuple(out)


def _fraction(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 1.0


def image_verdict(
    spec: PromptSpec | str,
    detections: Iterable[Detection],
    *,
    tau: float = DEFAULT_TAU,
    depth_gap: float = DEFAULT_DEPTH_GAP,
) -> ImageVerdict:
    """The strict and soft verdict of one image against its prompt (or the prompt's spec).

    ``detections`` carry canonical labels (see :func:`assign_labels`); labels the prompt does
    not name are ignored. Depth relations use each detection's median disparity and raise
    :class:`InvalidDisparity` when one is missing. ``tau`` and ``depth_gap`` go to the
    ``esplora-strict`` rule (:class:`InvalidParameter` when out of range).
    """
    spec = prompt_spec(spec) if isinstance(spec, str) else spec
    rule = _rule(tau, depth_gap)
    named = {o.label for o in spec.objects}
    instances = sorted((d for d in detections if d.label in named), key=Detection.sort_key)
    checked = [r for r in spec.relations if r.relation in rule.relations]
    pairs = _Pairs(rule, instances)
    best: tuple[RelationVerdict, ...] = ()
    best_rank: tuple[bool, bool, int, int, float] | None = None
    for groups in _assignments(spec, instances) if checked else ():
        verdicts = tuple(_judge(spec, r, groups, pairs) for r in checked)
        rank = _rank(verdicts)
        if best_rank is None or rank > best_rank:  # the first of equals: canonical order
            best, best_rank = verdicts, rank
    counts = _counts(spec, instances)
    return ImageVerdict(
        strict=all(c.strict for c in counts) and all(v.strict for v in best),
        soft=all(c.soft for c in counts) and all(v.soft for v in best),
        relations=best,
        counts=counts,
        strict_fraction=_fraction([v.strict for v in best]),
        soft_fraction=_fraction([v.soft for v in best]),
        skipped=tuple(r for r in spec.relations if r.relation not in rule.relations),
    )


def accuracy(verdicts: Iterable[ImageVerdict]) -> tuple[float, float]:
    """``(soft, strict)`` accuracy: the share of images whose verdict is true.

    Raises :class:`InvalidParameter` for no verdicts (the share of nothing is undefined).
    """
    items = list(verdicts)
    if not items:
        raise InvalidParameter("accuracy needs at least one image verdict")
    return (sum(v.soft for v in items) / len(items), sum(v.strict for v in items) / len(items))
