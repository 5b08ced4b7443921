"""The indexing pipeline: read -> parse -> chunk -> embed -> store, one document at a time.

Simplifies: all documents share one units collection; each unit carries its document's *key*
(a fingerprint of the document's text, id and every setting that shapes its units). Adding a
document writes its units, then moves the pointer to a manifest that lists it; removing one moves
the pointer to a manifest without it. Readers see only what the manifest lists, so a crash
between the two steps leaves the previous index in use, and a document's units are written
once: an add costs the same at 1 document or 1,000. Units nobody lists any more are dropped later.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatbot.errors import ChatbotError, CorpusError, UnknownDocument
from chatbot.settings import Settings
from index import store
from index.chunk import Unit, chunk_document
from index.parse import ParsedDocument, parse_file, parse_text

PIPELINE_VERSION = "11"  # 11: abbreviations ("Abs.", initials) no longer end a sentence
SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm")
MAX_FILE_BYTES = 20_000_000  # read at all (markup included); the text indexed is capped by settings.max_document_bytes
EMBED_BATCH = 16


@dataclass(frozen=True)
class SourceDoc:
    """A document as read from its file: the id it is known by and its raw text."""

    doc_id: str  # the page's canonical URL, else the file stem ("ai-investments-2024.fr")
    source: str  # the file name
    raw: str
    title: str = ""
    author: str = ""
    date: str = ""
    url: str = ""
    text: str = ""  # what the line parser reads (an HTML page's extracted text); empty: parse `raw` by its extension

    def parsed(self) -> ParsedDocument:
        return parse_text(self.text, source=self.source) if self.text else parse_file(self.source, self.raw)


@dataclass
class BuildReport:
    status: str  # "built" | "unchanged"
    info: store.IndexInfo
    documents: int
    added: list[str]
    embedded: int
    seconds: float
    removed: list[str] = field(default_factory=list)
    named: list[tuple[str, str]] = field(default_factory=list)  # (id, file name) of each file of the call


def read_document(path: Path, encoding: str | None = None, max_text_bytes: int = 0) -> SourceDoc:
    """A file's text and id, or CorpusError with a reason a person can act on. The bytes are decoded
    strictly (index/decode.py: `encoding`, else a BOM's, else the page's declared charset, else
    UTF-8); an HTML page must have main text; `max_text_bytes` (0: no limit) caps the text to index."""
    if not path.exists():
        raise CorpusError(f"{path}: no such file")
    if not path.is_file():
        raise CorpusError(f"{path}: not a regular file")
    if path.suffix.lower() not in SUPPORTED:
        raise CorpusError(f"{path}: unsupported type {path.suffix or '(none)'}; use {', '.join(SUPPORTED)}")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:  # before reading it: a page's markup may be far larger than its text
            raise CorpusError(f"{path}: too large ({size} bytes, limit {MAX_FILE_BYTES})")
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read ({exc.strerror})") from exc
    is_html = path.suffix.lower() in (".html", ".htm")
    from index.decode import decode

    raw = decode(data, str(path), encoding, html=is_html)
    if not raw.strip():
        raise CorpusError(f"{path}: empty document")
    doc = from_text(path.name, raw, require_text=True)
    text_bytes = len((doc.text or doc.raw).encode("utf-8"))
    if max_text_bytes and text_bytes > max_text_bytes:
        what = " of main text" if is_html else ""
        raise CorpusError(
            f"{path}: too large to index in reasonable time ({text_bytes / 1e6:.2f} MB{what}; the limit is "
            f"{max_text_bytes / 1e6:.2f} MB): split it into several documents, or raise CHATBOT_MAX_DOCUMENT_BYTES"
        )
    return doc


def from_text(source: str, raw: str, require_text: bool = False) -> SourceDoc:
    """The document a file named `source` holding `raw` is; HTML pages go through trafilatura.
    `require_text`: a page with no main text (a title alone) is refused (documents already kept
    are rebuilt as they were, whatever they hold)."""
    stem = Path(source).stem
    if source.lower().endswith((".html", ".htm")):
        from index.html import extract_page

        page = extract_page(raw)
        if require_text and not page.has_main_text():
            title = f" (only its title, {page.title[:80]!r})" if page.title else ""
            raise CorpusError(f"{source}: no main text found in the page{title}: nothing to answer from")
        return SourceDoc(page.url or stem, source, raw, page.title, page.author, page.date, page.url, page.text)
    return SourceDoc(stem, source, raw)


def expand(paths: Sequence[Path]) -> list[Path]:
    """Files named, and the supported files inside folders named (sorted, recursively)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUPPORTED)
            if not found:
                raise CorpusError(f"{p}: no {', '.join(SUPPORTED)} files in this folder")
            out.extend(found)
        else:
            out.append(p)
    return out


