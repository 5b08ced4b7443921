"""What stands in front of every route, before any JSON parsing or model work.

Simplifies: one ASGI middleware applies every limit in a fixed order, so each refusal is cheap,
immediate and JSON (never a timeout or an HTML page), and carries CORS headers so the widget on
another site can read it. On /api/*:
1. CORS (starlette's CORSMiddleware): the widget may call the API from other sites;
2. rate: POSTs per client IP per minute (token bucket), 429 with Retry-After;
3. size: bodies over max_request_bytes, 413, even when sent chunked. The whole body is read here,
   before the queue: a client still sending its body (slowly, or never: body_timeout_s ends it,
   chatbot/web/hardening.py) holds no place in it;
4. queue: /api/ask(+stream) in flight at most web_concurrency + api_queue_size, else 503 with
   Retry-After; the API itself computes at most web_concurrency answers at once (chatbot/web/api.py).
A refused CORS preflight is JSON too (JsonCORS).
Everywhere else (the Gradio chat and its own API under /gradio_api: queue/join, run, call...) the
same rate (a bucket of its own, so the web chat and the API do not eat each other's) and size
limits, and no uploads: the chat takes no files, so POST /gradio_api/upload is refused (403)
before a byte of the file is read (Gradio kept any anonymous file in its temp folder).
Limits are per process: with `serve --workers N` each worker has its own counters.
"""

from __future__ import annotations

import math
import time

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatbot.settings import Settings

QUEUED_PATHS = ("/api/ask", "/api/ask/stream")
WRITES = ("POST", "PUT", "PATCH", "DELETE")
UPLOADS = ("/gradio_api/upload", "/upload")  # Gradio's file uploads (and its older spelling)
QUEUE_RETRY_S = 1  # a slot frees as soon as one answer ends: answers take well under a second


class RateLimiter:
    """A token bucket per key: a burst of `per_minute` requests, refilled at per_minute/60 a second."""

    def __init__(self, per_minute: int, max_keys: int = 10_000) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last update)

    def take(self, key: str, now: float | None = None) -> float:
        """0 when the request may go (and is counted), else the seconds until one may."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > self.max_keys:
            self._prune(now)
        return 0.0

    def _prune(self, now: float) -> None:
        # a full bucket is the same as no bucket; if many clients are mid-burst, forget the oldest half
        # (memory stays bounded under a flood of addresses, at the price of resetting their counts)
        buckets = {k: v for k, v in self._buckets.items() if v[0] + (now - v[1]) * self.rate < self.capacity}
        if len(buckets) > self.max_keys // 2:
            buckets = dict(sorted(buckets.items(), key=lambda kv: kv[1][1])[-(self.max_keys // 2) :])
        self._buckets = buckets


def _refuse(status: int, error: str, retry_after: float | None = None, close: bool = False) -> JSONResponse:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after is not None else {}
    if close:  # the rest of the body is not read: the connection cannot carry another request
        headers["Connection"] = "close"
    return JSONResponse({"error": error}, status_code=status, headers=headers)


class JsonCORS(CORSMiddleware):
    """starlette's CORS, with a refused preflight as {"error": ...} rather than plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        headers = {k: v for k, v in response.headers.items() if k not in ("content-type", "content-length")}
        return JSONResponse({"error": f"CORS preflight refused: {bytes(response.body).decode()}"}, response.status_code, headers)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the app the body already read, then waits for the disconnect as usual."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class ApiGate:
    """The limits above; the Gradio app keeps its own same-site CORS and queue behind them."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_body = settings.max_request_bytes
        self.rate = RateLimiter(settings.rate_limit_per_minute) if settings.rate_limit_per_minute > 0 else None
        self.chat_rate = RateLimiter(settings.rate_limit_per_minute) if settings.rate_limit_per_minute > 0 else None
        self.per_minute = settings.rate_limit_per_minute
        self.max_in_flight = settings.web_concurrency + settings.api_queue_size
        self.in_flight = 0  # one event loop per process: a plain counter is race-free
        origins = list(settings.allowed_origins)
        self.cors = JsonCORS(
            self._gated, allow_origins=origins, allow_methods=["GET", "POST"], allow_headers=["Content-Type"], max_age=600
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["path"].startswith("/api/"):
            await self.cors(scope, receive, send)
        else:
            await self._chat(scope, receive, send)

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Gradio's routes: no uploads, and the rate and size limits of the API."""
        if scope["method"] not in WRITES:
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/")
        if path in UPLOADS or path.startswith(tuple(u + "/" for u in UPLOADS)):
            error = "uploads are off: the chat takes no files"
            return await _refuse(403, error, close=True)(scope, receive, send)
        if await self._rate_limited(scope, receive, send, self.chat_rate):
            return
        body = await self._read_body(scope, receive, send)
        if body is not None:
            await self.app(scope, _replay(body, receive), send)

    async def _rate_limited(self, scope: Scope, receive: Receive, send: Send, rate: RateLimiter | None) -> bool:
        """True when the client is over its rate (and was told so: 429 with Retry-After)."""
        if rate is None:
            return False
        client = scope.get("client")
        wait = rate.take(client[0] if client else "unknown")
        if not wait:
            return False
        error = f"too many requests: the limit is {self.per_minute} per minute; retry in {math.ceil(wait)} s"
        await _refuse(429, error, wait)(scope, receive, send)
        return True

    async def _gated(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in WRITES:
            return await self.app(scope, receive, send)
        if await self._rate_limited(scope, receive, send, self.rate):
            return
        body = await self._read_body(scope, receive, send)
        if body is None:
            return  # answered (413) or the client went away
        replay = _replay(body, receive)
        if scope["path"] not in QUEUED_PATHS:
            return await self.app(scope, replay, send)
        if self.in_flight >= self.max_in_flight:
            error = f"the server is busy ({self.in_flight} questions in progress); retry in a moment"
            return await _refuse(503, error, QUEUE_RETRY_S)(scope, replay, send)
        self.in_flight += 1
        try:
            await self.app(scope, replay, send)
        finally:
            self.in_flight -= 1

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole (small) body, so an oversized one gets a JSON 413, even when chunked."""
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(scope, receive, send)
            return None
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return None  # client went away (or took too long: chatbot/web/hardening.py answered)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_body:
                await self._too_large(scope, receive, send)
                return None
        return b"".join(chunks)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _refuse(413, f"request body too large (limit {self.max_body} bytes)", close=True)(scope, receive, send)
