"""Answer spans inside a sentence (amounts, shares, counts, dates, names, list items) and how
to say an amount in the reader's language.

Simplifies: money in news text is "<number> <scale> <currency>" in one of a few spellings
(10 milliards de dollars, $110B, 6.6 billion dollars, 10 Mrd. Dollar); we parse those shapes
and re-render them, leaving anything else exactly as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_NUM = r"\d{1,3}(?:[  .,]\d{3})*(?:[.,]\d+)?|\d+(?:[.,]\d+)?"
_QUAL = r"(?:(?:plus de|près de|environ|more than|over|about|around|nearly|über|mehr als|fast|rund|seulement|only|nur)\s+)?"
_SCALE = r"(?:milliards?|millions?|billions?|trillions?|Milliarden|Milliarde|Millionen|Million|Mrd\.?|Mio\.?|bn|B|M|k)"
_CUR = r"(?:de\s+)?(?:dollars?|euros?|USD|EUR|US-Dollar|Dollar|Euro|\$|€)"
MONEY = re.compile(
    rf"{_QUAL}(?:[$€]\s?(?:{_NUM})(?:\s?{_SCALE}\b)?|(?:{_NUM})\s?(?:{_SCALE}\s+)?{_CUR}(?!\w)|(?:{_NUM})\s(?:{_SCALE})(?!\w)(?:\s+{_CUR})?)",
    re.I,
)
PERCENT = re.compile(rf"{_QUAL}(?:{_NUM})\s?(?:%|pour ?cent|percent|per cent|Prozent)", re.I)
YEAR = re.compile(r"\b(?:19|20)\d{2}\b")
_MONTHS = (
    r"janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre|novembre|décembre|january|february|march|"
    r"april|may|june|july|august|september|october|november|december|januar|februar|märz|juni|juli|oktober|dezember"
)
DATE = re.compile(
    rf"\b\d{{1,2}}\.?\s(?:{_MONTHS})\s\d{{4}}\b|\b(?:{_MONTHS})\s\d{{4}}\b|\bannées?\s(?:19|20)\d{{2}}\b|\b(?:19|20)\d{{2}}\b",
    re.I,
)
NUMBER = re.compile(r"(?<![\w.,/])\d+(?:[.,]\d+)?(?![\w%/])")  # not a part of 9/11 or 24/7
NAME = re.compile(r"\b(?:[A-Z][\w\-]*[a-z][\w\-]*|[a-z]+[A-Z]\w*|[A-Z]{2,}\w*)(?:\s(?:[A-Z][\w\-]*|[a-z]\d+\w*))*")


# A citation marker a document carries ("… in 2023 [3].", "[12]"): never a figure of the text.
# Masked with spaces of the same length, so spans keep their offsets in the original.
_MARKER = re.compile(r"\[\s*\d{1,4}(?:\s*[,–-]\s*\d{1,4})*\s*\]")


def without_markers(text: str) -> str:
    """`text` with each bracketed citation marker blanked out (same length, same offsets)."""
    return _MARKER.sub(lambda m: " " * len(m.group()), text)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str
    kind: str


def find(kind: str, text: str) -> list[Span]:
    """Spans of a kind ("amount", "percent", "count", "date", "who") in text, in order. A
    document's own "[3]" is plain text here: no span is found in or across a marker."""
    return list(_find(kind, text))


@lru_cache(maxsize=8192)
def _find(kind: str, text: str) -> tuple[Span, ...]:
    # cached: each candidate's sentence and passage are searched for several kinds per answer
    text = without_markers(text)
    if kind == "amount":
        found = [
            m
            for m in MONEY.finditer(text)
            if re.search(r"[$€]|dollar|euro|usd|eur|milliard|billion|million|mrd", m.group(0), re.I)
        ]
    elif kind == "percent":
        found = list(PERCENT.finditer(text))
    elif kind == "date":
        found = list(DATE.finditer(text))
    elif kind == "count":
        taken = [(m.start(), m.end()) for m in [*MONEY.finditer(text), *PERCENT.finditer(text), *YEAR.finditer(text)]]
        found = [m for m in NUMBER.finditer(text) if not any(a <= m.start() < b for a, b in taken)]
    elif kind == "who":
        found = [m for m in NAME.finditer(text) if m.start() > 0 or len(m.group(0).split()) > 1]
    else:
        return ()
    return tuple(Span(m.start(), m.end(), m.group(0).strip(" ,."), kind) for m in found)


_CLAUSE = re.compile(r",(?!\d)|;|\s(?:et|and|und|contre|versus|vs\.?|while|whereas|alors que|tandis que|während)\s", re.I)


def nearest(spans: list[Span], anchors: list[int], text: str = "") -> Span | None:
    """The span that goes with an anchor (the entity the question names): one in the same clause
    first, else the closest one; without anchors the first span."""
    if not spans:
        return None
    if not anchors:
        return spans[0]
    cuts = [0, *(m.start() for m in _CLAUSE.finditer(text)), len(text) + 1] if text else [0, 10**9]

    def clause(pos: float) -> int:
        return max(i for i, c in enumerate(cuts) if c <= pos)

    def cost(s: Span) -> tuple[int, float]:
        mid = (s.start + s.end) / 2
        same = any(clause(s.start) == clause(a) or clause(s.end - 1) == clause(a) for a in anchors)
        return (0 if same else 1, min(abs(mid - a) for a in anchors))

    return min(spans, key=cost)


