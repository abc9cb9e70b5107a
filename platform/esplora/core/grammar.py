"""The prompt grammar: spatial clauses, their parts and spans.

Rendering and the prompt specification the verdicts consume live in :mod:`esplora.core.prompts`.

Implements SPATIAL.md, "Clauses": a clause is ``SUBJECT [LINK] PHRASE OBJECT``; relation phrases
come from the shared phrase table (longest match first, case-insensitive, on word boundaries); a
prompt splits into clauses at ``and``, ``,`` and ``;`` only where both sides hold a relation
phrase. Every part carries its character span in the original prompt, so TORE can rewrite a
prompt by splicing and leave every other character alone.

Where the page is silent: between two consecutive relation phrases the prompt splits at one
separator, the strongest (a sentence end ``. `` over ``;`` over ``,`` or ``, and`` over a bare
``and``), the last of equals; a sentence without a relation phrase belongs to no clause; a
coordinated noun phrase splits into mentions at ``and``/``,`` before its first post-modifier
where a determiner or numeral starts the next one or the previous one ends in a plural.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

from esplora.core.errors import InvalidParameter, UnparsablePrompt
from esplora.core.lexicon import (
    DEFAULT_LEXICON,
    DEFINITE_DETERMINERS,
    ONE,
    Count,
    Lexicon,
    is_pronoun,
    words,
)
from esplora.core.relations import (
    INVERSE,
    PHRASE_BY_TEXT,
    PHRASE_TABLE,
    Phrase,
    Relation,
)

__all__ = [
    "FRAMING_PREFIXES",
    "LINK_WORDS",
    "Ambiguity",
    "Clause",
    "Mention",
    "ParsedPrompt",
    "Span",
    "SpatialRelation",
    "parse",
    "parse_spatial",
]

FRAMING_PREFIXES: tuple[str, ...] = (
    "a photo of", "a photograph of", "an image of", "a picture of", "a painting of",
    "a drawing of", "an illustration of", "a rendering of", "a close-up of", "a view of",
    "there is", "there are",
)  # fmt: skip

LINK_WORDS: frozenset[str] = frozenset(
    {"is", "are", "was", "were", "directly", "just", "slightly", "right", "far", "immediately"}
)


@dataclass(frozen=True, slots=True)
class Span:
    """Character offsets ``[start, end)`` into the original prompt."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise InvalidParameter(f"invalid span [{self.start}, {self.end})")

    def of(self, text: str) -> str:
        """The characters of ``text`` this span covers."""
        return text[self.start : self.end]


class Ambiguity(StrEnum):
    """Why a clause is left alone by TORE and by the verdicts."""

    MULTIPLE_PHRASES = "multiple_relation_phrases"
    EMPTY_SUBJECT = "empty_subject"
    EMPTY_OBJECT = "empty_object"
    PRONOUN_SUBJECT = "pronoun_subject"
    PRONOUN_OBJECT = "pronoun_object"


@dataclass(frozen=True, slots=True)
class Mention:
    """One object named in a subject or object ("a cat and a dog" holds two)."""

    text: str
    span: Span
    label: str
    count: Count
    definite: bool  # "the dog": may refer back to a dog named in an earlier clause


@dataclass(frozen=True, slots=True)
class Clause:
    """``SUBJECT [LINK] PHRASE OBJECT`` with spans into the prompt it was parsed from.

    ``subject_label``/``subject_count`` (and the object's) describe the head mention, the last
    one of a coordinated noun phrase; ``subject_mentions`` lists them all. An ambiguous clause
    is still filled in from its first relation phrase.
    """

    text: str
    span: Span
    subject: str
    subject_span: Span
    link: str
    link_span: Span
    phrase: Phrase
    phrase_span: Span
    object: str
    object_span: Span
    subject_count: Count
    object_count: Count
    subject_label: str
    object_label: str
    subject_mentions: tuple[Mention, ...]
    object_mentions: tuple[Mention, ...]
    ambiguous: Ambiguity | None
    phrase_spans: tuple[Span, ...]  # every relation phrase in the clause, in order

    @property
    def relation(self) -> Relation:
        """The relation of the clause's (first) phrase."""
        return self.phrase.relation


@dataclass(frozen=True, slots=True)
class SpatialRelation:
    """A structured relation "subject relation object" between two object labels."""

    subject: str
    relation: Relation
    object: str

    def inverse(self) -> SpatialRelation:
        """The same fact read from the object's side."""
        return SpatialRelation(self.object, INVERSE[self.relation], self.subject)


@dataclass(frozen=True, slots=True)
class ParsedPrompt:
    """A prompt, its leading framing prefix (if any) and its clauses in order."""

    prompt: str
    prefix: Span | None
    clauses: tuple[Clause, ...]

    @property
    def prefix_text(self) -> str:
        """The framing prefix as written ("A photo of"), or ``""``."""
        return self.prefix.of(self.prompt) if self.prefix else ""

    @property
    def unambiguous(self) -> tuple[Clause, ...]:
        """The clauses that TORE may rewrite and the verdicts check."""
        return tuple(c for c in self.clauses if c.ambiguous is None)

    @property
    def relations(self) -> tuple[SpatialRelation, ...]:
        """One labelled relation per unambiguous clause and pair of its mentions."""
        return tuple(
            SpatialRelation(s.label, c.relation, o.label)
            for c in self.unambiguous
            for s in c.subject_mentions
            for o in c.object_mentions
        )


