"""The object vocabulary: its coverage, its lexicon and its matcher."""

from __future__ import annotations

from pathlib import Path

import pytest

from esplora.core.grammar import parse
from esplora.core.vocabulary import Vocabulary, VocabularyError, load_vocabulary


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",")]


COCO = _names(
    "person, bicycle, car, motorcycle, airplane, bus, train, truck, boat, traffic light, "
    "fire hydrant, stop sign, parking meter, bench, bird, cat, dog, horse, sheep, cow, elephant, "
    "bear, zebra, giraffe, backpack, umbrella, handbag, tie, suitcase, frisbee, skis, snowboard, "
    "sports ball, kite, baseball bat, baseball glove, skateboard, surfboard, tennis racket, "
    "bottle, wine glass, cup, fork, knife, spoon, bowl, banana, apple, sandwich, orange, "
    "broccoli, carrot, hot dog, pizza, donut, cake, chair, couch, potted plant, bed, "
    "dining table, toilet, tv, laptop, mouse, remote, keyboard, cell phone, microwave, oven, "
    "toaster, sink, refrigerator, book, clock, vase, scissors, teddy bear, hair drier, toothbrush"
)

URBAN = _names(
    "car, bus, truck, bicycle, motorcycle, pedestrian, traffic light, street lamp, bench, "
    "building, tree, sign, traffic cone, trash can, crosswalk, fire hydrant, stop sign, van"
)


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return load_vocabulary()


def test_groups_cover_coco_lvis_and_urban_scenes(vocab: Vocabulary) -> None:
    assert len(vocab.groups["coco"]) == 80
    assert len(vocab.groups["lvis"]) >= 300
    assert len(vocab.groups["urban"]) >= 30
    assert len(COCO) == 80


@pytest.mark.parametrize("name", COCO)
def test_every_coco_class_name_is_known(vocab: Vocabulary, name: str) -> None:
    label = vocab.canonical(name)
    assert label in vocab.groups["coco"]


@pytest.mark.parametrize(
    ("name", "label"),
    [("tv", "television"), ("dining table", "table"), ("sports ball", "ball"),
     ("potted plant", "plant"), ("hair drier", "hair dryer"), ("Cell Phone", "cell phone"),
     ("zorgblat", None)],
)  # fmt: skip
def test_canonical_names(vocab: Vocabulary, name: str, label: str | None) -> None:
    assert vocab.canonical(name) == label


@pytest.mark.parametrize("noun", URBAN)
def test_urban_scene_nouns_are_known(vocab: Vocabulary, noun: str) -> None:
    assert vocab.canonical(noun) is not None


def test_labels_are_their_own_canonical_label(vocab: Vocabulary) -> None:
    assert [label for label in vocab.labels if vocab.label_of(label) != label] == []


def test_the_extended_lexicon_keeps_the_core_synonyms(vocab: Vocabulary) -> None:
    from esplora.core.lexicon import DEFAULT_LEXICON

    for key, label in DEFAULT_LEXICON.synonyms.items():
        assert vocab.lexicon.synonyms[key] == label, key


FIND = [
    ("a red double-decker bus to the right of a traffic light",
     [("bus", "double-decker bus"), ("traffic light", "traffic light")]),
    ("a man and his puppy", [("person", "man"), ("dog", "puppy")]),
    ("Two dogs on a dog bed next to an orange cat",
     [("dog", "dogs"), ("bed", "bed"), ("cat", "cat")]),
    ("three buses, two fire hydrants and some people", [("bus", "buses"),
     ("fire hydrant", "fire hydrants"), ("person", "people")]),
    ("the woman's dog is on the couch", [("person", "woman"), ("dog", "dog"), ("couch", "couch")]),
    ("a cat, dog and bird", [("cat", "cat"), ("dog", "dog"), ("bird", "bird")]),
    ("three T-shirts and wine glasses", [("shirt", "T-shirts"), ("wine glass", "wine glasses")]),
    ("a teddy bear and a hot-dog", [("teddy bear", "teddy bear"), ("hot dog", "hot-dog")]),
    ("the traffic. Light", []),  # words of one term must be adjacent
    ("people watch the sunset", [("person", "people")]),  # "watch" is a verb here
    ("a man can see a rusty can", [("person", "man"), ("can", "can")]),
    ("a zebra crossing with pedestrians",
     [("crosswalk", "zebra crossing"), ("person", "pedestrians")]),
    ("sheep, geese and knives", [("sheep", "sheep"), ("goose", "geese"), ("knife", "knives")]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), FIND)
def test_find(vocab: Vocabulary, text: str, expected: list[tuple[str, str]]) -> None:
    found = vocab.find(text)
    assert [(m.label, m.phrase) for m in found] == expected
    assert all(text[m.start : m.end] == m.phrase for m in found)


def test_find_from_an_offset(vocab: Vocabulary) -> None:
    assert [m.label for m in vocab.find("a painting of a horse", 14)] == ["horse"]


def test_grammar_mentions_get_vocabulary_labels(vocab: Vocabulary) -> None:
    clause = parse("three kittens to the left of a lorry", lexicon=vocab.lexicon).clauses[0]
    assert (clause.subject_label, clause.object_label) == ("cat", "truck")


def test_words_cover_every_term(vocab: Vocabulary) -> None:
    known = vocab.words()
    assert {"traffic", "light", "giraffe", "person"} <= known


@pytest.mark.parametrize(
    ("text", "message"),
    [("dog\n", "before the first"), ("[animals]\ndog\n", "unknown section"),
     ("[coco]\ndog\n[lvis]\ndog\n", "defined twice"),
     ("[coco]\ndog: hound\ncat: hound\n", "names both"),
     ("[coco]\ndog\n[ambiguous]\nzorg\n", "not terms"), ("[plurals]\ngeese\n", "plural: singular")],
)  # fmt: skip
def test_malformed_files_are_rejected(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "vocabulary.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(VocabularyError, match=message):
        load_vocabulary(path)


def test_version_follows_the_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("[coco]\ndog: hound\n", encoding="utf-8")
    b.write_text("[coco]\ndog: hound, pup\n", encoding="utf-8")
    assert load_vocabulary(a).version != load_vocabulary(b).version
    assert load_vocabulary(a).canonical("hounds") == "dog"
