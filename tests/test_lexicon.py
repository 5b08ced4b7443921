"""The FreeDict equivalents: parsed from dictd files, cached once per machine as SQLite."""

from __future__ import annotations

import gzip
from pathlib import Path

from chatbot import lexicon

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64(n: int) -> str:
    out = ""
    while True:
        out = _B64[n % 64] + out
        n //= 64
        if not n:
            return out


def _dictionary(folder: Path, pair: str, entries: dict[str, str]) -> None:
    data, index = b"", []
    for head, body in entries.items():
        entry = f"{head}\n{body}\n\n".encode()
        index.append(f"{head}\t{_b64(len(data))}\t{_b64(len(entry))}")
        data += entry
    (folder / f"freedict-{pair}.index").write_text("\n".join(index) + "\n", encoding="utf-8")
    with gzip.open(folder / f"freedict-{pair}.dict.dz", "wb") as fh:
        fh.write(data)


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "dictd"
    folder.mkdir()
    _dictionary(folder, "fra-eng", {"maison": "house, home", "levée": "raise (of funds); round", "été": "summer", "où": "where"})
    _dictionary(folder, "deu-eng", {"Haus": "house", "Sommer": "summer"})
    return folder


def test_equivalents_are_symmetric_folded_and_cross_dictionary(tmp_path: Path) -> None:
    graph = lexicon.equivalence(str(_folder(tmp_path)))
    assert graph["maison"] == {"house", "home"}
    assert graph["house"] == {"maison", "haus"}  # both dictionaries meet in the English word
    assert "levee" in graph["raise"]  # folded, the parenthesis dropped
    assert "ou" not in graph and "where" not in graph  # too short to be matched on


def test_sqlite_cache_gives_the_same_map_and_is_reused(tmp_path: Path) -> None:
    folder = str(_folder(tmp_path))
    cache = tmp_path / "cache"
    stored = lexicon.load(cache, folder)
    assert isinstance(stored, lexicon.Lexicon)
    vocabulary = {"maison", "summer", "haus", "absent"}
    expected = lexicon.for_corpus(vocabulary, lexicon.equivalence(folder))
    assert lexicon.for_corpus(vocabulary, stored) == expected
    assert expected[lexicon.stem("house")] == ["haus", "maison"]
    files = sorted(cache.iterdir())
    again = lexicon.load(cache, folder)
    assert isinstance(again, lexicon.Lexicon) and again.path == stored.path and sorted(cache.iterdir()) == files


def test_unwritable_cache_falls_back_to_the_map_in_memory(tmp_path: Path) -> None:
    folder = str(_folder(tmp_path))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    graph = lexicon.load(blocker / "cache", folder)  # a folder under a file cannot be made
    assert isinstance(graph, dict) and graph["maison"] == {"house", "home"}


def test_no_dictionaries_no_equivalents(tmp_path: Path) -> None:
    assert lexicon.load(tmp_path / "cache", str(tmp_path)) == {}
