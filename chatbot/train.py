"""`python app.py train` and the leave-one-article-out evaluation behind `python app.py eval`.

Simplifies: the answer stage is fitted, not hand-tuned. Each bank article is indexed on its own
(as a user would), every question runs through the same `prepare` + `assess` path that serving
uses, and each candidate sentence is recorded with its features and whether the answer composed
from it is right. Models are then linear and exported to JSON: a listwise ranker (a softmax
over each question's candidates, fitted with scipy's L-BFGS) picks the sentence, a logistic
regression (scikit-learn) predicts whether the pick is right, and a sigmoid (Platt) calibrates it; the absence model's probability goes through isotonic steps. Leave-one-article-out means every figure for an article comes from models fitted
without it. XQuAD (German contexts, German and English questions) adds sentence-ranking data.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chatbot import bank
from chatbot.answer import features as F
from chatbot.answer.models import AnswerModels, Calibration, Logistic
from chatbot.answer.outcome import Status, decide, shown_candidates
from chatbot.evaluate import keywords_ok
from chatbot.settings import ROOT, Settings

# XQuAD titles reserved for the hidden test: never read, never fitted on.
XQUAD_RESERVED = {
    "1973_oil_crisis",
    "Apollo_program",
    "Rhine",
    "Kenya",
    "Harvard_University",
    "Black_Death",
    "Steam_engine",
    "Scottish_Parliament",
}
XQUAD_KEPT = 3  # paragraphs of 5 kept in the absence model's cut XQuAD articles
MINIBANK = ROOT / "tests" / "data" / "minibank"
ABSENCE_ONLY = ("xquad-absent", "minibank")  # sources fitted on by the absence model alone


@dataclass
class Record:
    qid: str
    article: str
    language: str
    answerable: bool
    group: str
    kind: str
    base: dict[str, float]  # question features independent of the sentence model
    cands: list[dict[str, float]]
    ok: list[bool]
    source: str  # "bank" | "xquad"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _bot_for(doc: Path, data_dir: Path, embedder: Any) -> Any:
    import shutil

    from chatbot.core import Chatbot
    from index.build import build

    shutil.rmtree(data_dir, ignore_errors=True)  # always a fresh build: a stale one would make training irreproducible
    settings = Settings(corpus=(doc,), data_dir=data_dir, llm_enabled=False)
    build(settings, embedder=embedder)
    return Chatbot(settings, embedder=embedder, fitted=False)


def collect_article(bot: Any, questions: list[bank.Question], source: str = "bank") -> list[Record]:
    out = []
    ex = bot.extractor
    for q in questions:
        p = bot.prepare(q.question, q.history)
        a = ex.assess(p.info, p.qvec, p.hits, p.language, p.followup, p.own, p.previous)
        cands, ok = [], []
        for c in a.choices:
            text = ex._compose(p.info, c, p.hits, p.language).text
            cands.append(c.features)
            ok.append(bool(q.answerable and keywords_ok(text, q.answer_any)))
        base = {k: v for k, v in a.question.items() if k in F.QUESTION_FEATURES and not k.startswith("top_") and k != "margin"}
        out.append(Record(q.id, q.article, p.language, q.answerable, q.group or q.id, q.kind, base, cands, ok, source))
    return out


def _xquad_articles(
    limit: int, skip: int = 0, kept: int = 0, language: str = "de"
) -> list[tuple[str, str, list[bank.Question]]]:
    """(title, text in `language`, questions in German and English) for XQuAD titles not
    reserved, from the `skip`-th on. With `kept` > 0 only the first `kept` paragraphs: the
    questions about the others stay, as *unanswerable* ones on the same topic (the SQuAD 2.0
    idea), which is what the absence model must tell from answerable."""
    import subprocess

    git_dir = bank.fixtures_dir() / "google-deepmind+xquad" / "repo"
    if limit <= 0 or not git_dir.exists():
        return []
    data = {
        lang: json.loads(
            subprocess.run(
                ["git", "--git-dir", str(git_dir), "show", f"HEAD:xquad.{lang}.json"], capture_output=True, check=True
            ).stdout
        )
        for lang in ("de", "en")
    }
    out = []
    titles = [(de, en) for de, en in zip(data["de"]["data"], data["en"]["data"], strict=True) if en["title"] not in XQUAD_RESERVED]
    for art_de, art_en in titles[skip : skip + limit]:
        title = art_en["title"]
        source = art_en if language == "en" else art_de
        paragraphs = source["paragraphs"][:kept] if kept else source["paragraphs"]
        text = title.replace("_", " ") + "\n\n" + "\n\n".join(p["context"] for p in paragraphs)
        qs = []
        for n, (p_de, p_en) in enumerate(zip(art_de["paragraphs"], art_en["paragraphs"], strict=True)):
            answerable = not kept or n < kept
            for q_de, q_en in zip(p_de["qas"], p_en["qas"], strict=True):
                ans = (q_en if language == "en" else q_de)["answers"][0]["text"]
                for lang, qq in (("de", q_de), ("en", q_en)):
                    qs.append(
                        bank.Question(
                            f"xquad-{title}-{qq['id']}-{lang}",
                            f"xquad-{title}",
                            lang,
                            qq["question"],
                            answerable,
                            ans,
                            [[ans]] if answerable else [],
                            group=qq["id"],
                        )
                    )
        out.append((title, text, qs))
    return out


# Code that cannot change a collected feature: the adapters, generation and its checks, this file's
# fitting half is not separable, so this file stays in.
_NOT_FEATURE_CODE = ("web", "cli.py", "render.py", "llm.py", "llm_server.py", "checks.py", "holder.py", "evaluate.py", "rankers.py")


def _feature_code() -> list[Path]:
    """The source files a collection's cache key covers."""
    files = [*(ROOT / "chatbot").rglob("*.py"), *(ROOT / "index").rglob("*.py")]
    return sorted(p for p in files if not any(part in _NOT_FEATURE_CODE for part in p.relative_to(ROOT).parts))


