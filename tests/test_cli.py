"""The command line contract: --help, ask --json schema, batch mode, exit codes, index errors."""

import json
import time
from pathlib import Path

import pytest

from tests.conftest import run_app

pytestmark = pytest.mark.slow

CITATION_KEYS = {"id": int, "text": str, "section": str, "source": str, "score": float, "start": int, "end": int}


@pytest.fixture(scope="module")
def env(settings: object, built: object) -> dict[str, str]:
    return {"CHATBOT_DATA_DIR": str(settings.data_dir)}  # type: ignore[attr-defined]


def check_schema(obj: dict) -> None:
    assert isinstance(obj["question"], str) and isinstance(obj["answer"], str)
    assert isinstance(obj["answered"], bool) and isinstance(obj["language"], str)
    assert set(obj["timings_ms"]) >= {"retrieve", "answer", "total"}
    for c in obj["citations"]:
        for key, typ in CITATION_KEYS.items():
            assert isinstance(c[key], typ), key
    markers = {int(m) for m in __import__("re").findall(r"\[(\d+)\]", obj["answer"])}
    assert markers <= {c["id"] for c in obj["citations"]}


def test_help_is_fast() -> None:
    t0 = time.perf_counter()
    out = run_app("--help")
    assert out.returncode == 0 and "ask" in out.stdout
    for cmd in ("ask", "index", "chat", "eval", "serve"):
        assert run_app(cmd, "--help").returncode == 0
    assert time.perf_counter() - t0 < 30  # generous: six interpreter starts; heavy imports would take far longer


def test_ask_json_cites_the_headline_figure(env: dict[str, str], raw_article: str) -> None:
    out = run_app("ask", "--json", "Combien les startups d'IA ont-elles levé en 2024 ?", env=env)
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    check_schema(obj)
    assert obj["language"] == "fr"
    assert any("110 milliards" in c["text"] for c in obj["citations"])
    # known miss (closing note): the models pick the 47.4-billion generative-AI sentence, and are
    # unsure of it; answered or not, the headline figure is among the passages shown


def test_citation_offsets_locate_text(env: dict[str, str], bot: object) -> None:
    out = run_app("ask", "--json", "Who followed Antler among the VC firms?", env=env)
    obj = json.loads(out.stdout)
    from index.build import read_document

    (source,) = bot.settings.corpus  # type: ignore[attr-defined]
    cleaned = read_document(source).parsed().text  # the cleaned text offsets point into, parsed again
    for c in obj["citations"]:
        assert cleaned[c["start"] : c["end"]] == c["text"]


def test_ask_plain_output(env: dict[str, str]) -> None:
    out = run_app("ask", "How much did Databricks raise?", env=env)
    assert out.returncode == 0
    assert "\x1b[" not in out.stdout  # piped: no colour
    assert "[1]" in out.stdout and "Sources" in out.stdout


def test_batch_mode(env: dict[str, str]) -> None:
    lines = [
        "How much did Databricks raise?",
        '{"question": "And OpenAI?", "history": [{"role": "user", "content": "How much did Databricks raise?"}]}',
        "{not json",
        '{"question": ""}',
        '{"question": "Wer ist der Gründer von Dealroom?", "history": "nope"}',
        "Qui a dominé les investissements IA parmi les firmes de capital-risque ?",
    ]
    out = run_app("ask", "--json", "-", env=env, stdin="\n".join(lines) + "\n")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(rows) == 6
    assert [("error" in r) for r in rows] == [False, False, True, True, True, False]
    for r in rows:
        if "error" not in r:
            check_schema(r)
    # the follow-up is resolved, and either answered with an OpenAI figure or, when unsure, refused
    # with the passage that holds it among the closest ones
    assert rows[1]["resolved_question"] == "How much did OpenAI raise?"
    shown = rows[1]["answer"] if rows[1]["answered"] else " ".join(c["text"] for c in rows[1]["citations"])
    assert any(x in shown for x in ("6,6", "6.6", "20"))  # both OpenAI figures are in the article


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (("ask", ""), 2, "empty"),
        (("ask", "x" * 2001), 2, "too long"),
        (("index", "/nonexistent/file.txt"), 3, "no such file"),
        (("nonsense",), 2, "invalid choice"),
    ],
)
def test_errors_are_one_line(env: dict[str, str], args: tuple[str, ...], code: int, needle: str) -> None:
    out = run_app(*args, env=env)
    assert out.returncode == code
    assert needle in out.stderr
    assert "Traceback" not in out.stderr


def test_index_unchanged_and_add(env: dict[str, str], tmp_path: Path) -> None:
    data = {"CHATBOT_DATA_DIR": str(tmp_path / "d")}
    first = run_app("index", env=data)
    assert first.returncode == 0 and "index built" in first.stdout
    second = run_app("index", env=data)
    assert "up to date" in second.stdout
    page = tmp_path / "page.html"
    page.write_text("<h1>Note</h1><p>Un test d'ajout de document HTML.</p>", encoding="utf-8")
    added = run_app("index", str(page), env=data)
    assert added.returncode == 0 and "added page.html" in added.stdout
    again = run_app("index", str(page), env=data)
    assert "up to date" in again.stdout


def test_bad_setting_is_reported(env: dict[str, str]) -> None:
    out = run_app("ask", "hello", env={**env, "CHATBOT_TOP_K": "many"})
    assert out.returncode == 1 and "CHATBOT_TOP_K" in out.stderr and "Traceback" not in out.stderr
