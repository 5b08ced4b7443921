"""Retrieval scores the answer models read: one cosine scale whether Chroma or the in-memory path
scores the chunks, and a cosine for every chunk that competes (chatbot/retrieve.py)."""

from __future__ import annotations

import copy

import pytest

QUESTIONS = ("How much did Databricks raise?", "Wie viel Geld haben KI-Startups 2024 eingesammelt?")


@pytest.mark.parametrize("question", QUESTIONS)
def test_chroma_and_in_memory_scoring_give_the_same_cosines(bot: object, question: str) -> None:
    """A small index is scored by Chroma, a large one in memory from the same vectors: the models
    were fitted on one scale, so both must give it (llama-index reports Chroma's exp(-distance))."""
    r = bot.retriever  # type: ignore[attr-defined]
    qvec = r.embed_query(question)
    assert r._dense, "the shipped article's index is small enough for Chroma"
    chroma = r.dense_scores(question, qvec)
    wide = copy.copy(r)
    wide.settings = r.settings.model_copy(update={"dense_store_max_units": 0})
    wide._setup(r.scope)
    assert not wide._dense
    memory = wide.dense_scores(question, qvec)
    assert list(chroma) == list(memory)
    for cid, score in chroma.items():
        assert score == pytest.approx(memory[cid], abs=1e-4)
        assert score == pytest.approx(r.chunk_cosine(cid, qvec), abs=1e-4)


def test_every_competing_chunk_has_its_cosine(bot: object) -> None:
    """Chunks found by their best sentence or by BM25 but outside the dense top-k carry their own
    cosine, not 0 (which the ranker read as far below every other passage)."""
    r = bot.retriever  # type: ignore[attr-defined]
    question = QUESTIONS[0]
    qvec = r.embed_query(question)
    hits = r.search(question, qvec)
    outside = [h for h in hits if h.chunk.id not in r.dense_scores(question, qvec)]
    assert outside, "the article has more chunks than the dense top-k"
    for h in hits:
        assert h.dense == pytest.approx(r.chunk_cosine(h.chunk.id, qvec), abs=1e-4)
        assert 0.3 < h.dense < 1.0