def collect(
    settings: Settings, xquad_titles: int = 12, include_heldout: bool = False, cache: bool = True, xquad_absent: int = 12
) -> list[Record]:
    """Features of every bank question and of XQuAD questions (`xquad_titles` whole German
    articles for the ranker, then `xquad_absent` other titles cut short for the absence model),
    cached by content hash."""
    _sklearn()
    articles = [a for a in bank.load_articles() if include_heldout or not a.heldout]
    questions = bank.load_questions(articles=[a.id for a in articles])
    # the project's own short articles (tests/data/minibank) teach the absence model what a short
    # note looks like, unless they are the bank itself (the training tests)
    short = [] if bank.bank_dir().resolve() == MINIBANK.resolve() else bank.load_articles(MINIBANK)
    short_questions = bank.load_questions(MINIBANK) if short else []
    key = hashlib.sha256(
        json.dumps(
            [[a.id for a in articles], [q.__dict__ for q in questions + short_questions], xquad_titles, xquad_absent],
            sort_keys=True,
        ).encode()
        + b"".join(p.read_bytes() for p in _feature_code())
    ).hexdigest()[:16]
    work = settings.data_dir / "bank"
    path = work / f"features-{key}.json"
    if cache and path.exists():
        return [Record(**r) for r in json.loads(path.read_text(encoding="utf-8"))]
    from index.embed import load_embedder

    embedder = load_embedder(settings.embed_model, settings.embed_fallbacks, settings.embed_threads)
    records: list[Record] = []
    for a in articles:
        doc = bank.materialize(a, work / "text")
        qs = [q for q in questions if q.article == a.id]
        _log(f"collect {a.id}: {len(qs)} questions")
        records += collect_article(_bot_for(doc, work / "index" / a.id, embedder), qs)
    for a in short:
        qs = [q for q in short_questions if q.article == a.id]
        _log(f"collect {a.id} (short, for the absence model): {len(qs)} questions")
        records += collect_article(_bot_for(bank.materialize(a, work / "text"), work / "index" / a.id, embedder), qs, "minibank")
    for title, text, qs in _xquad_articles(xquad_titles):
        doc = work / "text" / f"xquad-{title}.txt"
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(text, encoding="utf-8")
        _log(f"collect xquad {title}: {len(qs)} questions")
        records += collect_article(_bot_for(doc, work / "index" / f"xquad-{title}", embedder), qs, "xquad")
    for title, text, qs in _xquad_articles(xquad_titles, language="en"):
        doc = work / "text" / f"xquad-{title}.en.txt"
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(text, encoding="utf-8")
        _log(f"collect xquad {title} (English): {len(qs)} questions")
        records += collect_article(_bot_for(doc, work / "index" / f"xquad-{title}-en", embedder), qs, "xquad-en")
    for title, text, qs in _xquad_articles(xquad_absent, skip=xquad_titles, kept=XQUAD_KEPT, language="en"):
        doc = work / "text" / f"xquad-{title}.en-cut.txt"
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(text, encoding="utf-8")
        _log(f"collect xquad {title} (first {XQUAD_KEPT} paragraphs, English): {len(qs)} questions")
        records += collect_article(_bot_for(doc, work / "index" / f"xquad-{title}-cut", embedder), qs, "xquad-absent")
    work.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.__dict__ for r in records]), encoding="utf-8")
    return records


