"""Terminal rendering of an Answer: coloured on a terminal, plain when piped (or NO_COLOR)."""

from __future__ import annotations

import os
import re
import sys
from typing import TextIO

from chatbot.schema import Answer, Citation

_MARKER = re.compile(r"\[(\d+)\]")
_QUOTES = (("\u201c", "\u201d"), ("\u00ab", "\u00bb"))  # the delimiters the extractive answer puts around its quote: “ ” and « »
_PARAGRAPH = re.compile(r"(?:\r\n?|\n)[ \t]*(?:\r\n?|\n)")
_CODES = {"bold": "1", "dim": "2", "cyan": "36", "yellow": "33", "green": "32", "red": "31", "magenta": "35"}


def use_colour(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _c(text: str, style: str, on: bool) -> str:
    if not on:
        return text
    codes = ";".join(_CODES[s] for s in style.split())
    return f"\x1b[{codes}m{text}\x1b[0m"


def _safe(text: str) -> str:
    """Passages are untrusted: strip terminal control sequences before printing them."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]", "", text)


def system_markers(text: str) -> list[re.Match[str]]:
    """The [n] markers of an answer text that the system wrote, as opposed to those that are part
    of a document's text it quotes (a passage saying "5 trillion dollars [3]" must not show a live
    [3] link to a genuine passage). The web chat, the widget (widget.js, same rule) and the
    terminal link or colour only these.

    With no quote in the text (a generated answer, checked by chatbot.checks): every marker. With a
    quote (the extractive answer: `lead [1]` then `Label: “quote” [1]`, a "not sure" answer with
    up to two quotes): only the last marker of each paragraph, and none inside a quote, which runs
    from a paragraph's first opening delimiter to its last closing one, so no delimiter a document
    writes can end it early; a quote left open runs on to the last closing delimiter of the next
    paragraph that has one (the answer stage writes each quote on one paragraph)."""
    found = list(_MARKER.finditer(text))
    if not any(0 <= text.find(o) < text.rfind(c) for o, c in _QUOTES):
        return found
    starts = [0] + [m.end() for m in _PARAGRAPH.finditer(text)]
    ends = starts[1:] + [len(text)]
    quoted: list[tuple[int, int]] = []
    for o, c in _QUOTES:
        carried = -1  # where a quote opened in an earlier paragraph, still unclosed
        for ps, pe in zip(starts, ends, strict=True):
            part = text[ps:pe]
            a, b = part.find(o), part.rfind(c)
            if carried >= 0:
                if b >= 0:
                    quoted.append((carried, ps + b))
                    carried = -1
            elif 0 <= a < b:
                quoted.append((ps + a, ps + b))
            elif a >= 0:
                carried = ps + a
    last: dict[int, re.Match[str]] = {}  # paragraph start -> its last marker
    for m in found:
        last[max(s for s in starts if s <= m.start())] = m
    return [m for m in last.values() if not any(a < m.start() < b for a, b in quoted)]


def render(answer: Answer, stream: TextIO = sys.stdout, sources_label: str = "Sources") -> str:
    on = use_colour(stream)
    text = _safe(answer.answer)
    own = {m.start() for m in system_markers(text)}
    text = _MARKER.sub(lambda m: _c(m.group(0), "cyan bold", on) if m.start() in own else m.group(0), text)
    if answer.status == "unsure":
        text = "? " + text  # "not sure" reads apart from an answer even without colour
    style = {"answered": "", "unsure": "magenta", "not_found": "yellow"}.get(answer.status, "yellow")
    lines = [_c(text, style, on) if style else text]
    lines += [_c(f"({_safe(n)})", "dim", on) for n in answer.notes]
    sources = render_sources(answer, stream, sources_label)
    return "\n".join(lines) + ("\n" + sources if sources else "")


def source_label(c: Citation) -> str:
    """What a passage is, for people (offsets and file names are for --json only)."""
    if c.label:
        return c.label
    return " · ".join(p for p in (c.author or c.heading, c.document_title) if p)  # an Answer built without labels


def render_sources(answer: Answer, stream: TextIO = sys.stdout, sources_label: str = "Sources") -> str:
    on = use_colour(stream)
    lines: list[str] = []
    if answer.citations:
        lines += ["", _c(sources_label, "bold", on)]
        for c in answer.citations:
            head = _c(f"[{c.id}]", "cyan bold", on) + " " + _c(_safe(source_label(c)), "dim", on)
            body = _safe(c.text)
            if c.highlight and on:
                a, b = c.highlight
                body = body[:a] + _c(body[a:b], "green bold", on) + body[b:]
            lines.append(head)
            lines += ["    " + line for line in body.splitlines()]
    return "\n".join(lines)
