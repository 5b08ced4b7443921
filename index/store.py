"""The Chroma store: clients, build collections, the "current" pointer and the writer lock.

Simplifies: every build writes a *new* collection named after its fingerprint, marks it complete
in its metadata once every unit is in, and only then moves a pointer (one record in a small
pointer collection) to it. Readers follow the pointer and check the mark, so a crash mid-build
leaves the previous index in use. Works the same on an embedded folder and on a Chroma server.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot.errors import IndexLocked, IndexNotReady, StoreUnavailable
from chatbot.settings import Settings

POINTER_ID = "current"


def make_client(settings: Settings) -> Any:
    """A Chroma client: HttpClient when a host is set, else a PersistentClient in data_dir."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    try:
        if settings.chroma_host:
            token = settings.chroma_token.get_secret_value()
            headers = {"Authorization": f"Bearer {token}"} if token else None
            client = chromadb.HttpClient(
                host=settings.chroma_host, port=settings.chroma_port, headers=headers, settings=chroma_settings
            )
            client.heartbeat()
            return client
        path = settings.data_dir / "chroma"
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    except Exception as exc:
        where = f"{settings.chroma_host}:{settings.chroma_port}" if settings.chroma_host else str(settings.data_dir)
        raise StoreUnavailable(f"cannot open the Chroma store at {where}: {_short(exc)}{advice(exc)}") from exc


def advice(exc: BaseException) -> str:
    """What a person can do about a storage error."""
    text = f"{type(exc).__name__} {exc}".lower()
    if any(k in text for k in ("readonly", "read-only", "permission", "errno 13", "errno 30")):
        return " — the data folder is not writable: fix its permissions or set CHATBOT_DATA_DIR to a writable folder"
    if any(k in text for k in ("no space", "disk is full", "file too large", "errno 28", "errno 27", "database or disk is full", "disk i/o")):
        return " — writing to the disk failed (is it full?): free some space and retry"
    if any(k in text for k in ("malformed", "not a database", "corrupt", "file is encrypted")):
        return " — the store looks damaged: run `python app.py index --rebuild` to set it aside and rebuild"
    return ""


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


@dataclass(frozen=True)
class IndexInfo:
    collection: str
    fingerprint: str
    embedder: str
    units: int
    built_at: int  # milliseconds; an int survives the metadata round trip exactly


def pointer_name(settings: Settings) -> str:
    return f"{settings.collection_prefix}-pointer"


def read_pointer(client: Any, settings: Settings) -> IndexInfo | None:
    """The complete index readers should use, or None."""
    try:
        pc = _get(client, pointer_name(settings))
        if pc is None:
            return None
        got = pc.get(ids=[POINTER_ID], include=["metadatas"])
        if not got["ids"]:
            return None
        meta = got["metadatas"][0]
        info = IndexInfo(meta["collection"], meta["fingerprint"], meta["embedder"], int(meta["units"]), int(meta["built_at"]))
    except Exception as exc:
        raise StoreUnavailable(f"cannot read the index pointer: {_short(exc)}") from exc
    col = _get(client, info.collection)
    if col is None or not (col.metadata or {}).get("complete") or col.count() != info.units:
        return None
    return info


def _get(client: Any, name: str) -> Any:
    try:
        return client.get_collection(name)
    except Exception:  # chroma raises NotFoundError / ValueError depending on version and mode
        return None


def write_pointer(client: Any, settings: Settings, info: IndexInfo) -> None:
    pc = client.get_or_create_collection(pointer_name(settings), metadata={"hnsw:space": "cosine"})
    meta = {
        "collection": info.collection,
        "fingerprint": info.fingerprint,
        "embedder": info.embedder,
        "units": info.units,
        "built_at": info.built_at,
    }
    pc.upsert(ids=[POINTER_ID], embeddings=[[1.0]], documents=[json.dumps(meta)], metadatas=[meta])


def open_current(settings: Settings, client: Any = None) -> tuple[Any, IndexInfo]:
    """(collection, info) of the current complete index, or IndexNotReady."""
    client = client or make_client(settings)
    info = read_pointer(client, settings)
    if info is None:
        raise IndexNotReady("no complete index yet: run `python app.py index` first")
    return client.get_collection(info.collection), info


def prune(client: Any, settings: Settings, keep: set[str]) -> None:
    """Drop old build collections, keeping `keep` (the current and the previous one)."""
    prefix = settings.collection_prefix + "-build-"
    for col in client.list_collections():
        name = col if isinstance(col, str) else col.name
        if name.startswith(prefix) and not any(name == k or name == k + "-docs" for k in keep):
            try:
                client.delete_collection(name)
            except Exception:
                pass  # another writer may have dropped it already


@contextmanager
def writer_lock(settings: Settings, timeout: float = 0.0) -> Iterator[None]:
    """One indexer at a time per data folder: wait up to timeout seconds, then refuse."""
    path = Path(settings.data_dir) / "index.lock"
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115  (held for the whole with-block below)
    except OSError as exc:
        raise StoreUnavailable(f"cannot write to the data folder {settings.data_dir}: {exc.strerror}{advice(exc)}") from exc
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "another process"
                    raise IndexLocked(f"another indexer is running ({holder}); try again when it has finished") from None
                time.sleep(0.2)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        yield
    finally:
        fh.close()
