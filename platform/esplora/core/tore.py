"""TORE: rewrite each weak spatial clause into the equivalent clause with the strong inverse.

SPATIAL.md, "TORE". A clause ``SUBJECT [LINK] PHRASE OBJECT`` whose relation is weak becomes
``OBJECT [LINK] PHRASE' SUBJECT`` with ``PHRASE'`` the phrase table's rewrite form; everything
outside subject, phrase and object (prefix, link, separators, ", at dusk") stays byte for byte.

Why TORE is idempotent: a rewrite always produces a phrase of the *inverse* relation, and for a
weak set built from inverse pairs (the default, or :func:`weak_relations`) the inverse of a weak
relation is strong, so a second pass finds no weak unambiguous clause to rewrite.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from esplora.core.errors import InvalidParameter
from esplora.core.grammar import Clause, ParsedPrompt, parse
from esplora.core.lexicon import DEFAULT_LEXICON, DEFINITE_DETERMINERS, words
from esplora.core.relations import INVERSE, Relation, parse_relation

__all__ = ["DEFAULT_WEAK", "ToreClause", "ToreResult", "analyse", "rewrite", "weak_relations"]

DEFAULT_WEAK: frozenset[str] = frozenset({"right_of", "below", "behind"})

# The three inverse pairs TORE can choose between (``near`` is its own inverse: never weak).
_PAIRS: tuple[tuple[Relation, Relation], ...] = (
    (Relation.LEFT_OF, Relation.RIGHT_OF),
    (Relation.ABOVE, Relation.BELOW),
    (Relation.IN_FRONT_OF, Relation.BEHIND),
)


@dataclass(frozen=True, slots=True)
class ToreClause:
    """What TORE did with one clause of a prompt."""

    text: str
    relation: Relation
    subject: str
    object: str
    phrase: str
    rewritten: bool
    ambiguous: str | None

    def to_dict(self) -> dict[str, str | bool | None]:
        """JSON-safe form (relation and ambiguity as plain strings)."""
        return {
            "text": self.text,
            "relation": self.relation.value,
            "subject": self.subject,
            "object": self.object,
            "phrase": self.phrase,
            "rewritten": self.rewritten,
            "ambiguous": None if self.ambiguous is None else str(self.ambiguous),
        }


@dataclass(frozen=True, slots=True)
class ToreResult:
    """A prompt, its TORE rewrite, the weak relations used and one entry per clause."""

    original: str
    rewritten: str
    weak: frozenset[Relation]
    clauses: tuple[ToreClause, ...]

    @property
    def changed(self) -> bool:
        """Whether the rewrite differs from the original."""
        return self.rewritten != self.original

    def to_dict(self) -> dict[str, object]:
        """JSON-safe form, as printed by ``esplora tore --json``."""
        return {
            "original": self.original,
            "rewritten": self.rewritten,
            "changed": self.changed,
            "weak": sorted(r.value for r in self.weak),
            "clauses": [c.to_dict() for c in self.clauses],
        }


def _weak_set(weak: Iterable[str | Relation]) -> frozenset[Relation]:
    if isinstance(weak, str):  # a lone name would otherwise be read letter by letter
        weak = (weak,)
    return frozenset(parse_relation(r) for r in weak)


def _match_case(new: str, written: str) -> str:
    """``new`` in the casing pattern of ``written`` (lower, Capitalised, Title Case, UPPER)."""
    letters = [c for c in written if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return new.upper()
    tokens = written.split()
    if len(tokens) > 1 and all(t[:1].isupper() for t in tokens):
        return " ".join(t[:1].upper() + t[1:] for t in new.split())
    if written[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def _take_position(text: str, model: str) -> str:
    """``text`` moved to where ``model`` was: capitalisation stays with the position.

    A sentence-initial capital moves off a determiner ("A cat" → "a cat"), never off a name.
    """
    if model[:1].isupper() and not model.isupper():
        return text[:1].upper() + text[1:]
    first = (words(text) or [""])[0]
    determiner = first in DEFINITE_DETERMINERS or first in DEFAULT_LEXICON.count_words
    if model[:1].islower() and text[:1].isupper() and not text.isupper() and determiner:
        return text[:1].lower() + text[1:]
    return text


def _is_rewritable(clause: Clause, weak: frozenset[Relation]) -> bool:
    return (
        clause.ambiguous is None
        and clause.relation in weak
        and clause.phrase.rewrite is not None
        and INVERSE[clause.relation] is not clause.relation
    )


def _swap(prompt: str, clause: Clause, rewrite: str) -> str:
    """The clause's subject and object exchanged and its phrase rewritten, all else in place."""
    subject, obj = clause.subject_span, clause.object_span
    written = clause.phrase_span.of(prompt)
    return "".join(
        (
            prompt[: subject.start],
            _take_position(clause.object, clause.subject),
            prompt[subject.end : clause.phrase_span.start],
            _match_case(rewrite, written),
            prompt[clause.phrase_span.end : obj.start],
            _take_position(clause.subject, clause.object),
            prompt[obj.end :],
        )
    )


