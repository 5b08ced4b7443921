"""AnswerStream (chatbot/web/stream.py) without a server: pacing and ordering of SSE events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

from chatbot.schema import Answer, Delta, Final
from chatbot.web.stream import AnswerStream, pieces

TEXT = "Databricks raised 10 billion dollars in one round, the largest of the year [1]."


def collect(source: Iterator[Any], delay: float = 0.001) -> list[tuple[str, Any]]:
    async def run() -> list[tuple[str, Any]]:
        return [ev async for ev in AnswerStream(source).events(delay)]

    return asyncio.run(run())


def test_pieces_rebuild_the_text() -> None:
    assert "".join(pieces(TEXT)) == TEXT and len(pieces(TEXT)) > 3
    assert pieces("") == []


def test_a_whole_answer_in_one_delta_still_streams_in_pieces() -> None:
    """The extractive core yields its answer at once; clients still see typing, never one lump."""
    events = collect(iter([Delta(TEXT), Final(Answer("q", TEXT, True, "en"))]))
    names = [n for n, _ in events]
    assert names[-1] == "final" and names.count("final") == 1
    assert names.count("delta") == len(pieces(TEXT))
    assert "".join(v for n, v in events if n == "delta") == TEXT


def test_slow_live_tokens_are_forwarded_as_they_come() -> None:
    words = TEXT.split(" ")

    def slow() -> Iterator[Any]:
        for i, w in enumerate(words):
            time.sleep(0.01)
            yield Delta(w + ("" if i == len(words) - 1 else " "))
        yield Final(Answer("q", TEXT, True, "en"))

    events = collect(slow())
    deltas = [v for n, v in events if n == "delta"]
    assert "".join(deltas) == TEXT and len(deltas) >= len(words) // 2


def test_an_error_in_the_source_is_raised_in_the_consumer() -> None:
    def broken() -> Iterator[Any]:
        yield Delta("half ")
        raise ValueError("boom")

    try:
        collect(broken())
    except ValueError as exc:
        assert str(exc) == "boom"
    else:
        raise AssertionError("the error was swallowed")
