"""The words an interface shows for a scope, taken from the documents, not from the code.

Simplifies: a scope of one document is named by its own title; the noun is "article" for a news
page (HTML, or a text with a headline) and "document" otherwise; example questions are built
from templates in prompts/messages.json filled with what the document has (its headings, its
author), so they work in every interface language without a translation model.
"""

from __future__ import annotations

from typing import Any

from chatbot.language import Messages

MAX_EXAMPLES = 3
MAX_HEADING_CHARS = 60


def noun_key(doc: dict[str, Any]) -> str:
    return "noun_article" if doc.get("kind", "article") == "article" else "noun_document"


def interface_words(messages: Messages, documents: dict[str, dict[str, Any]], lang: str) -> dict[str, Any]:
    """Title, welcome, placeholder, examples and the quote label for `documents` (the scope), in `lang`."""
    if len(documents) != 1:
        count = str(len(documents))
        return {
            "document": None,
            "document_title": "",
            "title": messages.get("doc_title_many", lang),
            "welcome": messages.get("doc_welcome_many", lang, count=count),
            "placeholder": messages.get("placeholder_many" if documents else "placeholder", lang),
            "thinking": messages.get("thinking_many" if documents else "thinking", lang),
            "examples": [],
            "quote_label": messages.get("quote_label", lang),
        }
    doc_id, doc = next(iter(documents.items()))
    key = noun_key(doc)
    noun = messages.get(key, lang)
    fmt = {"noun": noun, "noun_the": noun}
    title = str(doc.get("title") or doc_id)
    examples = [messages.get("doc_example_about", lang, **fmt)]
    for heading in doc.get("headings", [])[:1]:
        examples.append(messages.get("doc_example_heading", lang, heading=heading[:MAX_HEADING_CHARS], **fmt))
    if doc.get("author"):
        examples.append(messages.get("doc_example_author", lang, **fmt))
    return {
        "document": doc_id,
        "document_title": title,
        "title": messages.get("doc_title", lang, **fmt),
        "welcome": messages.get("doc_welcome", lang, title=title, **fmt),
        "placeholder": messages.get("doc_placeholder", lang, **fmt),
        "thinking": messages.get("doc_thinking", lang, **fmt),
        "examples": examples[:MAX_EXAMPLES],
        "quote_label": messages.get("quote_label" if key == "noun_article" else "quote_label_document", lang),
    }


def url_key(url: str) -> str:
    """A page URL as documents are matched on it: no scheme, "www.", query, fragment or final slash."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    host = parts.netloc.lower().removeprefix("www.")
    return f"{host}{parts.path.rstrip('/')}" if host else url.strip()


def match_document(name: str, documents: dict[str, dict[str, Any]], by_url: dict[str, str], exact: bool = False) -> list[str]:
    """The ids of the documents `name` names, best kind of match first: the id itself or its page
    URL; else (unless `exact`) the file it was added from (a path counts by its file name), else the
    ids it begins (for a URL id, with or without its scheme and "www."). Several ids: ambiguous.

    People know a document by the file they added, not by its id (the canonical URL of a page), and
    ids are long: so a file name or the start of an id is enough when only one document fits."""
    name = name.strip()
    if name in documents:
        return [name]
    if (doc := by_url.get(url_key(name))) is not None:
        return [doc]
    if exact:
        return []
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    by_file = [i for i, d in documents.items() if d.get("source") and str(d["source"]) in (name, base)]
    if by_file:
        return by_file
    key = url_key(name)
    return [i for i in documents if i.startswith(name) or (key and url_key(i).startswith(key))]
