"""Which language a question is in, and the fixed messages in that language.

Simplifies: py3langid (langid.py's model, 5 MB) restricted to the languages we answer in. Short questions are
mostly names ("And OpenAI?"), which fool any detector, so proper-noun-looking words are masked
first, and a low-confidence guess defers to the conversation's language.
"""

from __future__ import annotations

import io
import json
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

_PROPER = re.compile(r"(?<=\s)[A-Z][\w'’.-]*|\S*\d\S*")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_lock = threading.Lock()


@lru_cache(maxsize=4)
def _detector(languages: tuple[str, ...]) -> Any:
    import lzma

    import numpy as np
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier
    from py3langid.modelio import _to_array

    # py3langid's own loader unpacks its 65 MB model into a temporary file: read it in memory
    # instead, so a full or read-only temp folder cannot stop the bot from starting
    with lzma.open(MODEL_DIR / MODEL_FILE) as f, np.load(io.BytesIO(f.read()), allow_pickle=False) as m:
        identifier = LanguageIdentifier(
            m["ptc"],
            m["pc"],
            m["classes"].tolist(),
            _to_array(m["nextmove"]),
            m["out_feat"].tolist(),
            norm_probs=True,
            tk_row=_to_array(m["nextmove_row"]),
        )
    identifier.set_languages(list(languages))
    return identifier


def _scores(text: str, languages: tuple[str, ...]) -> dict[str, float]:
    """Probabilities over `languages` ({} when the text has no Latin letter or no known n-gram)."""
    if not _LATIN.search(text):
        return {}
    ranked = {code: float(p) for code, p in _detector(languages).rank(text)}
    if max(ranked.values(), default=0.0) - 1.0 / len(languages) < 1e-3:  # uniform: nothing it knows
        return {}
    return ranked


def detect(text: str, languages: tuple[str, ...] = ("fr", "en", "de")) -> tuple[str, float]:
    """(iso code, confidence) for text; ("", 0.0) when nothing can be said.

    Averages the guesses on the full text and on the text without its names and numbers.
    """
    masked = _PROPER.sub(" ", " " + text).strip()
    probes = [text, masked] if re.search(r"[^\W\d_]{2,}", masked) else [text]
    scores: dict[str, float] = {}
    with _lock:  # one shared identifier per language set
        for probe in probes:
            for code, value in _scores(probe, languages).items():
                scores[code] = scores.get(code, 0.0) + value / len(probes)
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