_SCALES = {
    "k": 1e3,
    "million": 1e6,
    "millions": 1e6,
    "millionen": 1e6,
    "mio": 1e6,
    "mio.": 1e6,
    "m": 1e6,
    "milliard": 1e9,
    "milliards": 1e9,
    "milliarden": 1e9,
    "milliarde": 1e9,
    "mrd": 1e9,
    "mrd.": 1e9,
    "billion": 1e9,
    "billions": 1e9,
    "bn": 1e9,
    "b": 1e9,
    "trillion": 1e12,
    "trillions": 1e12,
}
_QUALS = {
    "more than": {"fr": "plus de", "en": "more than", "de": "mehr als"},
    "plus de": {"fr": "plus de", "en": "more than", "de": "mehr als"},
    "mehr als": {"fr": "plus de", "en": "more than", "de": "mehr als"},
    "über": {"fr": "plus de", "en": "more than", "de": "über"},
    "over": {"fr": "plus de", "en": "over", "de": "über"},
    "seulement": {"fr": "seulement", "en": "only", "de": "nur"},
    "only": {"fr": "seulement", "en": "only", "de": "nur"},
    "nur": {"fr": "seulement", "en": "only", "de": "nur"},
}


def render_amount(span: str, lang: str) -> str:
    """'10 milliards de dollars' -> '$10 billion' (en) / '10 Mrd. Dollar' (de); unknown shapes unchanged."""
    m = re.match(rf"^(?P<q>{_QUAL})(?P<pre>[$€])?\s?(?P<n>{_NUM})\s?(?P<s>{_SCALE})?\.?\s*(?P<c>{_CUR})?$", span.strip(), re.I)
    if not m or not (m.group("pre") or m.group("c")):
        return span
    qual = m.group("q").strip().lower()
    number = m.group("n").replace("\u202f", "").replace("\xa0", "")
    value = float(number.replace(" ", "").replace(",", ".")) if re.fullmatch(r"\d+(?:[.,]\d+)?", number) else None
    scale = _SCALES.get((m.group("s") or "").lower(), 1.0)
    cur_raw = (m.group("pre") or m.group("c") or "").lower()
    euro = "€" in cur_raw or "eur" in cur_raw
    if value is None:
        return span
    q = _QUALS.get(qual, {}).get(lang, qual)
    num_en = f"{value:g}"
    num_fr = num_en.replace(".", ",")
    words = {
        1e12: {"en": "trillion", "fr": "billions", "de": "Billionen"},
        1e9: {"en": "billion", "fr": "milliards", "de": "Mrd."},
        1e6: {"en": "million", "fr": "millions", "de": "Mio."},
        1e3: {"en": "thousand", "fr": "mille", "de": "Tsd."},
        1.0: {"en": "", "fr": "", "de": ""},
    }[scale]
    if lang == "en":
        out = f"{'€' if euro else '$'}{num_en}" + (f" {words['en']}" if words["en"] else "")
    elif lang == "de":
        out = f"{num_fr} {words['de']} {'Euro' if euro else 'Dollar'}".replace("  ", " ")
    else:
        out = f"{num_fr} {words['fr']} {'d’euros' if euro else 'de dollars'}".replace("  ", " ")
        if not words["fr"]:
            out = f"{num_fr} {'euros' if euro else 'dollars'}"
    return f"{q} {out}".strip()


def render_percent(span: str, lang: str) -> str:
    m = re.search(rf"({_NUM})", span)
    if not m:
        return span
    n = m.group(1)
    qual = span[: m.start()].strip()
    q = _QUALS.get(qual.lower(), {}).get(lang, qual)
    num = n.replace(",", ".") if lang == "en" else n.replace(".", ",")
    return f"{q} {num}{'%' if lang == 'en' else ' %'}".strip()


_LIST_INTRO = re.compile(
    r"\b(?:suivi(?:e|s|es)? (?:par|de)|followed by|gefolgt von|comme|such as|wie|notamment|including|:)\s+", re.I
)


def list_items(text: str) -> list[str]:
    """Items of a bullet list ('- Name : ...' -> Name) or of an enumeration ('suivi par a, b et c')."""
    text = without_markers(text)
    bullets = re.findall(r"^\s*[-*•]\s+([^:\n]+?)(?:\s*:|$)", text, re.M)
    if bullets:
        return [b.strip() for b in bullets]
    m = _LIST_INTRO.search(text)
    if not m:
        return []
    tail = re.split(r"[.;!?](?:\s|$)", text[m.end() :])[0]
    parts = re.split(r",\s*|\s+(?:et|and|und|ou|or|oder)\s+", tail)
    items = [p.strip(" .") for p in parts if p.strip(" .")]
    return items if len(items) >= 2 else []
