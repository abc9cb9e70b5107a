"""TORE: rewriting weak spatial clauses toward their strong inverse (SPATIAL.md, "TORE")."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esplora.core.errors import InvalidParameter, UnknownRelation
from esplora.core.grammar import parse
from esplora.core.lexicon import PRONOUNS
from esplora.core.relations import INVERSE, PHRASE_BY_TEXT, PHRASE_TABLE, Relation
from esplora.core.tore import DEFAULT_WEAK, analyse, rewrite, weak_relations

EXAMPLES = [
    # SPATIAL.md, verbatim
    (
        "a photo of a cat to the right of a dog, at dusk",
        "a photo of a dog to the left of a cat, at dusk",
    ),
    (
        "a car to the right of a tree and a dog below a bench",
        "a tree to the left of a car and a bench above a dog",
    ),
    ("the car is to the right of the tree", "the tree is to the left of the car"),
    ("a cat with a hat to the right of a dog", "a dog to the left of a cat with a hat"),
    ("A cat to the right of a dog", "A dog to the left of a cat"),
    ("a cat and a dog to the right of a tree", "a tree to the left of a cat and a dog"),
    ("a cat below a dog below a bird", "a cat below a dog below a bird"),
    ("a cat on the bottom of a box", "a box on the top of a cat"),
    # the rest of the table
    ("a cat underneath a dog", "a dog above a cat"),
    ("a cat under a dog.", "a dog above a cat."),
    ("a cat right of a dog", "a dog left of a cat"),
    ("a cat on the right side of a dog", "a dog on the left side of a cat"),
    ("a cat in back of a dog", "a dog in front of a cat"),
    ("a cat behind a dog", "a dog in front of a cat"),
    ("a cat is directly behind a dog", "a dog is directly in front of a cat"),
    ("a cat to the left of a dog", "a cat to the left of a dog"),
    ("a cat above a dog", "a cat above a dog"),
    ("a cat in front of a dog", "a cat in front of a dog"),
    ("a cat next to a dog", "a cat next to a dog"),
    ("no spatial words here", "no spatial words here"),
    ("A CAT TO THE RIGHT OF A DOG", "A DOG TO THE LEFT OF A CAT"),
    ("Paris To The Right Of a dog", "A dog To The Left Of Paris"),
    (
        "A man in a red coat below the Eiffel Tower, at night.",
        "The Eiffel Tower above a man in a red coat, at night.",
    ),
    (
        "a cat to the left of a dog, and the dog below a bird",
        "a cat to the left of a dog, and a bird above the dog",
    ),
]


@pytest.mark.parametrize(("prompt", "expected"), EXAMPLES)
def test_examples(prompt: str, expected: str) -> None:
    assert rewrite(prompt) == expected
    assert rewrite(expected) == expected  # idempotent


@pytest.mark.parametrize("pronoun", sorted(PRONOUNS))
def test_pronoun_clauses_are_left_alone_and_reported(pronoun: str) -> None:
    for prompt in (f"a cat to the right of {pronoun}", f"{pronoun} below a dog"):
        result = analyse(prompt)
        assert result.rewritten == prompt
        assert result.clauses[0].ambiguous in {"pronoun_subject", "pronoun_object"}
        assert not result.clauses[0].rewritten


def test_analyse_reports_every_clause_as_json() -> None:
    result = analyse("a photo of a cat to the right of a dog, and a bird below a bird below a tree")
    data = json.loads(json.dumps(result.to_dict()))
    assert data["original"] == result.original
    assert (
        data["rewritten"]
        == "a photo of a dog to the left of a cat, and a bird below a bird below a tree"
    )
    assert data["changed"] is True
    assert data["weak"] == ["behind", "below", "right_of"]
    assert data["clauses"] == [
        {
            "text": "a cat to the right of a dog", "relation": "right_of", "subject": "a cat",
            "object": "a dog", "phrase": "to the right of", "rewritten": True, "ambiguous": None,
        },
        {
            "text": "a bird below a bird below a tree", "relation": "below", "subject": "a bird",
            "object": "a bird below a tree", "phrase": "below", "rewritten": False,
            "ambiguous": "multiple_relation_phrases",
        },
    ]  # fmt: skip


def test_weak_accepts_names_and_relations() -> None:
    prompt = "a cat to the left of a dog and a bird above a tree"
    expected = "a dog to the right of a cat and a tree below a bird"
    assert rewrite(prompt, weak={Relation.LEFT_OF, "above"}) == expected
    assert rewrite(prompt, weak=["left-of", "ABOVE"]) == expected
    assert rewrite("a cat below a dog", weak="below") == "a dog above a cat"
    assert rewrite("a cat near a dog", weak={"near"}) == "a cat near a dog"
    assert rewrite("a cat below a dog", weak=()) == "a cat below a dog"


def test_unknown_weak_relation_is_rejected() -> None:
    with pytest.raises(UnknownRelation, match="sideways"):
        rewrite("a cat below a dog", weak={"sideways"})
    with pytest.raises(UnknownRelation):
        analyse("a cat below a dog", weak={"below", "on top"})


# --- adaptive mode ------------------------------------------------------------------------------


def test_weak_relations_marks_the_lower_of_each_pair() -> None:
    accuracy = {
        "left_of": 0.6, "right_of": 0.4, "above": 0.5, "below": 0.7,
        "in_front_of": 0.30, "behind": 0.31, "near": 0.1,
    }  # fmt: skip
    assert weak_relations(accuracy) == {"right_of", "above", "in_front_of"}
    assert weak_relations(accuracy, margin=0.05) == {"right_of", "above"}
    assert weak_relations(accuracy, margin=0.5) == frozenset()


def test_weak_relations_needs_both_sides_and_a_real_difference() -> None:
    assert weak_relations({"left_of": 0.2}) == frozenset()
    assert weak_relations({"above": 0.5, "below": 0.5}) == frozenset()
    assert weak_relations({"Left Of": 0.2, "right-of": 0.9}) == {"left_of"}


@pytest.mark.parametrize("margin", [-0.01, float("nan"), float("inf")])
def test_weak_relations_rejects_a_bad_margin(margin: float) -> None:
    with pytest.raises(InvalidParameter, match="margin"):
        weak_relations({"left_of": 0.2, "right_of": 0.9}, margin=margin)


@pytest.mark.parametrize("value", [-0.1, 1.1, float("nan")])
def test_weak_relations_rejects_accuracies_outside_the_unit_interval(value: float) -> None:
    with pytest.raises(InvalidParameter, match="accuracy"):
        weak_relations({"left_of": value, "right_of": 0.5})


def test_weak_relations_rejects_unknown_names() -> None:
    with pytest.raises(UnknownRelation):
        weak_relations({"left": 0.2, "right_of": 0.9})


def test_an_adaptive_weak_set_drives_rewrite() -> None:
    weak = weak_relations({"left_of": 0.2, "right_of": 0.9})
    assert rewrite("a cat to the left of a dog", weak=weak) == "a dog to the right of a cat"


def test_rewrite_forms_are_phrases_of_the_inverse() -> None:
    # Why TORE is idempotent: a rewrite always yields a phrase of the strong inverse relation.
    for p in PHRASE_TABLE:
        if p.rewrite is not None:
            assert PHRASE_BY_TEXT[p.rewrite].relation is INVERSE[p.relation]


# --- properties ---------------------------------------------------------------------------------

COMMON_NOUNS = [
    "a cat", "the dog", "A Bird", "two cats", "a cat with a hat", "the man in a red coat",
    "a small brown bench",
]  # fmt: skip
# Not in the exact round trip: a capitalised name at the start of a prompt cannot be told from a
# capital that belongs to the position ("A cat"), and "X rel Y and Z rel W" with a coordinated
# noun next to the "and" reads two ways (English is ambiguous there, not the grammar).
NOUNS = [*COMMON_NOUNS, "Paris", "New York", "cats and dogs", "a cat and a dog"]
LINKS = ["", "is ", "are directly ", "just "]
PREFIXES = ["", "a photo of ", "A painting of ", "there is "]
SUFFIXES = ["", ".", ", at dusk", ", in the snow."]
SEPARATORS = [" and ", ", ", "; ", ", and ", ". "]
# Phrases whose rewrite rewrites back to them, so that a round trip can return the original.
INVERTIBLE = [
    p.text
    for p in PHRASE_TABLE
    if p.rewrite is not None and PHRASE_BY_TEXT[p.rewrite].rewrite == p.text
]


@st.composite
def clauses(draw: st.DrawFn, phrases: list[str], nouns: list[str]) -> str:
    subject, obj = draw(st.sampled_from(nouns)), draw(st.sampled_from(nouns))
    link, phrase = draw(st.sampled_from(LINKS)), draw(st.sampled_from(phrases))
    return f"{subject} {link}{phrase} {obj}"


@st.composite
def prompts(draw: st.DrawFn, phrases: list[str] | None = None, nouns: list[str] = NOUNS) -> str:
    phrases = phrases or [p.text for p in PHRASE_TABLE]
    body = draw(clauses(phrases, nouns))
    for _ in range(draw(st.integers(0, 2))):
        body += draw(st.sampled_from(SEPARATORS)) + draw(clauses(phrases, nouns))
    return draw(st.sampled_from(PREFIXES)) + body + draw(st.sampled_from(SUFFIXES))


WEAK_SETS = st.tuples(*(st.sampled_from([(), (a,), (b,)]) for a, b in (
    ("left_of", "right_of"), ("above", "below"), ("in_front_of", "behind")
))).map(lambda sides: frozenset(r for side in sides for r in side))  # fmt: skip


@given(prompts(), WEAK_SETS)
def test_tore_is_idempotent(prompt: str, weak: frozenset[str]) -> None:
    once = rewrite(prompt, weak=weak)
    assert rewrite(once, weak=weak) == once


@given(st.text(max_size=60))
def test_tore_is_idempotent_on_any_text(text: str) -> None:
    once = rewrite(text)
    assert rewrite(once) == once


SOUP = st.sampled_from(
    ["a", "cat", "the", "and", ",", ";", ".", "left of", "above", "is", "it", "to the right of",
     "below", "on the bottom of", "behind", "in front of", "near", "a photo of", ":"]
)  # fmt: skip


@given(st.lists(SOUP, max_size=14).map(" ".join), WEAK_SETS)
def test_tore_is_idempotent_on_word_soup(text: str, weak: frozenset[str]) -> None:
    # Found by this property: "a to the right of and a above and" re-segments after one pass.
    once = rewrite(text, weak=weak)
    assert rewrite(once, weak=weak) == once


def test_a_rewrite_that_re_segments_the_prompt_is_still_a_fixed_point() -> None:
    weak = {"above", "right_of"}
    once = rewrite("a to the right of and a above and", weak=weak)
    assert rewrite(once, weak=weak) == once


def outside_text(prompt: str) -> list[str]:
    """The prompt's text between and around every clause's subject, phrase and object."""
    cuts = [0]
    for c in parse(prompt).clauses:
        for span in (c.subject_span, c.phrase_span, c.object_span):
            cuts += [span.start, span.end]
    cuts.append(len(prompt))
    return [prompt[a:b] for a, b in zip(cuts[::2], cuts[1::2], strict=True)]


@given(prompts(INVERTIBLE))
def test_tore_preserves_all_text_outside_the_clauses(prompt: str) -> None:
    assert outside_text(rewrite(prompt)) == outside_text(prompt)


SIDES = [frozenset(DEFAULT_WEAK), frozenset({"left_of", "above", "in_front_of"})]


@given(st.sampled_from(SIDES).flatmap(lambda side: st.tuples(st.just(side), prompts(
    [t for t in INVERTIBLE if PHRASE_BY_TEXT[t].relation in side], COMMON_NOUNS
))))  # fmt: skip
def test_one_side_then_its_inverse_returns_the_original(case: tuple[frozenset[str], str]) -> None:
    # Every clause's relation is in ``side``: all are rewritten, then all rewritten back.
    side, prompt = case
    back = frozenset(INVERSE[Relation(r)].value for r in side)
    there = rewrite(prompt, weak=side)
    assert all(c.relation.value in back for c in parse(there).clauses)
    assert rewrite(there, weak=back) == prompt
