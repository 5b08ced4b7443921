"""The Chroma store: clients, build collections, the "current" pointer and the writer lock.

Simplifies: every build writes a *new* collection named after its fingerprint, marks it complete
in its metadata once every unit is in, and only then moves a pointer (one record in a small
pointer collection) to it. Readers follow the pointer and check the mark, so a crash mid-build
leaves the previous index in use. Works the same on an embedded folder and on a Chroma server.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot.errors import IndexLocked, IndexNotReady, StoreUnavailable
from chatbot.settings import Settings

POINTER_ID = "current"
log = logging.getLogger(__name__)


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


SECOND_SUFFIX = "-second"  # the second embedder's vectors of a build, beside it
LEXICON_SUFFIX = "-lexicon"  # dictionary equivalents of the build's vocabulary


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
    """Drop old build collections, keeping `keep` (the current and the previous one) and every
    build a running reader holds a fresh lease on (see `reader_lease`)."""
    prefix = settings.collection_prefix + "-build-"
    with _readers_guard(settings, exclusive=True):  # no reader takes a lease between reading them and dropping
        keep = keep | leased(settings)
        for col in client.list_collections():
            name = col if isinstance(col, str) else col.name
            if name.startswith(prefix) and not any(name in (k, k + "-docs", k + SECOND_SUFFIX, k + LEXICON_SUFFIX) for k in keep):
                try:
                    client.delete_collection(name)
                except Exception:
                    pass  # another writer may have dropped it already


# ---- reader leases: a serving process names the builds it reads, so no indexer drops them ------
READERS_DIR = "readers"


def _lease_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / READERS_DIR / f"{socket.gethostname()}.{os.getpid()}.json"


@contextmanager
def _readers_guard(settings: Settings, exclusive: bool) -> Iterator[None]:
    """An flock on data_dir/readers/.lock: shared while a reader reads the pointer and leases what
    it names, exclusive while an indexer reads the leases and prunes; so a build is either leased
    before the prune looks, or was not pruned when the reader checked it exists."""
    folder = Path(settings.data_dir) / READERS_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fh = open(folder / ".lock", "a+")  # noqa: SIM115
    except OSError:
        yield  # an unwritable folder: readers cannot lease, writers cannot see leases; still work
        return
    try:
        fcntl.flock(fh, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        fh.close()


@contextmanager
def reader_lease(settings: Settings) -> Iterator[None]:
    """Hold while reading the pointer and calling `write_lease` for what it names (see _readers_guard)."""
    with _readers_guard(settings, exclusive=False):
        yield


def write_lease(settings: Settings, collections: set[str]) -> None:
    """Record (or renew: the time is the heartbeat) the builds this process reads."""
    path = _lease_path(settings)
    data = {"pid": os.getpid(), "host": socket.gethostname(), "collections": sorted(c for c in collections if c), "heartbeat": time.time()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        log.warning("cannot record which index this process reads (%s): an indexer may drop it", exc.strerror)


def drop_lease(settings: Settings) -> None:
    try:
        _lease_path(settings).unlink()
    except OSError:
        pass


def leased(settings: Settings) -> set[str]:
    """Builds named by a fresh lease (renewed within reader_lease_seconds, by a process still
    running when it is on this machine); stale lease files are removed."""
    folder = Path(settings.data_dir) / READERS_DIR
    out: set[str] = set()
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            fresh = time.time() - float(data["heartbeat"]) <= settings.reader_lease_seconds
            alive = data.get("host") != socket.gethostname() or pid_alive(int(data["pid"]))
            names = [str(c) for c in data["collections"]]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being replaced, or not ours: ignore
        if fresh and alive:
            out.update(names)
        else:
            try:
                path.unlink()
            except OSError:
                pass
    return out


LOCK_FILE = "index.lock"


@contextmanager
def writer_lock(settings: Settings, timeout: float = 0.0) -> Iterator[None]:
    """One indexer at a time per data folder: wait up to timeout seconds, then refuse.

    The lock is an flock on data_dir/index.lock; the file names its holder ("pid N on HOST") and
    is removed when the holder is done. The kernel drops an flock when its process dies, so a file
    left by a killed indexer is simply taken over. One still locked but naming a process that is
    gone (a child it started inherited the lock) is stale too: it is removed and a new one made.
    Opening, checking and removing the file happen under a brief flock on the folder itself, so
    two indexers never both take it."""
    folder = Path(settings.data_dir)
    path = folder / LOCK_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        raise StoreUnavailable(f"cannot write to the data folder {settings.data_dir}: {exc.strerror}{advice(exc)}") from exc
    deadline = time.monotonic() + timeout
    fh: Any = None
    try:
        while True:
            with _folder_guard(dir_fd):
                try:
                    fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115  (held until the with-block ends)
                except OSError as exc:
                    raise StoreUnavailable(f"cannot write to the data folder {settings.data_dir}: {exc.strerror}{advice(exc)}") from exc
                holder = _holder(fh)
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    fh.close()
                    fh = None
                    if _stale(holder):
                        try:
                            os.unlink(path)
                            continue
                        except OSError:
                            pass  # cannot remove it: wait as for a live holder
                else:
                    if _stale(holder):
                        log.info("taking over the index lock left by %s (no longer running)", holder)
                    fh.seek(0)
                    fh.truncate()
                    fh.write(f"pid {os.getpid()} on {socket.gethostname()}")
                    fh.flush()
                    break
            if time.monotonic() >= deadline:
                raise IndexLocked(f"another indexer is running ({holder or 'another process'}); try again when it has finished")
            time.sleep(0.2)
        yield
    finally:
        if fh is not None:
            with _folder_guard(dir_fd):
                try:
                    if os.path.samestat(os.fstat(fh.fileno()), os.stat(path)):
                        os.unlink(path)
                except OSError:
                    pass  # already gone
            fh.close()
        os.close(dir_fd)


@contextmanager
def _folder_guard(dir_fd: int) -> Iterator[None]:
    fcntl.flock(dir_fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(dir_fd, fcntl.LOCK_UN)


def _holder(fh: Any) -> str:
    fh.seek(0)
    return str(fh.read(200)).strip()


def _stale(holder: str) -> bool:
    """The lock file names a process of this machine that is no longer running."""
    m = re.fullmatch(r"pid (\d+)(?: on (\S+))?", holder)
    if not m or (m.group(2) and m.group(2) != socket.gethostname()):
        return False  # unknown format, or another machine's process (a shared folder): cannot tell
    return not pid_alive(int(m.group(1)))


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:  # a zombie has exited; only its parent has not collected it yet
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
