"""Extractive answers: choose the sentence that answers, put the answer span first, quote it.

Simplifies: no generation. Among the sentences of the best passages we pick the one that is
closest to the question *and* carries what it asks for: the entities it names and an answer of
the right kind (an amount for "how much", a share for "what share"...). When no sentence does,
the honest answer is a refusal; checking the sentence is what tells "How much did Mistral
raise?" (Mistral is named, no amount is) from an answerable question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from chatbot import spans
from chatbot.language import Messages
from chatbot.question import Mentions, QuestionInfo, _word_in, aspects, content_words, fold, has_aspect
from chatbot.retrieve import Chunk, Hit, Retriever, Sentence
from chatbot.settings import Settings

_ANAPHORA = re.compile(
    r"^\W*(ce|cet|cette|cela|ces|ceci|il|elle|ils|elles|leur|leurs|malgré cela|this|that|these|those|it|they|their|"
    r"however|dies|diese|dieser|dieses|das|er|sie|es|ihr|ihre)\b",
    re.I,
)
TYPED = ("amount", "percent", "count", "date")
# When a question is anchored in time ("last year", "to date"), sentences anchored the same way answer it.
_TIME = re.compile(
    r"(?:19|20)\d\d|l.an(?:née)? dernière?|last year|letzte[ns]? jahr|vergangene[ns]? jahr|im vorjahr|"
    r"à ce jour|jusqu.à présent|to date|so far|bisher|bislang|insgesamt|au total|in total|overall",
    re.I,
)
_TIME_GROUPS = [
    re.compile(r"l.an(?:née)? dernière?|last year|letzte[ns]? jahr|vergangene[ns]? jahr|im vorjahr", re.I),
    re.compile(r"à ce jour|jusqu.à présent|to date|so far|bisher|bislang", re.I),
    re.compile(r"insgesamt|au total|in total|overall|un total|total", re.I),
]


def _same_time(asked: list[str], text: str) -> bool:
    years = [a for a in asked if a.isdigit()]
    if any(y in text for y in years):
        return True
    return any(g.search(" ".join(asked)) and g.search(text) for g in _TIME_GROUPS)


_QUOTE_MARK = re.compile(r"[«»“”„\"]")
_CAUSAL = re.compile(
    r"\b(raison|car|parce que|attribu\w*|en raison|grâce|because|due to|reason|driven|since|weil|denn|grund|aufgrund|wegen|da)\b", re.I
)


@dataclass
class Choice:
    hit: Hit
    sentences: list[Sentence]  # the quoted sentences, in document order
    score: float
    span: spans.Span | None
    items: list[str]
    has_entities: bool
    has_kind: bool


@dataclass
class Draft:
    answered: bool
    text: str
    used: list[Chunk]  # cited first, in marker order
    others: list[Hit]
    highlight: dict[str, tuple[int, int]]  # chunk id -> answer span relative to the chunk text
    reason: str = ""
    scores: dict[str, float] = field(default_factory=dict)  # chunk id -> fused retrieval score


class Extractor:
    def __init__(self, settings: Settings, retriever: Retriever, messages: Messages, mentions: Mentions) -> None:
        self.s = settings
        self.r = retriever
        self.msg = messages
        self.mentions = mentions
        self.corpus = retriever.corpus_text() + "\n" + " ".join(
            str(c.meta.get(k, "")) for c in retriever.chunks.values() for k in ("author", "speaker", "date")
        )
        self.corpus_words = set(re.findall(r"\w+", fold(self.corpus)))
        import bm25s.stopwords as sw

        self.stopwords = {fold(w) for w in (*sw.STOPWORDS_FRENCH, *sw.STOPWORDS_EN, *sw.STOPWORDS_GERMAN)}

    # ---- checks --------------------------------------------------------------------------
    def missing_from_corpus(self, info: QuestionInfo) -> list[str]:
        return [e for e in info.entities if not self.mentions.mentioned(e, self.corpus)]

    def coverage(self, info: QuestionInfo) -> float:
        """Share of the question's content words (and names) that the corpus uses at all."""
        words = [w for w in content_words(info.text) if w not in self.stopwords]
        words += [fold(e) for e in info.entities]
        if not words:
            return 1.0
        hits = sum(1 for w in words if _word_in(w, self.corpus_words) or self.mentions.mentioned(w, self.corpus))
        return hits / len(words)

    def _required(self, info: QuestionInfo) -> list[str]:
        """Entities a sentence must mention: not the corpus's topic words, not bare years."""
        out = []
        for e in info.entities:
            if re.fullmatch(r"(?:19|20)\d{2}", e):
                continue
            if all(fold(v) in self.r.topic_words for v in self.mentions.variants(e)[:1]):
                continue
            out.append(e)
        return out

    # ---- choosing ------------------------------------------------------------------------
    def choose(self, info: QuestionInfo, qvec: np.ndarray, hits: list[Hit]) -> list[Choice]:
        required = self._required(info)
        asked_aspects = aspects(info.text, info.kind)
        asked_time = _TIME.findall(info.text)
        qwords = set(content_words(info.text))
        top = hits[: self.s.answer_candidates]
        best_fused = top[0].score if top else 1.0
        choices: list[Choice] = []
        for rank, hit in enumerate(top):
            context = " ".join(str(hit.chunk.meta.get(k, "")) for k in ("author", "speaker", "heading"))
            scored = self.r.sentence_scores(qvec, hit.chunk)
            for i, (sent, sim) in enumerate(scored):
                quoted = [sent]
                if i > 0 and (_ANAPHORA.match(sent.text) or len(sent.text) < 40):
                    quoted.insert(0, scored[i - 1][0])
                # a quotation often runs over two sentences: keep its continuation with it
                if info.kind == "quote" and i + 1 < len(scored) and _QUOTE_MARK.search(sent.text) and _QUOTE_MARK.search(scored[i + 1][0].text):
                    quoted.append(scored[i + 1][0])
                text = " ".join(q.text for q in quoted)
                if info.kind == "list" and hit.chunk.meta.get("kind") == "list":
                    text = hit.chunk.text
                    quoted = [self.r.sentences[j] for j in hit.chunk.sentences]
                present = sum(self.mentions.mentioned(e, text + " " + context) for e in required)
                # with several names, one may live in a neighbouring paragraph (a speaker introduced earlier)
                has_entities = present == len(required) or (len(required) >= 2 and present >= len(required) - len(required) // 2)
                span, items, has_kind = self._answer_part(info, sent.text, text, hit.chunk)
                if any(not has_aspect(a, text) for a in asked_aspects):
                    has_kind = False
                bonus = 0.0
                if info.kind == "why" and _CAUSAL.search(text):
                    bonus = self.s.w_kind
                if info.kind == "quote" and _QUOTE_MARK.search(sent.text):
                    bonus = self.s.w_kind
                if asked_time and _same_time(asked_time, text):
                    bonus += self.s.w_overlap
                overlap = len(qwords & set(content_words(text + " " + context))) / max(1, len(qwords))
                score = (
                    sim
                    + self.s.w_chunk * hit.score / best_fused
                    + self.s.w_overlap * overlap
                    + self.s.w_entities * (1.0 if has_entities and required else 0.0)
                    + self.s.w_kind * (1.0 if has_kind else 0.0)
                    + bonus
                    + self.s.w_entities * (present - len(required)) * 0.5
                    - self.s.w_rank * rank
                )
                choices.append(Choice(hit, quoted, score, span, items, has_entities, has_kind))
        choices.sort(key=lambda c: -c.score)
        return choices

    def _answer_part(self, info: QuestionInfo, sentence: str, text: str, chunk: Chunk) -> tuple[spans.Span | None, list[str], bool]:
        kind = info.kind
        if kind == "date" and chunk.meta.get("date") and any(self.mentions.mentioned(e, str(chunk.meta.get("author", ""))) for e in info.entities):
            return spans.Span(0, 0, str(chunk.meta["date"]), "date"), [], True  # the question names a commenter: when they wrote
        if kind in TYPED:
            found = spans.find(kind, sentence) or spans.find(kind, text)
            where = sentence if spans.find(kind, sentence) else text
            if kind == "count" and chunk.meta.get("kind") == "comment_count":
                found = spans.find("count", where)
            anchors = [m.start() for e in info.entities for v in self.mentions.variants(e) for m in re.finditer(re.escape(v), fold(where))]
            span = spans.nearest(found, anchors, where)
            if span and where is not sentence:
                span = None if sentence not in text else span
            return span, [], span is not None or bool(found)
        if kind == "list":
            items = [x for x in spans.list_items(text) if not self._is_asked(x, info)]
            if len(items) < 2:
                items = [n.text for n in spans.find("who", sentence) if not self._is_asked(n.text, info)]
            return None, items, len(items) >= 2
        if kind == "who":
            if chunk.meta.get("section") == "comment" and chunk.meta.get("author"):
                return None, [str(chunk.meta["author"])], True
            # places are not an answer to "who" (Europe, Chine): they are the alias vocabulary
            people = [n.text for n in spans.find("who", sentence) if not self._is_asked(n.text, info) and not self._is_place(n.text)]
            speaker = str(chunk.meta.get("speaker") or "")
            if speaker and _QUOTE_MARK.search(sentence) and not self._is_asked(speaker, info):
                people.insert(0, speaker)
            people = list(dict.fromkeys(people))
            return None, people[:3], bool(people)
        return None, [], True

    def _is_place(self, name: str) -> bool:
        return len(self.mentions.variants(name)) > 1

    def _is_asked(self, name: str, info: QuestionInfo) -> bool:
        """Is this name one the question itself uses (or a topic word like IA/AI)?"""
        n = fold(name)
        if n in self.r.topic_words:
            return True
        return any(n in self.mentions.variants(e) or n in fold(e) or fold(e) in n for e in info.entities)

    # ---- composing -----------------------------------------------------------------------
    def answer(self, info: QuestionInfo, qvec: np.ndarray, hits: list[Hit], lang: str) -> Draft:
        if not hits:
            return self._refuse(lang, [], "no passages", offtopic=True)
        missing = self.missing_from_corpus(info)
        if missing:
            return self._refuse(lang, [], f"not in corpus: {', '.join(missing)}", offtopic=True)
        dense = max(h.dense for h in hits[:5])
        if dense < self.s.min_dense_score:
            return self._refuse(lang, [], f"off-topic (similarity {dense:.3f})", offtopic=True)
        names_known = any(self.mentions.mentioned(e, self.corpus) for e in self._required(info)) or self.r.asks_about_section(info.text)
        if not names_known and self.coverage(info) < 0.5 and (guard := self.r.topic_similarity(info.text)) < self.s.topic_guard_min:
            return self._refuse(lang, [], f"off-topic (guard similarity {guard:.3f})", offtopic=True)
        choices = self.choose(info, qvec, hits)
        required = self._required(info)
        good = [c for c in choices if c.has_kind and (c.has_entities or not required)]
        if not good:
            named = required[0] if required else ""
            return self._refuse(lang, hits, f"no sentence has the {info.kind} asked for", entity=named)
        best = good[0]
        return self._compose(info, best, hits, lang)

    def _compose(self, info: QuestionInfo, best: Choice, hits: list[Hit], lang: str) -> Draft:
        chunk = best.hit.chunk
        quote = " ".join(s.text for s in best.sentences) if not (info.kind == "list" and chunk.meta.get("kind") == "list") else chunk.text
        lead = ""
        highlight: dict[str, tuple[int, int]] = {}
        base = int(chunk.meta["start"])
        if best.span is not None and not any(best.span.text in s.text for s in best.sentences):
            lead = best.span.text  # from the passage's metadata (a comment's date)
        elif best.span is not None:
            sent = next((s for s in best.sentences if best.span.text in s.text), best.sentences[-1])
            rel = sent.start - base + sent.text.find(best.span.text)
            highlight[chunk.id] = (rel, rel + len(best.span.text))
            if info.kind == "amount":
                lead = spans.render_amount(best.span.text, lang)
            elif info.kind == "percent":
                lead = spans.render_percent(best.span.text, lang)
            else:
                lead = best.span.text
        elif best.items:
            lead = ", ".join(best.items)
        else:
            first = best.sentences[0]
            highlight[chunk.id] = (first.start - base, best.sentences[-1].end - base)
        doc_lang = str(chunk.meta.get("language") or "") or self._passage_language(chunk)
        if chunk.meta.get("section") == "comment" and chunk.meta.get("author"):
            label = self.msg.get("comment_label", lang, author=str(chunk.meta["author"]))
        elif doc_lang and doc_lang != lang:
            label = self.msg.get("quote_label_foreign", lang, language=self.msg.get(f"lang_{doc_lang}", lang))
        else:
            label = self.msg.get("quote_label", lang)
        quote = quote if len(quote) <= self.s.max_quote_chars else quote[: self.s.max_quote_chars].rsplit(" ", 1)[0] + " …"
        body = f"{label} : « {quote} » [1]" if lang == "fr" else f"{label}: “{quote}” [1]"
        text = f"{lead} [1]\n\n{body}" if lead else body
        others = [h for h in hits if h.chunk.id != chunk.id]
        return Draft(True, text, [chunk], others, highlight, scores={h.chunk.id: h.score for h in hits})

    def _passage_language(self, chunk: Chunk) -> str:
        doc = self.r.documents.get(str(chunk.meta.get("doc_id")), {})
        lang = doc.get("language", "")
        if not lang:
            from chatbot.language import detect_language

            lang = detect_language(doc.get("cleaned", "")[:2000] or chunk.text, self.s.languages)
            doc["language"] = lang
        return lang

    def _refuse(self, lang: str, hits: list[Hit], reason: str, offtopic: bool = False, entity: str = "") -> Draft:
        if offtopic:
            text = self.msg.get("refusal_offtopic", lang)
        elif entity:
            text = self.msg.get("refusal_partial", lang, entity=entity)
        else:
            text = self.msg.get("refusal", lang)
        return Draft(False, text, [], hits, {}, reason, scores={h.chunk.id: h.score for h in hits})
