"""Indexing progress on stderr: units embedded, their rate and the time left.

Simplifies: shown on a terminal (one line rewritten in place) or when settings.progress is
"always" (then a line every few seconds, e.g. into a log); never otherwise, so a pipe or a
cron job's mail gets only the final summary. The rate is measured over the whole add so far.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

TERMINAL_EVERY_S = 0.5
LOG_EVERY_S = 5.0


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """A `progress(done, total)` callback for index.build.build."""

    def __init__(self, mode: str = "auto", stream: TextIO | None = None, label: str = "indexing") -> None:
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        self.shown = mode == "always" or (mode == "auto" and self.terminal)
        self.label = label
        self._start: float | None = None
        self._last = 0.0
        self._width = 0

    def line(self, done: int, total: int, now: float) -> str:
        elapsed = now - (self._start or now)
        rate = done / elapsed if elapsed > 0 and done else 0.0
        share = f" ({100 * done / total:.0f} %)" if total else ""
        if done >= total:
            left = f"done in {_duration(elapsed)}"
        elif rate:
            left = f"about {_duration((total - done) / rate)} left"
        else:
            left = "estimating the time left"
        return f"{self.label}: {done:,}/{total:,} units embedded{share}, {rate:.1f} units/s, {left}"

    def __call__(self, done: int, total: int) -> None:
        if not self.shown:
            return
        now = time.monotonic()
        if self._start is None:
            self._start = now
        every = TERMINAL_EVERY_S if self.terminal else LOG_EVERY_S
        if done < total and now - self._last < every:
            return  # bounded output: a long add writes a line every few seconds at most
        self._last = now
        text = self.line(done, total, now)
        if self.terminal:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad + ("\n" if done >= total else ""))
            self._width = 0 if done >= total else len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End a line left open on a terminal (an add that failed midway)."""
        if self.shown and self.terminal and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
