"""What keeps the server answering under slow, idle or hostile clients, and the headers of its pages.

Simplifies: limits that must act whatever the app does (the request line and headers, the body,
the number of connections from one address, malformed HTTP) live in a subclass of uvicorn's
httptools protocol, `HardenedProtocol`, given to uvicorn by import string (worker processes
import it too). The headers the pages send and what happens to an exception are two small ASGI
middlewares. Every refusal is JSON {"error": ...} and closes the connection:
- 408 when the request line and headers take longer than header_timeout_s (an idle connection too),
  or the body longer than body_timeout_s from the end of the headers, whether or not the app reads
  it (a body the app never reads held the connection open for as long as it trickled in: after the
  response, or after a 429, a GET with "Content-Length: 1000000" and a byte a second kept it);
  once the response has begun, the connection is simply closed;
- 429 at once when a client address already has max_connections_per_ip connections open;
- 431 when the request line and headers exceed max_header_bytes; 400 for malformed HTTP.
Counters are per process, like the gate's (chatbot/web/gate.py). Behind a reverse proxy every
client has the proxy's address: set max_connections_per_ip to 0 there and let the proxy limit.
An exception in any route (Gradio's included) is one short log line and a JSON 500, never a
traceback per request, and warnings and errors on stderr are bounded per minute (`BoundedLog`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter
from typing import Any, ClassVar

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from chatbot.settings import Settings

log = logging.getLogger("chatbot.web")
PROTOCOL = "chatbot.web.hardening:HardenedProtocol"  # uvicorn's `http` option
NOSNIFF = (b"x-content-type-options", b"nosniff")
# Gradio's page: inline config and style blocks, templates compiled with new Function (gr.HTML:
# 'unsafe-eval'), fonts and images as data: URLs (checked in Chromium: tests/test_web_hardening.py).
# Nothing from other hosts, no plugins, and framing only as frame_ancestors allows.
CHAT_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' data: blob:; connect-src 'self'; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'"
)


def _json_bytes(status: int, error: str, default_headers: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, for the protocol's own refusals."""
    body = json.dumps({"error": error}).encode()
    head = [STATUS_LINE[status]]
    for name, value in default_headers or []:
        head += [name, b": ", value, b"\r\n"]
    head.append(b"content-type: application/json\r\nx-content-type-options: nosniff\r\nconnection: close\r\n")
    head.append(b"content-length: %d\r\n\r\n" % len(body))
    return b"".join(head) + body


class HardenedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header-read timeout, a header size limit, a cap on
    connections per client address and JSON errors. Limits are class attributes, set by
    `configure` when the app is built (in each worker process too)."""

    header_timeout_s: ClassVar[float] = 10.0
    body_timeout_s: ClassVar[float] = 15.0
    max_header_bytes: ClassVar[int] = 65_536
    max_per_ip: ClassVar[int] = 64
    open_per_ip: ClassVar[Counter[str]] = Counter()  # one event loop per process: no lock needed

    @classmethod
    def configure(cls, settings: Settings) -> None:
        cls.header_timeout_s = settings.header_timeout_s
        cls.body_timeout_s = settings.body_timeout_s
        cls.max_header_bytes = settings.max_header_bytes
        cls.max_per_ip = settings.max_connections_per_ip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._admitted: str | None = None  # the counted client address, while counted
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._headers_too_large = False

    # connections
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if self.max_per_ip > 0 and self.open_per_ip[ip] >= self.max_per_ip:
            self.transport = transport
            error = f"too many connections from your address (limit {self.max_per_ip}); close some and retry"
            transport.write(_json_bytes(429, error, self.server_state.default_headers))
            transport.close()
            return
        self._admitted = ip
        self.open_per_ip[ip] += 1
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self._cancel_body_timer()
        if self._admitted is None:
            return  # refused at connection_made (or handed to a websocket protocol)
        self._release()
        super().connection_lost(exc)

    def _release(self) -> None:
        if self._admitted is not None:
            self.open_per_ip[self._admitted] -= 1
            if self.open_per_ip[self._admitted] <= 0:
                del self.open_per_ip[self._admitted]

    def data_received(self, data: bytes) -> None:
        if self._admitted is not None:
            super().data_received(data)

    def handle_websocket_upgrade(self) -> None:
        self._cancel_header_timer()
        self._cancel_body_timer()
        self._release()  # the websocket protocol takes the connection over, and its connection_lost
        self._admitted = None
        super().handle_websocket_upgrade()

    # the request line and headers: in time and bounded
    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        if self.header_timeout_s > 0:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # no response being written: say why
            error = f"request headers not received within {self.header_timeout_s:g} s"
            self.transport.write(_json_bytes(408, error, self.server_state.default_headers))
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm_header_timer()

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self.max_header_bytes > 0 and self._header_bytes > self.max_header_bytes:
            self._headers_too_large = True
            raise ValueError("request headers too large")  # the parser raises HttpParserCallbackError: send_400_response

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()
        if self.body_timeout_s > 0 and self._has_body():
            self._cancel_body_timer()
            self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_timed_out)

    # the body: whole within body_timeout_s of the headers, read by the app or not
    def _has_body(self) -> bool:
        for name, value in self.headers:
            if name == b"content-length" and value.strip() not in (b"", b"0"):
                return True
            if name == b"transfer-encoding":
                return True
        return False

    def on_message_complete(self) -> None:
        self._cancel_body_timer()
        super().on_message_complete()

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app now reads a disconnect, and what it sends is dropped
            cycle.message_event.set()
        if cycle is not None and not cycle.response_started:
            error = f"request body not received within {self.body_timeout_s:g} s"
            self.transport.write(_json_bytes(408, error, self.server_state.default_headers))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self._cancel_header_timer()
        if self._headers_too_large:
            data = _json_bytes(
                431,
                f"request line and headers too large (limit {self.max_header_bytes} bytes)",
                self.server_state.default_headers,
            )
        else:
            data = _json_bytes(400, "malformed HTTP request", self.server_state.default_headers)
        self.transport.write(data)
        self.transport.close()


class ErrorLog:
    """One short line per failed request, at most `per_minute` a minute (then a count of those
    left out): a client sending the same bad request in a loop cannot fill the disk. The traceback
    is logged at DEBUG."""

    def __init__(self, per_minute: int = 20) -> None:
        self.per_minute = per_minute
        self._window = 0.0
        self._count = 0
        self._dropped = 0

    def report(self, scope: Scope, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._window >= 60:
            if self._dropped:
                log.error("%d more failed requests in the last minute were not logged", self._dropped)
            self._window, self._count, self._dropped = now, 0, 0
        self._count += 1
        if self._count > self.per_minute:
            self._dropped += 1
            return
        path = str(scope.get("path", ""))[:200].encode("unicode_escape").decode("ascii")
        first = (str(exc).strip().splitlines() or [""])[0][:200].encode("unicode_escape").decode("ascii")
        log.error("request failed: %s %s: %s%s", scope.get("method", ""), path, type(exc).__name__, f": {first}" if first else "")
        log.debug("request failed: %s", path, exc_info=exc)


class ContainErrors:
    """The outermost middleware: an exception from any route (ours, or Gradio's: an unknown
    session_hash on /gradio_api/queue/data raises inside its event stream) becomes one short line
    (ErrorLog) and a JSON 500, or the end of a response already begun, instead of two tracebacks
    a request from Starlette and uvicorn (800 tracebacks, 3 MB, for 200 such requests)."""

    def __init__(self, app: ASGIApp, errors: ErrorLog | None = None) -> None:
        self.app = app
        self.errors = errors or ErrorLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = ended = False

        async def tracked(message: Message) -> None:
            nonlocal started, ended
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                ended = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            self.errors.report(scope, exc)
            try:
                if not started:
                    body = json.dumps({"error": "internal error"}).encode()
                    headers = [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"x-content-type-options", b"nosniff"),
                        (b"connection", b"close"),
                    ]
                    await send({"type": "http.response.start", "status": 500, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                elif not ended:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            except Exception:  # the client is gone, or a fixed length cannot be completed: uvicorn closes
                log.debug("could not end a failed response", exc_info=True)


class BoundedLog(logging.Filter):
    """On the server's stderr handler: warnings and errors of one kind (logger and message
    template) at most `per_minute` a minute, and a traceback only with the first of them; then
    one line saying how many were left out. INFO lines (one per answer) are not limited."""

    def __init__(self, per_minute: int = 30) -> None:
        super().__init__()
        self.per_minute = per_minute
        self._seen: dict[tuple[str, str], tuple[float, int, int]] = {}  # kind -> (window start, logged, dropped)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        now = time.monotonic()
        key = (record.name, str(record.msg)[:200])
        start, logged, dropped = self._seen.get(key, (-60.0, 0, 0))
        if now - start >= 60:
            if len(self._seen) > 1000:  # bounded memory too
                self._seen.clear()
            if dropped:
                record.msg = f"{record.msg} ({dropped} more like this in the last minute were not logged)"
            self._seen[key] = (now, 1, 0)
            return True
        if logged >= self.per_minute:
            self._seen[key] = (start, logged, dropped + 1)
            return False
        self._seen[key] = (start, logged + 1, dropped)
        if record.exc_info and record.exc_info[1] is not None:  # the traceback was shown once this minute
            exc = record.exc_info[1]
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            record.msg = f"{record.msg} ({type(exc).__name__}: {first})"
            record.exc_info, record.exc_text = None, None
        return True


def frame_options(ancestors: tuple[str, ...]) -> str | None:
    """X-Frame-Options matching CSP frame-ancestors, for browsers that read only the older header;
    None when it cannot say the same (a list of origins: CSP alone decides then)."""
    values = {a.strip().lower() for a in ancestors}
    if not values or values == {"'none'"}:
        return "DENY"
    if values == {"'self'"}:
        return "SAMEORIGIN"
    return None


class SecurityHeaders:
    """nosniff on every /api/* response; on the chat page "/", a CSP (its own or CHAT_CSP) with
    frame-ancestors from the settings, and X-Frame-Options to match."""

    def __init__(self, app: ASGIApp, frame_ancestors: tuple[str, ...]) -> None:
        self.app = app
        ancestors = " ".join(frame_ancestors) or "'none'"
        self.frame_ancestors = f"frame-ancestors {ancestors}"
        self.xfo = frame_options(frame_ancestors)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        api, page = path.startswith("/api/"), path == "/"
        if not (api or page):
            return await self.app(scope, receive, send)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if page and headers.get("content-type", "").startswith("text/html"):
                    csp = headers.get("content-security-policy") or CHAT_CSP
                    if "frame-ancestors" not in csp:
                        csp = f"{csp}; {self.frame_ancestors}"
                    headers["Content-Security-Policy"] = csp
                    if self.xfo:
                        headers["X-Frame-Options"] = self.xfo
            await send(message)

        await self.app(scope, receive, with_headers)


def install(app: Any, settings: Settings) -> None:
    """The two middlewares, outside the gate (so its refusals get the headers, and no exception
    escapes), and the protocol's limits for this process."""
    app.add_middleware(SecurityHeaders, frame_ancestors=settings.frame_ancestors)
    app.add_middleware(ContainErrors)  # added last: the outermost of ours
    HardenedProtocol.configure(settings)


def bound_logs() -> None:
    """Bound what the server writes to stderr (BoundedLog on the root logger's handlers)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, BoundedLog) for f in handler.filters):
            handler.addFilter(BoundedLog())


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What serve() passes to uvicorn: the protocol above and an idle keep-alive limit."""
    return {"http": PROTOCOL, "timeout_keep_alive": max(1, math.ceil(min(5.0, settings.header_timeout_s or 5.0)))}
