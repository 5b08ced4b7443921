"""Shared fixtures: one index built per test session in a temp folder, and a loaded Chatbot."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus" / "ai-investments-2024.fr.txt"
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


@pytest.fixture(scope="session")
def raw_article() -> str:
    return CORPUS.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def e5() -> object:
    from index.embed import load_embedder

    return load_embedder("e5")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def settings(data_dir: Path) -> object:
    from chatbot.settings import Settings

    return Settings(data_dir=data_dir)


@pytest.fixture(scope="session")
def built(settings: object, e5: object) -> object:
    from index.build import build

    return build(settings, embedder=e5)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def bot(settings: object, built: object, e5: object) -> object:
    from chatbot.core import Chatbot

    return Chatbot(settings, embedder=e5)  # type: ignore[arg-type]


def run_app(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture()
def fresh_settings(tmp_path: Path) -> Iterator[object]:
    from chatbot.settings import Settings

    yield Settings(data_dir=tmp_path / "data")


# --- web server helpers (tests/test_web_api.py, tests/test_web_browser.py) ---


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebServer:
    """`python app.py serve` in a subprocess on a free port, on a given data folder."""

    def __init__(self, data_dir: Path, log: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.feedback = data_dir / "feedback-test.jsonl"
        self.log = log
        full_env = {**os.environ, "CHATBOT_DATA_DIR": str(data_dir), "CHATBOT_FEEDBACK_PATH": str(self.feedback), **(env or {})}
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "serve", "--port", str(self.port), *args],
            env=full_env,
            cwd=ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 180) -> WebServer:
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/api/health", timeout=30).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()


@pytest.fixture(scope="session")
def web_server(settings: object, built: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """One served app on the session's index, shared by the API and browser tests."""
    server = WebServer(settings.data_dir, tmp_path_factory.mktemp("web") / "server.log")  # type: ignore[attr-defined]
    try:
        yield server.wait_ready()
    finally:
        server.stop()


# --- browser helpers (tests/test_web_browser.py, tests/test_xss_corpus.py) ---

CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright never downloads one
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
# elements inside the widget's text areas other than those it creates itself ([n] buttons, <mark>)
WIDGET_FOREIGN_ELEMENTS = """document.querySelector('.article-chat-widget').shadowRoot.querySelectorAll(
  '.msg .text *:not(button.cite), .passage *:not(mark), summary *, mark *, button.cite *').length"""


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Page:
    """A page that records every request, script error and dialog, so tests can assert that
    nothing ran and nothing was fetched elsewhere."""

    def __init__(self, browser: object, viewport: dict[str, int]) -> None:
        self.context = browser.new_context(viewport=viewport)  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)

    def _dialog(self, dialog: object) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")  # type: ignore[attr-defined]
        dialog.dismiss()  # type: ignore[attr-defined]

    def assert_inert(self, *origins: str) -> None:
        self.page.wait_for_timeout(300)  # give any injected handler time to fire
        assert self.page.evaluate("window.__xss") is None
        assert not self.dialogs, self.dialogs
        assert not [u for u in self.requests if "127.0.0.1:9/" in u]
        strays = [u for u in self.requests if not u.startswith(origins) and not u.startswith(("data:", "blob:"))]
        assert not strays, strays


@pytest.fixture()
def new_page(browser: object) -> Iterator[object]:
    pages: list[Page] = []

    def make(viewport: dict[str, int] = DESKTOP) -> Page:
        pages.append(Page(browser, viewport))
        return pages[-1]

    yield make
    for p in pages:
        p.context.close()


