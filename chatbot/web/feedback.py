"""Thumbs up/down from the web chat and the API, one JSON object per line.

Simplifies: a JSONL file needs no database. Each record is one write(2) on a file opened with
O_APPEND, so lines stay whole even when several worker processes rate answers at once (the lock
only orders this process's threads).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Literal

from chatbot.settings import Settings

Rating = Literal["up", "down"]
# line breaks to str.splitlines() and log tools that JSON leaves raw: escaped, so a record stays one line
_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def feedback_file(settings: Settings) -> Path:
    return settings.feedback_path or settings.data_dir / "feedback.jsonl"


class FeedbackLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, question: str, answer: str, rating: Rating, origin: str, **extra: Any) -> dict[str, Any]:
        record = {"ts": round(time.time(), 3), "origin": origin, "rating": rating, "question": question, "answer": answer, **extra}
        line = (json.dumps(record, ensure_ascii=False).translate(_BREAKS) + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)  # not a buffered file: its writes split at 8 KiB, and could interleave
            finally:
                os.close(fd)
        return record
