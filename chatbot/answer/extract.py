"""Extractive answers: choose the sentence that answers, put the answer span first, quote it.

Simplifies: no generation. Every sentence of the best passages is a candidate; fitted models
(chatbot/answer/models.py, trained by `python app.py train` on the question bank) score how
likely each one answers, how likely the best one is right, and how likely the scope does not
answer at all. chatbot/answer/outcome.py turns the two calibrated probabilities into one of three
outcomes; this module gathers the candidates and writes each outcome's text.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import numpy as np

from chatbot import spans
from chatbot.answer import features as F
from chatbot.answer.models import AnswerModels
from chatbot.answer.outcome import Status, decide, shown_candidates
from chatbot.language import Messages
from chatbot.question import KINDS, Mentions, QuestionInfo, _word_in, aspects, content_words, fold, folded_words, has_aspect
from chatbot.retrieve import Chunk, Hit, Retriever, Sentence
from chatbot.settings import Settings

_SHORT_SENTENCE = 40  # characters: a sentence this short leans on its neighbour


def _stands_alone(chunk: Chunk) -> bool:
    """A headline, heading, byline or list: its opening sentence says all it means."""
    return chunk.meta.get("kind") in ("headline", "heading", "byline", "list")


def _list_position(chunk: Chunk, pos: int, position: int, r: Retriever) -> bool:
    """Whether sentence `pos` of a list passage is its item at the asked position (1-based; -1:
    the last), the items being the sentences that start with a bullet."""
    if not position or chunk.meta.get("kind") != "list":
        return False
    items = [k for k, i in enumerate(chunk.sentences) if r.sentences[i].text.lstrip().startswith(("-", "*", "•"))]
    if not items or position > len(items):
        return False
    return pos == (items[position - 1] if position > 0 else items[-1])


_ANAPHORA = re.compile(
    r"^\W*(ce|cet|cette|cela|ces|ceci|il|elle|ils|elles|leur|leurs|malgré cela|this|that|these|those|it|they|their|"
    r"however|so|dies|diese|dieser|dieses|das|er|sie|es|ihr|ihre)\b",
    re.I,
)
TYPED = ("amount", "percent", "count", "date")
_ARTICLE_PARAGRAPHS = 3  # a document this long has a lead and a body; a shorter one is a note
# When a question is anchored in time ("last year", "to date"), sentences anchored the same way answer it.
_TIME = re.compile(
    r"(?:19|20)\d\d|l.an(?:née)? dernière?|last year|letzte[ns]? jahr|vergangene[ns]? jahr|im vorjahr|"
    r"à ce jour|jusqu.à présent|to date|so far|bisher|bislang",
    re.I,
)
_LAST_YEAR = re.compile(r"l.an(?:née)? dernière?|last year|letzte[ns]? jahr|vergangene[ns]? jahr|im vorjahr", re.I)
_TIME_GROUPS = [
    _LAST_YEAR,
    re.compile(r"à ce jour|jusqu.à présent|to date|so far|bisher|bislang", re.I),
]


_LINKING = {
    "de",
    "du",
    "des",
    "la",
    "le",
    "les",
    "l",
    "d",
    "et",
    "of",
    "the",
    "and",
    "for",
    "fur",
    "der",
    "die",
    "das",
    "und",
    "von",
    "en",
    "a",
    "à",
}


def _acronyms(text: str, longest: int = 8) -> set[str]:
    """Initials of every run of words that starts with a capital ("Haut Conseil de l'évaluation
    de la recherche et de l'enseignement supérieur" -> "hceres"), skipping linking words."""
    words = re.findall(r"[^\W\d_]+", text)
    folded = [fold(w) for w in words]  # once per word, not once per run it is in
    out: set[str] = set()
    for i, w in enumerate(words):
        if not w[0].isupper():
            continue
        initials = ""
        for x in folded[i : i + longest * 2]:
            if x in _LINKING:
                continue
            initials += x[0]
            if len(initials) >= 2:
                out.add(initials)
            if len(initials) >= longest:
                break
    return out


def _has_figure(text: str) -> bool:
    """A sum, a share or a count of two digits or more: what a comparison sets side by side (not
    the day of a date, "le 6 août")."""
    if spans.find("amount", text) or spans.find("percent", text):
        return True
    return any(len(re.sub(r"\D", "", s.text)) >= 2 for s in spans.find("count", text))


def _relative_year(asked: list[int], text: str, years: frozenset[int]) -> bool:
    """A sentence says "last year" and the document also writes the year after
    the one asked: news reports last year's figures under this year's date."""
    # other years written beside it are what it is compared with ("X billion last year, up from Y in 2023")
    if not _LAST_YEAR.search(text):
        return False
    return any(y + 1 in years for y in asked)


def _same_time(asked: list[str], text: str) -> bool:
    years = [a for a in asked if a.isdigit()]
    if any(y in text for y in years):
        return True
    return any(g.search(" ".join(asked)) and g.search(text) for g in _TIME_GROUPS)


@dataclass
class Choice:
    hit: Hit
    sentences: list[Sentence]  # the quoted sentences, in document order
    score: float
    span: spans.Span | None
    items: list[str]
    has_entities: bool
    has_kind: bool
    features: dict[str, float] = field(default_factory=dict)
    lead: str = ""  # for questions about the whole article: the title, said first


@dataclass
class Draft:
    answered: bool
    text: str
    used: list[Chunk]  # cited first, in marker order
    others: list[Hit]
    highlight: dict[str, tuple[int, int]]  # chunk id -> answer span relative to the chunk text
    reason: str = ""
    scores: dict[str, float] = field(default_factory=dict)  # chunk id -> fused retrieval score
    confidence: float = 0.0
    status: Status = "not_found"
    absent: float = 0.0  # calibrated probability that the scope does not answer
    unsure: Draft | None = None  # the same candidates shown as "not sure" (when a generated answer fails)


@dataclass
class Assessment:
    """Everything the answer decision rests on; `python app.py train` fits the models on these."""

    choices: list[Choice]
    question: dict[str, float]
    missing: list[str]


class Extractor:
    def __init__(
        self, settings: Settings, retriever: Retriever, messages: Messages, mentions: Mentions, models: AnswerModels | None = None
    ) -> None:
        self.s = settings
        self.r = retriever
        self.msg = messages
        self.mentions = mentions
        self.models = models
        import bm25s.stopwords as sw

        self.stopwords = {fold(w) for w in (*sw.STOPWORDS_FRENCH, *sw.STOPWORDS_EN, *sw.STOPWORDS_GERMAN)}
        self.default_idf = max(retriever.idf.values(), default=1.0)


    # The scope's text and what is derived from it, computed when first needed: a view of one
    # document needs its own at once, the view of a thousand documents only for an unscoped question.
    @functools.cached_property
    def corpus(self) -> str:
        r = self.r
        return (
            r.corpus_text()
            + "\n"
            + " ".join(str(c.meta.get(k, "")) for c in r.chunks.values() for k in ("author", "speaker", "date", "title"))
        )

    @functools.cached_property
    def corpus_words(self) -> set[str]:
        return set(re.findall(r"\w+", fold(self.corpus)))

    @functools.cached_property
    def acronyms(self) -> set[str]:
        return _acronyms(self.corpus)

    @functools.cached_property
    def years(self) -> frozenset[int]:
        return frozenset(int(y) for y in spans.YEAR.findall(self.corpus))

    # ---- checks --------------------------------------------------------------------------
    def missing_from_corpus(self, info: QuestionInfo) -> list[str]:
        """Names the corpus never mentions; an abbreviation of a name it spells out counts as present."""
        return [e for e in info.entities if not self.mentions.mentioned(e, self.corpus) and fold(e) not in self.acronyms]

    def coverage(self, info: QuestionInfo) -> float:
        """Share of the question's content words (and names) that the corpus uses at all."""
        words = [w for w in content_words(info.text) if w not in self.stopwords]
        words += [fold(e) for e in info.entities]
        if not words:
            return 1.0
        hits = sum(1 for w in words if _word_in(w, self.corpus_words) or self.mentions.mentioned(w, self.corpus))
        return hits / len(words)

    def coverage_translated(self, info: QuestionInfo) -> float:
        """`coverage` where a dictionary equivalent of a word counts too: an English question on a
        French article ("which firm backed…") is not off-topic for being in another language."""
        from chatbot.lexicon import stem

        words = [w for w in content_words(info.text) if w not in self.stopwords]
        if not words:
            return 1.0
        hits = sum(
            1
            for w in words
            if _word_in(w, self.corpus_words) or any(t in self.corpus_words for t in self.r.equivalents.get(stem(w), ()))
        )
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

    # ---- candidates ----------------------------------------------------------------------
    def assess(
        self,
        info: QuestionInfo,
        qvec: np.ndarray,
        hits: list[Hit],
        lang: str,
        followup: bool = False,
        own: np.ndarray | None = None,
        previous: str = "",
    ) -> Assessment:
        """Candidates with their features and model scores, and the question-level features."""
        required = self._required(info)
        asked_aspects = aspects(info.text, info.kind)
        asked_time = _TIME.findall(info.text)
        asked_year = [int(y) for y in spans.YEAR.findall(info.text)]
        qwords = [w for w in dict.fromkeys(content_words(info.text)) if w not in self.stopwords]
        about_q = 1.0 if F.asks_about_article(info.text) else 0.0
        author_q = 1.0 if F.asks_byline(info.text) else 0.0
        compare_q = 1.0 if F.asks_comparison(info.text) else 0.0
        rank_q = 1.0 if F.asks_rank(info.text) else 0.0
        readers_q = 1.0 if self.r.asks_about_readers(info.text) else 0.0
        related_q = 1.0 if self.r.asks_about_related(info.text) else 0.0
        e5_all = self.r.sentence_matrix @ qvec if len(self.r.sentences) else np.zeros(0)
        qsec = self.r.second_query(info.text)
        use_all = self.r.second_matrix @ qsec if qsec.size and self.r.second_matrix.size else np.zeros(len(self.r.sentences))
        groups = self.r.sentence_language
        e5_z, e5_top = F.zscore(e5_all, groups) if len(e5_all) else (e5_all, e5_all)
        use_z, use_top = F.zscore(use_all, groups) if len(use_all) else (use_all, use_all)
        e5_max = float(e5_all.max()) if len(e5_all) else 0.0
        # a follow-up's own words ("and by gun violence?") point at the new fact; the resolved
        # question also matches the previous answer
        own_all = self.r.sentence_matrix @ own if own is not None and len(self.r.sentences) else e5_all
        own_max = float(own_all.max()) if len(own_all) else 0.0
        prev = fold(previous)
        dense_max = max((h.dense for h in hits), default=0.0)
        use_max = float(use_all.max()) if len(use_all) else 0.0
        ranks = self._candidate_ranks(hits, e5_all, use_all)
        position = F.ordinal(info.text)
        # the article's own topic words the question uses ("KI-Startups", "AI startups"): not required of
        # every sentence (all are about AI), but the 227-billion total "incl. startups" lacks "IA"
        topic_asked = [
            t
            for t in dict.fromkeys(fold(w) for w in re.findall(r"[^\W\d_]{2,}", info.text))
            if t not in self.stopwords and any(v in self.r.topic_words for v in self.mentions.variants(t)[:4])
        ]
        who_money = info.kind == "who" and bool(F.FUNDING.search(info.text))
        placed = self._at_position(hits, position, readers_q, related_q)
        named = self._asked_section(hits, qvec, readers_q, related_q, author_q, position)
        for chunk in [*placed, *named]:
            k = next((k for k, h in enumerate(hits) if h.chunk.id == chunk.id), -1)
            if k < 0:  # retrieval did not find it: "the second comment" shares no word with it
                hits, k = [*hits, Hit(chunk, 0.0, self.r.chunk_cosine(chunk.id, qvec), 0.0, 0.0)], len(hits)
            if k not in ranks:
                ranks.append(k)
        placed_ids = {c.id for c in placed}
        lead_hit, paragraphs = self._lead_hit(hits, qvec)
        if lead_hit is not None and all(hits[k].chunk.id != lead_hit.chunk.id for k in ranks):
            ranks.append(next(k for k, h in enumerate(hits) if h.chunk.id == lead_hit.chunk.id))
        top = [hits[k] for k in ranks]
        best_fused = max((h.score for h in top), default=1.0) or 1.0
        best_bm25 = max((h.bm25 for h in top), default=0.0) or 1.0
        choices: list[Choice] = []
        for rank, hit in zip(ranks, top, strict=True):
            chunk = hit.chunk
            context = " ".join(str(chunk.meta.get(k, "")) for k in ("author", "speaker", "heading"))
            idx = chunk.sentences
            is_lead = lead_hit is not None and chunk.id == lead_hit.chunk.id
            for pos, i in enumerate(idx):
                sent = self.r.sentences[i]
                quoted = [sent]
                if pos > 0 and (_ANAPHORA.match(sent.text) or len(sent.text) < _SHORT_SENTENCE):
                    quoted.insert(0, self.r.sentences[idx[pos - 1]])
                elif pos == 0 and len(sent.text) < _SHORT_SENTENCE and len(idx) > 1 and not _stands_alone(chunk):
                    # a short opening ("36 hours.") is the figure the next sentence explains ("That is how long ...")
                    quoted.append(self.r.sentences[idx[1]])
                if (
                    info.kind == "quote"
                    and pos + 1 < len(idx)
                    and F.QUOTE_MARK.search(sent.text)
                    and F.QUOTE_MARK.search(self.r.sentences[idx[pos + 1]].text)
                ):
                    quoted.append(self.r.sentences[idx[pos + 1]])  # a quotation often runs over two sentences
                if is_lead and about_q and pos == 0:
                    # the lead's next sentence, unless the short opening already took it
                    more = [self.r.sentences[j] for j in idx[1:] if all(self.r.sentences[j] is not q for q in quoted)]
                    quoted += more[:1]
                if compare_q:
                    quoted = self._other_side(quoted, idx, pos)
                text = " ".join(q.text for q in quoted)
                if info.kind == "list" and chunk.meta.get("kind") == "list":
                    text = chunk.text
                    quoted = [self.r.sentences[j] for j in idx]
                present = sum(self.mentions.mentioned(e, text + " " + context) for e in required)
                has_entities = present == len(required) or (len(required) >= 2 and present >= len(required) - len(required) // 2)
                span, items, has_kind = self._answer_part(info, sent.text, text, chunk)
                if any(not has_aspect(a, text) for a in asked_aspects):
                    has_kind = False
                words = folded_words(text + " " + context)
                rel_year = 1.0 if asked_year and _relative_year(asked_year, text, self.years) else 0.0
                sec_lang = groups[i] if i < len(groups) else ""
                comment = 1.0 if chunk.meta.get("section") == "comment" else 0.0
                related = 1.0 if chunk.meta.get("section") == "related" else 0.0
                opening = 1.0 if is_lead and pos <= 1 else 0.0
                # a lead is the opening of an article with a body after it; in a note of one or two
                # paragraphs the opening is all there is, and says nothing about the kind of question
                lead = opening if paragraphs >= _ARTICLE_PARAGRAPHS else 0.0
                typed = 1.0 if info.kind in TYPED else 0.0
                byline = 1.0 if F.BYLINE.search(sent.text) else 0.0
                f = {
                    "e5": float(e5_all[i]),
                    "e5_gap": float(e5_all[i]) - e5_max,
                    "e5_z_lang": float(e5_z[i]),
                    "e5_top_lang": float(e5_top[i]),
                    "use": float(use_all[i]),
                    "use_gap": float(use_all[i]) - use_max,
                    "use_z_lang": float(use_z[i]),
                    "use_top_lang": float(use_top[i]),
                    "fused": hit.score / best_fused,
                    "chunk_rank": 1.0 / (1 + rank),
                    "bm25": hit.bm25 / best_bm25,
                    "overlap": sum(1 for w in qwords if _word_in(w, words)) / max(1, len(qwords)),
                    "idf_overlap": F.idf_overlap(qwords, words, self.r.idf, self.default_idf),
                    "ent_required": min(len(required), 3) / 3,
                    "ent_frac": present / len(required) if required else 1.0,
                    "ent_all": 1.0 if required and has_entities else 0.0,
                    "typed": typed,
                    "kind_ok": 1.0 if has_kind else 0.0,
                    "typed_ok": typed * (1.0 if has_kind else 0.0),
                    "span": 1.0 if span is not None or items else 0.0,
                    "time_asked": 1.0 if asked_time else 0.0,
                    "time_ok": 1.0 if asked_time and (_same_time(asked_time, text) or rel_year) else 0.0,
                    "time_rel": rel_year,
                    "comment": comment,
                    "readers_q": readers_q,
                    "comment_x_readers": comment * readers_q,
                    "related": related,
                    "related_q": related_q,
                    "related_x": related * related_q,
                    "same_lang": 1.0 if sec_lang == lang else 0.0,
                    "lead": lead,
                    "about_q": about_q,
                    "lead_x_about": opening * about_q,
                    "quote_ok": 1.0 if info.kind == "quote" and F.QUOTE_MARK.search(text) else 0.0,
                    "why_ok": 1.0 if info.kind == "why" and F.CAUSAL.search(text) else 0.0,
                    "joined": 1.0 if len(quoted) > 1 else 0.0,
                    "length": F.log_length(text),
                    "byline": byline,
                    "position_q": 1.0 if position else 0.0,
                    "position_ok": 1.0 if chunk.id in placed_ids or _list_position(chunk, pos, position, self.r) else 0.0,
                    "topic_frac": (
                        sum(self.mentions.mentioned(t, text) for t in topic_asked) / len(topic_asked)
                        if topic_asked
                        else 1.0
                    ),
                    "who_amount": 1.0 if who_money and spans.find("amount", text) else 0.0,
                    "compare_q": compare_q,
                    "compare_x_figures": compare_q * (1.0 if len(F.NUMBER.findall(text)) >= 2 else 0.0),
                    "rank_q": rank_q,
                    "rank_x_list": rank_q * (1.0 if chunk.meta.get("kind") == "list" or F.RANKING.search(text) else 0.0),
                    "author_q": author_q,
                    "byline_x_author": byline * author_q,
                    "heading": 1.0 if chunk.meta.get("kind") == "heading" else 0.0,
                    # a section heading labels what follows; a headline states the story's main fact
                    "headline": 1.0 if chunk.meta.get("kind") == "headline" else 0.0,
                    "e5_own": float(own_all[i]),
                    "e5_own_gap": float(own_all[i]) - own_max,
                    "previous": 1.0 if prev and fold(sent.text)[:60] in prev else 0.0,
                    "cognate": F.cognates(qwords, words, self.r.idf, self.default_idf),
                    "chunk_e5": hit.dense,
                    "chunk_e5_gap": hit.dense - dense_max if hit.dense else -0.2,
                    "position": 1.0 / (1 + pos),
                    "xling": F.translated(qwords, words, self.r.equivalents, self.r.idf, self.default_idf),
                }
                title = str(chunk.meta.get("title") or "") if opening and about_q else ""
                choices.append(Choice(hit, quoted, 0.0, span, items, has_entities, has_kind, f, lead=title))
        if self.models is not None and choices:
            logits = self.models.sentence.logit([c.features for c in choices])
            for c, z in zip(choices, logits, strict=True):
                c.score = float(z)
        choices.sort(key=lambda c: -c.score)
        missing = self.missing_from_corpus(info)
        q = self._question_features(info, choices, hits, missing, required, about_q, followup, use_max)
        return Assessment(choices, q, missing)

    def _candidate_ranks(self, hits: list[Hit], e5_all: np.ndarray, use_all: np.ndarray) -> list[int]:
        """Which retrieved passages compete (their ranks in `hits`): the first `answer_candidates`,
        then any passage holding one of the article's `answer_sentence_pool` best sentences by
        either embedder. The sentence scores are computed anyway; the passage fusion ranks by
        whole chunks and BM25, which buried some answering sentences at rank 7-12."""
        ranks = list(range(min(len(hits), self.s.answer_candidates)))
        pool = self.s.answer_sentence_pool
        if pool <= 0 or len(hits) <= len(ranks):
            return ranks
        where = {h.chunk.id: k for k, h in enumerate(hits)}
        for scores in (e5_all, use_all):
            for i in np.argsort(-scores, kind="stable")[:pool] if len(scores) else []:
                k = where.get(self.r.sentences[int(i)].parent)
                if k is not None and k not in ranks:
                    ranks.append(k)
        return ranks

    def _at_position(self, hits: list[Hit], position: int, readers_q: float, related_q: float) -> list[Chunk]:
        """The passages at the asked position ("the second comment", "the last related article"):
        comments counted by author and date in the order of the page, teasers in theirs, in the
        document of the best hit."""
        section = "comment" if readers_q else "related" if related_q else ""
        if not position or not section or not hits:
            return []
        doc = hits[0].chunk.meta.get("doc_id")
        units = sorted(
            (c for c in self.r.chunks.values() if c.meta.get("section") == section and c.meta.get("doc_id") == doc),
            key=lambda c: int(c.meta.get("start", 0)),
        )
        if section == "comment":
            units = [c for c in units if c.meta.get("kind") == "comment"]

        def unit(c: Chunk) -> object:  # one comment may span several passages; a teaser is one
            return (c.meta.get("author"), c.meta.get("date")) if section == "comment" else c.id

        keys = list(dict.fromkeys(unit(c) for c in units))
        if not keys or position > len(keys):
            return []
        key = keys[position - 1] if position > 0 else keys[-1]
        return [c for c in units if unit(c) == key]

    def _question_features(
        self,
        info: QuestionInfo,
        choices: list[Choice],
        hits: list[Hit],
        missing: list[str],
        required: list[str],
        about_q: float,
        followup: bool,
        use_max: float,
    ) -> dict[str, float]:
        base = {
            "dense_max": max((h.dense for h in hits[:5]), default=0.0),
            "use_max": use_max,
            "missing": min(len(missing), 3) / 3,
            "missing_any": 1.0 if missing else 0.0,
            # the share of the names the question turns on (not bare years) the scope never
            # mentions: "How much did Zorblax Robotics raise in 2024?" misses all of them
            "missing_share": min(1.0, len([m for m in missing if m in required]) / len(required)) if required else 0.0,
            "coverage": self.coverage(info),
            "coverage_x": self.coverage_translated(info),
            "n_required": min(len(required), 3) / 3,
            "about_q": about_q,
            "followup": 1.0 if followup else 0.0,
            "n_words": min(len(info.text.split()), 30) / 30,
        }
        for k in KINDS:
            base[f"kind_{k}"] = 1.0 if info.kind == k else 0.0
        return F.question_features(base, [(c.score, c.features) for c in choices])

    def _other_side(self, quoted: list[Sentence], idx: list[int], pos: int) -> list[Sentence]:
        """A comparison's other side is often a neighbouring sentence or list item with a figure
        ("The US has recorded 467,000 cases." "Globally there are 1.6 million cases."):
        both are quoted, so that the answer names both figures."""
        if not _has_figure(self.r.sentences[idx[pos]].text):
            return quoted
        for j in (pos + 1, pos - 1, pos + 2, pos - 2):  # the nearest first; one sentence may sit between
            if 0 <= j < len(idx):
                other = self.r.sentences[idx[j]]
                if all(other is not q for q in quoted) and _has_figure(other.text):
                    return [*quoted, other] if j > pos else [other, *quoted]
        return quoted

    def _asked_section(
        self, hits: list[Hit], qvec: np.ndarray, readers_q: float, related_q: float, author_q: float, position: int
    ) -> list[Chunk]:
        """Units a question names by their role compete whatever retrieval made of them: the byline
        when the author is asked, the comments (or teasers) closest to the question when it is
        about readers (or related articles). "What did a reader write?" shares no word with the
        comment that answers it, so retrieval buried such comments at rank 20-40."""
        section = "" if position else "comment" if readers_q else "related" if related_q else ""
        if not hits or not (author_q or section):
            return []  # most questions: no pass over a large scope's chunks
        doc = hits[0].chunk.meta.get("doc_id")
        mine = [c for c in self.r.chunks.values() if c.meta.get("doc_id") == doc]
        out = [c for c in mine if c.meta.get("kind") == "byline" and c.sentences] if author_q else []
        if section:
            units = [c for c in mine if c.meta.get("section") == section and c.sentences]
            units.sort(key=lambda c: -self.r.chunk_cosine(c.id, qvec))
            out += units[: self.s.answer_section_pool]
        return out

    def _lead_hit(self, hits: list[Hit], qvec: np.ndarray) -> tuple[Hit | None, int]:
        """The first paragraph of the best passage's document (what "what is this about?" wants),
        and how many paragraphs that document has."""
        if not hits:
            return None, 0
        doc_id = hits[0].chunk.meta.get("doc_id")
        firsts = [
            c
            for c in self.r.chunks.values()
            if c.meta.get("doc_id") == doc_id
            and c.meta.get("section") not in ("comment", "related")
            and c.meta.get("kind") == "paragraph"
            and c.sentences
        ]
        if not firsts:
            return None, 0
        chunk = min(firsts, key=lambda c: int(c.meta.get("start", 0)))
        for h in hits:
            if h.chunk.id == chunk.id:
                return h, len(firsts)
        return Hit(chunk, 0.0, self.r.chunk_cosine(chunk.id, qvec), 0.0, 0.0), len(firsts)

    def _answer_part(
        self, info: QuestionInfo, sentence: str, text: str, chunk: Chunk
    ) -> tuple[spans.Span | None, list[str], bool]:
        kind = info.kind
        if (
            kind == "date"
            and chunk.meta.get("date")
            and any(self.mentions.mentioned(e, str(chunk.meta.get("author", ""))) for e in info.entities)
        ):
            return spans.Span(0, 0, str(chunk.meta["date"]), "date"), [], True  # the question names a commenter: when they wrote
        if kind in TYPED:
            found = spans.find(kind, sentence) or spans.find(kind, text)
            where = sentence if spans.find(kind, sentence) else text
            if kind == "count" and chunk.meta.get("kind") == "comment_count":
                found = spans.find("count", where)
            anchors = [
                m.start()
                for e in info.entities
                for v in self.mentions.variants(e)
                for m in re.finditer(re.escape(v), fold(where))
            ]
            if len(found) >= 2 and F.HOW_MUCH_MORE.search(info.text):
                return None, [], True  # a difference asked: the quoted sentence names both sides, one figure would not
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
            people = [
                n.text for n in spans.find("who", sentence) if not self._is_asked(n.text, info) and not self._is_place(n.text)
            ]
            speaker = str(chunk.meta.get("speaker") or "")
            if speaker and F.QUOTE_MARK.search(sentence) and not self._is_asked(speaker, info):
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
    def confidence(self, a: Assessment) -> float:
        """Calibrated probability that the best candidate is a right answer (0 without models)."""
        if self.models is None or not a.choices:
            return 0.0
        raw = float(self.models.answerable.prob([a.question])[0])
        return self.models.calibration(raw)

    def absence(self, a: Assessment) -> float:
        """Calibrated probability that the scope does not answer (0 without models: never "not found")."""
        if self.models is None or not a.choices:
            return 0.0
        return self.models.absent(F.absence_features(a.question, [(c.score, c.features) for c in a.choices]))

    def answer(
        self,
        info: QuestionInfo,
        qvec: np.ndarray,
        hits: list[Hit],
        lang: str,
        followup: bool = False,
        own: np.ndarray | None = None,
        previous: str = "",
    ) -> Draft:
        if not hits:
            return self._not_found(lang, [], [], "no passages", offtopic=True)
        a = self.assess(info, qvec, hits, lang, followup, own, previous)
        conf, absent = self.confidence(a), self.absence(a)
        bar = self.s.absence_threshold or (self.models.absence_threshold if self.models else 1.0)
        status = decide(bool(a.choices), conf, absent, self.s.answer_threshold, bar)
        if status == "not_found":
            draft = self._not_found(lang, hits, a.missing, f"absence {absent:.2f} >= {bar:.2f}")
        else:
            unsure = self._unsure(info, a.choices, hits, lang)
            draft = self._compose(info, a.choices[0], hits, lang) if status == "answered" else unsure
            draft.unsure = unsure
            if status == "unsure":
                draft.reason = f"confidence {conf:.2f} below {self.s.answer_threshold:.2f}"
        draft.status, draft.confidence, draft.absent = status, conf, absent
        return draft

    def _quote(self, info: QuestionInfo, best: Choice, lang: str) -> tuple[str, str, tuple[int, int] | None]:
        """A candidate's answer span as said first (the lead, "" if none), its sentences as a
        quote (one paragraph: a document's blank lines would split it), and the span to
        highlight in its passage, relative to the passage text."""
        chunk = best.hit.chunk
        quote = (
            " ".join(s.text for s in best.sentences)
            if not (info.kind == "list" and chunk.meta.get("kind") == "list")
            else chunk.text
        )
        quote = re.sub(r"\n\s*\n+", "\n", quote)
        lead = ""
        highlight: tuple[int, int] | None = None
        base = int(chunk.meta["start"])
        if best.span is not None and not any(best.span.text in s.text for s in best.sentences):
            lead = best.span.text  # from the passage's metadata (a comment's date)
        elif best.span is not None:
            sent = next((s for s in best.sentences if best.span.text in s.text), best.sentences[-1])
            rel = sent.start - base + sent.text.find(best.span.text)
            highlight = (rel, rel + len(best.span.text))
            if info.kind == "amount":
                lead = spans.render_amount(best.span.text, lang)
            elif info.kind == "percent":
                lead = spans.render_percent(best.span.text, lang)
            else:
                lead = best.span.text
        elif best.items:
            lead = ", ".join(best.items)  # names or list items: the sentence they come from is marked
            highlight = (best.sentences[0].start - base, best.sentences[-1].end - base)
        elif best.lead:
            lead = best.lead  # "what is this about?": the headline, then the lead quoted
            highlight = (best.sentences[0].start - base, best.sentences[-1].end - base)
        else:
            highlight = (best.sentences[0].start - base, best.sentences[-1].end - base)
        quote = quote if len(quote) <= self.s.max_quote_chars else quote[: self.s.max_quote_chars].rsplit(" ", 1)[0] + " …"
        return lead, quote, highlight

    def _label(self, chunk: Chunk, lang: str) -> str:
        """What a quote is introduced with: a reader comment, one of several documents, the article."""
        doc_lang = str(chunk.meta.get("language") or "") or self._passage_language(chunk)
        if chunk.meta.get("section") == "comment" and chunk.meta.get("author"):
            return self.msg.get("comment_label", lang, author=str(chunk.meta["author"]))
        if len(self.r.documents) > 1:
            # several documents: every quote names the one it comes from, so an added file never
            # passes for the article
            name = str(chunk.meta.get("title") or chunk.meta.get("source") or "")[:80]
            return self.msg.get("quote_label_doc", lang, name=name)
        # "From the article" for a news page, "From the document" for a note or a Markdown file
        key = "quote_label" if self._noun(chunk) == "article" else "quote_label_document"
        if doc_lang and doc_lang != lang:
            return self.msg.get(key + "_foreign", lang, language=self.msg.get(f"lang_{doc_lang}", lang))
        return self.msg.get(key, lang)

    def _noun(self, chunk: Chunk | None = None) -> str:
        """"article" or "document": what the scope (or the chunk's document) is to a reader."""
        docs = list(self.r.documents.values()) if chunk is None else [self.r.documents.get(str(chunk.meta.get("doc_id")), {})]
        return "article" if all(d.get("kind", "article") == "article" for d in docs) else "document"

    @staticmethod
    def _quoted(label: str, quote: str, marker: int, lang: str) -> str:
        return f"{label} : « {quote} » [{marker}]" if lang == "fr" else f"{label}: “{quote}” [{marker}]"

    def _compose(self, info: QuestionInfo, best: Choice, hits: list[Hit], lang: str) -> Draft:
        chunk = best.hit.chunk
        lead, quote, span = self._quote(info, best, lang)
        body = self._quoted(self._label(chunk, lang), quote, 1, lang)
        text = f"{lead} [1]\n\n{body}" if lead else body
        others = [h for h in hits if h.chunk.id != chunk.id]
        highlight = {chunk.id: span} if span else {}
        return Draft(True, text, [chunk], others, highlight, scores={h.chunk.id: h.score for h in hits}, status="answered")

    def _unsure(self, info: QuestionInfo, choices: list[Choice], hits: list[Hit], lang: str) -> Draft:
        """"Not sure — the closest passage says: …": the best candidate (its span first, when it has
        one, then its sentence quoted) and the second when the ranker scores it close."""
        n = shown_candidates([c.score for c in choices], self.s.unsure_second_gap)
        used: list[Chunk] = []
        highlight: dict[str, tuple[int, int]] = {}
        paragraphs: list[str] = []
        seen: set[str] = set()
        for k, choice in enumerate(choices[:n]):
            chunk = choice.hit.chunk
            lead, quote, span = self._quote(info, choice, lang)
            if quote in seen:
                continue
            seen.add(quote)
            if chunk.id not in {c.id for c in used}:
                used.append(chunk)
            marker = 1 + [c.id for c in used].index(chunk.id)
            if span and chunk.id not in highlight:
                highlight[chunk.id] = span
            intro = self.msg.get("unsure" if k == 0 else "unsure_second", lang)
            if k == 0:
                paragraphs.append(f"{intro} {lead} [{marker}]" if lead else intro)
                paragraphs.append(self._quoted(self._label(chunk, lang), quote, marker, lang))
            else:
                said = f"{lead} [{marker}] — " if lead else ""
                paragraphs.append(f"{intro} {said}{self._quoted(self._label(chunk, lang), quote, marker, lang)}")
        others = [h for h in hits if h.chunk.id not in {c.id for c in used}]
        return Draft(
            False, "\n\n".join(paragraphs), used, others, highlight, scores={h.chunk.id: h.score for h in hits}, status="unsure"
        )

    def _passage_language(self, chunk: Chunk) -> str:
        doc = self.r.documents.get(str(chunk.meta.get("doc_id")), {})
        lang = doc.get("language", "")
        if not lang:
            from chatbot.language import detect_language

            lang = detect_language(chunk.text, self.s.languages)
            doc["language"] = lang
        return lang

    def _not_found(self, lang: str, hits: list[Hit], missing: list[str], reason: str, offtopic: bool = False) -> Draft:
        """The scope does not answer: say which asked name it never mentions, when one is missing."""
        several = len(self.r.documents) > 1
        suffix = "_many" if several else ("" if self._noun() == "article" else "_document")
        if offtopic:
            text = self.msg.get("refusal_offtopic", lang)
        elif missing:
            text = self.msg.get("not_found_entity" + suffix, lang, entity=missing[0])
        else:
            text = self.msg.get("not_found" + suffix, lang)
        return Draft(False, text, [], hits, {}, reason, scores={h.chunk.id: h.score for h in hits}, status="not_found")
