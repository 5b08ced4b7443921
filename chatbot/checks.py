"""Checks on what a language model wrote, before anyone sees it.

Simplifies: a grounded answer is a few sentences, each ending in [n] markers. We drop markers
that point at no passage, drop any sentence whose numbers appear in no cited passage, strip
links, images and HTML that the passages did not contain, and reject answers that quote our own
instructions. What survives is shown; if nothing cited survives, the caller falls back to the
extractive answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_MARKER = re.compile(r"\[(\d+)\]")
_NUMBER = re.compile(r"(?<![\w])\d+(?:[ .,\u202f\xa0]\d{3})*(?:[.,]\d+)?")
_URL = re.compile(r"\b(?:https?://|ftp://|www\.)\S+", re.I)
_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\(([^)]*)\)")
_HTML = re.compile(r"</?[a-zA-Z][^>]*>")
_LIST_NUMBER = re.compile(r"^\s*\d{1,2}[.)]\s+")  # "1. " list numbering is layout, not a figure
_SENTENCE = re.compile(r"(?<=[.!?])(?:\s*\[\d+\])*\s+|\n+")
REFUSAL_TOKEN = "NOT_IN_ARTICLE"


@dataclass
class Checked:
    text: str
    refused: bool = False
    problems: list[str] = field(default_factory=list)
    cited: set[int] = field(default_factory=set)

    @property
    def usable(self) -> bool:
        return self.refused or bool(self.text.strip() and self.cited)


def numbers(text: str) -> set[str]:
    """Numbers normalised so that 6,6 / 6.6 and 1 000 / 1,000 compare equal."""
    out = set()
    for m in _NUMBER.finditer(_MARKER.sub(" ", text)):
        raw = re.sub(r"[ \u202f\xa0]", "", m.group(0))
        if re.fullmatch(r"\d{1,3}(?:[.,]\d{3})+", raw):
            raw = re.sub(r"[.,]", "", raw)
        out.add(raw.replace(",", "."))
    return out


def _sentences(text: str) -> list[str]:
    parts, last = [], 0
    for m in _SENTENCE.finditer(text):
        end = m.start() + len(m.group(0).rstrip())
        parts.append(text[last:end].strip())
        last = m.end()
    parts.append(text[last:].strip())
    return [p for p in parts if p]


def check(text: str, passages: dict[int, str], system_prompt: str = "") -> Checked:
    """Apply every check; `passages` maps marker ids to passage texts."""
    result = Checked(text.strip())
    if REFUSAL_TOKEN in result.text:
        return Checked("", refused=True)
    if system_prompt and _leaks(result.text, system_prompt):
        return Checked("", problems=["instructions leaked"])
    corpus = "\n".join(passages.values())

    def strip_links(t: str) -> str:
        t = _MD_IMAGE.sub(lambda m: m.group(0) if m.group(0) in corpus else "", t)
        t = _MD_LINK.sub(lambda m: m.group(0) if m.group(2) in corpus else m.group(1), t)
        t = _URL.sub(lambda m: m.group(0) if m.group(0) in corpus else "", t)
        return _HTML.sub(lambda m: m.group(0) if m.group(0) in corpus else "", t)

    cleaned = strip_links(result.text)
    if cleaned != result.text:
        result.problems.append("links, images or HTML removed")
    bad_markers = {int(n) for n in _MARKER.findall(cleaned) if int(n) not in passages}
    if bad_markers:
        result.problems.append(f"markers {sorted(bad_markers)} point at no passage")
        cleaned = _MARKER.sub(lambda m: m.group(0) if int(m.group(1)) in passages else "", cleaned)
    kept = []
    invented_all: set[str] = set()
    for sentence in _sentences(cleaned):
        cited = {int(n) for n in _MARKER.findall(sentence)} or set(passages)
        allowed = set().union(*(numbers(passages[i]) for i in cited)) if cited else set()
        invented = numbers(_LIST_NUMBER.sub("", sentence)) - allowed
        if invented:
            invented_all |= invented
            continue
        kept.append(sentence)
    if invented_all:
        shown = sorted(invented_all)
        result.problems.append(f"unsupported figures {', '.join(shown[:5])}{' …' if len(shown) > 5 else ''}")
    result.text = re.sub(r"[ \t]+", " ", " ".join(kept)).strip()
    result.cited = {int(n) for n in _MARKER.findall(result.text)}
    return result


def _leaks(text: str, system_prompt: str, n: int = 8) -> bool:
    """Does the answer repeat any run of n words of our instructions?"""
    words = re.findall(r"\w+", system_prompt.lower())
    grams = {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}
    said = re.findall(r"\w+", text.lower())
    return any(" ".join(said[i : i + n]) in grams for i in range(len(said) - n + 1))
