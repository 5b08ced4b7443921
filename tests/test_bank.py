"""Where the question bank's fixture repositories live and how `make bank` fetches them: a per-user
folder, each repository at its pinned commit only, and a plain list of what is missing when the
network (or a repository) is not there. A local repository stands in for GitHub."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from chatbot import bank
from chatbot.settings import Settings
from tests.conftest import ROOT, run_app


def git(*args: str, cwd: Path | None = None) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env={**os.environ, **env}
    ).stdout.strip()


@pytest.fixture()
def remote(tmp_path: Path) -> tuple[str, str, str]:
    """A repository "owner/pages" with two commits, served from a folder: (url template, repo, first commit)."""
    work = tmp_path / "remotes" / "owner+pages"
    work.mkdir(parents=True)
    git("init", "--quiet", "-b", "main", cwd=work)
    (work / "page.html").write_text("<p>first</p>", encoding="utf-8")
    git("add", ".", cwd=work)
    git("commit", "--quiet", "-m", "first", cwd=work)
    first = git("rev-parse", "HEAD", cwd=work)
    (work / "page.html").write_text("<p>second</p>", encoding="utf-8")
    git("commit", "--quiet", "-am", "second", cwd=work)
    return f"file://{tmp_path}/remotes/{{dir}}", "owner/pages", first


def test_default_fixtures_folder_is_per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATBOT_FIXTURES_DIR", raising=False)
    folder = Settings().fixtures_dir
    assert folder == Path.home() / ".cache" / "article-chatbot" / "fixtures" and not str(folder).startswith("/work/")
    monkeypatch.setenv("CHATBOT_FIXTURES_DIR", "/somewhere/else")
    assert bank.fixtures_dir() == Path("/somewhere/else")
    assert bank.repo_dir("mozilla/readability") == Path("/somewhere/else/mozilla+readability/repo")


def test_every_pinned_repository_is_named_with_a_commit() -> None:
    pinned = bank.pinned_repositories(ROOT / "tests" / "data" / "bank")
    assert set(pinned) == {"mozilla/readability", "adbar/trafilatura", bank.XQUAD}
    assert all(len(c) == 40 for c in pinned.values())


def test_fetch_takes_the_pinned_commit_only(remote: tuple[str, str, str], tmp_path: Path) -> None:
    url, repo, first = remote
    said: list[str] = []
    root = tmp_path / "fixtures"
    assert bank.fetch_fixtures({repo: first}, root, url, timeout=60, log=said.append) == []
    git_dir = root / "owner+pages" / "repo"
    assert bank.has_commit(git_dir, first)
    assert git("--git-dir", str(git_dir), "show", "HEAD:page.html") == "<p>first</p>"  # HEAD is the pinned commit
    assert git("--git-dir", str(git_dir), "rev-list", "--all", "--count") == "1"  # not the history
    assert said[-1].endswith("fetched")
    assert bank.fetch_fixtures({repo: first}, root, url, timeout=60, log=said.append) == []
    assert "already in" in said[-1]  # a second run fetches nothing


def test_missing_repositories_are_named_quickly(remote: tuple[str, str, str], tmp_path: Path) -> None:
    url, repo, first = remote
    root = tmp_path / "fixtures"
    t0 = time.monotonic()
    missing = bank.fetch_fixtures({repo: first, "nobody/nothing": "0" * 40}, root, url, timeout=60, log=lambda m: None)
    assert time.monotonic() - t0 < 30
    assert len(missing) == 1 and missing[0].startswith("nobody/nothing at " + "0" * 40)
    assert not (root / "nobody+nothing").exists()  # no empty snapshot left to be mistaken for one
    # an unreachable host (no network): the same, within the timeout
    missing = bank.fetch_fixtures({"a/b": first}, root, "http://127.0.0.1:9/{repo}.git", timeout=20, log=lambda m: None)
    assert len(missing) == 1 and missing[0].startswith("a/b at ")


def test_training_without_fixtures_says_what_is_missing_and_how_to_fetch(tmp_path: Path) -> None:
    env = {"CHATBOT_FIXTURES_DIR": str(tmp_path / "empty"), "CHATBOT_DATA_DIR": str(tmp_path / "data")}
    out = run_app("train", env=env, timeout=60)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    for repo in ("mozilla/readability", "adbar/trafilatura", "google-deepmind/xquad"):
        assert repo in out.stderr
    assert "make bank" in out.stderr and str(tmp_path / "empty") in out.stderr
    env["CHATBOT_FIXTURES_URL"] = "http://127.0.0.1:9/{repo}.git"  # nothing listens: as with no network
    out = run_app("train", "--fetch", env=env, timeout=120)
    assert out.returncode == 1 and "could not fetch" in out.stderr and "google-deepmind/xquad" in out.stderr
