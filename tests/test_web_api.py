"""The HTTP API of the served app (`python app.py serve` in a subprocess): answers, streaming,
health, OpenAPI, feedback, CORS, and every kind of bad input -> 4xx JSON, never 500."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import WebServer, run_app

pytestmark = [pytest.mark.server, pytest.mark.slow]

HEADLINE_Q = "Combien les startups d'IA ont-elles levé en 2024 ?"
ANSWERED_Q = "How much did Databricks raise?"  # answered with confidence: a long, quoted answer to stream
CITATION_KEYS = {
    "id": int,
    "text": str,
    "section": str,
    "source": str,
    "score": float,
    "start": int,
    "end": int,
    "author": str,
    "heading": str,
    "label": str,
}


def post(server: WebServer, path: str, body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=60, **kw)


def sse_events(text: str) -> list[tuple[str, Any]]:
    events = []
    for frame in text.split("\n\n"):
        if not frame.strip():
            continue
        name = re.search(r"^event: (.*)$", frame, re.M)
        data = "\n".join(m.group(1) for m in re.finditer(r"^data: (.*)$", frame, re.M))
        events.append((name.group(1) if name else "message", json.loads(data)))
    return events


def check_answer(obj: dict[str, Any]) -> None:
    assert set(obj) >= {"question", "answer", "answered", "language", "citations", "timings_ms", "resolved_question", "notes"}
    for c in obj["citations"]:
        for key, typ in CITATION_KEYS.items():
            assert isinstance(c[key], typ), key
        assert c["highlight"] is None or (
            len(c["highlight"]) == 2 and 0 <= c["highlight"][0] <= c["highlight"][1] <= len(c["text"])
        )
    markers = {int(m) for m in re.findall(r"\[(\d+)\]", obj["answer"])}
    assert markers <= {c["id"] for c in obj["citations"]}


def test_health(web_server: WebServer, built: Any) -> None:
    r = httpx.get(web_server.url + "/api/health", timeout=30)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["index_loaded"] is True
    assert body["fingerprint"] == built.info.fingerprint
    assert body["units"] == built.info.units > 0 and body["embedder"] == built.info.embedder
    assert isinstance(body["pid"], int) and body["pid"] > 0


def test_ask_cites_the_headline_figure(web_server: WebServer) -> None:
    r = post(web_server, "/api/ask", {"question": HEADLINE_Q})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    obj = r.json()
    check_answer(obj)
    assert obj["language"] == "fr"
    assert any("110 milliards" in c["text"] for c in obj["citations"])


def test_api_is_the_core_answer(web_server: WebServer, bot: Any) -> None:
    """Same question and history through HTTP and in process: same answer and citations."""
    history = [{"role": "user", "content": "How much did Databricks raise?"}]
    history.append({"role": "assistant", "content": bot.answer(history[0]["content"]).answer})
    obj = post(web_server, "/api/ask", {"question": "And OpenAI?", "history": history}).json()
    local = bot.answer("And OpenAI?", history).to_dict()
    assert obj["answer"] == local["answer"] and obj["resolved_question"] == local["resolved_question"]
    assert [c["text"] for c in obj["citations"]] == [c["text"] for c in local["citations"]]


def test_stream_sends_deltas_then_the_final_answer(web_server: WebServer) -> None:
    with httpx.stream("POST", web_server.url + "/api/ask/stream", json={"question": ANSWERED_Q}, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    events = sse_events(text)
    names = [n for n, _ in events]
    assert names.count("final") == 1 and names[-1] == "final"
    assert names.count("delta") >= 2 and set(names[:-1]) == {"delta"}
    final = events[-1][1]
    check_answer(final)
    assert "".join(d["text"] for n, d in events if n == "delta") == final["answer"]
    plain = post(web_server, "/api/ask", {"question": ANSWERED_Q}).json()
    assert final["answer"] == plain["answer"] and final["citations"] == plain["citations"]
    assert final["status"] == plain["status"] and final["status"] in ("answered", "unsure", "not_found")
    assert final["answered"] == (final["status"] == "answered")


def test_openapi_documents_the_api(web_server: WebServer) -> None:
    spec = httpx.get(web_server.url + "/openapi.json", timeout=30).json()
    assert {"/api/ask", "/api/ask/stream", "/api/health", "/api/feedback"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert {"question", "history"} <= set(schemas["AskRequest"]["properties"])
    assert "text/event-stream" in spec["paths"]["/api/ask/stream"]["post"]["responses"]["200"]["content"]
    status = schemas["AnswerOut"]["properties"]["status"]
    assert status["enum"] == ["answered", "unsure", "not_found"] and "absence" in status["description"]
    assert "quoted" in schemas["CitationOut"]["properties"]


def test_serve_logs_one_line_per_answer_without_the_question(web_server: WebServer) -> None:
    """`python app.py serve` without -v: the core's JSON line per answer at INFO, no question text."""
    question = "Combien la société Databricks a-t-elle levé, au juste ?"

    def answer_lines() -> list[dict[str, Any]]:
        lines = web_server.log.read_text(encoding="utf-8").splitlines()
        return [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith('chatbot {"event": "answer"')]

    before = len(answer_lines())
    assert post(web_server, "/api/ask", {"question": question}).status_code == 200
    deadline = time.monotonic() + 5
    while len(answer_lines()) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = answer_lines()
    assert len(lines) == before + 1 and lines[-1]["citations"] and "total" in lines[-1]["timings_ms"]
    assert "au juste" not in web_server.log.read_text(encoding="utf-8")


