"""The small shared lexicon: count words, plural lemmas, synonyms and pronouns.

The prompt grammar, the image-level verdicts and caption extraction all need the same answer to
"which object does this noun phrase name, and how many of it": the head noun's lemma mapped
through one synonym table (SPATIAL.md, "Image-level verdicts"). Every table lives in a
:class:`Lexicon` value so a later vocabulary (COCO, LVIS nouns) extends it with
:meth:`Lexicon.extended` instead of editing code; the module functions use
:data:`DEFAULT_LEXICON`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from esplora.core.errors import InvalidParameter

_V = TypeVar("_V")

__all__ = [
    "DEFAULT_LEXICON",
    "DEFINITE_DETERMINERS",
    "PRONOUNS",
    "Count",
    "Lexicon",
    "canonical_label",
    "count_of",
    "head_noun",
    "is_plural",
    "is_pronoun",
    "lemmatise",
    "words",
]


@dataclass(frozen=True, slots=True)
class Count:
    """How many instances a noun phrase asks for: exactly ``exact``, or at least ``at_least``.

    ``exact`` is ``None`` for open counts (a bare plural, "some", "several"); when it is set,
    ``at_least`` equals it.
    """

    exact: int | None
    at_least: int

    def __post_init__(self) -> None:
        if self.at_least < 0 or (self.exact is not None and self.exact != self.at_least):
            raise InvalidParameter(
                f"inconsistent count: exact={self.exact}, at_least={self.at_least}"
            )

    @classmethod
    def exactly(cls, n: int) -> Count:
        """A count of exactly ``n``."""
        return cls(n, n)

    @classmethod
    def at_least_n(cls, n: int) -> Count:
        """An open count of at least ``n``."""
        return cls(None, n)

    def strict_ok(self, detected: int) -> bool:
        """Strict reading: detected == the prompt's count (an open count: at least it)."""
        return detected == self.exact if self.exact is not None else detected >= self.at_least

    def soft_ok(self, detected: int) -> bool:
        """Soft reading: at least the prompt's count was detected."""
        return detected >= self.at_least

    def __add__(self, other: Count) -> Count:
        # Two mentions of one label ("a dog to the left of a dog") ask for the sum of both.
        if self.exact is not None and other.exact is not None:
            return Count.exactly(self.exact + other.exact)
        return Count.at_least_n(self.at_least + other.at_least)

    def __str__(self) -> str:
        return str(self.exact) if self.exact is not None else f">={self.at_least}"


ONE = Count.exactly(1)
SEVERAL = Count.at_least_n(2)

PRONOUNS: frozenset[str] = frozenset(
    {"it", "them", "him", "her", "they", "each other", "one another"}
)

# "the dogs" is plural even though "the" alone would mean one; these decide by the head noun.
DEFINITE_DETERMINERS: frozenset[str] = frozenset({"the", "this", "that", "these", "those"})

_NUMERALS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

_COUNT_WORDS: Mapping[str, Count] = MappingProxyType(
    {
        "a": ONE,
        "an": ONE,
        **{word: Count.exactly(n) for n, word in enumerate(_NUMERALS, start=1)},
        "some": SEVERAL,
        "several": SEVERAL,
        "many": SEVERAL,
        "multiple": SEVERAL,
    }
)

# Words that start a post-modifier: the head noun is the last word before the first of them.
_MODIFIERS = frozenset(
    {
        "with", "in", "on", "of", "at", "from", "for", "by", "without", "inside", "into",
        "wearing", "holding", "carrying", "sitting", "standing", "lying", "riding", "eating",
        "playing", "walking", "running", "looking", "covered", "made", "filled", "dressed",
        "that", "which", "who", "whose",
    }
)  # fmt: skip

# Singular words that merely end in "s": never stripped, and "-es" plurals of them ("buses",
# "glasses", "dresses") come back to them. Plural-only nouns (scissors, skis) stay as they are.
_INVARIANT = frozenset(
    {
        "bus", "glass", "grass", "dress", "gas", "lens", "cactus", "octopus", "walrus", "virus",
        "campus", "circus", "bonus", "hippopotamus", "platypus", "citrus", "canvas", "atlas",
        "iris", "chassis", "series", "species", "news", "tennis", "bass", "moss", "cross",
        "compass", "mattress", "princess", "actress", "waitress", "address", "class", "boss",
        "harness", "fortress", "sheep", "deer", "fish", "moose", "bison", "aircraft", "salmon",
        "trout", "shrimp", "scissors", "pants", "jeans", "trousers", "shorts", "skis", "sunglasses",
        "binoculars", "headphones", "earphones", "goggles", "chopsticks", "tongs", "pliers", "this",
        "is", "was", "has", "its", "us", "yes", "plus", "bias", "chaos", "ethos", "lotus", "hummus",
        "asparagus", "couscous", "fungus", "cosmos", "pelvis", "thesis", "basis", "axis", "oasis",
    }
)  # fmt: skip

