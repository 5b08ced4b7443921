"""A news page (HTML) -> plain text in the shape a reader would paste, plus its metadata.

Simplifies: trafilatura (the field's extractor for news pages) finds the main text, the title,
author, date, canonical URL and, when present, the comments; we lay them out as title, byline,
paragraphs, then comments, the text shape our line parser reads (and the one the answer models
were fitted on). A page trafilatura finds nothing in falls back to its recall mode, then to
our own tag flattener, so a short hand-written page is still indexed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_BYLINE = {"fr": "Par {author}", "en": "By {author}", "de": "Von {author}"}


@dataclass(frozen=True)
class Page:
    text: str
    title: str = ""
    author: str = ""
    date: str = ""
    url: str = ""  # the canonical URL the page declares, if any
    body: str = ""  # the main text alone (no title, no byline): no word in it for a page with nothing to read

    def has_main_text(self) -> bool:
        """Whether the page says anything besides its title (a bare title is no document)."""
        return re.search(r"\w", self.body) is not None


def _main_text(text: str, html: str, title: str) -> str:
    """`text` without the lines that only repeat the page's title (its <title> or the extracted one)."""
    m = re.search(r"(?is)<title\b[^>]*>(.*?)</title>", html[:200_000])
    titles = {" ".join(t.split()) for t in (title, m.group(1) if m else "") if t.strip()}
    return "\n".join(line for line in text.splitlines() if " ".join(line.split()) not in titles)


def _extract(html: str, **mode: Any) -> Any:
    import trafilatura

    # no extensive date search: on a page without a date it guesses one from anything dated (a comment)
    dates = {"extensive_search": False, "original_date": True}
    return trafilatura.bare_extraction(
        html, with_metadata=True, include_comments=True, include_tables=False, date_extraction_params=dates, **mode
    )


def extract_page(html: str, language: str = "", title: str = "") -> Page:
    """The page's text and metadata; `language` picks the byline's word (detected when empty)."""
    import logging

    logging.getLogger("trafilatura").setLevel(logging.ERROR)  # it logs every page it finds thin at WARNING
    if "<body" not in html[:5000].lower():
        html = f"<html><body>{html}</body></html>"
    doc = _extract(html, favor_precision=True)
    if doc is None or not _raw(doc, "text"):
        doc = _extract(html, favor_recall=True)  # short or already-clean pages look like boilerplate to precision
    if doc is None or not _get(doc, "text"):
        from index.parse import html_to_text

        # the body alone, for has_main_text: html_to_text also gives the <title>, a line the page's body may lack
        text = html_to_text(html)
        return Page(text, title=title, body=_main_text(text, html, title))
    title = title or _get(doc, "title")
    # trafilatura's text (not stripped), each paragraph on one line: the answer models are fitted on exactly that
    author, date = _get(doc, "author"), _get(doc, "date")
    body, comments = _unwrapped(doc, "body", "text"), _unwrapped(doc, "commentsbody", "comments")
    own = not comments and _own_comments(html)
    if own:
        # trafilatura found no comments but our parser sees a comment section ("Commentaires (3)",
        # then author, date, text): trafilatura folded it into the article, where readers' claims
        # would be quoted as the article's. The page's own lines keep them apart.
        from index.parse import html_to_text

        body = html_to_text(html)
    if not language:
        from chatbot.language import detect_language

        language = detect_language(body[:2000])
    lines = [] if own and title in body[:1000] else [title]  # the page's own lines hold its <h1> already
    if author or date:
        byline = _BYLINE.get(language, "By {author}").format(author=author) if author else ""
        lines.append(" | ".join(x for x in (byline, date) if x))
    lines += ["", body]
    if comments:
        lines += ["", comments]
    text = "\n".join(lines).strip() + "\n"
    return Page(
        text, title=title, author=author, date=date, url=_canonical(html) or _get(doc, "url"), body=_main_text(body, html, title)
    )


def _own_comments(html: str) -> bool:
    from index.parse import html_to_text, parse_text

    return any(r.section == "comment" for r in parse_text(html_to_text(html)).records)


def _unwrapped(doc: Any, tree: str, key: str) -> str:
    """trafilatura's text of one part, with each paragraph on one line. It keeps the source's line
    breaks inside a <p> (a hard-wrapped page), and our line parser would read each piece as a
    paragraph or a heading: a sentence cut at a wrap was no longer a sentence the answer could quote."""
    root = getattr(doc, tree, None)
    if root is None:
        return _raw(doc, key)
    import copy

    from trafilatura.xml import xmltotxt

    root = copy.deepcopy(root)
    for el in root.iter():
        # in HTML a line break inside text is a space; <lb/> (a real <br>) stays a line break
        el.text = _WRAP.sub(" ", el.text) if el.text else el.text
        el.tail = _WRAP.sub(" ", el.tail) if el.tail else el.tail
    return str(xmltotxt(root, False) or "")


_WRAP = re.compile(r"[ \t]*\n[ \t\n]*")


def _raw(doc: Any, key: str) -> str:
    value = doc.get(key) if isinstance(doc, dict) else getattr(doc, key, None)
    return str(value or "")


def _get(doc: Any, key: str) -> str:
    return _raw(doc, key).strip()


def _canonical(html: str) -> str:
    """The page's <link rel="canonical" href>: trafilatura's url may be an og:url or a guess."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Links(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if tag == "link" and "canonical" in (a.get("rel") or "").lower().split() and a.get("href"):
                found.append(str(a["href"]).strip())

    parser = Links()
    parser.feed(html[:200_000])
    return found[0] if found else ""