def serve_host_page(folder: Path, app_url: str) -> tuple[object, str]:
    """A site on another origin (another port) embedding the widget with one script tag."""
    (folder / "index.html").write_text(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Host site</title>
<style>body {{ font-family: Georgia, serif; background: #fafaf0; }} * {{ color: purple; }} button {{ background: red !important; }}</style>
</head><body><h1>A site about something else</h1><p>Its own content, its own styles.</p>
<div id="inline-box" style="height: 480px; max-width: 640px; border: 1px solid #ccc"></div>
<script src="{app_url}/widget.js" data-title="Ask the article" data-lang="en" defer></script>
</body></html>""",
        encoding="utf-8",
    )
    return serve_folder(folder)


def serve_folder(folder: Path) -> tuple[object, str]:
    """The folder's files over HTTP on a free port of its own (another origin than the app's)."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def chat_ask(page: object, question: str) -> None:
    """Type a question in the web chat and wait until its answer and sources are complete."""
    done = page.locator("#chat .bot-row:has(.thought-group)").count()  # type: ignore[attr-defined]
    page.fill("#question textarea", question)  # type: ignore[attr-defined]
    page.press("#question textarea", "Enter")  # type: ignore[attr-defined]
    page.wait_for_function(f"document.querySelectorAll('#chat .bot-row:has(.thought-group)').length > {done}")  # type: ignore[attr-defined]


def last_answer(page: object) -> str:
    return str(page.locator("#chat .bot-row").last.locator("[data-testid=bot]").first.inner_text())  # type: ignore[attr-defined]


def widget_ask(page: object, question: str, within: str = ".article-chat-widget") -> None:
    """Ask in the (first) widget and wait for the final answer or an error (no string-eval
    waits: the demo page's CSP forbids them, as a careful host site would)."""
    done = page.locator(f"{within} >> .msg.bot.done")  # type: ignore[attr-defined]
    before = done.count()
    page.locator(f"{within} >> textarea").fill(question)  # type: ignore[attr-defined]
    page.keyboard.press("Enter")  # type: ignore[attr-defined]
    done.nth(before).wait_for()


def screenshots_dir() -> Path:
    """Where browser tests put screenshots: under tests/artifacts/ (ignored by git), or where
    SCREENSHOTS_DIR says (`make screenshots` refreshes the README's, in benchmarks/results/screenshots)."""
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or ROOT / "tests" / "artifacts" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def flat(text: str) -> str:
    return " ".join(text.split())


# Files with tests of a minute or more run first: with two workers (make test), the long ones then
# overlap with the many short ones instead of running last, alone and silent.
LONG_FIRST = (
    "test_train.py", "test_faults.py", "test_xss_corpus.py", "test_live_index.py", "test_api_fuzz.py", "test_llm_server.py",
    "test_web_documents.py", "test_documents.py",
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FIRST)))  # stable: file order kept otherwise


# --- make test talks: after 30 s without a test result, say which tests are still running ---

HEARTBEAT_SECONDS = 30


class Heartbeat:
    """Runs where results are reported (the xdist controller, or the only process): a test that
    takes minutes (a browser, a server, a SIGKILL) then shows up by name instead of as silence."""

    def __init__(self, reporter: object) -> None:
        import threading

        self.reporter = reporter
        self.running: dict[str, float] = {}
        self.last = time.monotonic()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        threading.Thread(target=self._beat, name="test-heartbeat", daemon=True).start()

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        with self.lock:
            self.running[nodeid] = time.monotonic()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        with self.lock:
            self.last = time.monotonic()
            if report.when == "teardown" or (report.when != "call" and report.outcome != "passed"):
                self.running.pop(report.nodeid, None)

    def stop(self) -> None:
        self.stopped.set()

    def _beat(self) -> None:
        while not self.stopped.wait(2):
            now = time.monotonic()
            with self.lock:
                if now - self.last < HEARTBEAT_SECONDS or not self.running:
                    continue
                self.last = now
                names = ", ".join(f"{n} ({now - t:.0f} s)" for n, t in sorted(self.running.items(), key=lambda x: x[1]))
            self.reporter.ensure_newline()  # type: ignore[attr-defined]
            self.reporter.write_line(f"… still running: {names}")  # type: ignore[attr-defined]


@pytest.hookimpl(trylast=True)  # after the terminal reporter is registered
def pytest_configure(config: pytest.Config) -> None:
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None and not hasattr(config, "workerinput"):  # not in xdist's workers: their output goes nowhere
        config.pluginmanager.register(Heartbeat(reporter), "heartbeat")


def pytest_unconfigure(config: pytest.Config) -> None:
    beat = config.pluginmanager.get_plugin("heartbeat")
    if beat is not None:
        beat.stop()


def served(answer: object) -> bool:
    """The answer comes from the scope: stated, or "not sure" with its candidate quoted (an Answer
    or its JSON). Tests of scopes and stores check *where* an answer comes from; how sure it is
    is the answer models' business (tests/test_outcome.py)."""
    status = answer["status"] if isinstance(answer, dict) else answer.status  # type: ignore[attr-defined]
    return status in ("answered", "unsure")
