"""Documents as first-class things: ids and metadata, adding and removing one document at a time,
and answers confined to a scope of documents (retrieval, the refusal test and follow-ups)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from chatbot.errors import UnknownDocument
from chatbot.settings import Settings
from index import build as build_mod
from index import store
from tests.conftest import ROOT, WebServer, run_app, served

pytestmark = pytest.mark.slow
ARTICLES = ROOT / "tests" / "data" / "articles"
DEFAULT = "ai-investments-2024.fr"
TELESCOPE = "https://news.example.org/science/kestrel-bay-telescope"
NORDBAHN = "https://www.tagesblatt.example.de/wirtschaft/nordbahn-nachtzuege"
ORION = "orion-fund-notes"
# one question per document that only that document answers, in three languages
ONLY = {
    DEFAULT: "Combien Databricks a-t-il levé ?",
    TELESCOPE: "Who is the director of the observatory?",
    NORDBAHN: "Wie hoch war der Verlust der Nordbahn-Nachtzüge?",
    ORION: "How many companies has the Orion fund invested in?",
}
EXPECTED = {DEFAULT: "10 milliards", TELESCOPE: "Ingrid Solberg", NORDBAHN: "7,4 Millionen", ORION: "14"}


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory, e5: object) -> Settings:
    """The default article, two HTML news pages (English, German) and a Markdown note."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("multi") / "d")
    build_mod.build(settings, embedder=e5)
    build_mod.build(settings, [ARTICLES], embedder=e5)
    return settings


@pytest.fixture(scope="module")
def mbot(multi: Settings, e5: object) -> Any:
    from chatbot.core import Chatbot

    return Chatbot(multi, embedder=e5)


def test_documents_have_stable_ids_and_their_metadata(mbot: Any) -> None:
    docs = {d["id"]: d for d in mbot.documents()}
    assert set(docs) == {DEFAULT, TELESCOPE, NORDBAHN, ORION}  # canonical URL for pages, else the file stem
    tele = docs[TELESCOPE]
    assert (tele["title"], tele["author"], tele["date"], tele["language"]) == (
        "Kestrel Bay observatory opens its new radio telescope",
        "Maya Lindqvist",
        "2025-03-14",
        "en",
    )
    assert docs[NORDBAHN]["language"] == "de" and docs[DEFAULT]["language"] == "fr"
    assert all(d["units"] > 0 for d in docs.values())
    # trafilatura kept the page's reader comments, and the parser found them
    comments = [c for c in mbot.retriever.chunks.values() if c.meta["doc_id"] == TELESCOPE and c.meta["section"] == "comment"]
    assert any("lighthouse path" in c.text for c in comments), [c.text for c in comments]
    assert not any(c.text.strip() == "Home" for c in mbot.retriever.chunks.values())  # the page's navigation is not text


@pytest.mark.parametrize("asked", list(ONLY))
def test_scoped_answers_never_quote_another_document(mbot: Any, asked: str) -> None:
    """Over every pair: a question only `asked` answers is refused in any other scope and quotes
    nothing outside the scope; in its own scope it is answered from its document."""
    question = ONLY[asked]
    for scope in ONLY:
        answer = mbot.scoped(scope).answer(question)
        assert {c.document for c in answer.citations} <= {scope}, (scope, answer.answer)
        if scope == asked:
            assert served(answer) and EXPECTED[asked] in answer.answer, answer.answer
        else:
            assert not answer.answered and EXPECTED[asked] not in answer.answer, (scope, answer.answer)


def test_scope_by_several_ids_and_by_page_url(mbot: Any) -> None:
    both = mbot.scoped([TELESCOPE, ORION])
    assert set(both.scope) == {TELESCOPE, ORION}
    assert {c.document for c in both.answer(ONLY[ORION]).citations} <= {TELESCOPE, ORION}
    # a page URL finds its document whatever the scheme, "www." or trailing slash
    assert mbot.scoped("http://tagesblatt.example.de/wirtschaft/nordbahn-nachtzuege/").scope == (NORDBAHN,)
    assert mbot.scoped(None) is mbot and mbot.scoped(list(ONLY)) is mbot
    with pytest.raises(UnknownDocument, match="no document"):
        mbot.scoped("https://elsewhere.example/x")


