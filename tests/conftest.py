"""Shared fixtures: one index built per test session in a temp folder, and a loaded Chatbot."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus" / "ai-investments-2024.fr.txt"
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


@pytest.fixture(scope="session")
def raw_article() -> str:
    return CORPUS.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def e5() -> object:
    from index.embed import load_embedder

    return load_embedder("e5")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def settings(data_dir: Path) -> object:
    from chatbot.settings import Settings

    return Settings(data_dir=data_dir)


@pytest.fixture(scope="session")
def built(settings: object, e5: object) -> object:
    from index.build import build

    return build(settings, embedder=e5)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def bot(settings: object, built: object, e5: object) -> object:
    from chatbot.core import Chatbot

    return Chatbot(settings, embedder=e5)  # type: ignore[arg-type]


def run_app(*args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture()
def fresh_settings(tmp_path: Path) -> Iterator[object]:
    from chatbot.settings import Settings

    yield Settings(data_dir=tmp_path / "data")


# --- web server helpers (tests/test_web_api.py, tests/test_web_browser.py) ---


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebServer:
    """`python app.py serve` in a subprocess on a free port, on a given data folder."""

    def __init__(self, data_dir: Path, log: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.feedback = data_dir / "feedback-test.jsonl"
        self.log = log
        full_env = {**os.environ, "CHATBOT_DATA_DIR": str(data_dir), "CHATBOT_FEEDBACK_PATH": str(self.feedback), **(env or {})}
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "serve", "--port", str(self.port), *args],
            env=full_env,
            cwd=ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 180) -> WebServer:
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/api/health", timeout=30).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()


@pytest.fixture(scope="session")
def web_server(settings: object, built: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """One served app on the session's index, shared by the API and browser tests."""
    server = WebServer(settings.data_dir, tmp_path_factory.mktemp("web") / "server.log")  # type: ignore[attr-defined]
    try:
        yield server.wait_ready()
    finally:
        server.stop()
