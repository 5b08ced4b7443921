"""One Chatbot per process, loaded on first use, never twice, and switched to each new index.

Simplifies: every adapter (API, Gradio, health, the CLI's ask and chat) asks the holder for the bot; whoever comes
first pays the few seconds of loading, the others wait on the same lock instead of loading
their own copy. A watcher thread then looks every `index_check_seconds` whether the pointer
names a newer complete build; if so it loads a bot on it beside the served one (sharing the
models, so it takes well under a second on a small index) and swaps it in: requests never wait
for it, and one that got the old bot finishes on it. The builds this process reads are named in
a lease file (data_dir/readers/HOST.PID.json, renewed as a heartbeat) that indexers respect
when they prune old builds, so a build is never dropped under a reader still reading it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chatbot.errors import ChatbotError, IndexNotReady, StoreUnavailable
from chatbot.settings import Settings

if TYPE_CHECKING:
    from chatbot.core import Chatbot

log = logging.getLogger("chatbot")
GRACE_SECONDS = 120.0  # the build served before a switch stays leased this long, for answers still running on it


class BotHolder:
    def __init__(self, settings: Settings, bot: Chatbot | None = None, warn: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self._warn = warn or log.warning
        self._bot = bot
        self._lock = threading.Lock()
        self._client: Any = None
        self._stop = threading.Event()
        self._watch = bot is None or hasattr(type(bot), "reloaded")  # a stand-in given by a test is not switched
        self._previous: tuple[set[str], float] = (set(), 0.0)  # (what the index served before the last switch held, leased until)
        self._held: set[str] = set()
        self._renewed = 0.0
        self._failed = ""  # a build that could not be loaded: not retried
        self._snapshot: Any = None  # the store client the served bot reads (see store.make_client)
        self._loading: Any = None
        self._retired: list[tuple[Any, float]] = []  # (snapshot of a bot served before, closed after)
        self._reported = ""

    @property
    def loaded(self) -> bool:
        return self._bot is not None

    def get(self) -> Chatbot:
        """The loaded bot (blocking: call it from a worker thread, not the event loop)."""
        if self._bot is None:
            with self._lock:
                if self._bot is None:
                    self._bot = self._load(None)
        return self._bot

    def preload(self) -> None:
        """Load in the background at startup so the first visitor does not wait; a failure is
        only logged here because each request retries and reports it (e.g. 503 before indexing)."""
        try:
            self.get()
        except ChatbotError as exc:
            log.warning("could not load the chatbot yet: %s", exc)

    # ---- following the index ---------------------------------------------------------------
    def run(self) -> None:
        """The watcher thread: preload, then check for a newer index until `close`."""
        if not self.loaded:
            self.preload()
        interval = self.settings.index_check_seconds
        if not self._watch or interval <= 0:
            return
        while not self._stop.wait(interval):
            try:
                self.check()
            except Exception as exc:  # a damaged or unreachable store: keep serving, say it once
                if str(exc) != self._reported:
                    self._reported = str(exc)
                    log.warning("cannot check for a newer index: %s", exc)
            else:
                self._reported = ""

    def start(self) -> threading.Thread:
        """Run the watcher in a daemon thread (a long `chat` follows new indexes like a server)."""
        thread = threading.Thread(target=self.run, name="index-watcher", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        from index import store

        self._stop.set()
        if self._held:
            store.drop_lease(self.settings)
        for client in [self._snapshot, *(c for c, _ in self._retired)]:
            if client is not None:
                store.close_snapshot(client)

    def check(self) -> bool:
        """Switch to the build the pointer names if it is not the served one; renew the lease.
        Returns whether it switched."""
        from index import store

        info = store.read_pointer(self._store(), self.settings)
        bot = self._bot
        if (
            info is None
            or info.fingerprint == self._failed
            or (bot is not None and info.fingerprint == bot.index_info.fingerprint)
        ):
            self._lease()
            return False
        t0 = time.perf_counter()
        try:
            if bot is None:
                self.get()
                return True
            new = self._load(bot)
        except ChatbotError as exc:
            self._failed = info.fingerprint
            log.warning("cannot load the new index %s, still serving the previous one: %s", info.fingerprint[:12], exc)
            self._lease()
            return False
        with self._lock:
            self._bot = new
        self._previous = (bot.index_info.names(), time.monotonic() + GRACE_SECONDS)
        if self._snapshot is not None and self._snapshot is not self._loading:
            self._retired.append((self._snapshot, time.monotonic() + GRACE_SECONDS))  # answers still running on it
        self._snapshot = self._loading
        self._lease()
        log.info(
            "switched to the index %s (%d documents) in %.2fs",
            new.index_info.fingerprint[:12],
            len(new.retriever.documents),
            time.perf_counter() - t0,
        )
        return True

    def health(self) -> dict[str, Any]:
        """What is served, after asking the store a real query about it (StoreUnavailable if it cannot)."""
        from index import store

        bot = self.get()
        info = bot.index_info
        try:
            client = self._store()
            sample = store.document_records(client, info.collection, info.keys[: self.settings.health_documents])
            expected = sum(int(r["meta"].get("units", 0)) for r in sample)
            found = store.count_units(client, info.collection, [r["key"] for r in sample])
        except Exception as exc:
            raise store.unreadable(self.settings, exc, "the store cannot answer") from exc
        if found != expected or len(sample) != min(len(info.keys), self.settings.health_documents):
            raise StoreUnavailable(
                f"the store does not hold the served index ({found} units instead of {expected} in its first "
                f"{len(sample)} of {min(len(info.keys), self.settings.health_documents)} documents): run `python app.py index --rebuild`"
            )
        return {
            "fingerprint": info.fingerprint,
            "embedder": info.embedder,
            "units": info.units,
            "documents": len(bot.retriever.documents),
            "collection": info.collection,
        }

    # ---- internals ---------------------------------------------------------------------------
    def _store(self) -> Any:
        if self._client is None:
            from index import store

            self._client = store.make_client(self.settings)
        return self._client

    def _load(self, old: Chatbot | None) -> Chatbot:
        """A bot on the current build, leased before anything of it is read, on a store snapshot of its own."""
        from index import store

        client = store.make_client(self.settings, snapshot=True)
        try:
            bot = self._load_on(client, old)
        except BaseException:
            store.close_snapshot(client)
            raise
        self._loading = client
        if old is None:
            self._snapshot = client
        return bot

    def _load_on(self, client: Any, old: Chatbot | None) -> Chatbot:
        from index import store

        for _ in range(3):
            with store.reader_lease(self.settings):  # the build the pointer names cannot be pruned before it is leased
                info = store.read_pointer(client, self.settings)
                if info is None:
                    raise IndexNotReady("no complete index yet: run `python app.py index` first")
                self._lease(*info.names())
            if old is None:
                from chatbot.core import Chatbot

                bot = Chatbot(self.settings, client=client, warn=self._warn)
            else:
                bot = old.reloaded(client)
            got = bot.index_info
            if got.fingerprint == info.fingerprint:
                return bot
            with store.reader_lease(self.settings):  # the pointer moved again meanwhile: keep that one if still there
                self._lease(*info.names(), *got.names())
                if store.document_records(client, got.collection, got.keys[:1]) or not got.keys:
                    return bot
        raise IndexNotReady("the index changed too fast to be loaded; retry")

    def _lease(self, *loading: str) -> None:
        """Write the lease when what it names changed, else renew it now and then; close the
        snapshots of bots retired long enough ago."""
        from index import store

        now = time.monotonic()
        for client, _ in [r for r in self._retired if r[1] <= now]:
            store.close_snapshot(client)
        self._retired = [r for r in self._retired if r[1] > now]

        if not self._watch:
            return
        held = set(loading)
        if self._bot is not None:
            held |= self._bot.index_info.names()
        previous, until = self._previous
        if previous and time.monotonic() < until:
            held |= previous
        if held != self._held or time.monotonic() - self._renewed > self.settings.reader_lease_seconds / 4:
            store.write_lease(self.settings, held)
            self._held = held
            self._renewed = time.monotonic()
