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
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatbot.errors import ChatbotError
from chatbot.settings import ROOT

BANK_DIR = ROOT / "tests" / "data" / "bank"
XQUAD = "google-deepmind/xquad"


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
    from chatbot.settings import load_settings

    return load_settings().fixtures_dir


def bank_dir() -> Path:
    from chatbot.settings import load_settings

    return load_settings().bank_dir


def repo_dir(repo: str, root: Path | None = None) -> Path:
    """The bare git directory of a fixture repository (owner/name)."""
    return (root or fixtures_dir()) / repo.replace("/", "+") / "repo"


def load_articles(bank: Path | None = None) -> list[Article]:
    data = json.loads(((bank or bank_dir()) / "articles.json").read_text(encoding="utf-8"))
    return [Article(**a) for a in data["articles"]]


def pinned_repositories(bank: Path | None = None) -> dict[str, str]:
    """Every repository the bank reads (its articles', and XQuAD's for training), at its commit."""
    data = json.loads(((bank or bank_dir()) / "articles.json").read_text(encoding="utf-8"))
    out = {a["repo"]: a["commit"] for a in data["articles"] if a.get("repo")}
    return out | dict(data.get("repositories", {}))


def _git(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    # no prompt for credentials (a private or missing repository fails at once), no pager
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "GIT_PAGER": "cat"}
    return subprocess.run(["git", *args], capture_output=True, text=True, timeout=timeout, env=env)


def has_commit(git_dir: Path, commit: str) -> bool:
    return git_dir.exists() and _git("--git-dir", str(git_dir), "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0


def fetch_fixtures(
    repos: dict[str, str] | None = None,
    root: Path | None = None,
    url: str | None = None,
    timeout: float | None = None,
    log: Callable[[str], None] | None = None,
) -> list[str]:
    """Fetch each repository at its pinned commit (that commit only, no history) into `root`, as a
    bare git directory whose HEAD is the commit. Returns what is still missing, one line each."""
    from chatbot.settings import load_settings

    settings = load_settings()
    repos = pinned_repositories() if repos is None else repos
    root = root or settings.fixtures_dir
    url = url or settings.fixtures_url
    timeout = settings.fixtures_timeout if timeout is None else timeout
    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    missing: list[str] = []
    for repo, commit in sorted(repos.items()):
        git_dir = repo_dir(repo, root)
        if has_commit(git_dir, commit):
            say(f"{repo} at {commit[:12]}: already in {git_dir}")
            continue
        source = url.format(repo=repo, dir=repo.replace("/", "+"))
        say(f"{repo} at {commit[:12]}: fetching from {source} (at most {timeout:.0f} s)")
        created = not git_dir.exists()
        try:
            if created:
                git_dir.parent.mkdir(parents=True, exist_ok=True)
                _git("init", "--quiet", "--bare", str(git_dir)).check_returncode()
            # a stalled transfer gives up too, not only a slow one as a whole
            stall = ("-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=30")
            fetch = ("fetch", "--quiet", "--depth", "1", "--no-tags", source, commit)
            got = _git(*stall, "--git-dir", str(git_dir), *fetch, timeout=timeout)
            reason = (" ".join(got.stderr.split()) or f"git exited with {got.returncode}") if got.returncode else ""
        except subprocess.TimeoutExpired:
            reason = f"no answer within {timeout:.0f} s"
        except (OSError, subprocess.CalledProcessError) as exc:
            reason = str(exc)
        if not reason:
            _git("--git-dir", str(git_dir), "update-ref", "--no-deref", "HEAD", commit).check_returncode()
            if has_commit(git_dir, commit):
                say(f"{repo} at {commit[:12]}: fetched")
                continue
            reason = "the commit did not arrive"
        if created:  # no empty snapshot left behind to be mistaken for one
            shutil.rmtree(git_dir.parent, ignore_errors=True)
        missing.append(f"{repo} at {commit} ({reason[:300]})")
    return missing


def check_fixtures(root: Path | None = None) -> None:
    """FixtureMissing, naming every repository absent, unless the bank's snapshots are all here."""
    absent = [f"{r} at {c[:12]}" for r, c in sorted(pinned_repositories().items()) if not has_commit(repo_dir(r, root), c)]
    if absent:
        raise FixtureMissing(
            f"the question bank's fixtures are not in {root or fixtures_dir()}: {', '.join(absent)}; "
            "`make bank` (or `python app.py train --fetch`) fetches them, or set CHATBOT_FIXTURES_DIR"
        )


def load_questions(bank: Path | None = None, articles: list[str] | None = None) -> list[Question]:
    out: list[Question] = []
    for path in sorted((bank or bank_dir()).glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            d: dict[str, Any] = json.loads(line)
            if articles is not None and d["article"] not in articles:
                continue
            out.append(Question(**{k: v for k, v in d.items() if k in Question.__dataclass_fields__}))
    return out


def _git_show(article: Article) -> bytes:
    git_dir = repo_dir(article.repo)
    if not git_dir.exists():
        raise FixtureMissing(
            f"{article.repo} is not on this machine (looked in {git_dir}): `make bank` (or `python app.py train --fetch`) "
            "fetches it, or set CHATBOT_FIXTURES_DIR"
        )
    for rev in (article.commit, "HEAD"):
        got = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{rev}:{article.path}"], capture_output=True)
        if got.returncode == 0:
            return got.stdout
    raise FixtureMissing(f"{article.repo}:{article.path} is not in the snapshot at {git_dir}; `make bank` fetches it")


def extract_text(html: str, language: str, title: str = "") -> str:
    """A page as plain text: title, byline and date, paragraphs, then comments (see index.html)."""
    from index.html import extract_page

    return extract_page(html, language, title).text


def _extractor_key() -> str:
    """The text cache's folder: a new extractor (our page layout, or trafilatura's release) makes
    new texts, so a refit on this machine reads what a fresh clone would."""
    import hashlib
    from importlib.metadata import version

    code = (ROOT / "index" / "html.py").read_bytes() + version("trafilatura").encode()
    return hashlib.sha256(code).hexdigest()[:12]


def materialize(article: Article, cache: Path) -> Path:
    """The article as a .txt file under `cache` (extracted once, then reused)."""
    if article.builtin:
        return ROOT / article.builtin
    out = cache / _extractor_key() / f"{article.id}.txt"
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
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(extract_text(html, article.language, title), encoding="utf-8")
    tmp.replace(out)
    return out


def main() -> int:
    """`make bank`: fetch the bank's fixture repositories; exit 1 naming what is missing."""
    root = fixtures_dir()
    missing = fetch_fixtures()
    if missing:
        print(f"missing in {root} (no network? set CHATBOT_FIXTURES_DIR to a folder that holds them):", file=sys.stderr)
        for line in missing:
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"the question bank's fixtures are in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
