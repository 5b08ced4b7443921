"""The one web process: HTTP API, widget and Gradio chat on a single FastAPI app.

Simplifies: one uvicorn process and one loaded Chatbot serve every adapter. Concurrency comes
from threads (the core is thread-safe and CPU work runs in the threadpool), not from extra
processes: Gradio keeps each session's queue in memory, so several workers would break the chat.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatbot.language import Messages
from chatbot.settings import Settings
from chatbot.web.api import api_router, install_error_handlers, widget_router
from chatbot.web.feedback import FeedbackLog, feedback_file
from chatbot.web.loader import BotHolder

if TYPE_CHECKING:
    from chatbot.core import Chatbot

log = logging.getLogger("chatbot.web")


class ApiGate:
    """In front of /api/* only: CORS (starlette's CORSMiddleware) so the widget can call the API
    from other sites, and a body-size limit answered in JSON. The Gradio app keeps its own,
    stricter, same-site CORS policy."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...], max_body: int) -> None:
        self.app = app
        self.max_body = max_body
        self.cors = CORSMiddleware(self._limited, allow_origins=list(origins), allow_methods=["GET", "POST"], allow_headers=["Content-Type"], max_age=600)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Buffers the (small) body so an oversized one gets a JSON 413, even when chunked."""
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            return await self._too_large(scope, receive, send)
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_body:
                return await self._too_large(scope, receive, send)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # later reads wait for the disconnect, as usual
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse({"error": f"request body too large (limit {self.max_body} bytes)"}, status_code=413)
        await response(scope, receive, send)


def create_app(settings: Settings, bot: Chatbot | None = None) -> FastAPI:
    """The app; `bot` is loaded once in the background at startup (or on first use) if not given."""
    from chatbot.web.ui import CSS, HEAD, build_chat  # imports gradio (~3 s): only when serving

    holder = BotHolder(settings, bot)
    feedback = FeedbackLog(feedback_file(settings))
    messages = Messages(settings.prompts_dir / "messages.json")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if not holder.loaded:
            threading.Thread(target=holder.preload, name="chatbot-preload", daemon=True).start()
        yield

    app = FastAPI(
        title="Article chatbot",
        version="0.1.0",
        description="Cited answers about the indexed article. The web chat is at /, the widget script at /widget.js.",
        lifespan=lifespan,
    )
    app.add_middleware(ApiGate, origins=settings.allowed_origins, max_body=settings.max_request_bytes)
    install_error_handlers(app)
    app.include_router(api_router(holder, feedback, messages, settings))
    app.include_router(widget_router())
    # mounted last: routes above take precedence over the catch-all mount at "/"
    import gradio as gr

    blocks = build_chat(holder, feedback, messages, settings)
    # the packaged Source Sans Pro SemiBold (600) holds only a few glyphs: bold text would mix fonts
    font: list[gr.themes.Font | str] = [gr.themes.LocalFont("Source Sans Pro", weights=(400, 700)), "ui-sans-serif", "system-ui", "sans-serif"]
    theme = gr.themes.Default(font=font)
    return gr.mount_gradio_app(app, blocks, path="/", theme=theme, css=CSS, head=HEAD, footer_links=["api"], run_history=False, show_error=False)


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860, workers: int = 1) -> int:
    """Run the app with uvicorn until interrupted; returns the exit code."""
    if workers != 1:
        print(
            "error: --workers must be 1: the Gradio chat keeps sessions in process memory; "
            f"one process already answers up to {settings.web_concurrency} chat questions and many API calls at once",
            file=sys.stderr,
        )
        return 2
    import uvicorn

    app = create_app(settings)
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    print(f"chat: http://{shown}:{port}/  API: /api/ask (docs /docs)  widget: /widget.js (demo /widget/demo)", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    return 0
