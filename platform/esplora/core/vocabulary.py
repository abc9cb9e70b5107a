"""The object vocabulary: COCO, LVIS and urban-scene nouns and synonyms; a lexicon and a matcher.

The data lives in ``esplora/data/vocabulary.txt`` (its header documents the format). Loading it
gives a :class:`Vocabulary`: the canonical labels, a :class:`~esplora.core.lexicon.Lexicon`
extended with every synonym (so the grammar's mentions get the same labels), and
:meth:`Vocabulary.find`, which finds vocabulary nouns anywhere in a text, longest multi-word
term first. Terms and text are compared as singular lemmas, so plurals need no entries.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from esplora.core.lexicon import DEFAULT_LEXICON, DEFINITE_DETERMINERS, Lexicon, words

__all__ = [
    "LABEL_GROUPS",
    "Vocabulary",
    "VocabularyError",
    "VocabularyMatch",
    "load_vocabulary",
    "parse_vocabulary",
]

LABEL_GROUPS = ("coco", "lvis", "urban")
_LEXICON_SECTIONS = ("invariant", "plurals", "ambiguous")

# Hyphens separate tokens here ("t-shirt" = "t shirt"), unlike the lexicon's words(), so either
# spelling of a compound matches; apostrophes stay inside ("man's" is one token).
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z0-9]+)*")
_POSSESSIVE = ("'s", "’s", "s'", "s’")
# Between the words of one term, and between a modifier noun and its head: only these.
_JOINER = re.compile(r"[\s\-]*")
_K = TypeVar("_K", str, tuple[str, ...])
_POSSESSIVES = frozenset({"his", "her", "their", "its", "my", "your", "our", "another", "each"})


class VocabularyError(ValueError):
    """The vocabulary file is malformed (names the line) or maps one term to two labels."""


@dataclass(frozen=True, slots=True)
class VocabularyMatch:
    """A vocabulary term found in a text: its canonical label and the words as written."""

    label: str
    phrase: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Token:
    lemma: str
    start: int
    end: int
    possessive: bool


@dataclass(frozen=True, slots=True, eq=False)
class Vocabulary:
    """Canonical labels by group, the lexicon that knows them, and the term matcher's tables."""

    groups: Mapping[str, frozenset[str]]
    terms: Mapping[tuple[str, ...], str]  # lemmatised words of a term -> canonical label
    ambiguous: frozenset[str]  # single-word terms that count only after a determiner
    lexicon: Lexicon
    version: str  # digest of the data: changes whenever any entry changes

    @property
    def labels(self) -> frozenset[str]:
        """Every canonical label."""
        return frozenset().union(*self.groups.values())

    @property
    def max_words(self) -> int:
        """The number of words of the longest term."""
        return max(map(len, self.terms), default=1)

    def words(self) -> frozenset[str]:
        """Every word that appears in a label or synonym (for building tokenizers)."""
        return frozenset(w for term in self._term_texts() for w in _TOKEN.findall(term))

    def _term_texts(self) -> Iterator[str]:
        yield from self.labels
        yield from (" ".join(t) for t in self.terms)

    def label_of(self, noun_phrase: str) -> str:
        """The canonical label of a noun phrase by its head noun (may be outside the vocabulary)."""
        return self.lexicon.label(noun_phrase)

    def canonical(self, name: str) -> str | None:
        """The label a whole name denotes ("TV" → "television"), or ``None`` if unknown."""
        key = tuple(t.lemma for t in self._tokens(name))
        if key in self.terms:
            return self.terms[key]
        label = self.label_of(name)
        return label if label in self.labels else None

    def find(self, text: str, start: int = 0) -> list[VocabularyMatch]:
        """Vocabulary nouns in ``text[start:]``, in order, longest term first at each position.

        A term directly followed by another one is a modifier and skipped ("dog bed" → bed,
        "orange cat" → cat). An ambiguous word ("can", "watch", "orange") counts only after a
        determiner, possibly with one adjective between ("a rusty can").
        """
        tokens = self._tokens(text, start)
        found: list[tuple[VocabularyMatch, int, int]] = []  # match, first and end token index
        i = 0
        while i < len(tokens):
            hit = self._longest_at(text, tokens, i)
            if hit is None:
                i += 1
                continue
            match, end = hit
            found.append((match, i, end))
            i = end
        return [m for k, (m, _, end) in enumerate(found) if not _is_modifier(text, found, k, end)]

    def _tokens(self, text: str, start: int = 0) -> list[_Token]:
        out = []
        for m in _TOKEN.finditer(text, start):
            word = m.group().lower()
            possessive = word.endswith(_POSSESSIVE) and len(word) > 3
            end = m.end() - 2 if possessive else m.end()  # "the woman's dog": phrase "woman"
            out.append(
                _Token(self.lexicon.lemma(word[: end - m.start()]), m.start(), end, possessive)
            )
        return out

    def _longest_at(
        self, text: str, tokens: list[_Token], i: int
    ) -> tuple[VocabularyMatch, int] | None:
        for n in range(min(self.max_words, len(tokens) - i), 0, -1):
            window = tokens[i : i + n]
            label = self.terms.get(tuple(t.lemma for t in window))
            if label is None or not _joined(text, window):
                continue
            if n == 1 and window[0].lemma in self.ambiguous and not self._determined(tokens, i):
                return None
            phrase = text[window[0].start : window[-1].end]
            return VocabularyMatch(label, phrase, window[0].start, window[-1].end), i + n
        return None

    def _determined(self, tokens: list[_Token], i: int) -> bool:
        """Whether a determiner precedes token ``i``, directly or across one non-noun word."""
        if i >= 1 and _is_determiner(tokens[i - 1]):
            return True
        # "a rusty can", but not "a man can": the word between must not be a term itself.
        between = tokens[i - 1] if i >= 1 else None
        return (
            i >= 2
            and _is_determiner(tokens[i - 2])
            and between is not None
            and (between.lemma,) not in self.terms
        )


