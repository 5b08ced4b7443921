"""Every payload of tests/data/xss_payloads.txt through both UIs in a real Chromium: sent as
questions, and indexed inside documents (.html and .md) then retrieved as cited passages, in the
web chat and in the widget on a site of another origin. Nothing may run (window.__xss stays
undefined, no dialog opens), nothing may be fetched from anywhere but the app and the host page,
and the text must show literally.

Simplifies: payloads travel in batches (one question holds six; one paragraph holds six and is
retrieved by naming its fund), and each question starts a new chat, so the expected answer is
exactly the API's answer to the same question, fetched first.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CHROMIUM, ROOT, WIDGET_FOREIGN_ELEMENTS, WebServer, flat, last_answer, serve_host_page, widget_ask

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is not installed (make browser)", allow_module_level=True)

PAYLOAD_FILE = ROOT / "tests" / "data" / "xss_payloads.txt"
BATCH = 6
NAMES = (  # one fund per paragraph, each named once in the corpus
    "Aldebaran",
    "Betelgeuse",
    "Capella",
    "Deneb",
    "Elnath",
    "Fomalhaut",
    "Gacrux",
    "Hadar",
    "Izar",
    "Kochab",
    "Lesath",
    "Mirfak",
    "Nunki",
    "Pollux",
    "Rigel",
    "Sirius",
    "Thuban",
    "Unukalhai",
    "Vega",
    "Wezen",
    "Zaurak",
    "Alcor",
    "Bellatrix",
    "Canopus",
    "Diphda",
    "Enif",
    "Mizar",
    "Naos",
    "Polaris",
    "Regulus",
    "Spica",
    "Tarazed",
)


def load_payloads() -> list[str]:
    lines = PAYLOAD_FILE.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("# ")]


PAYLOADS = load_payloads()
BATCHES = [PAYLOADS[i : i + BATCH] for i in range(0, len(PAYLOADS), BATCH)]


def test_the_corpus_is_large_and_distinct() -> None:
    assert len(PAYLOADS) >= 50 and len(set(PAYLOADS)) == len(PAYLOADS)
    assert len(BATCHES) * 2 <= len(NAMES)
    assert all(len(" ".join(b)) <= 2000 for b in BATCHES)  # each batch fits in one question


@pytest.fixture(scope="module")
def corpus_server(e5: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """An index of two documents holding every payload (escaped in HTML, so the page's text is
    the payload; raw in Markdown), served with no typing delay and no rate limit."""
    from chatbot.settings import Settings
    from index.build import build

    docs = tmp_path_factory.mktemp("xss-corpus")
    paragraphs_html, paragraphs_md = [], []
    for i, batch in enumerate(BATCHES):
        paragraphs_html.append(
            f"<p>The {NAMES[2 * i]} Fund raised {10 + i} million dollars in 2024 for its robots: {html.escape(' '.join(batch))}.</p>"
        )
        paragraphs_md.append(
            f"The {NAMES[2 * i + 1]} Trust raised {50 + i} million euros in 2024 for its robots: {' '.join(batch)}.\n"
        )
    page, md = docs / "funds.html", docs / "trusts.md"
    page.write_text(
        "<!doctype html><html><head><title>Funds</title></head><body><h1>Robot funds</h1>\n"
        + "\n".join(paragraphs_html)
        + "\n</body></html>",
        encoding="utf-8",
    )
    md.write_text("# Robot trusts\n\n" + "\n".join(paragraphs_md), encoding="utf-8")
    data = docs / "data"
    build(Settings(data_dir=data, corpus=(page, md)), embedder=e5)
    env = {
        "CHATBOT_CORPUS": json.dumps([str(page), str(md)]),
        "CHATBOT_STREAM_DELAY_MS": "0",
        "CHATBOT_RATE_LIMIT_PER_MINUTE": "0",
    }
    server = WebServer(data, data / "server.log", env=env)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def expected(corpus_server: WebServer) -> dict[str, dict[str, Any]]:
    """Each question and the API's answer: the payload batches as questions, and one question per
    paragraph that must cite it (so every payload reaches both UIs as a passage too)."""
    questions = [" ".join(batch) for batch in BATCHES]
    for i in range(len(BATCHES)):
        questions += [
            f"How much did the {NAMES[2 * i]} Fund raise in 2024?",
            f"How much did the {NAMES[2 * i + 1]} Trust raise in 2024?",
        ]
    answers: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=corpus_server.url, timeout=60) as client:
        for q in questions:
            r = client.post("/api/ask", json={"question": q})
            assert r.status_code == 200, r.text
            answers[q] = r.json()
    for q in questions[len(BATCHES) :]:
        name = q.split()[4]
        assert any(name in c["text"] for c in answers[q]["citations"]), (q, answers[q])
    return answers


def report(capsys: pytest.CaptureFixture[str], where: str, expected: dict[str, Any]) -> None:
    with capsys.disabled():
        print(
            f"\n{where}: {len(PAYLOADS)} payloads tried, as {len(BATCHES)} questions and in {2 * len(BATCHES)} cited paragraphs ({len(expected)} asks)"
        )


def test_payloads_are_inert_in_the_chat(
    new_page: Any, corpus_server: WebServer, expected: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    p = new_page()
    p.page.set_default_timeout(90_000)  # many questions in one page: a busy CI host lagged past 30 s once
    p.page.goto(corpus_server.url + "/")

    def ask(question: str, answer: dict[str, Any], retry: bool = True) -> str | None:
        """Ask in a new chat, check what must hold on every render; the first source not shown, if any."""
        p.page.click("#new-chat")
        p.page.wait_for_function("document.querySelectorAll('#chat .bot-row, #chat .user-row').length === 0")
        p.page.fill("#question textarea", question)
        p.page.press("#question textarea", "Enter")
        n = len(answer["citations"])
        if n:  # sources appear with the final render only
            try:
                p.page.wait_for_function(f"document.querySelectorAll('#chat .thought-group').length === {n}")
            except PlaywrightTimeout:
                # twice in full-suite runs (never alone, nor with the CPU saturated) the final render
                # never came; say what was on screen, then ask once more in a new chat
                shown = p.page.evaluate("document.querySelectorAll('#chat .thought-group').length")
                with capsys.disabled():
                    print(f"\nno final render of {question[:60]!r} ({shown} of {n} sources): {flat(p.page.locator('#chat').inner_text())[:400]!r}")
                if not retry:
                    raise
                return ask(question, answer, retry=False)
        else:
            script = "a => { const b = document.querySelector('#chat .bot-row [data-testid=bot]'); return !!b && b.innerText.split(/\\s+/).join(' ').trim() === a; }"
            p.page.wait_for_function(script, arg=flat(answer["answer"]))
        titles = p.page.locator("#chat .thought-group .title")
        for i in range(titles.count()):
            titles.nth(i).click()
        p.assert_inert(corpus_server.url)  # first: did anything run or load?
        assert flat(question) in flat(p.page.locator("#chat .user-row").last.inner_text())
        assert flat(last_answer(p.page)) == flat(answer["answer"])
        # the expanded sources render after the clicks: wait for them (a busy machine lags) before reading
        cited = [flat(c["text"]) for c in answer["citations"]]
        script = "ts => { const s = document.querySelector('#chat').innerText.split(/\\s+/).join(' '); return ts.every(t => s.includes(t)); }"
        try:
            p.page.wait_for_function(script, arg=cited, timeout=15_000)
        except Exception:  # reported below
            pass
        shown = flat(p.page.locator("#chat").inner_text())
        return next((c["text"] for c in answer["citations"] if flat(c["text"]) not in shown), None)

    for question, answer in expected.items():
        missing = ask(question, answer)
        if missing is not None:
            # seen twice under two test workers: the same refusal, with other "may be relevant"
            # passages than the API gave for the same question (cause not found yet); every render
            # was still checked inert. A second miss fails.
            with capsys.disabled():
                print(f"\nweb chat: sources differ from the API's once, asking again: {question[:60]!r}")
            missing = ask(question, answer)
        assert missing is None, missing
        assert (
            p.page.locator(
                "#chat .message-content :is(img, script, svg, iframe, object, embed, style, a:not(.cite), form, input)"
            ).count()
            == 0
        )
    assert not p.errors
    report(capsys, "web chat", expected)


TOAST_FOREIGN = "[data-testid=toast-text] *"  # the message: text only, no element at all


def test_payloads_in_the_url_are_text_in_the_warning_toast(
    new_page: Any, corpus_server: WebServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`/?doc=PAYLOAD` names no document: the chat warns in a toast that quotes the name. Gradio
    renders a toast's message as (sanitized) HTML, so `<a href=…>Session expired</a>` was a live
    link on our page, `<img>` fetched, forms and styles rendered. Every payload must show as the
    exact text typed, with no element of its own and nothing fetched."""
    from urllib.parse import quote

    p = new_page()
    shown = 0
    for payload in PAYLOADS:
        name = payload.strip()
        p.page.goto(f"{corpus_server.url}/?doc={quote(name, safe='')}")
        toast = p.page.locator("[data-testid=toast-text]").first
        toast.wait_for()
        p.assert_inert(corpus_server.url)
        text = flat(toast.inner_text())
        assert flat(repr(name[:200])) in text, (payload, text)  # the message quotes the name with repr()
        assert p.page.locator(TOAST_FOREIGN).count() == 0, (payload, toast.inner_html())
        assert p.page.locator("a[href*='evil.example'], form, input[type=password]").count() == 0, payload
        shown += 1
    assert not p.errors, p.errors
    with capsys.disabled():
        print(f"\nwarning toast: {shown} payloads in /?doc= shown as text, none rendered, nothing fetched")


