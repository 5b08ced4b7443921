"""Hybrid retrieval over the current Chroma index: dense (llama-index over Chroma) + BM25 +
best-sentence similarity, fused by weighted reciprocal rank.

Simplifies: the index is small enough per document that every unit's metadata and every
sentence vector fit in memory; Chroma answers the dense chunk query, BM25 the lexical one, and a
matrix product scores sentences. Reader comments are down-weighted unless the question is
about readers or names a commenter, because they repeat the article's headline figures.
"""

from __future__ import annotations

import copy
import functools
import math
import re
import sys
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chatbot.errors import IndexNotReady
from chatbot.settings import Settings

LOAD_BATCH = 100  # documents per Chroma read when loading (a `$in` over every key at once grows slow)

# Words that make a question about the readers' comments, in fr/en/de.
_ABOUT_READERS = re.compile(
    r"\b(comment\w*|comments?|lecteurs?|lectrices?|readers?|leser\w*|kommentar\w*|opinions?|meinung\w*|avis|"
    r"pens\w+|think|denken|commenter\w*|kommentier\w*|wrote|écrit|schrieb|geschrieben|bubble|bulle|blase)\b",
    re.I,
)


# Words that point at the related-article teasers.
_ABOUT_RELATED = re.compile(
    r"\b(related|connexes?|other articles?|autres? articles?|verwandte\w*|ähnliche\w*|weitere\w* artikel|teaser)\b", re.I
)


@dataclass
class Chunk:
    id: str
    text: str
    meta: dict[str, Any]
    sentences: list[int] = field(default_factory=list)  # indexes into Retriever.sentences


@dataclass
class Sentence:
    id: str
    text: str
    parent: str
    start: int
    end: int


@dataclass
class Hit:
    chunk: Chunk
    score: float  # fused
    dense: float  # cosine of the chunk
    sentence: float  # best sentence cosine
    bm25: float


