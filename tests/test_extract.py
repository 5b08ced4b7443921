"""The answer stage's candidates (chatbot/answer/extract.py): which passages compete, which
sentences lean on a neighbour, and the question cues the ranker's interactions need."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from chatbot.answer import features as F
from chatbot.answer.extract import Extractor
from chatbot.settings import Settings


def _bot_on(tmp_path: Path, e5: object, text: str) -> Any:
    """A bot over one plain-text document written for the test (built with the shared e5)."""
    from chatbot.core import Chatbot
    from index.build import build

    doc = tmp_path / "doc.txt"
    doc.write_text(text, encoding="utf-8")
    settings = Settings(corpus=(doc,), data_dir=tmp_path / "data", llm_enabled=False)
    build(settings, embedder=e5)
    return Chatbot(settings, embedder=e5)


def _choices(bot: Any, question: str) -> list[Any]:
    """The candidates the answer stage weighs for a question, best first."""
    p = bot.prepare(question)
    return list(bot.extractor.assess(p.info, p.qvec, p.hits, p.language).choices)


@pytest.mark.parametrize(
    ("question", "asks"),
    [
        ("Who wrote this article?", True),
        ("author?", True),
        ("Qui a écrit cet article ?", True),
        ("c'est qui l'auteur", True),
        ("Wer hat den Artikel geschrieben?", True),
        ("Wer ist der Autor?", True),
        ("Who raised the most money?", False),
        ("Qu'a écrit Lindner dans sa lettre à propos du train ?", False),
        ("Wann erschien der Text?", False),
        ("Who is the author?", True),
        ("Quel est le nom de l'auteur ?", True),
        # the author as the subject of another question
        ("In welcher Zeitschrift sind französische Autoren besonders präsent?", False),
        ("Dans quel journal l'auteur a-t-il lui-même critiqué Eisenberg ?", False),
        ("What does the author think of the plan?", False),
    ],
)
def test_questions_about_the_author(question: str, asks: bool) -> None:
    assert bool(F.ASKS_AUTHOR.search(question)) is asks


@pytest.mark.parametrize(
    ("question", "asks"),
    [
        ("Who wrote this article?", True),
        ("When was this article published?", True),
        ("wann ist der artikel erschienen", True),
        ("Wann erschien der Text?", True),
        ("De quand date cet article ?", True),
        # a book's publication, or a date the article gives, is no byline's
        ("Quand le livre d'Éric Chauvier a-t-il été publié pour la première fois ?", False),
        ("What date does the article give for the launch?", False),
        ("When was the telescope launched?", False),
    ],
)
def test_questions_the_byline_answers(question: str, asks: bool) -> None:
    assert F.asks_byline(question) is asks


def _hit(cid: str) -> Any:
    return SimpleNamespace(chunk=SimpleNamespace(id=cid))


def test_passages_holding_the_best_sentences_compete_too() -> None:
    """The first `answer_candidates` passages, then those holding the article's best sentences by
    either embedder, wherever retrieval ranked them; no passage twice."""
    hits = [_hit(f"c{k}") for k in range(12)]
    sentences = [SimpleNamespace(parent=f"c{k}") for k in range(12)]
    fake = SimpleNamespace(
        s=Settings(answer_candidates=3, answer_sentence_pool=2), r=SimpleNamespace(sentences=sentences)
    )
    e5 = np.zeros(12)
    e5[[9, 1]] = [0.9, 0.8]  # best: c9 (retrieved 10th), then c1 (already in)
    use = np.zeros(12)
    use[[7, 9]] = [0.7, 0.6]
    assert Extractor._candidate_ranks(fake, hits, e5, use) == [0, 1, 2, 9, 7]  # type: ignore[arg-type]
    none = SimpleNamespace(s=Settings(answer_candidates=3, answer_sentence_pool=0), r=fake.r)
    assert Extractor._candidate_ranks(none, hits, e5, use) == [0, 1, 2]  # type: ignore[arg-type]


def _unit(cid: str, kind: str, section: str = "article", doc: str = "d1") -> Any:
    return SimpleNamespace(id=cid, meta={"kind": kind, "section": section, "doc_id": doc}, sentences=[0])


def test_units_named_by_their_role_compete() -> None:
    """The byline when the author is asked; the comments (teasers) closest to a question about
    readers (related articles), however retrieval ranked them; only the best hit's document."""
    chunks = [
        _unit("p1", "paragraph"),
        _unit("by", "byline"),
        *(_unit(f"c{k}", "comment", "comment") for k in range(5)),
        _unit("r1", "related", "related"),
        _unit("other-c", "comment", "comment", doc="d2"),
    ]
    closeness = {"c3": 0.9, "c1": 0.8, "c4": 0.7, "c0": 0.1, "c2": 0.2, "other-c": 1.0}
    fake = SimpleNamespace(
        s=Settings(answer_section_pool=2),
        r=SimpleNamespace(chunks={c.id: c for c in chunks}, chunk_cosine=lambda cid, q: closeness.get(cid, 0.0)),
    )
    hits = [SimpleNamespace(chunk=chunks[0])]
    named = lambda *flags: [c.id for c in Extractor._asked_section(fake, hits, np.zeros(2), *flags)]  # type: ignore[arg-type]  # noqa: E731
    assert named(1.0, 0.0, 0.0, 0) == ["c3", "c1"]
    assert named(0.0, 1.0, 0.0, 0) == ["r1"]
    assert named(0.0, 0.0, 1.0, 0) == ["by"]
    assert named(0.0, 0.0, 0.0, 0) == []
    assert named(1.0, 0.0, 0.0, 2) == []  # an asked position picks its own comment


