"""Index build, rebuild on change, content-hash ids, crash safety, read-only readers."""

from pathlib import Path

import pytest

from chatbot.errors import CorpusError, IndexLocked, IndexNotReady, StoreUnavailable
from index import build as build_mod
from index import store

pytestmark = pytest.mark.slow


def test_build_then_unchanged(fresh_settings: object, e5: object) -> None:
    first = build_mod.build(fresh_settings, embedder=e5)  # type: ignore[arg-type]
    assert first.status == "built" and first.info.units > 50
    again = build_mod.build(fresh_settings, embedder=e5)  # type: ignore[arg-type]
    assert again.status == "unchanged" and again.info == first.info
    forced = build_mod.build(fresh_settings, rebuild=True, embedder=e5)  # type: ignore[arg-type]
    assert forced.status == "built" and forced.info.units == first.info.units
    assert forced.info.collection != first.info.collection  # everything rewritten into a new collection


def test_adding_documents(fresh_settings: object, e5: object, tmp_path: Path) -> None:
    base = build_mod.build(fresh_settings, embedder=e5)  # type: ignore[arg-type]
    doc = tmp_path / "extra.md"
    doc.write_text("# Mistral\n\nMistral AI a levé 600 millions d'euros en 2024 selon ce document de test.\n", encoding="utf-8")
    added = build_mod.build(fresh_settings, [doc], embedder=e5)  # type: ignore[arg-type]
    assert added.status == "built" and added.added == ["extra.md"] and added.documents == 2
    assert added.info.units > base.info.units
    same = build_mod.build(fresh_settings, [doc], embedder=e5)  # type: ignore[arg-type]
    assert same.status == "unchanged"
    # the added document survives a rebuild that does not name it
    rebuilt = build_mod.build(fresh_settings, rebuild=True, embedder=e5)  # type: ignore[arg-type]
    assert rebuilt.documents == 2


def test_bad_files_change_nothing(fresh_settings: object, e5: object, tmp_path: Path) -> None:
    base = build_mod.build(fresh_settings, embedder=e5)  # type: ignore[arg-type]
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02")
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    (tmp_path / "x.pdf").write_text("x", encoding="utf-8")
    for name in ("missing.txt", "bin.txt", "empty.txt", "x.pdf"):
        with pytest.raises(CorpusError):
            build_mod.build(fresh_settings, [tmp_path / name], embedder=e5)  # type: ignore[arg-type]
    client = store.make_client(fresh_settings)  # type: ignore[arg-type]
    assert store.read_pointer(client, fresh_settings) == base.info  # type: ignore[arg-type]


def test_crash_mid_build_keeps_previous_index(
    fresh_settings: object, e5: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = build_mod.build(fresh_settings, embedder=e5)  # type: ignore[arg-type]
    doc = tmp_path / "new.txt"
    doc.write_text("Un nouveau document.\n\nAvec un paragraphe sur les fonds.", encoding="utf-8")
    real_write_pointer = store.write_pointer

    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("simulated crash before the switch")

    monkeypatch.setattr(store, "write_pointer", boom)
    with pytest.raises(StoreUnavailable, match="previous index is unchanged"):
        build_mod.build(fresh_settings, [doc], embedder=e5)  # type: ignore[arg-type]
    monkeypatch.setattr(store, "write_pointer", real_write_pointer)
    client = store.make_client(fresh_settings)  # type: ignore[arg-type]
    assert store.read_pointer(client, fresh_settings) == base.info  # type: ignore[arg-type]
    from chatbot.core import Chatbot

    bot = Chatbot(fresh_settings, embedder=e5)  # type: ignore[arg-type]
    assert bot.index_info == base.info


def test_index_with_missing_collections_is_not_served_and_rebuilt(fresh_settings: object, e5: object) -> None:
    from chatbot.core import Chatbot

    base = build_mod.build(fresh_settings, embedder=e5)  # type: ignore[arg-type]
    client = store.make_client(fresh_settings)  # type: ignore[arg-type]
    client.delete_collection(base.info.collection + store.UNITS_SUFFIX)
    assert store.read_pointer(client, fresh_settings) is None  # type: ignore[arg-type]
    with pytest.raises(IndexNotReady, match="python app.py index"):
        Chatbot(fresh_settings, embedder=e5)  # type: ignore[arg-type]
    assert build_mod.build(fresh_settings, embedder=e5).status == "built"  # type: ignore[arg-type]
    assert "10 milliards" in Chatbot(fresh_settings, embedder=e5).answer("Combien Databricks a-t-il levé ?").answer  # type: ignore[arg-type]


def test_no_index_is_a_clear_error(fresh_settings: object, e5: object) -> None:
    from chatbot.core import Chatbot

    with pytest.raises(IndexNotReady, match="python app.py index"):
        Chatbot(fresh_settings, embedder=e5)  # type: ignore[arg-type]


def test_writer_lock_refuses_second_indexer(fresh_settings: object) -> None:
    with store.writer_lock(fresh_settings), pytest.raises(IndexLocked), store.writer_lock(fresh_settings):  # type: ignore[arg-type]
        pass


def test_readers_do_not_write(settings: object, built: object, e5: object) -> None:
    from chatbot.core import Chatbot

    folder = Path(settings.data_dir) / "chroma"  # type: ignore[attr-defined]
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    bot = Chatbot(settings, embedder=e5)  # type: ignore[arg-type]
    bot.answer("Combien Databricks a-t-il levé ?")
    after = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    assert before == after
