"""Streaming an answer that is already complete.

Simplifies: the core is extractive and answers in milliseconds, so "streaming" is replaying the
final text in word-sized pieces; clients get the same progressive display they would get from a
generative model, and the final event carries the exact Answer.
"""

from __future__ import annotations

import json
import re
from typing import Any

_TOKEN = re.compile(r"\S+\s*|\s+")


def pieces(text: str, words: int = 2) -> list[str]:
    """Consecutive slices of text, `words` words each; "".join(pieces(t)) == t."""
    tokens = _TOKEN.findall(text)
    return ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]


def sse(event: str, data: Any) -> str:
    """One server-sent event; JSON data never holds a raw newline, so one `data:` line suffices."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
