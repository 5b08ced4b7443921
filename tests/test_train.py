"""The fitted answer stage: model files, calibration, threshold; and training itself (collect,
fit, leave-one-article-out, `train --check`) on a small bank this project wrote
(tests/data/minibank), so it runs on every machine. The figures and the reproduction of the
shipped models on the real bank, whose articles are fixtures of other repositories, are checked by
`make train-check` (checks/test_bank_fixtures.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from chatbot import bank
from chatbot.answer import features as F
from chatbot.answer.models import AnswerModels, Calibration, Logistic
from chatbot.train import fit_calibration, fit_logistic, fit_platt

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


@pytest.mark.parametrize("fit", [fit_calibration, fit_platt])
def test_calibration_is_monotone_and_close_to_the_truth(fit: Callable[[np.ndarray, np.ndarray], Calibration]) -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(size=2000)
    y = rng.uniform(size=2000) < p  # right with probability p: calibrated by construction
    cal = fit(p, y.astype(float))
    xs = np.linspace(0, 1, 50)
    ys = [cal(x) for x in xs]
    assert all(b >= a for a, b in zip(ys, ys[1:], strict=False))
    assert abs(cal(0.8) - 0.8) < 0.1
    conf = np.asarray([cal(x) for x in p])
    answered = conf >= 2 / 3
    assert (~y[answered]).mean() < 1 / 3  # answering only at >= 2/3, fewer than a third of answers are wrong


def test_platt_does_not_promise_what_a_few_confident_questions_kept() -> None:
    """Scores whose truth is a sigmoid of their logit, with the 15 most confident questions all
    right by chance: isotonic regression's top step promises 1.0 there, the fitted sigmoid stays
    near the truth."""
    rng = np.random.default_rng(2)
    p = np.sort(rng.uniform(0.05, 0.95, size=400))
    y = (rng.uniform(size=400) < p).astype(float)
    y[-15:] = 1.0
    iso, platt = fit_calibration(p, y), fit_platt(p, y)
    assert iso(0.95) == pytest.approx(1.0)
    assert abs(platt(0.95) - 0.95) < 0.04


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


# ---- training on the project's own small bank (tests/data/minibank): runs on every machine ----

MINIBANK = ROOT / "tests" / "data" / "minibank"


@pytest.fixture(scope="module")
def minibank() -> Iterator[Path]:
    """The bank functions read tests/data/minibank for this module's tests (CHATBOT_BANK_DIR)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHATBOT_BANK_DIR", str(MINIBANK))
        mp.setenv("CHATBOT_FIXTURES_DIR", str(ROOT / "tests" / "data" / "no-fixtures-here"))  # it needs none
        yield MINIBANK


@pytest.fixture(scope="module")
def mini_records(minibank: Path, tmp_path_factory: pytest.TempPathFactory) -> list:
    from chatbot.settings import Settings
    from chatbot.train import collect

    return collect(Settings(data_dir=tmp_path_factory.mktemp("minibank")), xquad_titles=0)


def test_minibank_is_ours_and_varied(minibank: Path) -> None:
    articles = bank.load_articles()
    qs = bank.load_questions()
    assert {a.language for a in articles} == {"fr", "en", "de"} and not bank.pinned_repositories()
    assert len(qs) >= 30 and {q.language for q in qs} == {"fr", "en", "de"}
    assert sum(not q.answerable for q in qs) / len(qs) >= 0.15 and any(q.history for q in qs)
    for a in articles:  # texts written for this project, shipped with it: no fixture repository
        assert a.builtin.startswith("tests/data/minibank/") and not a.repo
        text = bank.materialize(a, Path("/nonexistent")).read_text(encoding="utf-8")
        for q in bank.load_questions(articles=[a.id]):
            assert not q.passage or q.passage in text, q.id
            assert q.answerable == bool(q.answer_any), q.id
            assert all(any(k in text for k in group) for group in q.answer_any), q.id


@pytest.mark.slow
def test_collect_records_every_question_with_candidates(mini_records: list, minibank: Path) -> None:
    qs = bank.load_questions()
    assert sorted(r.qid for r in mini_records) == sorted(q.id for q in qs)
    assert all(r.source == "bank" for r in mini_records)
    answerable = [r for r in mini_records if r.answerable]
    assert sum(bool(r.cands) for r in answerable) >= 0.9 * len(answerable)
    assert sum(any(r.ok) for r in answerable) >= 0.7 * len(answerable)  # retrieval finds most answers
    assert not any(any(r.ok) for r in mini_records if not r.answerable)  # nothing is "right" for an unanswerable
    assert all(len(r.ok) == len(r.cands) for r in mini_records)