# --- patterns -------------------------------------------------------------------------------


def _alternation(texts: tuple[str, ...] | list[str]) -> str:
    # Longest first, so the regex engine's first-alternative-wins order is "longest match wins".
    ordered = sorted(texts, key=len, reverse=True)
    return "|".join(re.escape(t).replace(r"\ ", " ").replace(" ", r"\s+") for t in ordered)


_B, _E = r"(?<![\w-])", r"(?![\w-])"  # word boundaries that also refuse a hyphenated neighbour
_PHRASE_RE = re.compile(_B + "(?:" + _alternation([p.text for p in PHRASE_TABLE]) + ")" + _E, re.I)
_PREFIX_RE = re.compile(r"\s*(?:" + _alternation(list(FRAMING_PREFIXES)) + ")" + _E, re.I)
_AND = r"(?:\s*and" + _E + ")?"
_SEPARATOR_RE = re.compile(
    rf"(?P<sentence>[.!?](?=\s)){_AND}|(?P<semicolon>;){_AND}|(?P<comma>,){_AND}"
    rf"|{_B}(?P<conjunction>and){_E}",
    re.I,
)
# A full stop between two clauses outranks ";", which outranks ",", which outranks a bare "and".
_STRENGTH = {"sentence": 4, "semicolon": 3, "comma": 2, "conjunction": 1}
_OBJECT_END_RE = re.compile(r"[,.;:]")
_SENTENCE_END_RE = re.compile(r"[.!?](?=\s)")
_WORD_RE = re.compile(r"[\w'’-]+")
_CONJUNCT_RE = re.compile(rf"\s*,\s*(?:and{_E}\s*)?|\s+and{_E}\s*", re.I)


@dataclass(frozen=True, slots=True)
class _Match:
    phrase: Phrase
    span: Span


def _phrase_matches(prompt: str, start: int) -> list[_Match]:
    matches = []
    for m in _PHRASE_RE.finditer(prompt, start):
        text = " ".join(m.group().lower().split())
        matches.append(_Match(PHRASE_BY_TEXT[text], Span(m.start(), m.end())))
    return matches


def _prefix(prompt: str) -> Span | None:
    m = _PREFIX_RE.match(prompt)
    return Span(m.end() - len(m.group().lstrip()), m.end()) if m else None


def _split_points(prompt: str, matches: list[_Match]) -> list[Span]:
    """One separator between each two consecutive phrases: the strongest, the last of equals."""
    points = []
    for left, right in pairwise(matches):
        best: tuple[int, int, Span] | None = None
        for m in _SEPARATOR_RE.finditer(prompt, left.span.end, right.span.start):
            key = (_STRENGTH[m.lastgroup or "conjunction"], m.start(), Span(m.start(), m.end()))
            best = key if best is None or key[:2] > best[:2] else best
        if best is not None:
            points.append(best[2])
    return points


# --- clause parts ---------------------------------------------------------------------------


def _strip(prompt: str, start: int, end: int, chars: str = " \t\n\r") -> Span:
    """``[start, end)`` without the given characters at either end."""
    while start < end and prompt[start] in chars:
        start += 1
    while end > start and prompt[end - 1] in chars:
        end -= 1
    return Span(start, end)


def _subject_and_link(prompt: str, start: int, end: int) -> tuple[Span, Span]:
    """Split the text before a phrase into SUBJECT and a trailing LINK (copulas, adverbs)."""
    pre = _strip(prompt, start, end)
    link_start = pre.end
    for m in reversed(list(_WORD_RE.finditer(prompt, pre.start, pre.end))):
        # The link is a run of link words at the very end, separated by whitespace only.
        if m.group().lower() not in LINK_WORDS or prompt[m.end() : link_start].strip():
            break
        link_start = m.start()
    subject = _strip(prompt, pre.start, link_start, " \t\n\r,")
    link = Span(link_start, pre.end) if link_start < pre.end else Span(subject.end, subject.end)
    return subject, link


def _object_span(prompt: str, start: int, end: int) -> Span:
    """OBJECT: after the phrase up to the clause's end or the first ``,`` ``.`` ``;`` ``:``."""
    stop = _OBJECT_END_RE.search(prompt, start, end)
    return _strip(prompt, start, stop.start() if stop else end)


def _starts_mention(text: str, lexicon: Lexicon) -> bool:
    first = words(text)[:1]
    return bool(first) and (
        first[0] in lexicon.count_words or first[0] in DEFINITE_DETERMINERS or first[0].isdigit()
    )


