"""Follow-up questions resolved against the conversation, without an LLM.

Simplifies: a follow-up is elliptic ("And OpenAI?", "Et en Europe ?") or uses a pronoun ("What
did he say…?"). Elliptic ones borrow the previous question (swapping its name for the new one
when both name something); pronouns take the last person named in the previous turn.
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
