"""The one decision of the answer stage: answered, unsure or not found.

Two calibrated probabilities feed it, from two separately fitted models (chatbot/answer/models.py):
`confidence`, that the ranker's first sentence is a right answer, and `absent`, that the scope
does not answer the question at all. Low confidence about *which* sentence is no evidence that
*none* does, so only the absence model can say "not found"; and a pick confident enough to state
is itself evidence that the scope answers, so it is stated whatever the absence model says
(leave-one-article-out the two never met on the bank; on this article's old dev set, "How many
comments are there?" was right at 0.88 and 0.78 "absent"):

| confidence >= answer threshold | absent >= absence threshold | outcome   | what the reader sees                      |
|--------------------------------|-----------------------------|-----------|-------------------------------------------|
| yes                            | (any)                       | answered  | the answer span, the sentence quoted [1]  |
| no                             | yes                         | not_found | "the article does not mention X / answer" |
| no                             | no                          | unsure    | "Not sure — the closest passage says: …"  |

No candidate at all (nothing retrieved) is `not_found`. `unsure` quotes the best candidate and,
when the ranker scores the second one close to it, that one too: never more than two sentences.
Training (chatbot/train.py) scores its held-out questions with these same two functions.
"""

from __future__ import annotations

from chatbot.schema import Status


def decide(has_candidates: bool, confidence: float, absent: float, answer_threshold: float, absence_threshold: float) -> Status:
    if not has_candidates:
        return "not_found"
    if confidence >= answer_threshold:
        return "answered"
    if absent >= absence_threshold:
        return "not_found"
    return "unsure"


def shown_candidates(logits: list[float], second_gap: float, most: int = 2) -> int:
    """How many candidates an `unsure` answer quotes: the best, and the next while its ranker logit
    is within `second_gap` of the best (`logits` sorted best first)."""
    if not logits:
        return 0
    n = 1
    while n < min(most, len(logits)) and logits[0] - logits[n] <= second_gap:
        n += 1
    return n
