"""The indexing pipeline: read -> parse -> chunk -> embed -> store, then switch the pointer.

Simplifies: an index is always rebuilt whole into a fresh collection (embeddings of unchanged
units are copied from the previous build, so only new text is embedded), and the set of documents
is the default corpus plus every file added earlier, whose raw text is kept in the store.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatbot.errors import CorpusError
from chatbot.settings import Settings
from index import store
from index.chunk import Unit, chunk_document
from index.parse import parse_file

PIPELINE_VERSION = "9"  # 9: units carry their document id (was "None" for all)
SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm")
MAX_FILE_BYTES = 20_000_000


@dataclass(frozen=True)
class SourceDoc:
    doc_id: str
    source: str
    raw: str


@dataclass
class BuildReport:
    status: str  # "built" | "unchanged"
    info: store.IndexInfo
    documents: int
    added: list[str]
    embedded: int
    seconds: float


def read_document(path: Path) -> SourceDoc:
    """A file's text, or CorpusError with a reason a person can act on."""
    if not path.exists():
        raise CorpusError(f"{path}: no such file")
    if not path.is_file():
        raise CorpusError(f"{path}: not a regular file")
    if path.suffix.lower() not in SUPPORTED:
        raise CorpusError(f"{path}: unsupported type {path.suffix or '(none)'}; use {', '.join(SUPPORTED)}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read ({exc.strerror})") from exc
    if len(data) > MAX_FILE_BYTES:
        raise CorpusError(f"{path}: too large ({len(data)} bytes, limit {MAX_FILE_BYTES})")
    if b"\x00" in data[:4096]:
        raise CorpusError(f"{path}: looks binary, not text")
    try:
        raw = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raw = data.decode("latin-1")
    if not raw.strip():
        raise CorpusError(f"{path}: empty document")
    return SourceDoc(hashlib.sha1(data).hexdigest()[:16], path.name, raw)