def test_feedback_appends_a_json_line(web_server: WebServer) -> None:
    before = web_server.feedback.read_text().count("\n") if web_server.feedback.exists() else 0
    r = post(web_server, "/api/feedback", {"question": "Q?", "answer": "A [1]", "rating": "down"})
    assert r.status_code == 201
    lines = web_server.feedback.read_text(encoding="utf-8").splitlines()
    assert len(lines) == before + 1
    record = json.loads(lines[-1])
    assert record["rating"] == "down" and record["question"] == "Q?" and record["answer"] == "A [1]" and record["origin"] == "api"


def test_cors_allows_other_origins_on_the_api_only(web_server: WebServer) -> None:
    origin = {"Origin": "http://some-other-site.example"}
    r = post(web_server, "/api/ask", {"question": HEADLINE_Q}, headers=origin)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
    pre = httpx.options(
        web_server.url + "/api/ask/stream",
        headers={**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
        timeout=30,
    )
    assert pre.status_code == 200 and "POST" in pre.headers["access-control-allow-methods"]
    assert "content-type" in pre.headers["access-control-allow-headers"].lower()
    # the Gradio app keeps its own same-site policy
    gradio = httpx.get(web_server.url + "/config", headers=origin, timeout=30)
    assert gradio.headers.get("access-control-allow-origin") not in ("*", origin["Origin"])


JSON = {"Content-Type": "application/json"}
BAD_INPUTS = [
    ("empty question", "/api/ask", JSON, json.dumps({"question": ""}), 422),
    ("blank question", "/api/ask", JSON, json.dumps({"question": " \n\t\x00 "}), 422),
    ("too long", "/api/ask", JSON, json.dumps({"question": "x" * 2001}), 422),
    ("number", "/api/ask", JSON, json.dumps({"question": 42}), 422),
    ("null", "/api/ask", JSON, json.dumps({"question": None}), 422),
    ("list question", "/api/ask", JSON, json.dumps({"question": ["a"]}), 422),
    ("missing question", "/api/ask", JSON, json.dumps({"history": []}), 422),
    ("history not a list", "/api/ask", JSON, json.dumps({"question": "Hi?", "history": "no"}), 422),
    ("history bad role", "/api/ask", JSON, json.dumps({"question": "Hi?", "history": [{"role": "system", "content": "x"}]}), 422),
    ("history bad content", "/api/ask", JSON, json.dumps({"question": "Hi?", "history": [{"role": "user", "content": 3}]}), 422),
    (
        "history too long",
        "/api/ask",
        JSON,
        json.dumps({"question": "Hi?", "history": [{"role": "user", "content": "a"}] * 41}),
        422,
    ),
    ("invalid JSON", "/api/ask", JSON, '{"question": "Hi?"', 422),
    ("JSON array", "/api/ask", JSON, "[1, 2]", 422),
    ("empty body", "/api/ask", JSON, "", 422),
    ("text/plain", "/api/ask", {"Content-Type": "text/plain"}, json.dumps({"question": "Hi?"}), 415),
    ("form", "/api/ask", {"Content-Type": "application/x-www-form-urlencoded"}, "question=Hi", 415),
    ("no content type", "/api/ask", {}, json.dumps({"question": "Hi?"}), 415),
    ("huge body", "/api/ask", JSON, json.dumps({"question": "x" * 400_000}), 413),
    ("stream empty question", "/api/ask/stream", JSON, json.dumps({"question": ""}), 422),
    ("stream invalid JSON", "/api/ask/stream", JSON, "{", 422),
    ("feedback bad rating", "/api/feedback", JSON, json.dumps({"question": "q", "answer": "a", "rating": "meh"}), 422),
    ("feedback missing answer", "/api/feedback", JSON, json.dumps({"question": "q", "rating": "up"}), 422),
    ("unknown endpoint", "/api/nope", JSON, "{}", 404),
]


@pytest.mark.parametrize(("case", "path", "headers", "body", "status"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_a_4xx_json_error(
    web_server: WebServer, case: str, path: str, headers: dict[str, str], body: str, status: int
) -> None:
    r = httpx.post(web_server.url + path, content=body.encode(), headers=headers, timeout=60)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert isinstance(r.json()["error"], str) and r.json()["error"]


SCOPES = [
    ({"document": 5}, "must be a document id"),
    ({"document": {"id": "x"}}, "must be a document id"),
    ({"document": [5]}, "must be a document id"),
    ({"document": ""}, "empty scope"),
    ({"document": "   "}, "empty scope"),
    ({"document": []}, "empty scope"),
    ({"document": ["ai-investments-2024.fr", ""]}, "empty scope"),
    ({"document": "x" * 2001}, "at most 2000 characters"),
    ({"document": ["a"] * 51}, "too many documents"),
    ({"page": 5}, "page's URL"),
]


@pytest.mark.parametrize(("extra", "says"), SCOPES, ids=[json.dumps(e)[:40] for e, _ in SCOPES])
def test_bad_scopes_are_a_clean_422(web_server: WebServer, extra: dict[str, Any], says: str) -> None:
    """`"document": 5` showed `functools.partial(<function max_length_validator at 0x…>)`; an empty
    scope silently answered from every document."""
    for path in ("/api/ask", "/api/ask/stream") if extra == SCOPES[0][0] else ("/api/ask",):
        r = httpx.post(web_server.url + path, json={"question": "How much did Databricks raise?", **extra}, timeout=60)
        assert r.status_code == 422, (path, r.status_code, r.text[:300])
        error = r.json()["error"]
        assert says in error and error.startswith(("document: ", "page: ")), error
        assert not any(x in error for x in ("functools", "function", "0x", "partial", "validator", "[")), error


def test_wrong_method_is_a_4xx_json_error(web_server: WebServer) -> None:
    r = httpx.get(web_server.url + "/api/ask", timeout=30)
    assert r.status_code == 405 and "error" in r.json()


def test_widget_script_and_demo_page(web_server: WebServer) -> None:
    js = httpx.get(web_server.url + "/widget.js", timeout=30)
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    code = js.text
    assert "attachShadow" in code and "/api/ask/stream" in code
    # untrusted text is only ever inserted as text, and nothing is fetched from elsewhere
    assert "innerHTML" not in code and "insertAdjacentHTML" not in code and "document.write" not in code
    assert set(re.findall(r"https?://[^\s\"')]+", code)) <= {"http://www.w3.org/2000/svg", "http://HOST:PORT/widget.js"}
    demo = httpx.get(web_server.url + "/widget/demo", timeout=30)
    assert demo.status_code == 200 and '<script src="/widget.js"' in demo.text
    assert httpx.get(web_server.url + "/", timeout=30).status_code == 200  # the Gradio chat


def test_concurrent_requests_do_not_block_the_event_loop(web_server: WebServer) -> None:
    async def run() -> tuple[list[int], float]:
        async with httpx.AsyncClient(base_url=web_server.url, timeout=120) as client:
            questions = [HEADLINE_Q, "How much did Databricks raise?", "Wie viel hat OpenAI eingesammelt?", "Who is Antler?"] * 3
            asks = [asyncio.create_task(client.post("/api/ask", json={"question": q})) for q in questions]
            await asyncio.sleep(0.05)
            t0 = time.perf_counter()
            health = await client.get("/api/health")
            health_s = time.perf_counter() - t0
            assert health.status_code == 200
            return [r.status_code for r in await asyncio.gather(*asks)], health_s

    codes, health_s = asyncio.run(run())
    assert codes == [200] * len(codes)
    assert health_s < 2.0  # answers run in worker threads; the loop still serves other requests


# --- several worker processes: the stateless API from N processes, no web chat ---


@pytest.fixture(scope="module")
def workers_server(settings: Any, built: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    server = WebServer(settings.data_dir, tmp_path_factory.mktemp("workers") / "server.log", args=("--workers", "2"))
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def test_workers_share_the_api_load(workers_server: WebServer) -> None:
    async def burst() -> tuple[list[httpx.Response], set[int]]:
        async def one(question: str) -> tuple[httpx.Response, int]:
            # a connection per request, so the kernel may hand each to either worker
            async with httpx.AsyncClient(base_url=workers_server.url, timeout=120) as client:
                answer = await client.post("/api/ask", json={"question": question})
            async with httpx.AsyncClient(base_url=workers_server.url, timeout=120) as client:
                pid = (await client.get("/api/health")).json()["pid"]
            return answer, pid

        questions = [HEADLINE_Q, "How much did Databricks raise?", "Wie viel hat OpenAI eingesammelt?", "Who is Antler?"] * 6
        results = await asyncio.gather(*(one(q) for q in questions))
        return [r for r, _ in results], {pid for _, pid in results}

    pids: set[int] = set()
    for _ in range(3):  # the kernel picks the accepting process: usually both on the first burst
        answers, seen = asyncio.run(burst())
        assert [r.status_code for r in answers] == [200] * len(answers), [r.text for r in answers if r.status_code != 200]
        for r in answers:
            check_answer(r.json())
        pids |= seen
        if len(pids) > 1:
            break
    assert len(pids) > 1, pids
    assert workers_server.proc.pid not in pids  # the parent only supervises


def test_workers_serve_the_widget_and_explain_the_chat(workers_server: WebServer) -> None:
    home = httpx.get(workers_server.url + "/", timeout=30)
    assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
    assert "--workers 1" in home.text and "sticky sessions" in home.text
    assert httpx.get(workers_server.url + "/widget.js", timeout=30).status_code == 200
    assert '<script src="/widget.js"' in httpx.get(workers_server.url + "/widget/demo", timeout=30).text
    assert httpx.get(workers_server.url + "/config", timeout=30).status_code == 404  # no Gradio here


def test_workers_append_whole_feedback_lines(workers_server: WebServer) -> None:
    """Records larger than a file buffer, from both processes at once, stay one line each."""
    before = workers_server.feedback.read_text(encoding="utf-8").count("\n") if workers_server.feedback.exists() else 0

    async def rate() -> list[int]:
        async def one(i: int) -> int:
            async with httpx.AsyncClient(base_url=workers_server.url, timeout=60) as client:
                body = {"question": f"q{i}", "answer": str(i % 10) * 40_000, "rating": "up"}
                return (await client.post("/api/feedback", json=body)).status_code

        return await asyncio.gather(*(one(i) for i in range(24)))

    assert asyncio.run(rate()) == [201] * 24
    lines = workers_server.feedback.read_text(encoding="utf-8").splitlines()[before:]
    records = [json.loads(line) for line in lines]
    assert sorted(r["question"] for r in records) == sorted(f"q{i}" for i in range(24))
    assert all(r["answer"] == r["question"][-1] * 40_000 for r in records)


def test_workers_must_be_positive() -> None:
    out = run_app("serve", "--workers", "0", timeout=60)
    assert out.returncode != 0 and "--workers" in out.stderr


# --- limits: rate per client, queue length, question and history size (before any model work) ---


LIMITS = {
    "CHATBOT_RATE_LIMIT_PER_MINUTE": "5",
    "CHATBOT_WEB_CONCURRENCY": "1",
    "CHATBOT_API_QUEUE_SIZE": "1",
    "CHATBOT_STREAM_DELAY_MS": "250",
}


@pytest.fixture(scope="module")
def limited_server(settings: Any, built: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """5 POSTs a minute per client; one answer computed and one waiting; slow streams (held long)."""
    server = WebServer(settings.data_dir, tmp_path_factory.mktemp("limited") / "server.log", env=LIMITS)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def client_ip(n: int) -> dict[str, str]:
    """Another client, as a reverse proxy on loopback would say (uvicorn trusts 127.0.0.1's header)."""
    return {"X-Forwarded-For": f"203.0.113.{n}"}


def assert_json_error(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json") and r.json()["error"]


def test_rate_limit_per_client(limited_server: WebServer) -> None:
    origin = {"Origin": "http://some-other-site.example"}
    for _ in range(5):
        assert_json_error(post(limited_server, "/api/ask", {"question": ""}, headers={**client_ip(1), **origin}), 422)
    t0 = time.perf_counter()
    r = post(limited_server, "/api/ask", {"question": HEADLINE_Q}, headers={**client_ip(1), **origin})
    assert_json_error(r, 429)
    assert time.perf_counter() - t0 < 1.0
    assert 1 <= int(r.headers["retry-after"]) <= 60 and "per minute" in r.json()["error"]
    assert r.headers["access-control-allow-origin"] == "*"  # the widget on another site can read why
    assert_json_error(
        post(limited_server, "/api/feedback", {"question": "q", "answer": "a", "rating": "up"}, headers=client_ip(1)), 429
    )
    assert (
        httpx.get(limited_server.url + "/api/health", headers=client_ip(1), timeout=30).status_code == 200
    )  # GETs are not counted
    assert post(limited_server, "/api/ask", {"question": HEADLINE_Q}, headers=client_ip(2)).status_code == 200  # another client


def test_queue_full_is_an_immediate_503(limited_server: WebServer) -> None:
    async def run() -> None:
        async with httpx.AsyncClient(base_url=limited_server.url, timeout=120) as client:
            started = [asyncio.Event(), asyncio.Event()]

            async def slow_stream(n: int) -> str:
                body = {"question": "What is the article about?"}  # answered (headline + lead): long enough to stream for a while
                async with client.stream("POST", "/api/ask/stream", json=body, headers=client_ip(10 + n)) as r:
                    assert r.status_code == 200
                    text = ""
                    async for chunk in r.aiter_text():
                        text += chunk
                        started[n].set()
                    return text

            streams = [asyncio.create_task(slow_stream(n)) for n in range(2)]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), 60)
            assert not any(s.done() for s in streams), (
                f"the streams ended too soon to fill the queue: {[s.result() if not s.exception() else s.exception() for s in streams if s.done()]}"
            )
            for n, path in enumerate(("/api/ask", "/api/ask/stream")):
                t0 = time.perf_counter()
                r = await client.post(path, json={"question": HEADLINE_Q}, headers=client_ip(20 + n))
                assert_json_error(r, 503)
                assert time.perf_counter() - t0 < 1.0 and int(r.headers["retry-after"]) >= 1
            assert (await client.get("/api/health")).status_code == 200
            texts = await asyncio.gather(*streams)
            assert all("event: final" in t for t in texts)
            assert (await client.post("/api/ask", json={"question": HEADLINE_Q}, headers=client_ip(22))).status_code == 200

    asyncio.run(run())


class CountingBot:
    """Stands in for the Chatbot: counts the calls that would do model work."""

    def __init__(self, real: Any) -> None:
        self.index_info = real.index_info
        self.calls = 0

    def answer(self, question: Any, history: Any = None) -> Any:
        self.calls += 1
        raise AssertionError("model work for a request that should have been refused")

    stream = answer


def test_oversized_question_and_history_are_refused_before_model_work(settings: Any, bot: Any) -> None:
    from fastapi.testclient import TestClient

    from chatbot.web.server import create_api_app

    counting = CountingBot(bot)
    long_history = [{"role": "user", "content": "x" * 1000}] * 21
    cases = [
        {"question": "x" * (settings.max_question_chars + 1)},
        {"question": "Hi?", "history": [{"role": "user", "content": "a"}] * (settings.max_history_turns * 2 + 1)},
        {"question": "Hi?", "history": long_history},
    ]
    with TestClient(create_api_app(settings, bot=counting)) as client:
        for body in cases:
            for path in ("/api/ask", "/api/ask/stream"):
                assert_json_error(client.post(path, json=body), 422)
    assert counting.calls == 0


def test_workers_get_the_cli_settings_without_copying_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatbot.settings import Settings
    from chatbot.web.server import _overrides

    monkeypatch.setenv("CHATBOT_LLM_API_KEY", "from-the-environment")
    parent = Settings().model_copy(update={"llm_enabled": False})  # as `serve --no-llm` makes it
    data = json.loads(_overrides(parent))
    assert data == {"llm_enabled": False}
    assert Settings(**data) == parent  # a worker, reading the same environment
