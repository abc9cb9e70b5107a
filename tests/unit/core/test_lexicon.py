"""The shared lexicon: counts, plural lemmas, synonyms, head nouns and pronouns."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esplora.core.errors import InvalidParameter
from esplora.core.lexicon import (
    DEFAULT_LEXICON,
    PRONOUNS,
    Count,
    canonical_label,
    count_of,
    head_noun,
    is_plural,
    is_pronoun,
    lemmatise,
)

PLURALS = {
    "people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse",
    "geese": "goose", "feet": "foot", "teeth": "tooth", "buses": "bus", "boxes": "box",
    "knives": "knife", "leaves": "leaf", "shelves": "shelf", "benches": "bench",
    "glasses": "glass", "dishes": "dish", "cats": "cat", "dogs": "dog", "puppies": "puppy",
    "cookies": "cookie", "shoes": "shoe", "tomatoes": "tomato", "horses": "horse",
    "dresses": "dress", "lenses": "lens", "watches": "watch", "foxes": "fox", "wolves": "wolf",
    "gloves": "glove", "firemen": "fireman", "cacti": "cactus", "ties": "tie", "toys": "toy",
    "moustaches": "moustache", "vases": "vase", "trees": "tree", "bicycles": "bicycle",
}  # fmt: skip

SINGULARS = [
    "bus", "glass", "grass", "dress", "gas", "lens", "cactus", "octopus", "sheep", "deer",
    "fish", "cat", "person", "child", "box", "bench", "tennis", "scissors", "skis", "omen",
    "woman", "man", "mouse", "series", "canvas", "iris",
]  # fmt: skip


@pytest.mark.parametrize(("plural", "singular"), sorted(PLURALS.items()))
def test_plurals_lemmatise_to_their_singular(plural: str, singular: str) -> None:
    assert lemmatise(plural) == singular
    assert is_plural(plural)


@pytest.mark.parametrize("word", SINGULARS)
def test_singular_and_invariant_words_are_left_alone(word: str) -> None:
    assert lemmatise(word) == word
    assert not is_plural(word)


def test_lemmatise_ignores_case() -> None:
    assert lemmatise("Buses") == "bus"
    assert lemmatise("PEOPLE") == "person"


@given(st.sampled_from(sorted(set(PLURALS) | set(PLURALS.values()) | set(SINGULARS))))
def test_lemmatise_is_idempotent(word: str) -> None:
    once = lemmatise(word)
    assert lemmatise(once) == once


LABELS = [
    ("a man", "person"), ("a woman", "person"), ("two girls", "person"), ("a boy", "person"),
    ("the children", "person"), ("a kid", "person"), ("a lady", "person"), ("a guy", "person"),
    ("pedestrians", "person"), ("people", "person"), ("two young women in hats", "person"),
    ("a man wearing a hat", "person"), ("an automobile", "car"), ("puppies", "dog"),
    ("a kitten", "cat"), ("a bike", "bicycle"), ("a sofa", "couch"), ("a TV", "television"),
    ("a cat with a hat", "cat"), ("a dog on a leash", "dog"), ("a cup of coffee", "cup"),
    ("a red traffic light", "traffic light"), ("hot dogs", "hot dog"),
    ("a teddy bear", "teddy bear"), ("the big red bus", "bus"), ("three glasses", "glass"),
    ("a wine glass", "wine glass"),
    ("A Cat", "cat"), ("", ""),
]  # fmt: skip


@pytest.mark.parametrize(("phrase", "label"), LABELS)
def test_canonical_label(phrase: str, label: str) -> None:
    assert canonical_label(phrase) == label


def test_head_noun_is_the_last_word_before_a_modifier() -> None:
    assert head_noun("a small brown dog with a red collar") == "dog"
    assert head_noun("the women in red dresses") == "women"
    assert head_noun("") == ""


COUNTS = [
    ("a cat", Count.exactly(1)), ("an apple", Count.exactly(1)), ("one dog", Count.exactly(1)),
    ("the tree", Count.exactly(1)), ("two dogs", Count.exactly(2)),
    ("ten birds", Count.exactly(10)),
    ("3 cars", Count.exactly(3)), ("cats", Count.at_least_n(2)), ("some cats", Count.at_least_n(2)),
    ("several birds", Count.at_least_n(2)), ("many people", Count.at_least_n(2)),
    ("the dogs", Count.at_least_n(2)), ("the two dogs", Count.exactly(2)),
    ("five men in hats", Count.exactly(5)), ("a bus", Count.exactly(1)),
    ("a glass of water", Count.exactly(1)), ("cat", Count.exactly(1)),
]  # fmt: skip


@pytest.mark.parametrize(("phrase", "count"), COUNTS)
def test_count_of(phrase: str, count: Count) -> None:
    assert count_of(phrase) == count


def test_count_readings_and_sums() -> None:
    one, open_two = Count.exactly(1), Count.at_least_n(2)
    assert one.strict_ok(1) and not one.strict_ok(2) and one.soft_ok(2) and not one.soft_ok(0)
    assert open_two.strict_ok(2) and open_two.strict_ok(5) and not open_two.soft_ok(1)
    assert one + one == Count.exactly(2)
    assert one + open_two == Count.at_least_n(3)
    assert str(one) == "1" and str(open_two) == ">=2"


@pytest.mark.parametrize(("exact", "at_least"), [(2, 1), (None, -1), (-1, -1)])
def test_inconsistent_counts_are_rejected(exact: int | None, at_least: int) -> None:
    with pytest.raises(InvalidParameter):
        Count(exact, at_least)


@pytest.mark.parametrize("pronoun", sorted(PRONOUNS))
def test_pronouns(pronoun: str) -> None:
    assert is_pronoun(pronoun)
    assert is_pronoun(pronoun.upper())


@pytest.mark.parametrize("text", ["a dog", "the hat", "", "its owner", "other"])
def test_non_pronouns(text: str) -> None:
    assert not is_pronoun(text)


def test_the_lexicon_extends_without_changing_the_default() -> None:
    bigger = DEFAULT_LEXICON.extended(
        synonyms={"hound": "dog", "tv": "tv"}, irregular_plurals={"cherubim": "cherub"}
    )
    assert bigger.label("two hounds") == "dog"
    assert bigger.label("a tv") == "tv"
    assert bigger.lemma("cherubim") == "cherub"
    assert canonical_label("two hounds") == "hound"
    assert canonical_label("a tv") == "television"
    assert canonical_label("a hound", lexicon=bigger) == "dog"
