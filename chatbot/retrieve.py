"""Hybrid retrieval over the current Chroma index: dense (llama-index over Chroma) + BM25 +
best-sentence similarity, fused by weighted reciprocal rank.

Simplifies: the index is small enough per document that every unit's metadata and every
sentence vector fit in memory; Chroma answers the dense chunk query, BM25 the lexical one, and a
matrix product scores sentences. Reader comments are down-weighted unless the question is
about readers or names a commenter, because they repeat the article's headline figures.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chatbot.errors import IndexNotReady
from chatbot.settings import Settings

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
    def __init__(self, settings: Settings, embedder: Any, client: Any = None) -> None:
        from index import store

        self.settings = settings
        self.embedder = embedder
        client = client or store.make_client(settings)
        col, info = store.open_current(settings, client)
        if info.embedder != embedder.model_id:
            raise IndexNotReady(
                f"the index was built with {info.embedder}, but the configured embedder is {embedder.model_id}: "
                "run `python app.py index --rebuild`"
            )
        self.info = info
        got = col.get(include=["embeddings", "metadatas", "documents"])
        self.chunks: dict[str, Chunk] = {}
        self.sentences: list[Sentence] = []
        vectors: list[Any] = []
        sent_rows = []
        for uid, emb, meta, text in zip(got["ids"], got["embeddings"], got["metadatas"], got["documents"], strict=True):
            meta = {k: v for k, v in meta.items() if not k.startswith("_")}
            if meta.get("unit") == "chunk":
                self.chunks[uid] = Chunk(uid, text, meta)
            else:
                sent_rows.append((uid, emb, meta, text))
        sent_rows.sort(key=lambda r: (r[2]["doc_id"], r[2]["start"]))
        for uid, emb, meta, text in sent_rows:
            parent = self.chunks.get(meta.get("parent", ""))
            if parent is None:
                continue
            parent.sentences.append(len(self.sentences))
            self.sentences.append(Sentence(uid, text, parent.id, int(meta["start"]), int(meta["end"])))
            vectors.append(emb)
        self.sentence_matrix = np.asarray(vectors, dtype="float32").reshape(len(vectors), -1)
        self.documents = self._documents(client, info)
        self._dense = self._dense_retriever(col)
        self._bm25 = self._bm25_retriever()
        self.topic_words = self._topic_words()
        self._authors = {str(c.meta["author"]) for c in self.chunks.values() if c.meta.get("author")}
        self._second_model, self.second_matrix = self._second(client, info)
        self.sentence_language = [
            self.chunks[x.parent].meta.get("language")
            or self.documents.get(str(self.chunks[x.parent].meta.get("doc_id")), {}).get("language", "")
            for x in self.sentences
        ]
        self.idf = self._idf()
        self.equivalents = self._lexicon(client, info)
        self._reranker = self._load_reranker()

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

    def _second(self, client: Any, info: Any) -> tuple[Any, np.ndarray]:
        """The second embedder (USE) and its vectors of every sentence, in `self.sentences` order.
        Its scores spread wider than e5's and it errs differently, so both feed the answer models.
        The vectors come from the build (computed at index time); an older build without them
        gets them computed here once."""
        if not self.settings.second_model:
            return None, np.zeros((len(self.sentences), 0), dtype="float32")
        from index import store
        from index.embed import load_one

        model = load_one(self.settings.second_model, self.settings.embed_threads)
        ids = [s.id for s in self.sentences]
        col = store._get(client, info.collection + store.SECOND_SUFFIX)
        found: dict[str, Any] = {}
        if col is not None and ids:
            got = col.get(ids=ids, include=["embeddings"])
            found = dict(zip(got["ids"], got["embeddings"], strict=True))
        missing = [s for s in self.sentences if s.id not in found]
        if missing:
            for s, v in zip(missing, model.get_text_embedding_batch([s.text for s in missing]), strict=True):
                found[s.id] = v
        matrix = np.asarray([found[i] for i in ids], dtype="float32").reshape(len(ids), -1)
        return model, matrix

    def _lexicon(self, client: Any, info: Any) -> dict[str, list[str]]:
        import json

        from index import store

        col = store._get(client, info.collection + store.LEXICON_SUFFIX)
        if col is None:
            return {}
        got = col.get(ids=["lexicon"], include=["documents"])
        return json.loads(got["documents"][0]) if got["documents"] else {}

    def second_query(self, query: str) -> np.ndarray:
        if self._second_model is None:
            return np.zeros(0, dtype="float32")
        return np.asarray(self._second_model.get_query_embedding(query), dtype="float32")

    # ---- loading -------------------------------------------------------------------------
    def _documents(self, client: Any, info: Any) -> dict[str, dict[str, str]]:
        docs_col = client.get_collection(info.collection + "-docs")
        got = docs_col.get(include=["metadatas"])
        docs = {m["doc_id"]: {"source": m["source"], "cleaned": m.get("cleaned", "")} for m in got["metadatas"]}
        from chatbot.language import detect_language

        for d in docs.values():
            d["language"] = detect_language(d["cleaned"][:2000], self.settings.languages)
        return docs

    def _idf(self) -> dict[str, float]:
        """Inverse sentence frequency of folded words: rare words say more about which sentence answers."""
        from chatbot.question import folded_words

        counts: dict[str, int] = {}
        for s in self.sentences:
            for w in folded_words(s.text):
                counts[w] = counts.get(w, 0) + 1
        n = max(1, len(self.sentences))
        return {w: float(np.log((n + 1) / (c + 0.5))) for w, c in counts.items()}

    def _dense_retriever(self, col: Any) -> Any:
        from llama_index.core import VectorStoreIndex
        from llama_index.core.vector_stores import ExactMatchFilter, MetadataFilters
        from llama_index.vector_stores.chroma import ChromaVectorStore

        # readers never split or insert: without a transformation of its own, llama-index builds its
        # default splitter, whose tokenizer (tiktoken) takes ~0.4 s to load
        index = VectorStoreIndex.from_vector_store(
            ChromaVectorStore(chroma_collection=col), embed_model=self.embedder, transformations=[_unchanged()]
        )
        k = min(self.settings.dense_top_k, len(self.chunks))
        filters = MetadataFilters(filters=[ExactMatchFilter(key="unit", value="chunk")])
        return index.as_retriever(similarity_top_k=k, filters=filters)

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
        from llama_index.core.schema import QueryBundle

        s = self.settings
        try:
            found = self._dense.retrieve(QueryBundle(query, embedding=qvec.tolist()))
        except Exception as exc:  # a Chroma server that went away: say so, the next call may succeed again
            from chatbot.errors import StoreUnavailable

            raise StoreUnavailable(
                f"the Chroma store did not answer: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
            ) from exc
        dense = {n.node.node_id: float(n.score or 0.0) for n in found}
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
            hits.append(Hit(chunk, score, dense.get(cid, 0.0), best_sent.get(cid, 0.0), bm25.get(cid, 0.0)))
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


def _lexical_text(c: Chunk) -> str:
    extra = " ".join(str(c.meta.get(k, "")) for k in ("author", "speaker", "heading") if c.meta.get(k))
    return f"{extra}\n{c.text}" if extra else c.text


def _unchanged() -> Any:
    from llama_index.core.schema import TransformComponent

    class Unchanged(TransformComponent):
        def __call__(self, nodes: Any, **kwargs: Any) -> Any:
            return nodes

    return Unchanged()
