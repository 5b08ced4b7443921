"""The HTTP API under /api (JSON and server-sent events), the widget script and its demo page.

Simplifies: pydantic models give the OpenAPI schema and type checks; the core's `validate`
remains the single place for the limits (length, history size) and its messages, called here
before the bot is even asked for. Answers are computed `web_concurrency` at a time (a capacity
limiter, not the shared threadpool, so health checks never wait behind answers); how many may
wait is capped in front (chatbot/web/gate.py). Every failure leaves as {"error": "..."} with a
4xx/5xx status, never as an HTML page or a bare 500.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from pydantic import AfterValidator, BaseModel, Field, StrictStr, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from chatbot.core import validate
from chatbot.errors import ChatbotError
from chatbot.holder import BotHolder
from chatbot.language import Messages
from chatbot.schema import Answer
from chatbot.settings import Settings
from chatbot.web.feedback import FeedbackLog
from chatbot.web.stream import AnswerStream, sse

log = logging.getLogger("chatbot.web")
STATIC = Path(__file__).resolve().parent / "static"
UI_KEYS = (
    "title", "welcome", "placeholder", "send", "new_chat", "open_chat", "close_chat", "question_label", "sources",
    "thinking", "error_generic", "error_network", "feedback_up", "feedback_down", "feedback_thanks", "doc_picker", "doc_all",
)  # fmt: skip


def _encodable(text: str) -> str:
    """JSON may carry lone surrogates ("\\ud800"); no model, log or response can encode them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (it holds a lone surrogate)") from None
    return text


Text = Annotated[StrictStr, AfterValidator(_encodable)]
MAX_NAME_CHARS = 2_000  # a document id or page URL
MAX_SCOPE_DOCUMENTS = 50


class HistoryItem(BaseModel):
    role: Literal["user", "assistant"]
    content: Text


class AskRequest(BaseModel):
    question: Text = Field(
        description="The question, in French, English or German.", examples=["How much did AI startups raise in 2024?"]
    )
    history: list[HistoryItem] = Field(default_factory=list, description="Earlier messages of the conversation, oldest first.")
    document: (
        Annotated[Text, Field(max_length=MAX_NAME_CHARS)]
        | Annotated[list[Annotated[Text, Field(max_length=MAX_NAME_CHARS)]], Field(max_length=MAX_SCOPE_DOCUMENTS)]
        | None
    ) = Field(
        None,
        description="Answer only from this document (its id, or its page URL), or from these; "
        "404 if one is not indexed. Absent: every document.",
        examples=["ai-investments-2024.fr"],
    )
    page: Annotated[Text, Field(max_length=MAX_NAME_CHARS)] | None = Field(
        None,
        description="The URL of the page asking (the widget sends its canonical link): answers come from the "
        "document indexed under that URL, or from every document when none is. Ignored when `document` is given.",
    )

    @field_validator("document", mode="before")
    @classmethod
    def _a_scope(cls, value: Any) -> Any:
        """A scope names documents: a clear 422 for anything else, and for an empty one, which
        would otherwise silently mean every document (the union's own messages name its internals)."""
        if value is None:
            return None
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("must be a document id (a string) or a list of document ids")
        if not names or not all(n.strip() for n in names):
            raise ValueError("empty scope: name at least one document (leave `document` out to ask every document)")
        if len(names) > MAX_SCOPE_DOCUMENTS:
            raise ValueError(f"too many documents ({len(names)}; the limit is {MAX_SCOPE_DOCUMENTS})")
        if any(len(n) > MAX_NAME_CHARS for n in names):
            raise ValueError(f"a document id or URL is at most {MAX_NAME_CHARS} characters")
        return value

    @field_validator("page", mode="before")
    @classmethod
    def _a_page(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str):
            raise ValueError("must be the page's URL (a string)")
        if value is not None and len(value) > MAX_NAME_CHARS:
            raise ValueError(f"a page URL is at most {MAX_NAME_CHARS} characters")
        return value


class CitationOut(BaseModel):
    id: int
    text: str
    section: str
    source: str
    score: float
    start: int
    end: int
    author: str = ""
    heading: str = ""
    highlight: list[int] | None = Field(None, description="The answer span [start, end) inside `text`.")
    document: str = Field("", description="The id of the document the passage comes from.")
    document_title: str = ""
    quoted: bool = Field(False, description="The answer text quotes this passage.")
    label: str = Field("", description='What the passage is, in the answer\'s language ("Article, paragraph 4").')


