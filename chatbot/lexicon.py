"""Word-by-word equivalents across French, English and German, from Debian's FreeDict
dictionaries (GPL / CC-BY-SA, installed with apt: dict-freedict-fra-eng, -eng-fra, -deu-eng,
-eng-deu, -deu-fra, -fra-deu).

Simplifies: no translation model ships offline, but a question word whose dictionary
equivalent occurs in a sentence ("kritisiert" -> "criticism", "Äthiopien" -> "Ethiopia") is
evidence that the sentence answers it. Only single-word entries are kept, folded (lower case,
no accents); both directions of every dictionary are merged into one symmetric map.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

DICT_DIR = Path("/usr/share/dictd")
PAIRS = ("fra-eng", "eng-fra", "deu-eng", "eng-deu", "deu-fra", "fra-deu")
_B64 = {ch: i for i, ch in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_WORD = re.compile(r"^[^\W\d_]{3,}$")


def _b64(s: str) -> int:
    n = 0
    for ch in s:
        n = n * 64 + _B64[ch]
    return n


def _translations(entry: str) -> list[str]:
    lines = entry.split("\n")[1:]
    out: list[str] = []
    for line in lines:
        if not line.strip():
            break
        if line.startswith("   ") or line.lstrip().startswith(("see:", "Note:", "Synonym")):
            continue
        line = re.sub(r"<[^>]*>|\[[^\]]*\]|\([^)]*\)|^\s*\d+\.\s*", "", line)
        out += [w.strip() for w in re.split(r"[,;]", line) if w.strip()]
    return out


@lru_cache(maxsize=1)
def equivalence(folder: str = str(DICT_DIR)) -> dict[str, frozenset[str]]:
    """Folded word -> folded single-word equivalents in the other languages ({} without dictionaries)."""
    from chatbot.question import fold

    graph: dict[str, set[str]] = {}
    for pair in PAIRS:
        index, data_path = Path(folder) / f"freedict-{pair}.index", Path(folder) / f"freedict-{pair}.dict.dz"
        if not index.exists() or not data_path.exists():
            continue
        with gzip.open(data_path) as fh:
            data = fh.read()
        for line in index.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) != 3 or parts[0].startswith("00database"):
                continue
            head = fold(parts[0])
            if not _WORD.match(head):
                continue
            start, length = _b64(parts[1]), _b64(parts[2])
            entry = data[start : start + length].decode("utf-8", errors="replace")
            for t in _translations(entry):
                t = fold(t)
                if _WORD.match(t) and t != head:
                    graph.setdefault(head, set()).add(t)
                    graph.setdefault(t, set()).add(head)
    return {k: frozenset(v) for k, v in graph.items()}


def available(folder: str = str(DICT_DIR)) -> bool:
    return any((Path(folder) / f"freedict-{p}.index").exists() for p in PAIRS)


def stem(word: str) -> str:
    """The key words are matched on: a prefix, so inflections meet (criticised / criticism)."""
    return word[:6] if len(word) > 6 else word


class Lexicon:
    """The symmetric map as a read-only SQLite table: a build looks up its corpus vocabulary
    (a few thousand words) in milliseconds instead of reading all ~900k entries (~2 s)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lookup(self, words: Iterable[str]) -> dict[str, frozenset[str]]:
        import sqlite3

        todo = sorted(set(words))
        out: dict[str, frozenset[str]] = {}
        con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            for i in range(0, len(todo), 500):  # SQLite's limit on bound parameters
                part = todo[i : i + 500]
                rows = con.execute(f"SELECT word, equivalents FROM lexicon WHERE word IN ({','.join('?' * len(part))})", part)
                out.update((w, frozenset(e.split("\t"))) for w, e in rows)
        finally:
            con.close()
        return out


def load(cache_dir: Path | None = None, folder: str = str(DICT_DIR)) -> Lexicon | dict[str, frozenset[str]]:
    """`equivalence()` through a SQLite file in `cache_dir`, written once per machine (parsing the
    dictionaries takes ~10 s); the whole map in memory when there is no cache folder or it cannot
    be written; {} without dictionaries."""
    import os
    import sqlite3

    if not available(folder):
        return {}
    if cache_dir is None:
        return equivalence(folder)
    sig = "-".join(
        str(int((Path(folder) / f"freedict-{p}.index").stat().st_mtime))
        for p in PAIRS
        if (Path(folder) / f"freedict-{p}.index").exists()
    )
    path = cache_dir / f"lexicon-{sig.replace('-', '')[-40:]}.sqlite3"
    if path.exists():
        return Lexicon(path)
    graph = equivalence(folder)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # several indexers may fill the cache at once
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(tmp)
        with con:
            con.execute("CREATE TABLE lexicon (word TEXT PRIMARY KEY, equivalents TEXT NOT NULL)")
            con.executemany("INSERT INTO lexicon VALUES (?, ?)", ((k, "\t".join(sorted(v))) for k, v in graph.items() if v))
        con.close()
        tmp.replace(path)
    except (OSError, sqlite3.Error):
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return graph
    return Lexicon(path)


def for_corpus(vocabulary: set[str], graph: Lexicon | dict[str, frozenset[str]]) -> dict[str, list[str]]:
    """Stem of a word in another language -> the corpus words it translates. Built at index time
    so serving loads only this small map, never the dictionaries."""
    found = graph.lookup(vocabulary) if isinstance(graph, Lexicon) else graph
    out: dict[str, set[str]] = {}
    for w in vocabulary:
        for e in found.get(w, ()):
            out.setdefault(stem(e), set()).add(w)
    return {k: sorted(v) for k, v in out.items()}
