"""Image-level verdicts of generated images against their prompts (SPATIAL.md)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esplora.core.errors import InvalidBox, InvalidDisparity, InvalidParameter
from esplora.core.lexicon import Count
from esplora.core.prompts import prompt_spec
from esplora.core.relations import Relation
from esplora.core.verdicts import (
    Detection,
    ImageVerdict,
    accuracy,
    assign_labels,
    image_verdict,
)

D = Detection


def at(label: str, x: float, y: float = 0.0, size: float = 10.0, **kw: float) -> Detection:
    """A square box of side ``size`` with its top-left corner at (x, y)."""
    return D(label, (x, y, x + size, y + size), kw.get("score", 0.9), kw.get("disparity"))


def test_a_clean_image_passes_strict_and_soft() -> None:
    v = image_verdict("a cat to the left of a dog", [at("cat", 0), at("dog", 50)])
    assert (v.strict, v.soft) == (True, True)
    (rel,) = v.relations
    assert (rel.relation, rel.subject, rel.object, rel.pairs) == (Relation.LEFT_OF, "cat", "dog", 1)
    assert rel.margin is not None and rel.margin > 0
    assert (v.strict_fraction, v.soft_fraction) == (1.0, 1.0)


def test_wrong_direction_fails_both() -> None:
    v = image_verdict("a cat to the left of a dog", [at("cat", 50), at("dog", 0)])
    assert (v.strict, v.soft) == (False, False)
    assert (v.strict_fraction, v.soft_fraction) == (0.0, 0.0)


def test_too_much_overlap_is_soft_only() -> None:
    v = image_verdict("a cat to the left of a dog", [at("cat", 0), at("dog", 4)])
    assert (v.strict, v.soft) == (False, True)
    assert (v.strict_fraction, v.soft_fraction) == (0.0, 1.0)


def test_tau_is_passed_to_the_rule() -> None:
    dets = [at("cat", 0), at("dog", 6)]  # overlap 4 of 10: strict for tau <= 2.5 only
    assert image_verdict("a cat to the left of a dog", dets, tau=2).strict
    assert not image_verdict("a cat to the left of a dog", dets).strict
    with pytest.raises(InvalidParameter):
        image_verdict("a cat to the left of a dog", dets, tau=0.5)


def test_a_missing_object_fails_both() -> None:
    v = image_verdict("a cat to the left of a dog", [at("cat", 0)])
    assert (v.strict, v.soft) == (False, False)
    assert v.relations[0].pairs == 0 and v.relations[0].margin is None


def test_counts_strict_needs_equality_soft_at_least() -> None:
    v = image_verdict("two cats above a dog", [at("cat", 0), at("cat", 20), at("dog", 10, 50)])
    assert (v.strict, v.soft) == (True, True)
    three = [at("cat", 0), at("cat", 20), at("cat", 40), at("dog", 10, 50)]
    v = image_verdict("two cats above a dog", three)
    assert (v.strict, v.soft) == (False, True)
    cat = next(c for c in v.counts if c.label == "cat")
    assert (cat.expected, cat.detected, cat.strict, cat.soft) == (Count.exactly(2), 3, False, True)


def test_a_bare_plural_means_at_least_two() -> None:
    one = image_verdict("cats above a dog", [at("cat", 0), at("dog", 0, 50)])
    assert (one.strict, one.soft) == (False, False)
    three = [at("cat", 0), at("cat", 20), at("cat", 40), at("dog", 20, 50)]
    assert image_verdict("cats above a dog", three).strict


def test_the_duplication_cheat_is_soft_not_strict() -> None:
    # Two copies of the cat, one on each side of the dog: one copy "satisfies" the prompt.
    v = image_verdict("a cat to the left of a dog", [at("cat", 0), at("cat", 100), at("dog", 50)])
    assert (v.strict, v.soft) == (False, True)
    assert (v.relations[0].strict, v.relations[0].soft, v.relations[0].pairs) == (False, True, 2)


BOXES = st.tuples(st.floats(0, 500), st.floats(0, 500), st.floats(1, 200), st.floats(1, 200)).map(
    lambda t: (t[0], t[1], t[0] + t[2], t[1] + t[3])
)


@given(BOXES, st.floats(1, 100), st.floats(1, 100), st.booleans())
def test_duplication_cheat_property(
    obj: tuple[float, ...], w: float, gap: float, flip: bool
) -> None:
    """Copies of A clearly on both sides of B: soft holds, strict never does."""
    x0, y0, x1, y1 = obj
    left = D("cat", (x0 - gap - w, y0, x0 - gap, y1), 0.9)
    right = D("cat", (x1 + gap, y0, x1 + gap + w, y1), 0.8)
    cats = [right, left] if flip else [left, right]
    v = image_verdict("a cat to the left of a dog", [*cats, D("dog", obj, 0.7)])
    assert v.soft and not v.strict
    assert v.relations[0].soft and not v.relations[0].strict


def test_same_label_prompts_use_a_one_to_one_assignment() -> None:
    spec = prompt_spec("a dog to the left of a dog")
    assert image_verdict(spec, [at("dog", 80), at("dog", 0)]).strict
    assert not image_verdict(spec, [at("dog", 0)]).soft  # one dog cannot be left of itself
    v = image_verdict(spec, [at("dog", 0), at("dog", 40), at("dog", 80)])
    assert (v.strict, v.soft) == (False, True)  # three dogs for two: counts fail strict


def test_same_label_with_another_relation_picks_the_split_that_works() -> None:
    # dog#0 left of dog#1, and a cat above dog#1: only one split of the two dogs satisfies both.
    spec = prompt_spec("a dog to the left of a dog, and a cat above the dog")
    assert [o.label for o in spec.objects] == ["dog", "dog", "cat"]
    # The right dog is higher than the left one; the cat sits between their heights.
    dogs = [at("dog", 100, 0), at("dog", 0, 100)]
    v = image_verdict(spec, [*dogs, at("cat", 50, -50)])
    assert (v.strict, v.soft) == (True, True)
    cat = image_verdict(spec, [*dogs, at("cat", 50, 50)])
    assert (cat.strict, cat.soft) == (False, False)
    assert cat.strict_fraction == 0.5


def test_chains_refer_back_to_the_same_object() -> None:
    dets = [at("cat", 0, 50), at("dog", 50, 50), at("bird", 50, 0)]
    v = image_verdict("a cat to the left of a dog, and the dog below a bird", dets)
    assert (v.strict, v.soft) == (True, True)
    assert [r.relation for r in v.relations] == [Relation.LEFT_OF, Relation.BELOW]


def test_depth_relations_use_the_median_disparity() -> None:
    near, far = at("cat", 0, disparity=0.9), at("dog", 0, disparity=0.2)
    assert image_verdict("a cat in front of a dog", [near, far]).strict
    assert image_verdict("a dog behind a cat", [near, far]).strict
    close = [at("cat", 0, disparity=0.5), at("dog", 0, disparity=0.45)]
    v = image_verdict("a cat in front of a dog", close)
    assert (v.strict, v.soft) == (False, True)
    assert image_verdict("a cat in front of a dog", close, depth_gap=0.05).strict


def test_depth_relations_need_disparities() -> None:
    with pytest.raises(InvalidDisparity, match="dog"):
        image_verdict("a cat in front of a dog", [at("cat", 0, disparity=0.5), at("dog", 0)])


def test_near_is_kept_but_not_checked() -> None:
    v = image_verdict("a cat near a dog", [at("cat", 0), at("dog", 400)])
    assert v.relations == ()
    assert [r.relation for r in v.skipped] == [Relation.NEAR]
    assert (v.strict, v.soft, v.strict_fraction) == (True, True, 1.0)


def test_unprompted_labels_are_ignored() -> None:
    dets = [at("cat", 0), at("dog", 50), at("person", 20), at("person", 200)]
    assert image_verdict("a cat to the left of a dog", dets).strict


LABELS = st.sampled_from(["cat", "dog", "bird", "tree"])
DETECTIONS = st.lists(
    st.builds(D, LABELS, BOXES, st.floats(0, 1), st.one_of(st.none(), st.floats(0, 1))),
    max_size=7,
)
PROMPTS = st.sampled_from(
    [
        "a cat to the left of a dog",
        "a dog to the left of a dog",
        "two cats above a bird, and the bird to the right of a tree",
        "a cat below a cat and a dog left of a bird",
        "cats to the right of a tree",
    ]
)


@given(PROMPTS, DETECTIONS, st.randoms(use_true_random=False))
def test_verdicts_do_not_depend_on_detection_order(
    prompt: str, detections: list[Detection], rnd: object
) -> None:
    import random

    assert isinstance(rnd, random.Random)
    shuffled = list(detections)
    rnd.shuffle(shuffled)
    assert image_verdict(prompt, detections) == image_verdict(prompt, shuffled)


# --- labels, NMS and accuracy -------------------------------------------------------------------


def test_per_label_nms_keeps_the_best_of_overlapping_boxes() -> None:
    dets = [at("cat", 0, score=0.5), at("cat", 1, score=0.9), at("cat", 50, score=0.3)]
    kept = assign_labels(dets)
    assert [(d.box[0], d.score) for d in kept] == [(1.0, 0.9), (50.0, 0.3)]
    assert len(assign_labels(dets, iou_threshold=0.9)) == 3


def test_each_box_gets_its_best_scoring_label() -> None:
    dets = [at("cat", 0, score=0.4), at("dog", 0, score=0.7), at("cat", 50, score=0.6)]
    kept = assign_labels(dets)
    assert sorted((d.label, d.box[0]) for d in kept) == [("cat", 50.0), ("dog", 0.0)]


@given(DETECTIONS, st.randoms(use_true_random=False))
def test_assign_labels_does_not_depend_on_order(detections: list[Detection], rnd: object) -> None:
    import random

    assert isinstance(rnd, random.Random)
    shuffled = list(detections)
    rnd.shuffle(shuffled)
    assert assign_labels(detections) == assign_labels(shuffled)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_assign_labels_rejects_bad_thresholds(bad: float) -> None:
    with pytest.raises(InvalidParameter):
        assign_labels([], iou_threshold=bad)
    with pytest.raises(InvalidParameter):
        assign_labels([], same_box_iou=bad)


def test_accuracy_is_the_share_of_true_verdicts() -> None:
    def verdict(strict: bool, soft: bool) -> ImageVerdict:
        return ImageVerdict(strict, soft, (), (), 1.0, 1.0)

    verdicts = [
        verdict(True, True),
        verdict(False, True),
        verdict(False, False),
        verdict(False, True),
    ]
    assert accuracy(verdicts) == (0.75, 0.25)
    with pytest.raises(InvalidParameter):
        accuracy([])


def test_bad_detections_are_rejected() -> None:
    with pytest.raises(InvalidBox):
        D("cat", (10, 0, 5, 10), 0.9)
    with pytest.raises(InvalidParameter):
        D("cat", (0, 0, 5, 10), float("nan"))
    with pytest.raises(InvalidDisparity):
        D("cat", (0, 0, 5, 10), 0.9, -0.1)


def test_a_large_same_label_count_is_split_whole() -> None:
    # Eleven dogs in a row: the ten on the left stand for "ten dogs", the last for "a dog".
    dogs = [at("dog", 20 * k) for k in range(11)]
    v = image_verdict("ten dogs to the left of a dog", dogs)
    assert (v.strict, v.soft) == (True, True)
    assert v.relations[0].pairs == 10


def test_the_split_search_stays_bounded() -> None:
    import time

    dogs = [at("dog", 20 * k, score=0.5 + k / 100) for k in range(12)]
    cats = [at("cat", 20 * k, 100, score=0.5 + k / 100) for k in range(12)]
    prompt = "two dogs to the left of two dogs and two cats above two cats"
    start = time.perf_counter()
    v = image_verdict(prompt, [*dogs, *cats])
    assert time.perf_counter() - start < 5.0
    assert (v.strict, v.soft) == (False, False)  # twelve of each, four asked: counts fail
    assert [r.strict for r in v.relations] == [True, False]  # cats side by side: none above