def test_follow_ups_stay_in_scope(mbot: Any) -> None:
    """A follow-up is resolved against the conversation, then retrieved and checked in the scope only,
    even when the conversation was about another document."""
    first = mbot.scoped(TELESCOPE).answer("How much did the telescope cost?")
    history = [{"role": "user", "content": "How much did the telescope cost?"}, {"role": "assistant", "content": first.answer}]
    for scope in (TELESCOPE, ORION, NORDBAHN):
        follow = mbot.scoped(scope).answer("And who paid for it?", history)
        assert follow.resolved_question and {c.document for c in follow.citations} <= {scope}, follow.answer


def test_unscoped_quotes_name_their_document(mbot: Any) -> None:
    answer = mbot.answer(ONLY[ORION])
    assert served(answer) and "From “Orion fund notes”" in answer.answer
    scoped = mbot.scoped(ORION).answer(ONLY[ORION])
    assert "From the document" in scoped.answer  # a Markdown note is a document, not an article


def test_adding_a_document_touches_only_its_own_units(fresh_settings: Settings, e5: object) -> None:
    base = build_mod.build(fresh_settings, embedder=e5)
    client = store.make_client(fresh_settings)
    (record,) = store.document_records(client, base.info.collection, base.info.keys)
    added = build_mod.build(fresh_settings, [ARTICLES / "orion-fund-notes.md"], embedder=e5)
    assert added.added == ["orion-fund-notes.md"] and added.documents == 2
    orion_units = dict(added.info.documents)[ORION]
    assert added.embedded == store.document_records(client, added.info.collection, [orion_units])[0]["meta"]["units"]  # only its units
    assert dict(added.info.documents)[DEFAULT] == base.info.keys[0]  # the article was not rewritten
    (again,) = store.document_records(client, base.info.collection, base.info.keys)
    assert again["meta"]["added_at"] == record["meta"]["added_at"]
    assert added.info.units == base.info.units + added.embedded


def test_remove_then_add_again(fresh_settings: Settings, e5: object) -> None:
    from chatbot.core import Chatbot

    build_mod.build(fresh_settings, [ARTICLES / "orion-fund-notes.md"], embedder=e5)
    assert served(Chatbot(fresh_settings, embedder=e5).answer(ONLY[ORION]))
    kept = fresh_settings.data_dir / "documents"
    assert [p.name for p in kept.iterdir() if p.name.endswith("orion-fund-notes.md")]
    report = build_mod.remove_documents(fresh_settings, [ORION])
    assert report.removed == [ORION] and report.documents == 1
    bot = Chatbot(fresh_settings, embedder=e5)
    answer = bot.answer(ONLY[ORION])
    assert not answer.answered and all(c.document == DEFAULT for c in answer.citations)
    with pytest.raises(UnknownDocument):
        bot.scoped(ORION)
    assert not [p for p in kept.iterdir() if "orion" in p.name]  # its kept copy went too: no build brings it back
    assert build_mod.build(fresh_settings, embedder=e5).status == "unchanged"
    with pytest.raises(UnknownDocument):
        build_mod.remove_documents(fresh_settings, [ORION])
    build_mod.build(fresh_settings, [ARTICLES / "orion-fund-notes.md"], embedder=e5)
    assert served(Chatbot(fresh_settings, embedder=e5).scoped(ORION).answer(ONLY[ORION]))


def test_a_removed_corpus_article_stays_removed_until_added(fresh_settings: Settings, e5: object) -> None:
    build_mod.build(fresh_settings, [ARTICLES / "orion-fund-notes.md"], embedder=e5)
    build_mod.remove_documents(fresh_settings, [DEFAULT])
    again = build_mod.build(fresh_settings, embedder=e5)  # `index` with the corpus setting unchanged
    assert [i for i, _ in again.info.documents] == [ORION]
    back = build_mod.build(fresh_settings, [fresh_settings.corpus[0]], embedder=e5)
    assert sorted(i for i, _ in back.info.documents) == [DEFAULT, ORION]


def test_replacing_a_document_keeps_its_id(fresh_settings: Settings, e5: object, tmp_path: Path) -> None:
    from chatbot.core import Chatbot

    note = tmp_path / "orion-fund-notes.md"
    note.write_text((ARTICLES / "orion-fund-notes.md").read_text(encoding="utf-8").replace("14 companies", "17 companies"))
    build_mod.build(fresh_settings, [ARTICLES / "orion-fund-notes.md"], embedder=e5)
    report = build_mod.build(fresh_settings, [note], embedder=e5)
    assert report.documents == 2 and [i for i, _ in report.info.documents].count(ORION) == 1
    answer = Chatbot(fresh_settings, embedder=e5).scoped(ORION).answer(ONLY[ORION])
    assert "17" in answer.answer and "14" not in answer.answer


