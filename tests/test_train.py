"""The fitted answer stage: model files, calibration, threshold, and a guard on the
leave-one-article-out figures over the question bank (models never see the article scored)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chatbot import bank
from chatbot import features as F
from chatbot.model import AnswerModels, Calibration, Logistic
from chatbot.train import fit_calibration, fit_logistic

ROOT = Path(__file__).resolve().parent.parent


def test_logistic_round_trips_through_json() -> None:
    rng = np.random.default_rng(0)
    rows = [{"a": float(x), "b": float(y)} for x, y in rng.normal(size=(200, 2))]
    labels = [r["a"] + 0.5 * r["b"] > 0 for r in rows]
    m = fit_logistic(rows, labels, ("a", "b"))
    again = Logistic.from_dict(json.loads(json.dumps(m.to_dict())))
    p = again.prob(rows)
    assert np.allclose(p, m.prob(rows), atol=1e-4)
    assert ((p > 0.5) == np.asarray(labels)).mean() > 0.95


def test_calibration_is_monotone_and_close_to_the_truth() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(size=2000)
    y = rng.uniform(size=2000) < p  # right with probability p: calibrated by construction
    cal = fit_calibration(p, y.astype(float))
    xs = np.linspace(0, 1, 50)
    ys = [cal(x) for x in xs]
    assert all(b >= a for a, b in zip(ys, ys[1:], strict=False))
    assert abs(cal(0.8) - 0.8) < 0.1
    conf = np.asarray([cal(x) for x in p])
    answered = conf >= 2 / 3
    assert (~y[answered]).mean() < 1 / 3  # answering only at >= 2/3, fewer than a third of answers are wrong


def test_shipped_models_load_and_name_only_known_features() -> None:
    models = AnswerModels.load(ROOT / "models" / "answer.json")
    assert set(models.sentence.features) == set(F.SENTENCE_FEATURES)
    assert set(models.answerable.features) == set(F.QUESTION_FEATURES)
    assert isinstance(models.calibration, Calibration)


def test_bank_is_large_and_varied() -> None:
    articles = bank.load_articles()
    qs = bank.load_questions()
    assert len(qs) >= 600 and len(articles) >= 8
    for lang in ("fr", "en", "de"):
        assert sum(a.language == lang for a in articles) >= 2
    assert sum(not q.answerable for q in qs) / len(qs) >= 0.15
    assert sum(bool(q.history) for q in qs) / len(qs) >= 0.10
    for a in articles:
        langs = {q.language for q in qs if q.article == a.id}
        assert langs == {"fr", "en", "de"}, a.id
    reserved = {"lemonde-1", "nytimes-4", "sueddeutsche.de.flixtrain", "www.lemonde.fr"}
    assert not any(r in a.path for a in articles for r in reserved)


@pytest.fixture(scope="session")
def bank_records(tmp_path_factory: pytest.TempPathFactory) -> list:
    from chatbot.settings import Settings
    from chatbot.train import collect

    try:
        return collect(Settings(data_dir=tmp_path_factory.mktemp("bank")), xquad_titles=12)
    except bank.FixtureMissing as exc:
        pytest.skip(f"bank fixtures not on this machine: {exc}")


@pytest.mark.slow
def test_passages_are_in_the_articles(tmp_path: Path) -> None:
    for a in bank.load_articles():
        try:
            text = bank.materialize(a, tmp_path).read_text(encoding="utf-8")
        except bank.FixtureMissing as exc:
            pytest.skip(str(exc))
        for q in bank.load_questions(articles=[a.id]):
            assert not q.passage or q.passage in text, q.id


@pytest.mark.slow
def test_leave_one_article_out_figures_do_not_regress(bank_records: list) -> None:
    """Guards the measured figures (quoted in the closing note); a drop is a regression."""
    from chatbot.settings import Settings
    from chatbot.train import leave_one_article_out, report

    rep = report(leave_one_article_out(bank_records, Settings().answer_threshold))
    o = rep["overall"]
    print(json.dumps(rep, indent=1))
    assert sum(rep["outcomes"].values()) == o["n"]
    right = rep["outcomes"]["answered_right"] + rep["outcomes"]["unanswerable_refused"]
    assert abs(right / o["n"] - o["accuracy"]) < 1e-3
    assert o["accuracy"] >= FLOOR["accuracy"]
    assert o["answered_wrong"] <= FLOOR["answered_wrong"]
    assert o["unanswerable_refused"] >= FLOOR["unanswerable_refused"]
    assert o["false_refusals"] <= FLOOR["false_refusals"]


@pytest.mark.slow
def test_training_is_reproducible(bank_records: list, tmp_path: Path) -> None:
    """`python app.py train` rebuilds the shipped file: same data, same coefficients."""
    from chatbot.train import fit_all

    models, _ = fit_all([r for r in bank_records if r.source == "bank"], [r for r in bank_records if r.source != "bank"])
    shipped = AnswerModels.load(ROOT / "models" / "answer.json")
    assert np.allclose(models.sentence.coef, shipped.sentence.coef, atol=1e-3)
    assert np.allclose(models.answerable.coef, shipped.answerable.coef, atol=1e-3)
    assert np.allclose(
        [models.calibration(p) for p in (0.2, 0.5, 0.8)], [shipped.calibration(p) for p in (0.2, 0.5, 0.8)], atol=1e-3
    )


# measured leave-one-article-out figures, less a small margin for machine noise: over the 12 working
# articles (715 questions) accuracy 0.418, answered wrong 0.073, unanswerables refused 0.819, false
# refusals 0.643. (On the 9 articles of the bank before, fitted on those 9 alone, the previous
# release scored 0.492 / 0.112 / 0.796 / 0.502, and 0.122 answered wrong on the 3 articles added since.)
FLOOR = {"accuracy": 0.39, "answered_wrong": 0.095, "unanswerable_refused": 0.78, "false_refusals": 0.67}
