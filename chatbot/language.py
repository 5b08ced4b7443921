"""Which language a question is in, and the fixed messages in that language.

Simplifies: lingua's detector restricted to the languages we answer in. Short questions are
mostly names ("And OpenAI?"), which fool any detector, so proper-noun-looking words are masked
first, and a low-confidence guess defers to the conversation's language.
"""

from __future__ import annotations

import json
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

_PROPER = re.compile(r"(?<=\s)[A-Z][\w'’.-]*|\S*\d\S*")
_lock = threading.Lock()


@lru_cache(maxsize=4)
def _detector(languages: tuple[str, ...]) -> Any:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in languages]
    return LanguageDetectorBuilder.from_languages(*langs).with_preloaded_language_models().build()


def detect(text: str, languages: tuple[str, ...] = ("fr", "en", "de")) -> tuple[str, float]:
    """(iso code, confidence) for text; ("", 0.0) when nothing can be said.

    Averages the guesses on the full text and on the text without its names and numbers.
    """
    masked = _PROPER.sub(" ", " " + text).strip()
    probes = [text, masked] if re.search(r"[^\W\d_]{2,}", masked) else [text]
    scores: dict[str, float] = {}
    with _lock:  # lingua's detector is not documented as thread-safe
        for probe in probes:
            for v in _detector(languages).compute_language_confidence_values(probe):
                code = v.language.iso_code_639_1.name.lower()
                scores[code] = scores.get(code, 0.0) + float(v.value) / len(probes)
    if not scores:
        return "", 0.0
    code = max(scores, key=lambda c: scores[c])
    return code, scores[code]


def detect_language(text: str, languages: tuple[str, ...] = ("fr", "en", "de"), default: str = "") -> str:
    code, _ = detect(text, languages)
    return code or default


class Messages:
    """Fixed user-facing strings per language, from prompts/messages.json (falls back to English)."""

    def __init__(self, path: Path) -> None:
        self._data: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))

    def get(self, key: str, lang: str, **fmt: str) -> str:
        table = self._data.get(lang) or self._data["en"]
        text = table.get(key) or self._data["en"][key]
        return text.format(**fmt) if fmt else text

    @property
    def languages(self) -> list[str]:
        return list(self._data)