def test_documents_are_found_by_id_file_name_or_prefix(mbot: Any) -> None:
    from chatbot.errors import AmbiguousDocument

    assert mbot.find_documents("harbour-telescope.en.html") == (TELESCOPE,)  # the file it was added from
    assert mbot.find_documents(str(ARTICLES / "zugverkehr-nordbahn.de.html")) == (NORDBAHN,)  # a path: its file name
    assert mbot.find_documents(["orion", "ai-inv"]) == (ORION, DEFAULT)  # unambiguous starts of ids
    assert mbot.find_documents("news.example.org/science/kestrel") == (TELESCOPE,)  # a URL id without its scheme
    with pytest.raises(AmbiguousDocument, match="names 2 documents") as exc:
        mbot.find_documents("https://")
    assert TELESCOPE in str(exc.value) and NORDBAHN in str(exc.value) and "zugverkehr-nordbahn.de.html" in str(exc.value)
    assert exc.value.exit_code == 2 and exc.value.http_status == 422
    for page in ("https://", "https://news.example.org/", "harbour-telescope.en.html"):  # a host page: its URL only
        with pytest.raises(UnknownDocument):
            mbot.find_documents(page, exact=True)
    assert mbot.scoped("harbour-telescope.en.html").scope == (TELESCOPE,)


