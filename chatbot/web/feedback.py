"""Thumbs up/down from the web chat and the API, one JSON object per line.

Simplifies: a JSONL file needs no database; a lock per process plus one `write` per record
keeps lines whole when several requests rate answers at once.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Literal

from chatbot.settings import Settings

Rating = Literal["up", "down"]


def feedback_file(settings: Settings) -> Path:
    return settings.feedback_path or settings.data_dir / "feedback.jsonl"


class FeedbackLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, question: str, answer: str, rating: Rating, origin: str, **extra: Any) -> dict[str, Any]:
        record = {"ts": round(time.time(), 3), "origin": origin, "rating": rating, "question": question, "answer": answer, **extra}
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
        return record