@pytest.mark.slow
def test_train_writes_models_that_load(mini_records: list, minibank: Path, tmp_path: Path) -> None:
    from chatbot.settings import Settings
    from chatbot.train import train

    out = tmp_path / "answer.json"
    models = train(Settings(data_dir=tmp_path / "data"), out=out, xquad_titles=0)
    again = AnswerModels.load(out)
    assert again.meta["questions"] == len(mini_records) and again.meta["extra_questions"] == 0
    assert set(again.sentence.features) == set(F.SENTENCE_FEATURES)
    assert set(again.answerable.features) == set(F.QUESTION_FEATURES)
    assert set(again.absence.features) == set(F.ABSENCE_FEATURES) and 0.5 <= again.absence_threshold <= 1.0
    assert 0.0 <= again.calibration(0.5) <= 1.0
    assert json.loads(out.read_text(encoding="utf-8")) == json.loads(json.dumps(models.to_dict()))


@pytest.mark.slow
def test_a_refit_is_deterministic(mini_records: list, tmp_path: Path) -> None:
    from chatbot.cli import compare_models
    from chatbot.train import fit_all

    files = []
    for name in ("a.json", "b.json"):
        models, _ = fit_all(mini_records, [])
        models.save(tmp_path / name)
        files.append(json.loads((tmp_path / name).read_text(encoding="utf-8")))
    assert compare_models(files[0], files[1], atol=1e-9) == []


@pytest.mark.slow
def test_leave_one_article_out_reports_each_article(mini_records: list) -> None:
    from chatbot.settings import Settings
    from chatbot.train import OUTCOMES, leave_one_article_out, report

    rep = report(leave_one_article_out(mini_records, Settings()))
    o = rep["overall"]
    assert o["n"] == len(mini_records) and sum(rep["outcomes"].values()) == o["n"] and set(rep["outcomes"]) == set(OUTCOMES)
    assert set(rep["by_article"]) == {a.id for a in bank.load_articles(MINIBANK)}
    assert sum(f["n"] for f in rep["by_article"].values()) == o["n"]
    assert set(rep["by_language"]) == {"fr", "en", "de"}
    useful = rep["outcomes"]["stated_right"] + rep["outcomes"]["unsure_shown_right"]
    assert abs(useful / o["answerable"] - o["useful"]) < 1e-3
    # models fitted on two small articles still serve some questions usefully and state few wrong answers
    assert useful >= 5 and o["stated_wrong"] <= 0.2
    assert {"confidence_answered", "confidence_unsure", "absence_all"} <= set(rep["reliability"])
    assert sum(b["n"] for b in rep["reliability"]["absence_all"]) == o["n"]


def test_absence_operating_point_keeps_false_absences_under_the_bar() -> None:
    from chatbot.train import operating_point

    rng = np.random.default_rng(3)
    answerable = rng.uniform(size=1000) < 0.8
    p = np.where(answerable, rng.beta(2, 5, size=1000), rng.beta(5, 2, size=1000))
    bar = operating_point(p, answerable, 0.02)
    assert (p[answerable] >= bar).mean() <= 0.02 and bar >= 0.5
    assert operating_point(p, answerable, 0.5) == 0.5  # never below one half