@pytest.mark.slow
def test_a_comparison_quotes_the_other_side_beside_it(tmp_path: Path, e5: object) -> None:
    """"How many cases here compared with the world?": the sentence with one side is quoted with
    a neighbour holding a figure; without a comparison it stands alone."""
    bot = _bot_on(
        tmp_path,
        e5,
        "L'épidémie en chiffres\n\n"
        "Le pays a enregistré 120 000 cas et environ 4 000 décès. Les hôpitaux de la capitale sont pleins. "
        "Dans le monde, on compte 2,3 millions de cas.\n\n"
        "Les autorités prévoient de rouvrir les écoles en mai.\n",
    )

    def quotes(question: str) -> list[str]:
        return [
            " ".join(x.text for x in c.sentences)
            for c in _choices(bot, question)
            if "120 000" in c.sentences[-1].text or "120 000" in c.sentences[0].text
        ]

    assert any("2,3 millions" in q for q in quotes("Combien de cas dans le pays par rapport au monde ?"))
    assert all("2,3 millions" not in q for q in quotes("Combien de cas le pays a-t-il enregistrés ?"))


@pytest.mark.slow
def test_a_short_opening_is_quoted_with_the_sentence_that_explains_it(tmp_path: Path, e5: object) -> None:
    """"36 Stunden. So lange dauert die schnellste Zugverbindung …": asked how long the trip
    takes, the figure is in the short opening and the words of the question in the next sentence."""
    bot = _bot_on(
        tmp_path,
        e5,
        "Im Nachtzug durch Europa\n\n36 Stunden. So lange dauert die schnellste Zugverbindung von Madrid nach Stockholm.\n"
        "Die Fahrt beginnt um 7:20 Uhr. Unterwegs muss man fünf Mal umsteigen, teils mit langen Pausen.\n"
        "Viele Reisende wünschen sich wieder mehr Nachtzüge zwischen den großen Städten.\n",
    )
    choices = _choices(bot, "Wie lange dauert die schnellste Zugverbindung von Madrid nach Stockholm?")
    texts = [" ".join(s.text for s in c.sentences) for c in choices]
    assert any(t.startswith("36 Stunden. So lange dauert") for t in texts)
    answer = bot.answer("Wie lange dauert die schnellste Zugverbindung von Madrid nach Stockholm?")
    assert "36 Stunden" in answer.answer, answer.answer
    # asked what the article is about, the lead is quoted with what follows, never a sentence twice
    choices = _choices(bot, "Worum geht es in dem Artikel?")
    leads = [c for c in choices if c.features["lead_x_about"]]
    assert any([s.text for s in c.sentences][:1] == ["36 Stunden."] and len(c.sentences) == 2 for c in leads)
    for c in choices:
        assert len({s.text for s in c.sentences}) == len(c.sentences), [s.text for s in c.sentences]


@pytest.mark.parametrize(
    ("question", "compare", "rank", "difference"),
    [
        ("How much more did Databricks raise than OpenAI?", True, False, True),
        ("Combien de plus qu'OpenAI Databricks a-t-il levé ?", True, False, True),
        ("Wie viel mehr als OpenAI hat Databricks eingesammelt?", True, False, True),
        ("Was the US share higher than Europe's?", True, False, False),
        ("Who raised the most?", False, True, False),
        ("Qui a levé le plus ?", False, True, False),
        ("Welcher Investor war am aktivsten?", False, True, False),
        ("Which was the third largest round?", False, True, False),
        ("How much did Databricks raise?", False, False, False),
        ("Combien a levé Mistral ?", False, False, False),
        ("How much did AI startups raise last year?", False, False, False),
        ("Which company, rather than OpenAI, got the most?", False, True, False),
        ("Was haben KI-Startups im letzten Jahr eingesammelt?", False, False, False),
        ("How do US case numbers compare with the global total?", True, False, False),
        ("USA gegen weltweit – wie viele Fälle jeweils?", True, False, False),
        ("L'amende est-elle plus élevée que le préjudice ?", True, False, False),
        ("wie verhält sich die geldstrafe zum schaden", True, False, False),
        ("Le taux est-il supérieur à celui de 2023 ?", True, False, False),
        ("Que dit-il de plus ?", False, False, False),
    ],
)
def test_comparison_and_ranking_questions(question: str, compare: bool, rank: bool, difference: bool) -> None:
    assert F.asks_comparison(question) is compare
    assert F.asks_rank(question) is rank
    assert bool(F.HOW_MUCH_MORE.search(question)) is difference


