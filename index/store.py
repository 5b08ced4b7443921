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

from chatbot.errors import IndexLocked, IndexNotReady, StoreDamaged, StoreUnavailable
from chatbot.settings import Settings

POINTER_ID = "current"
log = logging.getLogger(__name__)


_snapshots: dict[int, Any] = {}  # reader snapshots open in this process, by the number in their path's spelling


def make_client(settings: Settings, snapshot: bool = False) -> Any:
    """A Chroma client: HttpClient when a host is set, else a PersistentClient in data_dir.

    `snapshot`: a client of its own for a reader loading an index. An embedded Chroma keeps each
    collection's vector index in memory as it was when first queried in the process, and a query
    touching ids another process added since fails ("Error finding id"); a new client loads it
    afresh. Chroma shares one client per path in a process, so each snapshot gets a path spelled
    differently ("DIR/./."); `close_snapshot` it when done, which frees its spelling."""
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
        if not snapshot:
            check_database(settings)  # before Chroma opens (and may write to) a damaged file
            return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
        n = next(i for i in range(1, len(_snapshots) + 2) if i not in _snapshots)
        client = chromadb.PersistentClient(path=str(path) + "/." * n, settings=chroma_settings)
        _snapshots[n] = client
        return client
    except StoreDamaged:
        raise
    except Exception as exc:
        raise unreadable(settings, exc, "cannot open the Chroma store") from exc


DATABASE = "chroma.sqlite3"  # the embedded store's SQLite file (the vector segments live in folders beside it)


def check_database(settings: Settings) -> None:
    """StoreDamaged if the embedded store's SQLite file is damaged. SQLite's quick_check walks every
    page (0.3 s for 400 MB here), so garbage anywhere is found before any command reads or writes
    through it: otherwise each command fails or not depending on which pages it touches (list
    worked, ask failed, add wrote into it). Anything that stops the check itself (a locked, missing
    or unreadable file) is left for Chroma to report."""
    import sqlite3

    path = settings.data_dir / "chroma" / DATABASE
    if settings.chroma_host or not path.is_file():
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return
    try:
        rows = conn.execute("PRAGMA quick_check(1)").fetchall()
    except sqlite3.DatabaseError as exc:
        if _damage(exc):
            raise unreadable(settings, exc, "cannot read the index store") from exc
        return  # busy, locked, read-only: not damage
    finally:
        conn.close()
    if rows and rows[0][0] != "ok":
        found = " ".join(str(rows[0][0]).replace("*** in database main ***", "").split())[:200]
        raise unreadable(settings, sqlite3.DatabaseError(f"SQLite finds it damaged: {found}"), "cannot read the index store")


