"""Answer behaviour: spans, kinds, follow-ups, refusals, and a guard on the dev-set figures."""

from pathlib import Path

import pytest

from chatbot import spans
from chatbot.errors import InvalidQuestion
from chatbot.followup import resolve
from chatbot.question import analyze
from chatbot.schema import Turn

DEV = Path(__file__).parent / "data" / "qa_dev.jsonl"


@pytest.mark.parametrize(
    "text, lang, expected",
    [
        ("10 milliards de dollars", "en", "$10 billion"),
        ("6,6 milliards de dollars", "en", "$6.6 billion"),
        ("plus de 20 milliards de dollars", "de", "mehr als 20 Mrd. Dollar"),
        ("$110B", "fr", "110 milliards de dollars"),
        ("something else", "en", "something else"),
    ],
)
def test_amounts_are_rendered_in_the_reader_language(text: str, lang: str, expected: str) -> None:
    assert spans.render_amount(text, lang) == expected


def test_the_span_that_goes_with_the_entity() -> None:
    t = "L’année dernière, 42 % (80,7 milliards de dollars) du capital-risque américain est allé aux startups IA, contre seulement 25 % (12,8 milliards de dollars) en Europe et 18 % dans le reste du monde."
    got = spans.nearest(spans.find("percent", t), [t.index("Europe")], t)
    assert got is not None and got.text.endswith("25 %")
    t2 = "Ce titre revient à Databricks, qui a sécurisé 10 milliards de dollars, dépassant les 6,6 milliards de dollars d’OpenAI."
    got2 = spans.nearest(spans.find("amount", t2), [t2.index("OpenAI")], t2)
    assert got2 is not None and got2.text.startswith("6,6")


@pytest.mark.parametrize(
    "question, lang, kind",
    [
        ("How much did Databricks raise?", "en", "amount"),
        ("Quelle part du capital-risque américain est allée à l'IA ?", "fr", "percent"),
        ("Quel taux de recyclage atteint le procédé ?", "fr", "percent"),  # a rate is a share
        ("Wie hoch ist die Recyclingquote?", "de", "percent"),
        ("What is the quote from the founder?", "en", "quote"),
        ("Wie viele Kommentare hat der Artikel?", "de", "count"),
        ("Which funds followed Antler?", "en", "list"),
        ("Wer ist der Gründer von Dealroom?", "de", "who"),
        ("Pourquoi faut-il autant d'argent ?", "fr", "why"),
        ("Wie alt ist Alexandre Benalla?", "de", "count"),  # an age is a number of years
        ("Quel âge a Claas Relotius ?", "fr", "count"),
    ],
)
def test_answer_kinds(question: str, lang: str, kind: str) -> None:
    assert analyze(question, lang).kind == kind


@pytest.mark.parametrize(
    "question, whole",
    [
        ("worum gehts hier eigentlich?", True),
        ("Um was geht's im Text?", True),
        ("ça parle de quoi ?", True),
        ("c est quoi l article", True),
        ("What does the article say?", True),
        ("key figures?", True),
        ("In the related articles, what are the big AI labs warning about?", False),
        ("What is the capital of France?", False),
        ("Wie viel Kapital hat OpenAI eingesammelt?", False),
        ("Pouvez-vous me résumer les points principaux de cet article sur le langage inclusif en allemand ?", True),
        # long, and about a commuter, not the article: "sum up" is his
        (
            "The Belgian journalist who lives in Barcelona complains that he now has to change trains several "
            "times to get to Switzerland and Italy - how does he sum up those trips?",
            False,
        ),
    ],
)
def test_questions_about_the_whole_article(question: str, whole: bool) -> None:
    from chatbot.answer.features import asks_about_article

    assert asks_about_article(question) is whole