_IRREGULAR = MappingProxyType(
    {
        "people": "person", "persons": "person", "men": "man", "women": "woman",
        "children": "child", "mice": "mouse", "geese": "goose", "feet": "foot", "teeth": "tooth",
        "oxen": "ox", "lice": "louse", "dice": "die", "knives": "knife", "wives": "wife",
        "lives": "life", "leaves": "leaf", "shelves": "shelf", "wolves": "wolf", "loaves": "loaf",
        "halves": "half", "calves": "calf", "elves": "elf", "thieves": "thief", "scarves": "scarf",
        "hooves": "hoof", "cacti": "cactus", "fungi": "fungus", "octopi": "octopus",
        "quizzes": "quiz", "taxis": "taxi", "kiwis": "kiwi", "radii": "radius",
        "potatoes": "potato", "tomatoes": "tomato", "heroes": "hero", "mangoes": "mango",
        "volcanoes": "volcano", "echoes": "echo", "torpedoes": "torpedo", "dominoes": "domino",
        "mosquitoes": "mosquito", "buffaloes": "buffalo",
    }
)  # fmt: skip

# "-ies" plurals whose singular ends in "ie" rather than "y" ("cookies", not "cooky").
_IE_SINGULARS = frozenset(
    {
        "cookie", "movie", "zombie", "brownie", "selfie", "smoothie", "pie", "tie", "hoodie",
        "beanie", "collie", "goalie", "rookie", "auntie", "pixie", "genie", "calorie", "prairie",
        "lie", "birdie", "bootie", "veggie", "budgie", "magpie", "sweetie",
    }
)  # fmt: skip

# "-ches" plurals whose singular keeps the "e" ("moustaches", not "moustach").
_CHE_SINGULARS = frozenset(
    {"headache", "moustache", "mustache", "niche", "cache", "avalanche", "quiche", "cliche"}
)

# Singular words ending in "men", which the "-men" → "-man" rule must leave alone.
_MEN_SINGULARS = frozenset(
    {"men", "omen", "abdomen", "specimen", "semen", "stamen", "regimen", "hymen", "amen", "ramen"}
)

# Lemma (or two-word compound) -> canonical label. Compounds are matched before their last word,
# so "hot dog" stays a food and "teddy bear" a toy.
_SYNONYMS = MappingProxyType(
    {
        **dict.fromkeys(
            (
                "man", "woman", "girl", "boy", "child", "kid", "lady", "guy", "pedestrian",
                "people", "baby", "toddler", "gentleman", "teenager", "adult", "human",
                "player", "skier", "surfer", "skateboarder", "rider", "fireman", "policeman",
            ),
            "person",
        ),
        "automobile": "car", "taxi": "car", "cab": "car", "sedan": "car",
        "puppy": "dog", "doggy": "dog", "pup": "dog",
        "kitten": "cat", "kitty": "cat",
        "bike": "bicycle", "motorbike": "motorcycle",
        "sofa": "couch", "tv": "television", "tv set": "television",
        "aeroplane": "airplane", "plane": "airplane", "jet": "airplane",
        "lorry": "truck", "doughnut": "donut", "bunny": "rabbit", "pony": "horse",
        "cellphone": "cell phone", "smartphone": "cell phone", "mobile phone": "cell phone",
        "phone": "cell phone", "hydrant": "fire hydrant", "teddy": "teddy bear",
        "hot dog": "hot dog", "teddy bear": "teddy bear", "traffic light": "traffic light",
        "fire hydrant": "fire hydrant", "stop sign": "stop sign", "cell phone": "cell phone",
        "wine glass": "wine glass", "parking meter": "parking meter",
    }
)  # fmt: skip

