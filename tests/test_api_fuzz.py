"""Hostile requests against the HTTP API, in process (the real app and a loaded Chatbot): any
body (JSON of any shape, bytes, unicode with lone surrogates), any content type, any field type,
chunked or not. The contract: never a 5xx; a 4xx is always {"error": "<text>"} as JSON; a 2xx is
a well-formed answer, event stream or feedback receipt. Also the rate limiter's arithmetic."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from chatbot.web.gate import RateLimiter

pytestmark = [pytest.mark.slow]

ANSWER_KEYS = {
    "question",
    "answer",
    "answered",
    "language",
    "citations",
    "timings_ms",
    "resolved_question",
    "notes",
    "confidence",
}


@pytest.fixture(scope="module")
def feedback_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "feedback.jsonl"


@pytest.fixture(scope="module")
def client(settings: Any, bot: Any, feedback_file: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from chatbot.web.server import create_app

    # no rate limit (hypothesis sends hundreds of requests from one address) and no typing delay
    fuzz_settings = settings.model_copy(update={"rate_limit_per_minute": 0, "stream_delay_ms": 0, "feedback_path": feedback_file})
    with TestClient(create_app(fuzz_settings, bot=bot), raise_server_exceptions=False) as c:
        yield c


# --- what hypothesis sends ---

UNICODE = st.text(alphabet=st.characters(codec=None, categories=None, exclude_categories=[]), max_size=60)  # lone surrogates too
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | UNICODE
JSON_VALUES = st.recursive(
    SCALARS, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(UNICODE, kids, max_size=4), max_leaves=12
)
QUESTIONS = st.one_of(
    st.sampled_from(
        ["How much did Databricks raise?", "Combien les startups d'IA ont-elles levé en 2024 ?", "Et OpenAI ?", "   ", ""]
    ),
    UNICODE,
    st.integers(1990, 2010).map(lambda n: "x" * n),  # around the length limit
    JSON_VALUES,
)
HISTORY_ITEMS = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "", None, 1]), "content": st.one_of(UNICODE, JSON_VALUES)},
    optional={"extra": JSON_VALUES},
)
HISTORIES = st.one_of(
    st.lists(HISTORY_ITEMS, max_size=4),
    st.integers(38, 42).map(lambda n: [{"role": "user", "content": "a"}] * n),  # around the turn limit
    JSON_VALUES,
)
ASK_BODIES = st.fixed_dictionaries({"question": QUESTIONS}, optional={"history": HISTORIES, "junk": JSON_VALUES})
FEEDBACK_FIELDS = {
    "question": QUESTIONS,
    "answer": st.one_of(UNICODE, JSON_VALUES),
    "rating": st.sampled_from(["up", "down", "meh", None, 1]),
}
FEEDBACK_BODIES = st.fixed_dictionaries(FEEDBACK_FIELDS) | st.fixed_dictionaries({}, optional=FEEDBACK_FIELDS)
ODD_TYPES = st.one_of(
    st.sampled_from(
        [
            None,
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/problem+json",
            "application/json; charset=latin-1",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
            "*/*",
            "application/json;;;",
            "json",
        ]
    ),  # fmt: skip
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
)


def encode(value: Any, how: str) -> bytes:
    text = json.dumps(value, ensure_ascii=how == "ascii", allow_nan=True)
    if how == "utf-16":
        return text.encode("utf-16", "surrogatepass")
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes invalid UTF-8


ENCODINGS = st.sampled_from(["ascii", "utf-8", "utf-8", "utf-16"])
RAW_BODIES = st.one_of(
    st.tuples(JSON_VALUES, ENCODINGS).map(lambda t: encode(*t)),
    st.binary(max_size=300),
    UNICODE.map(lambda s: s.encode("utf-8", "surrogatepass")),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes, str | None]:
    """Mostly JSON bodies shaped like the endpoint's (so many reach validation and the model),
    the rest anything at all; mostly declared as JSON, the rest any content type."""
    path = draw(st.sampled_from(["/api/ask", "/api/ask/stream", "/api/feedback"]))
    shaped = FEEDBACK_BODIES if path == "/api/feedback" else ASK_BODIES
    body = draw(st.one_of(st.tuples(shaped, ENCODINGS).map(lambda t: encode(*t)), RAW_BODIES) if draw(st.integers(0, 9)) < 4 else
                st.tuples(shaped, ENCODINGS).map(lambda t: encode(*t)))  # fmt: skip
    content_type = "application/json" if draw(st.integers(0, 9)) < 7 else draw(ODD_TYPES)
    return path, body, content_type


# --- the contract ---


def check(response: Any, path: str) -> None:
    status = response.status_code
    assert status < 500, (status, response.text[:500])
    if status >= 400:
        assert response.headers["content-type"].startswith("application/json"), response.headers
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    elif path == "/api/ask":
        assert status == 200 and set(response.json()) >= ANSWER_KEYS
    elif path == "/api/ask/stream":
        assert status == 200 and response.headers["content-type"].startswith("text/event-stream")
        names = re.findall(r"^event: (\w+)$", response.text, re.M)
        assert names and names[-1] == "final" and "error" not in names, response.text[-500:]
        final = json.loads(response.text.rsplit("data: ", 1)[1])
        assert set(final) >= ANSWER_KEYS
    else:
        assert status == 201 and response.json() == {"status": "recorded"}


SURROGATE = b'{"question": "How much did Databricks raise? \\ud800", "history": [{"role": "user", "content": "\\udfff"}]}'


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request=requests(), chunked=st.booleans())
@example(request=("/api/ask", SURROGATE, "application/json"), chunked=False)
@example(request=("/api/ask/stream", SURROGATE, "application/json"), chunked=False)
@example(request=("/api/feedback", b'{"question": "\\ud800", "answer": "a", "rating": "up"}', "application/json"), chunked=False)
@example(request=("/api/ask", b"[" * 100_000 + b"]" * 100_000, "application/json"), chunked=False)  # recursion depth
@example(request=("/api/ask", b'{"question": ' + b"9" * 5000 + b"}", "application/json"), chunked=False)  # int digits limit
@example(request=("/api/ask", b'{"question": NaN, "history": Infinity}', "application/json"), chunked=True)
@example(
    request=(
        "/api/ask",
        b"\xef\xbb\xbf" + json.dumps({"question": "How much did Databricks raise?"}).encode(),
        "application/json",
    ),
    chunked=False,
)
def test_any_request_gets_an_answer_or_a_json_4xx(client: Any, request: tuple[str, bytes, str | None], chunked: bool) -> None:
    path, body, content_type = request
    headers = {"Content-Type": content_type} if content_type is not None else {}
    content: Any = iter([body[: len(body) // 2], body[len(body) // 2 :]]) if chunked else body  # chunked: no Content-Length
    response = client.post(path, content=content, headers=headers)
    event(f"{path} {response.status_code}")  # --hypothesis-show-statistics: how many got through to an answer
    check(response, path)


@settings(max_examples=60, deadline=None)
@given(path=st.sampled_from(["/api/ask", "/api/ask/stream", "/api/feedback", "/api/health", "/api/messages", "/api/x", "/api/"]),
       method=st.sampled_from(["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]), query=st.text(max_size=20))  # fmt: skip
def test_other_methods_and_paths_are_never_5xx(client: Any, path: str, method: str, query: str) -> None:
    r = client.request(method, path, params={"lang": query})
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400 and method != "HEAD":
        assert r.json()["error"]


def test_fuzzed_feedback_file_is_one_json_object_per_line(client: Any, feedback_file: Path) -> None:
    """After the fuzzing above: whatever was recorded (newlines, U+2028, odd text) kept its line."""
    assert (
        client.post("/api/feedback", json={"question": "q\nwith\u2028breaks", "answer": "a\r\n[1]", "rating": "up"}).status_code
        == 201
    )
    lines = feedback_file.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) and r["rating"] in ("up", "down") for r in records)
    assert records[-1]["question"] == "q\nwith\u2028breaks"


# --- the rate limiter ---


@settings(max_examples=200, deadline=None)
@given(per_minute=st.integers(1, 600), gaps=st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=300))
def test_rate_limiter_never_allows_more_than_the_bucket(per_minute: int, gaps: list[float]) -> None:
    limiter, rate = RateLimiter(per_minute), per_minute / 60
    now, allowed = 1000.0, []
    for gap in gaps:
        now += gap
        wait = limiter.take("client", now)
        if wait == 0:
            allowed.append(now)
        else:
            assert 0 < wait <= 1 / rate + 1e-9  # at most the time one token takes to refill
    # between any two allowed requests i <= j: j - i + 1 <= a full bucket + what refilled in between
    best = float("-inf")  # max over i <= j of (rate * t_i - i), kept as j advances
    for j, t in enumerate(allowed):
        best = max(best, rate * t - j)
        assert j + 1 - rate * t + best <= per_minute + 1e-6
    assert RateLimiter(per_minute).take("other", now) == 0  # keys are independent


def test_rate_limiter_retry_after_is_exact_and_memory_is_bounded() -> None:
    limiter = RateLimiter(60, max_keys=100)
    assert all(limiter.take("a", 0.0) == 0 for _ in range(60))
    wait = limiter.take("a", 0.0)
    assert wait == pytest.approx(1.0)
    assert limiter.take("a", wait - 0.01) > 0 and limiter.take("a", wait + 0.02) == 0
    for i in range(10_000):
        limiter.take(f"10.0.{i // 256}.{i % 256}", 1.0 + i / 1000)
        assert len(limiter._buckets) <= 101