def test_followups_are_resolved() -> None:
    h = [Turn("user", "How much did Databricks raise?"), Turn("assistant", "$10 billion [1]")]
    assert resolve("And OpenAI?", h, "en") == "How much did OpenAI raise?"
    h2 = [Turn("user", "Who founded Dealroom?"), Turn("assistant", "Yoram Wijngaarde [1]")]
    assert resolve("What did he say about Europe?", h2, "en") == "What did Yoram Wijngaarde say about Europe?"
    # the slot the follow-up names is replaced, not glued to the previous question
    h3 = [Turn("user", "How many Americans were killed by terrorism since 9/11?")]
    assert resolve("And by gun violence?", h3, "en") == "How many Americans were killed by gun violence since 9/11?"
    h4 = [Turn("user", "Combien de députés chez les socialistes ?")]
    assert resolve("Et chez les Verts ?", h4, "fr") == "Combien de députés chez les Verts ?"
    h5 = [Turn("user", "Wie hoch ist die Strafe für Erwachsene?")]
    assert resolve("Und für Minderjährige?", h5, "de") == "Wie hoch ist die Strafe für Minderjährige?"
    h6 = [Turn("user", "Combien ont levé les startups en France en 2024 ?")]
    assert resolve("Et en 2023 ?", h6, "fr") == "Combien ont levé les startups en France en 2023 ?"
    assert resolve("Et en Allemagne ?", h6, "fr") == "Combien ont levé les startups en Allemagne en 2024 ?"
    assert "Et en Europe" in resolve(
        "Et en Europe ?", [Turn("user", "Quelle part du capital-risque américain est allée à l'IA ?")], "fr"
    )


@pytest.mark.slow
def test_cross_lingual_answer_puts_the_span_first(bot: object) -> None:
    a = bot.answer("How much did Databricks raise?")  # type: ignore[attr-defined]
    assert a.answered and a.language == "en"
    assert a.answer.startswith("$10 billion [1]")
    assert "From the article (in French)" in a.answer
    assert a.citations[0].highlight is not None
    start, end = a.citations[0].highlight
    assert a.citations[0].text[start:end] == "10 milliards de dollars"


@pytest.mark.slow
@pytest.mark.parametrize(
    "question, lang",
    [
        ("How much did Mistral raise?", "en"),
        ("Quelle est la capitale de l'Australie ?", "fr"),
        ("Wer hat die Fußball-WM 2022 gewonnen?", "de"),
    ],
)
def test_refusals_in_the_question_language(bot: object, question: str, lang: str) -> None:
    a = bot.answer(question)  # type: ignore[attr-defined]
    assert not a.answered and a.language == lang
    assert "[1]" not in a.answer


@pytest.mark.slow
def test_followup_with_history(bot: object) -> None:
    """A follow-up that changes one slot never returns the previous answer: either the new fact,
    or, when unsure, a refusal whose closest passages hold it."""
    h = [
        {"role": "user", "content": "Quelle part du capital-risque américain est allée à l'IA ?"},
        {"role": "assistant", "content": "42 % [1]"},
    ]
    a = bot.answer("Et en Europe ?", h)  # type: ignore[attr-defined]
    assert a.language == "fr" and "Europe" in a.resolved_question
    if a.answered:
        assert "25 %" in a.answer.split("[1]")[0]
    else:
        assert any("25 %" in c.text for c in a.citations)
    assert not a.answer.startswith("42")


@pytest.mark.slow
def test_bad_input_is_rejected(bot: object) -> None:
    for q, h in [("", None), ("x" * 2001, None), (42, None), ("ok", "not a list"), ("ok", [{"role": "system", "content": "x"}])]:
        with pytest.raises(InvalidQuestion):
            bot.answer(q, h)  # type: ignore[attr-defined]


@pytest.mark.slow
def test_dev_set_figures_do_not_regress(bot: object) -> None:
    """Guards the measured figures on the old dev set (see the closing note); a drop below these is a
    regression. The answer models are fitted on the question bank, not on these questions, and
    say "not sure" rather than state what they doubt: few answers stated, almost none wrong."""
    from chatbot.evaluate import evaluate, load_cases

    cases = load_cases(DEV)
    assert len(cases) >= 60
    r = evaluate(bot, cases)
    assert r["hit@3"] >= 0.94
    assert r["hit@1"] >= 0.84
    # measured with this release's models: useful 0.875 (the answer stated, or quoted as "not
    # sure"), stated wrong 0.042 (3 of 72: two "insgesamt" totals answered with the tech-wide
    # "un total de 227 milliards", a teaser's title for the labs it names), false "not found"
    # 0.014, unanswerable questions "not found" 0.444 and stated 0.056 (1 of 18). Leave-one-
    # article-out the same release states wrong 0.012 (0.026 before): this article's own bank
    # questions are in its training, which makes it more sure here than on unseen articles.
    assert r["useful"] >= 0.85
    assert r["stated_wrong"] <= 0.045
    assert r["false_not_found"] <= 0.05
    assert r["unanswerable_not_found"] >= 0.4
    assert r["unanswerable_stated"] <= 0.06
    assert r["top3_citation_chars_max"] < 2000


