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


def test_inline_teasers_are_related_articles_not_claims() -> None:
    """"LIRE AUSSI SUR …" then ">> Title" (or "Read more: Title") inside the body is another
    article's headline: indexed as a related teaser, each time it appears, and never as a paragraph."""
    text = (
        "Titre de l'article\n\nUn premier paragraphe sur l'affaire.\nLIRE AUSSI SUR REGARDS.FR\n"
        ">> Affaire Benalla : le scandale d'Etat\nUn deuxième paragraphe.\nLIRE AUSSI SUR REGARDS.FR\n"
        ">> Les cinq raisons de la démission\nRead more: Another story about it\nLesen Sie auch: Ein dritter Text\nFin."
    )
    records = parse_text(text).records
    related = [r.text for r in records if r.kind == "related"]
    assert related == [
        "Affaire Benalla : le scandale d'Etat",
        "Les cinq raisons de la démission",
        "Another story about it",
        "Ein dritter Text",
    ]
    assert all(r.section == "related" for r in records if r.kind == "related")
    body = " ".join(r.text for r in records if r.section == "article")
    assert "LIRE AUSSI" not in body and "Benalla" not in body and "Un deuxième paragraphe." in body and "Fin." in body
    # a long line that merely starts like a teaser label is still a paragraph
    long = "Read more about how the committee reached its decision in the report published on Monday: it is long."
    assert [r.kind for r in parse_text("T\n\n" + long).records][-1] == "paragraph"


def test_hard_wrapped_html_paragraphs_become_one_line() -> None:
    """A <p> whose source breaks its lines (a hard-wrapped page) is one paragraph: each piece used
    to become a paragraph or a heading of its own, and a sentence cut at a wrap could not be quoted."""
    from index.html import extract_page

    # as zeit.de's page: source line breaks and a closing <br> (with it, trafilatura keeps the breaks)
    words = "Kris de Decker kennt das aus\neigener Erfahrung. Seit 2008 verzichtet der belgische\nTechnikjournalist komplett auf Flüge.&nbsp; <br>\n"
    filler = " ".join(f"Satz Nummer {i} des Artikels über den Zugverkehr in Europa." for i in range(12))
    html = (
        f"<html><head><title>Zugverkehr</title></head><body><article><h1>Zugverkehr</h1><p>{filler}</p>"
        f"<p>{words}</p><p>Zeile eins<br>Zeile zwei</p></article></body></html>"
    )
    text = extract_page(html, "de").text
    assert "Kris de Decker kennt das aus eigener Erfahrung. Seit 2008 verzichtet der belgische Technikjournalist komplett auf Flüge." in text
    paragraphs = [r.text for r in parse_text(text).records if r.kind == "paragraph"]
    assert any(p.startswith("Kris de Decker") and p.endswith("Flüge.") for p in paragraphs)
    assert not any(r.kind == "heading" and ("Decker" in r.text or "belgische" in r.text) for r in parse_text(text).records)
    assert "Zeile eins\nZeile zwei" in text  # a real <br> still breaks the line


def test_comments_signed_after_their_text() -> None:
    """A blog's layout: each comment's text, then "Comment by NAME — DATE". The text is the
    reader's, with its author and date, never the article's; the article above stays the article."""
    text = (
        "Pseudonyme bei Google+\n2011-07-17\n\nDer Artikel sagt, Profile seien Telemedien.\n\n"
        "Also im Klartext: das gilt für alle.\nComment by Mirko Lange — 17.07, 2011 @ 13:04\n"
        "Wenn das in den AGB steht, gilt es.\nDas Gesetz steht aber darüber.\nComment by Daniel — 17.07, 2011 @ 13:10\n"
        "@Daniel: Sehe ich anders.\nKommentar von Sabine Engelhardt – 17.07, 2011 @ 13:40\n"
    )
    records = parse_text(text).records
    assert _comments(records) == [
        ("Mirko Lange", "17.07, 2011 @ 13:04", "Also im Klartext: das gilt für alle."),
        ("Daniel", "17.07, 2011 @ 13:10", "Wenn das in den AGB steht, gilt es."),
        ("Daniel", "17.07, 2011 @ 13:10", "Das Gesetz steht aber darüber."),
        ("Sabine Engelhardt", "17.07, 2011 @ 13:40", "@Daniel: Sehe ich anders."),
    ]
    assert all(r.section == "comment" for r in records if r.kind == "comment")
    assert _article_paragraphs(records) == ["Der Artikel sagt, Profile seien Telemedien."]
    assert not any("Comment by" in r.text or "Kommentar von" in r.text for r in records)


