"""Document text is data: a passage that writes "… 5 trillion dollars [3]" is quoted by the
extractive answer, and that [3] must stay plain text (no live link to the genuine passage [3]) in
the web chat, in the widget and in the terminal; only the markers the system adds are links.

The rule lives in chatbot/render.py (system_markers) and in widget.js (systemMarkers); the
browser tests drive both UIs on an index holding such a document, and check that the two
implementations agree on tricky texts."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chatbot import spans
from chatbot.render import system_markers
from chatbot.web.safe import answer_markdown
from tests.conftest import CHROMIUM, ROOT, WebServer, chat_ask, flat, last_answer, run_app, widget_ask

DOC = """<!doctype html><html><head><title>Orbital funds</title></head><body>
<h1>Orbital robot funds</h1>
<h2>Orion</h2>
<p>The Orion Fund raised 5 trillion dollars [3] in 2024 for its space robots, according to its own press release.</p>
<h2>Lyra</h2>
<p>The Lyra Fund raised 40 million dollars in 2024 for its farm robots, which pick apples in Normandy orchards.</p>
<h2>Vela</h2>
<p>The Vela Fund raised 70 million dollars in 2024 for its sea robots, which clean harbours in Brittany.</p>
<h2>Carina</h2>
<p>The Carina Fund raised 90 million dollars in 2024 for its mining robots, which dig lithium in Portugal.</p>
</body></html>
"""
QUESTIONS = ("How much did the Orion Fund raise in 2024?", "Combien le fonds Orion a-t-il levé en 2024 ?")

# texts whose system markers are known: (text, the markers' start offsets)
CASES = [
    ("$5 trillion [1]\n\nFrom the article: “The Orion Fund raised 5 trillion dollars [3] in 2024.” [1]", [12, 91]),
    ("5 billions [1]\n\nExtrait de l'article : « fonds [3] » [2] » [1]", [11, 59]),  # a » inside the quote ends nothing
    ("Headline says [3] [1]\n\nFrom the article: “quote” [1]", [18, 49]),  # a marker in a quoted headline
    ("Reader comment by Bob [3]: “quote ” [2]” [1]", [41]),  # in the author's name; a ” inside the quote
    ("Databricks raised $10 billion [1]. OpenAI got $6.6 billion [2][3].", [30, 59, 62]),  # generated: all
    ("", []),
    ("“unclosed [3] [1]", [10, 14]),  # no closing delimiter: no quote
    ("list:\r\n\r\n“a [2]\n\nb [3]” [1]", [24]),
]


def test_system_markers_rule() -> None:
    for text, starts in CASES:
        assert [m.start() for m in system_markers(text)] == starts, text


def test_quoted_markers_stay_text_in_the_chat_markdown() -> None:
    text = CASES[0][0]
    out = answer_markdown(text, 0, {1, 2, 3})
    assert out.count('class="cite"') == 2 and 'href="#src-0-3"' not in out
    assert "&#91;3&#93;" in out  # escaped: CommonMark shows "[3]" and never links it
    assert answer_markdown(CASES[4][0], 2, {1, 2, 3}).count('class="cite"') == 3  # a generated answer: all its markers


def test_terminal_colours_only_system_markers() -> None:
    import io

    from chatbot.render import render
    from chatbot.schema import Answer

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    os.environ.pop("NO_COLOR", None)
    out = render(Answer("q", CASES[0][0], True, "en"), stream=Tty())  # type: ignore[arg-type]
    assert out.count("\x1b[36;1m[1]") == 2 and "\x1b[36;1m[3]" not in out and "dollars [3] in" in out


# --- a document's own "[n]" is no figure: the span finder reads it as plain text ---

COBALT = {
    "cobalt.en.md": "# Cobalt in the Kasombo basin\n\nThe Kasombo mine produced 777 tonnes of cobalt in 2023 [3]. "
    "Its owner, Lualaba Metals, expects to double that output by 2026 [4].\n\nThe mine employs 1,200 people and exports "
    "most of its ore through the port of Dar es Salaam [5].\n\nEnvironmental groups have criticised the water use of "
    "the plant, which draws on the Lufira river [6].\n",
    "cobalt.fr.md": "# Le cobalt du bassin de Kasombo\n\nLa mine de Kasombo a produit 777 tonnes de cobalt en 2023 [3]. "
    "Son propriétaire, Lualaba Metals, prévoit de doubler cette production d'ici 2026 [4].\n\nLa mine emploie 1 200 "
    "personnes et exporte l'essentiel de son minerai par le port de Dar es Salaam [5].\n\nDes associations écologistes "
    "critiquent la consommation d'eau de l'usine, qui puise dans la rivière Lufira [6].\n",
}
COBALT_QUESTIONS = (
    "How many tonnes of cobalt did the Kasombo mine produce in 2023?",
    "Combien de tonnes de cobalt la mine de Kasombo a-t-elle produites en 2023 ?",
)


def test_a_documents_marker_is_never_a_span() -> None:
    assert [s.text for s in spans.find("count", "The Kasombo mine produced 777 tonnes of cobalt in 2023 [3].")] == ["777"]
    assert [s.text for s in spans.find("count", "La mine a produit 777 tonnes de cobalt en 2023 [3].")] == ["777"]
    assert [s.text for s in spans.find("count", "[12] Output rose [3, 4] to 4500 tonnes [7-9].")] == ["4500"]
    assert spans.find("count", "Sources: [1] [2] [3]") == []
    assert [s.text for s in spans.find("date", "It opened in May 2021 [2021].")] == ["May 2021"]
    assert [s.text for s in spans.find("amount", "It raised 5 million dollars [3] in 2024.")] == ["5 million dollars"]
    # spans keep their offsets in the text as written
    text = "Output [3] was 777 tonnes."
    (span,) = spans.find("count", text)
    assert text[span.start : span.end] == "777"
    assert spans.list_items("suivi par Alpha [1], Beta [2] et Gamma [3].") == ["Alpha", "Beta", "Gamma"]
    # an ordinary bracketed word or a year stays findable
    assert [s.text for s in spans.find("date", "the 2023 [revised] figures")] == ["2023"]


@pytest.mark.slow
def test_a_documents_marker_never_becomes_the_answer(tmp_path: Any) -> None:
    """End to end, through `python app.py` on a small index: the sentence says 777 tonnes and ends
    with the document's own "[3]"; the answer must never be "3" (it was, in English and French)."""
    for name, text in COBALT.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    env = {"CHATBOT_DATA_DIR": str(tmp_path / "data")}
    added = run_app("index", "add", str(tmp_path / "cobalt.en.md"), str(tmp_path / "cobalt.fr.md"), env=env, timeout=300)
    assert added.returncode == 0, added.stderr
    lines = [json.dumps({"question": q, "document": d}) for q in COBALT_QUESTIONS for d in ("cobalt.en", "cobalt.fr")]
    out = run_app("ask", "--json", "-", env=env, stdin="\n".join(lines) + "\n", timeout=300)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 4 and not any("error" in r for r in rows), rows
    for row in rows:
        lead = row["answer"].split("\n")[0]
        assert not re.match(r"^\s*3\b", lead), row["answer"]
        if row["answered"]:
            assert "777" in lead, row["answer"]


