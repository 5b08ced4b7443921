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
