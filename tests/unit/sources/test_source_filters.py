"""The LAION-style caption filter as a pure function."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from esplora.core.vocabulary import load_vocabulary
from esplora.sources.filters import (
    DEFAULT_FILTER,
    FEW_OBJECTS,
    TOO_SMALL,
    UNSAFE,
    WATERMARK,
    FilterParams,
    exclusion_reason,
    has_spatial_phrase,
    object_labels,
)

BIG = (256, 256)


@pytest.mark.parametrize(
    ("caption", "reason"),
    [
        ("a dog and a cat on a sofa", None),  # two objects
        ("A man riding a horse at the beach", None),  # person + horse
        ("puppies and kittens", None),  # synonyms: dog, cat
        ("a cloud to the left of the moon", None),  # a spatial phrase, no known objects
        ("a lamp above a table", None),
        ("a dog", FEW_OBJECTS),
        ("two dogs playing", FEW_OBJECTS),  # one kind of object
        ("a hot dog", FEW_OBJECTS),  # a compound is one object, not a dog
        ("sunset at the beach, 4k wallpaper", FEW_OBJECTS),
        ("sunset over the sea", None),  # "over" is a phrase of the grammar (above)
        ("", FEW_OBJECTS),
    ],
)
def test_the_caption_test(caption: str, reason: str | None) -> None:
    assert exclusion_reason(caption, {}, BIG) == reason


def test_object_labels_use_the_lexicon_and_compounds() -> None:
    assert object_labels("a hot dog next to a dog and a teddy bear") == {
        "hot dog",
        "dog",
        "teddy bear",
    }
    assert object_labels("two women with umbrellas") == {"person", "umbrella"}
    assert has_spatial_phrase("a cat behind a dog") and not has_spatial_phrase("a cat")


def test_minimum_size_uses_the_short_side() -> None:
    caption = "a cat left of a dog"
    assert exclusion_reason(caption, {}, (640, 63)) == TOO_SMALL
    assert exclusion_reason(caption, {}, (64, 64)) is None
    assert exclusion_reason(caption, {}, (63, 63), FilterParams(min_side=32)) is None


@pytest.mark.parametrize(
    ("meta", "reason"),
    [
        ({"punsafe": 0.5}, UNSAFE),
        ({"punsafe": 0.49}, None),
        ({"pwatermark": 0.8}, WATERMARK),
        ({"pwatermark": 0.79}, None),
        ({"punsafe": 0.9, "pwatermark": 0.9}, UNSAFE),
        ({"NSFW": "NSFW"}, UNSAFE),
        ({"NSFW": "UNLIKELY"}, None),
        ({"punsafe": None, "pwatermark": None}, None),  # columns present, values missing
        ({"punsafe": float("nan")}, None),
        ({"punsafe": "high"}, None),
        ({}, None),  # no columns: no opinion
    ],
)
def test_watermark_and_unsafe_thresholds(meta: dict[str, object], reason: str | None) -> None:
    assert exclusion_reason("a cat left of a dog", meta, BIG) == reason


def test_thresholds_are_parameters() -> None:
    strict = replace(DEFAULT_FILTER, max_watermark=0.3, max_unsafe=0.1)
    assert exclusion_reason("a cat left of a dog", {"pwatermark": 0.4}, BIG, strict) == WATERMARK
    assert exclusion_reason("a cat left of a dog", {"punsafe": 0.2}, BIG, strict) == UNSAFE


def test_annotations_count_as_named_objects() -> None:
    assert exclusion_reason("", {}, BIG, annotated_labels={"dog", "cat"}) is None
    assert exclusion_reason("a dog", {}, BIG, annotated_labels={"cat"}) is None
    assert exclusion_reason("", {}, BIG, annotated_labels={"dog"}) == FEW_OBJECTS


def test_a_custom_vocabulary_and_a_disabled_filter(tmp_path: Path) -> None:
    (tmp_path / "vocabulary.txt").write_text("[lvis]\nlamp\ntable: desk\n")
    params = FilterParams(vocabulary=load_vocabulary(tmp_path / "vocabulary.txt"))
    assert exclusion_reason("a lamp and a table", {}, BIG, params) is None
    assert exclusion_reason("a dog and a cat", {}, BIG, params) == FEW_OBJECTS
    assert exclusion_reason("", {"punsafe": 1.0}, (1, 1), FilterParams(enabled=False)) is None
