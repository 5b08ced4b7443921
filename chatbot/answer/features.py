"""What the answer models see. Regex detectors (answer kinds, spans, time anchors, quote marks)
stay, but only as features: the weights that combine them are fitted on the question bank.

Simplifies: a candidate is one sentence (or two, when the second leans on the first) of a
retrieved passage; its features compare it with the question in several independent ways
(two embedders, raw and normalised *within the sentence's own language*, lexical overlap,
answer-kind and entity checks). Question features describe how well the best candidate and the
corpus as a whole fit the question, for the "does the article answer this?" model.
"""

from __future__ import annotations

import math
import re

import numpy as np

from chatbot.question import KINDS

# Questions about the whole article ("what is this about?", "summarise", "key figures").
ABOUT_ARTICLE = re.compile(
    r"\b(what'?s (this|the|it)( article| story| piece| text)? about|what is (this|the|it)( article| story| piece| text)? about|about what|"
    r"what does (this|the) (article|story|piece|text) (say|cover|tell)|summar\w*|sum up|tl;?dr|overview|"
    r"main (points?|idea|message|takeaways?)|key (points?|figures|facts|takeaways?)|gist|"
    r"de quoi (parle|traite|s'agit|ça parle|ca parle)|(ça|ca|il|elle) parle de quoi|c.?est quoi (cet|l.?) ?article|"
    r"r[ée]sum\w*|en bref|points? cl[ée]s?|chiffres? cl[ée]s?|l'essentiel|id[ée]e principale|sujet de l'article|"
    r"worum geht'?s?|um was geht'?s?|wovon handelt|zusammenfass\w*|kernaussage\w*|kernpunkte?|das wichtigste|hauptthema|"
    r"(thema|inhalt) des (artikels|textes)|was steht (im|in dem) (artikel|text)|fasse? .* zusammen)\b",
    re.I,
)
_ARTICLE_WORD = re.compile(r"\b(article|story|piece|text|texte|papier|artikel\w*|beitrag\w*|text\w*)\b", re.I)
ABOUT_MAX_WORDS = 16  # "Pouvez-vous me résumer les points principaux de cet article sur …" has 16


def asks_about_article(question: str) -> bool:
    """A question about the whole article. A long one must name the article: "how does he sum up
    those trips?", 31 words about a commuter, is no request for a summary."""
    if not ABOUT_ARTICLE.search(question):
        return False
    return len(question.split()) <= ABOUT_MAX_WORDS or bool(_ARTICLE_WORD.search(question))


# "who wrote this?": the byline answers it, and only it (a byline was a frequent wrong first pick
# for other questions while its weight had to serve these)
ASKS_AUTHOR = re.compile(
    r"\b(who (wrote|authored|signed)|written by|who('s| is)( the)? (author|writer)|author'?s name|name of the (author|writer)|"
    r"qui (a|l'a|l’a) (écrit|signé|rédigé)|écrit par|signé par|r[ée]dig[ée] par|qui est (l'|l’)?(auteur|autrice|auteure)|"
    r"c.est qui,? (l'|l’)(auteur|autrice|auteure)|nom de (l'|l’)(auteur|autrice|auteure)|"
    r"wer hat (das|den|diesen|dieses|die) \w+ geschrieben|wer (schreibt|schrieb)|geschrieben von|"
    r"wer ist (der|die) (autor|autorin|verfasser\w*)|namen? (des|der) (autors|autorin|verfassers))\b|"
    # a bare "author?" asks it too; "what did the author criticise?" or "French authors" do not
    r"^\W*(the |l'|l’|le |la |der |die )?(author|auteur|autrice|auteure|autor|autorin|verfasser\w*)\W*$",
    re.I,
)
# "when was this article published?": the byline's date answers it, as its name answers "who wrote it?"
_PUBLISHED = re.compile(
    r"\b(published|publication|publié\w*|paru\w*|mis en ligne|de quand date|erschien\w*|veröffentlich\w*|"
    r"erscheinungsdatum|von wann)\b",
    re.I,
)
_THIS_ARTICLE = re.compile(
    r"\b((this|the) (article|story|piece|post|text)|(cet|ce|le|l'|l’) ?(article|billet|texte|papier)|"
    r"(der|dieser|den|diesen|des|dieses) (artikel|beitrag|text)\w*)\b",
    re.I,
)
_COMMENT_WORD = re.compile(r"\b(comment\w*|kommentar\w*|reader|lecteur|leser)", re.I)