def test_payloads_are_inert_in_the_widget(
    new_page: Any, corpus_server: WebServer, expected: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    httpd, host = serve_host_page(tmp_path, corpus_server.url)
    try:
        p = new_page()
        p.page.goto(host + "/index.html")
        p.page.locator(".article-chat-widget >> button.bubble").click()
        for question, answer in expected.items():
            p.page.locator(".article-chat-widget >> button.new").click()
            widget_ask(p.page, question)
            last = p.page.locator(".article-chat-widget >> .msg.bot.done").last
            details = last.locator("details")
            for i in range(details.count()):  # open each (a "not sure" answer's quoted ones already are)
                if details.nth(i).get_attribute("open") is None:
                    details.nth(i).locator("summary").click()
            p.assert_inert(host, corpus_server.url)  # first: did anything run or load?
            assert p.page.locator(".article-chat-widget >> .msg.user").last.inner_text() == question.strip()
            assert flat(last.locator(".text").inner_text()) == flat(answer["answer"])
            assert details.count() == len(answer["citations"])
            for i in range(details.count()):
                assert flat(details.nth(i).locator(".passage").inner_text()) == flat(answer["citations"][i]["text"])
            assert p.page.evaluate(WIDGET_FOREIGN_ELEMENTS) == 0
        assert not p.errors
        report(capsys, "widget", expected)
    finally:
        httpd.shutdown()  # type: ignore[attr-defined]
