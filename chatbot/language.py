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
    from py3langid.langid import LanguageIdentifier

    model = _restricted_model(languages)
    return LanguageIdentifier(
        model["ptc"],
        model["pc"],
        model["classes"].tolist(),
        model["nextmove"],  # memory-mapped: a question walks a few hundred of its 9.8 M cells
        model["out_feat"].tolist(),
        norm_probs=True,
        tk_row=model["nextmove_row"].tolist(),
    )


def _restricted_model(languages: tuple[str, ...]) -> dict[str, Any]:
    """py3langid's model cut to `languages`, unpacked once per machine into the cache folder.

    Its 65 MB lzma file takes ~0.5 s to unpack and ~70 MB to hold; the unpacked arrays load in
    milliseconds, and the 39 MB state table is mapped rather than read. Without a writable cache
    the model is unpacked in memory, as py3langid itself would (minus its temporary file)."""
    import lzma

    import numpy as np
    from py3langid import __version__
    from py3langid.langid import MODEL_DIR, MODEL_FILE

    from chatbot import arrays_cache
    from chatbot.settings import load_settings

    names = ("ptc", "pc", "classes", "nextmove", "nextmove_row", "out_feat")
    folder = load_settings().cache_dir / f"langid-{__version__}-{'-'.join(languages)}"
    cached = arrays_cache.load(folder, names, mapped={"nextmove"})
    if cached is not None:
        return cached
    with lzma.open(MODEL_DIR / MODEL_FILE) as f, np.load(io.BytesIO(f.read()), allow_pickle=False) as m:
        classes = m["classes"].tolist()
        cols = [classes.index(code) for code in languages]
        model = {
            "ptc": np.ascontiguousarray(m["ptc"][:, cols]),
            "pc": m["pc"][cols],
            "classes": np.asarray(languages),
            **{n: m[n] for n in ("nextmove", "nextmove_row", "out_feat")},
        }
    arrays_cache.save(folder, model)
    return model


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
