import pytest

from index.chunk import chunk_document, split_sentences
from index.parse import parse_text


def test_units_locate_their_text(raw_article: str) -> None:
    doc = parse_text(raw_article, "a.txt")
    units = chunk_document(doc, "d1")
    for u in units:
        assert doc.text[u.start : u.end] == u.text
    chunks = [u for u in units if u.unit == "chunk"]
    assert 20 <= len(chunks) <= 40
    assert len({u.id for u in units}) == len(units)


def test_chunks_are_self_contained(raw_article: str) -> None:
    chunks = [u for u in chunk_document(parse_text(raw_article, "a.txt"), "d1") if u.unit == "chunk"]
    databricks = next(c for c in chunks if "Ce titre revient à Databricks" in c.text)
    assert "Bien qu’OpenAI soit actuellement le visage" in databricks.text
    listing = next(c for c in chunks if c.meta["kind"] == "list")
    assert listing.embed_text.startswith("Principaux tours de financement IA en 2024")
    comment = next(c for c in chunks if c.meta["section"] == "comment")
    assert comment.embed_text.startswith("PaulMartínez")
    assert max(len(c.text) for c in chunks) < 1200


@pytest.mark.slow
def test_no_chunk_exceeds_embedder_limit(e5: object) -> None:
    long_para = " ".join(f"Phrase numéro {i} sur les investissements de capital-risque en Europe en 2024." for i in range(400))
    doc = parse_text("Titre\n" + long_para + "\n" + "x" * 9000, "long.txt")
    units = chunk_document(doc, "d2", max_chars=1200, max_tokens=e5.max_tokens, count_tokens=e5.count_tokens)  # type: ignore[attr-defined]
    chunks = [u for u in units if u.unit == "chunk"]
    assert len(chunks) > 10
    for c in chunks:
        assert e5.count_tokens(c.embed_text) <= e5.max_tokens  # type: ignore[attr-defined]


def test_sentence_split() -> None:
    text = "Il a levé 10 M$. « C’est énorme », dit-il. Puis il part !\n- item : un"
    spans = [text[a:b] for a, b in split_sentences(text)]
    assert spans == ["Il a levé 10 M$.", "« C’est énorme », dit-il.", "Puis il part !", "- item : un"]


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Google verstößt gegen § 13 Abs. 6 TMG. Das ist so.", ["Google verstößt gegen § 13 Abs. 6 TMG.", "Das ist so."]),
        ("John F. Kennedy spoke. Then Prof. Dr. Weber did.", ["John F. Kennedy spoke.", "Then Prof. Dr. Weber did."]),
        ("Il a 42 ans. Le reste suit.", ["Il a 42 ans.", "Le reste suit."]),
        ("Cases rose in the U.S. The rest fell.", ["Cases rose in the U.S.", "The rest fell."]),
    ],
)
def test_abbreviations_do_not_end_a_sentence(text: str, sentences: list[str]) -> None:
    assert [text[a:b] for a, b in split_sentences(text)] == sentences

