"""Checks on what a language model wrote, before anyone sees it.

Simplifies: a grounded answer is a few sentences, each ending in [n] markers. The text is first
brought to the form a reader sees (NFKC, so fullwidth ｈｔｔｐｓ：／／ is https://; no invisible or
bidi-control characters; text in a bidi override in its displayed order). Then we strip links,
URLs, e-mail addresses, bare domains, images and HTML (all of them, unless the operator allows
links, and then only those the passages contain), drop markers that point at no passage or that
were copied with a passage's own text ("… dollars [3]" is the document's [3], not a citation),
drop any sentence whose numbers (in digits or in words: "nine hundred million", "neuf cents
millions", "neunhundert Millionen") appear in no cited passage, drop any sentence without a
marker or sharing no figure, name or content word with the passages it cites ("The passage [1]
contains the answer." cites without saying anything), drop any sentence naming a person, company
or title its cited passages do not contain (capitalised, all-caps or alphanumeric words such as
"Jane Roe", "CEO", "b2b"; a name counts as contained in another spelling, by its stem, or
through a dictionary equivalent the index stored, so "Germany" is in "l'Allemagne"), and
reject answers that quote our own instructions. What survives is shown; if nothing cited
survives, the caller falls back to the extractive answer.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field

from chatbot.question import fold

_MARKER = re.compile(r"\[(\d+)\]")
_NUMBER = re.compile(r"(?<![\w])\d+(?:[ .,\u202f\xa0]\d{3})*(?:[.,]\d+)?")
_LIST_NUMBER = re.compile(r"^\s*\d{1,2}[.)]\s+")  # "1. " list numbering is layout, not a figure
_SENTENCE = re.compile(r"(?<=[.!?])(?:\s*\[\d+\])*\s+|\n+")
_ABBREVIATION = re.compile(
    r"(?:\b\w\.){1,3}$|\b(?:Mr|Mrs|Ms|Dr|Prof|Inc|Ltd|Corp|Co|St|vs|approx|ca|bzw|Nr|env|cf|z\.\s?B)\.$", re.I
)
REFUSAL_TOKEN = "NOT_IN_ARTICLE"
_STEM = 5  # words compare on their first letters: "investit" / "investissements", "raised" / "raise"
_MIN_WORD = 4
# words about the task itself: a sentence made of them says nothing the passage supports
_META = frozenset(
    [
        "passage",
        "passages",
        "question",
        "questions",
        "answer",
        "answers",
        "article",
        "articles",
        "text",
        "texts",
        "source",
        "sources",
        "document",
        "documents",
        "excerpt",
        "excerpts",
        "context",
        "contains",
        "contain",
        "information",
        "mentioned",
        "mentions",
        "provided",
        "reponse",
        "reponses",
        "texte",
        "textes",
        "extrait",
        "extraits",
        "contient",
        "informations",
        "mentionne",
        "frage",
        "fragen",
        "antwort",
        "antworten",
        "artikel",
        "abschnitt",
        "textstelle",
        "quelle",
        "quellen",
        "enthalt",
        "informationen",
    ]
)

# --- spellings: what the reader sees ---
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]"
)
_OVERRIDE = re.compile("([\u202d\u202e])([^\u202c\n]*)\u202c?")  # LRO/RLO … PDF: shown in forced (reversed) order
_DOTS = str.maketrans({"\u3002": ".", "\uff61": ".", "\u2024": ".", "\ufe52": "."})

# --- links, in any form: Markdown, HTML, URLs with any scheme, e-mail, bare domains ---
_PARENS = r"(?:[^()\n]|\([^()\n]*\))*"  # one level of nested parentheses: (javascript:alert(1))
_MD_IMAGE = re.compile(r"!\[[^\]\n]*\]\(" + _PARENS + r"\)")
_MD_LINK = re.compile(r"\[([^\]\n]+)\]\(" + _PARENS + r"\)")
_MD_REFERENCE = re.compile(r"(?m)^[ \t]*\[[^\]\n]+\]:[ \t]*\S.*$")
_HTML = re.compile(r"<!--.*?-->|</?[a-zA-Z][^>]*>", re.S)
_URL_BODY = r"(?:[^\s()<>\[\]\"'`]|\([^\s()<>]*\))*"
_URL = re.compile(
    r"(?:\b[a-z][a-z0-9+.-]{0,30}://|\b(?:javascript|vbscript|livescript|data|mailto|tel|sms|callto|file|blob|about|intent|view-source)\s*:|\bwww\.)"
    + _URL_BODY,
    re.I,
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.I)
_DOMAIN = re.compile(
    r"(?<![\w@.-])(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+(?:[^\W\d_]{2,63}|xn--[\w-]+)\b(?::\d{1,5})?(?:/" + _URL_BODY + ")?", re.I
)
_CUT = "\ue000"  # where something was removed, so a ")" it leaves unbalanced goes too


# --- numbers written in words (en, fr, de) ---
def _counting(words: list[str]) -> dict[str, int]:
    return {w: i for i, w in enumerate(words, start=1)}


_EN = _counting(
    [
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ]
) | {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_FR = _counting(
    [
        "un",
        "deux",
        "trois",
        "quatre",
        "cinq",
        "six",
        "sept",
        "huit",
        "neuf",
        "dix",
        "onze",
        "douze",
        "treize",
        "quatorze",
        "quinze",
        "seize",
    ]
) | {
    "une": 1,
    "vingt": 20,
    "vingts": 20,
    "trente": 30,
    "quarante": 40,
    "cinquante": 50,
    "soixante": 60,
    "septante": 70,
    "huitante": 80,
    "octante": 80,
    "nonante": 90,
}
_DE = _counting(
    [
        "eins",
        "zwei",
        "drei",
        "vier",
        "fünf",
        "sechs",
        "sieben",
        "acht",
        "neun",
        "zehn",
        "elf",
        "zwölf",
        "dreizehn",
        "vierzehn",
        "fünfzehn",
        "sechzehn",
        "siebzehn",
        "achtzehn",
        "neunzehn",
    ]
) | {
    "ein": 1,
    "eine": 1,
    "einen": 1,
    "einer": 1,
    "einem": 1,
    "zwanzig": 20,
    "dreißig": 30,
    "dreissig": 30,
    "vierzig": 40,
    "fünfzig": 50,
    "sechzig": 60,
    "siebzig": 70,
    "achtzig": 80,
    "neunzig": 90,
    "sieb": 7,
}
_UNITS = _EN | _FR | _DE
_ARTICLES = {
    "one",
    "un",
    "une",
    "ein",
    "eine",
    "eins",
    "einen",
    "einer",
    "einem",
}  # numbers only before hundred, thousand, million…
_HUNDRED = {"hundred", "cent", "cents", "hundert"}
_THOUSAND = {"thousand", "mille", "tausend"}
_SCALES = {
    "million",
    "millions",
    "billion",
    "billions",
    "trillion",
    "trillions",
    "milliard",
    "milliards",
    "millionen",
    "milliarde",
    "milliarden",
    "billionen",
    "trilliarde",
    "trilliarden",
}
_AND = {"and", "et", "und"}
_POINT = {"point", "virgule", "komma"}
_NUMBER_WORDS = set(_UNITS) | _HUNDRED | _THOUSAND | _SCALES | _AND | _POINT
_GERMAN_PARTS = sorted([*_DE, "hundert", "tausend", "und"], key=len, reverse=True)
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*|\d+|[^\s\w]", re.U)


@dataclass
class Checked:
    text: str
    refused: bool = False
    problems: list[str] = field(default_factory=list)
    cited: set[int] = field(default_factory=set)

    @property
    def usable(self) -> bool:
        return self.refused or bool(self.text.strip() and self.cited)


def numbers(text: str) -> set[str]:
    """Numbers normalised so that 6,6 / 6.6 / six point six and 1 000 / 1,000 / one thousand
    compare equal. Before million/milliard/Milliarde… only the count is kept, as for digits
    ("10 billion" and "ten billion" give 10)."""
    out = set()
    for m in _NUMBER.finditer(_MARKER.sub(" ", text)):
        raw = re.sub(r"[ \u202f\xa0]", "", m.group(0))
        if re.fullmatch(r"\d{1,3}(?:[.,]\d{3})+", raw):
            raw = re.sub(r"[.,]", "", raw)
        out.add(raw.replace(",", "."))
    return out | word_numbers(text)


def _german(word: str) -> list[str] | None:
    """A German compound number ("neunhundertfünfzig", "einundzwanzig") as its parts, else None."""
    parts: list[str] = []
    rest = word
    while rest:
        part = next((p for p in _GERMAN_PARTS if rest.startswith(p)), None)
        if part is None:
            return None
        parts.append(part)
        rest = rest[len(part) :]
    if len(parts) < 2 or parts[-1] == "und":
        return None
    out: list[str] = []
    for part in parts:  # einundzwanzig: "ein und zwanzig" is 1 + 20, one token
        if len(out) >= 2 and out[-1] == "und" and _UNITS.get(out[-2], 0) < 10 and _UNITS.get(part, 0) >= 20:
            out[-2:] = [f"#{_UNITS[out[-2]] + _UNITS[part]}"]
        else:
            out.append(part)
    return out


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    for m in _WORD.finditer(text.lower()):
        word = m.group(0)
        pieces = word.split("-")
        if all(p in _NUMBER_WORDS for p in pieces):
            out += pieces
        elif (parts := _german(word)) is not None:
            out += parts
        else:
            out.append(word if word.isalpha() else "|")  # digits and punctuation end a number
    return out


def _value(word: str) -> int | None:
    return int(word[1:]) if word.startswith("#") else _UNITS.get(word)


def word_numbers(text: str) -> set[str]:
    """Numbers written in words in English, French or German, as digits: before a scale word
    (million, milliard, Milliarde…) the count only, like `numbers` does for "10 billion"."""
    found: set[str] = set()
    total = current = 0
    whole: int | None = None  # the part before "point", "virgule", "Komma"
    decimals = ""
    sized = False  # a word other than an article ("one", "un", "ein") is part of it
    prev = ""

    def flush(scale: bool = False) -> None:
        nonlocal total, current, whole, decimals, sized
        if whole is not None and decimals:
            found.add(f"{whole}.{decimals}")
        elif total + current and (sized or scale):
            found.add(str(total + current))
        total = current = 0
        whole, decimals, sized = None, "", False

    words = _tokens(text)
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        v = _value(w)
        if whole is not None:
            if v is not None and v < 10 and w not in _ARTICLES - {"one", "un", "eins"}:
                decimals += str(v)
                prev = w
                continue
            flush()
        if v is not None:
            low = current % 100
            pv = _value(prev)
            if w in ("vingt", "vingts") and pv is not None and 1 < pv < 10 and low == pv:
                current += pv * 19  # quatre-vingt(s): 4 x 20
            elif (
                low == 0
                or (low % 10 == 0 and low >= 20 and v < 10)
                or (low in (60, 80) and v < 20)
                or (low == 10 and v < 10 and prev == "dix")
            ):
                current += v
            else:
                flush()
                current = v
            sized = sized or w not in _ARTICLES
        elif w in _HUNDRED and not (prev in ("pour", "per") and w.startswith("cent")):
            current = (current or 1) * 100
            sized = True
        elif w in _THOUSAND:
            total += (current or 1) * 1000
            current = 0
            sized = True
        elif w in _SCALES:
            flush(scale=True)
        elif w in _AND and (total or current) and (_value(nxt) is not None or nxt in _HUNDRED):
            pass  # "one hundred and five", "vingt et un"
        elif w in _POINT and (total or current) and _value(nxt) is not None:
            whole, decimals = total + current, ""
            total = current = 0
        else:
            flush()
        prev = w
    flush()
    return found


def _sentences(text: str) -> list[str]:
    parts, last = [], 0
    for m in _SENTENCE.finditer(text):
        end = m.start() + len(m.group(0).rstrip())
        parts.append(text[last:end].strip())
        last = m.end()
    parts.append(text[last:].strip())
    merged: list[str] = []
    for p in (p for p in parts if p):
        # "U.S. startups …", "approx. 3 …": an abbreviation, not the end of a sentence
        if merged and not _MARKER.search(merged[-1]) and _ABBREVIATION.search(merged[-1]):
            merged[-1] += " " + p
        else:
            merged.append(p)
    return merged


def visible(text: str) -> str:
    """The text as a reader sees it: forced-order runs in their displayed order, no invisible
    characters, compatibility forms folded (fullwidth letters, ligatures, ideographic full stops)."""
    text = _OVERRIDE.sub(lambda m: m.group(2)[::-1] if m.group(1) == "\u202e" else m.group(2), text)
    text = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text)).translate(_DOTS)
    return _INVISIBLE.sub("", text)


def _unbalanced_closers(text: str) -> str:
    """Drop any ")" or "]" right after a cut that closes nothing (what `[x](javascript:a(1)))` leaves)."""
    out: list[str] = []
    depth = {"(": 0, "[": 0}
    after_cut = False
    for ch in text:
        if ch == _CUT:
            after_cut = True
            out.append(ch)
            continue
        if ch in "([":
            depth[ch] += 1
        elif ch in ")]":
            opener = "(" if ch == ")" else "["
            if depth[opener] == 0 and after_cut:
                continue
            depth[opener] = max(0, depth[opener] - 1)
        if not ch.isspace():
            after_cut = False
        out.append(ch)
    return "".join(out)


def check(
    text: str,
    passages: dict[int, str],
    system_prompt: str = "",
    allow_links: bool | None = None,
    known: Known | None = None,
) -> Checked:
    """Apply every check; `passages` maps marker ids to passage texts. `allow_links` (default: the
    CHATBOT_LLM_ALLOW_LINKS setting) keeps the links, e-mails and domains the passages contain;
    `known` tells names from ordinary words (see `_unknown_names`)."""
    if allow_links is None:
        from chatbot.settings import load_settings

        allow_links = load_settings().llm_allow_links
    original = unicodedata.normalize("NFKC", text.strip())
    result = Checked(visible(text).strip())
    if REFUSAL_TOKEN in result.text:
        return Checked("", refused=True)
    if system_prompt and _leaks(result.text, system_prompt):
        return Checked("", problems=["instructions leaked"])
    if result.text != original:
        result.problems.append("hidden or reordered characters removed")
    seen = {i: visible(t) for i, t in passages.items()}
    corpus = "\n".join(seen.values())

    def strip(pattern: re.Pattern[str], t: str, keep_text: bool = False) -> str:
        def one(m: re.Match[str]) -> str:
            if allow_links and m.group(0) in corpus:
                return m.group(0)
            label = m.group(1) if keep_text else ""
            return (f"[{label}]" if label.isdigit() else label) + _CUT  # a link's text stays, [1](url) stays a marker

        return pattern.sub(one, t)

    cleaned = strip(_MD_IMAGE, result.text)
    cleaned = strip(_MD_LINK, cleaned, keep_text=True)
    for pattern in (_MD_REFERENCE, _HTML, _EMAIL, _URL, _DOMAIN):
        cleaned = strip(pattern, cleaned)
    if _CUT in cleaned:
        result.problems.append("links, images or HTML removed")
        cleaned = _unbalanced_closers(cleaned)
    bad_markers = {int(n) for n in _MARKER.findall(cleaned) if int(n) not in passages}
    if bad_markers:
        result.problems.append(f"markers {sorted(bad_markers)} point at no passage")
        cleaned = _MARKER.sub(lambda m: m.group(0) if int(m.group(1)) in passages else "", cleaned)
    copied = {m.start(): int(m.group(1)) for m in _copied_markers(cleaned, corpus)}
    if copied:
        result.problems.append(f"markers {sorted(set(copied.values()))} copied from a passage's text")
        cleaned = _MARKER.sub(lambda m: "" if m.start() in copied else m.group(0), cleaned)
    kept = []
    invented_all: set[str] = set()
    uncited = unsupported = 0
    unnamed: set[str] = set()
    for sentence in _sentences(cleaned):
        markers = {int(n) for n in _MARKER.findall(sentence)}
        allowed = set().union(*(numbers(seen[i]) for i in markers or seen))
        said = numbers(_LIST_NUMBER.sub("", sentence))
        invented = said - allowed
        if _CUT in sentence or not re.search(r"\w", _MARKER.sub("", sentence)):
            continue  # what is left of a sentence around a link is no answer ("Write to [1].")
        if invented:
            invented_all |= invented
        elif not markers:
            uncited += 1
        elif missing := _unknown_names(_MARKER.sub(" ", sentence), " ".join(seen[i] for i in markers), known or Known()):
            unnamed |= missing
        elif not said and not _anchors(_MARKER.sub(" ", sentence)) & set().union(*(_anchors(seen[i]) for i in markers)):
            unsupported += 1
        else:
            kept.append(sentence)
    if invented_all:
        shown = sorted(invented_all)
        result.problems.append(f"unsupported figures {', '.join(shown[:5])}{' …' if len(shown) > 5 else ''}")
    if uncited:
        result.problems.append(f"{uncited} sentence{'s' if uncited > 1 else ''} with no cited passage removed")
    if unnamed:
        shown = sorted(unnamed)
        result.problems.append(f"names no cited passage contains: {', '.join(shown[:5])}{' …' if len(shown) > 5 else ''}")
    if unsupported:
        result.problems.append(
            f"{unsupported} sentence{'s' if unsupported > 1 else ''} sharing no word with the passages cited removed"
        )
    joined = re.sub(r"[ \t]+", " ", " ".join(kept))
    result.text = re.sub(r" +(?=[.,;:!?](?:\s|$))", "", joined).strip()
    result.cited = {int(n) for n in _MARKER.findall(result.text)}
    return result


_NAME = re.compile(r"[^\W_](?:[\w'’&.-]*[^\W_])?")


@dataclass(frozen=True)
class Known:
    """What the name check knows beyond the cited passages (all words folded)."""

    equivalents: Mapping[str, Sequence[str]] = field(default_factory=dict)  # stem of a foreign word -> corpus words
    common: Set[str] = frozenset()  # words the corpus writes in lower case: ordinary words
    names: Set[str] = frozenset()  # words the corpus only writes capitalised: its names
    asked: Set[str] = frozenset()  # the question's words


def _unknown_names(sentence: str, cited: str, known: Known) -> set[str]:
    """Name-like words of `sentence` that `cited` does not contain in any form we can see.
    Always checked: acronyms (CEO), inner capitals (DataCorp), letters with digits (x86). A
    capitalised word is checked mid-sentence unless it is ordinary (the corpus writes it in lower
    case, or it translates a corpus word: German nouns mostly do); at the start of a sentence only
    if it is one of the corpus's names or the question's words ("Acme raised… [1]" when asked
    about acme). Two-letter acronyms (AI, KI, EU) change with the language and are left alone;
    a German noun our dictionaries miss costs a sentence, never lets a name through."""
    from chatbot.lexicon import stem

    words = _words(cited)
    text = fold(cited)
    stems = {w[:_STEM] for w in words}
    out = set()
    for n, m in enumerate(_NAME.finditer(_LIST_NUMBER.sub("", sentence))):
        for token in m.group(0).rstrip(".").split("-"):  # "KI-Startups": each part on its own
            folded = fold(token)
            letters = any(ch.isalpha() for ch in token)
            strong = (len(token) >= 3 and token.isupper()) or (not token.isupper() and any(ch.isupper() for ch in token[1:]))
            strong = strong or (letters and any(ch.isdigit() for ch in token))
            if not strong:
                if not token[:1].isupper() or len(token) < 3 or folded in _stopwords() or folded in _UNITS:
                    continue
                if n == 0:
                    if folded not in known.names and folded not in known.asked:
                        continue
                elif folded in known.common or stem(folded) in known.equivalents:
                    continue
            if folded in text or folded[:_STEM] in stems or any(w in words for w in known.equivalents.get(stem(folded), ())):
                continue
            out.add(token)
    return out


@functools.lru_cache(maxsize=256)
def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"\w+", fold(text)))


@functools.lru_cache(maxsize=1024)
def _anchors(text: str) -> frozenset[str]:
    """The content words of a text (no stop or task words), folded and cut to a stem."""
    stop = _stopwords()
    words = re.findall(rf"[^\W\d_]{{{_MIN_WORD},}}", fold(text))
    return frozenset(w[:_STEM] for w in words if w not in stop and w not in _META)


@functools.lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    """fr/en/de stop words, folded; loaded lazily: checks run only when a language model answered."""
    from bm25s import stopwords as sw

    return frozenset(fold(w) for w in (*sw.STOPWORDS_EN, *sw.STOPWORDS_FRENCH, *sw.STOPWORDS_GERMAN))


def _copied_markers(text: str, corpus: str) -> list[re.Match[str]]:
    """Markers that come with the words before them from a passage ("5 trillion dollars [3]"): the
    document's own footnote (or injection), not the model's citation."""
    flat = " ".join(corpus.split())
    out = []
    for m in _MARKER.finditer(text):
        words = text[max(0, m.start() - 60) : m.start()].split()[-2:]
        context = " ".join(words)
        if len(re.sub(r"\W", "", context)) >= 4 and (f"{context} {m.group(0)}" in flat or f"{context}{m.group(0)}" in flat):
            out.append(m)
    return out


def _leaks(text: str, system_prompt: str, n: int = 8) -> bool:
    """Does the answer repeat any run of n words of our instructions?"""
    words = re.findall(r"\w+", system_prompt.lower())
    grams = {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}
    said = re.findall(r"\w+", text.lower())
    return any(" ".join(said[i : i + n]) in grams for i in range(len(said) - n + 1))