# ---- fitting ---------------------------------------------------------------------------------
def _sklearn() -> None:
    try:
        import sklearn  # noqa: F401
        import trafilatura  # noqa: F401
    except ImportError as exc:
        from chatbot.errors import ChatbotError

        raise ChatbotError(
            f"training and the bank evaluation need scikit-learn and trafilatura ({exc.name} is missing): pip install -e '.[train]'"
        ) from exc


def fit_logistic(
    rows: list[dict[str, float]], labels: list[bool], names: tuple[str, ...], c: float = 0.5, signs: dict[str, int] | None = None
) -> Logistic:
    """A class-balanced L2 logistic regression on standardised features. With `signs`, the named
    features' weights are held to a sign (+1: only raise the logit, -1: only lower it), fitted by
    bounded L-BFGS on the same objective scikit-learn minimises."""
    from threadpoolctl import threadpool_limits

    x = np.asarray([[r.get(f, 0.0) for f in names] for r in rows], dtype="float64")
    y = np.asarray(labels, dtype=int)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    if signs:
        return Logistic(names, mean, scale, *_signed_logistic(z, y, names, c, signs))
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
    with threadpool_limits(1):
        lr.fit(z, y)
    return Logistic(names, mean, scale, lr.coef_[0], float(lr.intercept_[0]))


def _signed_logistic(z: np.ndarray, y: np.ndarray, names: tuple[str, ...], c: float, signs: dict[str, int]) -> tuple[np.ndarray, float]:
    from scipy.optimize import minimize
    from threadpoolctl import threadpool_limits

    weight = np.where(y == 1, len(y) / (2 * max(int(y.sum()), 1)), len(y) / (2 * max(int((1 - y).sum()), 1)))  # "balanced"

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = p[:-1], p[-1]
        t = z @ w + b
        r = weight * (1.0 / (1.0 + np.exp(-t)) - y)
        total = float(np.sum(weight * (np.logaddexp(0.0, t) - y * t))) + 0.5 / c * float(w @ w)
        return total, np.concatenate([z.T @ r + w / c, [r.sum()]])

    with threadpool_limits(1):
        p = minimize(
            loss, np.zeros(len(names) + 1), jac=True, method="L-BFGS-B", bounds=[*_bounds(names, signs), (None, None)],
            options={"maxiter": 3000, "ftol": 1e-13, "gtol": 1e-9},
        ).x  # fmt: skip
    return p[:-1], float(p[-1])


def _bounds(names: tuple[str, ...], signs: dict[str, int]) -> list[tuple[float | None, float | None]]:
    """L-BFGS-B bounds holding each named weight to its sign (+1: >= 0, -1: <= 0); others free."""
    return [(0.0, None) if signs.get(n, 0) > 0 else (None, 0.0) if signs.get(n, 0) < 0 else (None, None) for n in names]


