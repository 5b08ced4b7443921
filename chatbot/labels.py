"""What a cited passage is, said for people: "Article, paragraph 4", "Reader comment, MatthewSmith",
"Related article: …", in the answer's language; and the fixed refusal sentences in the scope's words.

Simplifies: a label is built from the passage's place in its document (section, kind, heading,
author) and its rank among the document's paragraphs or comments, counted over the chunks the
index holds, so a paragraph long enough to be split counts as two. Labels of one answer are made
distinct: by the document's title when the scope (or the answer) spans several documents, then
by a number. The words live in prompts/messages.json (`label_*`); the offsets and file names stay in
the JSON fields, out of the label.
"""

from __future__ import annotations

import re
import threading
import weakref
from dataclasses import replace
from typing import Any

from chatbot.language import Messages
from chatbot.schema import Answer, Citation

MAX_TITLE_CHARS = 60
PARAGRAPH_KINDS = ("paragraph", "list", "quote")
# fixed refusal sentences that name what was searched; a variant per scope: "_document", "_many"
# the one fixed refusal written without the scope's words (the answer stage words "not found" and
# "not sure" for the scope itself: chatbot/answer/extract.py)
REFUSALS = ("refusal_offtopic",)

_places: weakref.WeakKeyDictionary[Any, dict[str, dict[int, tuple[str, str, int]]]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _short(text: str, limit: int = MAX_TITLE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def places(retriever: Any, doc_id: str) -> dict[int, tuple[str, str, int]]:
    """For each chunk start of a document: (section, kind, rank), the rank counting paragraphs of
    the text, or comments, from 1. Computed once per document and retriever."""
    with _lock:
        cached = _places.setdefault(retriever, {})
        if doc_id in cached:
            return cached[doc_id]
    out: dict[int, tuple[str, str, int]] = {}
    counts: dict[str, int] = {}
    for chunk in sorted(retriever.document_chunks(doc_id), key=lambda c: int(c.meta.get("start", 0))):
        section, kind = str(chunk.meta.get("section", "")), str(chunk.meta.get("kind", ""))
        family = "comment" if section == "comment" else "paragraph" if kind in PARAGRAPH_KINDS else kind
        counts[family] = counts.get(family, 0) + 1
        out[int(chunk.meta.get("start", 0))] = (section, kind, counts[family])
    with _lock:
        cached[doc_id] = out
    return out


def label(c: Citation, section: str, kind: str, rank: int, document: dict[str, Any], messages: Messages, lang: str) -> str:
    """One passage's label (not yet made distinct from the others of its answer)."""
    if section == "comment":
        if c.author:
            return messages.get("label_comment", lang, author=_short(c.author))
        return messages.get("label_comment_anonymous", lang)
    if section == "related":
        title = c.heading if c.heading and c.heading != "related" else c.text.split("\n", 1)[0]
        return messages.get("label_related", lang, title=_short(title))
    if kind == "comment_count":
        return messages.get("label_comment_count", lang)
    if kind == "headline":
        return messages.get("label_headline", lang)
    if kind == "byline":
        return messages.get("label_byline", lang)
    noun = messages.get("label_article" if document.get("kind", "article") == "article" else "label_document", lang)
    heading = c.heading if c.heading and c.heading != document.get("title") else ""
    if heading:
        return messages.get("label_paragraph_heading", lang, where=noun, heading=_short(heading), n=str(rank))
    return messages.get("label_paragraph", lang, where=noun, n=str(rank))


def citation_labels(citations: list[Citation], retriever: Any, messages: Messages, lang: str) -> list[str]:
    """Distinct labels for an answer's passages, in order."""
    labels = []
    for c in citations:
        section, kind, rank = places(retriever, c.document).get(c.start, (c.section, "", 0))
        labels.append(label(c, section, kind, rank, retriever.all_documents.get(c.document, {}), messages, lang))
    if len(retriever.documents) > 1 or len({c.document for c in citations}) > 1:  # which document, too
        labels = [
            messages.get("label_in_document", lang, label=lab, title=_short(c.document_title or c.document))
            for lab, c in zip(labels, citations, strict=True)
        ]
    seen: dict[str, int] = {}
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
    nth: dict[str, int] = {}
    out = []
    for lab in labels:  # e.g. two comments of one reader: "(1)", "(2)"
        if seen[lab] > 1:
            nth[lab] = nth.get(lab, 0) + 1
            lab = messages.get("label_nth", lang, label=lab, n=str(nth[lab]))
        out.append(lab)
    return out


def scope_variant(documents: dict[str, dict[str, Any]]) -> str:
    """The suffix of the messages that name a scope: "" (one article), "_document", "_many"."""
    if len(documents) > 1:
        return "_many"
    if len(documents) == 1 and next(iter(documents.values())).get("kind", "article") != "article":
        return "_document"
    return ""


def scoped_refusal(text: str, variant: str, messages: Messages, lang: str) -> str:
    """A fixed refusal sentence said of the scope ("The document does not say."); any other text as is."""
    if not variant:
        return text
    for key in REFUSALS:
        template = messages.get(key, lang)
        pattern = re.escape(template).replace(re.escape("{entity}"), "(?P<entity>.+)")
        if m := re.fullmatch(pattern, text, re.S):
            return messages.get(key + variant, lang, **m.groupdict())
    return text


def present(answer: Answer, retriever: Any, messages: Messages) -> Answer:
    """The answer as people see it: labelled passages; a refusal in the scope's words."""
    lang = answer.language
    labels = citation_labels(answer.citations, retriever, messages, lang)
    citations = [replace(c, label=lab) for c, lab in zip(answer.citations, labels, strict=True)]
    variant = scope_variant(retriever.documents)
    text = scoped_refusal(answer.answer, variant, messages, lang) if answer.status == "not_found" else answer.answer
    return replace(answer, citations=citations, answer=text)
