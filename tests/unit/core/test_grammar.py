"""The prompt grammar: clauses, their parts and spans, prompt specs and rendering (SPATIAL.md)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esplora.core.errors import InvalidParameter, UnknownRelation, UnparsablePrompt
from esplora.core.grammar import (
    FRAMING_PREFIXES,
    LINK_WORDS,
    Ambiguity,
    Clause,
    ParsedPrompt,
    SpatialRelation,
    parse,
    parse_spatial,
)
from esplora.core.lexicon import PRONOUNS, Count
from esplora.core.prompts import IndexedRelation, prompt_spec, render_complex, render_simple
from esplora.core.relations import PHRASE_TABLE, PHRASES, Relation


def only(prompt: str) -> Clause:
    parsed = parse(prompt)
    assert len(parsed.clauses) == 1, parsed.clauses
    return parsed.clauses[0]


def parts(clause: Clause) -> tuple[str, str, str, str]:
    return clause.subject, clause.link, clause.phrase.text, clause.object


def assert_spans_agree(parsed: ParsedPrompt) -> None:
    p = parsed.prompt
    for c in parsed.clauses:
        assert c.span.of(p) == c.text
        assert c.subject_span.of(p) == c.subject
        assert c.link_span.of(p) == c.link
        assert c.object_span.of(p) == c.object
        assert c.phrase_span.of(p).lower().split() == c.phrase.text.split()
        assert c.span.start <= c.subject_span.start <= c.phrase_span.start
        assert c.phrase_span.end <= c.object_span.start <= c.object_span.end <= c.span.end
        for m in (*c.subject_mentions, *c.object_mentions):
            assert m.span.of(p) == m.text


# --- SPATIAL.md's own examples ----------------------------------------------------------------


def test_prefix_and_trailing_text_stay_outside_the_clause() -> None:
    parsed = parse("a photo of a cat to the right of a dog, at dusk")
    assert parsed.prefix is not None and parsed.prefix.of(parsed.prompt) == "a photo of"
    (clause,) = parsed.clauses
    assert parts(clause) == ("a cat", "", "to the right of", "a dog")
    assert clause.relation is Relation.RIGHT_OF
    assert clause.ambiguous is None
    assert_spans_agree(parsed)


def test_two_clauses_joined_by_and() -> None:
    parsed = parse("a car to the right of a tree and a dog below a bench")
    assert [parts(c) for c in parsed.clauses] == [
        ("a car", "", "to the right of", "a tree"),
        ("a dog", "", "below", "a bench"),
    ]
    assert_spans_agree(parsed)


def test_copula_is_a_link() -> None:
    assert parts(only("the car is to the right of the tree")) == (
        "the car", "is", "to the right of", "the tree",
    )  # fmt: skip


def test_modifiers_belong_to_their_noun() -> None:
    clause = only("a cat with a hat to the right of a dog")
    assert parts(clause) == ("a cat with a hat", "", "to the right of", "a dog")
    assert clause.subject_label == "cat"


def test_and_without_a_relation_on_both_sides_belongs_to_the_noun_phrase() -> None:
    clause = only("a cat and a dog to the right of a tree")
    assert clause.subject == "a cat and a dog"
    assert [m.label for m in clause.subject_mentions] == ["cat", "dog"]


def test_two_phrases_in_one_clause_are_ambiguous() -> None:
    clause = only("a cat below a dog below a bird")
    assert clause.ambiguous is Ambiguity.MULTIPLE_PHRASES
    assert len(clause.phrase_spans) == 2


@pytest.mark.parametrize("pronoun", sorted(PRONOUNS))
def test_pronoun_subjects_and_objects_are_ambiguous(pronoun: str) -> None:
    assert only(f"a cat to the left of {pronoun}").ambiguous is Ambiguity.PRONOUN_OBJECT
    assert only(f"{pronoun} to the left of a cat").ambiguous is Ambiguity.PRONOUN_SUBJECT


@pytest.mark.parametrize(
    ("prompt", "reason"),
    [
        ("to the left of a dog", Ambiguity.EMPTY_SUBJECT),
        ("is directly above a dog", Ambiguity.EMPTY_SUBJECT),
        ("a cat to the left of", Ambiguity.EMPTY_OBJECT),
        ("a cat to the left of, at dusk", Ambiguity.EMPTY_OBJECT),
    ],
)
def test_empty_subject_or_object_is_ambiguous(prompt: str, reason: Ambiguity) -> None:
    assert only(prompt).ambiguous is reason


# --- matching -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "phrase"),
    [
        ("a cat underneath a dog", "underneath"),
        ("a cat under a dog", "under"),
        ("a cat to the right of a dog", "to the right of"),
        ("a cat right of a dog", "right of"),
        ("a cat on the right side of a dog", "on the right side of"),
        ("a cat on the top of a box", "on the top of"),
        ("a cat on top of a box", "on top of"),
        ("a cat on the bottom of a box", "on the bottom of"),
        ("a cat in back of a box", "in back of"),
    ],
)
def test_longest_phrase_wins(prompt: str, phrase: str) -> None:
    assert only(prompt).phrase.text == phrase


@pytest.mark.parametrize("phrase", PHRASE_TABLE, ids=lambda p: p.text)
def test_every_table_phrase_is_found_with_its_relation(phrase: object) -> None:
    from esplora.core.relations import Phrase

    assert isinstance(phrase, Phrase)
    clause = only(f"a cat {phrase.text} a dog")
    assert (clause.phrase, clause.relation) == (phrase, phrase.relation)
    assert (clause.subject, clause.object) == ("a cat", "a dog")


def test_matching_ignores_case_and_extra_spaces() -> None:
    clause = only("A Cat TO THE  Right\tOf a dog")
    assert clause.phrase.text == "to the right of"
    assert clause.subject == "A Cat"


@pytest.mark.parametrize(
    "prompt", ["an overcoat", "understanding nearness", "a leftover cover", "abovementioned"]
)
def test_phrases_match_on_word_boundaries_only(prompt: str) -> None:
    assert parse(prompt).clauses == ()


@pytest.mark.parametrize("prefix", FRAMING_PREFIXES)
def test_framing_prefixes_stay_in_place(prefix: str) -> None:
    prompt = f"{prefix.capitalize()} a cat above a dog"
    parsed = parse(prompt)
    assert parsed.prefix is not None
    assert parsed.prefix.of(prompt) == prefix.capitalize()
    assert parsed.clauses[0].subject == "a cat"


@pytest.mark.parametrize("link", sorted(LINK_WORDS))
def test_link_words(link: str) -> None:
    assert parts(only(f"a cat {link} above a dog")) == ("a cat", link, "above", "a dog")


def test_several_link_words() -> None:
    assert only("the cats are directly behind the dog").link == "are directly"


@pytest.mark.parametrize("stop", [",", ".", ";", ":"])
def test_object_ends_at_punctuation(stop: str) -> None:
    clause = only(f"a cat above a dog{stop} in the snow")
    assert clause.object == "a dog"


@pytest.mark.parametrize(
    ("prompt", "subjects"),
    [
        ("a cat left of a dog, a bird below a tree", ["a cat", "a bird"]),
        ("a cat left of a dog; a bird below a tree", ["a cat", "a bird"]),
        ("a cat left of a dog, and the dog above a bird", ["a cat", "the dog"]),
        ("A cat left of a dog. A bird below a tree.", ["A cat", "A bird"]),
        ("Sunny day. A cat left of a dog", ["A cat"]),
        ("a cat left of a dog and a bird, and a bench below a tree", ["a cat", "a bench"]),
    ],
)
def test_clause_splitting(prompt: str, subjects: list[str]) -> None:
    parsed = parse(prompt)
    assert [c.subject for c in parsed.clauses] == subjects
    assert all(c.ambiguous is None for c in parsed.clauses)
    assert_spans_agree(parsed)


def test_a_comma_with_no_relation_after_it_does_not_split() -> None:
    clause = only("a cat, small and fluffy, to the left of a dog")
    assert clause.subject == "a cat, small and fluffy"


@pytest.mark.parametrize(
    ("phrase", "labels"),
    [
        ("a cat and a dog", ["cat", "dog"]),
        ("cats and dogs", ["cat", "dog"]),
        ("a black and white cat", ["cat"]),
        ("a cat with a hat and a scarf", ["cat"]),
        ("two cats, a dog and three birds", ["cat", "dog", "bird"]),
    ],
)
def test_coordinated_noun_phrases(phrase: str, labels: list[str]) -> None:
    clause = only(f"{phrase} above a table")
    assert [m.label for m in clause.subject_mentions] == labels
    assert clause.subject_label == labels[-1]


def test_text_without_relations_has_no_clauses() -> None:
    assert parse("a cat in the sun").clauses == ()
    assert parse("").clauses == ()


def test_parse_spatial_raises_naming_the_prompt() -> None:
    with pytest.raises(UnparsablePrompt, match="a cat in the sun"):
        parse_spatial("a cat in the sun")
    with pytest.raises(UnparsablePrompt, match="multiple_relation_phrases"):
        parse_spatial("a cat below a dog below a bird")
    assert parse_spatial("a cat above a dog").clauses[0].relation is Relation.ABOVE


def test_relations_of_a_parse() -> None:
    assert parse("a man left of a puppy and it above a bird").relations == (
        SpatialRelation("person", Relation.LEFT_OF, "dog"),
    )


@given(st.text(max_size=80))
def test_parse_never_raises_and_spans_agree(text: str) -> None:
    assert_spans_agree(parse(text))


WORDS = st.sampled_from(
    ["a", "cat", "the", "dog", "and", ",", ";", ".", "left of", "above", "is", "with", "it",
     "to the right of", "under", "two", "birds", "near", "a photo of", ":", "behind"]
)  # fmt: skip


@given(st.lists(WORDS, max_size=14).map(" ".join))
def test_spans_agree_on_prompt_like_text(text: str) -> None:
    assert_spans_agree(parse(text))


# --- prompt specs -------------------------------------------------------------------------------


def test_same_label_twice_is_two_objects() -> None:
    spec = prompt_spec("a dog to the left of a dog")
    assert [o.label for o in spec.objects] == ["dog", "dog"]
    assert spec.relations == (IndexedRelation(0, Relation.LEFT_OF, 1),)
    assert spec.label_counts() == {"dog": Count.exactly(2)}


def test_a_definite_mention_refers_back_to_an_earlier_clause() -> None:
    spec = prompt_spec("a cat to the left of a dog, and the dog above a bird")
    assert [o.label for o in spec.objects] == ["cat", "dog", "bird"]
    assert spec.relations == (
        IndexedRelation(0, Relation.LEFT_OF, 1),
        IndexedRelation(1, Relation.ABOVE, 2),
    )


def test_coordinated_subjects_relate_each_mention() -> None:
    spec = prompt_spec(parse("two cats and a dog to the right of a tree"))
    assert [(o.label, o.count) for o in spec.objects] == [
        ("cat", Count.exactly(2)), ("dog", Count.exactly(1)), ("tree", Count.exactly(1)),
    ]  # fmt: skip
    assert {r.subject for r in spec.relations} == {0, 1}


def test_ambiguous_clauses_add_nothing_to_the_spec() -> None:
    spec = prompt_spec("a cat below a dog below a bird and a man near it")
    assert spec.objects == () and spec.relations == ()


# --- rendering ----------------------------------------------------------------------------------


def test_render_simple() -> None:
    assert render_simple("cat", "left_of", "dog") == "a cat to the left of a dog"
    assert render_simple("apple", Relation.ABOVE, "umbrella") == "an apple above an umbrella"
    assert render_simple("cat", "below", "dog", phrase="Underneath", det="the") == (
        "the cat underneath the dog"
    )


def test_render_simple_rejects_bad_input() -> None:
    with pytest.raises(InvalidParameter, match="does not express"):
        render_simple("cat", "left_of", "dog", phrase="above")
    with pytest.raises(UnknownRelation):
        render_simple("cat", "sideways", "dog")
    with pytest.raises(InvalidParameter):
        render_simple(" ", "left_of", "dog")


def test_render_complex_forms() -> None:
    a = SpatialRelation("cat", Relation.LEFT_OF, "dog")
    assert render_complex(a, SpatialRelation("bird", Relation.ABOVE, "tree")) == (
        "a cat to the left of a dog and a bird above a tree"
    )
    assert render_complex(a, SpatialRelation("dog", Relation.BELOW, "bird")) == (
        "a cat to the left of a dog, and the dog below a bird"
    )


@pytest.mark.parametrize(("relation", "phrase"), [(r, p) for r in Relation for p in PHRASES[r]])
def test_rendered_simple_prompts_parse_back(relation: Relation, phrase: str) -> None:
    prompt = render_simple("elephant", relation, "umbrella", phrase=phrase)
    assert parse_spatial(prompt).relations == (SpatialRelation("elephant", relation, "umbrella"),)


NOUNS = st.sampled_from(["cat", "dog", "bird", "apple", "car", "tree", "bench", "umbrella"])
RELATIONS = st.sampled_from(list(Relation))


@given(NOUNS, RELATIONS, NOUNS, NOUNS, RELATIONS, NOUNS, st.booleans())
def test_complex_prompts_check_each_relation_on_its_own(
    a: str, r1: Relation, b: str, c: str, r2: Relation, d: str, chain: bool
) -> None:
    first = SpatialRelation(a, r1, b)
    second = SpatialRelation(b if chain else c, r2, d)
    parsed = parse_spatial(render_complex(first, second))
    assert [c.relation for c in parsed.clauses] == [r1, r2]
    assert all(c.ambiguous is None for c in parsed.clauses)
    spec = prompt_spec(parsed)
    got = [(spec.objects[s].label, r, spec.objects[o].label) for s, r, o in spec.relations]
    assert got == [(a, r1, b), (second.subject, r2, d)]