def fingerprint(docs: Sequence[SourceDoc], embedder_id: str, settings: Settings) -> str:
    parts = {
        "docs": sorted(d.doc_id for d in docs),
        "embedder": embedder_id,
        "second": settings.second_model,
        "chunk": [settings.chunk_max_chars, settings.chunk_max_tokens],
        "pipeline": PIPELINE_VERSION,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def stored_documents(client: Any, info: store.IndexInfo | None) -> list[SourceDoc]:
    """Documents kept in the current index (to carry them into the next build)."""
    if info is None:
        return []
    col = store._get(client, info.collection + "-docs")
    if col is None:
        return []
    got = col.get(include=["metadatas", "documents"])
    return [SourceDoc(m["doc_id"], m["source"], doc) for m, doc in zip(got["metadatas"], got["documents"], strict=True)]


def build(
    settings: Settings,
    files: Sequence[Path] = (),
    rebuild: bool = False,
    embedder: Any = None,
    progress: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
    lock_timeout: float = 0.0,
) -> BuildReport:
    """Bring the index up to date with the corpus + stored + new files; one writer at a time."""
    t0 = time.perf_counter()
    new_docs = [read_document(Path(f)) for f in files]  # fail before touching the store
    with store.writer_lock(settings, timeout=lock_timeout):
        client = _open_for_writing(settings, rebuild, warn)
        current = store.read_pointer(client, settings)
        corpus = [read_document(Path(p)) for p in settings.corpus]
        corpus_ids = {d.doc_id for d in corpus}
        stored = stored_documents(client, current)
        _settle_pending(settings, {d.doc_id for d in stored}, warn)
        kept = kept_documents(settings)
        known = corpus_ids | {d.doc_id for d in stored}
        unbuilt = [d.source for d in kept if d.doc_id not in known]
        if unbuilt and warn:
            warn(f"note: {len(unbuilt)} kept document(s) in {settings.data_dir / 'documents'} are not in the current index; building them in: {', '.join(unbuilt)}")
        docs: dict[str, SourceDoc] = {}
        for d in [*corpus, *stored, *kept]:
            docs.setdefault(d.doc_id, d)
        added = [d.source for d in new_docs if d.doc_id not in docs]
        for d in new_docs:
            docs.setdefault(d.doc_id, d)
        if embedder is None:
            from index.embed import load_embedder

            embedder = load_embedder(settings.embed_model, settings.embed_fallbacks, settings.embed_threads, warn=warn)
        fp = fingerprint(list(docs.values()), embedder.model_id, settings)
        if current is not None and current.fingerprint == fp and not rebuild:
            return BuildReport("unchanged", current, len(docs), [], 0, time.perf_counter() - t0)

        units: list[Unit] = []
        cleaned: dict[str, str] = {}
        for d in docs.values():
            parsed = parse_file(d.source, d.raw)
            if not parsed.records:
                raise CorpusError(f"{d.source}: no text found to index")
            units.extend(chunk_document(parsed, d.doc_id, settings.chunk_max_chars, settings.chunk_max_tokens, embedder.count_tokens))
            cleaned[d.doc_id] = parsed.text
        vectors = _reuse_embeddings(client, current, embedder.model_id, units)
        todo = [u for u in units if u.id not in vectors]
        batch = 16
        for i in range(0, len(todo), batch):
            part = todo[i : i + batch]
            for u, v in zip(part, embedder.get_text_embedding_batch([u.embed_text for u in part]), strict=True):
                vectors[u.id] = v
            if progress:
                progress(min(i + batch, len(todo)), len(todo))
        second = _second_vectors(settings, client, current, units)
        lexicon = _lexicon(settings, cleaned)
        pending: list[Path] = []
        try:
            pending = keep_documents(settings, [d for d in docs.values() if d.doc_id not in corpus_ids])
            info = _write(client, settings, fp, embedder.model_id, units, vectors, list(docs.values()), cleaned, second, lexicon)
            store.write_pointer(client, settings, info)
        except Exception as exc:  # chroma raises its own error types for disk and permission trouble
            from chatbot.errors import StoreUnavailable

            for path in pending:
                path.unlink(missing_ok=True)
            raise StoreUnavailable(f"the index could not be written ({store._short(exc)}){store.advice(exc)}; the previous index is unchanged") from exc
        for path in pending:  # in the index now: kept for good
            path.replace(path.with_suffix(""))
        store.prune(client, settings, keep={info.collection, current.collection if current else ""})
        return BuildReport("built", info, len(docs), added, len(todo), time.perf_counter() - t0)


def _open_for_writing(settings: Settings, rebuild: bool, warn: Callable[[str], None] | None) -> Any:
    """The store client; with --rebuild, a damaged embedded store is set aside and started afresh
    (added documents are kept on disk too, so they come back)."""
    from chatbot.errors import StoreUnavailable

    try:
        return store.make_client(settings)
    except StoreUnavailable as exc:
        folder = settings.data_dir / "chroma"
        if not (rebuild and not settings.chroma_host and "damaged" in str(exc) and folder.exists()):
            raise
        aside = folder.with_name(f"chroma.damaged-{int(time.time())}")
        folder.rename(aside)
        if warn:
            warn(f"warning: the store was damaged; moved it to {aside} and rebuilding")
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()  # chroma caches the failed client per path
        return store.make_client(settings)


PENDING = ".pending"  # a document kept for a build whose pointer has not moved yet


def keep_documents(settings: Settings, docs: Sequence[SourceDoc]) -> list[Path]:
    """Added documents are also kept as files in data_dir/documents, so a damaged store loses none.
    A new one is written as NAME.pending, which the caller renames to NAME once the pointer names a
    build holding it: an indexer killed before that leaves no half-added document (the next one
    drops the pending file). Returns the pending files."""
    folder = settings.data_dir / "documents"
    pending = []
    for d in docs:
        path = folder / f"{d.doc_id}__{Path(d.source).name}"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(d.raw, encoding="utf-8")
            tmp.replace(path.with_name(path.name + PENDING))  # atomic: a crash never leaves half a file under a kept name
            pending.append(path.with_name(path.name + PENDING))
    return pending


def _settle_pending(settings: Settings, stored: set[str], warn: Callable[[str], None] | None) -> None:
    """Pending files left by a killed indexer (the writer lock is held: none is in use): kept if the
    pointer had moved to a build holding the document, else dropped, saying so."""
    folder = settings.data_dir / "documents"
    for path in sorted(folder.glob(f"*__*{PENDING}")) if folder.is_dir() else []:
        doc_id, _, source = path.name.removesuffix(PENDING).partition("__")
        if doc_id in stored:
            path.replace(path.with_suffix(""))
            continue
        path.unlink(missing_ok=True)
        if warn:
            warn(f"note: {source} was not added: the indexer adding it was interrupted; run `python app.py index {source}` again to add it")


def kept_documents(settings: Settings) -> list[SourceDoc]:
    folder = settings.data_dir / "documents"
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*__*")):
        if path.suffix in (".tmp", PENDING):
            continue
        doc_id, _, source = path.name.partition("__")
        out.append(SourceDoc(doc_id, source, path.read_text(encoding="utf-8")))
    return out


def _reuse_embeddings(client: Any, current: store.IndexInfo | None, model_id: str, units: list[Unit]) -> dict[str, list[float]]:
    if current is None or current.embedder != model_id:
        return {}
    col = store._get(client, current.collection)
    if col is None:
        return {}
    got = col.get(ids=[u.id for u in units], include=["embeddings"])
    return {i: list(map(float, e)) for i, e in zip(got["ids"], got["embeddings"], strict=True)}


def _second_vectors(settings: Settings, client: Any, current: store.IndexInfo | None, units: list[Unit]) -> dict[str, list[float]]:
    """Vectors of the second embedder (USE), computed here once so no serving process recomputes
    them at start-up; unchanged units reuse the previous build's."""
    if not settings.second_model:
        return {}
    from index.embed import load_one

    reused: dict[str, list[float]] = {}
    old = store._get(client, current.collection + store.SECOND_SUFFIX) if current is not None else None
    if old is not None:
        got = old.get(ids=[u.id for u in units], include=["embeddings"])
        reused = {i: list(map(float, e)) for i, e in zip(got["ids"], got["embeddings"], strict=True)}
    todo = [u for u in units if u.id not in reused]
    if todo:
        model = load_one(settings.second_model, settings.embed_threads)
        texts = [u.embed_text if u.unit == "chunk" else u.text for u in todo]
        for u, v in zip(todo, model.get_text_embedding_batch(texts), strict=True):
            reused[u.id] = list(map(float, v))
    return reused


def _lexicon(settings: Settings, cleaned: dict[str, str]) -> dict[str, list[str]]:
    """Dictionary equivalents (other language -> corpus word) of the corpus vocabulary."""
    if not settings.lexicon:
        return {}
    from chatbot import lexicon
    from chatbot.question import folded_words

    graph = lexicon.load(settings.cache_dir)
    vocabulary = {w for text in cleaned.values() for w in folded_words(text) if len(w) >= 3}
    return lexicon.for_corpus(vocabulary, graph)


def _write(
    client: Any,
    settings: Settings,
    fp: str,
    model_id: str,
    units: list[Unit],
    vectors: dict[str, list[float]],
    docs: list[SourceDoc],
    cleaned: dict[str, str],
    second: dict[str, list[float]] | None = None,
    lexicon: dict[str, list[str]] | None = None,
) -> store.IndexInfo:
    from llama_index.core.schema import BaseNode, NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.vector_stores.chroma import ChromaVectorStore

    name = f"{settings.collection_prefix}-build-{fp[:12]}-{int(time.time() * 1000)}"
    meta = {"complete": False, "fingerprint": fp, "embedder": model_id}
    col = client.create_collection(name, configuration={"hnsw": {"space": "cosine"}}, metadata=meta, embedding_function=None)
    docs_col = client.create_collection(name + "-docs", metadata={"complete": False}, embedding_function=None)
    docs_col.add(
        ids=[d.doc_id for d in docs],
        embeddings=[[1.0] for _ in docs],
        documents=[d.raw for d in docs],
        metadatas=[{"doc_id": d.doc_id, "source": d.source, "cleaned": cleaned[d.doc_id]} for d in docs],
    )
    nodes: list[BaseNode] = []
    for u in units:
        node = TextNode(id_=u.id, text=u.text, metadata={**u.meta, "unit": u.unit}, embedding=vectors[u.id])
        # llama-index's Chroma store writes the node's source document into doc_id (else "None"
        # for every unit, and all documents look like one)
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=str(u.meta["doc_id"]))
        node.excluded_embed_metadata_keys = list(node.metadata)
        node.excluded_llm_metadata_keys = list(node.metadata)
        nodes.append(node)
    vs = ChromaVectorStore(chroma_collection=col)
    for i in range(0, len(nodes), 256):
        vs.add(nodes[i : i + 256])
    if lexicon:
        lex = client.create_collection(name + store.LEXICON_SUFFIX, metadata={"complete": True}, embedding_function=None)
        lex.add(ids=["lexicon"], embeddings=[[1.0]], documents=[json.dumps(lexicon, ensure_ascii=False)])
    if second:
        sec = client.create_collection(name + store.SECOND_SUFFIX, metadata={"model": settings.second_model}, embedding_function=None)
        ids = [u.id for u in units if u.id in second]
        for i in range(0, len(ids), 1024):
            part = ids[i : i + 1024]
            sec.add(ids=part, embeddings=[second[x] for x in part])
    col.modify(metadata={**meta, "complete": True, "units": len(units)})
    return store.IndexInfo(name, fp, model_id, len(units), int(time.time() * 1000))
