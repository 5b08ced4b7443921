"""Chroma's client/server mode: a real `chroma run` server; index, ask and batch against it;
a clear error (not a hang) when it is down; recovery when it comes back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatbot.errors import StoreUnavailable
from tests.conftest import run_app, served
from tests.fake_llm import free_port

pytestmark = [pytest.mark.slow, pytest.mark.server]
CHROMA = str(Path(sys.executable).parent / "chroma")


class ChromaServer:
    def __init__(self, path: Path, port: int) -> None:
        self.path, self.port = path, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [CHROMA, "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("chroma run did not start")

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def env(chroma: ChromaServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    e = {
        "CHATBOT_CHROMA_HOST": "127.0.0.1",
        "CHATBOT_CHROMA_PORT": str(chroma.port),
        "CHATBOT_DATA_DIR": str(tmp_path_factory.mktemp("srvdata")),
    }
    out = run_app("index", env=e)
    assert out.returncode == 0 and "index built" in out.stdout, out.stderr
    return e


def test_index_is_on_the_server_not_on_disk(env: dict[str, str]) -> None:
    assert not (Path(env["CHATBOT_DATA_DIR"]) / "chroma").exists()
    again = run_app("index", env=env)
    assert "up to date" in again.stdout


def test_ask_and_batch_against_the_server(env: dict[str, str]) -> None:
    out = run_app("ask", "--json", "Combien les startups d'IA ont-elles levé en 2024 ?", env=env)
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    assert any("110 milliards" in c["text"] for c in obj["citations"])  # answered, or unsure with the passage shown
    batch = run_app("ask", "--json", "-", env=env, stdin="How much did Databricks raise?\nWho won the 2022 World Cup?\n")
    rows = [json.loads(x) for x in batch.stdout.splitlines()]
    assert served(rows[0]) and "10" in rows[0]["answer"] and rows[1]["status"] == "not_found"


def test_adding_a_document_on_the_server(env: dict[str, str], tmp_path: Path) -> None:
    doc = tmp_path / "note.md"
    doc.write_text("# Note\n\nLe fonds Zephyr a levé 12 millions d'euros selon cette note de test.\n", encoding="utf-8")
    out = run_app("index", str(doc), env=env)
    assert out.returncode == 0 and "added note.md" in out.stdout
    ans = json.loads(run_app("ask", "--json", "Combien le fonds Zephyr a-t-il levé ?", env=env).stdout)
    assert served(ans) and "12" in ans["answer"]


def test_down_is_a_clear_error_then_recovery(env: dict[str, str], chroma: ChromaServer, settings: object, e5: object) -> None:
    from chatbot.core import Chatbot
    from chatbot.settings import Settings

    s = Settings(chroma_host="127.0.0.1", chroma_port=chroma.port, data_dir=Path(env["CHATBOT_DATA_DIR"]))
    bot = Chatbot(s, embedder=e5)
    assert bot.answer("How much did Databricks raise?").answered
    chroma.stop()
    try:
        t0 = time.time()
        out = run_app("ask", "How much did Databricks raise?", env=env, timeout=60)
        assert out.returncode == 6 and "Chroma" in out.stderr and "Traceback" not in out.stderr
        with pytest.raises(StoreUnavailable):
            bot.answer("How much did Databricks raise?")
        assert time.time() - t0 < 45  # an error, not a hang
    finally:
        chroma.start()
    assert bot.answer("How much did Databricks raise?").answered  # the same process recovers
