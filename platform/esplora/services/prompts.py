"""Spatial prompts in the store: parsed once, stored with their structured relations."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from esplora.core.errors import UnparsablePrompt
from esplora.core.grammar import parse_spatial
from esplora.core.prompts import prompt_spec
from esplora.core.vocabulary import load_vocabulary
from esplora.db.engine import Store
from esplora.db.enums import PromptKind
from esplora.db.synthetic import SpatialPrompt


@dataclass(frozen=True, slots=True)
class PromptImport:
    """What :func:`add_prompts` did: how many were new, already stored, or not spatial."""

    added: int
    existing: int
    rejected: tuple[str, ...] = field(default=())


def structured_relations(text: str) -> list[dict[str, str]]:
    """The prompt's relations as ``{"subject", "relation", "object"}`` label dicts.

    Raises :class:`UnparsablePrompt` when the text holds no unambiguous spatial clause.
    """
    lexicon = load_vocabulary().lexicon  # the labels detectors report ("street lamp")
    spec = prompt_spec(parse_spatial(text, lexicon=lexicon), lexicon=lexicon)
    return [
        {
            "subject": spec.objects[r.subject].label,
            "relation": r.relation.value,
            "object": spec.objects[r.object].label,
        }
        for r in spec.relations
    ]


def add_prompts(
    store: Store, texts: Iterable[str], *, origin: str, benchmark: str | None = None
) -> PromptImport:
    """Store each new spatial prompt once (by exact text); report the ones that are not spatial."""
    rows: dict[str, SpatialPrompt] = {}
    rejected: list[str] = []
    for text in dict.fromkeys(t.strip() for t in texts if t.strip()):
        try:
            relations = structured_relations(text)
        except UnparsablePrompt as error:
            rejected.append(str(error))
            continue
        kind = PromptKind.SIMPLE if len(relations) == 1 else PromptKind.COMPLEX
        rows[text] = SpatialPrompt(
            text=text, kind=kind, relations=relations, origin=origin, benchmark=benchmark
        )
    with store.unit_of_work() as session:
        known = set(session.scalars(select(SpatialPrompt.text).where(SpatialPrompt.text.in_(rows))))
        session.add_all(row for text, row in rows.items() if text not in known)
    return PromptImport(len(rows) - len(known), len(known), tuple(rejected))