def asks_byline(question: str) -> bool:
    """A question the byline answers: who wrote the article, or when it was published (a book's
    publication date, or a comment's, is no byline's: the question must name the article)."""
    if ASKS_AUTHOR.search(question):
        return True
    return bool(_PUBLISHED.search(question) and _THIS_ARTICLE.search(question) and not _COMMENT_WORD.search(question))


# "how much more did X raise than Y?": the answer is a sentence holding both sides, and the
# figure alone would hide one of them
COMPARISON = re.compile(
    r"\b(how (much|many) (more|less|fewer)|more than|less than|fewer than|compar\w* (to|with)|comparison|versus|vs\.?|"
    r"difference|than\b|bigger|larger|smaller|higher|lower|respectively|"
    r"combien de (plus|moins)|(plus|moins)( \w+)? que|par rapport (à|a|aux?)|compar\w+|différence|écart|"
    r"(supérieur|inférieur)e?s? (à|au|aux)|respectivement|"
    r"wie ?viel (mehr|weniger)|mehr als|weniger als|im vergleich|verglichen|unterschied|verhält sich|im verhältnis|"
    r"jeweils|als\b.*\?)",
    re.I,
)
HOW_MUCH_MORE = re.compile(
    r"\b(how (much|many) (more|less|fewer)|difference|combien de (plus|moins)|différence|écart|wie ?viel (mehr|weniger)|unterschied)\b",
    re.I,
)
# "which was second?", "the third most active", "the lowest share": a position among several
RANKING = re.compile(
    r"\b(second|third|fourth|fifth|last|top \d|most|least|largest|biggest|highest|lowest|smallest|"
    r"deuxième|second[e]?|troisième|quatrième|dernier|dernière|(?:le|la|les|l') ?(?:plus|moins)|"
    r"zweit\w*|dritt\w*|viert\w*|letzt\w*|meiste\w*|größt\w*|grösst\w*|höchst\w*|niedrigst\w*|wenigst\w*|aktivst\w*)\b",
    re.I,
)
_ORDINALS = (
    (1, r"first|1st|premi[eè]re?|1er|1re|erste[nrms]?|zuerst"),
    (2, r"second|2nd|deuxi[eè]me|seconde?|2e|zweite[nrms]?"),
    (3, r"third|3rd|troisi[eè]me|3e|dritte[nrms]?"),
    (4, r"fourth|4th|quatri[eè]me|4e|vierte[nrms]?"),
    (5, r"fifth|5th|cinqui[eè]me|5e|f[uü]nfte[nrms]?"),
    (-1, r"last|latest|final|derni[eè]re?|letzte[nrms]?"),
)
_ORDINAL = [(n, re.compile(rf"\b({words})\b", re.I)) for n, words in _ORDINALS]
# a time, not a position in the page: "last year", "l'an dernier", "im letzten Jahr", "au premier semestre"
_TIME_ORDINAL = re.compile(
    r"\b(?:last|latest|past|first|second) (?:years?|months?|weeks?|days?|nights?|quarters?|half|decades?|times?)\b|"
    r"\b(?:an|année|mois|semaine|nuit|trimestre|semestre|décennie|siècle|fois) derni[eè]re?\b|"
    r"\b(?:derni[eè]re?s?|premi[eè]re?|second[e]?|deuxi[eè]me) (?:années?|mois|semaines?|trimestres?|semestres?|fois)\b|"
    r"\b(?:letzte[nrms]?|erste[nrms]?|zweite[nrms]?) (?:Jahr\w*|Monat\w*|Woche\w*|Nacht|Mal|Quartal\w*|Halbjahr\w*|Jahrzehnt\w*)\b",
    re.I,
)


_NOT_COMPARED = re.compile(r"\b(?:rather than|other than|instead of|plutôt que?|au lieu d[eu']|anstatt|statt|außer)\b", re.I)


def asks_comparison(question: str) -> bool:
    """"How much more than…", "compared with…": two sides asked, not one named to be set aside
    ("which company, rather than X, …")."""
    return bool(COMPARISON.search(_NOT_COMPARED.sub(" ", question)))


def asks_rank(question: str) -> bool:
    """"Which was second?", "the most active investor": a position in an order, not a time."""
    return bool(RANKING.search(_TIME_ORDINAL.sub(" ", question)))