@pytest.mark.slow
def test_reranker_stage_loads_and_reorders(settings: object, built: object, e5: object) -> None:
    """No cross-encoder ships offline, so this loads the bundled MiniLM folder as a CrossEncoder
    (its classification head is untrained): it tests the plumbing, not the ranking quality."""
    from chatbot.core import Chatbot
    from index.embed import bundled_minilm_path

    s = settings.model_copy(update={"rerank_model": bundled_minilm_path(), "rerank_candidates": 4})  # type: ignore[attr-defined]
    bot = Chatbot(s, embedder=e5)
    assert bot.retriever._reranker is not None
    q = "How much did Databricks raise?"
    hits = bot.retriever.search(q, bot.retriever.embed_query(q))
    plain = Chatbot(settings, embedder=e5).retriever.search(q, bot.retriever.embed_query(q))  # type: ignore[arg-type]
    assert {h.chunk.id for h in hits[:4]} == {h.chunk.id for h in plain[:4]}  # same candidates, possibly reordered
    assert [h.chunk.id for h in hits[4:]] == [h.chunk.id for h in plain[4:]]
    assert bot.answer(q).citations


def test_unloadable_reranker_is_a_clear_error(settings: object, built: object, e5: object) -> None:
    from chatbot.core import Chatbot
    from chatbot.errors import EmbedderUnavailable

    s = settings.model_copy(update={"rerank_model": "/nonexistent/cross-encoder"})  # type: ignore[attr-defined]
    with pytest.raises(EmbedderUnavailable, match="CHATBOT_RERANK_MODEL"):
        Chatbot(s, embedder=e5)


def test_abbreviations_of_names_spelled_out_count_as_present() -> None:
    from chatbot.answer.extract import _acronyms

    text = "Le Haut Conseil de l’évaluation de la recherche et de l’enseignement supérieur a répondu. The National Security Agency declined."
    found = _acronyms(text)
    assert {"hceres", "nsa"} <= found
    assert "fbi" not in found


@pytest.mark.slow
def test_quotes_from_an_added_document_name_it(tmp_path: Path, e5: object) -> None:
    """With several documents, a quote is labelled with its document, never "From the article"."""
    from chatbot.core import Chatbot
    from chatbot.settings import Settings
    from index.build import build

    extra = tmp_path / "orion-notes.md"
    extra.write_text(
        "# Orion fund notes\n\nThe Orion Fund raised 5 trillion dollars [3] in 2024 from its members.\n", encoding="utf-8"
    )
    s = Settings(data_dir=tmp_path / "d")
    build(s, files=[extra], embedder=e5)  # type: ignore[arg-type]
    bot = Chatbot(s, embedder=e5)  # type: ignore[arg-type]
    p = bot.prepare("How much did the Orion Fund raise?")
    a = bot.extractor.assess(p.info, p.qvec, p.hits, p.language)
    orion = next(c for c in a.choices if "Orion" in c.hit.chunk.text)
    text = bot.extractor._compose(p.info, orion, p.hits, p.language).text
    assert "From “Orion fund notes”" in text and "From the article" not in text


def test_an_age_is_said_as_years() -> None:
    """"How old is X?" asks a count, but only a number said as an age answers it."""
    from chatbot.question import aspects, has_aspect

    assert aspects("Wie alt ist Alexandre Benalla?", "count") == ["age"]
    assert has_aspect("age", "Le jeune homme de 26 ans dispose aussi d'une voiture")
    assert has_aspect("age", "Der 33-Jährige schrieb für den SPIEGEL")
    assert not has_aspect("age", "Er schrieb 2016 drei Texte für die Zeitung")
    assert has_aspect("age", "Seven decades later, Parata, 75, has now overseen more than 500 strandings")
    assert not has_aspect("age", "In 2019, 75 strandings were recorded")

