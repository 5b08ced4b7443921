"""Raw article text -> structured records with offsets into a cleaned text.

Simplifies: a news page scraped to text is a sequence of lines. We classify each line
(headline, heading, paragraph, bullet, related teaser, comment author/date/body, boilerplate),
drop the boilerplate and any line already seen (scrapes often repeat the article and the
comments), and rebuild a cleaned text in which every record keeps its character span.
Markdown and HTML are first flattened to the same kind of lines.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser

# Boilerplate left by the scraper: image credits, the comment box counter, lone vote counts.
_CREDIT = re.compile(r"^(?:Crédits? (?:d['’])?image|Image credits?|Bildnachweis)\s*:.*?\((?:capture d['’]écran|screenshot)\)\s*", re.I)
_COUNTER = re.compile(r"^\d+\s*/\s*\d+$")
_VOTES = re.compile(r"^\d{1,4}$")
# the link under each reader's comment on a blog page: what precedes it is a comment, even unsigned
_REPLY = re.compile(r"^(?:répondre|reply|antworten|réagir)$", re.I)
_COMMENT_COUNT = re.compile(r"^(?:commentaires?|comments?|kommentare?)\s*\((\d+)\)$", re.I)
# the comment area's header without a count (zeit.de: "Kommentare", then "Name", "#1 — vor 8 Stunden")
_COMMENTS_HEADER = re.compile(r"^(?:kommentare|leserkommentare|comments|reader comments|commentaires|réactions)$", re.I)
# a comment's number and relative time, where a date would be ("#2.1 — vor 8 Stunden", "il y a 3 heures")
_COMMENT_META = re.compile(
    r"^#?\d+(?:\.\d+)*\s*[—–-]\s*\S.{0,40}$|^(?:vor|il y a)\s+\d+\s+\w+$|^\d+\s+(?:minutes?|hours?|days?|weeks?)\s+ago$", re.I
)
_RELATED = re.compile(r"^(?:articles? connexes?|related articles?|related|ähnliche artikel|verwandte artikel)$", re.I)
# an inline teaser inside the body ("LIRE AUSSI SUR REGARDS.FR" then ">> Title", or "Read more: Title"):
# another article's headline, which must not pass for this article's claim
_TEASER = re.compile(
    r"^(?:[àa] lire aussi|lire aussi|voir aussi|read more|read also|see also|mehr zum thema|lesen sie auch|auch interessant)\b"
    r"[^:]{0,40}?(?:\s*:\s*(?P<title>.+))?$",
    re.I,
)
# a comment signed after its text ("Comment by Daniel — 17.07, 2011 @ 13:10", a blog's layout)
_SIGNATURE = re.compile(
    r"^(?:comment|kommentar|commentaire|reply|antwort|réponse)\s+(?:by|von|de|par)\s+(?P<author>\S.{0,60}?)\s+[—–-]+\s+(?P<date>\S.{3,40})$",
    re.I,
)
_AUTHOR = re.compile(r"^[A-Z][\w.\-]{2,40}$")
# before a comment's number ("#2 — vor 8 Stunden") any short name is its author ("besserStill", "Robert Geiss")
_HANDLE = re.compile(r"^[^\s.!?]\S{0,39}(?: \S{1,40}){0,2}$")
_MONTHS = (
    "janvier|février|mars|avril|mai|juin|juillet|août|septembre|octobre|novembre|décembre|"
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "januar|februar|märz|juni|juli|oktober|dezember"
)
_DATE = re.compile(rf"^\d{{1,2}}\.? (?:{_MONTHS}) \d{{4}}(?: \d{{2}}:\d{{2}}(?::\d{{2}})?)?(?: UTC[+-]\d{{2}}:\d{{2}})?$", re.I)
_BULLET = re.compile(r"^\s*(?:[-*•–]|\d+[.)])\s+")
_QUOTE = re.compile(r"«\s*(.+?)\s*»|“(.+?)”|„(.+?)[“”]|»(.+?)«|(?<![\w\"])\"([^\"]{3,}?)\"(?!\w)")
_NAME = re.compile(r"\b([A-Z][a-zà-ÿ]+(?:[ -][A-Z][a-zà-ÿ]+)+)\b")
_SAID_VERBS = (
    r"(?:(?:a|ont|hat|has|had)\s+)?(?:souligné|déclaré|noté|dit|ajouté|expliqué|affirmé|précisé|estimé|said|noted|added|explained|told|betont|gesagt|erklärt)|"
    r"said|says|told|added|explained|insisted|sagt|sagte|erklärt|erklärte|betont|betonte|meint|meinte|so|explique|ajoute|estime|affirme|déclare|poursuit|précise"
)
_SPEAKER = r"([A-Z][\w-]+(?: [A-Z][\w-]+)?)"
# "…", a déclaré X / "…," said X / „…“, sagt X — or "…," X said.
_SAID = re.compile(rf"(?:{_SAID_VERBS})\s+{_SPEAKER}|{_SPEAKER}\s+(?:said|says|sagt|sagte|a déclaré|explique)\b")
# Bylines and datelines: who wrote it and when, not a heading over the paragraphs that follow.
_BYLINE = re.compile(
    r"^(?:by|par|von|de)\s+[A-ZÀ-Ü][\w.'’-]*(?:\s+[\w.'’-]+){0,5}\s*(?:[|,–—-].{0,60})?$|"
    r"^[^.!?]{0,60}\|\s*(?:\d{1,2}[./]\d{1,2}[./]\d{2,4}|\d{4}-\d{2}-\d{2}|\d{1,2}\.? \w+ \d{4}).{0,40}$|"
    r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{1,2}:\d{2}.*)?$|^\d{1,2}[./]\d{1,2}[./]\d{2,4}(?:,? (?:à )?\d{1,2}[:h]\d{2}.*)?$|"
    r"^(?:(?:article|artikel|story|post|billet) )?(?:publié|mis à jour|updated|published|veröffentlicht|aktualisiert|stand)\b.{0,60}$",
    re.I,
)


@dataclass
class Record:
    kind: str  # headline | paragraph | heading | list | quote | related | comment | comment_count
    section: str  # article | comment | related | meta
    text: str
    start: int = 0
    end: int = 0
    heading: str = ""
    author: str = ""
    date: str = ""
    language: str = ""
    speaker: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class ParsedDocument:
    source: str
    text: str  # the cleaned text every record's offsets point into
    records: list[Record]

    @property
    def title(self) -> str:
        for r in self.records:
            if r.kind == "headline":
                return r.text
        return self.source


def _norm(line: str) -> str:
    line = unicodedata.normalize("NFKC", line).replace("’", "'")
    return re.sub(r"\s+", " ", line).strip().lower()


def _clean_line(line: str) -> str:
    line = unicodedata.normalize("NFC", line)
    line = "".join(ch for ch in line if ch in "\t" or unicodedata.category(ch)[0] != "C" or ch == "\u200d")
    line = _CREDIT.sub("", line.strip())
    return re.sub(r"[ \t]+", " ", line).strip()


_QUESTION_HEADING_WORDS = 4


def _is_heading(line: str, nxt: str | None) -> bool:
    if line.startswith("#"):
        return True
    if line.endswith("?") and len(line.split()) <= _QUESTION_HEADING_WORDS and not _BULLET.match(line):
        return True  # "Artikel gelesen?", "Warum jetzt?": a page's prompt or a subhead, not a statement
    if len(line) > 90 or nxt is None or not nxt:
        return False
    if line[-1] in ".!?:;,\"”)…" or _BULLET.match(line):
        return False
    if line[-1] == "»" and (line.count("«") != line.count("»") or line[:-1].rstrip()[-1:] in ".!?"):
        return False  # the end of a quoted sentence, not a heading that closes a quoted title
    return len(line.split()) <= 12


class _HTMLText(HTMLParser):
    _BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article", "blockquote"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "noscript", "template"):
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")
            if tag == "li":
                self.parts.append("- ")
            elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
                self.parts.append("# ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript", "template"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML page, one block per line (scripts and styles dropped)."""
    parser = _HTMLText()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)  # convert_charrefs already decoded entities once; twice would turn &amp;lt; into <


