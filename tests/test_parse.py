from collections import Counter

from index.parse import html_to_text, parse_file, parse_text


def test_article_is_kept_once(raw_article: str) -> None:
    doc = parse_text(raw_article, "a.txt")
    texts = Counter(r.text for r in doc.records if r.kind != "quote")
    assert max(texts.values()) == 1
    assert sum(1 for r in doc.records if r.kind == "headline") == 1
    assert doc.text.count("Ce titre revient à Databricks") == 1
    assert doc.text.count("Wild that AI startups got $110B while others are scraping by") == 1


def test_offsets_round_trip(raw_article: str) -> None:
    doc = parse_text(raw_article, "a.txt")
    for r in doc.records:
        assert doc.text[r.start : r.end] == r.text


def test_boilerplate_dropped(raw_article: str) -> None:
    doc = parse_text(raw_article, "a.txt")
    assert "Crédits image" not in doc.text
    assert "0/200" not in doc.text
    assert "\n0\n" not in doc.text
    assert doc.records[3].text.startswith("Yoram Wijngaarde")


def test_sections_and_structure(raw_article: str) -> None:
    doc = parse_text(raw_article, "a.txt")
    kinds = Counter(r.kind for r in doc.records)
    assert kinds["comment"] == 6
    assert kinds["related"] == 3
    assert kinds["comment_count"] == 1
    assert kinds["list"] == 1
    assert {r.section for r in doc.records} == {"article", "related", "meta", "comment"}
    lst = next(r for r in doc.records if r.kind == "list")
    assert lst.heading == "Principaux tours de financement IA en 2024"
    assert lst.text.count("\n- ") == 6 and lst.text.startswith("Voici un aperçu")
    count = next(r for r in doc.records if r.kind == "comment_count")
    assert count.extra["count"] == "26"
    headings = [r.text for r in doc.records if r.kind == "heading"]
    assert headings == ["Principaux tours de financement IA en 2024", "Perspectives : Financement IA en 2025"]
    teaser = next(r for r in doc.records if r.kind == "related")
    assert teaser.text.startswith("Un organisme à but non lucratif") and "\n" in teaser.text


def test_comments_have_author_date_language(raw_article: str) -> None:
    doc = parse_text(raw_article, "a.txt")
    comments = [r for r in doc.records if r.kind == "comment"]
    first = comments[0]
    assert (first.author, first.date, first.language) == ("PaulMartínez", "5 septembre 2025 04:30:34 UTC+02:00", "de")
    assert [c.language for c in comments[1:]] == ["en"] * 5
    assert comments[-1].author == "ScottEvans"


def test_quotes_have_speakers(raw_article: str) -> None:
    doc = parse_text(raw_article, "a.txt")
    quotes = [r for r in doc.records if r.kind == "quote"]
    assert len(quotes) == 5
    by_start = {q.text[:20]: q.speaker for q in quotes}
    assert by_start["« C’est la plus gran"] == "Yoram Wijngaarde"
    assert by_start["« En Europe, nous av"] == "Yoram Wijngaarde"
    assert by_start["« Nous ne voulons pa"] == "Yoram Wijngaarde"
    assert by_start["« Par exemple, xAI n"] == "Orla Browne"


def test_markdown_and_html() -> None:
    md = parse_file(
        "notes.md", "# Title\n\nFirst paragraph with ![img](http://x/y.png) and [a link](http://x).\n\n- one : a\n- two : b\n"
    )
    assert md.records[0].kind == "headline" and md.records[0].text == "Title"
    assert "http://" not in md.text
    page = "<html><head><script>alert(1)</script><style>p{}</style></head><body><h1>T</h1><p>Hello &amp; bye.</p></body></html>"
    assert "alert" not in html_to_text(page)
    doc = parse_file("p.html", page)
    assert "Hello & bye." in doc.text


def test_empty_and_odd_input() -> None:
    assert parse_text("", "e.txt").records == []
    doc = parse_text("\x00\x1b[31mred\x1b[0m text\n\n\n", "o.txt")
    assert "\x00" not in doc.text and "\x1b" not in doc.text
