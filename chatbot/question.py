"""What a question asks for: the kind of answer (amount, share, count, date, person, list, quote)
and the entities it names, with a fuzzy, alias-aware test of whether a text mentions them.

Simplifies: question words per language are a small closed class, so patterns find the answer
kind; entities are the words a reader would capitalise (acronyms, CamelCase, numbers, and in
French/English any capitalised word after the first), because German capitalises every noun.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

KINDS = ("percent", "count", "amount", "date", "who", "list", "quote", "why", "generic")

# What a money question is about. Valuations, revenue and founding dates are different facts from
# the amounts raised: a sentence answers only if it speaks of the same aspect.
ASPECTS: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {
    "valuation": (
        re.compile(r"valoris|valuation|valued|worth|bewert", re.I),
        re.compile(r"valoris|valuation|valued|worth|bewert", re.I),
    ),
    "revenue": (
        re.compile(r"chiffre d.affaires|revenue|revenus|umsatz|sales|turnover|ventes|einnahmen", re.I),
        re.compile(r"chiffre d.affaires|revenue|revenus|umsatz|sales|turnover|ventes|einnahmen", re.I),
    ),
    "profit": (re.compile(r"bénéfice|profit|gewinn|earnings", re.I), re.compile(r"bénéfice|profit|gewinn|earnings", re.I)),
    "founded": (
        re.compile(r"\b(fondée?s?|founded|créée?s?|gegründet|création|gründung|established)\b", re.I),
        re.compile(
            r"\b(fondée?s?|founded|créée?s?|gegründet|création|gründung|established|depuis|since|seit) (en |in )?(19|20)\d\d",
            re.I,
        ),
    ),
    "employees": (
        re.compile(r"employ|salarié|mitarbeiter|staff|headcount|effectif", re.I),
        re.compile(r"employ|salarié|mitarbeiter|staff|headcount|effectif", re.I),
    ),
    # an age is a number of years said as one ("26 ans", "aged 33", "der 33-Jährige", "(41)", "Parata, 75,"), not
    # any number near the name
    "age": (
        re.compile(r"\b(how old|quel [âa]ge|wie alt)\b", re.I),
        re.compile(
            r"\b\d{1,3}(\s|-)?(ans|years?|year-old|jahre|jährige\w*)\b|\b(âgée?s? de|aged|im alter von) \d{1,3}\b|\(\d{1,3}\)|"
            r"\b[A-ZÀ-Þ][\w'’-]+, \d{1,3},",  # "Parata, 75, has overseen": the news style's age after a name
            re.I,
        ),
    ),
}


_ASPECT_KINDS = {"founded": ("date",), "employees": ("count", "generic"), "age": ("count",)}


def aspects(question: str, kind: str = "generic") -> list[str]:
    """The aspects a question asks about; founding only matters for "when", headcount for "how many"."""
    return [
        name
        for name, (q, _) in ASPECTS.items()
        if q.search(question) and kind in _ASPECT_KINDS.get(name, ("amount", "generic", "count", "date", "who"))
    ]


def has_aspect(name: str, text: str) -> bool:
    return bool(ASPECTS[name][1].search(text))


_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "percent",
        re.compile(
            r"\b(what (share|percentage|proportion|part|fraction)|which (share|percentage)|how many percent|"
            r"quel(le)?s? (part|pourcentage|proportion)|combien de (pour ?cent|%)|quelle est la part|"
            r"welche[nrs]? (anteil|prozentsatz)|wie ?viel(e)? prozent|welcher anteil|wie hoch (war|ist) der anteil|"
            r"share|percentage|pourcentage|anteil|prozent|la part|une part|quel niveau|what level|"
            r"rates?|taux|\w+quote|quote de)\b",  # a rate: "taux de recyclage", "Recyclingquote"
            re.I,
        ),
    ),
    ("count", re.compile(r"\b(how many|combien (de|d')|wie ?viele|how old|quel [âa]ge|wie alt)\b", re.I)),
    (
        "amount",
        re.compile(
            r"\b(how much|combien|wie ?viel|what amount|what sum|quel montant|quelle somme|welche[nrs]? (betrag|summe)|"
            r"raise[ds]?|lev(é|ée|ées|és|er)|récolt\w*|sécuris\w*|eingesammelt|erhalten|investi(e|s)?|invested|investiert)\b",
            re.I,
        ),
    ),
    (
        "date",
        re.compile(
            r"\b(when|quand|wann|what date|quelle date|what year|quelle année|welche[nms]? jahr|in welchem jahr|en quelle année|"
            r"quelle période|quelle époque|which period|what period|what era|welche[nrm]? zeit|welche[nrm]? epoche|an welchem tag)\b",
            re.I,
        ),
    ),
    (
        "list",
        re.compile(
            r"\b(which (\w+ )?(companies|firms|funds|startups|investors|rounds|sectors|areas|domains|players|ones)|"
            r"what (\w+ )?(companies|firms|funds|startups|investors|rounds|services|tools)|list|name the|"
            r"quel(le)?s (\w+ )?(entreprises|sociétés|firmes|fonds|startups|investisseurs|tours|secteurs|domaines|acteurs|services|outils)|"
            r"welche (\w+ )?(unternehmen|firmen|fonds|startups|investoren|runden|bereiche|sektoren|akteure)|"
            r"suivi|followed|folgten|gefolgt)\b",
            re.I,
        ),
    ),
    (
        "who",
        re.compile(
            r"^\W*(who|qui|wer|wem|wen)\b|\b(who|qui|wer)\b|"
            r"\b(which|what) (reader|commenter|person|company|firm|fund|investor|startup|lab|organi[sz]ation)\b|"
            r"\bquel(le)? (lecteur|lectrice|commentateur|personne|société|entreprise|firme|fonds|investisseur|startup|organisme)\b|"
            r"\bwelche[rsn]? (leser|leserin|kommentator|person|unternehmen|firma|fonds|investor|startup|organisation)\b",
            re.I,
        ),
    ),
    (
        "quote",
        re.compile(
            r"\b(say|said|says|dit|déclaré|affirmé|souligné|sagt|gesagt|sagte|quote|citation|zitat|décrit|described|describe|beschrieb|beschreibt|"
            r"exclaimed|exclamé|ausgerufen)\b",
            re.I,
        ),
    ),
    ("why", re.compile(r"\b(why|pourquoi|warum|weshalb|wieso|for what reason|pour quelle raison|aus welchem grund)\b", re.I)),
]

_APOS_PREFIX = re.compile(r"^(?:[ldjmnstcLDJMNSTC]|qu|Qu|jusqu|lorsqu)['’]")
_TOKEN = re.compile(r"[\w$€][\w'’.\-]*[\w%]|[\w$€]")
_STOP_ENTITY = {
    "i",
    "ich",
    "je",
    "the",
    "la",
    "le",
    "les",
    "der",
    "die",
    "das",
    "und",
    "et",
    "and",
    "what",
    "which",
    "who",
    "how",
    "quel",
    "quelle",
    "combien",
    "wie",
    "wer",
    "was",
    "welche",
    "when",
    "quand",
    "wann",
}


@dataclass
class QuestionInfo:
    text: str
    kind: str
    entities: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)


@lru_cache(maxsize=16384)
def fold(text: str) -> str:
    """Lower case without accents, typographic apostrophes unified (cached: the same passages and
    question words are folded for every candidate)."""
    text = unicodedata.normalize("NFKD", text.replace("’", "'"))
    return "".join(ch for ch in text if not unicodedata.combining(ch)).lower()


# "Who raised the most?", "Which VC firms invested…": a who/which question whose only money word
# is a verb asks for a name, not an amount ("How much did X raise?" asks for the amount)
_ASKS_NAME = re.compile(r"^\W*(who|whom|which|qui|quel(le)?s?|lequel|laquelle|lesquel(le)?s|wer|wen|wem|welche[nrsm]?)\b", re.I)
_QUANTITY = re.compile(
    r"\b(how much|combien|wie ?viel|what amount|what sum|quel montant|quelle somme|welche[nrs]? (betrag|summe))\b", re.I
)


def answer_kind(question: str) -> str:
    for kind, pattern in _PATTERNS:
        if pattern.search(question):
            if kind == "amount" and _ASKS_NAME.search(question) and not _QUANTITY.search(question):
                continue
            if kind == "amount" and re.search(r"%|pour ?cent|percent|prozent", question, re.I):
                return "percent"
            if kind == "count" and re.search(r"dollar|euro|\$|€|geld|money|argent", question, re.I):
                return "amount"
            return kind
    return "generic"


def entities(question: str, language: str, known: set[str] | None = None) -> list[str]:
    """Names in the question: consecutive capitalised words merged, possessives dropped.

    German capitalises every noun, so there a capitalised word is a name only if `known`
    (the corpus vocabulary, folded) has it.
    """
    out: list[str] = []
    current: list[str] = []
    tokens = list(_TOKEN.finditer(question))
    for i, m in enumerate(tokens):
        tok = _APOS_PREFIX.sub("", m.group(0))
        tok = re.sub(r"['’]s$", "", tok).strip(".-'’")
        if not tok:
            continue
        first = i == 0 or question[: m.start()].rstrip().endswith(("?", "!", ".", ":", "«", '"'))
        strong = bool(re.search(r"\d", tok) or (len(tok) >= 2 and tok.isupper()) or re.search(r"[a-z][A-Z]", tok))
        capital = tok[0].isupper() and fold(tok) not in _STOP_ENTITY
        if language == "de" and capital and not strong:
            capital = known is not None and fold(tok) in known
        is_entity = strong or (capital and not first)
        joined = bool(current) and i > 0 and question[tokens[i - 1].end() : m.start()].strip() == ""
        if is_entity and current and not joined:
            out.append(" ".join(current))  # "HackerOne, LinkBot": a comma separates two names
            current = []
        if is_entity:
            current.append(tok)
        else:
            if current:
                out.append(" ".join(current))
            current = []
    if current:
        out.append(" ".join(current))
    return [e for e in out if not re.fullmatch(r"\d{1,2}", e)]


def content_words(text: str) -> list[str]:
    return [w for w in re.findall(r"\w{4,}", fold(text)) if not w.isdigit()]


@lru_cache(maxsize=4)
def _alias_groups(path: str) -> list[list[str]]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [[fold(a) for a in g] for g in data["groups"]]


class Mentions:
    """Tests whether a text mentions an entity, allowing inflection (shared prefix) and aliases."""

    def __init__(self, aliases_path: Path) -> None:
        self.groups = _alias_groups(str(aliases_path))

    @lru_cache(maxsize=4096)  # noqa: B019  (one Mentions per process; the cache is meant to live as long)
    def variants(self, entity: str) -> list[str]:
        e = fold(entity)
        for g in self.groups:
            if e in g:
                return g
        return [e]

    def mentioned(self, entity: str, text: str) -> bool:
        words = folded_words(text)
        for v in self.variants(entity):
            if len(v.split()) > 1 or not v.isalnum():
                parts = re.findall(r"[\w$€%]+", v)
                if parts and all(_word_in(p, words) for p in parts):
                    return True
            elif _word_in(v, words):
                return True
        return False


@lru_cache(maxsize=8192)
def folded_words(text: str) -> frozenset[str]:
    """The folded words of a text; cached because passages are tested again and again."""
    return frozenset(re.findall(r"[\w$€%]+", fold(text)))


@lru_cache(maxsize=8192)
def _by_prefix(words: frozenset[str]) -> dict[str, tuple[str, ...]]:
    """A text's words of 5 letters or more by their first five: `_word_in` scans one bucket, not
    the whole text, for each question word (it was a tenth of a warm answer's time)."""
    out: dict[str, list[str]] = {}
    for w in words:
        if len(w) >= 5:
            out.setdefault(w[:5], []).append(w)
    return {k: tuple(v) for k, v in out.items()}


def _word_in(word: str, words: frozenset[str] | set[str]) -> bool:
    if word in words or word + "s" in words:
        return True
    if word.isdigit() or len(word) < 5:
        return False
    stem = word[: max(5, len(word) - 2)]
    # a stem has 5 letters or more, so only words sharing its first five can start with it
    bucket = _by_prefix(words).get(stem[:5], ()) if isinstance(words, frozenset) else words
    return any(w.startswith(stem) and abs(len(w) - len(word)) <= 3 for w in bucket)


def analyze(question: str, language: str, known: set[str] | None = None) -> QuestionInfo:
    return QuestionInfo(question, answer_kind(question), entities(question, language, known), content_words(question))