def test_two_files_with_one_id_are_refused(fresh_settings: Settings, e5: object, tmp_path: Path) -> None:
    from chatbot.errors import CorpusError

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("Des notes.\n", encoding="utf-8")
    (tmp_path / "b" / "notes.md").write_text("# Autres notes\n\nTexte.\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="would both be the document 'notes'"):
        build_mod.build(fresh_settings, [tmp_path / "a" / "notes.txt", tmp_path / "b" / "notes.md"], embedder=e5)


# ---- the command line -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def multi_env(multi: Settings, mbot: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data = tmp_path_factory.mktemp("multi-cli") / "d"
    shutil.copytree(multi.data_dir, data, ignore=shutil.ignore_patterns("readers", "index.lock"))
    return {"CHATBOT_DATA_DIR": str(data)}


def test_cli_list_ask_and_errors(multi_env: dict[str, str]) -> None:
    out = run_app("index", "list", "--json", env=multi_env)
    assert out.returncode == 0, out.stderr
    assert {d["id"] for d in json.loads(out.stdout)} == set(ONLY)
    out = run_app("ask", "--json", "--doc", NORDBAHN, ONLY[NORDBAHN], env=multi_env)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert served(answer) and {c["document"] for c in answer["citations"]} == {NORDBAHN}
    out = run_app("ask", "--json", "--doc", "zugverkehr-nordbahn.de.html", ONLY[NORDBAHN], env=multi_env)
    assert out.returncode == 0, out.stderr  # the file name the document was added from
    assert {c["document"] for c in json.loads(out.stdout)["citations"]} == {NORDBAHN}
    out = run_app("ask", "--doc", "https://", "Who?", env=multi_env)
    assert out.returncode == 2 and "names 2 documents" in out.stderr and NORDBAHN in out.stderr and TELESCOPE in out.stderr
    out = run_app("index", "add", str(ARTICLES / "zugverkehr-nordbahn.de.html"), str(ARTICLES / "orion-fund-notes.md"), env=multi_env)
    assert out.returncode == 0, out.stderr  # each file's id, the name --doc takes
    assert f"{NORDBAHN}\tzugverkehr-nordbahn.de.html" in out.stdout.splitlines()
    assert f"{ORION}\torion-fund-notes.md" in out.stdout.splitlines()
    out = run_app("ask", "--json", "--doc", "nope", "Who?", env=multi_env)
    assert out.returncode == 2 and "no document 'nope'" in out.stderr and "Traceback" not in out.stderr
    out = run_app("index", "remove", "nope", env=multi_env)
    assert out.returncode == 2 and "index list" in out.stderr and "Traceback" not in out.stderr
    out = run_app("index", "add", env=multi_env)
    assert out.returncode != 0 and "name at least one file" in out.stderr
    out = run_app("index", "add", str(ARTICLES / "missing.html"), env=multi_env)
    assert out.returncode == 3 and "no such file" in out.stderr


# ---- the HTTP API ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def multi_server(multi_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = WebServer(Path(multi_env["CHATBOT_DATA_DIR"]), tmp_path_factory.mktemp("srv") / "server.log").wait_ready()
    yield server
    server.stop()


def test_api_scopes_by_document_or_page(multi_server: WebServer) -> None:
    url = multi_server.url
    listed = httpx.get(url + "/api/documents", timeout=30).json()["documents"]
    assert {d["id"] for d in listed} == set(ONLY)
    r = httpx.post(url + "/api/ask", json={"question": ONLY[TELESCOPE], "document": TELESCOPE}, timeout=60)
    assert r.status_code == 200 and served(r.json())
    assert {c["document"] for c in r.json()["citations"]} == {TELESCOPE}
    r = httpx.post(url + "/api/ask", json={"question": ONLY[TELESCOPE], "document": NORDBAHN}, timeout=60)
    assert r.status_code == 200 and not r.json()["answered"]
    assert {c["document"] for c in r.json()["citations"]} <= {NORDBAHN}
    # the widget sends its page's canonical URL: a known page scopes, an unknown one does not
    r = httpx.post(url + "/api/ask", json={"question": ONLY[ORION], "page": "https://tagesblatt.example.de/wirtschaft/nordbahn-nachtzuege"}, timeout=60)
    assert r.status_code == 200 and not r.json()["answered"]
    r = httpx.post(url + "/api/ask", json={"question": ONLY[ORION], "page": "https://unknown.example/page"}, timeout=60)
    assert r.status_code == 200 and served(r.json())
    r = httpx.post(url + "/api/ask", json={"question": ONLY[TELESCOPE], "document": "harbour-telescope.en.html"}, timeout=60)
    assert r.status_code == 200 and served(r.json()) and {c["document"] for c in r.json()["citations"]} == {TELESCOPE}
    r = httpx.post(url + "/api/ask", json={"question": "Who?", "document": "https://"}, timeout=30)
    assert r.status_code == 422 and "names 2 documents" in r.json()["error"] and NORDBAHN in r.json()["error"]
    r = httpx.post(url + "/api/ask", json={"question": "Who?", "document": "nope"}, timeout=30)
    assert r.status_code == 404 and "no document" in r.json()["error"]
    r = httpx.post(url + "/api/ask/stream", json={"question": "Who?", "document": ["nope"]}, timeout=30)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
    r = httpx.post(url + "/api/ask", json={"question": "Who?", "document": 7}, timeout=30)
    assert r.status_code == 422


def test_api_interface_words_come_from_the_document(multi_server: WebServer) -> None:
    url = multi_server.url
    de = httpx.get(url + f"/api/messages?lang=de&document={quote(NORDBAHN, safe='')}", timeout=30).json()
    assert de["document"] == NORDBAHN and "Nordbahn streicht Nachtzüge nach Kopenhagen" in de["welcome"]
    assert de["examples"] and all(isinstance(q, str) and q for q in de["examples"])
    note = httpx.get(url + f"/api/messages?lang=en&document={ORION}", timeout=30).json()
    assert note["quote_label"] == "From the document" and "Orion fund notes" in note["welcome"]
    every = httpx.get(url + "/api/messages?lang=fr", timeout=30).json()
    assert every["document"] is None and "4 documents" in every["welcome"]
    assert httpx.get(url + "/api/messages?document=nope", timeout=30).status_code == 404


def test_comments_trafilatura_folds_into_the_article_stay_comments() -> None:
    """A page whose comment section has no markup trafilatura knows ("commentaires (3)", then
    author, date, text): the readers' claims must not become the article's words."""
    doc = build_mod.read_document(ROOT / "tests" / "data" / "injection.html")
    records = doc.parsed().records
    article = " ".join(r.text for r in records if r.section == "article")
    comments = " ".join(r.text for r in records if r.section == "comment")
    assert "30 millions de dollars" in article and "999" not in article and "5000" not in article
    assert "999 billion" in comments and "5000 billion" in comments
    assert doc.date == ""  # no date on the page: none guessed from the comments' dates