def fit_sentence(records: list[Record], l2: float = 1.0, start: Logistic | None = None) -> Logistic:
    """A listwise ranker (conditional logit): within each question, a softmax over its candidates'
    linear scores should put its mass on the right ones; fitted by L-BFGS with an L2 penalty.
    Ranking inside a question is the task, so it learns no per-question offset. Measured against
    the pairwise logistic ranker it replaces (sampled right/wrong pairs): leave-one-article-out
    top-1 0.609 -> 0.664 on the same features."""
    from scipy.optimize import minimize
    from threadpoolctl import threadpool_limits

    names = F.SENTENCE_FEATURES
    qs = [r for r in records if r.answerable and any(r.ok) and not all(r.ok) and r.cands]
    xs = [np.asarray([[c.get(f, 0.0) for f in names] for c in r.cands], dtype="float64") for r in qs]
    stacked = np.concatenate(xs)
    mean, scale = stacked.mean(axis=0), stacked.std(axis=0)
    scale[scale == 0] = 1.0
    x = (stacked - mean) / scale
    y = np.concatenate([np.asarray(r.ok, dtype="float64") for r in qs])
    starts = np.cumsum([0] + [len(r.cands) for r in qs[:-1]])
    owner = np.repeat(np.arange(len(qs)), [len(r.cands) for r in qs])  # candidate -> its question

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        # every question's softmax at once: segment max / sum over each question's candidates
        z = x @ w
        e = np.exp(z - np.maximum.reduceat(z, starts)[owner])
        p = e / np.add.reduceat(e, starts)[owner]
        right = np.add.reduceat(p * y, starts) + 1e-12
        total = 0.5 * l2 * float(w @ w) - float(np.log(right).sum())
        grad = l2 * w - x.T @ (p * y / right[owner] - p)
        return total, grad

    # the problem is convex: starting from a fit on similar data (its weights carried over to this
    # data's feature scales) only saves iterations
    w0 = np.zeros(len(names)) if start is None else np.asarray(start.coef) / np.asarray(start.scale) * scale
    # one BLAS thread: these products are small, and two threads on two busy cores made each
    # fit 6x slower (measured 2.0 s -> 0.34 s). Tight tolerances: with scipy's defaults the fit
    # stopped early, and feature noise of 1e-7 (USE vectors computed in another batch) moved
    # coefficients by 3e-3 (1e-5 now)
    bounds = _bounds(names, F.SENTENCE_SIGNS)
    w0 = np.clip(w0, [-np.inf if lo is None else lo for lo, _ in bounds], [np.inf if hi is None else hi for _, hi in bounds])
    with threadpool_limits(1):
        w = minimize(
            loss, w0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9}
        ).x
    return Logistic(names, mean, scale, w, 0.0)


def ranked_candidates(model: Logistic, r: Record) -> list[tuple[float, dict[str, float]]]:
    """A record's candidates under a ranker, best first, with their logits (and their index in `ok`)."""
    if not r.cands:
        return []
    z = model.logit(r.cands)
    order = np.argsort(-z, kind="stable")
    return [(float(z[i]), {**r.cands[i], "_i": float(i)}) for i in order]


def ranked(model: Logistic, r: Record) -> tuple[dict[str, float], bool]:
    """Question features under a sentence model, and whether its best candidate is right."""
    cands = ranked_candidates(model, r)
    if not cands:
        return F.question_features(r.base, []), False
    return F.question_features(r.base, cands), bool(r.ok[int(cands[0][1]["_i"])])


_PLATT_GRID = 201  # points of the tabulated sigmoid: the saved map stays a table like isotonic's


def fit_platt(p: np.ndarray, y: np.ndarray) -> Calibration:
    """A sigmoid of the raw probability's logit (Platt scaling), tabulated. Isotonic regression's
    top step sits on the few most confident questions and promised more than unseen articles
    kept (stated answers at a mean 0.85 were right 0.77 of the time, leave-one-article-out); two
    parameters cannot chase them."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    def logit(v: np.ndarray) -> np.ndarray:
        v = np.clip(v, 1e-4, 1 - 1e-4)
        return np.log(v / (1 - v)).reshape(-1, 1)

    with threadpool_limits(1):
        lr = LogisticRegression(C=100.0).fit(logit(np.asarray(p)), np.asarray(y).astype(int))
    xs = np.linspace(0.0, 1.0, _PLATT_GRID)
    return Calibration(xs, lr.predict_proba(logit(xs))[:, 1])


def fit_calibration(p: np.ndarray, y: np.ndarray) -> Calibration:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(p, y)
    return Calibration(np.asarray(iso.X_thresholds_), np.asarray(iso.y_thresholds_))


def operating_point(p_absent: np.ndarray, answerable: np.ndarray, max_false: float) -> float:
    """The lowest absence threshold that calls at most `max_false` of the answerable questions
    "not found" (on predictions for articles the models never saw); never below one half."""
    scores = np.sort(p_absent[answerable])[::-1]
    allowed = int(np.floor(max_false * len(scores)))
    if len(scores) == 0:
        return 0.5
    # strictly above the (allowed+1)-th highest answerable score: ties never slip under the bar
    bar = float(scores[allowed]) + 1e-6 if allowed < len(scores) else 0.0
    return max(0.5, min(1.0, bar))


def _out_of_fold(
    rows: list[dict[str, float]], labels: list[bool], arts: list[str], names: tuple[str, ...], signs: dict[str, int] | None = None
) -> np.ndarray:
    """Each row's probability from a logistic model fitted without its article."""
    out = np.zeros(len(rows))
    for art in sorted(set(arts)):
        idx = [i for i, a in enumerate(arts) if a == art]
        train = [i for i, a in enumerate(arts) if a != art]
        m = fit_logistic([rows[i] for i in train], [labels[i] for i in train], names, signs=signs)
        out[idx] = m.prob([rows[i] for i in idx])
    return out


