"""The web app: HTTP API, widget and Gradio chat on one FastAPI app, served by uvicorn.

Simplifies: one uvicorn process and one loaded Chatbot serve every adapter. Concurrency comes
from threads (the core is thread-safe and CPU work runs in worker threads). Gradio keeps each
session's queue in memory, so `serve --workers N` (N > 1) serves only the stateless parts (API,
widget, health) from N processes, each with its own read-only Chatbot; "/" then says where the
chat went instead of half-working.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from pydantic import SecretStr

from chatbot.holder import BotHolder
from chatbot.language import Messages
from chatbot.settings import Settings
from chatbot.web import hardening
from chatbot.web.api import api_router, install_error_handlers, widget_router
from chatbot.web.feedback import FeedbackLog, feedback_log
from chatbot.web.gate import ApiGate

if TYPE_CHECKING:
    from chatbot.core import Chatbot

log = logging.getLogger("chatbot.web")
SETTINGS_ENV = "CHATBOT_SERVE_OVERRIDES"  # what the CLI changed in the settings (e.g. --no-llm), for worker processes
WORKERS_PAGE = Path(__file__).resolve().parent / "static" / "workers.html"
DOCS_ASSETS = "/docs/assets"  # Swagger UI's files, from the fastapi-offline package


def _api_app(settings: Settings, bot: Chatbot | None) -> tuple[FastAPI, BotHolder, FeedbackLog, Messages]:
    """The stateless part: /api/*, /widget.js, /widget/demo, /docs; the bot loads in the background."""
    holder = BotHolder(settings, bot)
    feedback = feedback_log(settings)  # size-capped, rotated
    messages = Messages(settings.prompts_dir / "messages.json")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # loads the bot if needed, then follows the index: a new complete build is switched to without a restart
        threading.Thread(target=holder.run, name="chatbot-index-watch", daemon=True).start()
        try:
            yield
        finally:
            holder.close()

    app = FastAPI(
        title="Article chatbot",
        version="0.1.0",
        description="Cited answers about the indexed article. The web chat is at /, the widget script at /widget.js.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's /docs and /redoc load their scripts from a CDN: see _offline_docs
        redoc_url=None,
    )
    app.add_middleware(ApiGate, settings=settings)
    hardening.install(app, settings)  # body timeout and security headers, outside the gate; connection limits
    install_error_handlers(app)
    app.include_router(api_router(holder, feedback, messages, settings))
    app.include_router(widget_router())
    _offline_docs(app)
    return app, holder, feedback, messages


def _offline_docs(app: FastAPI) -> None:
    """Swagger UI at /docs with its files from the fastapi-offline package (Swagger UI 5, which reads
    FastAPI's OpenAPI 3.1; swagger-ui-bundle's 4.x cannot): it works offline, and the page asks no
    other host for anything. No /redoc: ReDoc loads its logo from its own CDN."""
    import fastapi_offline
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount(DOCS_ASSETS, StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static"), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")  # behind a proxy that serves the app under a prefix
        assets = root + DOCS_ASSETS
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - API",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge from the online validator
        )


def create_app(settings: Settings, bot: Chatbot | None = None) -> FastAPI:
    """The whole app for one process; `bot` is loaded at startup (or on first use) if not given."""
    from chatbot.web.ui import CSS, HEAD, build_chat  # imports gradio (~3 s): only when serving

    app, holder, feedback, messages = _api_app(settings, bot)
    # mounted last: routes above take precedence over the catch-all mount at "/"
    import gradio as gr

    blocks = build_chat(holder, feedback, messages, settings)
    # the packaged Source Sans Pro SemiBold (600) holds only a few glyphs: bold text would mix fonts
    font: list[gr.themes.Font | str] = [
        gr.themes.LocalFont("Source Sans Pro", weights=(400, 700)),
        "ui-sans-serif",
        "system-ui",
        "sans-serif",
    ]
    theme = gr.themes.Default(font=font)
    return gr.mount_gradio_app(
        app, blocks, path="/", theme=theme, css=CSS, head=HEAD, footer_links=["api"], run_history=False, show_error=False
    )


def create_api_app(settings: Settings, bot: Chatbot | None = None) -> FastAPI:
    """The app of one worker among several: no Gradio; "/" explains how to get the web chat."""
    app = _api_app(settings, bot)[0]

    @app.get("/", include_in_schema=False)
    async def no_chat() -> HTMLResponse:
        return HTMLResponse(
            WORKERS_PAGE.read_text(encoding="utf-8"),
            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
        )

    return app


def _overrides(settings: Settings) -> str:
    """The fields that differ from what the environment gives, as JSON. Workers read the rest from
    the same CHATBOT_* variables, so secrets are not copied into another one."""
    fresh = Settings()
    changed = {name for name in Settings.model_fields if getattr(settings, name) != getattr(fresh, name)}
    data = settings.model_dump(mode="json", include=changed)
    data.update({k: v.get_secret_value() for k in changed if isinstance(v := getattr(settings, k), SecretStr)})  # dumped masked
    return json.dumps(data)


def log_answers() -> None:
    """A server logs each answer: the core's one JSON line at INFO on the "chatbot" logger (timings,
    citations, language; the question only at DEBUG), shown without -v. Other libraries stay at
    the level the CLI set (WARNING, or INFO with -v). Warnings and errors are bounded per minute."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(message)s")  # no-op if configured
    chatbot_log = logging.getLogger("chatbot")
    if chatbot_log.getEffectiveLevel() > logging.INFO:
        chatbot_log.setLevel(logging.INFO)
    hardening.bound_logs()


def worker_app() -> FastAPI:
    """uvicorn's app factory, run in each worker process (spawned: they see only the environment)."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(message)s")
    for name in ("chromadb", "httpx", "llama_index", "bm25s", "sentence_transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)
    log_answers()
    return create_api_app(Settings(**json.loads(os.environ.get(SETTINGS_ENV, "{}"))))


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860, workers: int = 1) -> int:
    """Run uvicorn until interrupted; returns the exit code. The index must exist already (the
    CLI ensures it once, so N workers never race to build it)."""
    import uvicorn

    log_answers()
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    common = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "timeout_graceful_shutdown": 5,
        **hardening.uvicorn_options(settings),
    }
    if workers == 1:
        app = create_app(settings)
        print(
            f"chat: http://{shown}:{port}/  API: /api/ask (docs /docs)  widget: /widget.js (demo /widget/demo)", file=sys.stderr
        )
        uvicorn.run(app, **common)  # type: ignore[arg-type]
        return 0
    os.environ[SETTINGS_ENV] = _overrides(settings)
    print(
        f"API: http://{shown}:{port}/api/ask (docs /docs)  widget: /widget.js (demo /widget/demo) on {workers} worker processes; "
        "the web chat needs --workers 1 (Gradio keeps sessions in one process)",
        file=sys.stderr,
    )
    uvicorn.run("chatbot.web.server:worker_app", factory=True, workers=workers, **common)  # type: ignore[arg-type]
    return 0
