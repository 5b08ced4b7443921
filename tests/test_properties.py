"""Property tests (hypothesis): the parser, chunker and question validation take any input —
any Unicode, control characters, huge or empty documents — and keep their invariants."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chatbot.core import validate
from chatbot.errors import InvalidQuestion
from chatbot.settings import Settings
from index.chunk import chunk_document, split_sentences
from index.parse import html_to_text, markdown_to_text, parse_file, parse_text

SETTINGS = Settings()
lines = st.lists(
    st.one_of(
        st.text(max_size=300),
        st.sampled_from(
            [
                "commentaires (3)",
                "0/200",
                "0",
                "Article connexe",
                "- item : texte",
                "Crédits image : X (capture d’écran) Texte.",
                "JaneDoe",
                "5 septembre 2025 04:30:34 UTC+02:00",
                "« Citation », a souligné Jean Dupont.",
                "# Titre",
                "",
            ]
        ),
    ),
    max_size=60,
)
fast = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(lines)
@example(["#"])  # found by hypothesis: an empty headline record
def test_parser_invariants(parts: list[str]) -> None:
    doc = parse_text("\n".join(parts), "x.txt", detect_language=False)
    for r in doc.records:
        assert r.text.strip()
        assert doc.text[r.start : r.end] == r.text
        assert r.section in ("article", "comment", "related", "meta")
    assert not any(ch in doc.text for ch in "\x00\x1b\x07")


@fast
@given(st.text(max_size=3000), st.sampled_from(["a.txt", "b.md", "c.html"]))
def test_any_file_text_parses(raw: str, name: str) -> None:
    doc = parse_file(name, raw)
    for r in doc.records:
        assert doc.text[r.start : r.end] == r.text


@fast
@given(st.text(max_size=2000))
def test_flatteners_never_raise(raw: str) -> None:
    assert isinstance(html_to_text(raw), str)
    assert isinstance(markdown_to_text(raw), str)


@fast
@given(lines, st.integers(min_value=80, max_value=1500), st.integers(min_value=32, max_value=512))
def test_chunker_invariants(parts: list[str], max_chars: int, max_tokens: int) -> None:
    doc = parse_text("\n".join(parts), "x.txt", detect_language=False)
    units = chunk_document(doc, "d", max_chars=max_chars, max_tokens=max_tokens)
    ids = [u.id for u in units]
    assert len(ids) == len(set(ids))
    for u in units:
        assert doc.text[u.start : u.end] == u.text
        if u.unit == "chunk":
            assert len(u.embed_text) // 3 <= max_tokens or len(u.text) <= 20


@pytest.mark.slow
def test_huge_document_is_chunked_within_limits() -> None:
    raw = "Titre\n" + "\n".join("Une phrase très longue " * 200 + "." for _ in range(50)) + "\n" + "x" * 200_000
    doc = parse_text(raw, "huge.txt", detect_language=False)
    units = chunk_document(doc, "h", max_chars=1200, max_tokens=480)
    assert units and all(len(u.embed_text) // 3 <= 480 for u in units if u.unit == "chunk")


@given(st.text(max_size=400))
def test_sentence_spans_stay_inside(text: str) -> None:
    for a, b in split_sentences(text):
        assert 0 <= a < b <= len(text)


json_values: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)


@fast
@given(json_values, json_values)
def test_validation_accepts_or_says_why(question: Any, history: Any) -> None:
    try:
        q, turns = validate(question, history, SETTINGS)
    except InvalidQuestion as exc:
        assert str(exc)
        return
    assert isinstance(q, str) and q.strip() and len(q) <= SETTINGS.max_question_chars
    assert all(t.role in ("user", "assistant") for t in turns)


@fast
@given(st.text(min_size=1, max_size=5000))
def test_any_unicode_question_is_validated(question: str) -> None:
    try:
        q, _ = validate(question, [], SETTINGS)
    except InvalidQuestion as exc:
        assert "empty" in str(exc) or "too long" in str(exc)
        assert len(question) > SETTINGS.max_question_chars or not question.strip() or not question.isprintable()
        return
    assert "\x00" not in q and len(q) <= SETTINGS.max_question_chars


def test_lone_surrogates_are_rejected_not_crashing() -> None:
    for q, h in [("\ud800 hello", []), ("hello", [{"role": "user", "content": "x\udfff"}])]:
        with pytest.raises(InvalidQuestion, match="surrogate"):
            validate(q, h, SETTINGS)


def test_html_entities_are_decoded_once() -> None:
    assert "&lt;script&gt;" in html_to_text("<p>&amp;lt;script&amp;gt;</p>")