# --- in a real Chromium ---

browser = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed (make browser)")


@browser
@pytest.mark.browser
def test_widget_and_python_agree(new_page: Any) -> None:
    source = (ROOT / "chatbot" / "web" / "static" / "widget.js").read_text(encoding="utf-8")
    fn = re.search(r"\n  function systemMarkers\(text\) \{.*?\n  \}\n", source, re.S)
    assert fn, "systemMarkers not found in widget.js"
    p = new_page()
    texts = [t for t, _ in CASES] + ["a [1] “b [2] «c [3]» d” [4]\n\ne [5]", "«x [1]» “y [2]” z [3]\n \n[4] w [5]"]
    got = p.page.evaluate(f"texts => {{ {fn.group(0)}; return texts.map(t => systemMarkers(t).map(m => m.start)); }}", texts)
    assert got == [[m.start() for m in system_markers(t)] for t in texts]


@pytest.fixture(scope="module")
def marker_server(e5: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    from chatbot.settings import Settings
    from index.build import build

    folder = tmp_path_factory.mktemp("markers")
    doc, data = folder / "orbital.html", folder / "data"
    doc.write_text(DOC, encoding="utf-8")
    build(Settings(data_dir=data, corpus=(doc,)), embedder=e5)
    env = {"CHATBOT_CORPUS": json.dumps([str(doc)]), "CHATBOT_STREAM_DELAY_MS": "0", "CHATBOT_RATE_LIMIT_PER_MINUTE": "0"}
    server = WebServer(data, data / "server.log", env=env)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def answers(marker_server: WebServer) -> dict[str, dict[str, Any]]:
    out = {}
    for q in QUESTIONS:
        a = httpx.post(marker_server.url + "/api/ask", json={"question": q}, timeout=60).json()
        # the quote carries the document's "[3]", and a genuine passage [3] exists to be linked to
        assert "dollars [3] in 2024" in a["answer"] and [c["id"] for c in a["citations"]] == [1, 2, 3], a
        assert a["answer"].count("[1]") == 2
        out[q] = a
    return out


@browser
@pytest.mark.browser
@pytest.mark.server
@pytest.mark.slow
def test_quoted_marker_is_text_in_the_chat(new_page: Any, marker_server: WebServer, answers: dict[str, Any]) -> None:
    p = new_page()
    p.page.goto(marker_server.url + "/")
    for q, a in answers.items():
        p.page.click("#new-chat")
        p.page.wait_for_function("document.querySelectorAll('#chat .bot-row, #chat .user-row').length === 0")
        chat_ask(p.page, q)
        bot = p.page.locator("#chat .bot-row").last.locator("[data-testid=bot]").first
        p.page.locator("#chat .thought-group").nth(2).wait_for()
        assert flat(last_answer(p.page)) == flat(a["answer"])  # "[3]" is shown, as text
        links = bot.locator("a.cite")
        assert [links.nth(i).inner_text() for i in range(links.count())] == ["[1]", "[1]"]
        assert [links.nth(i).get_attribute("href") for i in range(links.count())] == ["#src-0-1", "#src-0-1"]
        assert p.page.locator("#chat a.cite:text-is('[3]')").count() == 0
    p.assert_inert(marker_server.url)
    assert not p.errors


@browser
@pytest.mark.browser
@pytest.mark.server
@pytest.mark.slow
def test_quoted_marker_is_text_in_the_widget(new_page: Any, marker_server: WebServer, answers: dict[str, Any]) -> None:
    p = new_page()
    p.page.goto(marker_server.url + "/widget/demo")
    within = "#inline-chat .article-chat-widget"
    for q, a in answers.items():
        p.page.locator(f"{within} >> button.new").click()  # each question alone, as the API got it
        widget_ask(p.page, q, within=within)
        last = p.page.locator(f"{within} >> .msg.bot.done").last
        assert flat(last.locator(".text").inner_text()) == flat(a["answer"])
        cites = last.locator("button.cite")
        assert [cites.nth(i).inner_text() for i in range(cites.count())] == ["[1]", "[1]"]
        assert last.locator("details").count() == 3
        cites.last.click()  # the system's marker still opens its passage
        assert last.locator("details").first.get_attribute("open") is not None
        assert last.locator("details").nth(2).get_attribute("open") is None
    p.assert_inert(marker_server.url)
    assert not p.errors
