"""A per-machine cache of passage vectors, keyed by embedder and text.

Simplifies: embedding is the slow part of indexing (e5 takes ~0.3 s per batch of long chunks on
two cores), and the same text always gets the same vector from the same model, whatever the batch
(checked for e5: bit-identical; USE: within 2e-7). So a rebuild, a re-added document or a second
data folder reuses vectors computed once on this machine. One SQLite file in the cache folder:
crash-safe, shared safely by concurrent indexers. The cache is an optimisation only: when it
cannot be opened, read or written (read-only home, full disk, locked too long), the vectors are
computed as if it were not there. Query vectors are never cached, nor are the vectors of a
sentence-transformers model (a folder's model can change under the same name).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_FILE = "vectors.sqlite3"
MAX_VECTORS = 100_000  # ~150 MB of e5 vectors; settings.vector_cache_max overrides it
_BUSY_TIMEOUT_S = 5.0  # concurrent indexers wait this long for a lock, then compute without the cache


def _key(model_id: str, text: str) -> bytes:
    return hashlib.blake2b(f"{model_id}\0{text}".encode(), digest_size=20).digest()


def _connect(folder: Path) -> sqlite3.Connection:
    folder.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(folder / _FILE, timeout=_BUSY_TIMEOUT_S)
    con.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vec BLOB NOT NULL)")
    return con


def embed_cached(
    folder: Path | None,
    model_id: str,
    texts: Sequence[str],
    compute: Callable[[list[str]], list[list[float]]],
    max_vectors: int = MAX_VECTORS,
) -> list[list[float]]:
    """Vectors of `texts`: from the cache where present, the rest from `compute` (then stored).
    Past `max_vectors` the oldest stored are dropped first."""
    if folder is None or not texts:
        return compute(list(texts))
    keys = [_key(model_id, t) for t in texts]
    found: dict[bytes, list[float]] = {}
    try:
        with _connect(folder) as con:
            for i in range(0, len(keys), 500):  # SQLite's limit on bound parameters
                part = keys[i : i + 500]
                rows = con.execute(f"SELECT key, vec FROM vectors WHERE key IN ({','.join('?' * len(part))})", part)
                found.update((k, np.frombuffer(v, dtype="<f4").tolist()) for k, v in rows)
    except (sqlite3.Error, OSError) as exc:
        log.debug("vector cache unreadable (%s): computing every vector", exc)
        return compute(list(texts))
    missing = [i for i, k in enumerate(keys) if k not in found]
    if missing:
        computed = compute([texts[i] for i in missing])
        new = {keys[i]: v for i, v in zip(missing, computed, strict=True)}
        found.update(new)
        try:
            with _connect(folder) as con:
                con.executemany(
                    "INSERT OR IGNORE INTO vectors (key, vec) VALUES (?, ?)",
                    [(k, np.asarray(v, dtype="<f4").tobytes()) for k, v in new.items()],
                )
                # rowids grow with each insert, so the smallest are the oldest
                con.execute(
                    "DELETE FROM vectors WHERE rowid <= (SELECT MAX(rowid) FROM vectors) - ?", (max(1, max_vectors),)
                )
        except (sqlite3.Error, OSError) as exc:
            log.debug("vector cache not written (%s)", exc)
    return [found[k] for k in keys]
