"""Answers confined to one document of several, in a real Chromium: the widget on two article pages of
another site (one scoped by `data-document`, one by its `<link rel="canonical">` only), an unknown
`data-document`, and the web chat's document picker with `/?doc=ID`.

The index holds four documents (the default French article, an English and a German news page, a
Markdown note); each widget page must answer from its own article only and refuse what only the
other one says."""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    CHROMIUM,
    DESKTOP,
    ROOT,
    WIDGET_FOREIGN_ELEMENTS,
    WebServer,
    chat_ask,
    last_answer,
    run_app,
    screenshots_dir,
    serve_folder,
    served,
    widget_ask,
)

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is not installed (make browser)", allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402  (only with a browser)

ARTICLES = ROOT / "tests" / "data" / "articles"
PAGES = ROOT / "tests" / "data" / "pages"
TELESCOPE = "https://news.example.org/science/kestrel-bay-telescope"
TELESCOPE_TITLE = "Kestrel Bay observatory opens its new radio telescope"
NORDBAHN = "https://www.tagesblatt.example.de/wirtschaft/nordbahn-nachtzuege"
NORDBAHN_TITLE = "Nordbahn streicht Nachtzüge nach Kopenhagen"
DEFAULT_DOC = "ai-investments-2024.fr"
TELESCOPE_Q = "How much did the telescope cost?"
NORDBAHN_Q = "Wie hoch war der Verlust der Nachtzüge?"
WIDGET = ".article-chat-widget"


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    data = tmp_path_factory.mktemp("docs-data")
    env = {"CHATBOT_DATA_DIR": str(data)}
    out = run_app("index", env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    files = [str(ARTICLES / n) for n in ("harbour-telescope.en.html", "zugverkehr-nordbahn.de.html", "orion-fund-notes.md")]
    out = run_app("index", "add", *files, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    server = WebServer(data, data / "server.log")
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def host(docs_server: WebServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo pages on another origin, the widget's script tag pointing at the app; plus a page
    naming a document that is not indexed, and one whose canonical URL no document has."""
    folder = tmp_path_factory.mktemp("host-pages")
    for page in PAGES.glob("*.html"):
        (folder / page.name).write_text(page.read_text(encoding="utf-8").replace("{app_url}", docs_server.url), encoding="utf-8")
    telescope = (folder / "telescope.html").read_text(encoding="utf-8")
    assert f'data-document="{TELESCOPE}"' in telescope
    (folder / "unknown.html").write_text(
        telescope.replace(f'data-document="{TELESCOPE}"', 'data-document="no-such-document"'), encoding="utf-8"
    )
    nordbahn = (folder / "nordbahn.html").read_text(encoding="utf-8")
    assert f'<link rel="canonical" href="{NORDBAHN}">' in nordbahn and "data-document=" not in nordbahn
    (folder / "elsewhere.html").write_text(
        nordbahn.replace(NORDBAHN, "https://elsewhere.example.com/not-indexed"), encoding="utf-8"
    )
    # named by the file it was added from, and by a start that fits two documents
    (folder / "byfile.html").write_text(
        telescope.replace(f'data-document="{TELESCOPE}"', 'data-document="harbour-telescope.en.html"'), encoding="utf-8"
    )
    (folder / "ambiguous.html").write_text(
        telescope.replace(f'data-document="{TELESCOPE}"', 'data-document="https://"'), encoding="utf-8"
    )
    httpd, url = serve_folder(folder)
    yield url
    httpd.shutdown()


@pytest.fixture(scope="module")
def screenshots() -> Path:
    return screenshots_dir()


def assert_readable_labels(labels: list[str], first_words: str = "") -> None:
    """Source labels as people read them: "[n] " and what the passage is, never two alike, no file
    names, section ids or offsets."""
    import re

    assert labels, labels
    texts = [" ".join(t.split()) for t in labels]
    assert len(set(texts)) == len(texts), texts
    for t in texts:
        assert re.match(r"\[\d+\] \S", t), t
        assert not re.search(r"\.html|\.md\b|\.txt|\bmeta\b|\brelated\b|\d+-\d+", t), t
    if first_words:  # in the answer's language
        assert any(t.split("] ", 1)[1].startswith(first_words) for t in texts), texts


def final_event(body: str) -> dict[str, Any]:
    """The `final` answer of a server-sent event stream."""
    for frame in body.replace("\r\n", "\n").split("\n\n"):
        lines = frame.split("\n")
        if "event: final" in lines:
            return dict(json.loads("\n".join(line[5:].lstrip() for line in lines if line.startswith("data:"))))
    raise AssertionError(f"no final event in {body[:500]!r}")


def widget_ask_json(page: Any, question: str, within: str = WIDGET) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ask in the widget; the request body it sent and the final answer it got."""
    with page.expect_response(lambda r: r.url.endswith("/api/ask/stream")) as info:
        widget_ask(page, question, within=within)
    response = info.value
    assert response.status == 200, response.text()
    return dict(response.request.post_data_json), final_event(response.text())


def rendered_sources(page: Any, within: str = WIDGET) -> list[tuple[str | None, str]]:
    """(data-document, summary) of each source of the last answer in the widget."""
    details = page.locator(f"{within} >> .msg.bot.done").last.locator("details")
    return [
        (details.nth(i).get_attribute("data-document"), details.nth(i).locator("summary").inner_text())
        for i in range(details.count())
    ]


# --- the widget ---


def test_widget_scoped_by_data_document(new_page: Any, docs_server: WebServer, host: str, screenshots: Path) -> None:
    p = new_page()
    with p.page.expect_request(lambda r: "/api/messages" in r.url) as messages:
        p.page.goto(host + "/telescope.html")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(messages.value.url).query)
    assert query["document"] == [TELESCOPE] and "page" not in query
    p.page.locator(f"{WIDGET} >> button.bubble").click()
    expect(p.page.locator(f"{WIDGET} >> .welcome")).to_contain_text(TELESCOPE_TITLE)
    assert p.page.locator(f"{WIDGET} >> h2").inner_text() == "Ask this article"
    examples = p.page.locator(f"{WIDGET} >> button.example")
    assert examples.count() >= 2 and "What is the article about?" in examples.all_inner_texts()

    sent, answer = widget_ask_json(p.page, TELESCOPE_Q)
    assert sent["document"] == TELESCOPE and "page" not in sent and sent["question"] == TELESCOPE_Q
    assert served(answer) and "212" in answer["answer"], answer
    assert answer["citations"] and {c["document"] for c in answer["citations"]} == {TELESCOPE}
    assert {c["document_title"] for c in answer["citations"]} == {TELESCOPE_TITLE}
    bot = p.page.locator(f"{WIDGET} >> .msg.bot.done").last
    assert "212" in bot.locator(".text").inner_text() and "refusal" not in str(bot.get_attribute("class"))
    sources = rendered_sources(p.page)
    assert len(sources) == len(answer["citations"])
    assert all(doc == TELESCOPE for doc, _ in sources), sources
    assert_readable_labels([summary for _, summary in sources], "Article, ")
    assert not examples.first.is_visible()  # the examples make way for the conversation
    p.page.screenshot(path=str(screenshots / "widget-telescope.png"))

    # what only the other article says is not answered from here
    sent, answer = widget_ask_json(p.page, NORDBAHN_Q)
    assert sent["document"] == TELESCOPE and len(sent["history"]) == 2
    assert answer["answered"] is False and "7,4" not in answer["answer"], answer
    assert all(c["document"] == TELESCOPE for c in answer["citations"])
    assert "refusal" in str(p.page.locator(f"{WIDGET} >> .msg.bot.done").last.get_attribute("class"))
    assert p.page.evaluate(WIDGET_FOREIGN_ELEMENTS) == 0
    p.assert_inert(host, docs_server.url)
    assert not p.errors


def test_widget_example_question_asks_it(new_page: Any, host: str) -> None:
    p = new_page()
    p.page.goto(host + "/telescope.html")
    p.page.locator(f"{WIDGET} >> button.bubble").click()
    example = p.page.locator(f"{WIDGET} >> button.example").first
    text = example.inner_text()
    with p.page.expect_response(lambda r: r.url.endswith("/api/ask/stream")) as info:
        example.click()
    assert info.value.request.post_data_json["question"] == text
    assert info.value.request.post_data_json["document"] == TELESCOPE
    p.page.locator(f"{WIDGET} >> .msg.bot.done").first.wait_for()
    assert p.page.locator(f"{WIDGET} >> .msg.user").inner_text() == text
    assert all(doc == TELESCOPE for doc, _ in rendered_sources(p.page))
    p.page.locator(f"{WIDGET} >> button.new").click()  # a new chat brings the examples back
    expect(example).to_be_visible()
    assert p.page.locator(f"{WIDGET} >> .msg").count() == 0
    assert not p.errors


def test_widget_scoped_by_canonical_link(new_page: Any, docs_server: WebServer, host: str, screenshots: Path) -> None:
    p = new_page()
    within = f"#leserfragen {WIDGET}"
    with p.page.expect_request(lambda r: "/api/messages" in r.url) as messages:
        p.page.goto(host + "/nordbahn.html")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(messages.value.url).query)
    assert query == {"lang": ["de"], "page": [NORDBAHN]}
    expect(p.page.locator(f"{within} >> .welcome")).to_contain_text(NORDBAHN_TITLE)
    assert p.page.locator(f"{within} >> h2").inner_text() == "Fragen zum Artikel"
    assert p.page.locator(f"{within} >> textarea").get_attribute("placeholder") == "Eine Frage zum Artikel stellen…"

    sent, answer = widget_ask_json(p.page, NORDBAHN_Q, within=within)
    assert sent["document"] == NORDBAHN  # the id /api/messages resolved for the canonical URL
    assert served(answer) and "7,4 Millionen Euro" in answer["answer"], answer
    assert answer["citations"] and {c["document"] for c in answer["citations"]} == {NORDBAHN}
    sources = rendered_sources(p.page, within)
    assert sources and all(doc == NORDBAHN for doc, _ in sources), sources
    assert_readable_labels([summary for _, summary in sources], "Artikel, ")
    assert "7,4 Millionen Euro" in p.page.locator(f"{within} >> .msg.bot.done").last.inner_text()
    p.page.screenshot(path=str(screenshots / "widget-nordbahn.png"))

    # the telescope question on the Nordbahn page: refused, and nothing of the telescope cited
    sent, answer = widget_ask_json(p.page, TELESCOPE_Q, within=within)
    assert sent["document"] == NORDBAHN
    assert answer["answered"] is False and "212" not in answer["answer"], answer
    assert TELESCOPE not in {c["document"] for c in answer["citations"]}
    assert all(doc == NORDBAHN for doc, _ in rendered_sources(p.page, within))
    p.assert_inert(host, docs_server.url)
    assert not p.errors


def test_widget_with_unknown_document_says_so(new_page: Any, host: str) -> None:
    p = new_page()
    with p.page.expect_response(lambda r: "/api/messages" in r.url) as messages:
        p.page.goto(host + "/unknown.html")
    assert messages.value.status == 404
    p.page.locator(f"{WIDGET} >> button.bubble").click()
    welcome = p.page.locator(f"{WIDGET} >> .welcome.scope-error")
    expect(welcome).to_contain_text("no document 'no-such-document'")
    assert p.page.locator(f"{WIDGET} >> textarea").is_disabled()
    assert p.page.locator(f"{WIDGET} >> button.example").count() == 0
    assert p.page.locator("article h1").inner_text() == TELESCOPE_TITLE  # the host page itself is untouched
    assert not p.errors


def test_widget_names_a_document_by_its_file_and_refuses_an_ambiguous_name(new_page: Any, host: str) -> None:
    p = new_page()
    p.page.goto(host + "/byfile.html")
    p.page.locator(f"{WIDGET} >> button.bubble").click()
    expect(p.page.locator(f"{WIDGET} >> .welcome")).to_contain_text(TELESCOPE_TITLE)
    sent, answer = widget_ask_json(p.page, TELESCOPE_Q)
    assert sent["document"] == "harbour-telescope.en.html" and served(answer) and "212" in answer["answer"]
    assert {c["document"] for c in answer["citations"]} == {TELESCOPE}
    q = new_page()
    with q.page.expect_response(lambda r: "/api/messages" in r.url) as messages:
        q.page.goto(host + "/ambiguous.html")
    assert messages.value.status == 422
    q.page.locator(f"{WIDGET} >> button.bubble").click()
    welcome = q.page.locator(f"{WIDGET} >> .welcome.scope-error")
    expect(welcome).to_contain_text("names 2 documents")
    expect(welcome).to_contain_text(NORDBAHN)
    assert q.page.locator(f"{WIDGET} >> textarea").is_disabled()
    assert not p.errors and not q.errors


def test_widget_on_a_page_nobody_indexed_uses_every_document(new_page: Any, host: str) -> None:
    p = new_page()
    within = f"#leserfragen {WIDGET}"
    with p.page.expect_request(lambda r: "/api/messages" in r.url) as messages:
        p.page.goto(host + "/elsewhere.html")
    assert "page=https%3A%2F%2Felsewhere.example.com%2Fnot-indexed" in messages.value.url
    expect(p.page.locator(f"{within} >> .welcome")).to_contain_text("4 indexierten Dokumenten")
    sent, answer = widget_ask_json(p.page, TELESCOPE_Q, within=within)
    assert sent.get("page") == "https://elsewhere.example.com/not-indexed" and "document" not in sent
    assert served(answer) and {c["document"] for c in answer["citations"]} == {TELESCOPE}
    assert not p.errors


# --- the web chat ---


def source_titles(page: Any) -> list[str]:
    """The titles of the last answer's source blocks in the web chat."""
    row = page.locator("#chat .bot-row:has(.thought-group)").last
    return [str(t) for t in row.locator(".thought-group .title").all_inner_texts()]


def test_web_chat_doc_parameter_and_picker(new_page: Any, docs_server: WebServer, screenshots: Path) -> None:
    p = new_page()
    p.page.goto(docs_server.url + "/?doc=" + urllib.parse.quote(TELESCOPE, safe=""))
    picker = p.page.locator("#doc-picker input")
    expect(picker).to_have_value(TELESCOPE_TITLE)
    expect(p.page.locator("#chat .placeholder")).to_contain_text(TELESCOPE_TITLE)
    assert p.page.locator("#title h1").inner_text() == "Ask this article"
    picker.click()
    options = [" ".join(o.split()).lstrip("✓ ") for o in p.page.locator("[role=option]").all_inner_texts()]
    assert options[0] == "All documents" and len(options) == 5, options
    assert {TELESCOPE_TITLE, NORDBAHN_TITLE, "Orion fund notes"} <= set(options)
    p.page.keyboard.press("Escape")

    chat_ask(p.page, TELESCOPE_Q)
    assert "212" in last_answer(p.page)
    titles = source_titles(p.page)
    assert_readable_labels(titles, "Article, ")  # one article in scope: its title is not repeated
    assert not any(TELESCOPE_TITLE in t for t in titles), titles
    p.page.screenshot(path=str(screenshots / "chat-doc-telescope.png"))
    chat_ask(p.page, NORDBAHN_Q)  # the other article's question: not answered from it
    assert "7,4" not in last_answer(p.page)
    assert len(source_titles(p.page)) >= 1

    # another document: a new chat, with that document's words, answering from it
    picker.click()
    p.page.locator("[role=option]", has_text=NORDBAHN_TITLE).click()
    p.page.wait_for_function("document.querySelectorAll('#chat .bot-row').length === 0")
    expect(p.page.locator("#chat .placeholder")).to_contain_text(NORDBAHN_TITLE)
    chat_ask(p.page, NORDBAHN_Q)
    assert "7,4 Millionen Euro" in last_answer(p.page)
    assert_readable_labels(source_titles(p.page), "Artikel, ")  # in the question's language
    assert not p.errors


def test_web_chat_all_documents_and_unknown_doc(new_page: Any, docs_server: WebServer) -> None:
    p = new_page()
    p.page.goto(docs_server.url + "/?doc=no-such-document")
    expect(p.page.locator(".toast-body, [data-testid=toast-body]").first).to_contain_text("no-such-document")
    picker = p.page.locator("#doc-picker input")
    expect(picker).to_have_value("All documents")
    expect(p.page.locator("#chat .placeholder")).to_contain_text("4 indexed documents")
    chat_ask(p.page, TELESCOPE_Q)  # every document: the answer comes from the one that has it
    assert "212" in last_answer(p.page)
    titles = source_titles(p.page)
    assert_readable_labels(titles)
    assert TELESCOPE_TITLE in titles[0], titles  # several documents in scope: each label names its own
    assert not p.errors


def test_single_document_index_has_no_picker(new_page: Any, tmp_path: Path) -> None:
    """The default deployment (one article): no picker, the article's own words."""
    data = tmp_path / "one"
    out = run_app("index", env={"CHATBOT_DATA_DIR": str(data)}, timeout=300)
    assert out.returncode == 0, out.stderr
    server = WebServer(data, tmp_path / "server.log")
    try:
        server.wait_ready()
        p = new_page()
        p.page.goto(server.url + "/?doc=" + DEFAULT_DOC)
        expect(p.page.locator("#chat .placeholder")).to_contain_text("Les investissements en IA augmentent de 62%")
        assert p.page.locator("#doc-picker").is_hidden()
        chat_ask(p.page, "How much did Databricks raise?")
        assert "[1]" in last_answer(p.page)
        p.page.click("#new-chat")  # the article's example questions are back, and ask when clicked
        p.page.wait_for_function("document.querySelectorAll('#chat .bot-row').length === 0")
        example = p.page.locator("#chat button.example").first
        assert "article" in example.inner_text()
        example.click()
        p.page.locator("#chat .bot-row:has(.thought-group)").first.wait_for()
        assert p.page.locator("#chat .user-row").count() == 1
        assert not p.errors
    finally:
        server.stop()


# --- what the screenshots showed: stable width, nothing overlapping on a phone, thumbs up then down ---

PHONE = {"width": 390, "height": 844}
ORION = "orion-fund-notes"
ORION_Q = "How many companies has the Orion fund invested in?"


def box(page: Any, selector: str) -> dict[str, float]:
    return dict(page.locator(selector).first.bounding_box())


def inside(inner: dict[str, float], outer: dict[str, float], margin: float = 2) -> bool:
    return (
        inner["x"] >= outer["x"] + margin
        and inner["y"] >= outer["y"] + margin
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] - margin
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] - margin
    )


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_web_chat_layout_words_and_labels(
    new_page: Any, docs_server: WebServer, screenshots: Path, viewport: dict[str, int]
) -> None:
    name = "desktop" if viewport is DESKTOP else "phone"
    p = new_page(viewport)
    p.page.goto(docs_server.url + "/")  # every document: plural words
    expect(p.page.locator("#question textarea")).to_have_attribute("placeholder", "Ask a question about the documents…")
    p.page.goto(docs_server.url + "/?doc=" + ORION)  # a Markdown note: "document", not "article"
    textarea = p.page.locator("#question textarea")
    expect(textarea).to_have_attribute("placeholder", "Ask a question about the document…")
    width = box(p.page, "#chat")["width"]
    chat_ask(p.page, ORION_Q)
    assert "14" in last_answer(p.page)
    assert_readable_labels(source_titles(p.page), "Document, ")
    assert abs(box(p.page, "#chat")["width"] - width) < 1
    chat_ask(p.page, "Who won the football match on Sunday?")  # a refusal, in the note's words
    refusal = last_answer(p.page)
    assert refusal.startswith(("The document does not", "I can only answer questions about the indexed document,")), refusal
    assert "article" not in refusal
    assert_readable_labels(source_titles(p.page))
    assert abs(box(p.page, "#chat")["width"] - width) < 1  # the box keeps its width whatever it holds
    if viewport is DESKTOP:
        assert width > 0.6 * viewport["width"]
    # the clear button sits inside the chat box, clear of its border and of every message
    p.page.locator("#chat .bubble-wrap, #chat .message-wrap").first.evaluate("e => e.scrollTop = 0")
    trash = box(p.page, "#chat button[aria-label=Clear]")
    assert inside(trash, box(p.page, "#chat")), trash
    bubbles = p.page.locator("#chat .message-row .message")
    for i in range(bubbles.count()):
        assert not overlaps(trash, dict(bubbles.nth(i).bounding_box())), i
    # thumbs up, then down, under every answer (as in the widget)
    ups, downs = p.page.locator("#chat button[aria-label=Like]"), p.page.locator("#chat button[aria-label=Dislike]")
    assert ups.count() == downs.count() == 2
    for i in range(2):
        assert dict(ups.nth(i).bounding_box())["x"] < dict(downs.nth(i).bounding_box())["x"]
    p.page.screenshot(path=str(screenshots / f"chat-{name}.png"))
    assert not p.errors


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_widget_labels_thumbs_and_phone_layout(new_page: Any, host: str, screenshots: Path, viewport: dict[str, int]) -> None:
    name = "desktop" if viewport is DESKTOP else "phone"
    p = new_page(viewport)
    p.page.goto(host + "/telescope.html")
    p.page.locator(f"{WIDGET} >> button.bubble").click()
    widget_ask_json(p.page, TELESCOPE_Q)
    widget_ask_json(p.page, "What did readers say about the telescope?")
    for i in range(p.page.locator(f"{WIDGET} >> .msg.bot.done").count()):
        msg = p.page.locator(f"{WIDGET} >> .msg.bot.done").nth(i)
        summaries = msg.locator("summary").all_inner_texts()
        assert_readable_labels(summaries)
        assert [b.get_attribute("aria-label") for b in msg.locator(".rate button").all()] == ["Helpful", "Not helpful"]
    panel = box(p.page, f"{WIDGET} >> .panel")
    screen = {"x": 0, "y": 0, "width": viewport["width"], "height": viewport["height"]}
    assert inside(panel, screen, margin=0), panel
    header = box(p.page, f"{WIDGET} >> header")
    for part in ("h2", "button.new", "button.close"):
        assert inside(box(p.page, f"{WIDGET} >> header {part}"), header, margin=0), part
    assert not overlaps(box(p.page, f"{WIDGET} >> header button.new"), box(p.page, f"{WIDGET} >> header button.close"))
    p.page.screenshot(path=str(screenshots / f"widget-{name}.png"))
    assert not p.errors