def _rewrite_once(parsed: ParsedPrompt, weak: frozenset[Relation]) -> str:
    text = parsed.prompt
    # Splice right to left so the spans of the clauses still to do stay valid.
    for clause in reversed(parsed.clauses):
        if _is_rewritable(clause, weak) and clause.phrase.rewrite is not None:
            text = _swap(text, clause, clause.phrase.rewrite)
    return text


def _report(clause: Clause, prompt: str, weak: frozenset[Relation]) -> ToreClause:
    return ToreClause(
        text=clause.text,
        relation=clause.relation,
        subject=clause.subject,
        object=clause.object,
        phrase=clause.phrase_span.of(prompt),
        rewritten=_is_rewritable(clause, weak),
        ambiguous=None if clause.ambiguous is None else str(clause.ambiguous),
    )


def analyse(prompt: str, *, weak: Iterable[str | Relation] = DEFAULT_WEAK) -> ToreResult:
    """Rewrite ``prompt`` with TORE and report, per clause, what was done and why.

    ``weak`` holds relation names or :class:`Relation` values; an unknown name raises
    :class:`~esplora.core.errors.UnknownRelation`. Ambiguous clauses (more than one relation
    phrase, an empty or pronoun subject or object) are left unchanged and reported.
    """
    weak_set = _weak_set(weak)
    parsed = parse(prompt)
    text = _rewrite_once(parsed, weak_set)
    # A swap can move an "and" next to a clause boundary and so re-segment a degenerate prompt
    # ("a to the right of and a above and"), freeing a clause that was ambiguous. Passing again
    # until nothing changes keeps TORE idempotent; it ends because every pass turns at least one
    # weak phrase into a strong one and creates no weak phrase.
    for _ in range(sum(len(c.phrase_spans) for c in parsed.clauses)):
        again = parse(text)
        if not any(_is_rewritable(c, weak_set) for c in again.clauses):
            break
        text = _rewrite_once(again, weak_set)
    clauses = tuple(_report(c, prompt, weak_set) for c in parsed.clauses)
    return ToreResult(prompt, text, weak_set, clauses)


def rewrite(prompt: str, *, weak: Iterable[str | Relation] = DEFAULT_WEAK) -> str:
    """``prompt`` with every weak, unambiguous clause rewritten to its strong inverse.

    "a photo of a cat to the right of a dog, at dusk" → "a photo of a dog to the left of a cat,
    at dusk" with the default weak set (``right_of``, ``below``, ``behind``: the paper's finding).
    """
    return analyse(prompt, weak=weak).rewritten


def _accuracy_value(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameter(f"accuracy of {name!r} must be a number, got {value!r}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InvalidParameter(f"accuracy of {name!r} must lie in [0, 1], got {value!r}")
    return float(value)


def weak_relations(accuracy: Mapping[str, float], *, margin: float = 0.0) -> frozenset[str]:
    """The weak relations of a model, from its strict accuracy per relation without TORE.

    For each inverse pair present in ``accuracy`` (left/right, above/below, front/behind), the
    lower one is weak when the two differ by more than ``margin``. Relation names are parsed
    (:class:`~esplora.core.errors.UnknownRelation` for an unknown one); accuracies must lie in
    [0, 1] and ``margin`` must be finite and ≥ 0 (:class:`InvalidParameter`). A pair with one
    side missing is left alone: there is nothing to compare.
    """
    if isinstance(margin, bool) or not isinstance(margin, int | float):
        raise InvalidParameter(f"margin must be a number, got {margin!r}")
    if not (math.isfinite(margin) and margin >= 0):
        raise InvalidParameter(f"margin must be finite and >= 0, got {margin!r}")
    measured = {parse_relation(k): _accuracy_value(k, v) for k, v in accuracy.items()}
    weak: set[str] = set()
    for a, b in _PAIRS:
        if a in measured and b in measured and abs(measured[a] - measured[b]) > margin:
            weak.add((a if measured[a] < measured[b] else b).value)
    return frozenset(weak)
