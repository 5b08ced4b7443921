"""One Chatbot per process, loaded on first use, never twice.

Simplifies: every adapter (API, Gradio, health) asks the holder for the bot; whoever comes
first pays the few seconds of loading, the others wait on the same lock instead of loading
their own copy.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from chatbot.errors import ChatbotError
from chatbot.settings import Settings

if TYPE_CHECKING:
    from chatbot.core import Chatbot

log = logging.getLogger("chatbot.web")


class BotHolder:
    def __init__(self, settings: Settings, bot: Chatbot | None = None) -> None:
        self.settings = settings
        self._bot = bot
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._bot is not None

    def get(self) -> Chatbot:
        """The loaded bot (blocking: call it from a worker thread, not the event loop)."""
        if self._bot is None:
            with self._lock:
                if self._bot is None:
                    from chatbot.core import Chatbot

                    self._bot = Chatbot(self.settings, warn=log.warning)
        return self._bot

    def preload(self) -> None:
        """Load in the background at startup so the first visitor does not wait; a failure is
        only logged here because each request retries and reports it (e.g. 503 before indexing)."""
        try:
            self.get()
        except ChatbotError as exc:
            log.warning("could not load the chatbot yet: %s", exc)
