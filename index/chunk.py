"""Records -> retrieval units (chunks) and their sentences.

Simplifies: one chunk per paragraph, list (with its intro), comment, related teaser, headline or
meta line; a paragraph longer than the limit is packed sentence by sentence. Each chunk also gets
an *embedding text* that carries its context (section heading, comment author) so that it stands
alone, while the *display text* stays exactly the cited span of the cleaned document.
Sentences are kept too: answers quote sentences, and scoring them finds the answering line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from index.parse import ParsedDocument, Record

# A sentence ends at . ! ? … (optionally closed by a quote) followed by space and a capital, quote or digit.
_SENT_END = re.compile(r"(?<=[.!?…])[»”\"]?\s+(?=[«“\"A-ZÀ-ÖØ-Þ0-9])")
# Abbreviations a sentence does not end on ("§ 13 Abs. 6", "Prof. Dr. X", "John F. Kennedy"); an
# initial merges "in the U.S. The …" too, and a sentence too long is a smaller harm than one cut short
_ABBREV = re.compile(
    r"(?:^|[\s(])(?:[A-ZÀ-Þ]|Mme|Mlle|Me|Dr|Pr|Prof|St|Ste|etc|ex|p|pp|cf|vs|Mr|Mrs|Ms|Jr|Sr|Inc|Ltd|Corp|Co|No|approx|"
    r"env|vol|chap|z\.\s?B|u\.\s?a|d\.\s?h|bzw|ca|Nr|Abs|Art|Ziff|Bd|vgl|ggf|usw|evtl|inkl|Hr|Fr|Dipl|Ing|Mio|Mrd|Jh)\.$"
)

CHUNK_KINDS = ("headline", "byline", "paragraph", "list", "related", "comment", "comment_count")


@dataclass
class Unit:
    """A chunk or a sentence, located in its source's cleaned text."""

    id: str
    unit: str  # "chunk" | "sentence"
    text: str
    embed_text: str
    start: int
    end: int
    meta: dict[str, str | int] = field(default_factory=dict)


def split_sentences(text: str, offset: int = 0) -> list[tuple[int, int]]:
    """Sentence spans (absolute start, end) in text; list items and lines are sentences too."""
    spans: list[tuple[int, int]] = []
    line_start = 0
    for line in text.split("\n"):
        pos = 0
        last = 0
        for m in _SENT_END.finditer(line):
            candidate = line[last : m.start() + (1 if line[m.start()] in '»”"' else 0)]
            if _ABBREV.search(line[: m.start()]):
                continue
            end = m.start() + (len(m.group(0)) - len(m.group(0).lstrip('»”"')))
            if candidate.strip():
                spans.append((offset + line_start + last, offset + line_start + end))
            last = m.end()
            pos = m.end()
        del pos
        if line[last:].strip():
            spans.append((offset + line_start + last, offset + line_start + len(line.rstrip())))
        line_start += len(line) + 1
    return spans


def _hash(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:20]


def _embed_text(rec: Record, text: str) -> str:
    if rec.section == "comment" and rec.author:
        return f"{rec.author} ({rec.date}): {text}"
    if rec.kind == "comment_count":
        return f"{text} — nombre de commentaires / number of comments / Anzahl der Kommentare"
    if rec.heading and rec.heading != text and rec.kind != "related":
        return f"{rec.heading}\n{text}"
    return text


def chunk_document(
    doc: ParsedDocument,
    doc_id: str,
    max_chars: int = 1200,
    max_tokens: int = 480,
    count_tokens: Callable[[str], int] | None = None,
    salt: str = "",
) -> list[Unit]:
    """Chunks and sentences of one parsed document. No chunk's embedding text exceeds max_tokens.
    `salt` (the document's key) makes unit ids unique to this version of the document."""
    count = count_tokens or (lambda s: len(s) // 3)
    units: list[Unit] = []
    for rec in doc.records:
        if rec.kind not in CHUNK_KINDS:
            continue
        sents = split_sentences(rec.text, rec.start)
        groups: list[list[tuple[int, int]]] = [[]]
        for s in sents:
            cur = groups[-1]
            if cur and (s[1] - cur[0][0] > max_chars or count(_embed_text(rec, doc.text[cur[0][0] : s[1]])) > max_tokens):
                groups.append([])
            groups[-1].append(s)
        for group in groups:
            if not group:
                continue
            start, end = group[0][0], group[-1][1]
            text = doc.text[start:end]
            while count(_embed_text(rec, text)) > max_tokens and len(text) > 20:
                end = start + int(len(text) * 0.8)  # one over-long sentence: cut it, never embed past the limit
                text = doc.text[start:end]
            meta: dict[str, str | int] = {
                "doc_id": doc_id,
                "source": doc.source,
                "title": doc.title,
                "section": rec.section,
                "kind": rec.kind,
                "heading": rec.heading,
                "author": rec.author,
                "date": rec.date,
                "language": rec.language,
                "speaker": rec.speaker,
                "start": start,
                "end": end,
            }
            if rec.kind == "comment_count":
                meta["count"] = rec.extra.get("count", "")
            chunk_id = _hash(salt + doc_id, str(start), text)
            embed_text = _embed_text(rec, text)
            units.append(Unit(chunk_id, "chunk", text, embed_text, start, end, dict(meta, embed_text=embed_text)))
            for s0, s1 in group:
                if s1 > end:
                    break
                stext = doc.text[s0:s1]
                smeta = dict(meta, start=s0, end=s1, parent=chunk_id, embed_text=stext)
                units.append(Unit(_hash(chunk_id, str(s0), stext), "sentence", stext, stext, s0, s1, smeta))
    return units
