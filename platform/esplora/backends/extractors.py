"""Object extraction: which objects an image's captions (or a VLM looking at it) name.

:class:`GrammarExtractor` (the default) needs no model: the mentions of the caption grammar's
spatial clauses plus every vocabulary noun anywhere in the captions. :class:`VlmExtractor` asks
an image-text-to-text model to list what it sees and reads its answer with the same vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from esplora.backends._hf import LoadedModel, batched, rgb
from esplora.backends.base import ExtractedObject, ExtractionInput
from esplora.backends.registry import VLM_ID, BackendOptions
from esplora.core.grammar import parse
from esplora.core.lexicon import is_pronoun, words
from esplora.core.vocabulary import Vocabulary, load_vocabulary

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "EXTRACTOR_VERSION",
    "VLM_PROMPT",
    "GrammarExtractor",
    "VlmExtractor",
    "caption_objects",
    "parse_object_list",
]

EXTRACTOR_VERSION = "1"  # bump when the extraction rules change (the vocabulary has its own)

VLM_PROMPT = (
    "List every distinct object you can see in this image as a comma-separated list of short "
    "nouns, for example: dog, red car, traffic light. Answer with the list only."
)

_WORD = re.compile(r"[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*")


@dataclass(frozen=True, slots=True)
class _Found:
    caption: int
    start: int
    obj: ExtractedObject


def _head_phrase(text: str, vocabulary: Vocabulary) -> str:
    """The mention up to its first post-modifier: "a man holding a kite" → "a man"."""
    for i, m in enumerate(_WORD.finditer(text)):
        if i > 0 and m.group().lower() in vocabulary.lexicon.modifiers:
            return text[: m.start()].rstrip(" ,;:-")
    return text.strip()


def _mentions(caption: str, index: int, vocabulary: Vocabulary) -> Iterator[_Found]:
    parsed = parse(caption, lexicon=vocabulary.lexicon)
    for clause in parsed.clauses:
        for mention in (*clause.subject_mentions, *clause.object_mentions):
            if not mention.label or is_pronoun(mention.text):
                continue
            phrase = _head_phrase(mention.text, vocabulary)
            yield _Found(index, mention.span.start, ExtractedObject(mention.label, phrase))
    body = parsed.prefix.end if parsed.prefix is not None else 0  # skip "a photo of"
    for match in vocabulary.find(caption, body):
        yield _Found(index, match.start, ExtractedObject(match.label, match.phrase))


def caption_objects(
    captions: Sequence[str], vocabulary: Vocabulary | None = None
) -> tuple[ExtractedObject, ...]:
    """The objects named in ``captions``, in order of appearance, one per canonical label."""
    vocabulary = vocabulary or load_vocabulary()
    found = [f for i, c in enumerate(captions) for f in _mentions(c, i, vocabulary)]
    found.sort(key=lambda f: (f.caption, f.start))
    unique: dict[str, ExtractedObject] = {}
    for f in found:
        unique.setdefault(f.obj.label, f.obj)
    return tuple(unique.values())


class GrammarExtractor:
    """Caption grammar + object vocabulary; no model, no image."""

    needs_image = False

    def __init__(
        self,
        options: BackendOptions | None = None,
        *,
        name: str = "grammar",
        real_id: str | None = None,
        vocabulary: Vocabulary | None = None,
    ) -> None:
        self.vocabulary = vocabulary or load_vocabulary()
        self.producer = f"grammar+vocabulary@{EXTRACTOR_VERSION}.{self.vocabulary.version}"

    def extract(self, items: Sequence[ExtractionInput]) -> list[tuple[ExtractedObject, ...]]:
        """The objects each item's captions name."""
        return [caption_objects(item.captions, self.vocabulary) for item in items]


# --- the VLM extractor ----------------------------------------------------------------------

_ITEM_SPLIT = re.compile(r"[,;\n]+|\s+and\s+|\s*\u2022\s*")
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)]|\(\d+\))\s*")
_LEADING = re.compile(r"^(?:(?:a|an|the|some|several|many|two|three|four|five|\d+)\s+)+", re.I)
_NOT_OBJECTS = frozenset(
    {"image", "picture", "photo", "photograph", "background", "foreground", "scene", "view",
     "object", "thing", "none", "nothing", "etc", "other", "list", "answer"}
)  # fmt: skip
_MAX_ITEM_WORDS = 5