class AnswerOut(BaseModel):
    question: str
    answer: str = Field(description="Answer text with [n] markers matching citation ids.")
    answered: bool
    language: str
    citations: list[CitationOut]
    timings_ms: dict[str, float]
    resolved_question: str
    notes: list[str]
    confidence: float = Field(
        description="Calibrated probability that the answer is right; below the answer threshold, answered is false."
    )
    status: Literal["answered", "unsure", "not_found"] = Field(
        description="answered: stated from a quoted passage. unsure: the closest candidate(s) quoted as such, "
        "not stated. not_found: the scope does not answer (an absence model's evidence, not low confidence)."
    )


class FeedbackIn(BaseModel):
    question: Text = Field(max_length=20_000)
    answer: Text = Field(max_length=50_000)
    rating: Literal["up", "down"]


class Health(BaseModel):
    status: str
    index_loaded: bool
    fingerprint: str
    embedder: str
    units: int
    documents: int = Field(description="Documents in the index actually served (it follows each new index within seconds).")
    collection: str
    pid: int = Field(description="The worker process that answered (several with `serve --workers N`).")


class DocumentOut(BaseModel):
    id: str = Field(description="Stable id: the page's canonical URL, else the file name without its extension.")
    title: str
    language: str
    date: str
    author: str
    source: str
    url: str
    units: int
    added_at: int = Field(description="When this version was indexed (milliseconds since the epoch).")


class DocumentsOut(BaseModel):
    documents: list[DocumentOut]


class ErrorOut(BaseModel):
    error: str


ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (404, 413, 415, 422, 429, 503)}