def markdown_to_text(md: str) -> str:
    """Markdown to plain lines: keeps headings (#), bullets and text; drops images and link targets."""
    md = re.sub(r"```.*?```", "", md, flags=re.S)
    md = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", md)
    md = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", md)
    md = re.sub(r"(\*\*|__|`)", "", md)
    return md


def _speaker_for(paragraph: str, quote_pos: int, known: list[str], last: str) -> str:
    """Who said the quote at quote_pos: a verb of saying, else a full name in the paragraph, else the last speaker."""
    m = _SAID.search(paragraph, quote_pos)
    if m:
        name = m.group(1) or m.group(2)
        for full in known:
            if full.endswith(name):
                return full
        return name
    names = [n for n in _NAME.findall(paragraph[: quote_pos + 1]) if n not in ("Par", "Selon")]
    return names[-1] if names else last


class _Builder:
    """Accumulates cleaned text and records with their offsets."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.records: list[Record] = []

    def add(self, rec: Record) -> Record:
        if self.parts:
            self.parts.append("\n\n")
            self.pos += 2
        rec.start, rec.end = self.pos, self.pos + len(rec.text)
        self.parts.append(rec.text)
        self.pos = rec.end
        self.records.append(rec)
        return rec

    @property
    def text(self) -> str:
        return "".join(self.parts)


def parse_text(raw: str, source: str = "document", detect_language: bool = True) -> ParsedDocument:
    """Parse scraped article text (see module docstring) into records with offsets."""
    lines = [_clean_line(x) for x in raw.splitlines()]
    out = _Builder()
    seen: set[str] = set()
    section = "article"
    heading = ""
    speakers: list[str] = []
    last_speaker = ""
    pending_list: list[str] = []
    list_intro = ""
    related_title: str | None = None
    comment: dict[str, str] = {}
    first = True
    teaser_next = False
    signed: list[Record] | None = None  # comments signed after their text: the lines since the last signature

    def flush_list() -> None:
        nonlocal pending_list, list_intro
        if pending_list:
            body = "\n".join(pending_list)
            text = f"{list_intro}\n{body}" if list_intro else body
            out.add(Record("list", "article", text, heading=heading, extra={"items": str(len(pending_list))}))
        pending_list, list_intro = [], ""

    def flush_related() -> None:
        nonlocal related_title
        if related_title:
            out.add(Record("related", "related", related_title, heading="related"))
        related_title = None

    for i, line in enumerate(lines):
        if section != "article" or _COMMENT_COUNT.match(line.lstrip("# ")):
            line = line.lstrip("# ").strip()  # a Markdown/HTML heading marker means nothing in the comment area
        if not line.lstrip("# ") or _COUNTER.match(line):
            continue  # also a heading marker with no heading ("#", "# " of an empty <h2>)
        teaser = _TEASER.match(line) if section == "article" and not teaser_next else None
        if section == "article" and (teaser_next or teaser):
            title = (teaser.group("title") or "" if teaser else line).lstrip(">»- ").strip()
            teaser_next = teaser is not None and not title
            if title:
                flush_list()
                out.add(Record("related", "related", title, heading="related"))
            continue

        nxt = next((x for x in lines[i + 1 :] if x), None)
        if (section == "comment" and _VOTES.match(line)) or _REPLY.match(line):
            continue
        key = _norm(line)
        if key in seen and len(key) > 20:
            continue  # the scrape repeats article and comments: keep the first copy
        seen.add(key)

        if m := _COMMENT_COUNT.match(line):
            flush_list()
            flush_related()
            section = "comment"
            out.add(Record("comment_count", "meta", line, extra={"count": m.group(1)}))
            continue
        if _RELATED.match(line):
            flush_list()
            section = "related"
            continue
        if section == "article" and _COMMENTS_HEADER.match(line) and nxt is not None and _AUTHOR.match(nxt):
            flush_list()
            flush_related()
            section = "comment"
            continue

        if section == "article" and (sig := _SIGNATURE.match(line)):
            flush_list()
            # the first signature signs the paragraph just before it; later ones, every line since the last
            own = signed if signed is not None else [r for r in out.records[-1:] if r.kind == "paragraph"]
            for rec in own:
                rec.kind, rec.section, rec.author, rec.date = "comment", "comment", sig.group("author"), sig.group("date")
                rec.language = _detect(rec.text) if detect_language else ""
                rec.heading = rec.speaker = ""
            spans = [(r.start, r.end) for r in own]
            out.records[:] = [r for r in out.records if not (r.kind == "quote" and any(a <= r.start < b for a, b in spans))]
            signed = []
            continue
        if section == "article" and nxt is not None and _REPLY.match(nxt) and not _is_heading(line, None):
            flush_list()
            # only this line: a stray "Reply" in a page's furniture must not turn the rest into comments
            lang = _detect(line) if detect_language else ""
            out.add(Record("comment", "comment", line, language=lang))
            continue
        if section == "article" and signed is not None:
            signed.append(out.add(Record("paragraph", "comment", line)))  # signed (or not) by a later line
            continue

        if section == "comment":
            if nxt is not None and (
                (_AUTHOR.match(line) and _DATE.match(nxt)) or (_COMMENT_META.match(nxt) and _HANDLE.match(line))
            ):
                comment = {"author": line}
                continue
            if (_DATE.match(line) or _COMMENT_META.match(line)) and comment.get("author") and "date" not in comment:
                comment["date"] = line
                continue
            if comment.get("author"):
                lang = _detect(line) if detect_language else ""
                out.add(Record("comment", "comment", line, author=comment["author"], date=comment.get("date", ""), language=lang))
                comment = {}
                continue
            last = out.records[-1] if out.records else None
            if last is not None and last.kind == "comment" and i > 0 and lines[i - 1]:
                # the comment's next line, with no blank line between: the same reader's text
                out.add(Record("comment", "comment", line, author=last.author, date=last.date, language=last.language))
                continue
            # an unattributed line after the comments (a second copy with a new comment, a footer)
            out.add(Record("paragraph", "comment", line))
            continue

        if section == "related":
            if related_title is None:
                related_title = line
            else:
                out.add(Record("related", "related", f"{related_title}\n{line}", heading=related_title))
                related_title = None
            continue

        if first and not _BULLET.match(line):
            out.add(Record("headline", "article", line.lstrip("# ")))
            heading = line.lstrip("# ")
            first = False
            continue
        first = False

        if len(line) <= 100 and _BYLINE.match(line):
            out.add(Record("byline", "article", line))
            continue
        if _BULLET.match(line):
            pending_list.append("- " + _BULLET.sub("", line))
            continue
        flush_list()
        if _is_heading(line, nxt):
            heading = line.lstrip("# ").strip()
            out.add(Record("heading", "article", heading, heading=heading))
            continue
        if line.endswith(":") and nxt is not None and _BULLET.match(nxt):
            list_intro = line
            continue
        rec = out.add(Record("paragraph", "article", line, heading=heading))
        speakers.extend(n for n in _NAME.findall(line) if n not in speakers)
        for q in _QUOTE.finditer(line):
            # a later quote in the same paragraph continues the same speaker unless a verb of saying names another
            if rec.speaker and not _SAID.search(line, q.start()):
                last_speaker = rec.speaker
            else:
                last_speaker = _speaker_for(line, q.start(), speakers, last_speaker)
            quote = q.group(0)
            out.records.append(
                Record("quote", "article", quote, rec.start + q.start(), rec.start + q.end(), heading=heading, speaker=last_speaker)
            )
            rec.speaker = rec.speaker or last_speaker
    flush_list()
    flush_related()
    return ParsedDocument(source=source, text=out.text, records=out.records)


def parse_file(path: str, raw: str) -> ParsedDocument:
    """Pick the flattening by file extension, then parse the lines."""
    lower = path.lower()
    if lower.endswith((".html", ".htm")):
        raw = html_to_text(raw)
    elif lower.endswith((".md", ".markdown")):
        raw = markdown_to_text(raw)
    return parse_text(raw, source=path)


def _detect(text: str) -> str:
    from chatbot.language import detect_language

    return detect_language(text)
