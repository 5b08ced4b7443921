"""Untrusted text (questions, answers quoting the corpus, passages, headings) as Markdown that
Gradio renders to exactly that text.

Simplifies: rather than trusting a sanitizer to strip what is dangerous, nothing untrusted reaches
the Markdown parser as syntax. Every character that Markdown or HTML could read as structure
becomes a numeric character reference, which CommonMark displays literally and never parses: no
tags, images, links, autolinks, emphasis or LaTeX can form. Harmless punctuation (, . ? ; / ')
stays as is so the Markdown source remains readable. The only markup on the page is what this
module writes itself: <mark> around the answer span and <a> on the [n] markers the system wrote
(chatbot.render.system_markers: never one inside a quoted passage, whatever the document says).
"""

from __future__ import annotations

import re

from chatbot.render import source_label, system_markers
from chatbot.schema import Citation

# every ASCII punctuation except , . ? ; / ' % (no syntax without the others); "." only where it
# would make a "www." autolink or a "1." list item
_SYNTAX = re.compile(r"[!\"#$&()*+\-:<=>@\[\\\]^_`{|}~]")
_DOTS = re.compile(r"(?<=[wW]{3})\.|^(\d{1,9})\.", re.M)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ue000\ue001]")
_EDGE_SPACE = re.compile(r"(?m)^[ \t]+|[ \t]+$")  # indentation would make a code block
_OPEN, _CLOSE = "\ue000", "\ue001"  # private-use sentinels (highlight, links), removed from input first
_LINK = re.compile(f"{_OPEN}(\\d+){_CLOSE}")


def _clean(text: str) -> str:
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _escape(text: str) -> str:
    text = _EDGE_SPACE.sub("", text)
    text = _SYNTAX.sub(lambda m: f"&#{ord(m.group())};", text)
    return _DOTS.sub(lambda m: f"{m.group(1) or ''}&#46;", text)


def inert(text: str) -> str:
    """Markdown showing `text` literally."""
    return _escape(_clean(text))


def anchor(turn: int, cid: int) -> str:
    return f"src-{turn}-{cid}"


def answer_markdown(text: str, turn: int, ids: set[int]) -> str:
    """The answer, inert, with each [n] that the system wrote and that names a citation turned into
    a link to its passage; any other [n] (one quoted from a document) stays text."""
    text = _clean(text)
    parts, last = [], 0
    for m in system_markers(text):
        if int(m.group(1)) in ids:
            parts += [text[last : m.start()], f"{_OPEN}{int(m.group(1))}{_CLOSE}"]
            last = m.end()
    parts.append(text[last:])
    return _LINK.sub(
        lambda m: f'<a href="#{anchor(turn, int(m.group(1)))}" class="cite">[{m.group(1)}]</a>', _escape("".join(parts))
    )


def passage_markdown(c: Citation) -> str:
    """The passage, inert, with the answer span wrapped in <mark> (one per paragraph)."""
    text = _clean(c.text)
    if c.highlight:
        a, b = max(0, c.highlight[0]), min(len(text), c.highlight[1])
        if a < b:
            span = re.sub(r"\n+", lambda m: f"{_CLOSE}{m.group()}{_OPEN}", text[a:b])
            text = f"{text[:a]}{_OPEN}{span}{_CLOSE}{text[b:]}"
    return _escape(text).replace(_OPEN, "<mark>").replace(_CLOSE, "</mark>")


def source_title(c: Citation, turn: int, limit: int = 120) -> str:
    """The collapsible block's title: "[1] Article, paragraph 4", inert, with an anchor."""
    text = source_label(c)
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    label = inert(f"[{c.id}] {text}")
    return f'<span id="{anchor(turn, c.id)}" class="src-anchor"></span>{label}'
