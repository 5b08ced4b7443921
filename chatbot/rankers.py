"""The sentence rankers `eval` puts side by side: the listwise linear model that ships, and
gradient-boosted trees with a ranking objective (LightGBM `lambdarank`), which can learn the
interactions a linear model cannot.

Simplifies: both see the same candidate features and are scored the same way, leave one article
out (each article's figures from a ranker fitted without it) and on the held-out articles (fitted
on the whole working bank): how often the first pick holds the answer, the first two, and any
candidate (the ceiling no ranker can pass). The trees are fitted here only to be measured; the
shipped ranker is whichever `train` fits (chatbot/train.py), and it stays the linear one while the
trees score lower: leave-one-article-out over the 15-article bank, first pick 0.604 against 0.632
and first two 0.731 against 0.766; on the held-out articles 0.600 against 0.625.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from chatbot.answer import features as F

# LightGBM's parameters, set once (not swept on the bank, which would tune them to it); one thread
# and `deterministic` so two runs give the same figures
LAMBDARANK = {
    "objective": "lambdarank",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambdarank_truncation_level": 3,
    "num_threads": 1,
    "deterministic": True,
    "seed": 0,
    "verbose": -1,
}
LAMBDARANK_ROUNDS = 200


class Ranker(Protocol):
    def logit(self, rows: list[dict[str, float]]) -> np.ndarray: ...


@dataclass
class Trees:
    """A fitted LightGBM booster behind the linear model's `logit` interface."""

    booster: Any

    def logit(self, rows: list[dict[str, float]]) -> np.ndarray:
        x = np.asarray([[r.get(f, 0.0) for f in F.SENTENCE_FEATURES] for r in rows], dtype="float64")
        return np.asarray(self.booster.predict(x.reshape(len(rows), len(F.SENTENCE_FEATURES))))


def _learnable(records: list[Any]) -> list[Any]:
    # as the linear fit: only questions with both a right and a wrong candidate teach an order
    return [r for r in records if r.answerable and any(r.ok) and not all(r.ok) and r.cands]


def fit_lambdarank(records: list[Any]) -> Trees:
    try:
        import lightgbm
    except ImportError as e:  # the [train] extra
        raise RuntimeError("comparing rankers needs LightGBM: pip install -e '.[train]'") from e

    qs = _learnable(records)
    x = np.concatenate([np.asarray([[c.get(f, 0.0) for f in F.SENTENCE_FEATURES] for c in r.cands], dtype="float64") for r in qs])
    y = np.concatenate([np.asarray(r.ok, dtype=int) for r in qs])
    data = lightgbm.Dataset(x, y, group=[len(r.cands) for r in qs])
    return Trees(lightgbm.train(LAMBDARANK, data, num_boost_round=LAMBDARANK_ROUNDS))


def _picks(ranker: Ranker, records: list[Any]) -> list[tuple[str, bool, bool, bool]]:
    """(language, first right, first two hold one, some candidate right) per answerable record."""
    out = []
    for r in records:
        if not r.answerable:
            continue
        if not r.cands:
            out.append((r.language, False, False, False))
            continue
        order = np.argsort(-ranker.logit(r.cands), kind="stable")
        out.append((r.language, bool(r.ok[order[0]]), any(r.ok[i] for i in order[:2]), any(r.ok)))
    return out


def _figures(rows: list[tuple[str, bool, bool, bool]]) -> dict[str, Any]:
    def block(rs: list[tuple[str, bool, bool, bool]]) -> dict[str, Any]:
        a = np.asarray([r[1:] for r in rs], dtype=float).reshape(len(rs), 3)
        mean = a.mean(axis=0) if len(rs) else np.zeros(3)
        return {
            "n": len(rs),
            "first_pick_right": round(float(mean[0]), 3),
            "top2_right": round(float(mean[1]), 3),
            "candidate_present": round(float(mean[2]), 3),
        }

    out = block(rows)
    out["by_language"] = {lang: block([r for r in rows if r[0] == lang]) for lang in sorted({r[0] for r in rows})}
    return out


def compare(
    bank_records: list[Any], extra: list[Any], heldout: list[Any], fitters: dict[str, Callable[[list[Any]], Ranker]]
) -> dict[str, Any]:
    """Each ranker's figures, leave one article out over `bank_records` (`extra`: ranking data
    added to every fit) and on `heldout` (fitted on all of `bank_records`)."""
    out: dict[str, Any] = {}
    articles = sorted({r.article for r in bank_records})
    for name, fit in fitters.items():
        loao: list[tuple[str, bool, bool, bool]] = []
        for art in articles:
            model = fit([r for r in bank_records if r.article != art] + extra)
            loao += _picks(model, [r for r in bank_records if r.article == art])
        out[name] = {"leave_one_article_out": _figures(loao)}
        if heldout:
            out[name]["heldout"] = _figures(_picks(fit(bank_records + extra), heldout))
    return out
