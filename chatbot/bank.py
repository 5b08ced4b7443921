"""The question bank: real articles from public test fixtures, and questions written for them.

Simplifies: the articles are not copied into this repository (they belong to their sites and to
the fixture projects); the manifest names each one by repository, path and commit, and
`materialize` extracts it from a local git snapshot of that repository into plain text in the
shape a reader would paste (title, byline and date, paragraphs, comments), cached under the
data folder. Questions live in `tests/data/bank/*.jsonl`, one file per article.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatbot.errors import ChatbotError
from chatbot.settings import ROOT

BANK_DIR = ROOT / "tests" / "data" / "bank"


class FixtureMissing(ChatbotError):
    """The git snapshot that holds an article of the bank is not on this machine."""


@dataclass(frozen=True)
class Article:
    id: str
    language: str
    repo: str  # owner/name of the public repository
    path: str
    commit: str
    heldout: bool = False  # questions written first, scored once at the end, never tuned on
    builtin: str = ""  # a corpus file shipped with the project instead of a fixture


@dataclass
class Question:
    id: str
    article: str
    language: str
    question: str
    answerable: bool
    passage: str
    answer_any: list[list[str]]
    group: str = ""
    kind: str = ""
    style: str = ""
    history: list[dict[str, str]] = field(default_factory=list)


def fixtures_dir() -> Path:
    return Path(os.environ.get("CHATBOT_FIXTURES_DIR", "/work/.mirror"))


def load_articles(bank: Path = BANK_DIR) -> list[Article]:
    data = json.loads((bank / "articles.json").read_text(encoding="utf-8"))
    return [Article(**a) for a in data["articles"]]


def load_questions(bank: Path = BANK_DIR, articles: list[str] | None = None) -> list[Question]:
    out: list[Question] = []
    for path in sorted(bank.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            d: dict[str, Any] = json.loads(line)
            if articles is not None and d["article"] not in articles:
                continue
            out.append(Question(**{k: v for k, v in d.items() if k in Question.__dataclass_fields__}))
    return out


def _git_show(article: Article) -> bytes:
    git_dir = fixtures_dir() / article.repo.replace("/", "+") / "repo"
    if not git_dir.exists():
        raise FixtureMissing(f"{article.repo} is not on this machine (looked in {git_dir}); set CHATBOT_FIXTURES_DIR")
    for rev in (article.commit, "HEAD"):
        got = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{rev}:{article.path}"], capture_output=True)
        if got.returncode == 0:
            return got.stdout
    raise FixtureMissing(f"{article.repo}:{article.path} is not in the snapshot at {git_dir}")


def extract_text(html: str, language: str, title: str = "") -> str:
    """A page as plain text: title, byline and date, paragraphs, then comments (see index.html)."""
    from index.html import extract_page

    return extract_page(html, language, title).text


def materialize(article: Article, cache: Path) -> Path:
    """The article as a .txt file under `cache` (extracted once, then reused)."""
    if article.builtin:
        return ROOT / article.builtin
    out = cache / f"{article.id}.txt"
    if out.exists():
        return out
    html = _git_show(article).decode("utf-8", errors="replace")
    title = ""
    if "/test-pages/" in article.path:  # readability's fixtures carry the title they expect in a metadata file
        meta_path = article.path.rsplit("/", 1)[0] + "/expected-metadata.json"
        try:
            title = (
                json.loads(_git_show(Article(article.id, article.language, article.repo, meta_path, article.commit)))["title"]
                or ""
            )
        except (FixtureMissing, KeyError, ValueError):
            title = ""
    cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(extract_text(html, article.language, title), encoding="utf-8")
    tmp.replace(out)
    return out