@pytest.mark.slow
def test_train_and_check_from_the_command_line(minibank: Path, tmp_path: Path) -> None:
    """`python app.py train` on another bank, then `train --check`: the refit reproduces the file."""
    from tests.conftest import run_app

    env = {
        "CHATBOT_BANK_DIR": str(minibank),
        "CHATBOT_DATA_DIR": str(tmp_path / "data"),
        "CHATBOT_MODELS_PATH": str(tmp_path / "answer.json"),
    }
    out = run_app("train", "--xquad", "0", env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "answer models written to" in out.stdout and (tmp_path / "answer.json").exists()
    out = run_app("train", "--check", "--xquad", "0", env=env, timeout=600)
    assert out.returncode == 0 and "reproduces" in out.stdout, out.stdout + out.stderr
    shipped = json.loads((tmp_path / "answer.json").read_text(encoding="utf-8"))
    shipped["answerable"]["coef"][0] += 0.5  # a different file: the check says where
    (tmp_path / "answer.json").write_text(json.dumps(shipped), encoding="utf-8")
    out = run_app("train", "--check", "--xquad", "0", env=env, timeout=600)
    assert out.returncode == 1 and "answerable.coef[0]" in out.stdout, out.stdout + out.stderr


def test_compare_models_names_what_differs() -> None:
    from chatbot.cli import compare_models

    a = {"x": {"coef": [1.0, 2.0], "names": ["p", "q"]}, "n": 3}
    assert compare_models(a, json.loads(json.dumps(a))) == []
    assert compare_models(a, {"x": {"coef": [1.0, 2.0005], "names": ["p", "q"]}, "n": 3}) == []  # within 1e-3
    b = {"x": {"coef": [1.0, 2.1], "names": ["p", "r"]}, "n": 3, "extra": {}}
    assert compare_models(a, b) == [".extra: None (shipped {})", ".x.coef[1]: 2.0 (shipped 2.1)", ".x.names[1]: q (shipped r)"]


# ---- the rankers `eval` compares (chatbot/rankers.py) ----------------------------------------


def _xor_records(n: int, seed: int) -> list:
    """Questions whose right candidate is the one where exactly one of two signals is on: an
    interaction no weighted sum of the two can express."""
    from types import SimpleNamespace

    rng = np.random.default_rng(seed)
    a, b = F.SENTENCE_FEATURES[:2]
    out = []
    for i in range(n):
        cands = [{a: float(x), b: float(y)} for x, y in ((0, 0), (1, 1), (1, 0) if i % 2 else (0, 1))]
        cands += [{a: 1.0, b: 1.0}, {a: 1.0, b: 1.0}]  # more both-on distractors
        order = rng.permutation(len(cands))
        cands = [cands[k] for k in order]
        ok = [(c[a] + c[b]) == 1.0 for c in cands]
        out.append(SimpleNamespace(article=f"a{i % 3}", language="en", answerable=True, cands=cands, ok=ok, source="bank"))
    return out


def test_lambdarank_learns_an_interaction_the_linear_ranker_cannot() -> None:
    from chatbot import rankers
    from chatbot.train import fit_sentence

    figs = rankers.compare(
        _xor_records(300, 0), [], _xor_records(60, 1), {"linear": fit_sentence, "lambdarank": rankers.fit_lambdarank}
    )
    assert figs["lambdarank"]["heldout"]["first_pick_right"] == 1.0
    assert figs["linear"]["heldout"]["first_pick_right"] < 0.75
    assert figs["lambdarank"]["leave_one_article_out"]["n"] == 300


def test_rankers_are_compared_on_the_same_questions(mini_records: list) -> None:
    from chatbot import rankers
    from chatbot.train import ABSENCE_ONLY, fit_sentence

    bank_records = [r for r in mini_records if r.source == "bank"]
    extra = [r for r in mini_records if r.source != "bank" and r.source not in ABSENCE_ONLY]
    figs = rankers.compare(bank_records, extra, [], {"linear": fit_sentence, "lambdarank": rankers.fit_lambdarank})
    lin, trees = figs["linear"]["leave_one_article_out"], figs["lambdarank"]["leave_one_article_out"]
    assert lin["n"] == trees["n"] == sum(r.answerable for r in bank_records)
    assert lin["candidate_present"] == trees["candidate_present"]  # same candidates, ranked differently
    for f in (lin, trees):
        assert 0 <= f["first_pick_right"] <= f["top2_right"] <= f["candidate_present"] <= 1
        assert set(f["by_language"]) == {"fr", "en", "de"}


def test_a_signed_weight_keeps_its_sign_and_a_free_fit_matches_scikit_learn() -> None:
    """The absence model's evidence may only push one way (features.ABSENCE_SIGNS): a feature the
    data would weigh the other way gets weight 0, not a reversed meaning."""
    rng = np.random.default_rng(5)
    rows = [{"a": float(x), "b": float(v)} for x, v in zip(rng.normal(size=400), rng.normal(size=400), strict=True)]
    labels = [r["a"] + 0.5 * r["b"] + rng.normal(scale=0.5) > 0 for r in rows]  # b raises the odds
    free = fit_logistic(rows, labels, ("a", "b"))
    same = fit_logistic(rows, labels, ("a", "b"), signs={"not a feature": 1})  # the bounded fit, no bound active
    assert np.allclose(free.coef, same.coef, atol=1e-3) and abs(free.intercept - same.intercept) < 1e-3
    held = fit_logistic(rows, labels, ("a", "b"), signs={"b": -1})
    assert free.coef[1] > 0.3 and held.coef[1] == 0.0 and held.coef[0] > 0.5
