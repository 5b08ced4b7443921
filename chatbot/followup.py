"""Follow-up questions resolved against the conversation, without an LLM.

Simplifies: a follow-up is elliptic ("And OpenAI?", "Et en Europe ?") or uses a pronoun ("What
did he say…?"). Elliptic ones borrow the previous question, replacing the slot they name: the
phrase after the same preposition ("…killed by terrorism?" + "and by gun violence?"; "…chez les
socialistes ?" + "Et chez les Verts ?"), else its name ("And OpenAI?"); with nothing to replace,
the follow-up is appended. Pronouns take the last person named in the previous turn.
"""

from __future__ import annotations

import re

from chatbot.question import answer_kind, entities
from chatbot.schema import Turn

_ELLIPTIC = re.compile(
    r"^\W*(and|what about|how about|et|et pour|et en|et dans|qu'en est-il|und|und was ist mit|was ist mit|wie sieht es|"
    r"und bei|und in|and in|and for|and the|et la|et le|et les)\b",
    re.I,
)
_PRONOUN = re.compile(r"\b(he|she|him|her|they|them|his|il|elle|ils|elles|lui|er|sie|ihm|ihn|ihr|seine?r?)\b", re.I)
_PREPOSITIONS = (
    "by|for|in|on|at|about|with|among|from|of|during|"
    "chez|pour|en|dans|sur|par|avec|parmi|de|du|des|au|aux|pendant|"
    "bei|für|im|auf|über|mit|unter|von|vom|zu|zum|zur|während"
)
_SLOT_FOLLOWUP = re.compile(
    rf"^\W*(?:and|what about|how about|et|und|und was ist mit|was ist mit)?\s*\b({_PREPOSITIONS})\s+(.+?)[\s?!.]*$", re.I
)
_SLOT_END = re.compile(rf"\s+(?:{_PREPOSITIONS}|since|depuis|seit|and|et|und|or|ou|oder)\b|[,;:?!.]|$", re.I)
_QUESTION_WORD = re.compile(
    r"\b(?:how|what|which|who|when|where|why|combien|comment|quoi|quel\w*|qui|quand|où|pourquoi|"
    r"wie|was|welche\w*|wer|wann|wo|warum)\b",
    re.I,
)
_PERSON = re.compile(r"\b[A-Z][a-zà-ÿ]+(?:[ -][A-Z][a-zà-ÿ]+)+\b|\b[A-Z][a-z]+[A-Z][a-zà-ÿ]+\b")


def last_user_question(history: list[Turn]) -> str:
    for turn in reversed(history):
        if turn.role == "user":
            return turn.content
    return ""


def resolve(question: str, history: list[Turn], language: str) -> str:
    """The question as it would be asked alone."""
    prev = last_user_question(history)
    if not prev:
        return question
    words = re.findall(r"\w+", question)
    elliptic = bool(_ELLIPTIC.match(question)) or (len(words) <= 3 and answer_kind(question) == "generic")
    if elliptic:
        swapped = _swap_slot(question, prev)
        if swapped:
            return swapped
        new = entities(question, language)
        old = entities(prev, language)
        # swap the name, unless the new one is a bare acronym (KI, AI): that narrows, it does not replace
        if new and old and not any(re.fullmatch(r"[A-Z]{1,3}", e) for e in (new[-1], old[-1])):
            return prev.replace(old[-1], new[-1])
        return f"{prev} {question}"
    if _PRONOUN.search(question):
        for turn in reversed(history):
            names = _PERSON.findall(turn.content)
            if names:
                return _PRONOUN.sub(names[-1], question, count=1)
    return question


def _swap_slot(question: str, prev: str) -> str:
    """The previous question with the phrase after the follow-up's preposition replaced, or "".
    Among several, the phrase of the same shape (a year for a year, a name for a name) goes."""
    m = _SLOT_FOLLOWUP.match(question)
    if not m:
        return ""
    prep, new = m.group(1).lower(), m.group(2).strip()
    if _QUESTION_WORD.search(new):
        return ""  # "Et de combien ?", "and for how long?": a new question, not a new slot
    best: tuple[int, int, int] | None = None
    for occ in re.finditer(rf"\b{re.escape(prep)}\s+", prev, re.I):
        start = occ.end()
        end_m = _SLOT_END.search(prev, start)
        end = end_m.start() if end_m else len(prev)
        old = prev[start:end].strip()
        if not old:
            continue
        shape = 2 * (bool(re.search(r"\d", old)) == bool(re.search(r"\d", new))) + (old[:1].isupper() == new[:1].isupper())
        if best is None or shape >= best[0]:
            best = (shape, start, start + len(old))
    if best is None:
        return ""
    return prev[: best[1]] + new + prev[best[2] :]