def require_json(request: Request) -> None:
    """A form or text/plain POST is what a cross-site form can send without a CORS preflight."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json" and not kind.endswith("+json"):
        raise HTTPException(415, "send the body as JSON with Content-Type: application/json")


def _describe(exc: RequestValidationError) -> str:
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return f"invalid JSON: {first.get('ctx', {}).get('error', first.get('msg', ''))}"
    # field names and list positions only: a union's or a validator's own name is no place to a client
    # ("function-after[functools.partial(<function max_length_validator at 0x…>)…]")
    loc = [str(p) for p in first.get("loc", ()) if p != "body" and (isinstance(p, int) or str(p).isidentifier())]
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{'.'.join(loc) or 'request body'}: {msg}"


def install_error_handlers(app: FastAPI) -> None:
    async def validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"error": _describe(exc)}, status_code=422)

    async def chatbot_error(_: Request, exc: Exception) -> JSONResponse:
        status = getattr(exc, "http_status", 500)
        return JSONResponse({"error": str(exc)}, status_code=status)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(ChatbotError, chatbot_error)
    app.add_exception_handler(HTTPException, http_error)
    # any other exception: a JSON 500 and one short log line (chatbot/web/hardening.py, ContainErrors)


def api_router(holder: BotHolder, feedback: FeedbackLog, messages: Messages, settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["api"], responses=ERRORS)
    json_only = [Depends(require_json)]  # rate, queue and body size: limited in front of /api (chatbot/web/gate.py)
    compute = CapacityLimiter(settings.web_concurrency)

    def checked_history(req: AskRequest) -> list[dict[str, str]]:
        """The request's history, checked with the question (422 before any model work)."""
        items = [t.model_dump() for t in req.history]
        validate(req.question, items, settings)
        return items

    async def scoped_bot(req: AskRequest) -> Any:
        """The bot confined to the request's documents (404 for an unknown one)."""
        bot = await run_in_threadpool(holder.get)
        return await run_in_threadpool(bot.scoped, _scope(bot, req.document, req.page))

    @router.post("/ask", response_model=AnswerOut, dependencies=json_only)
    async def ask(req: AskRequest) -> dict[str, Any]:
        """Answer one question (with optional history); the answer cites numbered passages."""
        items = checked_history(req)
        bot = await scoped_bot(req)
        answer: Answer = await to_thread.run_sync(bot.answer, req.question, items, limiter=compute)  # CPU-bound: off the loop
        return answer.to_dict()

    @router.post(
        "/ask/stream",
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"text/event-stream": {}},
                "description": "`delta` events ({text}), then one `final` event (the answer).",
            }
        },
        dependencies=json_only,
    )
    async def ask_stream(req: AskRequest) -> StreamingResponse:
        """The answer as server-sent events. Errors in the question are found before the stream
        starts and sent as JSON; the `final` answer is authoritative (it may revise the deltas)."""
        items = checked_history(req)
        bot = await scoped_bot(req)
        stream = await AnswerStream.open(bot, req.question, items, limiter=compute)

        async def events() -> AsyncIterator[str]:
            try:
                async for kind, value in stream.events(settings.stream_delay_ms / 1000):
                    yield sse(kind, {"text": value} if kind == "delta" else value.to_dict())
            except Exception as exc:  # the status line is sent already: report in-band
                log.exception("stream failed")
                yield sse("error", {"error": str(exc) if isinstance(exc, ChatbotError) else "internal error"})

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    @router.get("/health", response_model=Health)
    async def health() -> dict[str, Any]:
        """Loads the index if needed and asks the store about the served one; 503 with the reason when it cannot."""
        served = await run_in_threadpool(holder.health)
        return {"status": "ok", "index_loaded": True, **served, "pid": os.getpid()}

    @router.post("/feedback", status_code=201, dependencies=json_only)
    async def post_feedback(item: FeedbackIn) -> dict[str, str]:
        """Record a thumbs up or down for an answer (one JSON line in the feedback file)."""
        await run_in_threadpool(feedback.append, item.question, item.answer, item.rating, "api")
        return {"status": "recorded"}

    @router.get("/documents", response_model=DocumentsOut)
    async def documents() -> dict[str, Any]:
        """The indexed documents (the served index)."""
        bot = await run_in_threadpool(holder.get)
        return {"documents": bot.documents()}

    @router.get("/messages")
    async def ui_messages(lang: str = "en", document: str | None = None, page: str | None = None) -> dict[str, Any]:
        """Interface strings for the widget, in fr, en or de (English otherwise). Title, welcome,
        placeholder, examples and quote label come from the scoped document (`document` id, or the
        asking `page` URL); `document` in the reply is the id the widget should send (or null)."""
        from chatbot.documents import interface_words

        lang = lang if lang in messages.languages else "en"
        fixed = {k: messages.get(k, lang) for k in UI_KEYS}
        bot = await run_in_threadpool(holder.get)
        scoped = await run_in_threadpool(bot.scoped, _scope(bot, document, page))
        return {"lang": lang, **fixed, **interface_words(messages, scoped.retriever.documents, lang)}

    known = {getattr(r, "path", "") for r in router.routes}

    @router.api_route(
        "/{rest:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], include_in_schema=False
    )
    async def not_found(rest: str) -> None:
        # without this, unknown /api paths would fall through to the Gradio app mounted at /
        if f"/api/{rest}" in known:
            raise HTTPException(405, "method not allowed")
        raise HTTPException(404, f"no such endpoint: /api/{rest}")

    return router


def _scope(bot: Any, document: str | list[str] | None, page: str | None) -> str | list[str] | None:
    """What to confine answers to: the named documents, else the document indexed under the asking
    page's URL, else nothing (every document). An unknown `document` is the caller's error (404);
    an unknown page is only a page nobody indexed."""
    from chatbot.errors import UnknownDocument

    if document:
        return document
    if page:
        try:
            return bot.find_documents(page, exact=True)  # type: ignore[no-any-return]
        except UnknownDocument:
            return None
    return None


def widget_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/widget.js")
    async def widget_js() -> FileResponse:
        # cross-origin: host pages that isolate themselves (COEP) may still load the script
        headers = {"Cache-Control": "public, max-age=300", "Cross-Origin-Resource-Policy": "cross-origin"}
        return FileResponse(STATIC / "widget.js", media_type="text/javascript; charset=utf-8", headers=headers)

    @router.get("/widget/demo")
    async def widget_demo() -> HTMLResponse:
        csp = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'none'"
        return HTMLResponse((STATIC / "demo.html").read_text(encoding="utf-8"), headers={"Content-Security-Policy": csp})

    return router