def _answer_items(answer: str) -> Iterator[str]:
    """The items of a list-like answer: after its last colon, split at commas, lines, "and"."""
    body = answer.rsplit(":", 1)[-1]
    for piece in _ITEM_SPLIT.split(body):
        item = _BULLET.sub("", piece).strip().strip(".!?\"'`*").strip()
        if item:
            yield item


def _item_object(item: str, vocabulary: Vocabulary) -> ExtractedObject | None:
    tokens = words(item)
    if not tokens or len(tokens) > _MAX_ITEM_WORDS:
        return None
    matches = vocabulary.find(item)
    if matches:  # "red car" → car, phrase as written
        return ExtractedObject(matches[-1].label, _LEADING.sub("", item))
    label = vocabulary.label_of(item)
    if not label.isalpha() or label in _NOT_OBJECTS:
        return None
    return ExtractedObject(label, _LEADING.sub("", item))


def parse_object_list(
    answer: str, vocabulary: Vocabulary | None = None
) -> tuple[ExtractedObject, ...]:
    """Read a model's answer ("a dog, two red cars and a tree.") into objects, one per label."""
    vocabulary = vocabulary or load_vocabulary()
    unique: dict[str, ExtractedObject] = {}
    for item in _answer_items(answer):
        obj = _item_object(item, vocabulary)
        if obj is not None:
            unique.setdefault(obj.label, obj)
    return tuple(unique.values())


class VlmExtractor:
    """An image-text-to-text model (``AutoModelForImageTextToText``) lists the objects it sees."""

    needs_image = True

    def __init__(
        self,
        options: BackendOptions,
        *,
        name: str = "vlm",
        real_id: str | None = VLM_ID,
        max_new_tokens: int = 64,
        vocabulary: Vocabulary | None = None,
    ) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.options = options
        self.vocabulary = vocabulary or load_vocabulary()
        self.max_new_tokens = max_new_tokens
        self._loaded = LoadedModel(
            options,
            name,
            real_id or VLM_ID,
            AutoModelForImageTextToText.from_pretrained,
            AutoProcessor.from_pretrained,
        )
        self.producer = self._loaded.producer
        tokenizer = getattr(self._loaded.processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.padding_side = "left"  # decoder-only generation continues on the right
        self._prompt = self._chat_prompt()

    def _chat_prompt(self) -> str:
        processor = self._loaded.processor
        if getattr(processor, "chat_template", None) is None:
            return VLM_PROMPT
        content = [{"type": "image"}, {"type": "text", "text": VLM_PROMPT}]
        messages = [{"role": "user", "content": content}]
        prompt: str = processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        return prompt

    def extract(self, items: Sequence[ExtractionInput]) -> list[tuple[ExtractedObject, ...]]:
        """The objects the model names for each item's image (its captions are not used)."""
        missing = [i for i, item in enumerate(items) if item.image is None]
        if missing:
            raise ValueError(f"the VLM extractor needs images; items {missing} have none")
        answers: list[str] = []
        for chunk in batched(items, self.options.batch_size):
            answers.extend(self.answers([i.image for i in chunk if i.image is not None]))
        return [parse_object_list(answer, self.vocabulary) for answer in answers]

    def answers(self, images: Sequence[Image]) -> list[str]:
        """The model's raw answers to the listing prompt, one per image."""
        import torch

        processor = self._loaded.processor
        batch = processor(
            images=rgb(images), text=[self._prompt] * len(images), padding=True,
            return_tensors="pt",
        )  # fmt: skip
        with torch.inference_mode():
            generated = self._loaded.model.generate(
                **self._loaded.inputs(batch), max_new_tokens=self.max_new_tokens, do_sample=False
            )
        new_tokens = generated[:, batch["input_ids"].shape[1] :]
        decoded: list[str] = processor.batch_decode(new_tokens, skip_special_tokens=True)
        return decoded