def document_key(doc: SourceDoc, collection: str, embedder_id: str, settings: Settings) -> str:
    """Changes when anything that shapes the document's units changes (its text, its id, the models,
    the chunking, this pipeline, the collection it lives in)."""
    parts = {
        "id": doc.doc_id,
        "source": doc.source,
        "raw": hashlib.sha256(doc.raw.encode("utf-8", "surrogatepass")).hexdigest(),
        "embedder": embedder_id,
        "second": settings.second_model,
        "lexicon": settings.lexicon,
        "chunk": [settings.chunk_max_chars, settings.chunk_max_tokens],
        "pipeline": PIPELINE_VERSION,
        "collection": collection,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def stored_documents(client: Any, info: store.IndexInfo | None) -> list[SourceDoc]:
    """Documents of the current index, from the store."""
    if info is None:
        return []
    records = store.document_records(client, info.collection, info.keys)
    return [from_record(r) for r in records]


def from_record(r: dict[str, Any]) -> SourceDoc:
    m = r["meta"]
    return SourceDoc(
        m["doc_id"], m["source"], r["raw"], m.get("title", ""), m.get("author", ""), m.get("date", ""), m.get("url", "")
    )


def build(
    settings: Settings,
    files: Sequence[Path] = (),
    rebuild: bool = False,
    embedder: Any = None,
    progress: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
    lock_timeout: float = 0.0,
    remove: Sequence[str] = (),
    encoding: str | None = None,
) -> BuildReport:
    """Bring the index up to date: the corpus, documents kept from earlier adds, `files` (added or
    replacing the document of the same id; read in `encoding` if given), minus `remove` (ids). One
    writer at a time. `progress(units done, units to write)` follows the embedding, batch by batch."""
    t0 = time.perf_counter()
    # fail before touching the store
    new_docs = [read_document(Path(f), encoding, settings.max_document_bytes) for f in expand(files)]
    _no_clashes(new_docs)
    named = [(d.doc_id, d.source) for d in new_docs]
    with store.writer_lock(settings, timeout=lock_timeout):
        client = _open_for_writing(settings, rebuild, warn)
        current = store.read_pointer(client, settings)
        if embedder is None:
            from index.embed import load_embedder

            embedder = load_embedder(settings.embed_model, settings.embed_fallbacks, settings.embed_threads, warn=warn)
        fresh = rebuild or current is None or current.embedder != embedder.model_id
        collection = store.series_name(settings) if fresh else current.collection  # type: ignore[union-attr]
        listed: dict[str, str] = {} if fresh or current is None else dict(current.documents)
        removed: set[str] = set(current.removed) if current is not None else set()
        for doc_id in remove:
            if doc_id not in listed:
                raise UnknownDocument(f"no document {doc_id!r} in the index; `python app.py index list` shows their ids")
            del listed[doc_id]
            removed.add(doc_id)
        removed -= {d.doc_id for d in new_docs}

        # what the index should hold: what it holds, the corpus and kept files it lacks, the new files
        wanted: dict[str, SourceDoc] = {}
        if fresh and current is not None:
            wanted.update({d.doc_id: d for d in stored_documents(client, current)})
        _settle_pending(settings, set(listed), warn)
        if not remove:  # a removal writes nothing else (it loads no embedder)
            for path in settings.corpus:
                d = read_document(Path(path))
                if d.doc_id not in removed:
                    wanted[d.doc_id] = d
            for d in kept_documents(settings, skip=set(listed) | set(wanted) | {d.doc_id for d in new_docs}, warn=warn):
                if d.doc_id not in removed:
                    wanted[d.doc_id] = d
        for d in new_docs:
            wanted[d.doc_id] = d
        todo = {
            d.doc_id: (d, k)
            for d in wanted.values()
            if (k := document_key(d, collection, embedder.model_id, settings)) != listed.get(d.doc_id)
        }
        if not todo and not remove and current is not None and not fresh:
            return BuildReport("unchanged", current, len(listed), [], 0, time.perf_counter() - t0, named=named)

        embedded = 0
        written: dict[str, int] = {}
        pending: list[Path] = []
        try:
            # kept first, as NAME.pending: a kill from here to the pointer's move leaves no half-added document
            pending = keep_documents(settings, [d for d, _ in todo.values() if not _is_corpus(settings, d)])
            # every document cut into units first, so progress can count (and time) the whole add
            prepared = [(d, key, *_units(settings, d, key, embedder)) for d, key in todo.values()]
            total, done = sum(len(doc_units) for *_, doc_units in prepared), 0

            def step(n: int) -> None:
                nonlocal done
                done += n
                if progress:
                    progress(done, total)

            if progress and total:
                progress(0, total)
            for d, key, parsed, doc_units in prepared:
                written[key] = _write_document(settings, client, collection, d, key, embedder, parsed, doc_units, step)
                embedded += written[key]
            manifest = {**listed, **{doc_id: key for doc_id, (_, key) in todo.items()}}
            gone = [key for doc_id, key in listed.items() if manifest.get(doc_id) != key] + [
                k for i, k in (current.documents if current is not None and not fresh else ()) if i in remove
            ]
            units = (
                (0 if fresh or current is None else current.units)
                - store.units_of(client, collection, gone)
                + sum(written.values())
            )
            info = store.IndexInfo(
                collection,
                store.manifest_fingerprint(embedder.model_id, manifest),
                embedder.model_id,
                units,
                int(time.time() * 1000),
                tuple(sorted(manifest.items())),
                tuple(sorted(removed)),
            )
            store.write_pointer(client, settings, info, previous=current)
        except Exception as exc:
            for path in pending:
                path.unlink(missing_ok=True)
            if isinstance(exc, CorpusError):
                raise
            from chatbot.errors import StoreUnavailable

            if store.store_failure(exc) and not store.environmental(exc):  # damaged: say so, and how to recover
                raise store.unreadable(settings, exc, "the index could not be written (the previous index is unchanged)") from exc
            # chroma raises its own error types for disk and permission trouble
            raise StoreUnavailable(
                f"the index could not be written ({store._short(exc)}){store.advice(exc)}; the previous index is unchanged"
            ) from exc
        for path in pending:  # in the index now: kept for good, replacing an older file of the same id
            final = path.with_name(path.name.removesuffix(PENDING))
            for older in final.parent.glob(final.name.split("__", 1)[0] + "__*"):
                if older != final and not older.name.endswith((PENDING, ".tmp")):
                    older.unlink(missing_ok=True)
            path.replace(final)
        for doc_id in remove:
            _forget(settings, doc_id)
        store.prune(client, settings, keep=info, previous=current)
        added = [d.source for d, _ in todo.values()]
        return BuildReport("built", info, len(manifest), added, embedded, time.perf_counter() - t0, list(remove), named)


def remove_documents(
    settings: Settings, ids: Sequence[str], warn: Callable[[str], None] | None = None, lock_timeout: float = 0.0
) -> BuildReport:
    """Take documents out of the index (and their kept files); nothing else is touched."""
    return build(settings, remove=ids, warn=warn, lock_timeout=lock_timeout, embedder=_NoEmbedder.for_current(settings))


class _NoEmbedder:
    """Removal embeds nothing: it only needs the served embedder's id (loading a model takes seconds)."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id

    @classmethod
    def for_current(cls, settings: Settings) -> Any:
        from chatbot.errors import IndexNotReady

        info = store.read_pointer(store.make_client(settings), settings)
        if info is None:
            raise IndexNotReady("no index yet: nothing to remove")
        return cls(info.embedder)


def _no_clashes(docs: Sequence[SourceDoc]) -> None:
    seen: dict[str, str] = {}
    for d in docs:
        if d.doc_id in seen and seen[d.doc_id] != d.source:
            raise CorpusError(
                f"{seen[d.doc_id]} and {d.source} would both be the document {d.doc_id!r}: add them one at a time, or rename one"
            )
        seen[d.doc_id] = d.source


def _is_corpus(settings: Settings, d: SourceDoc) -> bool:
    return any(Path(p).name == d.source for p in settings.corpus)


def _units(settings: Settings, d: SourceDoc, key: str, embedder: Any) -> tuple[ParsedDocument, list[Unit]]:
    parsed = d.parsed()
    if not parsed.records:
        raise CorpusError(f"{d.source}: no text found to index")
    units = chunk_document(parsed, d.doc_id, settings.chunk_max_chars, settings.chunk_max_tokens, embedder.count_tokens, salt=key)
    return parsed, units


def _write_document(
    settings: Settings, client: Any, collection: str, d: SourceDoc, key: str, embedder: Any,
    parsed: ParsedDocument, units: list[Unit], step: Callable[[int], None],
) -> int:  # fmt: skip
    """Vectors and the record of one document's units under `key`; returns how many units. `step(n)`
    after each batch of n units embedded (the embedding is nearly all of the time)."""
    vectors: dict[str, list[float]] = {}
    for i in range(0, len(units), EMBED_BATCH):
        part = units[i : i + EMBED_BATCH]
        for u, v in zip(part, embedder.get_text_embedding_batch([u.embed_text for u in part]), strict=True):
            vectors[u.id] = v
        step(len(part))
    second = _second_vectors(settings, units)
    from chatbot.language import detect_language

    title = d.title or parsed.title
    meta = {
        "doc_id": d.doc_id,
        "doc_key": key,
        "source": d.source,
        "title": title if title != d.source else Path(d.source).stem,
        "author": d.author,
        "date": d.date or _date(parsed),
        "url": d.url,
        "language": detect_language(parsed.text[:2000], settings.languages),
        "units": len(units),
        "collection": collection,
        "added_at": int(time.time() * 1000),
        "lexicon": json.dumps(_lexicon(settings, parsed.text), ensure_ascii=False),
        "kind": _kind(d, parsed),
        "headings": json.dumps([r.text for r in parsed.records if r.kind == "heading"][:12], ensure_ascii=False),
    }
    store.write_document(client, collection, key, d.raw, meta, _nodes(units, vectors, key), second)
    return len(units)


def _date(parsed: ParsedDocument) -> str:
    """The publication date a byline line near the top gives (ISO or day-month-year), if any."""
    import re

    for r in parsed.records[:6]:
        m = re.search(r"\b(\d{4}-\d{2}-\d{2}|\d{1,2}[./]\d{1,2}[./]\d{4})\b", r.text) if r.kind == "byline" else None
        if m:
            return m.group(1)
    return ""


def _kind(d: SourceDoc, parsed: ParsedDocument) -> str:
    """ "article" for a news page (HTML, or a text that opens with a headline), else "document"."""
    if d.source.lower().endswith((".html", ".htm")):
        return "article"
    if d.source.lower().endswith((".md", ".markdown")):
        return "document"
    return "article" if parsed.records and parsed.records[0].kind == "headline" else "document"


def _nodes(units: list[Unit], vectors: dict[str, list[float]], key: str) -> list[Any]:
    from llama_index.core.schema import BaseNode, NodeRelationship, RelatedNodeInfo, TextNode

    nodes: list[BaseNode] = []
    for u in units:
        node = TextNode(id_=u.id, text=u.text, metadata={**u.meta, "unit": u.unit, "doc_key": key}, embedding=vectors[u.id])
        # llama-index's Chroma store writes the node's source document into doc_id (else "None"
        # for every unit, and all documents look like one)
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=str(u.meta["doc_id"]))
        node.excluded_embed_metadata_keys = list(node.metadata)
        node.excluded_llm_metadata_keys = list(node.metadata)
        nodes.append(node)
    return nodes


def _open_for_writing(settings: Settings, rebuild: bool, warn: Callable[[str], None] | None) -> Any:
    """The store client. With --rebuild, an embedded store that cannot be opened or read, whatever
    the error says (but a permission or disk-space problem, which a new store would share), is set
    aside, kept, and a new one started: the added documents are kept on disk too, so they come back."""
    try:
        client = store.make_client(settings)
        if rebuild and not settings.chroma_host:
            stored_documents(client, store.read_pointer(client, settings))  # everything the rebuild will read
        return client
    except Exception as exc:
        folder = settings.data_dir / "chroma"
        if not (rebuild and not settings.chroma_host and folder.exists()) or store.environmental(exc):
            raise (
                exc if isinstance(exc, ChatbotError) else store.unreadable(settings, exc, "cannot read the index store")
            ) from exc
        reason = store._short(exc)
    aside = _set_aside(folder)
    if warn:
        warn(
            f"warning: the index store could not be read ({reason}); it was moved to {aside} (delete it once the "
            "rebuilt index serves you) and the index is rebuilt from the kept documents"
        )
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()  # chroma caches the failed client per path
    return store.make_client(settings)


def _set_aside(folder: Path) -> Path:
    """Rename the store's folder to chroma.damaged-DATE-TIME (a new name each time), keeping it whole."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = folder.with_name(f"{folder.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = folder.with_name(f"{folder.name}.damaged-{stamp}-{n}")
    folder.rename(aside)
    return aside


PENDING = ".pending"  # a document kept for a build whose pointer has not moved yet


def _kept_name(settings: Settings, d: SourceDoc) -> Path:
    return settings.data_dir / "documents" / f"{hashlib.sha1(d.doc_id.encode()).hexdigest()[:16]}__{Path(d.source).name}"


def keep_documents(settings: Settings, docs: Sequence[SourceDoc]) -> list[Path]:
    """Added documents are also kept as files in data_dir/documents, so a damaged store loses none.
    A new one is written as NAME.pending, which the caller renames to NAME once the pointer names a
    build holding it: an indexer killed before that leaves no half-added document (the next one
    drops the pending file). Returns the pending files."""
    pending = []
    for d in docs:
        path = _kept_name(settings, d)
        if path.exists() and path.read_text(encoding="utf-8") == d.raw:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(d.raw, encoding="utf-8")
        tmp.replace(path.with_name(path.name + PENDING))  # atomic: a crash never leaves half a file under a kept name
        pending.append(path.with_name(path.name + PENDING))
    return pending


def _forget(settings: Settings, doc_id: str) -> None:
    """A removed document's kept file goes too, so no later build brings it back."""
    prefix = hashlib.sha1(doc_id.encode()).hexdigest()[:16] + "__"
    folder = settings.data_dir / "documents"
    for path in folder.glob(prefix + "*") if folder.is_dir() else []:
        path.unlink(missing_ok=True)


def _settle_pending(settings: Settings, listed: set[str], warn: Callable[[str], None] | None) -> None:
    """Pending files left by a killed indexer (the writer lock is held: none is in use): kept if the
    pointer had moved to a manifest listing the document, else dropped, saying so."""
    folder = settings.data_dir / "documents"
    hashes = {hashlib.sha1(i.encode()).hexdigest()[:16] for i in listed}
    for path in sorted(folder.glob(f"*__*{PENDING}")) if folder.is_dir() else []:
        prefix, _, source = path.name.removesuffix(PENDING).partition("__")
        if prefix in hashes:
            path.replace(path.with_name(path.name.removesuffix(PENDING)))
            continue
        path.unlink(missing_ok=True)
        if warn:
            warn(
                f"note: {source} was not added: the indexer adding it was interrupted; run `python app.py index add {source}` again to add it"
            )


def kept_documents(
    settings: Settings, skip: set[str] | None = None, warn: Callable[[str], None] | None = None
) -> list[SourceDoc]:
    """Documents kept in data_dir/documents whose id is not in `skip` (those the index already lists).
    Pending files are skipped (see _settle_pending)."""
    folder = settings.data_dir / "documents"
    if not folder.is_dir():
        return []
    skip_hashes = {hashlib.sha1(i.encode()).hexdigest()[:16] for i in (skip or set())}
    out = []
    for path in sorted(folder.glob("*__*")):
        if path.name.endswith((".tmp", PENDING)) or path.name.split("__", 1)[0] in skip_hashes:
            continue
        out.append(from_text(path.name.partition("__")[2], path.read_text(encoding="utf-8")))
    if out and warn:
        warn(
            f"note: {len(out)} kept document(s) in {folder} are not in the current index; building them in: {', '.join(d.source for d in out)}"
        )
    return out


def _second_vectors(settings: Settings, units: list[Unit]) -> dict[str, list[float]]:
    """Vectors of the second embedder (USE), computed here once so no serving process recomputes
    them at start-up."""
    if not settings.second_model:
        return {}
    model = _second_model(settings.second_model, settings.embed_threads)
    texts = [u.embed_text if u.unit == "chunk" else u.text for u in units]
    return {u.id: list(map(float, v)) for u, v in zip(units, model.get_text_embedding_batch(texts), strict=True)}


@functools.lru_cache(maxsize=2)
def _second_model(name: str, threads: int) -> Any:
    """Loaded once per process (0.25 s each time otherwise: a process adding many documents pays it once)."""
    from index.embed import load_one

    return load_one(name, threads)


def _lexicon(settings: Settings, cleaned: str) -> dict[str, list[str]]:
    """Dictionary equivalents (other language -> document word) of the document's vocabulary."""
    if not settings.lexicon:
        return {}
    from chatbot import lexicon
    from chatbot.question import folded_words

    graph = lexicon.load(settings.cache_dir)
    vocabulary = {w for w in folded_words(cleaned) if len(w) >= 3}
    return lexicon.for_corpus(vocabulary, graph)
