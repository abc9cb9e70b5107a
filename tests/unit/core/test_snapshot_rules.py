"""Caps, the stratified split, the content hash and contamination, on plain values."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esplora.core.snapshots import (
    Member,
    apply_caps,
    assign_splits,
    combined_state,
    contamination,
    content_hash,
    normalise_text,
    relation,
    tally,
)


def rel(name: str, subject: str, obj: str, state: str = "accepted") -> dict[str, object]:
    return relation(
        name, (subject, (0, 0, 5, 5)), (obj, (6, 0, 9, 5)), soft=True, strict=True, margin=0.1,
        state=state,
    )  # fmt: skip


def member(sha: str, text: str = "t", *rels: dict[str, object]) -> Member:
    relations = rels or (rel("left_of", "cat", "dog"),)
    return Member(sha, text, "caption", tuple(relations), "accepted")


def test_the_least_settled_state_wins() -> None:
    assert combined_state(["accepted", "changed"]) == "changed"
    assert combined_state(["accepted", "unreviewed", "changed"]) == "unreviewed"
    assert combined_state(["disputed", "accepted"]) == "disputed"
    assert combined_state([]) == "unreviewed"


def test_relation_rounds_boxes_and_margin() -> None:
    out = relation(
        "above", ("a", (1.23456, 2, 3, 4)), ("b", (0, 0, 1, 1)), soft=1, strict=0,  # type: ignore[arg-type]
        margin=0.1234567891, state="accepted",
    )  # fmt: skip
    assert out["subject"] == {"label": "a", "box": [1.235, 2.0, 3.0, 4.0]}
    assert out["margin"] == 0.123457 and out["soft"] is True and out["strict"] is False


def test_caps_keep_the_first_members_by_image_sha() -> None:
    members = [member(f"{i:02d}") for i in range(10)][::-1]
    kept, dropped = apply_caps(members, per_relation=3, per_pair=None)
    assert [m.image_sha256 for m in kept] == ["00", "01", "02"] and dropped == 7


def test_pair_caps_count_label_pairs_in_either_direction() -> None:
    members = [
        member("a", "t", rel("left_of", "cat", "dog")),
        member("b", "t", rel("left_of", "dog", "cat")),
        member("c", "t", rel("above", "car", "tree")),
    ]
    kept, dropped = apply_caps(members, per_relation=None, per_pair=1)
    assert [m.image_sha256 for m in kept] == ["a", "c"] and dropped == 1


def test_no_caps_keep_everything() -> None:
    members = [member(str(i)) for i in range(5)]
    assert apply_caps(members, per_relation=None, per_pair=None) == (
        sorted(members, key=lambda m: m.key),
        0,
    )


def test_split_keeps_an_image_in_one_split_and_is_stratified() -> None:
    members = [
        member(f"{i:03d}", text, rel("left_of", "cat", "dog")) for i in range(50) for text in "ab"
    ]
    members += [member(f"x{i:03d}", "t", rel("above", "car", "tree")) for i in range(30)]
    splits = assign_splits(members, 0.2, seed=7)
    assert len(splits) == 80
    val = {sha for sha, s in splits.items() if s == "validation"}
    assert len([s for s in val if s.startswith("x")]) == 6  # 20% of each stratum
    assert len([s for s in val if not s.startswith("x")]) == 10
    assert assign_splits(list(reversed(members)), 0.2, seed=7) == splits
    assert assign_splits(members, 0.2, seed=8) != splits


def test_small_strata_still_add_up_to_the_fraction() -> None:
    members = [member(str(i), "t", rel("left_of", f"l{i}", "dog")) for i in range(20)]
    splits = assign_splits(members, 0.1, seed=0)
    assert sum(s == "validation" for s in splits.values()) == 2


def test_a_zero_fraction_puts_everything_in_train_and_a_bad_one_is_refused() -> None:
    assert set(assign_splits([member("a")], 0.0, 0).values()) == {"train"}
    with pytest.raises(ValueError, match="outside"):
        assign_splits([member("a")], 1.0, 0)


@given(
    st.lists(
        st.tuples(st.sampled_from("abcdef"), st.sampled_from(["x", "y z"])),
        min_size=1,
        max_size=12,
        unique=True,
    )
)
def test_the_hash_ignores_order_and_database_ids(pairs: list[tuple[str, str]]) -> None:
    members = [member(sha * 8, text) for sha, text in pairs]
    shuffled = list(members)
    random.Random(0).shuffle(shuffled)
    with_ids = [
        Member(m.image_sha256, m.text, m.text_source, m.relations, m.review_state, 99)
        for m in shuffled
    ]
    assert content_hash(members) == content_hash(with_ids)


def test_the_hash_sees_text_relations_and_state() -> None:
    base = member("a", "a cat left of a dog")
    assert content_hash([base]) != content_hash([member("a", "a cat left of the dog")])
    assert content_hash([base]) != content_hash(
        [member("a", "a cat left of a dog", rel("left_of", "dog", "cat"))]
    )
    changed = Member(base.image_sha256, base.text, "caption", base.relations, "changed")
    assert content_hash([base]) != content_hash([changed])


def test_contamination_folds_case_and_punctuation() -> None:
    assert normalise_text("  A Cat, left of   the DOG! ") == "a cat left of the dog"
    hits = contamination(
        ["a cat left of the dog", "a car above a tree"], [("A cat left of the dog.", "urban")]
    )
    assert hits == [
        {"text": "a cat left of the dog", "prompt": "A cat left of the dog.", "benchmark": "urban"}
    ]


def test_tally_counts_members_per_relation_pair_and_split() -> None:
    members = [
        member("a", "t", rel("left_of", "cat", "dog"), rel("left_of", "cat", "tree")),
        member("b", "t", rel("above", "dog", "cat")),
    ]
    out = tally(members, {"a": "train", "b": "validation"})
    assert out["relations"] == {"above": 1, "left_of": 1}
    assert out["pairs"] == {"cat|dog": 2, "cat|tree": 1}
    assert out["splits"] == {"train": 1, "validation": 1}
    assert out["members"] == 2 and out["images"] == 2
