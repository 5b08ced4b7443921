"""An answer as events for the web: text deltas, then the final Answer.

Simplifies: the core's `stream()` yields Delta events then one Final, from a blocking iterator.
Here that iterator runs in a worker thread feeding an asyncio queue, so the event loop never
blocks, and two cases look the same to clients:
- live generation (an LLM): deltas are forwarded as soon as they arrive;
- a finished answer (the extractive core computes it all at once): its text is replayed in
  word-sized pieces, `delay` apart, so it still reads as typing.
The final event always carries the checked Answer; clients re-render from it (it may differ
from the streamed text when the core's checks replaced a generated answer).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from anyio import CapacityLimiter, to_thread
from starlette.concurrency import run_in_threadpool

from chatbot.schema import Answer, Delta, Final

_TOKEN = re.compile(r"\S+\s*|\s+")
_END = object()
_workers: set[asyncio.Future[None]] = set()


def pieces(text: str, words: int = 2) -> list[str]:
    """Consecutive slices of text, `words` words each; "".join(pieces(t)) == t."""
    tokens = _TOKEN.findall(text)
    return ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]


def sse(event: str, data: Any) -> str:
    """One server-sent event; JSON data never holds a raw newline, so one `data:` line suffices."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class AnswerStream:
    """Opened with `await AnswerStream.open(...)`, which raises the core's validation errors
    before any byte is sent; then `async for kind, value in stream.events(delay)`."""

    def __init__(self, source: Iterator[Any], backlog: list[str] | None = None) -> None:
        self._source = source
        self._backlog = backlog or []
        self._stop = threading.Event()

    @classmethod
    async def open(
        cls, bot: Any, question: str, history: list[dict[str, str]], limiter: CapacityLimiter | None = None
    ) -> AnswerStream:
        """`limiter` bounds how many answers are computed at once (None: the shared threadpool)."""
        if not hasattr(bot, "stream"):  # a core with only `answer()`: a finished answer to replay
            answer: Answer = await to_thread.run_sync(bot.answer, question, history, limiter=limiter)
            return cls(iter([Final(answer)]), backlog=[answer.answer])
        source = bot.stream(question, history)
        # validation, retrieval and the extractive answer all happen on the first step
        first = await to_thread.run_sync(next, source, _END, limiter=limiter)
        return cls(_chain(first, source))

    def _drain(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
        try:
            for event in self._source:
                loop.call_soon_threadsafe(queue.put_nowait, event)
                if self._stop.is_set():  # the client went away: stop generating
                    break
        except Exception as exc:  # handed to the consumer, which raises it in the request
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, _END)

    async def events(self, delay: float, words: int = 2) -> AsyncIterator[tuple[str, Any]]:
        """("delta", text) items, then one ("final", Answer)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        worker = asyncio.ensure_future(run_in_threadpool(self._drain, loop, queue))
        _workers.add(worker)  # a strong reference: the drain may outlive a disconnected client
        worker.add_done_callback(_workers.discard)
        final: Answer | None = None
        backlog = list(self._backlog)
        ended = False
        try:
            while final is None and not ended:
                # wait only when there is nothing to send; otherwise take what has arrived meanwhile
                item = await queue.get() if not backlog else _poll(queue)
                while item is not None:
                    if item is _END:
                        ended = True
                        break
                    if isinstance(item, Exception):
                        raise item
                    if isinstance(item, Final):
                        final = item.answer
                    elif isinstance(item, Delta):
                        backlog.append(item.text)
                    item = _poll(queue)
                if final is None and (live := pieces("".join(backlog), words)):
                    backlog = live[1:]  # live: one piece per tick, the same pace as a replay
                    yield "delta", live[0]
                    await asyncio.sleep(delay)
            for piece in pieces("".join(backlog), words):  # finished: replay the rest as typing
                yield "delta", piece
                await asyncio.sleep(delay)
            if final is None:
                raise RuntimeError("the answer stream ended without a final answer")
            yield "final", final
        finally:
            self._stop.set()


def _poll(queue: asyncio.Queue[Any]) -> Any:
    try:
        return queue.get_nowait()
    except asyncio.QueueEmpty:
        return None


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    if first is not _END:
        yield first
    yield from rest
