"""Source labels people can read: what each passage is, in the answer's language, never two alike,
no internal words (section ids, file names) and no offsets outside JSON."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from chatbot.labels import citation_labels, present, scope_variant, scoped_refusal
from chatbot.language import Messages
from chatbot.render import render
from chatbot.schema import Answer, Citation
from tests.conftest import ROOT, run_app

MESSAGES = Messages(ROOT / "prompts" / "messages.json")
TITLE = "Kestrel Bay observatory opens its new radio telescope"
# (kind, section, start, heading, author): the shape index/parse.py gives a news page
LAYOUT = [
    ("headline", "article", 0, TITLE, ""),
    ("byline", "article", 60, TITLE, ""),
    ("paragraph", "article", 100, TITLE, ""),
    ("paragraph", "article", 300, TITLE, ""),
    ("list", "article", 500, "Funding", ""),
    ("paragraph", "article", 700, "Funding", ""),
    ("comment_count", "meta", 900, "", ""),
    ("comment", "comment", 950, "", "MatthewSmith"),
    ("comment", "comment", 1100, "", "AnnaK"),
    ("comment", "comment", 1250, "", "MatthewSmith"),
    ("paragraph", "comment", 1400, "", ""),
    ("related", "related", 1500, "Lighthouse keepers of the radio age", ""),
]


def chunk(kind: str, section: str, start: int, heading: str, author: str, doc: str = "tele") -> Any:
    heading = DOCS[doc]["title"] if heading == TITLE else heading  # before a first subheading: the headline
    meta = {
        "doc_id": doc,
        "kind": kind,
        "section": section,
        "start": start,
        "end": start + 50,
        "heading": heading,
        "author": author,
    }
    return SimpleNamespace(id=f"{doc}-{start}", text=f"Text at {start}.\nSecond line.", meta=meta)


class FakeRetriever:
    """What labels read of a retriever: its documents, the scope's, and a document's chunks."""

    def __init__(self, docs: dict[str, dict[str, Any]], scope: tuple[str, ...] | None = None) -> None:
        self.all_documents = docs
        self.documents = {d: docs[d] for d in scope or tuple(docs)}
        self.chunks = {d: [chunk(*row, doc=d) for row in LAYOUT] for d in docs}

    def document_chunks(self, doc_id: str) -> list[Any]:
        return list(reversed(self.chunks.get(doc_id, [])))  # any order: ranks follow the offsets


DOCS = {
    "tele": {"title": TITLE, "kind": "article", "source": "harbour-telescope.en.html"},
    "notes": {"title": "Orion fund notes", "kind": "note", "source": "orion-fund-notes.md"},
}


def cite(i: int, start: int, doc: str = "tele") -> Citation:
    kind, section, _, heading, author = next(r for r in LAYOUT if r[2] == start)
    heading = DOCS[doc]["title"] if heading == TITLE else heading
    return Citation(
        i, f"Text at {start}.", section, DOCS[doc]["source"], 0.5, start, start + 50, author, heading,
        document=doc, document_title=DOCS[doc]["title"],
    )  # fmt: skip


def labels(starts: list[int], lang: str = "en", retriever: Any = None, doc: str = "tele") -> list[str]:
    r = retriever or FakeRetriever({doc: DOCS[doc]})
    return citation_labels([cite(i + 1, s, doc) for i, s in enumerate(starts)], r, MESSAGES, lang)


def test_each_kind_of_passage_says_what_it_is() -> None:
    assert labels([100, 300, 500, 700]) == [
        "Article, paragraph 1",
        "Article, paragraph 2",
        "Article, “Funding”, paragraph 3",
        "Article, “Funding”, paragraph 4",
    ]
    assert labels([0, 60, 900, 1100, 1400, 1500]) == [
        "Title",
        "Author and date",
        "Number of comments",
        "Reader comment, AnnaK",
        "Reader comment",
        "Related article: Lighthouse keepers of the radio age",
    ]


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("fr", ["Article, paragraphe 2", "Commentaire de lecteur, AnnaK", "Article lié : Lighthouse keepers of the radio age"]),
        ("de", ["Artikel, Absatz 2", "Leserkommentar, AnnaK", "Verwandter Artikel: Lighthouse keepers of the radio age"]),
    ],
)
def test_labels_are_in_the_answers_language(lang: str, expected: list[str]) -> None:
    assert labels([300, 1100, 1500], lang) == expected


def test_two_passages_never_share_a_label() -> None:
    got = labels([950, 1250, 300])
    assert got == ["Reader comment, MatthewSmith (1)", "Reader comment, MatthewSmith (2)", "Article, paragraph 2"]
    for starts in ([r[2] for r in LAYOUT], [1500, 1400, 1250, 950, 900, 100]):
        for lang in ("en", "fr", "de"):
            got = labels(starts, lang)
            assert len(set(got)) == len(got), got


def test_a_note_is_a_document_and_several_documents_are_named() -> None:
    assert labels([300], doc="notes") == ["Document, paragraph 2"]
    both = FakeRetriever(DOCS)
    got = citation_labels([cite(1, 300), cite(2, 300, "notes")], both, MESSAGES, "en")
    assert got == [f"Article, paragraph 2 — {TITLE}", "Document, paragraph 2 — Orion fund notes"]
    # scoped to one document of several: no title needed
    assert citation_labels([cite(1, 300)], FakeRetriever(DOCS, ("tele",)), MESSAGES, "en") == ["Article, paragraph 2"]


def test_labels_hold_no_internal_words() -> None:
    every = labels([r[2] for r in LAYOUT]) + labels([r[2] for r in LAYOUT], "fr") + labels([r[2] for r in LAYOUT], "de")
    for lab in every:
        assert not re.search(r"\bmeta\b|\brelated\b|\bcomment_count\b|\.html|\.md\b|\d+-\d+", lab), lab


def test_refusals_follow_the_scope() -> None:
    assert scope_variant({"a": {"kind": "article"}}) == ""
    assert scope_variant({"n": {"kind": "note"}}) == "_document"
    assert scope_variant({"a": {}, "b": {}}) == "_many"
    offtopic = MESSAGES.get("refusal_offtopic", "en")
    assert scoped_refusal(offtopic, "_document", MESSAGES, "en").endswith("indexed document, and it does not cover this.")
    assert scoped_refusal(offtopic, "_many", MESSAGES, "fr") == offtopic  # another language's sentence: as is
    assert scoped_refusal(MESSAGES.get("refusal_offtopic", "fr"), "_many", MESSAGES, "fr") == MESSAGES.get(
        "refusal_offtopic_many", "fr"
    )
    assert scoped_refusal("$10 billion [1]", "_many", MESSAGES, "en") == "$10 billion [1]"  # not a fixed sentence: as is
    every_key = {
        k for table in json.loads((ROOT / "prompts" / "messages.json").read_text(encoding="utf-8")).values() for k in table
    }
    for lang in ("en", "fr", "de"):  # every variant exists in every language
        table = json.loads((ROOT / "prompts" / "messages.json").read_text(encoding="utf-8"))[lang]
        assert {k for k in every_key if k.startswith(("refusal", "not_found", "unsure", "label_"))} <= set(table), lang


def test_present_labels_and_words_a_refusal_for_the_scope() -> None:
    answer = Answer(
        "q?", MESSAGES.get("refusal_offtopic", "en"), False, "en", [cite(1, 300, "notes"), cite(2, 700, "notes")], status="not_found"
    )
    out = present(answer, FakeRetriever({"notes": DOCS["notes"]}), MESSAGES)
    assert out.answer == MESSAGES.get("refusal_offtopic_document", "en")
    assert [c.label for c in out.citations] == ["Document, paragraph 2", "Document, “Funding”, paragraph 4"]
    assert out.to_dict()["citations"][0]["label"] == "Document, paragraph 2"


def test_plain_output_shows_labels_not_offsets_or_files() -> None:
    answer = Answer(
        "q?", "42 [1]", True, "en", [replace(cite(1, 950), label="Reader comment, MatthewSmith", start=1460, end=2021)]
    )
    out = render(answer, io.StringIO())  # not a terminal: plain
    assert "[1] Reader comment, MatthewSmith" in out
    assert "1460" not in out and "2021" not in out and ".html" not in out and "comment ·" not in out


def test_answers_carry_distinct_labels_everywhere(bot: Any) -> None:
    """The real index: labels in the question's language, distinct, and in --json too."""
    for question, lang in (
        ("Was denken die Leser über die Blase?", "de"),
        ("Combien Databricks a-t-il levé ?", "fr"),
        ("Who wrote the article?", "en"),
    ):
        answer = bot.answer(question)
        got = [c.label for c in answer.citations]
        assert answer.language == lang and all(got) and len(set(got)) == len(got), got
        assert not any(re.search(r"\bmeta\b|\.txt|\brelated\b", lab) for lab in got), got
    out = run_app("ask", "How much did Databricks raise?", env={"CHATBOT_DATA_DIR": str(bot.settings.data_dir)})
    assert out.returncode == 0, out.stderr
    sources = out.stdout.split("Sources", 1)[1]
    assert re.search(r"\[1\] Article, .*paragraph \d+", sources), sources
    assert not re.search(r"· \d+-\d+|\.txt", sources), sources
    out = run_app("ask", "--json", "How much did Databricks raise?", env={"CHATBOT_DATA_DIR": str(bot.settings.data_dir)})
    cited = json.loads(out.stdout)["citations"]
    assert all(c["label"] and isinstance(c["start"], int) for c in cited)
