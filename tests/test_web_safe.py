"""Untrusted text -> inert Markdown (chatbot/web/safe.py), checked with a CommonMark+GFM parser:
whatever the input, the rendered HTML holds no element but <p>/<br> (and the <mark>/<a> we add),
and its text is the input's text."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from chatbot.schema import Citation
from chatbot.web.safe import answer_markdown, inert, passage_markdown, source_title

MD = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])  # linkify-it is not installed


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def rendered(markdown: str) -> Tags:
    t = Tags()
    t.feed(MD.render(markdown))
    return t


def words(text: str) -> str:
    return " ".join(text.split())


PAYLOADS = [
    '<img src=x onerror="window.__xss=1">',
    "<script>window.__xss=1</script>",
    "![x](http://127.0.0.1:9/x.png)",
    "[click](javascript:alert(1))",
    "<http://127.0.0.1:9/a> www.example.com http://127.0.0.1:9/b a@b.example",
    "**bold** _it_ `code` ~~del~~ $$x^2$$ | a | b |",
    "# title\n\n1. one\n- two\n> quote\n\n    indented code\n\n```\nfence\n```",
    "&lt;b&gt; &amp; &#60;i&#62;",
    "[1]: http://127.0.0.1:9/ref\n[ref][1]",
]


def test_known_payloads_render_as_their_own_text() -> None:
    for payload in PAYLOADS:
        out = rendered(inert(payload))
        assert {tag for tag, _ in out.tags} <= {"p", "br"}, (payload, out.tags)
        assert words("".join(out.text)) == words(payload)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=200))
def test_any_text_renders_as_itself(text: str) -> None:
    out = rendered(inert(text))
    assert {tag for tag, _ in out.tags} <= {"p", "br"}
    clean = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ue000\ue001]", "", text.replace("\r", "\n"))
    assert words("".join(out.text)).replace("\ufffd", "") == words(clean).replace("\ufffd", "")


def test_markers_link_to_cited_passages_only() -> None:
    out = rendered(answer_markdown("10 milliards [1] et [7] <b>[2]</b>", turn=3, ids={1, 2}))
    links = [attrs["href"] for tag, attrs in out.tags if tag == "a"]
    assert links == ["#src-3-1", "#src-3-2"]
    assert {tag for tag, _ in out.tags} <= {"p", "a"}
    assert words("".join(out.text)) == "10 milliards [1] et [7] <b>[2]</b>"


def test_passage_highlight_and_title() -> None:
    text = "Avant <img src=x> la somme de 10 milliards\n\nde dollars ![i](http://127.0.0.1:9/i.png) après."
    a, b = text.index("10 milliards"), text.index(" ![")
    c = Citation(1, text, "article", "doc.html", 0.5, 0, len(text), heading="<b>Titre</b> " + "x" * 200, highlight=(a, b))
    out = rendered(passage_markdown(c))
    assert [tag for tag, _ in out.tags if tag not in ("p", "br")] == ["mark", "mark"]  # one per paragraph
    assert words("".join(out.text)) == words(text)
    title = rendered(source_title(c, turn=0))
    assert [(tag, attrs.get("id")) for tag, attrs in title.tags if tag != "p"] == [("span", "src-0-1")]
    assert "".join(title.text).startswith("[1] <b>Titre</b> xxx") and "…" in "".join(title.text)  # no label: the heading
    title = rendered(source_title(replace(c, label="Article, “<i>Titre</i>”, paragraph 4"), turn=0))
    assert "".join(title.text).strip() == "[1] Article, “<i>Titre</i>”, paragraph 4"
