"""The web chat and the widget in a real Chromium (Playwright, Debian's browser, never downloaded):
cited answers, follow-ups, the widget on a site of another origin, and untrusted text (in
questions and in indexed documents) rendered as inert text in both UIs."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    CHROMIUM,
    DESKTOP,
    ROOT,
    WIDGET_FOREIGN_ELEMENTS,
    WebServer,
    chat_ask,
    flat,
    last_answer,
    run_app,
    serve_host_page,
    widget_ask,
)

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

ARTIFACTS = ROOT / "tests" / "artifacts"
PHONE = {"width": 390, "height": 844}
XSS_QUESTION = 'How much did Databricks raise? <img src=x onerror="window.__xss=1"> <script>window.__xss=1</script> ![x](http://127.0.0.1:9/x.png)'
XSS_DOC = """<!doctype html><html><head><title>Zorglub</title></head><body>
<h1>Zorglub Capital</h1>
<p>Zorglub Capital a levé 3 milliards de dollars en 2024 pour ses robots &lt;img src=x onerror="window.__xss=1"&gt; &lt;script&gt;window.__xss=1&lt;/script&gt; ![pixel](http://127.0.0.1:9/doc.png) [clic](javascript:window.__xss=1).</p>
<p>Zorglub Capital raised 3 billion dollars in 2024 for its robots &lt;svg onload="window.__xss=1"&gt; &lt;b&gt;bold&lt;/b&gt; ![tracker](http://127.0.0.1:9/doc2.png) **loud** &lt;img src=x onerror="window.__xss=1"&gt;.</p>
</body></html>
"""
PAYLOADS = ('<img src=x onerror="window.__xss=1">', "![tracker](http://127.0.0.1:9/doc2.png)", "<b>bold</b>", "**loud**")


if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is not installed (make browser)", allow_module_level=True)


@pytest.fixture(scope="module")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def host_site(web_server: WebServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    httpd, url = serve_host_page(tmp_path_factory.mktemp("host"), web_server.url)
    yield url
    httpd.shutdown()


def feedback_lines(server: WebServer) -> int:
    return server.feedback.read_text(encoding="utf-8").count("\n") if server.feedback.exists() else 0


def next_feedback(page: Any, server: WebServer, before: int) -> dict[str, Any]:
    for _ in range(100):
        if feedback_lines(server) > before:
            return dict(json.loads(server.feedback.read_text(encoding="utf-8").splitlines()[-1]))
        page.wait_for_timeout(100)
    raise AssertionError("no feedback line was written")


# --- the Gradio chat ---


def test_chat_answers_with_the_cited_passage(new_page: Any, web_server: WebServer, artifacts: Path) -> None:
    api = httpx.post(web_server.url + "/api/ask", json={"question": "How much did Databricks raise?"}, timeout=60).json()
    for viewport, name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        p = new_page(viewport)
        p.page.goto(web_server.url + "/")
        if name == "desktop":
            p.page.wait_for_selector("#chat")
            p.page.screenshot(path=str(artifacts / "chat-empty-desktop.png"))
        chat_ask(p.page, "How much did Databricks raise?")
        assert "[1]" in last_answer(p.page)
        # the [1] marker opens the first source block, with the answer span highlighted
        p.page.locator("#chat a.cite").first.click()
        first = p.page.locator("#chat .thought-group").first
        first.locator(".content mark").first.wait_for()
        p.page.wait_for_timeout(500)  # the smooth scroll to the passage
        passage = first.locator(".content").inner_text()
        assert " ".join(api["citations"][0]["text"].split())[:60] in " ".join(passage.split())
        assert first.locator(".content mark").count() >= 1
        assert p.page.locator("#chat .thought-group").count() == len(api["citations"])
        p.page.screenshot(path=str(artifacts / f"chat-{name}.png"))
        p.assert_inert(web_server.url)
        assert not p.errors


def test_chat_follow_up_uses_the_history(new_page: Any, web_server: WebServer) -> None:
    p = new_page()
    p.page.goto(web_server.url + "/")
    chat_ask(p.page, "How much did Databricks raise?")
    chat_ask(p.page, "And OpenAI?")
    # the follow-up is read with its history: the OpenAI figure is the answer or, when the bot is
    # unsure, among the passages it shows (answer and sources, collapsed ones included)
    groups = p.page.locator("#chat .thought-group")
    passages = []
    for i in range(max(0, groups.count() - 3), groups.count()):  # the follow-up's sources, opened
        content = groups.nth(i).locator(".content").first
        # a "not sure" answer's quoted ones open by themselves (and may still be opening): click
        # only a group that is collapsed (no content rendered, or content `inert`), and give a
        # click time to take, so a second click never closes a group the first one is opening
        for _ in range(20):
            if content.count() and content.is_visible():
                break
            if not content.count() or content.get_attribute("inert") is not None:
                groups.nth(i).locator(".title").click()
                p.page.wait_for_timeout(1000)
            else:
                p.page.wait_for_timeout(250)
        content.wait_for()
        passages.append(groups.nth(i).locator(".content").inner_text())
    shown = last_answer(p.page) + " " + " ".join(passages)
    assert re.search(r"6[,.]6|\b20\b", shown), shown


def test_chat_like_and_new_chat(new_page: Any, web_server: WebServer) -> None:
    p = new_page()
    p.page.goto(web_server.url + "/")
    chat_ask(p.page, "How much did Databricks raise?")
    before = feedback_lines(web_server)
    p.page.locator("#chat button[aria-label=Like]").last.click()
    record = next_feedback(p.page, web_server, before)
    assert record["origin"] == "web" and record["rating"] == "up" and record["question"] == "How much did Databricks raise?"
    p.page.click("#new-chat")
    p.page.wait_for_function("document.querySelectorAll('#chat .bot-row').length === 0")
    p.page.locator("#chat button.example").first.click()  # the examples are back, and ask when clicked
    p.page.locator("#chat .bot-row:has(.thought-group)").first.wait_for()
    assert p.page.locator("#chat .user-row").count() == 1


def test_chat_question_with_markup_is_inert(new_page: Any, web_server: WebServer, artifacts: Path) -> None:
    p = new_page()
    p.page.goto(web_server.url + "/")
    p.page.fill("#question textarea", XSS_QUESTION)
    p.page.press("#question textarea", "Enter")
    p.page.wait_for_function("document.querySelectorAll('#chat .bot-row').length > 0")
    p.page.wait_for_timeout(1500)
    shown = p.page.locator("#chat .user-row").last.inner_text()
    assert '<img src=x onerror="window.__xss=1">' in shown and "<script>window.__xss=1</script>" in shown
    assert "![x](http://127.0.0.1:9/x.png)" in shown
    assert p.page.locator("#chat img[src=x], #chat script, #chat .message-content img").count() == 0
    p.page.screenshot(path=str(artifacts / "chat-xss-question.png"))
    p.assert_inert(web_server.url)


# --- the widget on another site ---


def test_widget_on_another_origin_answers_with_sources(
    new_page: Any, web_server: WebServer, host_site: str, artifacts: Path
) -> None:
    assert host_site.rsplit(":", 1)[1] != web_server.url.rsplit(":", 1)[1]
    for viewport, name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        p = new_page(viewport)
        p.page.goto(host_site + "/index.html")
        bubble = p.page.locator(".article-chat-widget >> button.bubble")
        assert bubble.get_attribute("aria-expanded") == "false"
        bubble.click()
        assert bubble.get_attribute("aria-expanded") == "true"
        assert p.page.evaluate("document.querySelector('.article-chat-widget').shadowRoot.activeElement.id") == "q"
        widget_ask(p.page, "How much did Databricks raise?")
        answer = p.page.locator(".article-chat-widget >> .msg.bot").last
        assert "[1]" in answer.locator(".text").inner_text()
        sources = answer.locator("details")
        assert sources.count() >= 1
        answer.locator("button.cite").first.click()
        assert sources.first.get_attribute("open") is not None
        assert sources.first.locator("mark").count() >= 1 and sources.first.locator(".passage").inner_text().strip()
        # host page styles do not reach into the widget
        assert (
            p.page.locator(".article-chat-widget >> .send").evaluate("e => getComputedStyle(e).backgroundColor")
            != "rgb(255, 0, 0)"
        )
        p.page.screenshot(path=str(artifacts / f"widget-{name}.png"))
        p.page.keyboard.press("Escape")
        assert p.page.locator(".article-chat-widget >> .panel").is_hidden()
        assert p.page.evaluate("document.querySelector('.article-chat-widget').shadowRoot.activeElement.className") == "bubble"
        p.assert_inert(host_site, web_server.url)
        assert not p.errors


def test_widget_follow_up_and_inline_mode(new_page: Any, web_server: WebServer, artifacts: Path) -> None:
    p = new_page()
    p.page.goto(web_server.url + "/widget/demo")  # the demo page also has an inline instance in #inline-chat
    inline = p.page.locator("#inline-chat .article-chat-widget")
    assert inline.count() == 1
    widget_ask(p.page, "Combien Databricks a-t-elle levé ?", within="#inline-chat .article-chat-widget")
    widget_ask(p.page, "Et OpenAI ?", within="#inline-chat .article-chat-widget")
    last = str(p.page.locator("#inline-chat .article-chat-widget >> .msg.bot").last.text_content())
    assert re.search(r"6[,.]6|\b20\b", last), last  # the answer, or the closest passages when unsure
    p.page.locator("#inline-chat").screenshot(path=str(artifacts / "widget-inline.png"))
    before = feedback_lines(web_server)
    p.page.locator("#inline-chat .article-chat-widget >> .msg.bot .rate button[aria-label]").last.click()
    record = next_feedback(p.page, web_server, before)
    assert record["rating"] == "down" and record["question"] == "Et OpenAI ?" and record["answer"]
    p.assert_inert(web_server.url)


def test_widget_question_with_markup_is_inert(new_page: Any, web_server: WebServer, host_site: str) -> None:
    p = new_page()
    p.page.goto(host_site + "/index.html")
    p.page.locator(".article-chat-widget >> button.bubble").click()
    widget_ask(p.page, XSS_QUESTION)
    shown = p.page.locator(".article-chat-widget >> .msg.user").last.inner_text()
    assert shown == XSS_QUESTION
    assert p.page.evaluate(WIDGET_FOREIGN_ELEMENTS) == 0
    p.assert_inert(host_site, web_server.url)


# --- a document carrying payloads, indexed and served by a second server ---


@pytest.fixture(scope="module")
def xss_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    data = tmp_path_factory.mktemp("xss-data")
    doc = tmp_path_factory.mktemp("xss-doc") / "zorglub.html"
    doc.write_text(XSS_DOC, encoding="utf-8")
    out = run_app("index", str(doc), env={"CHATBOT_DATA_DIR": str(data)}, timeout=300)
    assert out.returncode == 0, out.stderr
    server = WebServer(data, data / "server.log")
    try:
        yield server.wait_ready()
    finally:
        server.stop()


ZORGLUB_Q = "How much did Zorglub Capital raise in 2024?"


@pytest.fixture(scope="module")
def zorglub(xss_server: WebServer) -> dict[str, Any]:
    """The API's answer: the cited passages must show the payloads, literally, in both UIs."""
    obj: dict[str, Any] = httpx.post(xss_server.url + "/api/ask", json={"question": ZORGLUB_Q}, timeout=60).json()
    cited = " ".join(c["text"] for c in obj["citations"])
    assert all(p in cited for p in PAYLOADS), obj
    return obj


def test_document_payloads_are_inert_in_the_chat(
    new_page: Any, xss_server: WebServer, zorglub: dict[str, Any], artifacts: Path
) -> None:
    p = new_page()
    p.page.goto(xss_server.url + "/")
    chat_ask(p.page, ZORGLUB_Q)
    titles = p.page.locator("#chat .thought-group .title")
    for i in range(titles.count()):
        titles.nth(i).click()
    p.page.wait_for_timeout(500)
    shown = flat(p.page.locator("#chat").inner_text())
    assert flat(zorglub["answer"]) in shown
    for c in zorglub["citations"]:
        assert flat(c["text"]) in shown
    assert p.page.locator("#chat .message-content img, #chat .message-content script, #chat .message-content svg").count() == 0
    assert (
        p.page.locator("#chat .message-content a:not(.cite), #chat .message-content b, #chat .message-content strong").count()
        == 0
    )
    p.page.screenshot(path=str(artifacts / "chat-xss-document.png"))
    p.assert_inert(xss_server.url)


def test_document_payloads_are_inert_in_the_widget(
    new_page: Any, xss_server: WebServer, zorglub: dict[str, Any], tmp_path: Path, artifacts: Path
) -> None:
    httpd, host = serve_host_page(tmp_path, xss_server.url)
    try:
        p = new_page()
        p.page.goto(host + "/index.html")
        p.page.locator(".article-chat-widget >> button.bubble").click()
        widget_ask(p.page, ZORGLUB_Q)
        details = p.page.locator(".article-chat-widget >> details")
        for i in range(details.count()):
            details.nth(i).locator("summary").click()
        shown = flat(p.page.locator(".article-chat-widget >> .log").inner_text())
        for c in zorglub["citations"]:
            assert flat(c["text"]) in shown
        assert p.page.evaluate(WIDGET_FOREIGN_ELEMENTS) == 0
        p.page.screenshot(path=str(artifacts / "widget-xss-document.png"))
        p.assert_inert(host, xss_server.url)
    finally:
        httpd.shutdown()


# --- a generating model whose streamed text carries payloads (the project's scripted LLM server) ---


@pytest.fixture(scope="module")
def llm_server(settings: Any, built: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    from tests.fake_llm import FakeLLMServer

    with FakeLLMServer() as llm:
        env = {"CHATBOT_LLM_BASE_URL": llm.url, "CHATBOT_LLM_MODEL": "link", "CHATBOT_LLM_API_KEY": "test"}
        server = WebServer(settings.data_dir, tmp_path_factory.mktemp("llm") / "server.log", env=env)
        try:
            yield server.wait_ready()
        finally:
            server.stop()


def test_generated_payloads_are_inert_while_streaming(
    new_page: Any, llm_server: WebServer, tmp_path: Path, artifacts: Path
) -> None:
    """The deltas show the model's raw text (inert); the final, checked answer replaces them."""
    question = "How much did Databricks raise?"
    final = httpx.post(llm_server.url + "/api/ask", json={"question": question}, timeout=60).json()
    assert "![pixel]" not in final["answer"] and final["notes"]
    p = new_page()
    p.page.goto(llm_server.url + "/")
    chat_ask(p.page, question)
    shown = flat(last_answer(p.page))
    assert shown.startswith(flat(final["answer"])) and shown.endswith(flat(final["notes"][-1]))
    p.page.screenshot(path=str(artifacts / "chat-llm-corrected.png"))
    p.assert_inert(llm_server.url)
    httpd, host = serve_host_page(tmp_path, llm_server.url)
    try:
        w = new_page()
        w.page.goto(host + "/index.html")
        w.page.locator(".article-chat-widget >> button.bubble").click()
        widget_ask(w.page, question)
        shown = w.page.locator(".article-chat-widget >> .msg.bot.done .text").last.inner_text()
        assert flat(shown) == flat(final["answer"])
        assert w.page.locator(".article-chat-widget >> .msg.bot.done .note").last.inner_text() == final["notes"][-1]
        assert w.page.evaluate(WIDGET_FOREIGN_ELEMENTS) == 0
        w.page.screenshot(path=str(artifacts / "widget-llm-corrected.png"))
        w.assert_inert(host, llm_server.url)
    finally:
        httpd.shutdown()