class Retriever:
    """Every served document's units, loaded once; `view(ids)` is the same retriever confined to some
    documents (its own BM25, sentence rows, statistics and Chroma filter), sharing the models."""

    def __init__(self, settings: Settings, embedder: Any, client: Any = None, previous: Retriever | None = None) -> None:
        """Load the current index; documents `previous` (the retriever being replaced) already
        loaded are taken from it, so following an index that gained one document reads one document."""
        from index import store

        self.settings = settings
        self.embedder = embedder
        client = client or store.make_client(settings)
        client, info = store.open_current(settings, client)
        if info.embedder != embedder.model_id:
            raise IndexNotReady(
                f"the index was built with {info.embedder}, but the configured embedder is {embedder.model_id}: "
                "run `python app.py index --rebuild`"
            )
        self.info = info
        keys = info.keys
        old = previous._parts if previous is not None and previous.info.collection == info.collection else {}
        new = _load_parts(client, settings, info.collection, [k for k in keys if k not in old])
        self._parts: dict[str, _Part] = {key: old.get(key) or new[key] for key in keys}
        self.all_documents = {p.doc_id: p.info for p in self._parts.values()}
        self._units = store.open_series(client, info.collection)[0]
        chunks: dict[str, Chunk] = {}
        chunk_vectors: dict[str, Any] = {}
        sentences: list[Sentence] = []
        second: dict[str, Any] = {}
        self._doc_rows: dict[str, list[int]] = {}
        self._doc_chunks: dict[str, list[str]] = {}
        ordered = sorted(self._parts.values(), key=lambda p: p.doc_id)
        for part in ordered:
            self._doc_chunks[part.doc_id] = [c.id for c in part.chunks]
            for c, v in zip(part.chunks, part.chunk_vectors, strict=True):
                chunks[c.id] = c
                chunk_vectors[c.id] = v
            self._doc_rows[part.doc_id] = list(range(len(sentences), len(sentences) + len(part.sentences)))
            sentences.extend(part.sentences)
            second.update(part.second)
        self._all_chunks = chunks
        self._chunk_vectors = chunk_vectors
        self._all_sentences = sentences
        self._all_matrix = _stack([p.sentence_vectors for p in ordered])
        self._second_model, self._all_second = self._second(second, sentences, previous)
        self._reranker: Any = previous._reranker if previous is not None else self._load_reranker()
        self._setup(tuple(self.all_documents))

    def view(self, doc_ids: tuple[str, ...]) -> Retriever:
        """This retriever confined to `doc_ids` (known ids of this index)."""
        new = copy.copy(self)
        for name in ("word_cases", "equivalents"):  # cached properties of the wider view
            new.__dict__.pop(name, None)
        new._setup(doc_ids)
        return new

    def document_chunks(self, doc_id: str) -> list[Chunk]:
        """A document's chunks, as the index holds them (any document of the index, not only the scope's)."""
        return [self._all_chunks[cid] for cid in self._doc_chunks.get(doc_id, [])]

    def _setup(self, doc_ids: tuple[str, ...]) -> None:
        self.scope = tuple(doc_ids)
        every = len(doc_ids) == len(self.all_documents)
        self.documents = {d: self.all_documents[d] for d in doc_ids}
        rows = [i for d in doc_ids for i in self._doc_rows.get(d, [])]
        self.sentences = [self._all_sentences[i] for i in rows]
        self.chunks = {}
        for d in doc_ids:
            for cid in self._doc_chunks.get(d, []):
                c = self._all_chunks[cid]
                self.chunks[cid] = Chunk(c.id, c.text, c.meta)
        for n, x in enumerate(self.sentences):
            self.chunks[x.parent].sentences.append(n)
        take = np.asarray(rows, dtype=np.int64)
        self.sentence_matrix = self._all_matrix if every else self._all_matrix[take].reshape(len(rows), -1)
        self.second_matrix = self._all_second if every else self._all_second[take].reshape(len(rows), -1)
        self._dense = self._dense_retrievers(doc_ids)
        # the scope's chunk vectors, normalised once: a wide scope's dense search, and the cosine of
        # every chunk that competes from outside the dense top (one product per question)
        self._chunk_ids: list[str] = list(self.chunks)
        self._chunk_row = {c: i for i, c in enumerate(self._chunk_ids)}
        m = np.asarray([self._chunk_vectors[c] for c in self._chunk_ids], dtype="float32").reshape(len(self._chunk_ids), -1)
        self._chunk_matrix = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        self._bm25 = self._bm25_retriever()
        self.topic_words = self._topic_words()
        self._authors = {str(c.meta["author"]) for c in self.chunks.values() if c.meta.get("author")}
        self.sentence_language = [
            self.chunks[x.parent].meta.get("language")
            or self.documents.get(str(self.chunks[x.parent].meta.get("doc_id")), {}).get("language", "")
            for x in self.sentences
        ]
        self.idf = self._idf()

    @functools.cached_property
    def url_index(self) -> dict[str, str]:
        """Document ids by the URL keys that name them (their page URL, and an id that is a URL)."""
        from chatbot.documents import url_key

        docs = self.all_documents
        return {url_key(d["url"]): i for i, d in docs.items() if d["url"]} | {url_key(i): i for i in docs}

    @functools.cached_property
    def word_cases(self) -> tuple[frozenset[str], frozenset[str]]:
        """(words the corpus writes in lower case somewhere: ordinary words; words it only writes
        capitalised: its names), folded."""
        from chatbot.question import fold

        lower: set[str] = set()
        upper: set[str] = set()
        for c in self.chunks.values():
            for w in re.findall(r"[^\W\d_][\w'’-]*", c.text):
                (upper if w[:1].isupper() else lower).add(fold(w))
        return frozenset(lower), frozenset(upper - lower)

    def _load_reranker(self) -> Any:
        """Optional cross-encoder (any sentence-transformers CrossEncoder name or folder)."""
        if not self.settings.rerank_model:
            return None
        from index.embed import require_sentence_transformers

        require_sentence_transformers(f"the reranker CHATBOT_RERANK_MODEL={self.settings.rerank_model!r}")
        from llama_index.core.postprocessor import SentenceTransformerRerank

        from chatbot.errors import EmbedderUnavailable

        try:
            return SentenceTransformerRerank(
                model=self.settings.rerank_model, top_n=self.settings.rerank_candidates, device="cpu"
            )
        except Exception as exc:  # hub unreachable or a bad folder: say which setting to fix
            raise EmbedderUnavailable(
                f"cannot load the reranker CHATBOT_RERANK_MODEL={self.settings.rerank_model!r}: {exc}"
            ) from exc

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        """Reorder the first candidates by cross-encoder score (fused order breaks ties)."""
        if self._reranker is None or not hits:
            return hits
        from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

        head, tail = hits[: self.settings.rerank_candidates], hits[self.settings.rerank_candidates :]
        nodes = [NodeWithScore(node=TextNode(id_=h.chunk.id, text=h.chunk.text), score=h.score) for h in head]
        ranked = self._reranker.postprocess_nodes(nodes, query_bundle=QueryBundle(query))
        by_id = {h.chunk.id: h for h in head}
        return (
            [by_id[n.node.node_id] for n in ranked]
            + [h for h in head if h.chunk.id not in {n.node.node_id for n in ranked}]
            + tail
        )

    def _second(self, found: dict[str, Any], sentences: list[Sentence], previous: Retriever | None = None) -> tuple[Any, np.ndarray]:
        """The second embedder (USE) and its vectors of every sentence, in `sentences` order.
        Its scores spread wider than e5's and it errs differently, so both feed the answer models.
        The vectors come from the build (computed at index time); any missing are computed here."""
        if not self.settings.second_model:
            return None, np.zeros((len(sentences), 0), dtype="float32")
        from index.embed import load_one

        model = previous._second_model if previous is not None and previous._second_model is not None else None
        model = model or load_one(self.settings.second_model, self.settings.embed_threads)
        missing = [x for x in sentences if x.id not in found]
        if missing:
            for x, v in zip(missing, model.get_text_embedding_batch([x.text for x in missing]), strict=True):
                found[x.id] = v
        matrix = np.asarray([found[x.id] for x in sentences], dtype="float32").reshape(len(sentences), -1)
        return model, matrix

    @functools.cached_property
    def equivalents(self) -> dict[str, list[str]]:
        """Dictionary equivalents of the scoped documents' words (merged), read when first needed:
        parsing a thousand documents' maps at start-up took 2 s."""
        import json

        merged: dict[str, set[str]] = {}
        for d in self.scope:
            for k, v in json.loads(zlib.decompress(self.all_documents[d]["lexicon"])).items():
                merged.setdefault(k, set()).update(v)
        return {k: sorted(v) for k, v in merged.items()}

    def second_query(self, query: str) -> np.ndarray:
        if self._second_model is None:
            return np.zeros(0, dtype="float32")
        return np.asarray(self._second_model.get_query_embedding(query), dtype="float32")

    # ---- loading -------------------------------------------------------------------------
    def _idf(self) -> dict[str, float]:
        """Inverse sentence frequency of folded words: rare words say more about which sentence answers."""
        from chatbot.question import folded_words

        counts: dict[str, int] = {}
        for s in self.sentences:
            for w in folded_words(s.text):
                counts[w] = counts.get(w, 0) + 1
        n = max(1, len(self.sentences))
        return {w: float(np.log((n + 1) / (c + 0.5))) for w, c in counts.items()}

    def _dense_retrievers(self, doc_ids: tuple[str, ...]) -> list[Any]:
        """A llama-index retriever over the series' Chroma collection, filtered to the scope's
        documents (their keys: a replaced version lingers until pruned). None past
        `dense_store_max_units` units in the index: the scope is then scored in memory from the
        same vectors, exactly, because a filtered Chroma query slows with the collection's size
        (one document's key in 35,000 units: 36 ms, with the unit filter 80 ms; unfiltered 6 ms;
        the product over its chunks: well under 1 ms)."""
        if self.info.units > self.settings.dense_store_max_units or not self.chunks:
            return []
        from llama_index.core import VectorStoreIndex
        from llama_index.core.vector_stores import (
            ExactMatchFilter,
            FilterCondition,
            FilterOperator,
            MetadataFilter,
            MetadataFilters,
        )
        from llama_index.vector_stores.chroma import ChromaVectorStore

        # readers never split or insert: without a transformation of its own, llama-index builds its
        # default splitter, whose tokenizer (tiktoken) takes ~0.4 s to load
        index = VectorStoreIndex.from_vector_store(
            ChromaVectorStore(chroma_collection=self._units), embed_model=self.embedder, transformations=[_unchanged()]
        )
        keys = [str(self.documents[d]["key"]) for d in doc_ids]
        in_scope = MetadataFilter(key="doc_key", value=keys, operator=FilterOperator.IN)
        filters = MetadataFilters(filters=[ExactMatchFilter(key="unit", value="chunk"), in_scope], condition=FilterCondition.AND)
        return [index.as_retriever(similarity_top_k=min(self.settings.dense_top_k, len(self.chunks)), filters=filters)]

    def dense_scores(self, query: str, qvec: np.ndarray) -> dict[str, float]:
        """Cosine of the best chunks of the scope (Chroma through llama-index, or in memory)."""
        if not self._dense:
            if not self._chunk_ids:
                return {}
            scores = self.chunk_cosines(qvec)
            top = np.argsort(-scores)[: self.settings.dense_top_k]
            return {self._chunk_ids[i]: float(scores[i]) for i in top}
        from llama_index.core.schema import QueryBundle

        found: dict[str, float] = {}
        bundle = QueryBundle(query, embedding=qvec.tolist())
        for retriever in self._dense:
            # llama-index reports Chroma's cosine distance d as exp(-d): back to the cosine 1 - d, the
            # scale of the in-memory path and of `chunk_cosine` (the models see one scale)
            found.update({n.node.node_id: 1.0 + math.log(max(float(n.score or 0.0), 1e-12)) for n in retriever.retrieve(bundle)})
        return dict(sorted(found.items(), key=lambda kv: -kv[1])[: self.settings.dense_top_k])

    def chunk_cosines(self, qvec: np.ndarray) -> np.ndarray:
        """The cosine of each of the scope's chunks (in `_chunk_ids` order) with the query."""
        if not self._chunk_ids:
            return np.zeros(0, dtype="float32")
        return self._chunk_matrix @ (qvec / max(float(np.linalg.norm(qvec)), 1e-12))

    def chunk_cosine(self, chunk_id: str, qvec: np.ndarray) -> float:
        """The cosine of one of the scope's chunks with the query: for a chunk that competes without
        being among the dense top (a sentence's best match, an asked position)."""
        row = self._chunk_row.get(chunk_id)
        if row is None:
            return 0.0
        return float(self._chunk_matrix[row] @ (qvec / max(float(np.linalg.norm(qvec)), 1e-12)))

    def _bm25_retriever(self) -> Any:
        import logging

        import bm25s.stopwords as sw
        import Stemmer
        from llama_index.core.schema import BaseNode, TextNode
        from llama_index.retrievers.bm25 import BM25Retriever

        nodes: list[BaseNode] = [TextNode(id_=c.id, text=_lexical_text(c)) for c in self.chunks.values()]
        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs index building at INFO/DEBUG
        stop = sorted(set(sw.STOPWORDS_FRENCH) | set(sw.STOPWORDS_EN) | set(sw.STOPWORDS_GERMAN))
        return BM25Retriever.from_defaults(
            nodes=nodes,
            stemmer=Stemmer.Stemmer("french"),
            language=stop,  # type: ignore[arg-type]  # forwarded to bm25s as a stop-word list
            similarity_top_k=min(self.settings.bm25_top_k, len(nodes)),
        )

    def _topic_words(self) -> set[str]:
        """Words in more than a quarter of the chunks: they say what the corpus is about, not which passage."""
        counts: dict[str, int] = {}
        for c in self.chunks.values():
            for w in set(re.findall(r"\w+", c.text.lower())):
                counts[w] = counts.get(w, 0) + 1
        return {w for w, n in counts.items() if n > max(3, len(self.chunks) / 4)}

    # ---- querying ------------------------------------------------------------------------
    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self.embedder.get_query_embedding(text), dtype="float32")

    def search(self, query: str, qvec: np.ndarray, about_readers: bool | None = None) -> list[Hit]:
        s = self.settings
        try:
            dense = self.dense_scores(query, qvec)
        except Exception as exc:  # a Chroma server that went away: say so, the next call may succeed again
            from chatbot.errors import StoreUnavailable

            raise StoreUnavailable(
                f"the Chroma store did not answer: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
            ) from exc
        bm25 = {n.node.node_id: float(n.score or 0.0) for n in self._bm25.retrieve(query)} if query.strip() else {}
        sent_scores = self.sentence_matrix @ qvec if len(self.sentences) else np.zeros(0)
        best_sent: dict[str, float] = {}
        for i, sc in enumerate(sent_scores):
            pid = self.sentences[i].parent
            best_sent[pid] = max(best_sent.get(pid, -1.0), float(sc))
        named = self.named_authors(query)
        if about_readers is None:
            about_readers = self.asks_about_readers(query)
        about_related = self.asks_about_related(query)
        fused: dict[str, float] = {}
        for weight, ranking in (
            (s.dense_weight, dense),
            (s.dense_weight, best_sent),
            (s.bm25_weight, {k: v for k, v in bm25.items() if v > 0}),
        ):
            for rank, cid in enumerate(sorted(ranking, key=lambda c: -ranking[c])):
                fused[cid] = fused.get(cid, 0.0) + weight / (s.rrf_k + rank + 1)
        cosines = self.chunk_cosines(qvec)  # for chunks found by BM25 or their best sentence alone
        hits = []
        for cid, score in fused.items():
            chunk = self.chunks.get(cid)
            if chunk is None:
                continue
            if chunk.meta.get("section") == "comment" and not about_readers:
                score *= s.comment_weight
            if about_related and chunk.meta.get("section") != "related":
                score *= s.comment_weight
            if named and chunk.meta.get("author") in named:
                score *= s.named_author_boost  # the question names who wrote it: that is the passage
            cosine = dense[cid] if cid in dense else float(cosines[self._chunk_row[cid]])
            hits.append(Hit(chunk, score, cosine, best_sent.get(cid, 0.0), bm25.get(cid, 0.0)))
        hits.sort(key=lambda h: -h.score)
        return self.rerank(query, hits)

    def sentence_scores(self, qvec: np.ndarray, chunk: Chunk) -> list[tuple[Sentence, float]]:
        idx = chunk.sentences
        if not idx:
            return []
        scores = self.sentence_matrix[idx] @ qvec
        return [(self.sentences[i], float(sc)) for i, sc in zip(idx, scores, strict=True)]

    def named_authors(self, query: str) -> set[str]:
        q = query.lower()
        return {a for a in self._authors if a.lower() in q}

    def asks_about_readers(self, query: str) -> bool:
        return bool(_ABOUT_READERS.search(query) or self.named_authors(query))

    def asks_about_related(self, query: str) -> bool:
        return bool(_ABOUT_RELATED.search(query))

    def corpus_text(self) -> str:
        return "\n".join(c.text for c in self.chunks.values())