def fit_all(
    bank_records: list[Record], extra: list[Record], max_false_absent: float = 0.02
) -> tuple[AnswerModels, dict[str, np.ndarray]]:
    """Models fitted on `bank_records`, with `extra` records: whole XQuAD articles add ranking
    data, cut ones and the project's short articles (`ABSENCE_ONLY`) add absence data. Question-level models are fitted on
    out-of-fold features: for each article, the sentence model that ranked it never saw it; their
    calibrations and the absence operating point come from out-of-fold predictions on the bank."""
    articles = sorted({r.article for r in bank_records})
    ranking = [r for r in extra if r.source not in ABSENCE_ONLY]
    cut = [r for r in extra if r.source in ABSENCE_ONLY]
    sentence = fit_sentence(bank_records + ranking)
    oof_q: dict[str, dict[str, float]] = {}
    oof_a: dict[str, dict[str, float]] = {}
    oof_right: dict[str, bool] = {}
    for art in articles:
        model = fit_sentence([r for r in bank_records if r.article != art] + ranking, start=sentence)
        for r in bank_records:
            if r.article == art:
                cands = ranked_candidates(model, r)
                oof_q[r.qid] = F.question_features(r.base, cands)
                oof_a[r.qid] = F.absence_features(r.base, cands)
                oof_right[r.qid] = bool(cands) and bool(r.ok[int(cands[0][1]["_i"])])
    arts = [r.article for r in bank_records]
    rows = [oof_q[r.qid] for r in bank_records]
    labels = [r.answerable and oof_right[r.qid] for r in bank_records]
    oof_p = _out_of_fold(rows, labels, arts, F.QUESTION_FEATURES)
    y = np.asarray(labels, dtype=bool)
    calibration = fit_platt(oof_p, y.astype(float))
    answerable = fit_logistic(rows, labels, F.QUESTION_FEATURES)
    # the absence model: "the scope does not answer", a different question from "the pick is wrong".
    # The absence-only articles were never in `sentence`'s training, so their features are fair.
    a_rows = [oof_a[r.qid] for r in bank_records] + [F.absence_features(r.base, ranked_candidates(sentence, r)) for r in cut]
    a_labels = [not r.answerable for r in (*bank_records, *cut)]
    a_arts = arts + [r.article for r in cut]
    oof_absent = _out_of_fold(a_rows, a_labels, a_arts, F.ABSENCE_FEATURES, F.ABSENCE_SIGNS)[: len(bank_records)]
    bank_absent = np.asarray(a_labels[: len(bank_records)], dtype=bool)
    absence_calibration = fit_calibration(oof_absent, bank_absent.astype(float))
    calibrated = np.asarray([absence_calibration(p) for p in oof_absent])
    threshold = operating_point(calibrated, ~bank_absent, max_false_absent)
    absence = fit_logistic(a_rows, a_labels, F.ABSENCE_FEATURES, signs=F.ABSENCE_SIGNS)
    meta = {
        "articles": articles,
        "questions": len(bank_records),
        "extra_questions": len(ranking),
        "absence_extra_questions": len(cut),
        "absence_max_false": max_false_absent,
    }
    models = AnswerModels(sentence, answerable, calibration, absence, absence_calibration, threshold, meta)
    return models, {"oof_p": oof_p, "right": y, "oof_absent": calibrated}


def heldout_ids() -> set[str]:
    return {a.id for a in bank.load_articles() if a.heldout}


def train(settings: Settings, out: Path | None = None, xquad_titles: int = 12) -> AnswerModels:
    # the held-out articles are collected with the rest (one cached collection serves `eval
    # --heldout` too) but never fitted on
    records = [r for r in collect(settings, xquad_titles, include_heldout=True) if r.article not in heldout_ids()]
    bank_records = [r for r in records if r.source == "bank"]
    extra = [r for r in records if r.source != "bank"]
    models, _ = fit_all(bank_records, extra, settings.absence_max_false)
    models.save(out or settings.models_path)
    return models


