"""Checks on the real question bank, for where its fixture repositories are present: `make
train-check` fetches them (`make bank`) and runs these, and `python app.py train --check` (the
refit reproduces models/answer.json). Not part of `make test`: on a machine without the fixtures
they could only skip; the training code itself is tested on tests/data/minibank everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chatbot import bank
from chatbot.answer.models import AnswerModels

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def fixtures_present() -> None:
    bank.check_fixtures()  # fails, naming what is missing and how to fetch it: never a silent skip


@pytest.fixture(scope="session")
def bank_records(tmp_path_factory: pytest.TempPathFactory) -> list:
    from chatbot.settings import Settings
    from chatbot.train import collect, heldout_ids

    records = collect(Settings(data_dir=tmp_path_factory.mktemp("bank")), xquad_titles=12, include_heldout=True)
    return [r for r in records if r.article not in heldout_ids()]


@pytest.mark.slow
def test_passages_are_in_the_articles(tmp_path: Path) -> None:
    for a in bank.load_articles():
        text = bank.materialize(a, tmp_path).read_text(encoding="utf-8")
        for q in bank.load_questions(articles=[a.id]):
            assert not q.passage or q.passage in text, q.id


@pytest.mark.slow
def test_leave_one_article_out_figures_do_not_regress(bank_records: list) -> None:
    """Guards the measured figures (quoted in the closing note); a drop is a regression."""
    from chatbot.settings import Settings
    from chatbot.train import leave_one_article_out, report

    rep = report(leave_one_article_out(bank_records, Settings()))
    o = rep["overall"]
    print(json.dumps(rep, indent=1))
    assert sum(rep["outcomes"].values()) == o["n"]
    assert o["useful"] >= FLOOR["useful"]
    assert o["stated_wrong"] <= FLOOR["stated_wrong"]
    assert o["false_not_found"] <= FLOOR["false_not_found"]
    assert o["unanswerable_not_found"] >= FLOOR["unanswerable_not_found"]
    assert o["unanswerable_stated"] <= FLOOR["unanswerable_stated"]


@pytest.mark.slow
def test_training_is_reproducible(bank_records: list, tmp_path: Path) -> None:
    """`python app.py train` rebuilds the shipped file: same data, same coefficients."""
    from chatbot.settings import Settings
    from chatbot.train import fit_all

    models, _ = fit_all(
        [r for r in bank_records if r.source == "bank"],
        [r for r in bank_records if r.source != "bank"],
        Settings().absence_max_false,
    )
    shipped = AnswerModels.load(ROOT / "models" / "answer.json")
    assert np.allclose(models.sentence.coef, shipped.sentence.coef, atol=1e-3)
    assert np.allclose(models.answerable.coef, shipped.answerable.coef, atol=1e-3)
    assert np.allclose(models.absence.coef, shipped.absence.coef, atol=1e-3)
    assert abs(models.absence_threshold - shipped.absence_threshold) < 1e-3
    assert np.allclose(
        [models.calibration(p) for p in (0.2, 0.5, 0.8)], [shipped.calibration(p) for p in (0.2, 0.5, 0.8)], atol=1e-3
    )


# measured leave-one-article-out figures, less a small margin for machine noise (see the README's
# "Measured"); the previous release, with one switch where there are now three outcomes, called
# 0.641 of the answerable questions "does not seem to answer"
# (measured, 15 articles: useful 0.755, stated wrong 0.012, false "not found" 0.010, unanswerable
# "not found" 0.292 and stated 0.076)
FLOOR = {"useful": 0.73, "stated_wrong": 0.025, "false_not_found": 0.025, "unanswerable_not_found": 0.27, "unanswerable_stated": 0.10}
