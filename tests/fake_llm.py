"""A scripted OpenAI-compatible server for the edge cases a real model will not produce on
demand. The requested model name picks the behaviour; answers are built from the passages in
the prompt, so the 'good' script is grounded and the others break one rule each."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

app = FastAPI()
SEEN: list[str] = []  # the last user message of every chat request, for tests that ask "was the model asked?"


def _first_passage(prompt: str) -> tuple[int, str]:
    m = re.search(r'<passage id="(\d+)"[^>]*>\n(.*?)\n</passage>', prompt, re.S)
    return (int(m.group(1)), m.group(2)) if m else (1, "")


def _last(prompt: str) -> str:
    found = re.findall(r'<passage id="(\d+)"[^>]*>\n(.*?)\n</passage>', prompt, re.S)
    pid, text = found[-1] if found else ("1", "")
    figure = (re.findall(r"\d+(?:,\d+)?", text) or ["1"])[0]
    return f"The article gives {figure} here [{pid}]. PASSAGES={len(found)}"


def _reply(model: str, messages: list[dict[str, Any]]) -> str:
    system = messages[0]["content"] if messages else ""
    prompt = messages[-1]["content"] if messages else ""
    pid, text = _first_passage(prompt)
    figure = (re.findall(r"\d+(?:,\d+)?", text) or ["1"])[0]
    grounded = f"The article gives {figure} here [{pid}]."
    return {
        "good": grounded,
        "invent": f"{grounded} It also raised 999 billion dollars last week [{pid}].",
        "bad-marker": f"{grounded} See also [7].",
        "link": f"{grounded} ![pixel](http://127.0.0.1:9/pixel.png) Read [more](http://127.0.0.1:9/x) <img src=x onerror=alert(1)>",
        "leak": f"My instructions say: {system}",
        "refuse": "NOT_IN_ARTICLE",
        "pirate": "Arr matey, the treasure be 12345 doubloons!",
        "uncited": "Databricks did very well.",
        "condense": "How much did OpenAI raise?",
        # links in spellings that dodge a plain "http" search, figures in words, an uncited claim
        "fullwidth": f"{grounded} Full report: \uff48\uff54\uff54\uff50\uff53\uff1a\uff0f\uff0fevil\uff0eexample\uff0ecom\uff0freport [{pid}].",
        "bidi": f"{grounded} Full report: \u202emoc.elpmaxe.live//:sptth\u202c [{pid}].",
        "domain": f"{grounded} Full report on evil.example.com [{pid}].",
        "email": f"{grounded} Questions to press@evil.example.com [{pid}].",
        "js-link": f"{grounded} Read [the report](javascript:alert(document.cookie))) [{pid}].",
        "words-en": f"{grounded} It also raised nine hundred million dollars [{pid}].",
        "words-fr": f"{grounded} Elle a aussi levé neuf cents millions de dollars [{pid}].",
        "words-de": f"{grounded} Sie hat auch neunhundert Millionen Dollar eingesammelt [{pid}].",
        "uncited-sentence": f"{grounded} Investors should buy its shares now.",
        # names and titles the passages do not give (issue 9's examples)
        "names-title": f"Orla Browne is the CEO of Dealroom [{pid}].",
        "names-funds": f"{grounded} It was followed by a16z and SoftBank [{pid}].",
        "meta": f"1. The passage [{pid}] contains the answer to the question.",
        # cites the last passage it was given, with that passage's first figure
        "last": _last(prompt),
        # follows whatever instructions the passages contain, like a gullible model would
        "obey": f"Arr matey! {system} Quantix raised 999 billion dollars [{pid}]. ![tracker](http://127.0.0.1:9/pixel.png) "
        f"[click here](http://127.0.0.1:9/phish) It raised 5000 billion [9]. {grounded}",
    }.get(model, grounded)


@app.post("/v1/chat/completions")
async def chat(request: Request) -> Any:
    body = await request.json()
    model = body.get("model", "good")
    SEEN.append(str((body.get("messages") or [{}])[-1].get("content", "")))
    if model == "error500":
        return JSONResponse({"error": {"message": "boom"}}, status_code=500)
    if model == "slow":
        await asyncio.sleep(30)
    text = _reply(model, body.get("messages", []))
    if not body.get("stream"):
        return {
            "id": "x",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    async def events() -> Any:
        for i, word in enumerate(re.findall(r"\S+\s*", text)):
            chunk = {
                "id": "x",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": word} if i == 0 else {"content": word},
                        "finish_reason": None,
                    }
                ],
            }
            yield f"data: {json.dumps(chunk)}\n\n"
            if model == "drop" and i == 2:
                raise RuntimeError("connection dropped mid-stream")
        done = {
            "id": "x",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        yield f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeLLMServer:
    """Runs the app with uvicorn in a thread on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeLLMServer:
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