# ---- leave-one-article-out -------------------------------------------------------------------
@dataclass
class Scored:
    record: Record
    confidence: float  # calibrated P(the first pick is right)
    absent: float  # calibrated P(the scope does not answer)
    status: Status
    top_right: bool  # the ranker's first candidate holds the answer
    shown_right: bool  # a candidate an `unsure` answer would quote holds the answer

    @property
    def answered(self) -> bool:
        return self.status == "answered"

    @property
    def useful(self) -> bool:
        """Answerable, and stated right or `unsure` with the answer in a quoted candidate."""
        if not self.record.answerable:
            return False
        return (self.status == "answered" and self.top_right) or (self.status == "unsure" and self.shown_right)


def score(models: AnswerModels, records: list[Record], settings: Settings) -> list[Scored]:
    """Each record's outcome under `models`, decided as serving decides (chatbot/answer/outcome.py)."""
    threshold = settings.absence_threshold or models.absence_threshold
    out = []
    for r in records:
        cands = ranked_candidates(models.sentence, r)
        q = F.question_features(r.base, cands)
        conf = models.calibration(float(models.answerable.prob([q])[0])) if cands else 0.0
        absent = models.absent(F.absence_features(r.base, cands))
        status = decide(bool(cands), conf, absent, settings.answer_threshold, threshold)
        n = shown_candidates([z for z, _ in cands], settings.unsure_second_gap)
        picks = [int(f["_i"]) for _, f in cands]
        top_right = bool(picks) and r.ok[picks[0]]
        shown_right = any(r.ok[i] for i in picks[:n])
        out.append(Scored(r, conf, absent, status, top_right, shown_right))
    return out


def leave_one_article_out(records: list[Record], settings: Settings) -> list[Scored]:
    bank_records = [r for r in records if r.source == "bank"]
    extra = [r for r in records if r.source != "bank"]
    out: list[Scored] = []
    for art in sorted({r.article for r in bank_records}):
        _log(f"leave out {art}")
        models, _ = fit_all([r for r in bank_records if r.article != art], extra, settings.absence_max_false)
        out += score(models, [r for r in bank_records if r.article == art], settings)
    return out


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 3) if d else None


def figures(rows: list[Scored]) -> dict[str, Any]:
    """The outcome figures the issue tracker asks for, as shares of answerable / unanswerable questions."""
    ans = [s for s in rows if s.record.answerable]
    un = [s for s in rows if not s.record.answerable]
    groups: dict[str, list[bool]] = {}
    for s in ans:
        groups.setdefault(f"{s.record.article}/{s.record.group}", []).append(s.useful)
    multi = [v for v in groups.values() if len(v) >= 2]
    return {
        "n": len(rows),
        "answerable": len(ans),
        "unanswerable": len(un),
        "useful": _rate(sum(s.useful for s in ans), len(ans)),
        "stated_right": _rate(sum(s.answered and s.top_right for s in ans), len(ans)),
        "unsure_shown_right": _rate(sum(s.status == "unsure" and s.shown_right for s in ans), len(ans)),
        "unsure_without": _rate(sum(s.status == "unsure" and not s.shown_right for s in ans), len(ans)),
        "stated_wrong": _rate(sum(s.answered and not s.top_right for s in ans), len(ans)),
        "false_not_found": _rate(sum(s.status == "not_found" for s in ans), len(ans)),
        "first_pick_right": _rate(sum(s.top_right for s in ans), len(ans)),
        "unanswerable_not_found": _rate(sum(s.status == "not_found" for s in un), len(un)),
        "unanswerable_unsure": _rate(sum(s.status == "unsure" for s in un), len(un)),
        "unanswerable_stated": _rate(sum(s.answered for s in un), len(un)),
        "paraphrase_consistency": _rate(sum(all(v) for v in multi), len(multi)),
    }


