"""Thumbs up/down from the web chat and the API, one JSON object per line.

Simplifies: a JSONL file needs no database. Each record is one write(2) on a file opened with
O_APPEND, so lines stay whole even when several worker processes rate answers at once. The file
is capped: before a record would take it past `max_bytes` it rotates (feedback.jsonl ->
feedback.jsonl.1 -> .2 ..., `keep` old files, the oldest deleted), so the disk use stays under
about (keep + 1) * max_bytes whatever clients post. The check, rotation and write happen under
a lock on a side file (flock), so worker processes never rotate twice or write to a renamed file.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from chatbot.settings import Settings

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: the thread lock alone
    fcntl = None  # type: ignore[assignment]

Rating = Literal["up", "down"]
# line breaks to str.splitlines() and log tools that JSON leaves raw: escaped, so a record stays one line
_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def feedback_file(settings: Settings) -> Path:
    return settings.feedback_path or settings.data_dir / "feedback.jsonl"


def feedback_log(settings: Settings) -> FeedbackLog:
    return FeedbackLog(feedback_file(settings), settings.feedback_max_bytes, settings.feedback_files)


class FeedbackLog:
    def __init__(self, path: Path, max_bytes: int = 0, keep: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes  # 0: never rotate
        self.keep = max(0, keep)
        self._lock = threading.Lock()

    def rotated(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            if fcntl is None or not self.max_bytes:
                yield
                return
            fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    def _rotate(self) -> None:
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
            return
        self.rotated(self.keep).unlink(missing_ok=True)
        for n in range(self.keep - 1, 0, -1):
            if self.rotated(n).exists():
                os.replace(self.rotated(n), self.rotated(n + 1))
        os.replace(self.path, self.rotated(1))

    def append(self, question: str, answer: str, rating: Rating, origin: str, **extra: Any) -> dict[str, Any]:
        record = {
            "ts": round(time.time(), 3),
            "origin": origin,
            "rating": rating,
            "question": question,
            "answer": answer,
            **extra,
        }
        line = (json.dumps(record, ensure_ascii=False).translate(_BREAKS) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            if self.max_bytes:
                with contextlib.suppress(FileNotFoundError):
                    size = self.path.stat().st_size
                    if size and size + len(line) > self.max_bytes:
                        self._rotate()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)  # not a buffered file: its writes split at 8 KiB, and could interleave
            finally:
                os.close(fd)
        return record