def _conjunct_spans(prompt: str, span: Span, lexicon: Lexicon) -> list[Span]:
    """Split a noun phrase at "and"/"," before its first post-modifier, where a new one starts.

    "a cat and a dog" is two mentions, "cats and dogs" too; "a black and white cat" and
    "a cat with a hat and a scarf" are one.
    """
    head_end = span.end
    for i, m in enumerate(_WORD_RE.finditer(prompt, span.start, span.end)):
        if i > 0 and m.group().lower() in lexicon.modifiers:
            head_end = m.start()
            break
    pieces, start = [], span.start
    for m in _CONJUNCT_RE.finditer(prompt, span.start, head_end):
        left, right = prompt[start : m.start()], prompt[m.end() : span.end]
        left_words = words(left)
        if left_words and (_starts_mention(right, lexicon) or lexicon.is_plural(left_words[-1])):
            pieces.append(Span(start, m.start()))
            start = m.end()
    pieces.append(Span(start, span.end))
    return [p for p in pieces if p.start < p.end]


def _mentions(prompt: str, span: Span, lexicon: Lexicon) -> tuple[Mention, ...]:
    out = []
    for piece in _conjunct_spans(prompt, span, lexicon):
        text = piece.of(prompt)
        first = words(text)[:1]
        definite = bool(first) and first[0] in DEFINITE_DETERMINERS
        out.append(Mention(text, piece, lexicon.label(text), lexicon.count(text), definite))
    return tuple(out)


def _ambiguity(n_phrases: int, subject: str, obj: str) -> Ambiguity | None:
    if n_phrases > 1:
        return Ambiguity.MULTIPLE_PHRASES
    if not subject:
        return Ambiguity.EMPTY_SUBJECT
    if not obj:
        return Ambiguity.EMPTY_OBJECT
    if is_pronoun(subject):
        return Ambiguity.PRONOUN_SUBJECT
    if is_pronoun(obj):
        return Ambiguity.PRONOUN_OBJECT
    return None


def _sentence_of(prompt: str, start: int, end: int, inside: list[_Match]) -> Span:
    """Narrow a segment to the sentence holding its phrases ("Sunny day. A cat left of…").

    A sentence that holds no relation phrase belongs to no clause, so it stays where it is.
    """
    for m in _SENTENCE_END_RE.finditer(prompt, start, inside[0].span.start):
        start = m.end()
    stop = _SENTENCE_END_RE.search(prompt, inside[-1].span.end, end)
    return Span(start, stop.end() if stop else end)


def _clause(prompt: str, segment: Span, matches: list[_Match], lexicon: Lexicon) -> Clause:
    seg = _strip(prompt, segment.start, segment.end)
    first = matches[0]
    subject_span, link_span = _subject_and_link(prompt, seg.start, first.span.start)
    object_span = _object_span(prompt, first.span.end, seg.end)
    subject, obj = subject_span.of(prompt), object_span.of(prompt)
    subjects, objects = (
        _mentions(prompt, subject_span, lexicon),
        _mentions(prompt, object_span, lexicon),
    )
    return Clause(
        text=seg.of(prompt), span=seg,
        subject=subject, subject_span=subject_span,
        link=link_span.of(prompt), link_span=link_span,
        phrase=first.phrase, phrase_span=first.span,
        object=obj, object_span=object_span,
        subject_count=subjects[-1].count if subjects else ONE,
        object_count=objects[-1].count if objects else ONE,
        subject_label=subjects[-1].label if subjects else "",
        object_label=objects[-1].label if objects else "",
        subject_mentions=subjects, object_mentions=objects,
        ambiguous=_ambiguity(len(matches), subject, obj),
        phrase_spans=tuple(m.span for m in matches),
    )  # fmt: skip


# --- public entry points --------------------------------------------------------------------


def parse(prompt: str, *, lexicon: Lexicon = DEFAULT_LEXICON) -> ParsedPrompt:
    """Parse ``prompt`` into its framing prefix and spatial clauses (SPATIAL.md, "Clauses").

    Never raises for ordinary text: a prompt without a relation phrase has zero clauses.
    Ambiguous clauses are kept, with :attr:`Clause.ambiguous` saying why.
    """
    prefix = _prefix(prompt)
    body_start = prefix.end if prefix else 0
    matches = _phrase_matches(prompt, body_start)
    if not matches:
        return ParsedPrompt(prompt, prefix, ())
    bounds = [body_start]
    for point in _split_points(prompt, matches):
        bounds += [point.start, point.end]
    bounds.append(len(prompt))
    clauses = []
    for start, end in zip(bounds[::2], bounds[1::2], strict=True):
        inside = [m for m in matches if start <= m.span.start and m.span.end <= end]
        clauses.append(_clause(prompt, _sentence_of(prompt, start, end, inside), inside, lexicon))
    return ParsedPrompt(prompt, prefix, tuple(clauses))


def parse_spatial(prompt: str, *, lexicon: Lexicon = DEFAULT_LEXICON) -> ParsedPrompt:
    """Like :func:`parse`, but raise :class:`UnparsablePrompt` without an unambiguous clause."""
    parsed = parse(prompt, lexicon=lexicon)
    if not parsed.unambiguous:
        reasons = ", ".join(str(c.ambiguous) for c in parsed.clauses) or "no relation phrase"
        raise UnparsablePrompt(f"no unambiguous spatial clause in prompt {prompt!r} ({reasons})")
    return parsed