_WORD = re.compile(r"[A-Za-z0-9]+(?:['’-][A-Za-z0-9]+)*")


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (letters, digits, inner hyphens and apostrophes)."""
    return [w.lower() for w in _WORD.findall(text)]


@dataclass(frozen=True, slots=True, eq=False)
class Lexicon:
    """Every word table the grammar and the verdicts consult, as one extensible value."""

    synonyms: Mapping[str, str] = field(default_factory=lambda: _SYNONYMS)
    irregular_plurals: Mapping[str, str] = field(default_factory=lambda: _IRREGULAR)
    invariant: frozenset[str] = field(default=_INVARIANT)
    count_words: Mapping[str, Count] = field(default_factory=lambda: _COUNT_WORDS)
    modifiers: frozenset[str] = field(default=_MODIFIERS)

    def extended(
        self,
        *,
        synonyms: Mapping[str, str] | None = None,
        irregular_plurals: Mapping[str, str] | None = None,
        invariant: frozenset[str] | None = None,
        count_words: Mapping[str, Count] | None = None,
        modifiers: frozenset[str] | None = None,
    ) -> Lexicon:
        """A new lexicon with these entries added (later entries win), this one unchanged."""
        return Lexicon(
            synonyms=_merged(self.synonyms, synonyms),
            irregular_plurals=_merged(self.irregular_plurals, irregular_plurals),
            invariant=self.invariant | (invariant or frozenset()),
            count_words=_merged(self.count_words, count_words),
            modifiers=self.modifiers | (modifiers or frozenset()),
        )

    def lemma(self, word: str) -> str:
        """The singular of a (lower-cased) noun; words that are not plural come back unchanged."""
        w = word.lower()
        if w in self.invariant:
            return w
        if w in self.irregular_plurals:
            return self.irregular_plurals[w]
        return _regular_singular(w, self.invariant)

    def is_plural(self, word: str) -> bool:
        """Whether ``word`` is a plural noun form (an invariant noun counts as singular)."""
        return self.lemma(word) != word.lower()

    def head_tokens(self, noun_phrase: str) -> list[str]:
        """The words of ``noun_phrase`` before its first post-modifier ("with", "wearing"…)."""
        tokens = words(noun_phrase)
        for i, token in enumerate(tokens[1:], start=1):
            if token in self.modifiers:
                return tokens[:i]
        return tokens

    def head_noun(self, noun_phrase: str) -> str:
        """The head noun as written (lower-cased): the last word before any post-modifier."""
        tokens = self.head_tokens(noun_phrase)
        return tokens[-1] if tokens else ""

    def label(self, noun_phrase: str) -> str:
        """The canonical label of a noun phrase: head lemma (or known compound) through synonyms."""
        tokens = self.head_tokens(noun_phrase)
        if not tokens:
            return ""
        lemma = self.lemma(tokens[-1])
        if len(tokens) >= 2:
            compound = f"{tokens[-2]} {lemma}"
            if compound in self.synonyms:
                return self.synonyms[compound]
        return self.synonyms.get(lemma, lemma)

    def count(self, noun_phrase: str) -> Count:
        """How many instances ``noun_phrase`` asks for: its determiner, else its head's number."""
        tokens = self.head_tokens(noun_phrase)
        if not tokens:
            return ONE
        plural = self.is_plural(tokens[-1])
        first = tokens[0]
        if first in DEFINITE_DETERMINERS and len(tokens) > 1:
            # "the two dogs": the numeral after the article decides.
            explicit = self._explicit_count(tokens[1])
            if explicit is not None:
                return explicit
        explicit = self._explicit_count(first) if len(tokens) > 1 else None
        if explicit is not None:
            # "a few dogs": an article before a plural head does not make it one.
            return SEVERAL if explicit == ONE and plural else explicit
        return SEVERAL if plural else ONE

    def _explicit_count(self, token: str) -> Count | None:
        if token.isdigit():
            return Count.exactly(int(token))
        return self.count_words.get(token)


def _merged(base: Mapping[str, _V], extra: Mapping[str, _V] | None) -> Mapping[str, _V]:
    return MappingProxyType({**base, **(extra or {})})


def _regular_singular(w: str, invariant: frozenset[str]) -> str:
    """Regular English plural endings, most specific first; anything else is already singular."""
    if w.endswith("men") and w not in _MEN_SINGULARS:  # firemen, policemen
        return w[:-3] + "man"
    if len(w) <= 3 or not w.endswith("s") or w.endswith(("ss", "us", "is")):
        return w
    if w.endswith("es") and w[:-2] in invariant:  # buses, glasses, dresses, lenses
        return w[:-2]
    if w.endswith("ies"):
        return w[:-1] if w[:-1] in _IE_SINGULARS else w[:-3] + "y"
    if w.endswith("sses") or w.endswith(("shes", "xes", "zzes")):
        return w[:-2]
    if w.endswith("ches"):
        return w[:-1] if w[:-1] in _CHE_SINGULARS else w[:-2]
    return w[:-1]


DEFAULT_LEXICON = Lexicon()


def lemmatise(word: str, *, lexicon: Lexicon = DEFAULT_LEXICON) -> str:
    """The singular lemma of ``word`` ("people" → "person", "buses" → "bus", "bus" → "bus")."""
    return lexicon.lemma(word)


def is_plural(word: str, *, lexicon: Lexicon = DEFAULT_LEXICON) -> bool:
    """Whether ``word`` is a plural noun form."""
    return lexicon.is_plural(word)


def head_noun(noun_phrase: str, *, lexicon: Lexicon = DEFAULT_LEXICON) -> str:
    """The head noun of ``noun_phrase`` as written: its last word before any post-modifier."""
    return lexicon.head_noun(noun_phrase)


def canonical_label(noun_phrase: str, *, lexicon: Lexicon = DEFAULT_LEXICON) -> str:
    """The canonical object label of ``noun_phrase`` ("two young women in hats" → "person").

    The head noun is the last word before any post-modifier ("with", "in", "on", "of",
    "wearing"…), lemmatised and mapped through the synonym table; an empty phrase gives ``""``.
    """
    return lexicon.label(noun_phrase)


def count_of(noun_phrase: str, *, lexicon: Lexicon = DEFAULT_LEXICON) -> Count:
    """How many instances ``noun_phrase`` asks for.

    "a", "an", "one", "the" → exactly 1; "two".."ten" and digits → exactly n; a bare plural and
    "some"/"several"/"many" → at least 2; "the" before a plural head → at least 2.
    """
    return lexicon.count(noun_phrase)


def is_pronoun(text: str) -> bool:
    """Whether ``text`` (a subject or object) is one of SPATIAL.md's pronouns."""
    return " ".join(words(text)) in PRONOUNS