def _damage(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(k in text for k in ("malformed", "not a database", "corrupt", "file is encrypted", "integrity", "disk image"))


def environmental(exc: BaseException) -> bool:
    """A permission or disk-space problem: the store's files are fine, their folder or disk is not."""
    return bool(advice(exc))


def unreadable(settings: Settings, exc: BaseException, what: str) -> StoreUnavailable:
    """The error for a store that failed to open or answer. An embedded store failing for any
    reason but permissions or disk space is damaged, whatever the library's words ("Error
    executing plan: Error sending backfill request to compactor", "database disk image is
    malformed", "Error in compaction"): StoreDamaged, whose advice is the rebuild. A server that
    fails is unreachable (it may come back; rebuilding would not help)."""
    if settings.chroma_host:
        where = f"{settings.chroma_host}:{settings.chroma_port}"
        return StoreUnavailable(f"{what} at {where}: {_short(exc)}{advice(exc)}")
    if environmental(exc):
        return StoreUnavailable(f"{what} in {settings.data_dir}: {_short(exc)}{advice(exc)}")
    return StoreDamaged(f"{what} in {settings.data_dir / 'chroma'} ({_short(exc)}){REBUILD}")


REBUILD = " — the store looks damaged: run `python app.py index --rebuild` to set it aside and rebuild from the kept documents"


def store_failure(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) comes from the store's library or its database, rather
    than from our code: the adapters then report it as a store problem, not a bug."""
    import sqlite3

    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if type(e).__module__.split(".")[0] in ("chromadb", "chromadb_rust_bindings") or isinstance(e, sqlite3.Error):
            return True
        e = e.__cause__ or e.__context__
    return False


def close_snapshot(client: Any) -> None:
    """Release a reader snapshot (its vector indexes leave memory; its path spelling is free again)."""
    for n, c in list(_snapshots.items()):
        if c is client:
            del _snapshots[n]
            try:
                client.close()
            except Exception as exc:  # already closed, or chroma failing to stop: nothing left to do
                log.debug("closing a store snapshot: %s", exc)


def advice(exc: BaseException) -> str:
    """What a person can do about a storage error."""
    text = f"{type(exc).__name__} {exc}".lower()
    if any(k in text for k in ("readonly", "read-only", "permission", "errno 13", "errno 30")):
        return " — the data folder is not writable: fix its permissions or set CHATBOT_DATA_DIR to a writable folder"
    if any(
        k in text
        for k in ("no space", "disk is full", "file too large", "errno 28", "errno 27", "database or disk is full", "disk i/o")
    ):
        return " — writing to the disk failed (is it full?): free some space and retry"
    return ""


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


@dataclass(frozen=True)
class IndexInfo:
    collection: str  # the series: its collections hold the documents (see series_name)
    fingerprint: str  # of the manifest: changes whenever a document is added, replaced or removed
    embedder: str
    units: int
    built_at: int  # milliseconds; an int survives the metadata round trip exactly
    documents: tuple[tuple[str, str], ...] = ()  # (document id, document key), sorted
    removed: tuple[str, ...] = ()  # ids taken out on purpose: the corpus does not bring them back

    @property
    def keys(self) -> list[str]:
        return [k for _, k in self.documents]

    def names(self) -> set[str]:
        """What a reader of this index leases: its series and its documents' keys."""
        return {f"series#{self.collection}", *self.keys}


UNITS_SUFFIX = "-units"  # chunks and sentences of every document of a series, with their document's key
SECOND_SUFFIX = "-second"  # the second embedder's vectors of those units
DOCS_SUFFIX = "-docs"  # one record per document key: raw text and metadata
# Chroma keeps every write in its log until the collection's vector index is saved, every
# `sync_threshold` records (1000 by default), and each write costs more as that log grows: with
# large records (a document's text and lexicon) an add took 0.3 s at 100 documents and 0.9 s at
# 350. The small collections are saved (and their log emptied) every few records instead.
SMALL_COLLECTION = {"hnsw": {"sync_threshold": 8, "batch_size": 8}}


def pointer_name(settings: Settings) -> str:
    return f"{settings.collection_prefix}-pointer"


def series_name(settings: Settings) -> str:
    """A name for a series of builds that started afresh (a first build, a rebuild, another
    embedder); its collections hold every document added since, and it is part of every
    document key, so a rebuild rewrites every document."""
    return f"{settings.collection_prefix}-series-{int(time.time() * 1000)}"


def manifest_fingerprint(embedder: str, manifest: dict[str, str]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps([embedder, sorted(manifest.items())]).encode()).hexdigest()


def read_pointer(client: Any, settings: Settings) -> IndexInfo | None:
    """The index readers should use, or None (none yet, or one of an older layout)."""
    try:
        pc = _get(client, pointer_name(settings))
        if pc is None:
            return None
        got = pc.get(ids=[POINTER_ID], include=["metadatas", "documents"])
        if not got["ids"]:
            return None
        meta = got["metadatas"][0]
        manifest = json.loads(meta.get("manifest") or got["documents"][0] or "{}")
        if "documents" not in manifest:
            return None  # a build of the previous layout: the next `index` rebuilds from the kept files
        info = IndexInfo(
            meta["collection"],
            meta["fingerprint"],
            meta["embedder"],
            int(meta["units"]),
            int(meta["built_at"]),
            tuple((str(i), str(k)) for i, k in manifest["documents"]),
            tuple(str(i) for i in manifest.get("removed", [])),
        )
    except Exception as exc:
        raise unreadable(settings, exc, "cannot read the index pointer") from exc
    if _get(client, info.collection + DOCS_SUFFIX) is None or _get(client, info.collection + UNITS_SUFFIX) is None:
        return None
    return info


def _get(client: Any, name: str) -> Any:
    try:
        return client.get_collection(name)
    except Exception:  # chroma raises NotFoundError / ValueError depending on version and mode
        return None


def write_pointer(client: Any, settings: Settings, info: IndexInfo, previous: IndexInfo | None = None) -> None:
    """The commit point: one record names the manifest readers use. The previous manifest's
    documents ride along so the next prune keeps them for readers still switching."""
    pc = client.get_or_create_collection(pointer_name(settings), configuration=SMALL_COLLECTION, embedding_function=None)
    meta = {
        "collection": info.collection,
        "fingerprint": info.fingerprint,
        "embedder": info.embedder,
        "units": info.units,
        "built_at": info.built_at,
    }
    manifest = {
        "documents": [list(x) for x in info.documents],
        "removed": list(info.removed),
        "previous": sorted(previous.keys) if previous is not None else [],
    }
    # in the metadata, not the document: Chroma indexes a document's every three letters for full-text
    # search, which for a thousand documents' manifest made each commit slower than the add itself
    pc.upsert(ids=[POINTER_ID], embeddings=[[1.0]], documents=[""], metadatas=[{**meta, "manifest": json.dumps(manifest)}])


def open_current(settings: Settings, client: Any = None) -> tuple[Any, IndexInfo]:
    """(client, info) of the current index, or IndexNotReady."""
    client = client or make_client(settings)
    info = read_pointer(client, settings)
    if info is None:
        raise IndexNotReady("no complete index yet: run `python app.py index` first")
    return client, info


def open_series(client: Any, series: str, create: bool = False) -> tuple[Any, Any, Any]:
    """(units, second vectors, document records) collections of a series."""
    if create:
        return (
            client.get_or_create_collection(series + UNITS_SUFFIX, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None),
            client.get_or_create_collection(series + SECOND_SUFFIX, embedding_function=None),
            client.get_or_create_collection(series + DOCS_SUFFIX, configuration=SMALL_COLLECTION, embedding_function=None),
        )
    cols = [_get(client, series + suffix) for suffix in (UNITS_SUFFIX, SECOND_SUFFIX, DOCS_SUFFIX)]
    if cols[0] is None or cols[2] is None:
        raise IndexNotReady("the index is damaged (its collections are missing): run `python app.py index --rebuild`")
    return cols[0], cols[1], cols[2]


def write_document(
    client: Any, series: str, key: str, raw: str, meta: dict[str, Any], nodes: list[Any], second: dict[str, list[float]]
) -> None:
    """One document's record, second vectors and units, under its key. Leftovers
    of an earlier attempt killed midway are dropped first; readers see none of it until the
    pointer lists the key."""
    from llama_index.vector_stores.chroma import ChromaVectorStore

    units, sec, docs = open_series(client, series, create=True)
    if docs.get(ids=[key], include=[])["ids"]:  # an earlier attempt got this far (a lookup by id: no scan)
        for col in (units, sec):
            col.delete(where={"doc_key": key})
    # the record first: a killed attempt leaves a record saying its units may exist (readers trust
    # only keys the pointer lists, so a record alone means nothing to them)
    docs.upsert(ids=[key], embeddings=[[1.0]], documents=[raw], metadatas=[meta])
    ids = list(second)
    for i in range(0, len(ids), 1024):
        part = ids[i : i + 1024]
        sec.add(ids=part, embeddings=[second[x] for x in part], metadatas=[{"doc_key": key}] * len(part))
    vs = ChromaVectorStore(chroma_collection=units)
    for i in range(0, len(nodes), 256):
        vs.add(nodes[i : i + 256])


def document_records(client: Any, series: str, keys: list[str]) -> list[dict[str, Any]]:
    """The records ({"key", "raw", "meta"}) of the documents `keys` that exist, in that order."""
    docs = _get(client, series + DOCS_SUFFIX)
    found: dict[str, dict[str, Any]] = {}
    for i in range(0, len(keys), 500) if docs is not None else ():
        got = docs.get(ids=keys[i : i + 500], include=["metadatas", "documents"])
        for k, m, raw in zip(got["ids"], got["metadatas"], got["documents"], strict=True):
            found[k] = {"key": k, "raw": raw, "meta": m}
    return [found[k] for k in keys if k in found]


def units_of(client: Any, series: str, keys: list[str]) -> int:
    return sum(int(r["meta"].get("units", 0)) for r in document_records(client, series, keys))


def count_units(client: Any, series: str, keys: list[str]) -> int:
    """How many units the documents `keys` really have in the store (health checks)."""
    units = client.get_collection(series + UNITS_SUFFIX)
    total = 0
    for i in range(0, len(keys), 100):
        total += len(units.get(where={"doc_key": {"$in": keys[i : i + 100]}}, include=[])["ids"])
    return total


def prune(client: Any, settings: Settings, keep: IndexInfo, previous: IndexInfo | None = None) -> None:
    """Drop what no manifest in use lists: documents replaced or removed (their units, vectors and
    record), other series, builds of the previous layout. Kept: the current and the previous
    manifest, and every document a running reader holds a fresh lease on (see `reader_lease`)."""
    prefix = settings.collection_prefix
    with _readers_guard(settings, exclusive=True):  # no reader takes a lease between reading them and dropping
        held = set(keep.keys) | (set(previous.keys) if previous is not None else set()) | leased(settings)
        units, sec, docs = open_series(client, keep.collection, create=True)
        gone = [k for k in docs.get(include=[])["ids"] if k not in held]
        for i in range(0, len(gone), 100):
            part = gone[i : i + 100]
            for col in (units, sec):
                col.delete(where={"doc_key": {"$in": part}})
            docs.delete(ids=part)
        series = {keep.collection} | ({previous.collection} if previous is not None else set()) | {
            n.split("#", 1)[1] for n in held if n.startswith("series#")
        }
        for col in client.list_collections():
            name = col if isinstance(col, str) else col.name
            base = name.removesuffix(UNITS_SUFFIX).removesuffix(SECOND_SUFFIX).removesuffix(DOCS_SUFFIX)
            other_series = name.startswith(f"{prefix}-series-") and base not in series
            if name.startswith((f"{prefix}-build-", f"{prefix}-d-")) or other_series:
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
    data = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "collections": sorted(c for c in collections if c),
        "heartbeat": time.time(),
    }
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
                    raise StoreUnavailable(
                        f"cannot write to the data folder {settings.data_dir}: {exc.strerror}{advice(exc)}"
                    ) from exc
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