@dataclass(frozen=True)
class _Part:
    """One document's units as loaded from its collections (never changed once loaded)."""

    doc_id: str
    info: dict[str, Any]
    chunks: list[Chunk]
    chunk_vectors: np.ndarray  # float32, a row per chunk
    sentences: list[Sentence]  # in text order
    sentence_vectors: np.ndarray  # float32, a row per sentence
    second: dict[str, np.ndarray]  # sentence id -> its USE vector


# What readers use of a unit's metadata (the embedding text, say, stays in the store); strings
# every unit of a document repeats are shared, not copied: 35,000 units took 800 MB otherwise.
_KEEP = frozenset(
    ("author", "date", "doc_id", "doc_key", "end", "heading", "kind", "language", "section", "source", "speaker", "start", "title", "unit", "parent", "count")
)
_SHARED = frozenset(("doc_id", "doc_key", "kind", "language", "section", "source", "title", "unit", "date", "author", "heading"))


def _compact(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: sys.intern(v) if k in _SHARED and isinstance(v, str) else v for k, v in meta.items() if k in _KEEP}



def _load_parts(client: Any, settings: Settings, series: str, keys: list[str]) -> dict[str, _Part]:
    """The documents `keys` of a series, read LOAD_BATCH documents at a time."""
    from index import store

    units, second_col, docs = store.open_series(client, series)
    out: dict[str, _Part] = {}
    for i in range(0, len(keys), LOAD_BATCH):
        batch = keys[i : i + LOAD_BATCH]
        where = {"doc_key": {"$in": batch}}
        got = units.get(where=where, include=["embeddings", "metadatas", "documents"])
        rows: dict[str, list[tuple[str, Any, dict[str, Any], str]]] = {k: [] for k in batch}
        for uid, emb, meta, text in zip(got["ids"], got["embeddings"], got["metadatas"], got["documents"], strict=True):
            rows[str(meta.get("doc_key"))].append((uid, emb, _compact(meta), text))
        second: dict[str, Any] = {}
        if second_col is not None and settings.second_model:
            got2 = second_col.get(where=where, include=["embeddings"])
            second = dict(zip(got2["ids"], got2["embeddings"], strict=True))
        records = {r["key"]: r["meta"] for r in store.document_records(client, series, batch)}
        for key in batch:
            if key not in records or not rows[key]:
                raise IndexNotReady("the index is damaged (a document's units are missing): run `python app.py index --rebuild`")
            out[key] = _part(key, records[key], rows[key], second)
    return out