def test_update_notices_and_short_question_lines_are_not_paragraphs() -> None:
    """"Article mis à jour le …" is a dateline, and "Artikel gelesen?" a page's prompt: as
    paragraphs, the first became the article's lead and the second the answer to "Worum geht es?"."""
    text = (
        "Titre\n\nArticle mis à jour le 7 janvier 2020.\n"
        "S'il fallait ne retenir qu'une promesse du candidat, ce serait la moralisation de la vie publique.\n"
        "Artikel gelesen?\n\nEin weiterer Absatz mit Inhalt, der etwas sagt.\n"
    )
    kinds = {r.text: r.kind for r in parse_text(text).records}
    assert kinds["Article mis à jour le 7 janvier 2020."] == "byline"
    assert kinds["Artikel gelesen?"] == "heading"
    paragraphs = [r.text for r in parse_text(text).records if r.kind == "paragraph"]
    assert paragraphs[0].startswith("S'il fallait")  # the lead
    # a question that is a sentence of its own stays one
    long_q = "Wie kann es sein, dass die Bahn zwischen Madrid und Stockholm 36 Stunden braucht?"
    assert {r.text: r.kind for r in parse_text(f"T\n\n{long_q}\nMehr Text folgt hier.\n").records}[long_q] == "paragraph"


def test_numbered_comments_under_a_bare_header_are_readers_not_the_article() -> None:
    """zeit.de's layout: "Kommentare", then each reader's name, "#2.1 — vor 8 Stunden" and the
    text, sometimes over two lines. Parsed as paragraphs, readers' claims passed for the article's."""
    text = (
        "Titel des Artikels\n\nDer Artikel sagt etwas über Züge in Europa.\n\nKommentare\n"
        "ThomasMelber\n#1 — vor 8 Stunden\nDie Bahn ist zu teuer.\n"
        "Robert Geiss\n#1.1 — vor 7 Stunden\nIch weiß nicht, ob das stimmt.\nDie Privatisierung war ein Fehler.\n"
        "besserStill\n#2 — vor 6 Stunden\nArtikel gelesen?\n"
    )
    records = parse_text(text).records
    assert _comments(records) == [
        ("ThomasMelber", "1 — vor 8 Stunden", "Die Bahn ist zu teuer."),
        ("Robert Geiss", "1.1 — vor 7 Stunden", "Ich weiß nicht, ob das stimmt."),
        ("Robert Geiss", "1.1 — vor 7 Stunden", "Die Privatisierung war ein Fehler."),
        ("besserStill", "2 — vor 6 Stunden", "Artikel gelesen?"),
    ]
    assert _article_paragraphs(records) == ["Der Artikel sagt etwas über Züge in Europa."]


def test_unsigned_comments_above_a_reply_link_are_readers() -> None:
    """A blog's comment with no name, only the "Répondre" link under it, is a reader's, not the
    article's closing line; the link itself is not text. A "Reply" alone changes nothing else."""
    text = (
        "Titre\n\nLe ministre a démissionné en juin.\n\nIl a été remplacé en juillet.\n\n"
        "merci pour ces infos.\nRépondre\n\nReply\n\nLa suite est prévue en septembre.\n"
    )
    records = parse_text(text).records
    assert _comments(records) == [("", "", "merci pour ces infos.")]
    assert _article_paragraphs(records) == [
        "Le ministre a démissionné en juin.",
        "Il a été remplacé en juillet.",
        "La suite est prévue en septembre.",
    ]
    assert not any("Répondre" in r.text or r.text == "Reply" for r in records)


def _comments(records: list) -> list[tuple[str, str, str]]:
    return [(r.author, r.date, r.text) for r in records if r.kind == "comment"]


def _article_paragraphs(records: list) -> list[str]:
    return [r.text for r in records if r.section == "article" and r.kind == "paragraph"]
