"""Fitted answer models, read from a JSON data file and applied with numpy.

Simplifies: every model is a standardised logistic regression (feature names, means, scales,
coefficients, intercept), so serving needs neither scikit-learn nor pickle, and a person can read
what was learned. Three of them: the ranker (which sentence answers), the answerability model
(is the ranker's pick right?) and the absence model (does the scope answer at all?). The last two
are passed through calibration tables (a tabulated sigmoid, isotonic steps) fitted on articles they never saw; the answer
threshold follows from what a wrong answer costs (settings), the absence threshold is the
operating point `train` chose on unseen articles for few false absences (kept in the file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chatbot.errors import ModelMissing


@dataclass(frozen=True)
class Logistic:
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Logistic:
        return cls(
            tuple(d["features"]), np.asarray(d["mean"]), np.asarray(d["scale"]), np.asarray(d["coef"]), float(d["intercept"])
        )

    def to_dict(self) -> dict[str, Any]:
        r = lambda a: [round(float(x), 6) for x in a]  # noqa: E731
        return {
            "features": list(self.features),
            "mean": r(self.mean),
            "scale": r(self.scale),
            "coef": r(self.coef),
            "intercept": round(self.intercept, 6),
        }

    def matrix(self, rows: list[dict[str, float]]) -> np.ndarray:
        return np.asarray([[row.get(f, 0.0) for f in self.features] for row in rows], dtype="float64").reshape(
            len(rows), len(self.features)
        )

    def logit(self, rows: list[dict[str, float]]) -> np.ndarray:
        x = (self.matrix(rows) - self.mean) / self.scale
        return x @ self.coef + self.intercept

    def prob(self, rows: list[dict[str, float]]) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logit(rows)))


@dataclass(frozen=True)
class Calibration:
    """A monotone map, as a table, from a raw probability to the observed rate (of right first
    picks: a tabulated sigmoid; of unanswerable questions: isotonic steps)."""

    x: np.ndarray
    y: np.ndarray

    def __call__(self, p: float) -> float:
        if not len(self.x):
            return float(p)
        return float(np.interp(p, self.x, self.y))


def _table(c: Calibration) -> dict[str, list[float]]:
    return {"x": [round(float(v), 6) for v in c.x], "y": [round(float(v), 6) for v in c.y]}


@dataclass(frozen=True)
class AnswerModels:
    sentence: Logistic  # P(this sentence answers the question)
    answerable: Logistic  # P(the best sentence is a right answer), from question-level features
    calibration: Calibration
    absence: Logistic  # P(the scope does not answer the question), from absence features
    absence_calibration: Calibration
    absence_threshold: float  # calibrated absence probability from which the answer is "not found"
    meta: dict[str, Any]

    def absent(self, row: dict[str, float]) -> float:
        """Calibrated probability that the scope does not answer, for one question's absence features."""
        return self.absence_calibration(float(self.absence.prob([row])[0]))

    @classmethod
    def load(cls, path: Path) -> AnswerModels:
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(
                Logistic.from_dict(d["sentence"]),
                Logistic.from_dict(d["answerable"]),
                Calibration(np.asarray(d["calibration"]["x"]), np.asarray(d["calibration"]["y"])),
                Logistic.from_dict(d["absence"]),
                Calibration(np.asarray(d["absence_calibration"]["x"]), np.asarray(d["absence_calibration"]["y"])),
                float(d["absence_threshold"]),
                d.get("meta", {}),
            )
        except FileNotFoundError as exc:
            raise ModelMissing(f"no answer models at {path}: run `python app.py train`") from exc
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelMissing(f"the answer models at {path} are unreadable ({exc}): run `python app.py train`") from exc

    def to_dict(self) -> dict[str, Any]:
        return {
            "sentence": self.sentence.to_dict(),
            "answerable": self.answerable.to_dict(),
            "calibration": _table(self.calibration),
            "absence": self.absence.to_dict(),
            "absence_calibration": _table(self.absence_calibration),
            "absence_threshold": round(self.absence_threshold, 6),
            "meta": self.meta,
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)