def reliability(rows: list[Scored], bins: int = 5) -> dict[str, list[dict[str, Any]]]:
    """Per outcome, confidence against the observed rate of right first picks; and the absence
    probability against the observed rate of unanswerable questions. Equal-width bins."""

    def curve(items: list[Scored], prob: str, hit: str) -> list[dict[str, Any]]:
        out = []
        for b in range(bins):
            lo, hi = b / bins, (b + 1) / bins
            inb = [s for s in items if lo <= getattr(s, prob) < hi or (b == bins - 1 and getattr(s, prob) == 1.0)]
            if inb:
                if hit == "right":
                    observed = [s.record.answerable and s.top_right for s in inb]
                else:
                    observed = [not s.record.answerable for s in inb]
                out.append(
                    {
                        "bin": f"{lo:.1f}-{hi:.1f}",
                        "n": len(inb),
                        "mean": round(float(np.mean([getattr(s, prob) for s in inb])), 3),
                        "observed": round(float(np.mean(observed)), 3),
                    }
                )
        return out

    return {
        "confidence_answered": curve([s for s in rows if s.status == "answered"], "confidence", "right"),
        "confidence_unsure": curve([s for s in rows if s.status == "unsure"], "confidence", "right"),
        "absence_all": curve(rows, "absent", "unanswerable"),
        "absence_not_found": curve([s for s in rows if s.status == "not_found"], "absent", "unanswerable"),
    }


def outcomes(rows: list[Scored]) -> dict[str, int]:
    """Every question in one class: what went right, and where each failure comes from."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for s in rows:
        r = s.record
        if not r.answerable:
            key = {"not_found": "unanswerable_not_found", "unsure": "unanswerable_unsure", "answered": "unanswerable_stated"}[
                s.status
            ]
        elif s.status == "answered":
            key = "stated_right" if s.top_right else "stated_wrong"
        elif s.status == "unsure":
            key = "unsure_shown_right" if s.shown_right else ("unsure_right_later" if any(r.ok) else "unsure_not_retrieved")
        else:
            key = "false_not_found"
        counts[key] += 1
    return counts


OUTCOMES = (
    "stated_right",  # answerable, answered with a right sentence
    "unsure_shown_right",  # answerable, "not sure", and a quoted candidate holds the answer
    "unsure_right_later",  # answerable, "not sure", a lower-ranked candidate held the answer
    "unsure_not_retrieved",  # answerable, "not sure", no candidate held the answer
    "stated_wrong",  # answerable, a wrong sentence stated
    "false_not_found",  # answerable, yet "not found"
    "unanswerable_not_found",  # right
    "unanswerable_unsure",  # acceptable: the candidate is shown as a candidate
    "unanswerable_stated",  # the article does not answer, yet a sentence was stated
)


def report(rows: list[Scored]) -> dict[str, Any]:
    return {
        "overall": figures(rows),
        "outcomes": outcomes(rows),
        "by_article": {a: figures([s for s in rows if s.record.article == a]) for a in sorted({s.record.article for s in rows})},
        "by_language": {
            lang: figures([s for s in rows if s.record.language == lang]) for lang in sorted({s.record.language for s in rows})
        },
        "reliability": reliability(rows),
    }


def print_report(title: str, rep: dict[str, Any]) -> None:
    def f3(x: float | None) -> str:
        return "  -  " if x is None else f"{x:.3f}"

    def line(name: str, f: dict[str, Any]) -> str:
        return (
            f"  {name:<26} n={f['n']:<4} useful {f3(f['useful'])}  right {f3(f['stated_right'])}  unsure+ {f3(f['unsure_shown_right'])}  "
            f"unsure- {f3(f['unsure_without'])}  wrong {f3(f['stated_wrong'])}  false.nf {f3(f['false_not_found'])}  |  "
            f"unans: nf {f3(f['unanswerable_not_found'])}  unsure {f3(f['unanswerable_unsure'])}  stated {f3(f['unanswerable_stated'])}"
        )

    print(title)
    print(line("ALL", rep["overall"]))
    for k, f in rep["by_article"].items():
        print(line(k, f))
    for k, f in rep["by_language"].items():
        print(line(f"lang={k}", f))
    n = max(1, sum(rep["outcomes"].values()))
    print("  outcomes: " + ", ".join(f"{k} {v} ({v / n:.3f})" for k, v in rep["outcomes"].items()))
    for name, curve in rep["reliability"].items():
        print(f"  reliability {name} (bin: mean -> observed, n)")
        for b in curve:
            print(f"    {b['bin']}: {b['mean']:.2f} -> {b['observed']:.2f}  (n={b['n']})")
