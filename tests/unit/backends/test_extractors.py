"""The grammar extractor (captions → objects) and the reading of a VLM's answer."""

from __future__ import annotations

import pytest

from esplora.backends.base import ExtractedObject, ExtractionInput, Extractor
from esplora.backends.extractors import GrammarExtractor, caption_objects, parse_object_list

CAPTIONS = [
    ("a red double-decker bus to the right of a traffic light",
     [("bus", "a red double-decker bus"), ("traffic light", "a traffic light")]),
    ("a man and his puppy", [("person", "man"), ("dog", "puppy")]),
    ("A photo of a cat to the left of a dog", [("cat", "a cat"), ("dog", "a dog")]),
    ("a man holding an umbrella to the left of a car",
     [("person", "a man"), ("umbrella", "umbrella"), ("car", "a car")]),
    ("Three kittens sleeping on the sofa", [("cat", "kittens"), ("couch", "sofa")]),
    ("two women on a bench in front of a building",
     [("person", "two women"), ("bench", "bench"), ("building", "a building")]),
    ("it is to the left of the tree", [("tree", "the tree")]),  # no pronoun objects
    ("a zorgblat to the left of a cat", [("zorgblat", "a zorgblat"), ("cat", "a cat")]),
    ("A painting of a horse", [("horse", "horse")]),  # the framing prefix names nothing
    ("fire hydrants near the stop sign and a TV", [("fire hydrant", "fire hydrants"),
     ("stop sign", "the stop sign"), ("television", "a TV")]),
    ("a dog, a dog and another dog", [("dog", "dog")]),
    ("sunset over the sea", [("sunset", "sunset"), ("sea", "the sea")]),  # clause mentions
    ("a beautiful sunset", []),
    ("", []),
]  # fmt: skip


@pytest.mark.parametrize(("caption", "expected"), CAPTIONS)
def test_caption_objects(caption: str, expected: list[tuple[str, str]]) -> None:
    assert [(o.label, o.phrase) for o in caption_objects([caption])] == expected


def test_objects_of_several_captions_are_merged_by_label_in_order() -> None:
    objects = caption_objects(["a dog on a bed", "the dog is next to a cat"])
    assert [o.label for o in objects] == ["dog", "bed", "cat"]


def test_grammar_extractor_implements_the_protocol() -> None:
    extractor = GrammarExtractor()
    assert isinstance(extractor, Extractor)
    assert not extractor.needs_image
    assert extractor.producer.startswith("grammar+vocabulary@1.")
    items = [ExtractionInput(("a cat left of a dog",)), ExtractionInput(())]
    assert extractor.extract(items) == [
        (ExtractedObject("cat", "a cat"), ExtractedObject("dog", "a dog")),
        (),
    ]


ANSWERS = [
    ("dog, red car, traffic light", [("dog", "dog"), ("car", "red car"),
     ("traffic light", "traffic light")]),
    ("The objects are: a dog, two cars and a tree.", [("dog", "dog"), ("car", "cars"),
     ("tree", "tree")]),
    ("1. a bench\n2. Pigeons\n- the lamppost", [("bench", "bench"), ("pigeon", "Pigeons"),
     ("street lamp", "lamppost")]),
    ("* puppy\n* kitten\n* puppy", [("dog", "puppy"), ("cat", "kitten")]),
    ("a windsurfer, the sky", [("windsurfer", "windsurfer"), ("sky", "sky")]),  # open vocabulary
    ("image, background, nothing", []),
    ("r objectsbs li list list list list list list list", []),  # a random model's babble
    ("", []),
]  # fmt: skip


@pytest.mark.parametrize(("answer", "expected"), ANSWERS)
def test_parse_object_list(answer: str, expected: list[tuple[str, str]]) -> None:
    assert [(o.label, o.phrase) for o in parse_object_list(answer)] == expected
