"""The command line contract: --help, ask --json schema, batch mode, exit codes, index errors."""

import json
import os
import random
import re
import time
from pathlib import Path
from typing import Any

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


# --- only text is indexed (strict decoding), long adds show progress, the size limit ---


@pytest.fixture()
def data_env(tmp_path: Path) -> dict[str, str]:
    """A data folder of its own, with the corpus indexed."""
    env = {"CHATBOT_DATA_DIR": str(tmp_path / "d")}
    assert run_app("index", env=env).returncode == 0
    return env


def listed(env: dict[str, str]) -> dict[str, str]:
    out = run_app("index", "list", "--json", env=env)
    assert out.returncode == 0, out.stderr
    return {d["id"]: d["title"] for d in json.loads(out.stdout)}


def one_line_error(out: Any, code: int, *needles: str) -> str:
    assert out.returncode == code, (out.returncode, out.stdout[-500:], out.stderr[-1000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


FRENCH = "Les éléphants de Pérouse\n\nLe zoo de Pérouse a accueilli trois éléphants d'Asie en 2024, venus d'un parc fermé.\n"


def test_only_text_is_indexed(data_env: dict[str, str], tmp_path: Path) -> None:
    """Random bytes (no NUL) were indexed as a French document; French with two bad UTF-8 bytes was
    read as Latin-1 ("Les Ã©lÃ©phants"); a page with a title only was a document. Each is refused
    (exit 3, one line naming the byte), and nothing indexed before is lost; --encoding reads what
    its user names."""
    before = listed(data_env)
    noise = tmp_path / "noise.txt"
    rng = random.Random(7)
    noise.write_bytes(bytes(rng.randrange(1, 256) for _ in range(50_000)))  # no NUL, as in the probe
    one_line_error(run_app("index", "add", str(noise), env=data_env), 3, "not UTF-8 text", "byte 0x", "at offset", "--encoding")
    one_line_error(
        run_app("index", "add", "--encoding", "latin-1", str(noise), env=data_env), 3, "looks binary", "control characters"
    )

    broken = tmp_path / "elephants.txt"
    data = FRENCH.encode("utf-8")
    at = data.index("Pérouse a".encode()) + 1  # the é of the second "Pérouse"
    broken.write_bytes(data[:at] + b"\xe9" + data[at + 2 :])  # é in Latin-1, alone in UTF-8: invalid
    one_line_error(run_app("index", "add", str(broken), env=data_env), 3, f"byte 0xe9 at offset {at} ")

    titled = tmp_path / "title-only.html"
    titled.write_text("<html><head><title>Only a title</title></head><body></body></html>", encoding="utf-8")
    one_line_error(run_app("index", "add", str(titled), env=data_env), 3, "no main text")
    heading = tmp_path / "heading-only.html"
    heading.write_text("<html><head><title>A heading</title></head><body><h1>A heading</h1></body></html>", encoding="utf-8")
    one_line_error(run_app("index", "add", str(heading), env=data_env), 3, "no main text")
    one_line_error(run_app("index", "add", "--encoding", "klingon", str(broken), env=data_env), 3, "unknown encoding")
    assert listed(data_env) == before  # nothing refused got in, nothing indexed went

    latin = tmp_path / "elephants-latin1.txt"
    latin.write_bytes(FRENCH.encode("latin-1"))
    one_line_error(run_app("index", "add", str(latin), env=data_env), 3, "byte 0xe9")
    ok = run_app("index", "add", str(latin), "--encoding", "latin-1", env=data_env)  # the user knows better
    assert ok.returncode == 0, ok.stderr
    page = tmp_path / "page-1252.html"
    page.write_bytes(
        (
            '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1252">'
            "<title>Les girafes de Nîmes</title></head><body><h1>Les girafes de Nîmes</h1>"
            "<p>Le zoo de Nîmes a reçu deux girafes en 2024 — un mâle et une femelle venus d’Espagne.</p></body></html>"
        ).encode("cp1252")
    )
    assert run_app("index", "add", str(page), env=data_env).returncode == 0  # the charset the page declares
    after = listed(data_env)
    assert after["elephants-latin1"] == "Les éléphants de Pérouse" and after["page-1252"] == "Les girafes de Nîmes"
    assert set(after) == set(before) | {"elephants-latin1", "page-1252"}


def test_wait_is_accepted_after_the_subcommand(data_env: dict[str, str], tmp_path: Path) -> None:
    """`index add --wait 5 FILE` exited 2 ("unrecognized arguments") where `index --wait 5 add FILE` worked."""
    for i, args in enumerate((("add", "--wait", "5", "{f}"), ("--wait", "5", "add", "{f}"), ("add", "{f}", "--wait", "5"))):
        doc = tmp_path / f"note-{i}.md"
        doc.write_text(f"# Note {i}\n\nLe fonds Vega numéro {i} a levé {i + 2} millions d'euros.\n", encoding="utf-8")
        out = run_app("index", *(a.format(f=doc) for a in args), env=data_env)
        assert out.returncode == 0 and f"added note-{i}.md" in out.stdout, (args, out.stderr)
    assert run_app("index", "add", "--wait", "5", env=data_env).returncode != 0  # still needs a file
    assert "unrecognized arguments" in run_app("index", "add", "--nope", str(doc), env=data_env).stderr


def long_text(size: int, seed: int) -> str:
    """About `size` bytes of article-shaped text no vector cache has seen (numbers made up)."""
    rng = random.Random(seed)
    words = ["fonds", "startups", "capital", "levée", "investisseurs", "Europe", "intelligence", "artificielle", "marché"]
    paragraphs, total = [], 0
    while total < size:
        paragraphs.append(
            f"Le fonds {rng.choice(words).title()}-{rng.randint(1, 999)} a levé {rng.randint(2, 900)} millions d'euros "
            f"en {rng.randint(2001, 2024)}. " + " ".join(rng.choice(words) for _ in range(rng.randint(8, 30))) + "."
        )
        total += len(paragraphs[-1].encode("utf-8")) + 2
    return "\n\n".join(paragraphs) + "\n"


PROGRESS = re.compile(r"indexing: [\d,]+/([\d,]+) units embedded \(\d+ %\), [\d.]+ units/s, ")


def test_long_adds_show_progress_on_a_terminal_only(data_env: dict[str, str], tmp_path: Path) -> None:
    """A 19.9 MB add ran 20 minutes without a word. On a terminal, stderr shows units embedded, the
    rate and the time left, rewritten in place; piped, nothing unless asked for (CHATBOT_PROGRESS)."""
    import pty
    import subprocess
    import sys

    from tests.conftest import ROOT

    doc = tmp_path / "long.txt"
    doc.write_text(long_text(15_000, seed=int(time.time())), encoding="utf-8")
    env = {**data_env, "CHATBOT_VECTOR_CACHE": "0"}  # every unit embedded: the add lasts a few seconds
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "index", "add", str(doc)],
            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=slave, cwd=ROOT,
        )  # fmt: skip
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        stdout = proc.communicate(timeout=300)[0].decode()
    finally:
        os.close(master)
    assert proc.returncode == 0 and "added long.txt" in stdout, (stdout, seen[-2000:])
    shown = seen.decode("utf-8", "replace")
    updates = [u for u in re.split(r"[\r\n]", shown) if PROGRESS.search(u)]
    print(f"terminal: {len(updates)} progress updates, last: {updates[-1].strip() if updates else None!r}")
    assert len(updates) >= 3 and "\r" in shown, shown[-2000:]
    assert any(re.search(r"about \d+(?: min \d+)? s left", u) for u in updates), updates
    assert re.search(r"done in \d+", updates[-1]), updates[-1]
    total = int(PROGRESS.search(updates[-1]).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert f"{total:,}/{total:,} units embedded (100 %)" in updates[-1]

    again = tmp_path / "long2.txt"
    again.write_text(long_text(5_000, seed=int(time.time()) + 1), encoding="utf-8")
    piped = run_app("index", "add", str(again), env=env, timeout=300)
    assert piped.returncode == 0 and not PROGRESS.search(piped.stderr), piped.stderr  # no progress into a pipe
    third = tmp_path / "long3.txt"
    third.write_text(long_text(8_000, seed=int(time.time()) + 2), encoding="utf-8")
    forced = run_app("index", "add", str(third), env={**env, "CHATBOT_PROGRESS": "always"}, timeout=300)
    lines = [line for line in forced.stderr.splitlines() if PROGRESS.search(line)]
    assert forced.returncode == 0 and 2 <= len(lines) <= 10 and "\r" not in forced.stderr, forced.stderr  # whole lines, few


def test_documents_too_large_to_index_in_reasonable_time_are_refused_at_once(data_env: dict[str, str], tmp_path: Path) -> None:
    """The shipped limit (settings.max_document_bytes, measured: benchmarks/index_rate.py) refuses a
    file past it before any work, with what to do; a file under it is indexed."""
    from chatbot.settings import Settings

    limit = Settings().max_document_bytes
    assert 100_000 <= limit <= 2_000_000
    big = tmp_path / "big.txt"
    big.write_text(long_text(19_900_000, seed=3), encoding="utf-8")  # the probe's 19.9 MB file
    t0 = time.perf_counter()
    line = one_line_error(run_app("index", "add", str(big), env=data_env, timeout=120), 3, "too large to index", "split it")
    assert time.perf_counter() - t0 < 60, line
    over = tmp_path / "over.txt"
    over.write_text(long_text(limit + 10_000, seed=4), encoding="utf-8")
    one_line_error(run_app("index", "add", str(over), env=data_env), 3, f"limit is {limit / 1e6:.2f} MB")
    html_over = tmp_path / "over.html"
    html_over.write_text(f"<html><head><title>Long</title></head><body><p>{long_text(limit + 10_000, seed=5)}</p></body></html>")
    one_line_error(run_app("index", "add", str(html_over), env=data_env), 3, "of main text")
    small = tmp_path / "small.txt"
    small.write_text(long_text(12_000, seed=6), encoding="utf-8")
    lowered = {**data_env, "CHATBOT_MAX_DOCUMENT_BYTES": "10000"}  # the setting decides
    one_line_error(run_app("index", "add", str(small), env=lowered), 3, "limit is 0.01 MB")
    assert run_app("index", "add", str(small), env={**lowered, "CHATBOT_MAX_DOCUMENT_BYTES": "20000"}).returncode == 0


def test_batch_bad_scopes_are_errors_of_their_line(env: dict[str, str]) -> None:
    """As in the API: a scope that names nothing is an error (it answered from every document), and
    one that is not an id (5) is that line's error, not the end of the batch."""
    lines = [
        '{"question": "How much did Databricks raise?", "document": ""}',
        '{"question": "How much did Databricks raise?", "document": []}',
        '{"question": "How much did Databricks raise?", "document": 5}',
        '{"question": "How much did Databricks raise?", "document": ["ai-investments-2024.fr"]}',
    ]
    out = run_app("ask", "--json", "-", env=env, stdin="\n".join(lines) + "\n")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert [r.get("error", "")[:11] for r in rows] == ["empty scope", "empty scope", '"document" ', ""], rows
    check_schema(rows[3])