def ordinal(question: str) -> int:
    """The position a question asks for: 1, 2, ... from the start, -1 for the last, 0 for none.
    The last one named counts: a follow-up is resolved as the previous question and then its own
    words ("Who wrote the first comment? And who came second?")."""
    question = _TIME_ORDINAL.sub(" ", question)
    found = [(m.start(), n) for n, pattern in _ORDINAL for m in pattern.finditer(question)]
    return max(found)[1] if found else 0


# "who raised the most?", "the largest funding round": a name asked through money, answered by a
# sentence that gives the amount beside the name
FUNDING = re.compile(
    r"\b(rais\w*|fund\w*|invest\w*|lev[ée]\w*|lever|récolt\w*|sécuris\w*|financ\w*|eingesammelt|sammelt\w*|finanzier\w*|investi\w*)",
    re.I,
)
NUMBER = re.compile(r"\d+(?:[.,\s\u00a0\u202f]\d+)*")
QUOTE_MARK = re.compile(r"[«»“”„\"]")
CAUSAL = re.compile(
    r"\b(raison|car|parce que|attribu\w*|en raison|grâce|because|due to|reason|driven|since|so that|weil|denn|grund|aufgrund|wegen|da|deshalb|daher)\b",
    re.I,
)
BYLINE = re.compile(
    r"^\s*(by|par|von)\s+\S.{0,80}$|^\s*[\w .'-]{2,40}\s*\|\s*\d{1,2}[./]\d{1,2}[./]\d{2,4}|^\s*\d{4}-\d{2}-\d{2}\s*$", re.I
)

SENTENCE_FEATURES: tuple[str, ...] = (
    "e5",
    "e5_gap",
    "e5_z_lang",
    "e5_top_lang",
    "use",
    "use_gap",
    "use_z_lang",
    "use_top_lang",
    "fused",
    "chunk_rank",
    "bm25",
    "overlap",
    "idf_overlap",
    "ent_required",
    "ent_frac",
    "ent_all",
    "typed",
    "kind_ok",
    "typed_ok",
    "span",
    "time_asked",
    "time_ok",
    "time_rel",
    "comment",
    "readers_q",
    "comment_x_readers",
    "related",
    "related_q",
    "related_x",
    "same_lang",
    "lead",
    "about_q",
    "lead_x_about",
    "quote_ok",
    "why_ok",
    "joined",
    "length",
    "byline",
    "position_q",
    "position_ok",
    "topic_frac",
    "who_amount",
    "compare_q",
    "compare_x_figures",
    "rank_q",
    "rank_x_list",
    "author_q",
    "byline_x_author",
    "heading",
    "headline",
    "e5_own",
    "e5_own_gap",
    "previous",
    "cognate",
    "chunk_e5",
    "chunk_e5_gap",
    "position",
    "xling",
)

QUESTION_FEATURES: tuple[str, ...] = (
    "top_logit",
    "margin",
    "top_share",
    "top_xling",
    "top_cognate",
    "top_own",
    "top_e5",
    "top_e5_gap",
    "top_use",
    "top_idf_overlap",
    "top_kind_ok",
    "top_ent_all",
    "top_ent_frac",
    "top_lead",
    "top_comment",
    "dense_max",
    "use_max",
    "missing",
    "missing_any",
    "missing_share",
    "coverage",
    "coverage_x",
    "n_required",
    "about_q",
    "followup",
    "n_words",
    *(f"kind_{k}" for k in KINDS),
)