def _part(key: str, record: dict[str, Any], rows: list[tuple[str, Any, dict[str, Any], str]], second: dict[str, Any]) -> _Part:
    chunks = [Chunk(uid, text, meta) for uid, _, meta, text in rows if meta.get("unit") == "chunk"]
    vectors = _matrix([emb for _, emb, meta, _ in rows if meta.get("unit") == "chunk"])
    ids = {c.id for c in chunks}
    sents = sorted((r for r in rows if r[2].get("unit") != "chunk" and r[2].get("parent", "") in ids), key=lambda r: int(r[2]["start"]))
    sentences = [Sentence(uid, text, sys.intern(str(meta["parent"])), int(meta["start"]), int(meta["end"])) for uid, _, meta, text in sents]
    own_second = {x.id: np.asarray(second[x.id], dtype="float32") for x in sentences if x.id in second}
    info = _document(key, record)
    return _Part(str(record["doc_id"]), info, chunks, vectors, sentences, _matrix([r[1] for r in sents]), own_second)


def _matrix(rows: list[Any]) -> np.ndarray:
    """Rows as one float32 matrix of their own (not views keeping a whole batch from the store alive)."""
    return np.array(rows, dtype="float32").reshape(len(rows), -1)


def _stack(matrices: list[np.ndarray]) -> np.ndarray:
    matrices = [m for m in matrices if len(m)]
    return np.concatenate(matrices).astype("float32", copy=False) if matrices else np.zeros((0, 0), dtype="float32")


def _document(key: str, m: dict[str, Any]) -> dict[str, Any]:
    """What the index knows of a document (title, language, date, source, lexicon…), from its record."""
    import json

    return {
        "key": key,
        "source": m.get("source", ""),
        "language": m.get("language", ""),
        "title": m.get("title", ""),
        "author": m.get("author", ""),
        "date": m.get("date", ""),
        "url": m.get("url", ""),
        "units": int(m.get("units", 0)),
        "added_at": int(m.get("added_at", 0)),
        "kind": m.get("kind", "article"),
        "headings": json.loads(m.get("headings") or "[]"),
        "lexicon": zlib.compress((m.get("lexicon") or "{}").encode()),  # JSON, read by `equivalents` when a scope needs it
    }


def _lexical_text(c: Chunk) -> str:
    extra = " ".join(str(c.meta.get(k, "")) for k in ("author", "speaker", "heading") if c.meta.get(k))
    return f"{extra}\n{c.text}" if extra else c.text


def _unchanged() -> Any:
    from llama_index.core.schema import TransformComponent

    class Unchanged(TransformComponent):
        def __call__(self, nodes: Any, **kwargs: Any) -> Any:
            return nodes

    return Unchanged()