@pytest.mark.slow
def test_a_difference_is_answered_with_both_figures(tmp_path: Path, e5: object) -> None:
    """"How much more did X raise than Y?": the answer quotes the sentence that holds both sides;
    the nearest single figure would state one side as the difference."""
    bot = _bot_on(
        tmp_path,
        e5,
        "Les levées de fonds de l'IA en 2024\n\n"
        "Databricks a levé 10 milliards de dollars, contre 6,6 milliards de dollars pour OpenAI.\n"
        "Mistral AI a de son côté levé 600 millions d'euros auprès de fonds européens.\n"
        "Le secteur a attiré au total 110 milliards de dollars, un record.\n",
    )
    for question in ("How much more did Databricks raise than OpenAI?", "Wie viel mehr als OpenAI hat Databricks eingesammelt?"):
        answer = bot.answer(question)
        assert answer.status != "not_found", answer.answer
        assert "10 milliards" in answer.answer and "6,6 milliards" in answer.answer, answer.answer
        # no line states one side alone (a headline span "$10 billion [1]" would)
        for line in answer.answer.splitlines():
            assert ("10" in line) == ("6,6" in line or "6.6" in line), answer.answer


@pytest.mark.parametrize(
    ("question", "n"),
    [
        ("Who wrote the first comment?", 1),
        ("Qui a posté le deuxième commentaire ?", 2),
        ("Wer hat als Dritter kommentiert?", 3),
        ("Welcher Kommentar kam als letzter?", -1),
        ("What is the last related article?", -1),
        ("How much did Databricks raise?", 0),
        # a time, not a position: "the last item of the list" would answer "last year"
        ("Which company was the largest recipient of AI funding last year?", 0),
        ("Combien les startups ont-elles levé l'an dernier ?", 0),
        ("Was haben KI-Firmen im letzten Jahr eingesammelt?", 0),
        ("Qui a levé le plus au premier semestre, et qui a écrit le dernier commentaire ?", -1),
        # a follow-up resolved as the previous question and its own words: the last one named counts
        ("Wer hat den ersten Kommentar geschrieben? Und wer kam als Zweiter?", 2),
    ],
)
def test_asked_positions(question: str, n: int) -> None:
    assert F.ordinal(question) == n


@pytest.mark.slow
def test_the_comment_at_the_asked_position_is_a_candidate(tmp_path: Path, e5: object) -> None:
    """"Who wrote the second comment?" shares no word with that comment: it competes anyway,
    marked as the one at the asked position (comments counted by author and date, in page order)."""
    bot = _bot_on(
        tmp_path,
        e5,
        "Pseudonyme bei Google+\n2011-07-17\n\nGoogle+ sperrt Profile ohne echten Namen. Das ist rechtlich fraglich.\n\n"
        "Also im Klartext: das gilt für alle Nutzer.\nComment by Mirko Lange — 17.07, 2011 @ 13:04\n"
        "Wenn das in den AGB steht, gilt es eben.\nDas Gesetz steht aber über den AGB.\nComment by Daniel — 17.07, 2011 @ 13:10\n"
        "Ich sehe das ganz anders als Daniel.\nComment by Sabine Engelhardt — 17.07, 2011 @ 13:40\n",
    )

    def placed(question: str) -> set[str]:
        return {str(c.hit.chunk.meta.get("author")) for c in _choices(bot, question) if c.features["position_ok"]}

    assert placed("Who wrote the second comment?") == {"Daniel"}
    assert placed("Qui a écrit le premier commentaire ?") == {"Mirko Lange"}
    assert placed("Wer hat den letzten Kommentar geschrieben?") == {"Sabine Engelhardt"}
    assert placed("Who wrote the fifth comment?") == set()  # there are three


@pytest.mark.slow
def test_topic_words_and_names_asked_through_money(bot: Any) -> None:
    """The article's topic words the question uses are checked in each candidate ("KI-Startups":
    the tech-wide 227-billion total, "incluant startups", lacks "IA"); a "who raised …" question
    marks the candidates that give an amount."""

    def features(question: str, needle: str) -> dict[str, float]:
        p = bot.prepare(question)
        a = bot.extractor.assess(p.info, p.qvec, p.hits, p.language)
        return next(c.features for c in a.choices if needle in " ".join(s.text for s in c.sentences))

    q = "Wie viel Geld haben KI-Startups 2024 insgesamt eingesammelt?"
    assert features(q, "227 milliards")["topic_frac"] < features(q, "les startups IA ont réussi")["topic_frac"] == 1.0
    q = "Who got the largest funding round in 2024?"
    assert features(q, "Databricks, qui a sécurisé")["who_amount"] == 1.0
    assert features(q, "Databricks : Gère")["who_amount"] == 0.0
    assert features("How much did Databricks raise?", "Databricks, qui a sécurisé")["who_amount"] == 0.0