def zscore(values: np.ndarray, groups: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each value standardised within its group, and whether it is its group's best: an English
    question scores English text higher across the board, so comparisons are made inside a language."""
    z = np.zeros(len(values))
    top = np.zeros(len(values))
    for g in set(groups):
        idx = np.asarray([i for i, x in enumerate(groups) if x == g])
        v = values[idx]
        sd = float(v.std()) or 1.0
        z[idx] = (v - v.mean()) / sd
        top[idx[int(np.argmax(v))]] = 1.0
    return z, top


def idf_overlap(qwords: list[str], text_words: frozenset[str], idf: dict[str, float], default: float) -> float:
    """Share of the question's information (IDF mass) that the sentence contains."""
    from chatbot.question import _word_in

    if not qwords:
        return 0.0
    total = found = 0.0
    for w in qwords:
        weight = idf.get(w, default)
        total += weight
        if _word_in(w, text_words):
            found += weight
    return found / total if total else 0.0


def cognates(qwords: list[str], text_words: frozenset[str], idf: dict[str, float], default: float) -> float:
    """IDF share of the question's longer words that share a 5-letter start with a word of the
    sentence without matching it outright: critiqué/criticism, gouvernement/Regierung no, but
    Präsident/president, investissements/investments yes. A cheap cross-lingual overlap."""
    from chatbot.question import _word_in

    long_words = [w for w in qwords if len(w) >= 5]
    if not long_words:
        return 0.0
    prefixes = {w[:5] for w in text_words if len(w) >= 5}
    total = found = 0.0
    for w in long_words:
        weight = idf.get(w, default)
        total += weight
        if not _word_in(w, text_words) and w[:5] in prefixes:
            found += weight
    return found / total if total else 0.0


def translated(
    qwords: list[str], text_words: frozenset[str], equivalents: dict[str, list[str]], idf: dict[str, float], default: float
) -> float:
    """IDF share of the question's words not in the sentence themselves but through a dictionary
    equivalent (chatbot/lexicon.py: stem of a foreign word -> corpus words it translates)."""
    from chatbot.lexicon import stem
    from chatbot.question import _word_in

    if not qwords or not equivalents:
        return 0.0
    total = found = 0.0
    for w in qwords:
        weight = idf.get(w, default)
        total += weight
        if not _word_in(w, text_words) and any(t in text_words for t in equivalents.get(stem(w), ())):
            found += weight
    return found / total if total else 0.0


def log_length(text: str) -> float:
    return math.log(1 + len(text)) / 6.0


def question_features(base: dict[str, float], ranked: list[tuple[float, dict[str, float]]]) -> dict[str, float]:
    """Question-level features: `base` (independent of the sentence model) plus how the best
    candidates, ranked by the sentence model's logit, look."""
    best = ranked[0][1] if ranked else {}
    q = dict(base)
    q.update(
        {
            "top_logit": ranked[0][0] if ranked else -10.0,
            "margin": ranked[0][0] - ranked[1][0] if len(ranked) > 1 else 5.0,
            "top_e5": best.get("e5", 0.0),
            "top_e5_gap": best.get("e5_gap", -1.0),
            "top_use": best.get("use", 0.0),
            "top_idf_overlap": best.get("idf_overlap", 0.0),
            "top_kind_ok": best.get("kind_ok", 0.0),
            "top_ent_all": best.get("ent_all", 0.0),
            "top_ent_frac": best.get("ent_frac", 0.0),
            "top_lead": best.get("lead", 0.0),
            "top_comment": best.get("comment", 0.0),
            "top_xling": best.get("xling", 0.0),
            "top_cognate": best.get("cognate", 0.0),
            "top_own": best.get("e5_own_gap", 0.0),
        }
    )
    if ranked:
        z = np.asarray([r[0] for r in ranked])
        w = np.exp(z - z.max())
        q["top_share"] = float(w[0] / w.sum())  # how much of the ranker's belief the best one holds
    else:
        q["top_share"] = 0.0
    return q


# What the absence model sees: evidence that the scope lacks the answer, not doubt about which
# sentence gives it. Names and words the scope never uses (translations and abbreviations
# counted), how close anything retrieved comes (off-topic questions) and the ranker's score
# margins. Whether the *retrieved candidates* have the asked kind of answer or name the asked
# entities is left out: it depends on retrieval, and measured leave-one-article-out it called more
# answerable questions "not found" (0.019 against 0.009) while finding fewer absences (0.255
# against 0.262). Whether the whole scope has the asked kind at all was tried too: the kind
# detector's misses ("wie viel … Energie" is no amount, "four nods" no count) made it call 5 of
# the held-out articles' 80 answerable questions "not found".
ABSENCE_FEATURES: tuple[str, ...] = (
    "missing",
    "missing_any",
    "missing_share",
    "coverage",
    "coverage_x",
    "n_required",
    "dense_max",
    "use_max",
    "about_q",
    "followup",
    "n_words",
    "top_logit",
    "margin",
    "top_share",
    "max_idf_overlap",
    "max_xling",
    "max_cognate",
    "max_overlap",
    "max_e5",
    "max_use",
    "slot_kind",
    "slot_time",
    "slot_names",
    "slot_full",
    *(f"kind_{k}" for k in KINDS),
)


# A reader's comment or a related article's teaser is not the article's claim: it may win only
# through its interaction with a question about readers (related articles), never for being one.
# Free, the bank taught teasers a small bonus of their own, and "Who raised the most?" was
# answered with a teaser full of lab names.
SENTENCE_SIGNS: dict[str, int] = {"related": -1, "comment": -1}

# The direction each piece of evidence may push "absent", whatever the bank's correlations: the
# scope using the question's words, retrieval coming close and a confident ranker (its best
# logit, margin and share) only argue for an answer; a missing name only against.
# Unconstrained, the fit learnt the reverse for coverage (the bank's answerable cross-lingual
# questions share few words with the article, its unanswerable near-misses many), so an
# off-topic "il va faire quel temps demain ?", whose words the article never uses, looked
# answerable; with the margin free, a short note's one clear answer looked absent (a "how much
# more did X raise than Y?" at 0.59). Measured leave-one-article-out (15 articles):
# unanswerable "not found" 0.216 -> 0.249, false "not found" 0.008 -> 0.012.
ABSENCE_SIGNS: dict[str, int] = {
    **dict.fromkeys(("missing", "missing_any", "missing_share"), 1),
    **dict.fromkeys(
        (
            "coverage", "coverage_x", "dense_max", "use_max", "max_idf_overlap", "max_xling", "max_cognate", "max_overlap",
            "max_e5", "max_use", "top_logit", "margin", "top_share", "slot_kind", "slot_time", "slot_names", "slot_full",
        ),
        -1,
    ),
}


def absence_features(base: dict[str, float], ranked: list[tuple[float, dict[str, float]]], depth: int = 10) -> dict[str, float]:
    """Absence features of a question: `base` (question features independent of the ranker) and
    its candidates ranked by the ranker's logit, best first (the first `depth` are looked at)."""
    top = [f for _, f in ranked[:depth]]

    def most(name: str) -> float:
        return max((f.get(name, 0.0) for f in top), default=0.0)

    q = {k: base.get(k, 0.0) for k in ABSENCE_FEATURES if k in base}
    q.update(
        {
            "top_logit": ranked[0][0] if ranked else -10.0,
            "margin": ranked[0][0] - ranked[1][0] if len(ranked) > 1 else 5.0,
            "max_idf_overlap": most("idf_overlap"),
            "max_xling": most("xling"),
            "max_cognate": most("cognate"),
            "max_overlap": most("overlap"),
            "max_e5": most("e5"),
            "max_use": most("use"),
            **slots([f for _, f in ranked]),
        }
    )
    if ranked:
        z = np.asarray([r[0] for r in ranked])
        w = np.exp(z - z.max())
        q["top_share"] = float(w[0] / w.sum())
    else:
        q["top_share"] = 0.0
    return q


def slots(cands: list[dict[str, float]]) -> dict[str, float]:
    """Whether some candidate fills what the question asks: the asked kind of answer, the asked
    time, all the asked names, and all of them in one sentence (1 when the question asks none of
    them). "How much did X raise in 2024?" over an article that names X and gives 2024 figures,
    but no sum beside X, is a question it does not answer; over all
    candidates, not only the first: the ranker may prefer a sentence that fills fewer. Measured
    leave-one-article-out: unanswerable "not found" 0.265 -> 0.297, false "not found" 0.016 -> 0.012."""
    if not cands:
        return dict.fromkeys(("slot_kind", "slot_time", "slot_names", "slot_full"), 0.0)
    typed, timed, named = (cands[0].get(k, 0.0) > 0 for k in ("typed", "time_asked", "ent_required"))

    def kind(f: dict[str, float]) -> bool:
        return not typed or f.get("kind_ok", 0.0) > 0

    def time(f: dict[str, float]) -> bool:
        return not timed or f.get("time_ok", 0.0) > 0 or f.get("time_rel", 0.0) > 0

    def names(f: dict[str, float]) -> bool:
        return not named or f.get("ent_all", 0.0) > 0

    return {
        "slot_kind": float(any(kind(f) for f in cands)),
        "slot_time": float(any(time(f) for f in cands)),
        "slot_names": float(any(names(f) for f in cands)),
        "slot_full": float(any(kind(f) and time(f) and names(f) for f in cands)),
    }