def _joined(text: str, window: list[_Token]) -> bool:
    """Whether the tokens of a multi-word term are separated by spaces or hyphens only."""
    return all(_JOINER.fullmatch(text, a.end, b.start) for a, b in pairwise(window))


def _is_determiner(token: _Token) -> bool:
    word = token.lemma
    return (
        word in DEFAULT_LEXICON.count_words
        or word in DEFINITE_DETERMINERS
        or word in _POSSESSIVES
        or word.isdigit()
    )


def _is_modifier(
    text: str, found: list[tuple[VocabularyMatch, int, int]], k: int, end_token: int
) -> bool:
    if k + 1 >= len(found):
        return False
    match, nxt = found[k][0], found[k + 1]
    if nxt[1] != end_token:
        return False
    return _JOINER.fullmatch(text, match.end, nxt[0].start) is not None


# --- the data file --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entries:
    labels: dict[str, dict[str, tuple[str, ...]]]  # group -> label -> aliases
    invariant: frozenset[str]
    plurals: dict[str, str]
    ambiguous: frozenset[str]


def _split(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _sections(text: str) -> Iterator[tuple[str, int, str]]:
    section = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip().lower()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            if section not in (*LABEL_GROUPS, *_LEXICON_SECTIONS):
                raise VocabularyError(f"line {number}: unknown section [{section}]")
            continue
        if not section:
            raise VocabularyError(f"line {number}: entry before the first [section]")
        yield section, number, line


def parse_vocabulary(text: str) -> _Entries:
    """Read the vocabulary file format; :class:`VocabularyError` names a malformed line."""
    entries = _Entries({g: {} for g in LABEL_GROUPS}, frozenset(), {}, frozenset())
    invariant: set[str] = set()
    ambiguous: set[str] = set()
    for section, number, line in _sections(text):
        head, _, rest = line.partition(":")
        head = head.strip()
        if section in LABEL_GROUPS:
            if any(head in group for group in entries.labels.values()):
                raise VocabularyError(f"line {number}: label {head!r} defined twice")
            entries.labels[section][head] = _split(rest)
        elif section == "plurals":
            if not rest.strip():
                raise VocabularyError(f"line {number}: expected 'plural: singular'")
            entries.plurals[head] = rest.strip()
        else:
            (invariant if section == "invariant" else ambiguous).update(_split(line))
    return _Entries(entries.labels, frozenset(invariant), entries.plurals, frozenset(ambiguous))


def _lexicon_key(term: str, lexicon: Lexicon) -> str:
    """How :meth:`Lexicon.label` looks a term up: its head lemma, or "modifier lemma" (2 words)."""
    tokens = words(term)
    lemma = lexicon.lemma(tokens[-1])
    return f"{tokens[-2]} {lemma}" if len(tokens) >= 2 else lemma


def _term_key(term: str, lexicon: Lexicon) -> tuple[str, ...]:
    return tuple(lexicon.lemma(w.lower()) for w in _TOKEN.findall(term))


def _claim(table: dict[_K, str], key: _K, label: str, conflicts: list[str]) -> None:
    previous = table.setdefault(key, label)
    if previous != label:
        conflicts.append(f"{key!r} names both {previous!r} and {label!r}")


def build_vocabulary(entries: _Entries, version: str) -> Vocabulary:
    """Turn parsed entries into a :class:`Vocabulary` (raises on a term claimed by two labels)."""
    base = DEFAULT_LEXICON.extended(irregular_plurals=entries.plurals, invariant=entries.invariant)
    synonyms: dict[str, str] = {}
    terms: dict[tuple[str, ...], str] = {}
    conflicts: list[str] = []
    for labels in entries.labels.values():
        for label, aliases in labels.items():
            for term in (label, *aliases):
                _claim(terms, _term_key(term, base), label, conflicts)
                if len(words(term)) <= 2:
                    _claim(synonyms, _lexicon_key(term, base), label, conflicts)
    if conflicts:
        raise VocabularyError("; ".join(dict.fromkeys(conflicts)))
    ambiguous = frozenset(base.lemma(w) for w in entries.ambiguous)
    unknown = sorted(w for w in ambiguous if (w,) not in terms)
    if unknown:
        raise VocabularyError(f"ambiguous words that are not terms: {', '.join(unknown)}")
    groups = {g: frozenset(labels) for g, labels in entries.labels.items()}
    return Vocabulary(
        groups=MappingProxyType(groups),
        terms=MappingProxyType(terms),
        ambiguous=ambiguous,
        lexicon=base.extended(synonyms=synonyms),
        version=version,
    )


def _default_text() -> str:
    return resources.files("esplora.data").joinpath("vocabulary.txt").read_text(encoding="utf-8")


@lru_cache(maxsize=4)
def load_vocabulary(path: Path | None = None) -> Vocabulary:
    """The vocabulary in ``path`` (default: the packaged one), parsed once per process."""
    text = path.read_text(encoding="utf-8") if path is not None else _default_text()
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    return build_vocabulary(parse_vocabulary(text), version)
