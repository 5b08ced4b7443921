"""Language detection: py3langid's model, cut to our languages and unpacked once per machine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chatbot import language


@pytest.fixture()
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("CHATBOT_CACHE_DIR", str(tmp_path))
    language._detector.cache_clear()
    yield tmp_path
    language._detector.cache_clear()


TEXTS = [
    "How much did Databricks raise?",
    "Combien les startups d'IA ont-elles levé en 2024 ?",
    "und wenn man xai mitzählt?",
    "Et chez les Verts ?",
    "ok",
]


def test_unpacked_model_scores_like_py3langid_itself(fresh_cache: Path) -> None:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    reference = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    reference.set_languages(["fr", "en", "de"])
    for attempt in ("unpacks", "reads the cache"):
        ours = language._detector(("fr", "en", "de"))
        for text in TEXTS:
            want, got = dict(reference.rank(text)), dict(ours.rank(text))
            assert got.keys() == want.keys(), attempt
            assert all(abs(got[k] - want[k]) < 1e-6 for k in want), (attempt, text)
        assert any(fresh_cache.glob("langid-*/nextmove.npy")), "the unpacked model is kept for the next process"
        language._detector.cache_clear()


def test_detects_without_a_writable_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CHATBOT_CACHE_DIR", str(blocker))  # mkdir under a file fails
    language._detector.cache_clear()
    try:
        assert language.detect_language("Wie viel Kapital hat OpenAI eingesammelt?") == "de"
        assert language.detect_language("Combien a levé OpenAI l'an dernier ?") == "fr"
    finally:
        language._detector.cache_clear()
