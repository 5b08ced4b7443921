"""The value types that cross every boundary: the CLI's --json, the HTTP API and the widget all
serialise these, and nothing re-derives them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["user", "assistant"]
Status = Literal["answered", "unsure", "not_found"]


@dataclass(frozen=True)
class Turn:
    role: Role
    content: str


@dataclass(frozen=True)
class Citation:
    id: int
    text: str
    section: str
    source: str
    score: float
    start: int
    end: int
    author: str = ""
    heading: str = ""
    highlight: tuple[int, int] | None = None  # the answer span, relative to text
    document: str = ""  # the id of the document quoted
    document_title: str = ""
    quoted: bool = False  # the answer text quotes this passage (the UIs show it open when not sure)
    label: str = ""  # what the passage is, for people, in the answer's language ("Article, paragraph 4")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["highlight"] = list(self.highlight) if self.highlight else None
        return d


@dataclass
class Answer:
    question: str
    answer: str
    answered: bool
    language: str
    citations: list[Citation] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    resolved_question: str = ""
    notes: list[str] = field(default_factory=list)
    confidence: float = 0.0  # calibrated probability that the answer is right (held-out articles)
    status: Status = "answered"  # answered | unsure | not_found (chatbot/answer/outcome.py)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "answered": self.answered,
            "language": self.language,
            "citations": [c.to_dict() for c in self.citations],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "resolved_question": self.resolved_question,
            "notes": self.notes,
            "confidence": round(self.confidence, 3),
            "status": self.status,
        }


@dataclass(frozen=True)
class Delta:
    """A piece of the answer text as it forms (a token from an LLM, a few words otherwise)."""

    text: str


@dataclass(frozen=True)
class Final:
    """The checked answer. `replaced` is true when it differs from what was streamed."""

    answer: Answer
    replaced: bool = False


Event = Delta | Final
